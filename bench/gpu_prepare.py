"""Prepare the GPU check (issue 10, item 9) here, where torch, the registry and the training data are.

    .venv/bin/python bench/gpu_prepare.py [--out .gpu]

The lent GPU machine has Python 3.12, numpy 2.5 and torch 2.11 and no registry, so everything the check
needs travels with the working tree in one ignored folder (``.gpu/``, named in the device call's
``carry``):

- ``convnet.bioconv``: the MNIST ConvNet (`bioconv.zoo.mnist_convnet`) converted as
  `bench/conversion_throughput.py` converts it (p99.9 on 4000 training digits), saved with `SNN.save`:
  loading and evaluating it needs no torch;
- ``mnist_test.npz``: the 1000 held-out digits (``x``, ``y``) of `bioconv.data.mnist_subset`;
- ``whl/``: cp312 wheels of brian2 2.10.1, brian2cuda 1.0b1 and numpy 2.3.5 (the pins of the >= 3.12
  lane; the machine's image has their other dependencies: sympy, jinja2, cython, pyparsing, pandas,
  nvidia-curand...).

Then run the check with the command in bench/README.md ("GPU check"), which runs bench/gpu_convnet.py.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The >= 3.12 pins (pyproject.toml); brian2cuda 1.0b1 pins brian2 2.10.1 exactly.
WHEELS = ("brian2==2.10.1", "brian2cuda==1.0b1", "numpy==2.3.5")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def download_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.whl"):  # one version of each, or the install there refuses
        stale.unlink()
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", str(folder)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + list(WHEELS), check=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / ".gpu"))
    ap.add_argument("--n", type=int, default=1000, help="held-out digits to carry")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from bioconv import data, zoo
    from bioconv.converter import convert

    split = data.mnist_subset()
    np.savez_compressed(out / "mnist_test.npz", x=split.x_test[:args.n], y=split.y_test[:args.n])
    snn = convert(zoo.mnist_convnet(), split.x_train[:4000])
    snn.save(out / "convnet.bioconv")
    download_wheels(out / "whl")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB (the device call carries at most 64 MiB with the working tree)")
    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"  {f.relative_to(out)}  {f.stat().st_size / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
