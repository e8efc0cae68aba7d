"""Choose the Brian2 device for a block of work, with a private build folder per process.

Brian2 keeps the device as global state; `simulation_device` scopes it so that code building
several simulations in one process (studies, tests) leaves Brian2 as it found it.

Devices: ``"runtime"`` (Brian2's numpy target: no compiler, slow per step), ``"cpp"``
(bioconv's own standalone device, `bioconv.simulate.standalone`: Brian2's C++ standalone device with
the code generation a converted network needs; OpenMP threads) and ``"cuda"`` (brian2cuda's
cuda_standalone: the simulation compiled to CUDA with nvcc). The standalone devices either build
and run on ``network.run`` (``build_on_run=True``) or leave the build to the caller, who compiles
once and runs the binary many times with new values (`bioconv.simulate.runner`).
"""
from __future__ import annotations

import glob
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from brian2 import defaultclock, device, ms, prefs, set_device

from ..errors import ParameterError
from .standalone import NAME as CPP_DEVICE  # registers bioconv's device with Brian2
from .quiet import quiet_brian2_info

DEVICES = ("runtime", "cpp", "cuda")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), the default number of OpenMP threads."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Cores to use when none are asked for: $BIOCONV_THREADS if set, else all available cores.
    `SNN.evaluate` spreads its runs over them as processes; `simulation_device` gives them to OpenMP.

    Set BIOCONV_THREADS=1 where several simulations share the cores (parallel test workers, job
    arrays): OpenMP threads spin at every step's barriers and slow down badly on a busy core."""
    env = os.environ.get("BIOCONV_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ParameterError(f"BIOCONV_THREADS must be an integer, got {env!r}") from None
        if n < 0:
            raise ParameterError(f"BIOCONV_THREADS must be >= 0, got {n}")
        return n
    return available_cores()


def build_root() -> Path:
    """Where standalone projects are generated: $BIOCONV_BUILD_DIR or the system's temp folder."""
    root = Path(os.environ.get("BIOCONV_BUILD_DIR", Path(tempfile.gettempdir()) / "bioconv-build"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_device(kind: str, where: str = "bioconv") -> str:
    if kind not in DEVICES:
        raise ParameterError(f"{where}: unknown device {kind!r}; choose one of {DEVICES}")
    return kind


@contextmanager
def simulation_device(kind: str = "cpp", *, dt=None, threads: int | None = None, directory=None, keep: bool = False,
                      build_on_run: bool = True, float32: bool = False, cuda: dict | None = None):
    """Build and run the Brian2 objects created inside this block on ``kind``.

    ``threads``: OpenMP threads for ``"cpp"`` (None = `default_threads`: all available cores unless
    $BIOCONV_THREADS says otherwise; 0 or 1 = no OpenMP).
    ``float32``: state variables in single precision (Brian2's ``core.default_float_dtype``).
    ``cuda``: options for `configure_cuda` (``"cuda"`` only). Each block gets a fresh build folder
    of its own (so parallel processes never collide) unless ``directory`` is given, removed
    afterwards unless ``keep``. Yields the build folder (None for runtime).
    """
    check_device(kind, "simulation_device")
    saved = {name: prefs[name] for name in ("devices.cpp_standalone.openmp_threads", "codegen.target",
                                            "core.default_float_dtype", "codegen.cpp.extra_compile_args_gcc",
                                            "codegen.cpp.include_dirs", "codegen.cpp.library_dirs",
                                            "codegen.cpp.runtime_library_dirs")}
    folder = None
    try:
        if float32:
            prefs.core.default_float_dtype = np.float32
        if kind == "runtime":
            set_device("runtime")
            prefs.codegen.target = "numpy"
        else:
            folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix=f"p{os.getpid()}-",
                                                                             dir=build_root()))
            if kind == "cpp":
                n = default_threads() if threads is None else int(threads)
                # One thread is plain serial code: OpenMP with a single thread only adds its overhead.
                prefs.devices.cpp_standalone.openmp_threads = n if n > 1 else 0
                set_device(CPP_DEVICE, directory=str(folder), build_on_run=build_on_run, with_output=False)
            else:
                configure_cuda(**(cuda or {}))
                set_device("cuda_standalone", directory=str(folder), build_on_run=build_on_run, with_output=False)
        if dt is not None:
            defaultclock.dt = dt
        with quiet_brian2_info():  # bioconv's own objects: Brian2's INFO lines off the console
            yield folder
    finally:
        if kind != "runtime":
            device.reinit()
            device.activate()
            set_device("runtime")
            if folder is not None and directory is None and not keep:
                shutil.rmtree(folder, ignore_errors=True)
        for name, value in saved.items():
            prefs[name] = value
        defaultclock.dt = 0.1 * ms  # Brian2's default


def curand_dirs() -> tuple[str, str] | None:
    """(include, lib) folders of the ``nvidia-curand`` wheel, if installed; None otherwise."""
    try:
        import nvidia.cu13  # noqa: F401  (CUDA 13 wheels install under nvidia/cu13)
        roots = list(nvidia.cu13.__path__)
    except ImportError:
        try:
            import nvidia.curand
            roots = list(nvidia.curand.__path__)
        except ImportError:
            return None
    for root in roots:
        headers = glob.glob(os.path.join(root, "**", "curand.h"), recursive=True)
        libs = glob.glob(os.path.join(root, "**", "libcurand.so*"), recursive=True)
        if headers and libs:
            libdir = os.path.dirname(libs[0])
            plain = os.path.join(libdir, "libcurand.so")
            if not os.path.exists(plain):  # the wheel ships only libcurand.so.N: the linker wants the plain name
                try:
                    os.symlink(os.path.basename(libs[0]), plain)
                except OSError:
                    pass
            return os.path.dirname(headers[0]), libdir
    return None


def configure_cuda(*, cuda_path: str | None = None, detect_gpu: bool | None = None, gpu_id: int = 0,
                   compute_capability: float = 9.0):
    """Set brian2cuda's preferences (ENVIRONMENT.md): C++17 for CUDA 13's Thrust/CUB, curand from the
    ``nvidia-curand`` wheel, and GPU detection off where no GPU is present (then ``gpu_id`` and
    ``compute_capability`` name the target). Raises `ParameterError` naming what is missing."""
    try:
        import brian2cuda  # noqa: F401  (registers the cuda_standalone device)
    except ImportError as err:
        raise ParameterError(f"device 'cuda' needs the brian2cuda package: {err}") from None
    if cuda_path is None:
        nvcc = shutil.which("nvcc")
        cuda_path = os.environ.get("CUDA_PATH") or ("/usr/local/cuda" if os.path.exists("/usr/local/cuda/bin/nvcc") else
                                                    os.path.dirname(os.path.dirname(nvcc)) if nvcc else "/usr/local/cuda")
    if not os.path.exists(os.path.join(cuda_path, "bin", "nvcc")):
        raise ParameterError(f"device 'cuda': no nvcc under {cuda_path!r}; set CUDA_PATH to the CUDA toolkit")
    backend = prefs.devices.cuda_standalone.cuda_backend
    backend.cuda_path = cuda_path
    if detect_gpu is None:
        detect_gpu = shutil.which("nvidia-smi") is not None
    backend.detect_gpus = bool(detect_gpu)
    if not detect_gpu:
        backend.gpu_id = gpu_id
        backend.compute_capability = compute_capability
    if "-std=c++17" not in backend.extra_compile_args_nvcc:
        backend.extra_compile_args_nvcc = list(backend.extra_compile_args_nvcc) + ["-std=c++17"]
    prefs.codegen.cpp.extra_compile_args_gcc = [a.replace("c++11", "c++17")
                                                for a in prefs.codegen.cpp.extra_compile_args_gcc]
    dirs = curand_dirs()
    if dirs is not None:
        include, lib = dirs
        prefs.codegen.cpp.include_dirs = list(prefs.codegen.cpp.include_dirs) + [include]
        prefs.codegen.cpp.library_dirs = list(prefs.codegen.cpp.library_dirs) + [lib]
        prefs.codegen.cpp.runtime_library_dirs = list(prefs.codegen.cpp.runtime_library_dirs) + [lib]
    elif not os.path.exists(os.path.join(cuda_path, "include", "curand.h")):
        raise ParameterError(f"device 'cuda': curand headers are neither in {cuda_path}/include nor in an installed "
                             f"'nvidia-curand' wheel; pip install 'nvidia-curand>=10.4,<10.5'")
