"""The CIFAR-10 python batch loader (`bioconv.data.cifar10`), on small files the tests write in the
python version's layout."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from bioconv import data
from bioconv.errors import BioconvError


def _write_batch(path, n, seed, protocol=2):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    y = [int(v) for v in rng.integers(0, 10, n)]
    with open(path, "wb") as fh:
        pickle.dump({b"batch_label": b"test", b"labels": y, b"data": x,
                     b"filenames": [b"f%d.png" % k for k in range(n)]}, fh, protocol=protocol)
    return x, np.array(y)


def test_cifar10_reads_the_python_batches(tmp_path):
    written = [_write_batch(tmp_path / name, 3 + k, k) for k, name in enumerate(data.CIFAR10_TRAIN)]
    x_test, y_test = _write_batch(tmp_path / data.CIFAR10_TEST, 4, 9, protocol=4)
    split = data.cifar10(tmp_path)
    assert split.x_train.shape == (sum(3 + k for k in range(5)), 3, 32, 32) and split.x_train.dtype == np.float32
    raw = np.concatenate([x for x, _ in written])
    # a row holds the red plane, then green, then blue, each row-major
    np.testing.assert_array_equal(split.x_train[:, 1, 2, 5], raw[:, 1024 + 2 * 32 + 5] / np.float32(255))
    np.testing.assert_array_equal(split.y_train, np.concatenate([y for _, y in written]))
    np.testing.assert_array_equal(split.x_test.reshape(4, -1) * 255, x_test.astype(np.float32))
    np.testing.assert_array_equal(split.y_test, y_test)


def test_cifar10_names_what_is_wrong(tmp_path):
    with pytest.raises(BioconvError, match="lacks .*data_batch_1"):
        data.cifar10(tmp_path)
    bad = tmp_path / "bad"
    with open(bad, "wb") as fh:  # a pickle that would run code when loaded
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": pickle.loads}, fh)
    with pytest.raises(BioconvError, match="refused to load"):
        data.read_cifar_batch(bad)
    with open(bad, "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(BioconvError, match=r"expected data \(N, 3072\)"):
        data.read_cifar_batch(bad)
    with open(bad, "wb") as fh:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, fh)
    with pytest.raises(BioconvError, match="labels outside"):
        data.read_cifar_batch(bad)
