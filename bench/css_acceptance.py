"""CSS acceptance figures on the MNIST subset (issue 13): the MLP and the ConvNet with average pooling
converted under coding="css" (beta = 1.5, Ts = 1) and simulated on the 1000 held-out digits at T
coding steps; and the ablation of negative spikes and of the silent period.

    .venv/bin/python bench/css_acceptance.py                                # MLP and ConvNet, T = 10 and 12
    .venv/bin/python bench/css_acceptance.py --network mlp --steps 6 8 10
    .venv/bin/python bench/css_acceptance.py --ablation --network mlp       # ternary vs binary, Ts = 0, 1, 2

The ConvNet is `bioconv.zoo.mnist_convnet_avgpool` (seed 003's ConvNet with average pooling, trained
and cached like the other zoo networks): CSS conversion has no max pooling (`bioconv.css.mapping`).
Calibration (the 99.99th percentile, Algorithm 2) on the first `--n-cal` training digits; no A.18
adjustment unless `--adjust` rounds are asked for. Each row: ANN and SNN accuracy, agreement, the
latency T + (L - 1) Ts, per hidden layer the 99.9th percentile of |decoded - ReLU(W decoded_in + b)|
over the unsaturated neurons in units of theta_l (`bioconv.css.layer_errors`) and the saturated
fraction, spikes per neuron of each sign, SynOps of each sign, simulation seconds and the 1-minute
load average before and after (a shared 2-core machine); the row is
`bioconv.study.coding_schemes.css_row`, which the coding_schemes study shares. The table is written to
bench/results/css_acceptance.{md,csv} (css_ablations with --ablation) after every row; a row already
there for the same settings is kept unless --rerun. Simulation on bioconv's C++ standalone device by
default (compiled once per row, included in sim_s), --device runtime for Brian2's runtime device.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS, write  # noqa: E402

from bioconv import convert, data, zoo  # noqa: E402
from bioconv.optional import require_torch  # noqa: E402
from bioconv.study.coding_schemes import CSS_VARIANTS, css_row  # noqa: E402

NETWORKS = {"mlp": "mnist_mlp", "convnet": "mnist_convnet_avgpool"}
KEY = ("network", "steps", "Ts", "ternary", "encoder", "adjust", "n_test", "n_cal")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", nargs="+", choices=sorted(NETWORKS), default=["mlp", "convnet"])
    ap.add_argument("--steps", nargs="+", type=int, default=None, help="coding steps T (default 10 12; ablation 6 10)")
    ap.add_argument("--ablation", action="store_true", help="ternary vs binary at Ts = 0, 1, 2 (css_ablations)")
    ap.add_argument("--Ts", nargs="+", type=int, default=None, help="silent periods (default 1; ablation 0 1 2)")
    ap.add_argument("--beta", type=float, default=1.5)
    ap.add_argument("--adjust", type=int, default=0, help="rounds of A.18 amplitude adjustment (at each T)")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--n-cal", type=int, default=1000, help="training digits for calibration")
    ap.add_argument("--batch", type=int, default=None, help="copies simulated at once (default: by synapses)")
    ap.add_argument("--device", choices=["cpp", "runtime"], default="cpp",
                    help="cpp: compiled once per row (sim_s includes the compile), one OpenMP thread")
    ap.add_argument("--rerun", action="store_true", help="rerun rows already in the table")
    args = ap.parse_args()
    torch = require_torch("bench/css_acceptance.py")
    torch.set_num_threads(1)
    name = "css_ablations" if args.ablation else "css_acceptance"
    steps_list = args.steps or ([6, 10] if args.ablation else [10, 12])
    silents = args.Ts or ([0, 1, 2] if args.ablation else [1])
    variants = CSS_VARIANTS if args.ablation else [(True, "css")]
    split = data.mnist_subset()
    x, y = split.x_test[:args.n_test].astype(np.float64), split.y_test[:args.n_test]
    x_cal = split.x_train[:args.n_cal].astype(np.float64)
    path = RESULTS / f"{name}.csv"
    rows = pd.read_csv(path).to_dict("records") if path.exists() else []
    command = "python bench/css_acceptance.py " + " ".join(sys.argv[1:])
    for network in args.network:
        model = getattr(zoo, NETWORKS[network])()
        torch_acc = zoo.accuracy(model, x.astype(np.float32), y)
        for Ts in silents:
            for ternary, encoder in variants:
                for T in steps_list:
                    key = (network, T, Ts, ternary, encoder, args.adjust, len(x), len(x_cal))
                    if any(tuple(r[k] for k in KEY) == key for r in rows) and not args.rerun:
                        print(f"kept: {key} (in {path}; --rerun to redo it)", flush=True)
                        continue
                    # T only enters through the A.18 factors: without them one conversion serves every T
                    snn = convert(model, x_cal, coding="css", beta=args.beta, Ts=Ts, ternary=ternary, steps=T,
                                  adjust=args.adjust)
                    r = css_row(network, snn, x, y, steps=T, encoder=encoder, batch=args.batch, device=args.device)
                    r["torch_ann"] = torch_acc
                    print(json.dumps(r), flush=True)
                    rows = [q for q in rows if tuple(q[k] for k in KEY) != key] + [r]
                    rows.sort(key=lambda q: (q["network"] != "mlp", q["Ts"], not q["ternary"], q["steps"]))
                    write(name, rows, command, notes=(
                        "MNIST subset, the first n_test held-out digits, calibration on the first n_cal training "
                        f"digits (99.99th percentile), beta = {args.beta}, one Brian2 step per coding step; device "
                        "cpp: bioconv's C++ standalone device, compiled once per row (in sim_s), one thread. "
                        "ConvNet: bioconv.zoo.mnist_convnet_avgpool (average pooling; CSS converts no max pooling). "
                        "ann: the converted graph's accuracy (numpy forward), torch_ann: the torch model's. "
                        "loss_points = 100 (ann - snn). latency_steps = T + (L - 1) Ts. hK_p99_9_error: the 99.9th "
                        "percentile of |decoded - ReLU(W decoded_in + b)| over hidden layer K's unsaturated neurons, "
                        "in units of its theta; hK_saturated: the fraction of its targets at or above theta S_T. "
                        "ternary False: binary TSA neurons (threshold beta^Ts, no negative spikes) fed by the greedy "
                        "encoder. adjust: rounds of A.18 amplitude adjustment on the first 256 calibration digits at "
                        "that T. load_start / load_end: 1-minute load average (shared 2-core machine)."))


if __name__ == "__main__":
    main()
