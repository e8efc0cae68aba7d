"""Benchmark: a single-neuron parameter sweep (Cm, gl, tau_ref, I) as one NeuronGroup on the compiled
device, against the naive way, one Brian2 runtime run per parameter point (network built once,
store/restore between points). Both run in this process, one after the other.

    python bench/neuron_sweep.py [--points 10000 100000] [--duration 1.0] [--naive 20]

Prints a table and writes bench/results/neuron_sweep.{md,csv}. Neuron updates/s = points x steps / s.
The rates are checked against the analytic LIF rate (FORMULAS §2) so that speed is not bought with
wrong answers.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
from brian2 import Network, SpikeMonitor, get_device, mV, ms, nS, pA, pF, second

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bioconv import analysis, models  # noqa: E402
from bioconv.simulate.devices import available_cores, simulation_device  # noqa: E402

from _report import write  # noqa: E402

DT = 0.1 * ms
EL, V_TH, V_RESET = -70 * mV, -50 * mV, -70 * mV


def parameter_points(n: int, seed: int = 0) -> dict:
    """``n`` random points: Cm 50-400 pF, gl 2-20 nS, tau_ref 1-5 ms, and a current between 1.2x
    rheobase and 5x rheobase (so every point fires)."""
    rng = np.random.default_rng(seed)
    Cm = rng.uniform(50, 400, n) * pF
    gl = rng.uniform(2, 20, n) * nS
    tau_ref = rng.uniform(1, 5, n) * ms
    rheo = np.asarray(gl * (V_TH - EL))
    I = rheo * rng.uniform(1.2, 5.0, n) / 1e-12 * pA
    return dict(Cm=Cm, gl=gl, tau_ref=tau_ref, I_bias=I)


def analytic(p) -> np.ndarray:
    return np.asarray(analysis.lif_rate(p["I_bias"], p["Cm"], p["gl"], EL, V_TH, V_RESET, p["tau_ref"]))


def compiled_sweep(p: dict, duration, threads: int) -> dict:
    n = len(p["Cm"])
    t0 = time.perf_counter()
    with simulation_device("cpp", dt=DT, threads=threads):
        g = models.neuron_group(n, "conductance_lif", reset="value", EL=EL, v_th=V_TH, v_reset=V_RESET, **p)
        mon = SpikeMonitor(g, record=False)
        Network(g, mon).run(duration, namespace={})
        counts = np.asarray(mon.count)
        run_s = get_device()._last_run_time
    wall = time.perf_counter() - t0
    return dict(counts=counts, wall_s=wall, run_s=run_s)


def naive_sweep(p: dict, duration, n_points: int) -> dict:
    """One runtime (numpy) run per point, the network built once and rewound with store/restore."""
    counts = []
    t0 = time.perf_counter()
    with simulation_device("runtime", dt=DT):
        g = models.neuron_group(1, "conductance_lif", reset="value", EL=EL, v_th=V_TH, v_reset=V_RESET,
                                **{k: v[:1] for k, v in p.items()})
        mon = SpikeMonitor(g, record=False)
        net = Network(g, mon)
        net.store("start")
        for k in range(n_points):
            net.restore("start")
            for name, v in p.items():
                setattr(g, name, v[k:k + 1])
            net.run(duration, namespace={})
            counts.append(int(mon.count[0]))
    return dict(counts=np.array(counts), wall_s=time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--duration", type=float, default=1.0, help="simulated seconds per point")
    ap.add_argument("--naive", type=int, default=20, help="points run the naive way (per-point cost)")
    ap.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all cores)")
    args = ap.parse_args(argv)
    logging.getLogger("brian2").setLevel(logging.ERROR)
    threads = available_cores() if args.threads is None else args.threads
    duration = args.duration * second
    steps = int(round(args.duration / float(DT)))

    largest = parameter_points(max(args.points))
    naive = naive_sweep(largest, duration, args.naive)
    naive_per_point = naive["wall_s"] / args.naive
    rows = []
    for n in args.points:
        p = {k: v[:n] for k, v in largest.items()}
        res = compiled_sweep(p, duration, threads)
        f_th = analytic(p)
        # From rest (no refractory period before the first spike) a regular spiker fires
        # floor((T + tau_ref) f) times in T. The simulation lengthens each interval by up to one step
        # (dt / ISI relative, README rate_validation): large at high rates, hence the rate error below.
        expected = np.floor((args.duration + np.asarray(p["tau_ref"])) * f_th)
        many = expected >= 20
        rel = np.abs(res["counts"][many] / expected[many] - 1)
        few = np.abs(res["counts"][~many] - expected[~many])
        same = np.array_equal(res["counts"][:args.naive], naive["counts"][:min(args.naive, n)])
        rows.append({
            "points": n, "steps": steps, "threads": threads,
            "wall incl. compile (s)": res["wall_s"], "run only (s)": res["run_s"],
            "updates/s incl. compile": n * steps / res["wall_s"], "updates/s run only": n * steps / res["run_s"],
            "naive runtime s/point": naive_per_point,
            "speed-up per point vs naive": naive_per_point / (res["wall_s"] / n),
            "rate error median (>= 20 spikes)": float(np.median(rel)), "rate error max (>= 20 spikes)": float(rel.max()),
            "max |count - expected| (< 20 spikes)": float(few.max()) if few.size else float("nan"),
            "counts equal naive (first points)": same,
        })
    notes = (f"Naive: {args.naive} points, one Brian2 runtime (numpy) run each, the network built once and "
             f"rewound with store/restore; {naive['wall_s']:.1f} s in all. Compiled: one cpp_standalone "
             f"NeuronGroup holding every point, {threads} OpenMP thread(s). Simulated {args.duration} s per point at "
             f"dt = 0.1 ms. conductance_lif, value reset, I between 1.2 and 5 x rheobase.")
    cmd = "python bench/neuron_sweep.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write("neuron_sweep", rows, cmd.strip(), notes)


if __name__ == "__main__":
    main()
