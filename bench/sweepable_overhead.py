"""Benchmark: the simulation-loop cost of a sweepable build over the specialized build, on the MNIST
ConvNet (seed 003 Table V), the same digits, copies and presentations, one process on one core.

    python bench/sweepable_overhead.py [--n 64] [--T 100] [--dt 0.1] [--repeats 3]
                                       [--sets Cm,gl,tau_ref all] [--point gl=2nS tau_ref=1ms] [--cache-dir DIR]

- specialized: today's build (uniform parameters shared, tau_ref = 0 without the refractory mechanism,
  the bias-free perfect integrators folded);
- each --sets entry: `CompiledNetwork(..., sweepable=names)` without overrides ('all' = every name that
  applies to the network), checked to give the specialized build's spike counts;
- at the point (--point): the specialized build of the network at that point (what one compile per
  point would run: a leaky membrane integrated exactly, the refractory mechanism) against each
  sweepable build run there with overrides: the sweep's own cost, apart from the physics the point
  adds (a leak to integrate, refractoriness to test);
- loop time = `CompiledNetwork.sim_seconds` (Brian2's own timer of the simulation loop, start-up,
  loading and writing excluded); the builds run in turn, --repeats times, and the table gives the
  median of each and its ratio to the specialized median (this shared machine's speed drifts).
Writes bench/results/sweepable_overhead.{md,csv}. Needs torch (the zoo) and the cached ConvNet.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from brian2 import ms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bioconv import data, zoo  # noqa: E402
from bioconv.converter import convert  # noqa: E402
from bioconv.simulate import sweepable as sw  # noqa: E402
from bioconv.simulate.runner import CompiledNetwork  # noqa: E402
from bioconv.units import UNITS  # noqa: E402

from _report import write  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="test digits (2 copies x n/2 presentations, one run)")
    ap.add_argument("--T", type=float, default=100.0, help="presentation time, ms")
    ap.add_argument("--dt", type=float, default=0.1, help="time step, ms")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sets", nargs="+", default=["Cm,gl,tau_ref", "all"],
                    help="sweepable sets, names joined by commas, or 'all'")
    ap.add_argument("--point", nargs="*", default=["gl=2nS", "tau_ref=1ms"],
                    help="NAME=VALUE with a unit, e.g. gl=2nS (none: no rows at a point)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="project cache (default: a new, empty one)")
    args = ap.parse_args(argv)
    os.environ["BIOCONV_PROJECT_CACHE_DIR"] = str(args.cache_dir or tempfile.mkdtemp(prefix="bioconv-bench-cache-"))
    logging.getLogger("brian2").setLevel(logging.ERROR)
    split = data.mnist_subset()
    snn = convert(zoo.mnist_convnet(), split.x_train[:1000])  # the loop does not depend on the calibration size
    print("converted", flush=True)
    rates = snn.target_rates(split.x_test[:args.n])[snn.mapped.populations[0].name]
    applicable = tuple(sw.mapped_values(snn.mapped))
    sets = {s: applicable if s == "all" else sw.check_names(s.split(",")) for s in args.sets}
    point = dict(_quantity(a) for a in args.point)
    # label -> (network, sweepable names, params, the specialized build it is compared with)
    builds = {"specialized": (snn.mapped, (), None, "specialized")}
    builds |= {f"sweepable {s}": (snn.mapped, names, None, "specialized") for s, names in sets.items()}
    if point:
        at = ", ".join(f"{k}={v}" for k, v in point.items())
        builds[f"specialized at {at}"] = (sw.apply_point(snn.mapped, point), (), None, f"specialized at {at}")
        builds |= {f"sweepable {s} at {at}": (snn.mapped, names, point, f"specialized at {at}")
                   for s, names in sets.items() if set(point) <= set(names)}
    B, K = 2, -(-args.n // 2)
    loops = {name: [] for name in builds}
    compile_s, counts = {}, {}
    for rep in range(args.repeats):
        for name, (net, names, params, _) in builds.items():
            t0 = time.perf_counter()
            with CompiledNetwork(net, B, duration=args.T * ms, dt=args.dt * ms, device="cpp", threads=1,
                                 presentations=K, sweepable=names) as compiled:
                compile_s.setdefault(name, time.perf_counter() - t0)
                out = compiled.run(rates, params=params)
                loops[name].append(compiled.sim_seconds)
            counts.setdefault(name, out.counts)
            print(f"repeat {rep}: {name}: loop {compiled.sim_seconds:.2f} s", flush=True)
    rows = []
    for name, (net, names, params, base) in builds.items():
        same = all(np.array_equal(counts[name][k], counts[base][k]) for k in counts[base])
        med, ref = float(np.median(loops[name])), float(np.median(loops[base]))
        spikes = sum(int(c.sum()) for c in counts[name].values())
        rows.append({"build": name, "sweepable": ",".join(names) or "-", "first open s (compile)": compile_s[name],
                     "loop s (median)": med, "loop s (all)": " ".join(f"{v:.2f}" for v in loops[name]),
                     "compared with": base, "x that": med / ref, "spikes": spikes,
                     "same counts as that": same})
    cmd = "python bench/sweepable_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write("sweepable_overhead", rows, cmd.strip(),
          f"MNIST ConvNet (bias-free, current strategy: perfect integrators, delta synapses), {args.n} test digits, "
          f"T = {args.T} ms, dt = {args.dt} ms, regular input, {B} copies x {K} presentations in one run, one "
          f"thread; builds in turn, {args.repeats} repeats. 'x that': median loop over that of the build it is "
          f"compared with; 'same counts as that': every population's spike counts equal (at a point, the "
          f"specialized build integrates the leak exactly and the sweepable one with RK4).")


def _quantity(arg: str):
    """'gl=2nS' -> ('gl', 2 nS): a number and a unit name."""
    name, _, text = arg.partition("=")
    m = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([A-Za-z]*)\s*", text)
    if not m:
        raise SystemExit(f"--point {arg!r}: expected NAME=NUMBERUNIT, e.g. gl=2nS")
    return name, float(m.group(1)) * (UNITS[m.group(2)] if m.group(2) else 1.0)


if __name__ == "__main__":
    main()
