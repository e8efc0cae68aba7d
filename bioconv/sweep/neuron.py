"""The neuron-level sweep: every point is one neuron of one NeuronGroup under a constant current
(its ``I_bias``) and, optionally, ``inputs`` regular input spike trains, all points of a shape
simulated in one compiled run.

Regular inputs (structural ``inputs`` = k > 0) are seed 003's Fig. 6 set-up: input j of a point fires
at n / f_in_j (n = 1, 2, ...; eq. 15) and deposits the charge w_in_j through a delta synapse
(V += w / Cm, lost while refractory). Both are per-point values (run_args), so a frequency grid is one
compiled run. The input spikes fall on the step a SpikeGeneratorGroup with those times would use
(`regular_input_threshold`), so a point gives the spikes of a direct Brian2 simulation of the same
trains (tests/test_sweep_inputs.py).

A shape is (neuron model, reset, inputs, dt, T, points per run). It is compiled once, with bioconv's C++
device, into a project kept in bioconv's project cache (`bioconv.simulate.cache`), and every task of
that shape launches the project's binary with the points' parameter values as run_args: on a Dask
worker no Brian2 object is built on a cache hit, and the workers of one host share the project.
Each run writes its inputs and results in a folder of its own.

Per point: the spike count, the time of the first spike, the rate from inter-spike intervals after
the first spike (the first interval starts from rest), and the analytic rate of FORMULAS §2
(`bioconv.analysis.lif_rate`; the perfect integrator is its gl = 0 case) at the point's mean drive
``I_bias + sum_j w_in_j f_in_j`` (with inputs only an approximation: it ignores their discreteness).
Rather than recording every spike time (10^5 neurons at hundreds of Hz would be GBs), a one-to-one
pathway into a recorder group keeps, per neuron, the count and the times of its first, second and
last spikes.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import brian2
import numpy as np
from brian2 import Hz, NeuronGroup, Network, Quantity, Synapses, coulomb, get_device, prefs, second
from brian2.codegen.cpp_prefs import get_compiler_and_args
from brian2.utils.logger import catch_logs

from .. import analysis, models
from ..simulate import cache, limits
from ..simulate.devices import build_root, simulation_device
from ..simulate.project import Results, result_spec, run_arg_spec, source_digest, toolchain, write_run_args
from .level import Level
from .params import Param, SweepSpecError

logger = logging.getLogger(__name__)

FORMAT = 2
_RECORDER = """
n_spikes : integer
t_first : second
t_second : second
t_last : second
"""
# Per spike of neuron i: count it, keep the times of the first and second spikes and of the latest one.
_ON_SPIKE = """
n_spikes_post += 1
t_first_post += int(n_spikes_post == 1) * (t - t_first_post)
t_second_post += int(n_spikes_post == 2) * (t - t_second_post)
t_last_post = t
"""
#: Spike n of a regular train at rate f falls at n / f; a SpikeGeneratorGroup given those times fires
#: it in step floor(n / (f dt) + 1e-3) (Brian2 shifts times by 1e-3 dt so that exact multiples of dt
#: stay in their own step). This threshold fires in exactly those steps, without a state that could
#: drift: step t/dt holds a spike when [t/dt - 1e-3, t/dt + 1 - 1e-3) contains some n / (f dt), n >= 1.
REGULAR_INPUT_THRESHOLD = "t > 0.5*dt and ceil((t + 0.999*dt)*rate) > ceil((t - 0.001*dt)*rate)"


class NeuronLevel(Level):
    """Single neurons under constant current; see the module's docstring."""

    name = "neuron"
    points_per_task = 10_000  # neurons per compiled run (one task)

    def structural(self) -> dict[str, Param]:
        return {
            "neuron": Param("neuron", "choice", choices=tuple(models.available("neuron")), structural=True,
                            default="conductance_lif", description="neuron model of equations/"),
            "reset": Param("reset", "choice", choices=("linear", "value"), structural=True, default="value",
                           description="reset mode"),
            # default None: no inputs, and no 'inputs' key in a point's config (configs of sweeps
            # made before inputs existed keep their hashes)
            "inputs": Param("inputs", "int", structural=True, constraint="nonnegative", default=None,
                            description="regular input spike trains per neuron, each through a delta synapse "
                                        "(seed 003 Fig. 6); per point f_in_j and w_in_j"),
            "dt": Param("dt", "quantity", dim=second.dim, structural=True, constraint="positive", default="0.1 ms",
                        description="simulation time step"),
            "T": Param("T", "quantity", dim=second.dim, structural=True, constraint="positive", default="1 s",
                       description="simulated time per point"),
        }

    def parameters(self, structure: dict) -> dict[str, Param]:
        model = models.load(structure["neuron"])
        if structure["reset"] not in model.resets:
            raise SweepSpecError(f"neuron model {model.name!r} has no reset {structure['reset']!r}; "
                                 f"available: {sorted(model.resets)}")
        out = {name: Param(name, "quantity", dim=p.dim, constraint=p.constraint or None, default=p.default,
                           description=p.description) for name, p in model.parameters.items()}
        for j in range(1, n_inputs(structure) + 1):
            out[f"f_in_{j}"] = Param(f"f_in_{j}", "quantity", dim=Hz.dim, constraint="nonnegative", default="0 Hz",
                                     description=f"rate of regular input {j} (spikes at n / f_in_{j})")
            out[f"w_in_{j}"] = Param(f"w_in_{j}", "quantity", dim=coulomb.dim, default="0 pcoulomb",
                                     description=f"charge input {j} deposits per spike (delta synapse)")
        return out

    def _rules(self, structure: dict, c: dict) -> list[tuple[np.ndarray, str]]:
        n = len(next(iter(c.values())))
        rules = [(np.asarray(c["v_reset"] >= c["v_th"]), "v_reset must lie below v_th")]
        if "gl" in c:
            rules.append((np.asarray(c["gl"] == 0), "gl = 0 makes the exact solution of the leaky membrane divide "
                                                    "by zero; sweep the 'perfect_integrator' model for gl = 0"))
        if structure["dt"] >= structure["T"]:
            rules.append((np.ones(n, bool), f"dt = {structure['dt']} s is not below T = {structure['T']} s"))
        for j in range(1, n_inputs(structure) + 1):
            if f"f_in_{j}" in c:  # the train needs at most one spike per step to be regular
                rules.append((np.asarray(c[f"f_in_{j}"] * structure["dt"] >= 1),
                              f"f_in_{j} x dt must stay below 1 (one input spike per step at most)"))
        return rules

    def check(self, structure, columns):
        bad = np.zeros(len(next(iter(columns.values()))), bool)
        for mask, _ in self._rules(structure, columns):
            bad |= mask
        return bad

    def reason(self, structure, columns):
        return "; ".join(text for mask, text in self._rules(structure, columns) if np.any(mask))

    def evaluate(self, structure: dict, points: list[dict], *, size: int | None = None) -> list[dict]:
        model = models.load(structure["neuron"])
        n = max(len(points), size or 0)
        values = {}
        for name in self.parameters(structure):
            col = np.array([pt[name] for pt in points], dtype=float)
            values[name] = np.concatenate([col, np.full(n - len(points), col[0])])  # padding: dropped
        counts, t_first, t_second, t_last, info = run_points(structure, model, values)
        k = len(points)
        counts, t_first, t_second, t_last = counts[:k], t_first[:k], t_second[:k], t_last[:k]
        finite = np.asarray(info["v_finite"][:k], bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            isi = np.where(counts >= 3, (counts - 2) / (t_last - t_second), np.nan)
        drive = values["I_bias"][:k] + sum(values[f"w_in_{j}"][:k] * values[f"f_in_{j}"][:k]
                                           for j in range(1, n_inputs(structure) + 1))
        analytic = np.asarray(analysis.lif_rate(
            drive * brian2.amp, values["Cm"][:k] * brian2.farad,
            values["gl"][:k] * brian2.siemens if "gl" in values else 0 * brian2.siemens,
            values["EL"][:k] * brian2.volt if "EL" in values else 0 * brian2.volt,
            values["v_th"][:k] * brian2.volt, values["v_reset"][:k] * brian2.volt,
            values["tau_ref"][:k] * second))
        T = float(structure["T"])
        rows = []
        for j in range(k):
            if not finite[j]:  # this point's membrane diverged: an error row for it alone
                rows.append({"error": f"neuron sweep: NaN or infinite membrane potential v at the end of the run "
                                      f"(point {j} of the task; its values: "
                                      f"{ {n: float(values[n][j]) for n in sorted(values)} })"})
                continue
            rows.append({"n_spikes": int(counts[j]), "count_rate_Hz": float(counts[j] / T), "isi_rate_Hz": float(isi[j]),
                         "t_first_s": float(t_first[j]) if counts[j] else float("nan"),
                         "drive_A": float(drive[j]), "analytic_rate_Hz": float(analytic[j]),
                         "isi_rel_error": float(isi[j] / analytic[j] - 1) if analytic[j] > 0 else float("nan"),
                         "cache_hit": info["cache_hit"], "run_s": info["run_s"], "build_s": info["build_s"],
                         "points_in_run": n})
        return rows


def _key_parts(structure: dict, model_name: str, n: int) -> dict:
    """Everything that shapes this project's code (called with the device's preferences set)."""
    launch_only = {"devices.cpp_standalone.run_cmd_unix", "devices.cpp_standalone.run_environment_variables"}
    dev_prefs = {name: str(prefs[name]) for name in sorted(prefs)
                 if name.startswith(("codegen.", "core.", "legacy.", "devices.cpp_standalone.",
                                     "devices.bioconv_standalone.")) and name not in launch_only}
    return {"format": FORMAT, "kind": "bioconv.sweep.neuron", "bioconv": source_digest(), "brian2": brian2.__version__,
            "toolchain": toolchain(), "compiler_and_args": [str(a) for a in get_compiler_and_args()],
            "prefs": dev_prefs, "neuron": model_name, "reset": structure["reset"], "inputs": n_inputs(structure),
            "dt": float(structure["dt"]), "T": float(structure["T"]), "n": int(n)}


def n_inputs(structure: dict) -> int:
    """Regular input trains per neuron of a shape (``inputs``; None, not given, is none)."""
    return int(structure.get("inputs") or 0)


def _compile(structure: dict, model, values: dict, folder: Path, key: str) -> dict:
    """Build the group, its inputs, its recorder and the pathway into it; compile; return the manifest."""
    n = len(next(iter(values.values())))
    params = {name: Quantity(v, dim=model.parameters[name].dim) for name, v in values.items()
              if name in model.parameters}
    k = n_inputs(structure)
    g = models.neuron_group(n, model, "delta" if k else None, reset=structure["reset"], name="sweep_neurons",
                            **params)
    objects = [g]
    owners = {f"param/{name}": getattr(g, name) for name in model.parameters}
    for j in range(1, k + 1):
        src = NeuronGroup(n, "rate : Hz", threshold=REGULAR_INPUT_THRESHOLD, reset="", name=f"regular_input_{j}")
        src.rate = values[f"f_in_{j}"] * Hz
        # tau_ref is a per-neuron run_arg: the full refractoriness test, whatever the build's values
        syn_in = models.synapses(src, g, "delta", i=np.arange(n), j=np.arange(n),
                                 w=values[f"w_in_{j}"] * coulomb, name=f"input_synapses_{j}")
        objects += [src, syn_in]
        owners[f"param/f_in_{j}"], owners[f"param/w_in_{j}"] = src.rate, syn_in.w
    rec = NeuronGroup(n, _RECORDER, name="isi_recorder")
    syn = Synapses(g, rec, on_pre=_ON_SPIKE, name="isi_pathway")
    syn.connect(j="i")
    objects += [rec, syn]
    dev = get_device()
    with catch_logs() as logs:
        Network(*objects).run(float(structure["T"]) * second, namespace={})
        dev.build(directory=str(folder), compile=True, run=False, with_output=False)
    for level, name, message in logs:
        # the recorder's in-place updates read and write one target per synapse (one-to-one): no ordering issue
        if "abstract code block" not in message:
            logger.warning("%s: %s", name, message)
    run_args = {name: dict(run_arg_spec(view, n), unit=str(view.dim)) for name, view in owners.items()}
    # initial values that name a parameter (v = EL) follow it: set at launch, after Brian2's own set-up
    for var, expr in model.initial.items():
        if str(expr).strip() in values:
            run_args[f"init/{var}"] = dict(run_arg_spec(getattr(g, var), n), unit=str(g.variables[var].dim),
                                           parameter=str(expr).strip())
    results = {name: result_spec(dev, rec, name) for name in ("n_spikes", "t_first", "t_second", "t_last")}
    results["state/v"] = result_spec(dev, g, "v")
    return {"format": FORMAT, "key": key, "binary": "main", "run_args": run_args, "results": results,
            "summary": {"kind": "neuron sweep", "neuron": model.name, "reset": structure["reset"], "inputs": k,
                        "dt_s": float(structure["dt"]), "T_s": float(structure["T"]), "neurons": n}}


def run_points(structure: dict, model, values: dict[str, np.ndarray], run_limit: float | None = None):
    """Run one group holding every point (``values``: SI arrays by parameter, one value per neuron).
    Returns (counts, t_first, t_second, t_last, info) with info's ``cache_hit``, ``build_s``, ``run_s`` and
    ``v_finite`` (per neuron: whether its v ended finite)."""
    n = len(next(iter(values.values())))
    t0 = time.perf_counter()
    own_folder = None
    with simulation_device("cpp", dt=float(structure["dt"]) * second, threads=1, build_on_run=False) as folder:
        key = cache.project_key(_key_parts(structure, model.name, n))
        if cache.enabled():
            with cache.locked(key) as hit:
                if hit is not None:
                    project, cache_hit = hit, True
                    manifest = json.loads((hit / cache.MANIFEST).read_text())
                    cache.touch(hit)
                else:
                    manifest = _compile(structure, model, values, Path(folder), key)
                    files = ["main"] + [f"static_arrays/{f}" for f in sorted(os.listdir(Path(folder) / "static_arrays"))]
                    project, cache_hit = cache.store(key, Path(folder), files, manifest), False
                    logger.info("neuron sweep: compiled project %s (%d points) cached", key, n)
        else:  # no cache: compile in a folder of this call, kept until the run is done
            own_folder = Path(tempfile.mkdtemp(prefix="neuron-sweep-", dir=build_root()))
            manifest = _compile(structure, model, values, own_folder, key)
            project, cache_hit = own_folder, False
    build_s = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        if cache.enabled():
            with cache.in_use(key):
                res = _launch(project, manifest, values, run_limit)
        else:
            res = _launch(project, manifest, values, run_limit)
        run_s = time.perf_counter() - t1
    finally:
        if own_folder is not None:
            shutil.rmtree(own_folder, ignore_errors=True)
    counts, t_first, t_second, t_last, v = res
    return counts, t_first, t_second, t_last, {"cache_hit": cache_hit, "build_s": build_s, "run_s": run_s,
                                      "v_finite": np.isfinite(np.asarray(v, dtype=float))}


def _launch(project: Path, manifest: dict, values: dict, run_limit):
    """Run the project's binary once with the points' values, in a results folder of its own."""
    results = Path(tempfile.mkdtemp(prefix="neuron-run-", dir=build_root()))
    try:
        args = {}
        for name, spec in manifest["run_args"].items():
            args[name] = values[spec["parameter"]] if name.startswith("init/") else values[name[len("param/"):]]
        cmd = [f"./{manifest['binary']}", "--results_dir", f"{results}{os.sep}"] + write_run_args(manifest, args, results)
        env = dict(os.environ, **prefs["devices.cpp_standalone.run_environment_variables"], BIOCONV_SKIP_STATIC_OUTPUT="1")
        with open(results / "stdout.txt", "w") as out:
            proc = subprocess.Popen(cmd, cwd=project, stdout=out, stderr=subprocess.STDOUT, env=env)
            rc = limits.wait(proc, limits.check_limit(run_limit, "neuron sweep: run_limit"), project)
        log = (results / "stdout.txt").read_text()
        bad = [line for line in log.splitlines() if line.startswith(("Error", "Could not"))]
        if rc or bad:
            raise RuntimeError(f"neuron sweep: the run of project {project} failed (exit code {rc}):\n"
                               + ("\n".join(bad[:20]) or log[-2000:]))
        got = Results(manifest, results)
        return got.get("n_spikes"), got.get("t_first"), got.get("t_second"), got.get("t_last"), got.get("state/v")
    finally:
        shutil.rmtree(results, ignore_errors=True)
