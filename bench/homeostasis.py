"""Rate coding with and without seed 001's homeostatic threshold (FORMULAS §9; issue 13 item 3) on the
MNIST ConvNet: accuracy and agreement with the ANN vs the read time T, and per-layer correlation of
the rates with their targets, on the held-out digits.

    .venv/bin/python bench/homeostasis.py                 # 1000 digits, T = 25, 50, 100, 200 ms
    .venv/bin/python bench/homeostasis.py --n 200 --settings off default

`bioconv.zoo.mnist_convnet()` converted with p99.9 normalization on the 4000 training digits (as
bench/conversion_throughput.py does), regular input, rate_max = 200 Hz, dt = 0.1 ms, cpp device.
Settings (`--settings`): ``off`` (the plain conversion) and ``homeostasis`` at three speeds of the
threshold, tau_theta = 400 ms (``weak``), 100 ms (``default``, the option's default) and 25 ms
(``strong``); tau_r = 20 ms, k_theta = v_th / rate_max and r_target = each neuron's mean calibration
target rate throughout (the option's defaults). For each setting one run of the longest T gives the
accuracy and agreement at every T of ``--T`` (`SNN.evaluate`'s read times); one run per T gives the
layer correlations (rates over the run's own duration) and the synaptic events per digit. The
decisions of each shorter run are checked against the long run's at that read time (the state at t
does not depend on what comes later): the notes say whether they all match.

Writes bench/results/homeostasis.{md,csv}.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from brian2 import ms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bioconv import data, zoo  # noqa: E402
from bioconv.converter import convert  # noqa: E402

from _report import write  # noqa: E402

NAME = "homeostasis"
SETTINGS = {"off": None, "weak": {"tau_theta": 400 * ms}, "default": True, "strong": {"tau_theta": 25 * ms}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="held-out digits")
    ap.add_argument("--n-calibration", type=int, default=4000, help="training digits for the normalization")
    ap.add_argument("--T", type=float, nargs="+", default=[25, 50, 100, 200], help="read times, ms")
    ap.add_argument("--dt", type=float, default=0.1, help="time step, ms")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    reads = sorted(args.T)
    T_max, dt = reads[-1] * ms, args.dt * ms
    step = reads[0]
    if any(abs(r / step - round(r / step)) > 1e-9 for r in reads):
        sys.exit(f"--T: every read time must be a multiple of the shortest ({step} ms)")
    split = data.mnist_subset()
    model = zoo.mnist_convnet()
    calibration = split.x_train[:args.n_calibration]
    x, y = split.x_test[:args.n], split.y_test[:args.n]
    rows, mismatches = [], []
    command = " ".join(["python bench/homeostasis.py", *(argv if argv is not None else sys.argv[1:])])
    for name in args.settings:
        h = SETTINGS[name]
        snn = convert(model, calibration, homeostasis=h)
        hv = snn.coding.values["homeostasis"]
        t0 = time.perf_counter()
        # the long run: decisions at every multiple of the shortest read time
        long = snn.evaluate(x, y, duration=T_max, dt=dt, time_points=int(round(reads[-1] / step)),
                            threads=args.threads, progress=False)
        wall = time.perf_counter() - t0
        at = {round(float(t) * 1e3, 6): k for k, t in enumerate(long.times)}
        for T in reads:
            k = at[round(T, 6)]
            if T == reads[-1]:
                run = long
            else:
                run = snn.evaluate(x, y, duration=T * ms, dt=dt, time_points=1, threads=args.threads, progress=False)
                wall += run.wall_s
                if not np.array_equal(run.predictions[:, -1], long.predictions[:, k]):
                    mismatches.append(f"{name} at {T:g} ms")
            pops = {p.name: p.kind for p in snn.mapped.populations[1:]}
            corr = {f"corr_{p}_{kind}": run.layer_correlation[p] for p, kind in pops.items()}
            rows.append(dict(
                setting=name, homeostasis=hv is not None,
                tau_r_ms=float(hv["tau_r"] / ms) if hv else None,
                tau_theta_ms=float(hv["tau_theta"] / ms) if hv else None,
                k_theta_mV_s=float(hv["k_theta"]) * 1e3 if hv else None,
                r_target=(hv["r_target"] if isinstance(hv["r_target"], str) else str(hv["r_target"])) if hv else None,
                T_ms=T, ann_accuracy=long.ann_accuracy, accuracy=float(long.accuracy_vs_time[k]),
                agreement=float(long.agreement_vs_time[k]),
                synops_per_digit=run.synaptic_events / len(x),
                min_corr=min(corr.values()), **corr))
            print({k2: rows[-1][k2] for k2 in ("setting", "T_ms", "accuracy", "agreement", "min_corr")}, flush=True)
        rows[-1]["wall_s"] = wall
    notes = (f"MNIST ConvNet (`bioconv.zoo.mnist_convnet()`), p99.9 normalization on {len(calibration)} training "
             f"digits, {len(x)} held-out digits, regular input, rate_max = 200 Hz, dt = {args.dt} ms, cpp. "
             "r_target = 'calibration': each neuron's mean target rate over the calibration digits; "
             "k_theta = v_th / rate_max. accuracy and agreement at T: read at T in one run of the longest T; "
             "synops_per_digit and corr_* (correlation of each population's rates with its targets, over the "
             "digits and units): a run of duration T. wall_s (on a setting's last row): all its runs. "
             + ("Decisions of every shorter run equal the long run's at that read time."
                if not mismatches else f"Decisions of the shorter runs DIFFER from the long run's: {mismatches}."))
    write(NAME, rows, command, notes)


if __name__ == "__main__":
    main()
