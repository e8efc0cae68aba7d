"""Phase-coded vs regular input (issue 13 item 4): the MNIST MLP's agreement with its ANN at equal T.

    .venv/bin/python bench/phase_coding.py                 # 1000 held-out digits, read at 10 .. 200 ms
    .venv/bin/python bench/phase_coding.py --n-test 200 --T 50

`bioconv.zoo.mnist_mlp()` converted with rate coding's defaults (p99.9 on the first 4000 training
digits, rate_max = 200 Hz, delta synapses, dt = 0.1 ms), evaluated on the first n_test held-out
digits of `bioconv.data.mnist_subset()` on the cpp device with each encoder: ``regular`` (seed 003
eq. 15), ``phase`` (`bioconv.coding.phase`, K = 8 bits, one step per phase: period 0.8 ms, full scale
A = 0.16 regular spikes per period) and ``current`` (no input spikes: the mean drive itself, the
ceiling of what an input code can give the rate-coded network). One run of --T ms per encoder; the
decision at each read time t is what a run of duration t gives (tests/test_sequence.py), so each row
is "at T = t". input_spikes_per_digit: what the deterministic encoders fire in t (computed from the
inputs). Writes bench/results/phase_coding.{md,csv}.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from brian2 import ms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write  # noqa: E402

from bioconv import convert, data, zoo  # noqa: E402
from bioconv.coding import encoders  # noqa: E402

NAME = "phase_coding"
DT = 0.1 * ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--n-cal", type=int, default=4000)
    ap.add_argument("--T", type=float, default=200.0, help="run length, ms")
    ap.add_argument("--time-points", type=int, default=20, help="read times, every T / time_points")
    ap.add_argument("--encoders", nargs="+", default=["regular", "phase", "current"])
    args = ap.parse_args()
    split = data.mnist_subset()
    x, y = split.x_test[:args.n_test], split.y_test[:args.n_test]
    snn = convert(zoo.mnist_mlp(), split.x_train[:args.n_cal])
    rate_max = float(snn.mapped.rate_max)
    # the inputs' values as fractions of rate_max (what the encoders code)
    a = snn.coding.encode(snn, snn.coding.check_inputs(x, snn.graph.input_shape, "bench")) / rate_max
    rows = []
    for enc in args.encoders:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = snn.evaluate(x, y, duration=args.T * ms, dt=DT, encoder=enc, time_points=args.time_points,
                           progress=False)
        wall = time.perf_counter() - t0
        e = encoders[enc]
        for t, agree, acc in zip(res.times, res.agreement_vs_time, res.accuracy_vs_time):
            steps = int(round(t / float(DT)))
            if enc == "regular":
                spikes = np.floor(a * rate_max * t + 1e-9).sum(1).mean()
            elif enc == "current":
                spikes = 0.0
            else:
                spikes = e.spikes(a, steps).sum(1).mean()
            rows.append(dict(T_ms=round(t * 1e3, 3), encoder=enc, agreement=agree, accuracy=acc,
                             ann=res.ann_accuracy, n_test=len(x), input_spikes_per_digit=round(float(spikes), 1),
                             encoder_params=str(e.params() or ""),
                             full_scale_A=e.full_scale(snn.mapped.rate_max, DT) if hasattr(e, "full_scale") else np.nan,
                             run_wall_s=round(wall, 1), load_start=load))
        print(f"{enc}: agreement at {args.T} ms {res.agreement:.3f} ({wall:.0f} s)", flush=True)
    rows.sort(key=lambda r: (r["T_ms"], args.encoders.index(r["encoder"])))
    write(NAME, rows, "python bench/phase_coding.py " + " ".join(sys.argv[1:]),
          notes=__doc__.split("\n\n", 2)[2].strip().replace("\n", " "))


if __name__ == "__main__":
    main()
