"""Benchmark: the points of a sweep's run sharing one input layer (`evaluate_points(share_inputs=)`)
against every copy with its own, side by side in one run, alternating.

One task of the sweep benchmark (`bench/sweep_throughput.py`): the MNIST MLP, 14 points of its
Cm x gl x tau_ref grid as copies of one run, 300 test digits, T = 200 ms, dt = 0.1 ms, one thread,
a cold project cache (the first round of each form compiles its project: the build column). Reports
the simulation loop (Brian2's own timer) and the call's wall time per round, and checks that both
forms give every point the same accuracy and synaptic events.

    python bench/input_sharing.py [--rounds 2] [--points 14] [--n-test 300]

Writes bench/results/input_sharing.{md,csv}.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from brian2 import ms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bioconv import convert, data, zoo  # noqa: E402
from bioconv.simulate import sweepable as sw  # noqa: E402

from _report import write  # noqa: E402
from sweep_throughput import grid  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--points", type=int, default=14)
    ap.add_argument("--n-test", type=int, default=300)
    args = ap.parse_args(argv)
    logging.getLogger("brian2").setLevel(logging.ERROR)
    ann, split = zoo.mnist_mlp(), data.mnist_subset()
    snn = convert(ann, split.x_train[:1000], bias="current")
    x, y = split.x_test[:args.n_test], split.y_test[:args.n_test]
    points = grid()[:args.points]
    load0 = os.getloadavg()
    rows, seen = [], {}
    with tempfile.TemporaryDirectory(prefix="input-sharing-bench-") as tmp:
        os.environ["BIOCONV_PROJECT_CACHE_DIR"] = tmp
        for r in range(args.rounds):
            for share in (True, False):
                t0 = time.perf_counter()
                got = sw.evaluate_points(snn, x, y, points, duration=200 * ms, dt=0.1 * ms, device="cpp", threads=1,
                                         sweepable=("Cm", "gl", "tau_ref"), points_per_run=len(points),
                                         share_inputs=share)
                wall = time.perf_counter() - t0
                values = [(p["accuracy"], p["synaptic_events"]) for p in got]
                seen.setdefault("values", values)
                rows.append({"round": r + 1, "input layer": "shared by the points" if share else "one per copy",
                             "copies": got[0]["batch"], "input copies": got[0]["input_copies"],
                             "presentations": got[0]["presentations"], "build (s)": got[0]["call_build_s"],
                             "loop (s)": got[0]["call_sim_s"],
                             "wall (s)": wall, "cache hit": got[0]["cache_hit"][0],
                             "same values as round 1's shared": values == seen["values"]})
    load1 = os.getloadavg()
    loops = {s: [r["loop (s)"] for r in rows if r["input layer"].startswith(s)] for s in ("shared", "one")}
    notes = (f"MNIST MLP, {len(points)} points (Cm x gl x tau_ref), {args.n_test} test digits, T = 200 ms, "
             f"dt = 0.1 ms, one thread, {args.rounds} alternating rounds. Loop without / with sharing: "
             f"{min(loops['one']):.2f}-{max(loops['one']):.2f} s / {min(loops['shared']):.2f}-"
             f"{max(loops['shared']):.2f} s. Load average (1 min) {load0[0]:.1f} at the start, {load1[0]:.1f} at "
             f"the end.")
    cmd = "python bench/input_sharing.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write("input_sharing", rows, cmd.strip(), notes)


if __name__ == "__main__":
    main()
