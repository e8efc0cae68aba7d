"""Benchmark: how long `bioconv.zoo.cifar10_vgg11` trains on this machine, from the time of a few
training steps of `bioconv.zoo.vgg11` on random 3x32x32 batches (the recipe's batch size and
optimizer, `bioconv.zoo_cifar.CIFAR_TRAINING`), extrapolated to CIFAR-10's 50,000 images and the
recipe's epochs (the data loading and the accuracy passes left out).

    python bench/vgg11_train_time.py [--steps 5]

Writes bench/results/vgg11_train_time.{md,csv}; the load average at the start and end goes in the
table (the figure scales with the cores the run gets).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bioconv import zoo  # noqa: E402
from bioconv.zoo_cifar import CIFAR_TRAINING  # noqa: E402

from _report import write  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps (after one untimed)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    batch = CIFAR_TRAINING["batch_size"]
    model = zoo.vgg11().train()
    opt = torch.optim.Adam(model.parameters(), lr=CIFAR_TRAINING["lr"], weight_decay=CIFAR_TRAINING["weight_decay"])
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    load_start = os.getloadavg()[0]
    step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_image = (time.perf_counter() - t0) / (args.steps * batch)
    epoch_s = per_image * 50_000
    write("vgg11_train_time", [dict(torch_threads=torch.get_num_threads(), batch=batch, steps=args.steps,
                                    s_per_image=per_image, epoch_min=epoch_s / 60, epochs=CIFAR_TRAINING["epochs"],
                                    total_h=epoch_s * CIFAR_TRAINING["epochs"] / 3600, load_start=load_start,
                                    load_end=os.getloadavg()[0])],
          "python bench/vgg11_train_time.py " + " ".join(argv if argv is not None else sys.argv[1:]),
          "Training steps of zoo.vgg11 on random batches, extrapolated to 50,000 images per epoch.")


if __name__ == "__main__":
    main()
