"""The container of a saved network: a zip file holding ``header.json``, its digest ``header.sha256``
and one ``.npy`` file per array, each listed in the header with its sha256.

Why this shape: every part opens with standard tools (``unzip -p net.bioconv header.json``, or
``numpy.load`` on the file, which reads it as an ``.npz``), nothing is pickled (``.npy`` members are
read with ``allow_pickle=False``; the header is JSON), and a truncated or altered file is caught
before any of it is used: the zip's own structure, the header's digest and each member's digest.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import BioconvError

HEADER, HEADER_DIGEST = "header.json", "header.sha256"


class NetworkFileError(BioconvError, ValueError):
    """A saved network file is missing, truncated, altered, or of a format this bioconv cannot read."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArchiveWriter:
    """Collects arrays (``add``) and raw members (``add_bytes``), then writes them with a header."""

    def __init__(self):
        self._members: dict[str, bytes] = {}

    def add(self, name: str, array) -> str:
        """Store ``array`` as member ``name`` + '.npy'; returns the member name for the header."""
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError(f"member {name!r}: object arrays cannot be saved without pickle")
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
        return self.add_bytes(name + ".npy", buf.getvalue())

    def add_bytes(self, name: str, data: bytes) -> str:
        if name in self._members or name in (HEADER, HEADER_DIGEST):
            raise ValueError(f"member {name!r} written twice")
        self._members[name] = data
        return name

    def write(self, path, header: dict) -> Path:
        """Write the file: ``header`` gains ``members`` (name -> sha256) and is stored as JSON."""
        header = dict(header, members={name: _sha256(data) for name, data in self._members.items()})
        text = json.dumps(header, indent=1, allow_nan=False).encode()
        path = Path(path)
        tmp = path.with_name(path.name + ".partial")
        # Written aside and renamed: a reader never sees half a file under the final name.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(HEADER, text)
            zf.writestr(HEADER_DIGEST, _sha256(text) + "\n")
            for name, data in self._members.items():
                zf.writestr(name, data)
        tmp.replace(path)
        return path


# What the zip reader raises on damaged bytes, besides BadZipFile: a damaged deflate stream (zlib),
# flag bits or sizes read from a damaged local header (NotImplementedError, ValueError, RuntimeError),
# a name that is no longer UTF-8, a short read.
_DAMAGED = (zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError, zlib.error, NotImplementedError, ValueError,
            RuntimeError)


class ArchiveReader:
    """Opens a file written by `ArchiveWriter` and checks its header; members are checked when read."""

    def __init__(self, path, what: str = "network file"):
        self.path = Path(path)
        self.where = f"{what} {str(self.path)!r}"
        if not self.path.is_file():
            raise NetworkFileError(f"{self.where} does not exist")
        try:
            self._zip = zipfile.ZipFile(self.path)
            names = set(self._zip.namelist())
            if HEADER not in names or HEADER_DIGEST not in names:
                raise NetworkFileError(f"{self.where} is a zip file but not a saved bioconv network "
                                       f"(no {HEADER} / {HEADER_DIGEST})")
            text = self._zip.read(HEADER)
            digest = self._zip.read(HEADER_DIGEST).decode().strip()
        except NetworkFileError:
            raise
        except _DAMAGED as err:
            raise NetworkFileError(f"{self.where} is not a readable network file (truncated or not a zip "
                                   f"file): {type(err).__name__}: {err}") from None
        if _sha256(text) != digest:
            raise NetworkFileError(f"{self.where}: {HEADER} does not match its digest in {HEADER_DIGEST}: the file "
                                   f"was altered or damaged")
        try:
            self.header = json.loads(text)
        except ValueError as err:
            raise NetworkFileError(f"{self.where}: {HEADER} is not valid JSON: {err}") from None
        if not isinstance(self.header, dict) or not isinstance(self.header.get("members"), dict):
            raise NetworkFileError(f"{self.where}: {HEADER} lacks the table of members")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._zip.close()

    def read_bytes(self, name: str) -> bytes:
        expected = self.header["members"].get(name)
        if expected is None:
            raise NetworkFileError(f"{self.where}: member {name!r} is not listed in its header")
        try:
            data = self._zip.read(name)
        except KeyError:
            raise NetworkFileError(f"{self.where}: member {name!r} is missing") from None
        except _DAMAGED as err:  # e.g. a CRC error, or a damaged deflate stream, in a damaged member
            raise NetworkFileError(f"{self.where}: member {name!r} cannot be read: {err}") from None
        if _sha256(data) != expected:
            raise NetworkFileError(f"{self.where}: member {name!r} does not match its sha256 in the header: the "
                                   f"file was altered or damaged")
        return data

    def array(self, name: str) -> np.ndarray:
        data = self.read_bytes(name)
        try:
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except ValueError as err:
            raise NetworkFileError(f"{self.where}: member {name!r} is not a plain numpy array: {err}") from None
