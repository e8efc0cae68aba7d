"""Benchmark and acceptance check: a 10^5-point single-neuron sweep through the user-facing API
(`bioconv.sweep.Spec` + `bioconv.sweep.run`), every point one neuron of one compiled run, at
dt = 0.01 ms and dt = 0.1 ms. The rates from inter-spike intervals of the points with at least 20
spikes (tau_ref >= 1 ms throughout) are compared with `bioconv.analysis.lif_rate`.

    python bench/sweep_neuron_accuracy.py [--points 100000] [--T 0.5] [--reset value] [--workers 1]

Random design (seed 0): Cm 50-400 pF, gl 2-20 nS, tau_ref 1-5 ms (uniform, or on a 1 ms grid), I_bias 0.1-2 nA (points below
rheobase do not fire and drop out of the comparison). Writes bench/results/sweep_neuron_accuracy.{md,csv};
each dt's store is kept in a temporary folder and removed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bioconv import sweep  # noqa: E402

from _report import write  # noqa: E402


def spec(n: int, dt_ms: float, T_s: float, reset: str, tau_ref_on_grid: bool) -> sweep.Spec:
    # tau_ref on a 1 ms grid (a whole number of steps) or anywhere in 1-5 ms
    tau_ref = ["1 ms", "2 ms", "3 ms", "4 ms", "5 ms"] if tau_ref_on_grid else ("1 ms", "5 ms")
    return sweep.Spec(level="neuron", name=f"neuron_accuracy_dt{dt_ms}", n=n, seed=0, random={
        "Cm": ("50 pF", "400 pF"), "gl": ("2 nS", "20 nS"), "tau_ref": tau_ref, "I_bias": ("0.1 nA", "2 nA")},
        fixed={"dt": f"{dt_ms} ms", "T": f"{T_s} s", "reset": reset, "EL": "-70 mV", "v_th": "-50 mV",
               "v_reset": "-70 mV"})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--T", type=float, default=0.5, help="simulated seconds per point")
    ap.add_argument("--reset", default="value", choices=["value", "linear"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--dt", type=float, nargs="+", default=[0.01, 0.1], help="time steps in ms")
    ap.add_argument("--tau-ref-grid", choices=["continuous", "1ms"], nargs="+", default=["continuous", "1ms"],
                    help="tau_ref drawn uniformly in 1-5 ms, or from {1, 2, 3, 4, 5} ms")
    args = ap.parse_args(argv)
    rows = []
    load_start = os.getloadavg()
    for grid, dt_ms in [(g, dt) for g in args.tau_ref_grid for dt in args.dt]:
        t0 = time.perf_counter()
        s = spec(args.points, dt_ms, args.T, args.reset, grid == "1ms")
        spec_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="sweep-accuracy-") as store:
            t1 = time.perf_counter()
            df = sweep.run(s, store, workers=args.workers, progress=False)
            wall = time.perf_counter() - t1
        ok = df[df.status == "ok"]
        sel = ok[(ok.n_spikes >= 20) & (ok.tau_ref >= 1e-3 - 1e-12)]
        err = (sel.isi_rate_Hz / sel.analytic_rate_Hz - 1).abs()
        rows.append({
            "tau_ref": "1-5 ms" if grid == "continuous" else "{1,...,5} ms", "dt (ms)": dt_ms, "points": len(s), "error rows": int((df.status != "ok").sum()),
            "tasks (compiled runs)": df.task_id.nunique(), "points in the run": int(ok.points_in_run.max()),
            "cache hit": bool(ok.cache_hit.all()), "spec (s)": spec_s, "sweep wall incl. cluster (s)": wall,
            "build + compile (s)": float(ok.build_s.iloc[0]), "binary run (s)": float(ok.run_s.iloc[0]),
            "points >= 20 spikes": len(sel), "rate max rel. error": float(err.max()),
            "rate median rel. error": float(err.median()), "rate range (Hz)": f"{sel.analytic_rate_Hz.min():.0f}-"
                                                                               f"{sel.analytic_rate_Hz.max():.0f}",
            "bound": 0.01 if dt_ms <= 0.01 else 0.1,
            "within bound": bool(err.max() < (0.01 if dt_ms <= 0.01 else 0.1)),
        })
    notes = (f"Random design, seed 0: Cm 50-400 pF, gl 2-20 nS, tau_ref uniform in 1-5 ms or drawn from "
             f"{{1, 2, 3, 4, 5}} ms, I_bias 0.1-2 nA; EL = v_reset = "
             f"-70 mV, v_th = -50 mV; reset = {args.reset}; T = {args.T} s per point; conductance_lif. "
             f"{args.workers} Dask worker(s), one thread each. Rates from inter-spike intervals after the first "
             f"spike, compared on points with >= 20 spikes. Load average at the start: "
             f"{load_start[0]:.2f} (1 min), {load_start[1]:.2f} (5 min) on a shared machine.")
    cmd = "python bench/sweep_neuron_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write("sweep_neuron_accuracy", rows, cmd.strip(), notes)


if __name__ == "__main__":
    main()
