"""GPU check (issue 10, item 9): the converted MNIST ConvNet on its 1000 held-out digits, on brian2cuda
(``cuda``) and on bioconv's C++ device (``cpp``), side by side in one run, without torch.

    python bench/gpu_convnet.py [--net .gpu/convnet.bioconv] [--data .gpu/mnist_test.npz]
                                [--devices cuda cpp] [--T 200] [--dt 0.1] [--out DIR]

Made for the lent GPU machine (Python 3.12, brian2 2.10.1 + brian2cuda 1.0b1 from carried wheels):
`bench/gpu_prepare.py` writes the network file and the digits here, and bench/README.md gives the device
command. Settings are `bench/conversion_throughput.py`'s (T = 200 ms, dt = 0.1 ms, regular input at
200 Hz, count readout); wall times include building and compiling (brian2cuda projects are not cached).
Each row is written as soon as it is measured (``--out``, default bench/results): an interruption
keeps the rows before it. The ANN's decisions come from the graph's numpy forward pass (no torch).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default=str(ROOT / ".gpu" / "convnet.bioconv"))
    ap.add_argument("--data", default=str(ROOT / ".gpu" / "mnist_test.npz"))
    ap.add_argument("--devices", nargs="+", default=["cuda", "cpp"], choices=["cuda", "cpp", "runtime"])
    ap.add_argument("--n", type=int, default=None, help="digits (default: all in --data)")
    ap.add_argument("--T", type=float, default=200.0, help="presentation time, ms")
    ap.add_argument("--dt", type=float, default=0.1, help="time step, ms")
    ap.add_argument("--out", default=None, help="folder of the result table (default bench/results)")
    args = ap.parse_args(argv)

    import _report
    from brian2 import ms

    import bioconv

    if args.out:
        _report.RESULTS = Path(args.out)
    t0 = time.perf_counter()
    snn = bioconv.load(args.net)
    load_s = time.perf_counter() - t0
    d = np.load(args.data)
    x, y = d["x"], d["y"]
    if args.n:
        x, y = x[:args.n], y[:args.n]
    command = "python bench/gpu_convnet.py " + " ".join(sys.argv[1:] if argv is None else argv)
    notes = (f"MNIST ConvNet loaded from {Path(args.net).name} ({load_s:.1f} s, no torch), {len(x)} held-out digits, "
             f"T = {args.T} ms, dt = {args.dt} ms, the scheme's default input and readout. Wall times include the "
             f"build and the compile (nvcc for cuda, g++ for cpp). Cores: {os.cpu_count()}.")
    rows = []
    for device in args.devices:
        t0 = time.perf_counter()
        try:
            res = snn.evaluate(x, y, duration=args.T * ms, dt=args.dt * ms, device=device, progress=False)
        except Exception as err:  # a failed device is a row, not the end of the check: the others still run
            traceback.print_exc()
            rows.append(dict(device=device, error=f"{type(err).__name__}: {str(err)[:300]}",
                             wall_s=time.perf_counter() - t0))
            _report.write("gpu_convnet", rows, command, notes)
            continue
        s = res.settings
        rows.append(dict(device=device, images=len(res.predictions), wall_s=res.wall_s, build_s=res.build_s,
                         run_s=res.run_s, sim_loop_s=res.sim_s, images_per_s=len(res.predictions) / res.wall_s,
                         synaptic_events_per_s=res.synaptic_events / res.wall_s, accuracy=res.accuracy,
                         agreement=res.agreement, batch=s.get("batch"), presentations=s.get("presentations"),
                         parallel_runs=s.get("parallel_runs"), openmp_threads=s.get("openmp_threads")))
        _report.write("gpu_convnet", rows, command, notes)


if __name__ == "__main__":
    main()
