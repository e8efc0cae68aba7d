"""LC-TTFS ablations of seed 004 Table III on the MNIST MLP and ConvNet: each component switched off in
turn, the ANN retrained (30 epochs, the zoo's recipe, seed 0) where the ablation touches training,
then converted (strict=False where a constraint is broken) and simulated on the held-out digits at
the baseline's settings (50 steps per window, T_w = 1 ms). The rows are `bioconv.study.ttfs.ABLATIONS`
and are computed by `bioconv.study.ttfs.ablation_row`, which the ttfs study (--full) runs too.

    .venv/bin/python bench/ttfs_ablations.py --network mlp convnet     # 1000 digits, 50 steps per window
    .venv/bin/python bench/ttfs_ablations.py --network convnet --rows baseline "ReLU instead of ReLU1"

Writes bench/results/ttfs_ablations.{md,csv} after every row (a row already there for the same
network, row, digits and steps is kept and not rerun unless --rerun), and prints one JSON line per
row: ANN and SNN accuracy, agreement, the worst |sum_j w_ij - 1| of the hidden layers, the largest
fraction of silent hidden neurons and of ANN activations above 1, warnings, training and
simulation seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS, write  # noqa: E402

from bioconv import data  # noqa: E402
from bioconv.optional import require_torch  # noqa: E402
from bioconv.study.ttfs import ABLATIONS, ablation_row  # noqa: E402

NAME = "ttfs_ablations"
BATCH = {"mlp": 50, "convnet": 10}  # copies at once: the ConvNet has 1.5 million synapses a copy


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", nargs="+", choices=["mlp", "convnet"], default=["mlp", "convnet"])
    ap.add_argument("--rows", nargs="*", default=list(ABLATIONS), choices=list(ABLATIONS))
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--rerun", action="store_true", help="rerun rows already in the table")
    args = ap.parse_args()
    require_torch("bench/ttfs_ablations.py").set_num_threads(1)
    split = data.mnist_subset()
    x, y = split.x_test[:args.n_test], split.y_test[:args.n_test]
    path = RESULTS / f"{NAME}.csv"
    # (an empty warnings cell would read back as NaN)
    rows = pd.read_csv(path).fillna({"warnings": ""}).to_dict("records") if path.exists() else []
    command = "python bench/ttfs_ablations.py " + " ".join(sys.argv[1:])
    for network in args.network:
        for row in args.rows:
            key = (network, row, len(x), args.steps)
            old = [r for r in rows if (r["network"], r["row"], r["n_test"], r["steps"]) == key]
            if old and not args.rerun:
                print(f"kept: {network}, {row} (in {path}; --rerun to redo it)", flush=True)
                continue
            load = os.getloadavg()[0]
            r = ablation_row(network, row, x, y, steps=args.steps, batch=BATCH[network], progress=True)
            r["load_start"] = round(load, 1)
            r["load_end"] = round(os.getloadavg()[0], 1)
            print(json.dumps(r), flush=True)
            rows = [q for q in rows if (q["network"], q["row"], q["n_test"], q["steps"]) != key] + [r]
            order = {n: k for k, n in enumerate(ABLATIONS)}
            rows.sort(key=lambda q: (q["network"] != "mlp", order[q["row"]]))
            write(NAME, rows, command, notes=(
                "Seed 004 Table III on the MNIST subset's 1000 held-out digits (unless n_test says otherwise), "
                "seed 0, T_w = 1 ms, `steps` time steps per window, Brian2 runtime device, strict=False. "
                "loss = ann - snn. silent_fraction: largest fraction of a hidden layer's neurons x digits that "
                "never fired; ann_above_1_fraction: largest fraction of a hidden layer's ANN activations above 1 "
                "(ReLU row). train_s: the training's own record (the cached zoo network's for the baseline and "
                "the dynamic-threshold rows). load_start / load_end: 1-minute load average (shared 2-core machine)."))


if __name__ == "__main__":
    main()
