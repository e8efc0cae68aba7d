"""A user's data set from a file, for `bioconv convert` and `bioconv evaluate`.

- ``.npz`` with ``x`` (inputs, N x input shape) and optionally ``y`` (integer labels, N), read with
  ``allow_pickle=False``;
- ``.npy``: inputs only (no labels: the SNN is then scored by its agreement with the ANN);
- an MNIST IDX images file (``*-images-idx3-ubyte``, optionally ``.gz``): its labels are read from
  the file of the same name with ``labels-idx1`` when it is there; pixels scaled to [0, 1], shape
  (N, 1, H, W), as `bioconv.data.mnist_idx` does;
- a CIFAR-10 batch file of the python version (``data_batch_1`` ... ``data_batch_5``, ``test_batch``
  in ``cifar-10-batches-py``, or any file of that format under another name without one of the
  suffixes above), read by `bioconv.data.read_cifar_batch`: images and labels, pixels scaled to
  [0, 1], shape (N, 3, 32, 32). These files are pickles (the data set's own format); the reader
  rebuilds numpy arrays only and refuses a pickle that names anything else, so no code in the
  file runs.

Values are passed on as they are (no rescaling): the network's own input range is the user's to keep.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import mnist_idx, read_cifar_batch, read_idx
from ..errors import BioconvError


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray | None  # None: no labels in the file
    source: str


def read(path, limit: int | None = None) -> Dataset:
    """The data set in ``path`` (see the module docstring); ``limit``: keep the first ``limit`` samples."""
    path = Path(path)
    where = f"data file {str(path)!r}"
    if not path.is_file():
        raise BioconvError(f"{where} does not exist")
    name = path.name.lower()
    if name.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                keys = list(f.files)
                if "x" not in keys:
                    raise BioconvError(f"{where} holds {keys}; it needs the inputs under 'x' (and labels under 'y')")
                x, y = f["x"], (f["y"] if "y" in keys else None)
        except BioconvError:
            raise
        except (OSError, ValueError) as err:  # ValueError: an object array (would need pickle) or a bad file
            raise BioconvError(f"{where} cannot be read as plain numpy arrays (allow_pickle=False): {err}") from None
    elif name.endswith(".npy"):
        try:
            x, y = np.load(path, allow_pickle=False), None
        except (OSError, ValueError) as err:
            raise BioconvError(f"{where} cannot be read as a plain numpy array (allow_pickle=False): {err}") from None
    elif "idx" in name:
        labels = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        if labels != path and labels.is_file():
            x, y = mnist_idx(path, labels)
        else:
            raw = read_idx(path)
            if raw.ndim != 3:
                raise BioconvError(f"{where}: an IDX images file holds (N, H, W), got {raw.shape}")
            x, y = (raw.astype(np.float32) / 255.0)[:, None], None
    elif _is_cifar_batch(path):
        x, y = read_cifar_batch(path)
    else:
        raise BioconvError(f"{where}: unknown kind of data file; give an .npz (x, y), an .npy (x), an MNIST IDX "
                           f"images file (*-images-idx3-ubyte[.gz]) or a CIFAR-10 python batch file (data_batch_N, "
                           f"test_batch)")
    if x.dtype.kind not in "biuf" or x.ndim < 2 or len(x) == 0:
        raise BioconvError(f"{where}: inputs 'x' must be a non-empty numeric array (N, ...), got dtype {x.dtype}, "
                           f"shape {x.shape}")
    if y is not None:
        if y.dtype.kind not in "iu" or y.shape != (len(x),):
            raise BioconvError(f"{where}: labels 'y' must be integers of shape ({len(x)},) to match 'x', got dtype "
                               f"{y.dtype}, shape {y.shape}")
    if limit is not None:
        if int(limit) < 1:
            raise BioconvError(f"limit must be a positive number of samples, got {limit!r}")
        x, y = x[:limit], (None if y is None else y[:limit])
    return Dataset(x, y, str(path))


def _is_cifar_batch(path: Path) -> bool:
    """A CIFAR-10 python batch: by its name, or by its content (a pickle of protocol 2 or later, as
    the data set's files are, starts with the PROTO opcode 0x80)."""
    if path.name == "test_batch" or path.name.startswith("data_batch_"):
        return True
    with open(path, "rb") as fh:
        return fh.read(1) == b"\x80"
