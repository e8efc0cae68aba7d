"""Benchmark (issue 15's acceptance): a network-level sweep Cm x gl x tau_ref (27 points) on the MNIST
MLP, 300 test digits, T = 200 ms, dt = 0.1 ms, side by side in one run:

1. 27 `convert` + `SNN.evaluate` calls, one per point (the default conversion with the point applied
   by `sweepable.apply_point`, so that both ways compute the same points), with the project cache
   disabled (BIOCONV_PROJECT_CACHE=off): every point builds and compiles its own specialized network;
2. the same 27 calls with the cache on, cold (they fill it), then
3. again, now hitting the cache (no build, no compile);
4. `bioconv.sweep.run` on a LocalCluster of 1 worker, and 5. of 2 workers, each from a cold cache
   of its own: the sweepable network is compiled once (the rows' cache_hit column shows it) and
   the points run as copies of it;
6. the 2-worker sweep again into a new store, its project now in the cache: what a sweep costs
   once its shape is compiled, beside row 3, where the calls' 27 projects are.

    python bench/sweep_throughput.py [--n-test 300] [--T 200] [--points 27] [--points-per-task N]

Writes bench/results/sweep_throughput.{md,csv}. Each row's accuracy spread is printed so that a
speed-up is not bought with other results (the sweep's points are the same points as the calls').
The machine is shared: the load average at the start and end is in the notes.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from brian2 import ms, nS, pF

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bioconv import convert, data, sweep, zoo  # noqa: E402
from bioconv.simulate.sweepable import apply_point  # noqa: E402

from _report import write  # noqa: E402

CM_PF, GL_NS, TAU_REF_MS = (80, 100, 125), (0, 1, 2), (0, 0.5, 1)


def grid():
    return [dict(Cm=c * pF, gl=g * nS, tau_ref=t * ms) for c, g, t in itertools.product(CM_PF, GL_NS, TAU_REF_MS)]


def per_call(points, ann, split, args, cache: str) -> dict:
    """One convert + evaluate per point (the way without sweeps)."""
    os.environ["BIOCONV_PROJECT_CACHE"] = cache
    x, y = split.x_test[:args.n_test], split.y_test[:args.n_test]
    acc, hits, t0 = [], [], time.perf_counter()
    for p in points:
        # the same point as the sweep's: the mapping of the default conversion, then the point's values as
        # `sweepable` defines them (Cm holds the charges, gl is an added leak), in a specialized build
        snn = convert(ann, split.x_train[:args.n_calibration], bias="current")
        snn.mapped = apply_point(snn.mapped, p)
        res = snn.evaluate(x, y, duration=args.T * ms, dt=0.1 * ms, encoder="regular", device="cpp", progress=False)
        acc.append(res.accuracy)
        hits += list(res.settings.get("cache_hit", []))
    return {"wall_s": time.perf_counter() - t0, "accuracy": np.array(acc), "compiles": sum(not h for h in hits)}


def swept(points, args, workers: int, store: Path) -> dict:
    spec = sweep.Spec(level="network", name=f"throughput_{workers}w", points=[
        {k: v for k, v in p.items()} for p in points], points_per_task=args.points_per_task,
        fixed={"network": "mlp", "n_test": args.n_test, "n_calibration": args.n_calibration, "bias": "current",
               "T": args.T * ms, "dt": 0.1 * ms})
    t0 = time.perf_counter()
    df = sweep.run(spec, store, workers=workers, progress=False)
    wall = time.perf_counter() - t0
    ok = df[df.status == "ok"]
    if len(ok) < len(df):
        raise RuntimeError(f"sweep with {workers} worker(s): {len(df) - len(ok)} error row(s), e.g. "
                           f"{df[df.status != 'ok'].error.iloc[0]}")
    # evaluate_points' cache_hit: per call, one entry (the project came from the cache or was compiled)
    compiles = int(sum(not any(h) for h in ok.drop_duplicates("task_id").cache_hit))
    order = {sweep.config_hash(c): k for k, c in enumerate(spec.configs)}
    acc = ok.assign(k=ok.config_hash.map(order)).sort_values("k").accuracy.to_numpy()
    return {"wall_s": wall, "accuracy": acc, "compiles": compiles, "errors": int((df.status != "ok").sum()),
            "tasks": df.task_id.nunique()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-test", type=int, default=300)
    ap.add_argument("--n-calibration", type=int, default=1000)
    ap.add_argument("--T", type=float, default=200.0, help="presentation time in ms")
    ap.add_argument("--points-per-task", type=int, default=None, help="default: half the points (2 tasks)")
    ap.add_argument("--points", type=int, default=27, help="the first N points of the 3x3x3 grid")
    args = ap.parse_args(argv)
    logging.getLogger("brian2").setLevel(logging.ERROR)
    points = grid()[:args.points]
    args.points_per_task = args.points_per_task or -(-len(points) // 2)
    load0 = os.getloadavg()
    ann, split = zoo.mnist_mlp(), data.mnist_subset()
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        tmp = Path(tmp)
        os.environ["BIOCONV_PROJECT_CACHE_DIR"] = str(tmp / "cache-calls")
        results["calls, cache off"] = per_call(points, ann, split, args, "off")
        results["calls, cache on (cold: fills it)"] = per_call(points, ann, split, args, "on")
        results["calls, cache hits"] = per_call(points, ann, split, args, "on")
        for workers in (1, 2):
            os.environ["BIOCONV_PROJECT_CACHE_DIR"] = str(tmp / f"cache-sweep-{workers}")
            results[f"sweep, {workers} Dask worker(s), cold cache"] = swept(points, args, workers,
                                                                            tmp / f"store-{workers}")
        results["sweep, 2 Dask worker(s), cache hit"] = swept(points, args, 2, tmp / "store-2-warm")
    load1 = os.getloadavg()
    best = results["sweep, 2 Dask worker(s), cold cache"]["wall_s"]
    ref = results["calls, cache off"]["accuracy"]
    for name, r in results.items():
        rows.append({"row": name, "points": len(points), "wall (s)": r["wall_s"], "s per point": r["wall_s"] / len(points),
                     "compiles": r["compiles"], "x slower than the 2-worker sweep": r["wall_s"] / best,
                     "accuracy min-max": f"{r['accuracy'].min():.3f}-{r['accuracy'].max():.3f}",
                     "max |acc - calls' acc|": float(np.abs(r["accuracy"] - ref).max())
                     if len(r["accuracy"]) == len(ref) else float("nan"),
                     "error rows": r.get("errors", 0)})
    notes = (f"MNIST MLP (bioconv.zoo), current bias, p99.9 over {args.n_calibration} training digits, "
             f"{args.n_test} test digits, T = {args.T} ms, dt = 0.1 ms, regular input. Points: Cm {CM_PF} pF x gl "
             f"{GL_NS} nS (an added uniform leak) x tau_ref {TAU_REF_MS} ms. The calls use SNN.evaluate's defaults "
             f"(all cores); the sweep: {args.points_per_task} points per task, one thread per worker. "
             f"Ratios: cache off / 2-worker sweep = {results['calls, cache off']['wall_s'] / best:.2f}x, "
             f"cache hits / 2-worker sweep = {results['calls, cache hits']['wall_s'] / best:.2f}x (both with their "
             f"projects in the cache: {results['calls, cache hits']['wall_s'] / results['sweep, 2 Dask worker(s), cache hit']['wall_s']:.2f}x), "
             f"1 worker / 2 workers = {results['sweep, 1 Dask worker(s), cold cache']['wall_s'] / best:.2f}x. "
             f"Load average (1, 5 min) at the start {load0[0]:.1f}, {load0[1]:.1f}; at the end {load1[0]:.1f}, "
             f"{load1[1]:.1f} (shared 2-core machine).")
    cmd = "python bench/sweep_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write("sweep_throughput", rows, cmd.strip(), notes)


if __name__ == "__main__":
    main()
