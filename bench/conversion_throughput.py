"""Benchmark: converted MNIST networks evaluated on the held-out digits, per device, against the naive
Brian2 way and against the ANN in torch, measured side by side in one run.

    python bench/conversion_throughput.py [--networks convnet mlp] [--n 1000] [--naive-n 10 20]
                                          [--devices cpp] [--float32] [--T 200] [--dt 0.1]

- compiled: `SNN.evaluate` on ``--n`` digits, wall time including the build and compile;
- naive: Brian2's runtime (numpy) device, network built once, one sample per run with
  store/restore (`SNN.evaluate(device="runtime", batch=1)`), on the first ``--naive-n`` digits, once
  before and once after the compiled runs (their mean is the reference of the ratios);
- ANN: the torch model's forward pass on the same ``--n`` digits (CPU);
- ``--spikingjelly``: SpikingJelly 2.0.0's ann2snn (RateCodingRecipe, both max-pool variants) on the same
  digits at rate_max x T steps (matched spike budget) and T / dt steps (matched time resolution); skipped
  with a message when SpikingJelly is absent. bench/spikingjelly_compare.py is the full comparison.

Writes bench/results/conversion_throughput.{md,csv} after every row (an interruption loses nothing).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from brian2 import ms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bioconv import data, zoo  # noqa: E402
from bioconv.converter import convert  # noqa: E402
from bioconv.simulate.devices import available_cores  # noqa: E402

from _report import write  # noqa: E402
import spikingjelly_compare  # noqa: E402

NETWORKS = {"convnet": zoo.mnist_convnet, "mlp": zoo.mnist_mlp}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", nargs="+", default=["convnet", "mlp"], choices=sorted(NETWORKS))
    ap.add_argument("--n", type=int, default=1000, help="test digits for the compiled devices and the ANN")
    ap.add_argument("--naive-n", type=int, nargs="+", default=[10, 20],
                    help="digits for the naive runtime loop, one value per network (or one for all)")
    ap.add_argument("--devices", nargs="+", default=["cpp"], choices=["cpp", "cuda", "runtime"])
    ap.add_argument("--float32", action="store_true", help="also run cpp in single precision")
    ap.add_argument("--T", type=float, default=200.0, help="presentation time, ms")
    ap.add_argument("--dt", type=float, default=0.1, help="time step, ms")
    ap.add_argument("--threads", type=int, default=None,
                    help="cores for cpp: parallel runs, then OpenMP threads (default: all cores)")
    ap.add_argument("--batch", type=int, default=None, help="samples per run (default: from the memory budget)")
    ap.add_argument("--spikingjelly", action="store_true",
                    help="add SpikingJelly ann2snn rows (optional dependency, see bench/README.md)")
    args = ap.parse_args(argv)
    logging.getLogger("brian2").setLevel(logging.ERROR)
    naive_n = dict(zip(args.networks, args.naive_n * len(args.networks) if len(args.naive_n) == 1 else args.naive_n))
    threads = available_cores() if args.threads is None else args.threads
    split = data.mnist_subset()
    x, y = split.x_test[:args.n], split.y_test[:args.n]
    cmd = "python bench/conversion_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = []

    def emit(row):
        rows.append(row)
        write("conversion_throughput", rows, cmd.strip(), notes)

    notes = (f"T = {args.T} ms, dt = {args.dt} ms, regular input at 200 Hz max, count readout, linear reset, "
             f"bias as current. Wall times include building and compiling the network, not the conversion "
             f"(calibration on 4000 digits, reported separately). Naive = Brian2 runtime device, network built "
             f"once, one sample per run with store/restore, run before and after the compiled rows on the same "
             f"digits. 'x naive' = mean naive seconds per image (before and after) / this row's seconds per "
             f"image.")
    for name in args.networks:
        model = NETWORKS[name]()
        t0 = time.perf_counter()
        snn = convert(model, split.x_train[:4000])
        convert_s = time.perf_counter() - t0
        # ANN in torch, same digits, one batch (CPU)
        with torch.no_grad():
            xt = torch.as_tensor(x, dtype=torch.float32)
            model(xt[:10])
            t0 = time.perf_counter()
            ann_pred = model(xt).argmax(1).numpy()
            ann_s = time.perf_counter() - t0
        # The naive loop runs before and after the compiled runs, on the same digits: its mean
        # per-image cost is the reference of every ratio (this machine's speed drifts by 20 % and
        # more within minutes; bracketing the compiled runs keeps the drift out of the ratios).
        m = naive_n[name]

        def run_naive(when):
            res = snn.evaluate(x[:m], y[:m], duration=args.T * ms, dt=args.dt * ms, device="runtime", batch=1,
                               progress=True)
            emit(dict(network=name, device=f"runtime (naive: 1 sample/run, {when})", images=m, cores=1, batch=1,
                      wall_s=res.wall_s, build_s=res.build_s, run_s=res.run_s, sim_loop_s=res.sim_s,
                      images_per_s=m / res.wall_s, synaptic_events_per_s=res.synaptic_events / res.wall_s,
                      accuracy=res.accuracy, agreement=res.agreement, convert_s=convert_s))
            return res

        naive = run_naive("before")
        compiled = []
        configs = [(d, False) for d in args.devices] + ([("cpp", True)] if args.float32 else [])
        for device, f32 in configs:
            res = snn.evaluate(x, y, duration=args.T * ms, dt=args.dt * ms, device=device, batch=args.batch,
                               threads=threads, float32=f32, progress=True)
            same = bool(np.array_equal(res.predictions[:m, -1], naive.predictions[:, -1]))
            emit(dict(network=name, device=device + (" float32" if f32 else ""), images=args.n,
                      cores=threads if device == "cpp" else 1, batch=res.settings["batch"],
                      presentations=res.settings["presentations"], parallel_runs=res.settings["parallel_runs"],
                      openmp_threads=res.settings["openmp_threads"], wall_s=res.wall_s,
                      build_s=res.build_s, run_s=res.run_s, sim_loop_s=res.sim_s, images_per_s=args.n / res.wall_s,
                      synaptic_events_per_s=res.synaptic_events / res.wall_s, accuracy=res.accuracy,
                      agreement=res.agreement, convert_s=convert_s, decisions_equal_naive=same))
            compiled.append(rows[-1])
        naive_after = run_naive("after")
        naive_per_image = (naive.wall_s + naive_after.wall_s) / (2 * m)
        for row in rows[-2 - len(compiled):]:
            row["x_naive"] = naive_per_image / (row["wall_s"] / row["images"])
        write("conversion_throughput", rows, cmd.strip(), notes)
        emit(dict(network=name, device="ANN (torch, CPU)", images=args.n, cores=torch.get_num_threads(),
                  batch=args.n, wall_s=ann_s, images_per_s=args.n / ann_s, x_naive=naive_per_image / (ann_s / args.n),
                  accuracy=float(np.mean(ann_pred == y)), convert_s=convert_s))
        if args.spikingjelly:  # wall_s without the conversion, as above; convert_s is SpikingJelly's
            for row in spikingjelly_compare.throughput_rows(name, model, split.x_train[:4000], x, y, T_ms=args.T,
                                                            dt_ms=args.dt, naive_per_image=naive_per_image,
                                                            threads=threads):
                emit(row)


if __name__ == "__main__":
    main()
