"""Benchmark: converted MNIST networks evaluated on the held-out digits, per device, against the naive
Brian2 way and against the ANN in torch, measured side by side in one run.

    python bench/conversion_throughput.py [--networks convnet mlp vgg11] [--n 1000] [--naive-n 10 20]
                                          [--devices cpp] [--conv shared unrolled] [--memory]
                                          [--float32] [--T 200] [--dt 0.1]

- compiled: `SNN.evaluate` on ``--n`` digits, wall time including the build and compile, once per
  form of the convolutions in ``--conv`` (cpp: the shared-kernel pathway, then the unrolled one;
  ``x_unrolled``: images/s of the shared row over the unrolled row's, measured side by side);
- ``--warm``: each form once more after the cold rows, its compiled project now in the cache (no build,
  no compile: what every later call of the same shape costs), with its own ``x_unrolled``;
- ``--memory``: memory per copy of each form, measured as the slope of the binary's peak resident
  memory (VmHWM) between builds of 2 and 8 copies (vgg11: 1 and 4), against the memory model
  (`bioconv.simulate.runner.memory_estimate`);
- ``vgg11``: the CIFAR-10-shaped VGG-11 (`bioconv.zoo.vgg11`) trained on synthetic data
  (bench/_synthetic_cifar.py; CIFAR-10 is not shipped), on ``--n`` synthetic test images, shared
  form only by default (the unrolled one needs about 25 GB), no naive loop (``--naive-n 0``);
- naive: Brian2's runtime (numpy) device, network built once, one sample per run with
  store/restore (`SNN.evaluate(device="runtime", batch=1)`), on the first ``--naive-n`` digits, once
  before and once after the compiled runs (their mean is the reference of the ratios);
- ANN: the torch model's forward pass on the same ``--n`` digits (CPU);
- cpp, new process: the same shape evaluated again in a fresh process on half the digits, with Brian2's
  build and compile replaced by errors: the compiled project must come from the cache (``build_s``);
- ``--current-potential``: the ConvNet with ``encoder="current"`` and ``readout="potential"``
  (SpikingJelly's like-for-like settings), as a ratio to the regular/count row;
- every compiled project starts cold: a new, empty cache folder per run of this script (``--cache-dir``
  to reuse one);
- ``--spikingjelly``: SpikingJelly 2.0.0's ann2snn (RateCodingRecipe, both max-pool variants) on the same
  digits at rate_max x T steps (matched spike budget) and T / dt steps (matched time resolution); skipped
  with a message when SpikingJelly is absent. bench/spikingjelly_compare.py is the full comparison.

Writes bench/results/conversion_throughput.{md,csv} after every row (an interruption loses nothing).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
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
import _synthetic_cifar  # noqa: E402
from bioconv.simulate.runner import CompiledNetwork, memory_estimate, stored_size  # noqa: E402

# name -> (model, data split, calibration inputs)
NETWORKS = {"convnet": (zoo.mnist_convnet, data.mnist_subset, 4000), "mlp": (zoo.mnist_mlp, data.mnist_subset, 4000),
            "vgg11": (_synthetic_cifar.trained_vgg11, _synthetic_cifar.synthetic_cifar, 500)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", nargs="+", default=["convnet", "mlp"], choices=sorted(NETWORKS))
    ap.add_argument("--n", type=int, default=1000, help="test digits for the compiled devices and the ANN")
    ap.add_argument("--naive-n", type=int, nargs="+", default=[10, 20],
                    help="digits for the naive runtime loop, one value per network (or one for all)")
    ap.add_argument("--devices", nargs="+", default=["cpp"], choices=["cpp", "cuda", "runtime"])
    ap.add_argument("--conv", nargs="+", default=["shared", "unrolled"], choices=["shared", "unrolled"],
                    help="forms of the convolutions to run on cpp, side by side (vgg11: shared only unless "
                         "--vgg11-unrolled)")
    ap.add_argument("--vgg11-unrolled", action="store_true", help="also run vgg11 unrolled (about 25 GB)")
    ap.add_argument("--warm", action="store_true",
                    help="after the cold rows, each form again with its project in the cache (x_unrolled of those)")
    ap.add_argument("--memory", action="store_true",
                    help="add rows of memory per copy (measured peak memory of the binary vs the model)")
    ap.add_argument("--float32", action="store_true", help="also run cpp in single precision")
    ap.add_argument("--T", type=float, default=200.0, help="presentation time, ms")
    ap.add_argument("--dt", type=float, default=0.1, help="time step, ms")
    ap.add_argument("--threads", type=int, default=None,
                    help="cores for cpp: parallel runs, then OpenMP threads (default: all cores)")
    ap.add_argument("--batch", type=int, default=None, help="samples per run (default: from the memory budget)")
    ap.add_argument("--spikingjelly", action="store_true",
                    help="add SpikingJelly ann2snn rows (optional dependency, see bench/README.md)")
    ap.add_argument("--current-potential", action="store_true",
                    help="add a cpp row with encoder='current' and readout='potential' (ratio to regular/count)")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="compiled-project cache (default: a new, empty one: every first compile is cold)")
    ap.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # the second process of the cache row
    args = ap.parse_args(argv)
    if args.probe:
        return probe(args)
    if args.cache_dir is None:
        args.cache_dir = Path(tempfile.mkdtemp(prefix="bioconv-bench-cache-"))
    os.environ["BIOCONV_PROJECT_CACHE_DIR"] = str(args.cache_dir)
    logging.getLogger("brian2").setLevel(logging.ERROR)
    naive_n = dict(zip(args.networks, args.naive_n * len(args.networks) if len(args.naive_n) == 1 else args.naive_n))
    threads = available_cores() if args.threads is None else args.threads
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
        make_model, make_split, n_cal = NETWORKS[name]
        split = make_split()
        x, y = split.x_test[:args.n], split.y_test[:args.n]
        model = make_model()
        t0 = time.perf_counter()
        snn = convert(model, split.x_train[:n_cal])
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
        m = naive_n.get(name, 0) if name != "vgg11" else 0

        def run_naive(when):
            if not m:
                return None
            res = snn.evaluate(x[:m], y[:m], duration=args.T * ms, dt=args.dt * ms, device="runtime", batch=1,
                               progress=True)
            emit(dict(network=name, device=f"runtime (naive: 1 sample/run, {when})", images=m, cores=1, batch=1,
                      wall_s=res.wall_s, build_s=res.build_s, run_s=res.run_s, sim_loop_s=res.sim_s,
                      images_per_s=m / res.wall_s, synaptic_events_per_s=res.synaptic_events / res.wall_s,
                      accuracy=res.accuracy, agreement=res.agreement, convert_s=convert_s))
            naive_rows.append(rows[-1])
            return res

        naive_rows = []
        naive = run_naive("before")
        compiled = []
        forms = [c for c in args.conv if name != "vgg11" or c == "shared" or args.vgg11_unrolled]
        configs = ([(d, False, c) for d in args.devices for c in (forms if d == "cpp" else ["shared"])]
                   + ([("cpp", True, forms[0])] if args.float32 else []))
        by_form = {}  # conv -> (row, predictions)
        for device, f32, conv in configs:
            res = snn.evaluate(x, y, duration=args.T * ms, dt=args.dt * ms, device=device, batch=args.batch,
                               threads=threads, float32=f32, progress=True, conv=conv)
            same = bool(np.array_equal(res.predictions[:m, -1], naive.predictions[:, -1])) if naive else None
            label = device + (f", conv={res.settings['conv']}" if device == "cpp" else "") + (" float32" if f32 else "")
            emit(_row(name, label, args, res, threads, convert_s, decisions_equal_naive=same))
            compiled.append(rows[-1])
            if device == "cpp" and not f32:
                by_form[conv] = (rows[-1], res.predictions)
                if {"shared", "unrolled"} <= set(by_form):  # the two forms side by side
                    (shared, p_shared), (unrolled, p_unrolled) = by_form["shared"], by_form["unrolled"]
                    shared["x_unrolled"] = shared["images_per_s"] / unrolled["images_per_s"]
                    shared["predictions_equal_unrolled"] = bool(np.array_equal(p_shared, p_unrolled))
            if device == "cpp" and not f32 and conv == forms[0] and name != "vgg11":
                regular_count = res
                # the same shape again, in a new process, with another number of samples
                half = max(1, args.n // 2)
                out = subprocess.run([sys.executable, __file__, "--probe", name, "--n", str(half), "--T", str(args.T),
                                      "--dt", str(args.dt), "--threads", str(threads), "--conv", conv]
                                     + (["--batch", str(args.batch)] if args.batch else []),
                                     capture_output=True, text=True)
                if out.returncode:
                    raise RuntimeError(f"cache probe failed:\n{out.stderr[-3000:]}")
                got = json.loads(out.stdout.strip().splitlines()[-1])
                emit(dict(network=name, device=f"cpp, new process, {half} digits (cache hit: {got['cache_hit']})",
                          images=half, cores=threads, batch=got["batch"], presentations=got["presentations"],
                          wall_s=got["wall_s"], build_s=got["build_s"], images_per_s=half / got["wall_s"],
                          accuracy=got["accuracy"], convert_s=got["convert_s"], optimizations="(as above)"))
                compiled.append(rows[-1])
        if args.warm and {"shared", "unrolled"} <= set(by_form):
            # each form again, its project now in the cache: the images/s of every later call of the
            # same shape (the cold rows above include the build and compile)
            warm = {}
            for conv in ("shared", "unrolled"):
                res = snn.evaluate(x, y, duration=args.T * ms, dt=args.dt * ms, device="cpp", batch=args.batch,
                                   threads=threads, progress=True, conv=conv)
                emit(_row(name, f"cpp, conv={conv}, cache hit", args, res, threads, convert_s))
                compiled.append(rows[-1])
                warm[conv] = rows[-1]
            warm["shared"]["x_unrolled"] = warm["shared"]["images_per_s"] / warm["unrolled"]["images_per_s"]
        if args.memory:
            for row in memory_rows(name, snn, args):
                emit(row)
        if args.current_potential and "cpp" in args.devices:
            snn_v = convert(model, split.x_train[:n_cal], readout="potential")
            res = snn_v.evaluate(x, y, duration=args.T * ms, dt=args.dt * ms, device="cpp", encoder="current",
                                 batch=args.batch, threads=threads, progress=True)
            emit(_row(name, "cpp, current input, potential readout", args, res, threads, convert_s,
                      x_regular_count=res.wall_s / regular_count.wall_s))
            compiled.append(rows[-1])
        naive_after = run_naive("after")
        naive_per_image = (naive.wall_s + naive_after.wall_s) / (2 * m) if naive else None
        for row in (naive_rows + compiled) if naive else ():
            row["x_naive"] = naive_per_image / (row["wall_s"] / row["images"])
        write("conversion_throughput", rows, cmd.strip(), notes)
        emit(dict(network=name, device="ANN (torch, CPU)", images=args.n, cores=torch.get_num_threads(),
                  batch=args.n, wall_s=ann_s, images_per_s=args.n / ann_s,
                  x_naive=naive_per_image / (ann_s / args.n) if naive else None,
                  accuracy=float(np.mean(ann_pred == y)), convert_s=convert_s))
        if args.spikingjelly and name != "vgg11":  # wall_s without the conversion, as above; convert_s is SpikingJelly's
            for row in spikingjelly_compare.throughput_rows(name, model, split.x_train[:4000], x, y, T_ms=args.T,
                                                            dt_ms=args.dt, naive_per_image=naive_per_image,
                                                            threads=threads):
                emit(row)


def memory_rows(name, snn, args, samples=2, duration=20 * ms):
    """Memory per copy of each form of the convolutions: the slope of the binary's peak resident
    memory between builds of two numbers of copies (a run of ``samples`` presentations of
    ``duration`` each: the memory does not depend on the duration), against the model's slope
    (`memory_estimate`)."""
    copies = (1, 4) if name == "vgg11" else (2, 8)
    x = snn.target_rates(NETWORKS[name][1]().x_test[:1])[snn.mapped.populations[0].name]
    forms = [c for c in args.conv if name != "vgg11" or c == "shared" or args.vgg11_unrolled]
    rows, per_copy = [], {}
    for conv in forms:
        peaks = []
        for B in copies:
            with CompiledNetwork(snn.mapped, B, duration=duration, dt=args.dt * ms, device="cpp", conv=conv,
                                 presentations=samples, record_output_every=duration / 20, threads=1) as net:
                net.run(np.repeat(x, B * samples, axis=0))
                peaks.append(net.peak_rss)
        measured = (peaks[1] - peaks[0]) / (copies[1] - copies[0])
        model = (memory_estimate(snn.mapped, copies[1], conv) - memory_estimate(snn.mapped, copies[0], conv)) / (
            copies[1] - copies[0])
        per_copy[conv] = measured
        neurons, stored, kernel = stored_size(snn.mapped, conv)
        rows.append(dict(network=name, device=f"cpp, conv={conv}: memory per copy", batch=f"{copies[0]} vs {copies[1]}",
                         peak_rss_mb=" / ".join(f"{p / 2 ** 20:.1f}" for p in peaks),
                         per_copy_measured_mb=measured / 2 ** 20, per_copy_model_mb=model / 2 ** 20,
                         model_error_pct=100 * (model - measured) / measured, neurons=neurons, stored_synapses=stored,
                         kernel_values=kernel))
    if {"shared", "unrolled"} <= set(per_copy):
        rows[forms.index("shared")]["x_less_than_unrolled"] = per_copy["unrolled"] / per_copy["shared"]
    return rows


def _row(name, device, args, res, threads, convert_s, **extra) -> dict:
    opt = res.settings.get("optimizations") or {}
    return dict(network=name, device=device, images=len(res.predictions), cores=threads if "cpp" in device else 1,
                batch=res.settings["batch"], presentations=res.settings["presentations"],
                parallel_runs=res.settings["parallel_runs"], openmp_threads=res.settings["openmp_threads"],
                wall_s=res.wall_s, build_s=res.build_s, run_s=res.run_s, sim_loop_s=res.sim_s,
                images_per_s=len(res.predictions) / res.wall_s,
                synaptic_events_per_s=res.synaptic_events / res.wall_s, accuracy=res.accuracy,
                agreement=res.agreement, convert_s=convert_s, cache_hit=any(res.settings.get("cache_hit") or []),
                peak_rss_mb=(res.settings.get("peak_rss_bytes") or 0) / 2 ** 20,
                memory_model_mb=res.settings.get("memory_estimate_bytes", 0) / 2 ** 20,
                optimizations=" ".join(f"{k}={v}" for k, v in opt.items()), **extra)


def probe(args):
    """The second process of the cache row: convert again (deterministic), then evaluate the first
    ``--n`` digits with Brian2's build and compile replaced by errors (a cache hit needs neither)."""
    import brian2.devices.cpp_standalone.device as standalone

    def refuse(*a, **k):
        raise RuntimeError("the cache probe started a build or a compiler: not a cache hit")

    standalone.CPPStandaloneDevice.build = refuse
    standalone.CPPStandaloneDevice.compile_source = refuse
    logging.getLogger("brian2").setLevel(logging.ERROR)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # shows the cache hit
    make_model, make_split, n_cal = NETWORKS[args.probe]
    split = make_split()
    t0 = time.perf_counter()
    snn = convert(make_model(), split.x_train[:n_cal])
    convert_s = time.perf_counter() - t0
    x, y = split.x_test[:args.n], split.y_test[:args.n]
    res = snn.evaluate(x, y, duration=args.T * ms, dt=args.dt * ms, device="cpp", batch=args.batch,
                       threads=args.threads, progress=False, conv=args.conv[0])
    print(json.dumps(dict(cache_hit=all(res.settings["cache_hit"]), build_s=res.build_s, wall_s=res.wall_s,
                          accuracy=res.accuracy, batch=res.settings["batch"],
                          presentations=res.settings["presentations"], convert_s=convert_s)))
    return 0


if __name__ == "__main__":
    main()
