"""A compiled project as data: its cache key, its manifest, and its launcher.

- `shape_parts` lists everything that shapes a converted network's generated code (the key of the
  project cache, `bioconv.simulate.cache`).
- A manifest (``manifest.json``) records what a run of the binary needs and gives: each run_args
  input (command-line name, dtype, size) and each result (file, dtype, layout). With it, `launch`
  runs the binary and `Results` reads its output with numpy, without the Brian2 objects that built
  it: a cached project runs in a fresh process with no build at all.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from pathlib import Path

import brian2
import numpy as np
from brian2 import prefs
from brian2.codegen.cpp_prefs import get_compiler_and_args
from brian2.core.variables import DynamicArrayVariable

from ..mapping import MappedNetwork

FORMAT = 1
_PACKAGE = Path(__file__).resolve().parents[1]
_EQUATIONS = _PACKAGE.parent / "equations"


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """Hash of bioconv's own sources (Python, templates) and model files: any change of the code that
    generates a project makes a new key (safer than a version number during development)."""
    h = hashlib.sha256()
    for root in (_PACKAGE, _EQUATIONS):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".cpp", ".toml", "") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def toolchain() -> dict:
    """The compiler (its version text) and the host CPU's instruction set: Brian2 compiles with
    -march=native, so a binary is only valid on a CPU with the same features."""
    compiler = os.environ.get("CXX", "g++")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        version = "unknown"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    except OSError:
        pass
    return {"compiler": compiler, "compiler_version": version.splitlines()[0] if version else "",
            "machine": platform.machine(), "cpu_flags": flags}


def shape_parts(net: MappedNetwork, *, B: int, K: int, duration, dt, encoder: str, seed, record_output_every,
                float32: bool, sweepable=(), conv: str = "unrolled", input_copies: int | None = None) -> dict:
    """Everything that shapes the generated code of ``net`` built for ``B`` copies x ``K``
    presentations: the cache key is their hash. Not in it: what a launch passes as run_args (inputs,
    weights, per-neuron parameters) and the seed (`network.shape_signature`). ``sweepable``: the names a
    sweepable build keeps changeable are in the key, their values are not (a launch passes them).
    ``conv``: the form of the convolutions (`network.CONV_FORMS`), as the build will make them.
    ``input_copies``: the input copies the B copies share (`network.build`; None: B)."""
    from ..coding.encoders import encoders
    from .network import shape_signature
    from .sweepable import check_names
    sweepable = check_names(sweepable, "shape_parts")
    pops = shape_signature(net, sweepable, conv)
    # every preference that can change the generated code or how it is compiled (not those that only
    # say how a run is launched)
    launch_only = {"devices.cpp_standalone.run_cmd_unix", "devices.cpp_standalone.run_environment_variables"}
    dev_prefs = {name: str(prefs[name]) for name in sorted(prefs)
                 if name.startswith(("codegen.", "core.", "legacy.", "devices.cpp_standalone.",
                                     "devices.bioconv_standalone.")) and name not in launch_only}
    return {
        "format": FORMAT, "bioconv": source_digest(), "brian2": brian2.__version__, "toolchain": toolchain(),
        "compiler_and_args": [str(a) for a in get_compiler_and_args()],
        "prefs": dev_prefs, "openmp_threads": prefs["devices.cpp_standalone.openmp_threads"],
        "float32": bool(float32),
        "network": {"populations": pops, "synapse": net.synapse,
                    "synapse_params": {k: "swept" if k in sweepable else np.asarray(v)
                                       for k, v in sorted(net.synapse_params.items())},
                    "rate_max": "swept" if "rate_max" in sweepable else float(net.rate_max), "bias": net.bias,
                    "reset": net.reset, "readout": net.readout, "sweepable": list(sweepable), "conv": conv},
        "B": int(B), "K": int(K), "duration": float(duration), "dt": float(dt), "encoder": encoder,
        "encoder_params": encoders[encoder].params(), "seed": seed,
        "record_output_every": None if record_output_every is None else float(record_output_every),
        # copies sharing input copies (`network.build`); absent otherwise, so other projects keep their keys
        **({"input_copies": int(input_copies)} if input_copies not in (None, B) else {}),
    }


# ---------------------------------------------------------------------------- manifest
def result_spec(device, owner, attr: str) -> dict:
    """Where a run writes ``owner.attr`` (a group's or monitor's variable) and how to read it."""
    var = owner.variables[attr]
    spec = {"file": device.get_array_filename(var), "dtype": np.dtype(var.dtype).str}
    if isinstance(var, DynamicArrayVariable) and var.ndim == 2:
        # a monitor's record: one row per recorded time, one column per recorded index
        spec.update(layout="rows", columns=int(len(owner.record)))
    elif isinstance(var, DynamicArrayVariable):
        spec["layout"] = "dynamic"
    else:
        spec.update(layout="fixed", size=int(var.size))
    return spec


def run_arg_spec(key, size: int) -> dict:
    """The command-line name and dtype of a run_args key (a group's variable or a TimedArray) that
    takes ``size`` values."""
    from brian2 import TimedArray
    if isinstance(key, TimedArray):
        return {"arg": f"{key.name}.values", "dtype": np.dtype(key.values.dtype).str, "shape": [int(size)]}
    return {"arg": f"{key.group_name}.{key.name}", "dtype": np.dtype(key.dtype).str, "shape": [int(size)]}


def write_run_args(manifest: dict, values: dict[str, np.ndarray], folder: Path) -> list[str]:
    """Write each run_args value to ``folder`` and return the binary's command-line arguments."""
    args = []
    for name, value in values.items():
        spec = manifest["run_args"][name]
        arr = np.ascontiguousarray(np.asarray(value, dtype=np.dtype(spec["dtype"])).reshape(-1))
        if arr.size != int(np.prod(spec["shape"])):
            raise ValueError(f"run_args {name!r}: {arr.size} values, the project takes {spec['shape']}")
        path = Path(folder) / f"{name.replace('/', '_')}.dat"
        arr.tofile(path)
        args.append(f"{spec['arg']}={path}")
    return args


class Results:
    """The output of one run, read from its results folder with the manifest's layout. ``get(name)``
    returns the values as Brian2 would (in SI units; a monitor's 2-D record as (indices, times))."""

    def __init__(self, manifest: dict, folder: Path):
        self.manifest, self.folder = manifest, Path(folder)

    def get(self, name: str) -> np.ndarray:
        spec = self.manifest["results"][name]
        path = self.folder / spec["file"]
        dtype = np.dtype(spec["dtype"])
        if not path.exists():  # Brian2's binary writes every result file, empty or not
            raise RuntimeError(f"results of {self.folder}: no {spec['file']} (for {name!r})")
        data = np.fromfile(path, dtype=dtype)
        if spec["layout"] == "rows":
            return data.reshape(-1, spec["columns"]).T
        if spec["layout"] == "fixed" and data.size != spec["size"]:
            raise RuntimeError(f"results of {self.folder}: {spec['file']} holds {data.size} values, expected "
                               f"{spec['size']}")
        return data
