"""LC-TTFS ablations of seed 004 Table III on the MNIST MLP: each component switched off in turn, the
ANN retrained (30 epochs, the zoo's recipe, seed 0) where the ablation touches training, then
converted (strict=False where a constraint is broken) and simulated on the held-out digits.

    .venv/bin/python bench/ttfs_ablations.py                  # 1000 digits, 50 steps per window

Prints one JSON line per row: ANN and SNN accuracy, agreement, the worst |sum_j w_ij - 1| of the
hidden layers, training and simulation seconds.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from bioconv import data, ttfs, zoo
from bioconv import graph as G
from bioconv.optional import require_torch

#: name -> (training switches, ReLU instead of ReLU1, dynamic threshold)
ROWS = {
    "baseline": (None, False, True),
    "without dynamic threshold": (None, False, False),
    "without hard constraint": (dict(hard=False), False, True),
    "without soft and hard constraints": (dict(hard=False, soft=False), False, True),
    "ReLU instead of ReLU1": (dict(), True, True),
    "without pre-activation normalization": (dict(preactivation=False), False, True),
}


def relu_mlp():
    nn = require_torch("bench/ttfs_ablations.py").nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256, bias=False), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(256, 128, bias=False), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    args = ap.parse_args()
    torch = require_torch("bench/ttfs_ablations.py")
    torch.set_num_threads(1)
    from bioconv.ttfs_train import train
    split = data.mnist_subset()
    x, y = split.x_test[:args.n_test], split.y_test[:args.n_test]
    for row in args.rows:
        switches, relu, dynamic = ROWS[row]
        if switches is None:
            model, train_s = zoo.mnist_mlp_ttfs(), zoo.record("mnist_mlp_ttfs").get("train_seconds")
        else:
            model = relu_mlp() if relu else zoo.mlp_ttfs()
            train_s = train(model, split, seed=0, epochs=30, lr=1e-3, weight_decay=1e-4, **switches)["train_seconds"]
        graph = G.from_torch(model, x.shape[1:])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            net = ttfs.map_network(graph, strict=False)
        t0 = time.perf_counter()
        out = ttfs.simulate(net, x, steps=args.steps, batch=50, dynamic_threshold=dynamic)
        sim_s = time.perf_counter() - t0
        ann_pred = graph.forward(x.astype(np.float64))[graph.output].argmax(1)
        unique = (out.potential == out.potential.max(1, keepdims=True)).sum(1) == 1
        pred = np.where(unique, out.potential.argmax(1), -1)
        print(json.dumps(dict(
            row=row, ann=float(np.mean(ann_pred == y)), snn=float(np.mean(pred == y)),
            agreement=float(np.mean(pred == ann_pred)),
            worst_weight_sum_deviation=max(p.weight_sum_deviation for p in net.layers if p.kind == "hidden"),
            silent_fraction={p.name: float(np.mean(out.spikes[p.name] == 0)) for p in net.layers if p.kind == "hidden"},
            warnings=sorted({type(w.message).__name__ for w in caught}),
            train_s=train_s, simulate_s=round(sim_s, 1))), flush=True)


if __name__ == "__main__":
    main()
