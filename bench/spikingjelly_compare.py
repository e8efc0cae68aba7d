"""Benchmark: bioconv against SpikingJelly's ann2snn, side by side in one run, on the same trained networks
and the same digits.

    python bench/spikingjelly_compare.py [--networks convnet mlp] [--n 1000] [--T 320] [--dt 0.1]
                                         [--rate-max 200] [--variants layerwise prepool]
                                         [--settings budget dt] [--sj-max-s 600] [--threads N]

The defaults are the acceptance settings of issue 10: rate_max = 200 Hz, T = 320 ms, dt = 0.1 ms.
- bioconv: `convert` (p99.9 normalization on 4000 training digits) and `SNN.evaluate` with its
  defaults (device cpp, regular input, count readout) at T and dt, with a cold compile: bioconv's
  compiled-project cache ($BIOCONV_PROJECT_CACHE_DIR) points at an empty temporary folder during the run, so
  no compiled project can be reused (the notes column shows ``cache_hit``).
- SpikingJelly 2.0.0: `ann2snn.Converter(recipe=RateCodingRecipe(loader, mode="99.9%", ...))` on the
  same 4000 digits, then its usual evaluation: the image as a constant analog input every step,
  integrate-and-fire neurons with soft reset (threshold 1), the output layer's values summed over the
  steps, argmax. Two recipes (``--variants``): ``layerwise`` (its default: one threshold per layer,
  MaxPool2d applied to spike maps) and ``prepool`` (``channel_wise=True, pre_spike_maxpool=True``:
  thresholds per channel, max pooling applied to the analog input of the spiking neuron). Two step
  counts (``--settings``): ``budget``, rate_max x T steps (matched spike budget: at most one spike per
  step, as bioconv's neurons fire at most rate_max x T times at activation 1), and ``dt``, T / dt steps
  (matched time resolution). The long run also records its decisions at the budget's step count,
  which must equal the short run's on the same digits (reported).

Wall time includes the conversion (calibration) for both, and for bioconv the build and compile.
A SpikingJelly run stops after the batch that would take it past ``--sj-max-s`` seconds of simulation;
its row then states how many digits it ran, and bioconv's accuracy on those same digits.

SpikingJelly is optional: without it the bioconv rows still run and the SpikingJelly rows are skipped
with a message. Install it beside torch 2.13.0 with the command in `SJ_INSTALL` (never a plain
``pip install spikingjelly``: its dependencies pull another torch and CUDA wheels).

Writes bench/results/spikingjelly_compare.{md,csv} after every row.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from brian2 import Hz, ms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bioconv import data, zoo  # noqa: E402
from bioconv.converter import convert  # noqa: E402
from bioconv.simulate.devices import available_cores  # noqa: E402

from _report import write  # noqa: E402

NETWORKS = {"convnet": zoo.mnist_convnet, "mlp": zoo.mnist_mlp}
SJ_INSTALL = ('.venv/bin/pip install --no-deps spikingjelly==2.0.0 && '
              '.venv/bin/pip install "numpy>=2.3,<2.4" scipy tqdm loguru packaging requests')
# RateCodingRecipe keyword arguments of each compared recipe, and how the table names it.
VARIANTS = {
    "layerwise": ({}, "RateCodingRecipe default: layer-wise thresholds, max-pool on spikes"),
    "prepool": (dict(channel_wise=True, pre_spike_maxpool=True),
                "channel_wise=True, pre_spike_maxpool=True"),
}
# Images per SpikingJelly batch, the fastest measured on 2 cores (ConvNet: 50-100 ~67 ms per step
# of 1000 images, 250 75 ms, 1000 119 ms; MLP: 100 6.5 ms, 1000 2.8 ms).
SJ_BATCH = {"convnet": 100, "mlp": 1000}
CALIBRATION = 4000  # training digits for both converters' normalization
CAL_BATCH = 100


_IMPORT_S = []  # seconds the first import of SpikingJelly took in this process


def spikingjelly_missing() -> str | None:
    """None when SpikingJelly's ann2snn imports; otherwise the message to print when skipping."""
    try:
        t0 = time.perf_counter()
        from spikingjelly.activation_based import ann2snn, functional  # noqa: F401
        _IMPORT_S.append(time.perf_counter() - t0)
    except ImportError as e:
        return (f"SpikingJelly is not installed ({e}): skipping the SpikingJelly comparison. Install it into the "
                f"environment with: {SJ_INSTALL}")
    return None


def spikingjelly_version() -> str:
    from importlib.metadata import version
    return version("spikingjelly")


def warm_up_spikingjelly():
    """Import SpikingJelly and run one tiny conversion and step, so that lazy imports and first-call
    set-up (once per process) are not charged to the first timed row. Returns its seconds, with the
    first import's."""
    t0 = time.perf_counter()
    from spikingjelly.activation_based import ann2snn, functional
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    loader = [torch.rand(8, 4)]
    with _quiet():
        snn = ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(loader, mode="99.9%"), device="cpu").convert(net)
    with torch.no_grad():
        functional.reset_net(snn)
        snn(torch.rand(2, 4))
    return time.perf_counter() - t0 + (_IMPORT_S[0] if _IMPORT_S else 0.0)


@contextlib.contextmanager
def _quiet():
    """SpikingJelly's calibration prints a progress bar and a loguru line per conversion."""
    try:
        from loguru import logger
        logger.disable("spikingjelly")
    except ImportError:
        logger = None
    try:
        yield
    finally:
        if logger is not None:
            logger.enable("spikingjelly")


def run_spikingjelly(model, x_cal, x, variant, steps, *, batch, max_s=None, check_steps=(), mode="99.9%",
                     workers=1):
    """Convert ``model`` with SpikingJelly's RateCodingRecipe and run it for ``steps`` steps on ``x``.

    Returns dict(convert_s, batch, sim_s, n (digits run), pred (n,), pred_at {step: (n,)} for ``check_steps``).
    Stops after the batch that would take the simulation past ``max_s`` seconds (at least one batch).
    ``workers`` > 1: the batches go round-robin to that many processes of one torch thread each
    (`_sj_worker.py`, the converted network pickled to them); sim_s then includes their start-up.
    """
    from spikingjelly.activation_based import ann2snn, functional
    kwargs = VARIANTS[variant][0]
    loader = [torch.from_numpy(np.ascontiguousarray(x_cal[k:k + CAL_BATCH])) for k in range(0, len(x_cal), CAL_BATCH)]
    t0 = time.perf_counter()
    with _quiet(), open(os.devnull, "w") as null, contextlib.redirect_stderr(null):  # calibration's tqdm bar
        snn = ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(loader, mode=mode, **kwargs),
                                device="cpu").convert(copy.deepcopy(model))
    snn.eval()
    convert_s = time.perf_counter() - t0
    if workers > 1:
        batch = min(batch, -(-len(x) // workers))  # every worker gets at least one batch
        return dict(convert_s=convert_s, batch=batch, **_run_in_workers(snn, x, steps, batch=batch, max_s=max_s,
                                                           check_steps=[s for s in check_steps if s < steps],
                                                           workers=workers))
    preds, preds_at = [], {s: [] for s in check_steps if s < steps}
    t0 = time.perf_counter()
    n = 0
    with torch.no_grad():
        for k in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[k:k + batch]))
            functional.reset_net(snn)
            out = None
            for t in range(1, steps + 1):
                step = snn(xb)
                out = step if out is None else out + step
                if t in preds_at:
                    preds_at[t].append(out.argmax(1).numpy())
            preds.append(out.argmax(1).numpy())
            n += len(xb)
            elapsed = time.perf_counter() - t0
            if max_s is not None and n < len(x) and elapsed * (n + batch) / n > max_s:
                print(f"  SpikingJelly {variant}, {steps} steps: stopping after {n} digits ({elapsed:.0f} s; "
                      f"the next batch would pass --sj-max-s {max_s:g} s)", flush=True)
                break
    sim_s = time.perf_counter() - t0
    return dict(convert_s=convert_s, batch=batch, sim_s=sim_s, n=n, pred=np.concatenate(preds),
                pred_at={s: np.concatenate(p) for s, p in preds_at.items()})


def _run_in_workers(snn, x, steps, *, batch, max_s, check_steps, workers):
    import pickle
    import subprocess
    t0 = time.perf_counter()
    starts = list(range(0, len(x), batch))
    with tempfile.TemporaryDirectory(prefix="sj-workers-") as tmp:
        folder = Path(tmp)
        (folder / "model.pkl").write_bytes(pickle.dumps(snn))
        for w in range(workers):
            job = dict(steps=steps, check_steps=check_steps, max_s=max_s,
                       batches=[(j, np.ascontiguousarray(x[k:k + batch])) for j, k in enumerate(starts)
                                if j % workers == w])
            (folder / f"job-{w}.pkl").write_bytes(pickle.dumps(job))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        procs = [subprocess.Popen([sys.executable, str(Path(__file__).with_name("_sj_worker.py")), tmp, str(w)],
                                  env=env) for w in range(min(workers, len(starts)))]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise RuntimeError(f"SpikingJelly worker failed (exit codes {codes})")
        done = {}
        for w in range(len(procs)):
            for j, pred, at in pickle.loads((folder / f"result-{w}.pkl").read_bytes()):
                done[j] = (pred, at)
    sim_s = time.perf_counter() - t0
    prefix = 0  # the leading batches all finished: the digits the row reports
    while prefix in done:
        prefix += 1
    if prefix < len(starts):
        print(f"  SpikingJelly, {steps} steps: the first {prefix} batches finished within --sj-max-s {max_s:g} s",
              flush=True)
    preds = [done[j][0] for j in range(prefix)]
    return dict(sim_s=sim_s, n=int(sum(len(p) for p in preds)), pred=np.concatenate(preds),
                pred_at={s: np.concatenate([done[j][1][s] for j in range(prefix)]) for s in check_steps})


@contextlib.contextmanager
def cold_bioconv_cache():
    """Point bioconv's compiled-project cache ($BIOCONV_PROJECT_CACHE_DIR, `bioconv.simulate.cache`) at an empty
    temporary folder: the run compiles from scratch and nothing compiled earlier can be reused
    ($BIOCONV_CACHE, the zoo's folder, is left alone)."""
    old = os.environ.get("BIOCONV_PROJECT_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bioconv-cold-cache-") as tmp:
        os.environ["BIOCONV_PROJECT_CACHE_DIR"] = tmp
        try:
            yield tmp
        finally:
            if old is None:
                os.environ.pop("BIOCONV_PROJECT_CACHE_DIR", None)
            else:
                os.environ["BIOCONV_PROJECT_CACHE_DIR"] = old


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (bioconv's compiler and binaries): the
    work a row did, less sensitive than wall time to other jobs on shared cores."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def load() -> float:
    return os.getloadavg()[0]


def revision() -> str:
    """The commit of the bioconv code measured, and whether bioconv/ differed from it."""
    import subprocess
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bioconv"], cwd=root, capture_output=True,
                               text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"commit {head}" + (" with uncommitted changes in bioconv/" if dirty else "")


def steps_for(setting, T_ms, dt_ms, rate_max_hz):
    if setting == "budget":
        return int(round(rate_max_hz * T_ms / 1000.0))
    return int(round(T_ms / dt_ms))


def throughput_rows(name, model, x_cal, x, y, *, T_ms, dt_ms, rate_max_hz=200.0, naive_per_image=None,
                    variants=("layerwise", "prepool"), threads=None):
    """SpikingJelly rows in `conversion_throughput`'s layout (wall without the conversion, which goes in
    convert_s): both step counts, both recipes. Empty, with a message printed, without SpikingJelly."""
    missing = spikingjelly_missing()
    if missing:
        print(missing, flush=True)
        return []
    if threads:
        torch.set_num_threads(int(threads))
    warm_up_spikingjelly()
    ann_pred = _ann_predictions(model, x)
    rows = []
    for setting in ("budget", "dt"):
        steps = steps_for(setting, T_ms, dt_ms, rate_max_hz)
        for variant in variants:
            r = run_spikingjelly(model, x_cal, x, variant, steps, batch=SJ_BATCH.get(name, 100))
            what = (f"matched budget {rate_max_hz:g} Hz x {T_ms:g} ms" if setting == "budget"
                    else f"matched dt {dt_ms:g} ms")
            row = dict(network=name, device=f"SpikingJelly {spikingjelly_version()} ann2snn (CPU), {steps} steps "
                       f"({what}), {variant}", images=r["n"], cores=torch.get_num_threads(),
                       batch=SJ_BATCH.get(name, 100), wall_s=r["sim_s"], images_per_s=r["n"] / r["sim_s"],
                       accuracy=float(np.mean(r["pred"] == y[:r["n"]])),
                       agreement=float(np.mean(r["pred"] == ann_pred[:r["n"]])), convert_s=r["convert_s"])
            if naive_per_image:
                row["x_naive"] = naive_per_image / (r["sim_s"] / r["n"])
            rows.append(row)
    return rows


@torch.no_grad()
def _ann_predictions(model, x):
    return model(torch.from_numpy(np.ascontiguousarray(x))).argmax(1).numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", nargs="+", default=["convnet", "mlp"], choices=sorted(NETWORKS))
    ap.add_argument("--n", type=int, default=1000, help="held-out test digits")
    ap.add_argument("--T", type=float, default=320.0, help="bioconv presentation time, ms")
    ap.add_argument("--dt", type=float, default=0.1, help="bioconv time step, ms")
    ap.add_argument("--rate-max", type=float, default=200.0, help="bioconv rate of activation 1, Hz")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                    help="SpikingJelly recipes: layerwise (default recipe), prepool (channel_wise, pre_spike_maxpool)")
    ap.add_argument("--settings", nargs="+", default=["budget", "dt"], choices=["budget", "dt"],
                    help="SpikingJelly step counts: budget = rate_max x T, dt = T / dt")
    ap.add_argument("--sj-max-s", type=float, default=600.0,
                    help="stop a SpikingJelly run after the batch that would pass this many seconds of simulation")
    ap.add_argument("--sj-batch", type=int, default=None, help=f"SpikingJelly images per batch (default {SJ_BATCH})")
    ap.add_argument("--sj-workers", type=int, default=1,
                    help="1: SpikingJelly in this process with --threads torch threads; N > 1: N processes of one "
                         "torch thread each (robust when other jobs share the cores)")
    ap.add_argument("--out", default="spikingjelly_compare", help="results name: bench/results/OUT.{md,csv}")
    ap.add_argument("--sj-mode", default="99.9%", help="RateCodingRecipe mode (bioconv's default normalization is p99.9)")
    ap.add_argument("--threads", type=int, default=None,
                    help="cores for both: bioconv's evaluate threads and torch's threads (default: all cores)")
    ap.add_argument("--no-bioconv", action="store_true", help="run only the SpikingJelly rows")
    ap.add_argument("--note", default="", help="text added to the table's header (e.g. which code was measured)")
    args = ap.parse_args(argv)
    logging.getLogger("brian2").setLevel(logging.ERROR)
    threads = available_cores() if args.threads is None else args.threads
    torch.set_num_threads(threads)
    split = data.mnist_subset()
    x, y = split.x_test[:args.n], split.y_test[:args.n]
    x_cal = split.x_train[:CALIBRATION]
    T, dt, rmax = args.T, args.dt, args.rate_max
    cmd = "python bench/spikingjelly_compare.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    missing = spikingjelly_missing()
    if missing:
        print(missing, flush=True)
    warm_s = None if missing else warm_up_spikingjelly()
    models = {name: NETWORKS[name]() for name in args.networks}  # trained once, then from the zoo cache
    rows = []
    notes = (
        f"bioconv code: {revision()}. {args.note + ' ' if args.note else ''}"
        f"**Shared machine**: its {os.cpu_count()} cores were shared with other agents compiling and running tests "
        f"while this ran (see load_1min), so timings are noisy; all rows ran in the same process, one after another. "
        f"{threads} cores for each side (bioconv: `evaluate(threads={threads})`; SpikingJelly: "
        + (f"torch with {threads} threads in this process). " if args.sj_workers == 1 else
           f"{args.sj_workers} processes of one torch thread each, the converted network pickled to them, their "
           f"start-up in sim_s). ")
        + f"bioconv: `convert` (p99.9, {CALIBRATION} training digits, rate_max = {rmax:g} Hz) then `evaluate` "
        f"with its defaults (cpp, regular input, count readout), T = {T:g} ms, dt = {dt:g} ms, cold compile "
        f"($BIOCONV_PROJECT_CACHE_DIR: an empty folder). SpikingJelly "
        + ("(not installed: rows skipped)" if missing else f"{spikingjelly_version()}")
        + f": `ann2snn.Converter(recipe=RateCodingRecipe(loader, mode={args.sj_mode!r}, ...))` on the same "
        f"{CALIBRATION} digits (batches of {CAL_BATCH}), CPU, the image as a constant analog input every step, "
        f"IF neurons (soft reset), output-layer values summed over the steps (no output spikes), argmax. "
        f"Budget steps = rate_max x T = {steps_for('budget', T, dt, rmax)}; matched-dt steps = T / dt = "
        f"{steps_for('dt', T, dt, rmax)}. wall_s = conversion + (bioconv) build/compile + simulation; "
        f"images_per_s = digits / wall_s; sim_ms_per_image excludes conversion and compile. speed_vs_bioconv = "
        f"this row's images/s / bioconv's images/s on the same network (> 1: faster than bioconv). "
        f"bioconv_acc_same_digits: bioconv's accuracy on the digits the row ran. cpu_s: CPU seconds of the "
        f"row (this process and its children: bioconv's compiler and binaries), less sensitive to the other jobs "
        f"than wall time; cpu_speed_vs_bioconv compares CPU seconds per image. load_1min: the machine's "
        f"1-minute load average at the row's start and end. "
        + (f"SpikingJelly's one-time warm-up in the process ({warm_s:.1f} s, imports and first call) is not in "
           f"the rows; SpikingJelly ran its IF neurons with its CPU implementation (`torch-reference` in its log)." if warm_s is not None else ""))

    def emit(row):
        rows.append(row)
        write(args.out, rows, cmd.strip(), notes)

    for name, model in models.items():
        ann_pred = _ann_predictions(model, x)
        ann_acc = float(np.mean(ann_pred == y))
        bio = None
        if not args.no_bioconv:
            load0, cpu0 = load(), cpu_seconds()
            with cold_bioconv_cache():
                t0 = time.perf_counter()
                snn = convert(model, x_cal, rate_max=rmax * Hz)
                convert_s = time.perf_counter() - t0
                res = snn.evaluate(x, y, duration=T * ms, dt=dt * ms, threads=threads, progress=True)
            cpu = cpu_seconds() - cpu0
            cache = {k: v for k, v in res.settings.items() if "cache" in k.lower()}
            bio = dict(pred=res.predictions[:, -1], images_per_s=len(x) / (convert_s + res.wall_s),
                       cpu_per_image=cpu / len(x))
            emit(dict(network=name, simulator="bioconv (cpp, regular, count)",
                      setting=f"T = {T:g} ms, dt = {dt:g} ms, rate_max {rmax:g} Hz", steps=int(round(T / dt)),
                      digits=len(x), convert_s=convert_s, build_compile_s=res.build_s,
                      sim_s=res.wall_s - res.build_s, wall_s=convert_s + res.wall_s,
                      images_per_s=bio["images_per_s"], sim_ms_per_image=1e3 * (res.wall_s - res.build_s) / len(x),
                      accuracy=res.accuracy, ann_agreement=res.agreement, ann_accuracy=ann_acc,
                      bioconv_acc_same_digits=res.accuracy, speed_vs_bioconv=1.0, cpu_s=cpu,
                      cpu_speed_vs_bioconv=1.0, load_1min=f"{load0:.1f} -> {load():.1f}",
                      notes=(f"{res.settings['batch']} copies x {res.settings['presentations']} in sequence, "
                             f"{res.settings['parallel_runs']} runs at once"
                             + "".join(f"; {k}={v}" for k, v in cache.items())
                             + ("; WARNING: a cached project was reused, the compile was not cold"
                                if any(v is True or (isinstance(v, (list, tuple)) and True in v)
                                       for v in cache.values()) else ""))))
        if missing:
            continue
        budget = steps_for("budget", T, dt, rmax)
        short = {}
        for setting in args.settings:
            steps = steps_for(setting, T, dt, rmax)
            for variant in args.variants:
                batch = args.sj_batch or SJ_BATCH[name]
                print(f"{name}: SpikingJelly {variant}, {steps} steps, {len(x)} digits, batches of {batch}",
                      flush=True)
                load0, cpu0 = load(), cpu_seconds()
                r = run_spikingjelly(model, x_cal, x, variant, steps, batch=batch, max_s=args.sj_max_s,
                                     check_steps=(budget,), mode=args.sj_mode, workers=args.sj_workers)
                cpu = cpu_seconds() - cpu0
                m = r["n"]
                wall = r["convert_s"] + r["sim_s"]
                note = f"batches of {r['batch']}"
                if m < len(x):
                    note += f"; only the first {m} digits (time cap {args.sj_max_s:g} s)"
                if setting == "budget":
                    short[variant] = r["pred"]
                elif budget in r["pred_at"] and variant in short:
                    k = min(len(short[variant]), m)
                    same = bool(np.array_equal(r["pred_at"][budget][:k], short[variant][:k]))
                    note += f"; decisions at step {budget} {'equal' if same else 'DIFFER from'} the {budget}-step run's"
                if name == "mlp" and variant == "prepool":
                    note += "; no pooling in the MLP: channel-wise = one threshold per neuron"
                emit(dict(network=name, simulator=f"SpikingJelly ann2snn: {VARIANTS[variant][1]}",
                          setting=("matched spike budget" if setting == "budget" else "matched time resolution"),
                          steps=steps, digits=m, convert_s=r["convert_s"], build_compile_s=float("nan"),
                          sim_s=r["sim_s"], wall_s=wall, images_per_s=m / wall,
                          sim_ms_per_image=1e3 * r["sim_s"] / m,
                          accuracy=float(np.mean(r["pred"] == y[:m])),
                          ann_agreement=float(np.mean(r["pred"] == ann_pred[:m])), ann_accuracy=ann_acc,
                          bioconv_acc_same_digits=(float(np.mean(bio["pred"][:m] == y[:m])) if bio else float("nan")),
                          speed_vs_bioconv=(m / wall / bio["images_per_s"] if bio else float("nan")), cpu_s=cpu,
                          cpu_speed_vs_bioconv=(bio["cpu_per_image"] / (cpu / m) if bio else float("nan")),
                          load_1min=f"{load0:.1f} -> {load():.1f}", notes=note))
    return rows


if __name__ == "__main__":
    main()
