"""Choose the Brian2 device for a block of work, with a private build folder per process.

Brian2 keeps the device as global state; `simulation_device` scopes it so that code building
several simulations in one process (studies, tests) leaves Brian2 as it found it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from brian2 import defaultclock, device, ms, prefs, set_device

DEVICES = ("runtime", "cpp")


def build_root() -> Path:
    """Where standalone projects are generated: $BIOCONV_BUILD_DIR or the system's temp folder."""
    root = Path(os.environ.get("BIOCONV_BUILD_DIR", Path(tempfile.gettempdir()) / "bioconv-build"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def simulation_device(kind: str = "cpp", *, dt=None, threads: int = 0, directory=None, keep: bool = False):
    """Build and run the Brian2 objects created inside this block on ``kind``.

    ``kind``: ``"runtime"`` (Brian2's numpy target: no compiler, slow per step) or ``"cpp"``
    (cpp_standalone: the whole simulation compiled to C++ and run on ``network.run``; ``threads``
    OpenMP threads, 0 = none). Each block gets a fresh build folder of its own unless
    ``directory`` is given, removed afterwards unless ``keep``. Yields the build folder (or None).
    """
    if kind not in DEVICES:
        raise ValueError(f"unknown device {kind!r}; choose one of {DEVICES}")
    old_threads = prefs.devices.cpp_standalone.openmp_threads
    old_target = prefs.codegen.target
    folder = None
    try:
        if kind == "runtime":
            set_device("runtime")
            prefs.codegen.target = "numpy"
        else:
            folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix=f"p{os.getpid()}-",
                                                                             dir=build_root()))
            prefs.devices.cpp_standalone.openmp_threads = int(threads)
            set_device("cpp_standalone", directory=str(folder), build_on_run=True, with_output=False)
        if dt is not None:
            defaultclock.dt = dt
        yield folder
    finally:
        if kind != "runtime":
            device.reinit()
            device.activate()
            set_device("runtime")
            prefs.devices.cpp_standalone.openmp_threads = old_threads
            if folder is not None and directory is None and not keep:
                shutil.rmtree(folder, ignore_errors=True)
        prefs.codegen.target = old_target
        defaultclock.dt = 0.1 * ms  # Brian2's default
