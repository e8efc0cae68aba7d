"""LC-TTFS acceptance figures on the MNIST subset (issue 11): constrained vs unconstrained ANN, and the
TTFS SNN against its constrained ANN on the held-out digits at a number of steps per window.

    .venv/bin/python bench/ttfs_acceptance.py --network mlp --seed 0          # zoo networks (cached)
    .venv/bin/python bench/ttfs_acceptance.py --network mlp --seed 1          # trains both, not cached

Seed 0 uses the zoo's cached networks (trained on first use); another seed trains both networks here
with the zoo's recipe. Prints one JSON line: accuracies, agreement (a decision needs a unique winner),
per-layer correlation and worst |a_SNN - a_ANN| of the decoded activations, spikes per neuron, and
the training and simulation times.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bioconv import data, ttfs, zoo
from bioconv import graph as G
from bioconv.optional import require_torch

NETWORKS = {"mlp": ("mnist_mlp", zoo.mlp, "mnist_mlp_ttfs", zoo.mlp_ttfs),
            "convnet": ("mnist_convnet", zoo.convnet, "mnist_convnet_ttfs", zoo.convnet_ttfs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", choices=sorted(NETWORKS), default="mlp")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=50, help="time steps per window")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=50, help="samples simulated at once (disjoint copies)")
    args = ap.parse_args()
    torch = require_torch("bench/ttfs_acceptance.py")
    torch.set_num_threads(1)
    split = data.mnist_subset()
    ref_name, ref_build, name, build = NETWORKS[args.network]
    if args.seed == 0:
        ref, ann = getattr(zoo, ref_name)(), getattr(zoo, name)()
        ref_rec, rec = zoo.record(ref_name), zoo.record(name)
    else:
        from bioconv.ttfs_train import train
        ref, ann = ref_build(), build()
        ref_rec = zoo.train(ref, split, seed=args.seed, epochs=30, lr=1e-3, weight_decay=1e-4)
        rec = train(ann, split, seed=args.seed, epochs=30, lr=1e-3, weight_decay=1e-4)
    x, y = split.x_test[:args.n_test], split.y_test[:args.n_test]
    graph = G.from_torch(ann, x.shape[1:])
    net = ttfs.map_network(graph)
    t0 = time.perf_counter()
    out = ttfs.simulate(net, x, steps=args.steps, batch=args.batch)
    sim_s = time.perf_counter() - t0
    acts = graph.forward(x.astype(np.float64))
    ann_pred = acts[graph.output].argmax(1)
    unique = (out.potential == out.potential.max(1, keepdims=True)).sum(1) == 1
    pred = np.where(unique, out.potential.argmax(1), -1)
    layers = {}
    for layer in net.layers[1:-1]:
        a, target = out.activations[layer.name], acts[layer.name].reshape(len(x), -1)
        layers[layer.name] = dict(kind=layer.kind, correlation=round(float(np.corrcoef(a.ravel(), target.ravel())[0, 1]), 6),
                                  max_abs_error=round(float(np.abs(a - target).max()), 4),
                                  mean_error=round(float((a - target).mean()), 4),
                                  spikes_per_neuron=float(out.spikes[layer.name].mean()))
    print(json.dumps(dict(
        network=args.network, seed=args.seed, steps_per_window=args.steps, n_test=len(x),
        unconstrained_ann=zoo.accuracy(ref, x, y), constrained_ann=float(np.mean(ann_pred == y)),
        snn=float(np.mean(pred == y)), agreement=float(np.mean(pred == ann_pred)),
        undecided=float(np.mean(pred == -1)), layers=layers,
        train_s=dict(unconstrained=ref_rec.get("train_seconds"), constrained=rec.get("train_seconds")),
        simulate_s=round(sim_s, 1))))


if __name__ == "__main__":
    main()
