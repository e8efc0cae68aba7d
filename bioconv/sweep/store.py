"""The results store of a sweep: a folder of Parquet files, one per finished task, one row per point.

    STORE/sweep.json                 the spec as given (quantities as text), for the record
    STORE/rows/task-<task_id>.parquet

Each row holds the point's ``config_hash`` (its key), its canonical config (quantities in SI base
units; the units are in the file's metadata and in ``load(store).attrs["units"]``), its metrics or,
for a point that failed, ``status = "error"`` and the ``error`` message, and its provenance: the
bioconv, Brian2, Python and numpy versions, the git commit of the source tree if it is one, the
host, the worker process and when it ran.

A task's file is written under a temporary name in the same folder, flushed to disk, then renamed
into place (`os.replace`, atomic on POSIX): a killed process leaves either the whole file or none
(and at worst a ``.tmp`` file that nothing reads). A task that runs twice (a worker died after
writing) rewrites the same file name, so no row is duplicated.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import BioconvError

ROWS = "rows"
SPEC = "sweep.json"
_UNITS_KEY = b"bioconv.units"


@functools.lru_cache(maxsize=1)
def provenance() -> dict:
    """What produced a row: versions, the source tree's git commit (if any), the host."""
    import brian2

    from .. import __version__
    root = Path(__file__).resolve().parents[2]
    commit = None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            commit = out.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10)
            if dirty.returncode == 0 and dirty.stdout.strip():
                commit += "+modified"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {"bioconv_version": __version__, "brian2_version": brian2.__version__,
            "python_version": platform.python_version(), "numpy_version": np.__version__,
            "pin": f"python {sys.version_info.major}.{sys.version_info.minor}, brian2=={brian2.__version__}",
            "git_commit": commit, "host": socket.gethostname()}


def rows_folder(store) -> Path:
    return Path(store) / ROWS


def task_file(store, task_id: str) -> Path:
    return rows_folder(store) / f"task-{task_id}.parquet"


def write_rows(store, task_id: str, rows: list[dict], units: dict[str, str]) -> Path:
    """Write one task's rows as one Parquet file, atomically (temporary name, fsync, rename)."""
    folder = rows_folder(store)
    folder.mkdir(parents=True, exist_ok=True)
    # Columns from every row, not from the first one only (pa.Table.from_pylist's rule): an error row
    # first, or points naming different parameters, would otherwise drop later rows' columns.
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = pa.Table.from_pydict({k: [r.get(k) for r in rows] for k in columns})
    meta = dict(table.schema.metadata or {})
    meta[_UNITS_KEY] = json.dumps(units, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    final = task_file(store, task_id)
    tmp = folder / f".task-{task_id}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


class StoreSpecError(BioconvError, ValueError):
    """A store holds the rows of another spec than the one run into it."""


def write_spec(store, description: dict, *, allow_other: bool = False):
    """Record the spec beside its rows (atomically; the latest run's spec wins). A store whose
    recorded ``spec_hash`` differs from ``description``'s is refused (`StoreSpecError`) unless
    ``allow_other``: its rows would mix with this spec's."""
    path = Path(store) / SPEC
    if not allow_other and path.is_file() and description.get("spec_hash"):
        try:
            old = json.loads(path.read_text()).get("spec_hash")
        except (OSError, ValueError, AttributeError):
            old = None
        if old is not None and old != description["spec_hash"]:
            raise StoreSpecError(f"sweep store {str(store)!r} holds the rows of another spec (spec_hash {old}, "
                                 f"this spec's: {description['spec_hash']}); give another store, or "
                                 f"allow_other_spec=True (--allow-other-spec) to add this spec's points to it")
    Path(store).mkdir(parents=True, exist_ok=True)
    tmp = Path(store) / f".{SPEC}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(description, indent=1, sort_keys=True, default=str))
    os.replace(tmp, Path(store) / SPEC)


def _files(store) -> list[Path]:
    folder = rows_folder(store)
    return sorted(folder.glob("task-*.parquet")) if folder.is_dir() else []


def finished(store, *, errors: bool = False) -> set[str]:
    """The config_hash of every point with a row in ``store``: successful ones, and (``errors``) the
    ones with an error row too."""
    done = set()
    for path in _files(store):
        t = pq.read_table(path, columns=["config_hash", "status"])
        hashes, status = t.column("config_hash").to_pylist(), t.column("status").to_pylist()
        done.update(h for h, s in zip(hashes, status) if errors or s == "ok")
    return done


def load(store) -> pd.DataFrame:
    """Every point of ``store`` as one DataFrame, one row per config_hash (index: none; a column).

    A point can have rows in several files only when an earlier run left an error row that a later
    run retried: the successful row is kept, else the latest. ``.attrs["units"]``: the SI unit of
    each parameter column."""
    files = _files(store)
    if not files:
        if not Path(store).exists():
            raise FileNotFoundError(f"no sweep store at {str(store)!r}")
        return pd.DataFrame(columns=["config_hash", "status", "error"])
    frames, units = [], {}
    for path in files:
        t = pq.read_table(path)
        meta = t.schema.metadata or {}
        if _UNITS_KEY in meta:
            units.update(json.loads(meta[_UNITS_KEY]))
        frames.append(t.to_pandas())
    df = pd.concat(frames, ignore_index=True, sort=False)
    df = (df.assign(_ok=df.status.eq("ok")).sort_values(["_ok", "finished_at"], kind="stable")
          .drop_duplicates("config_hash", keep="last").drop(columns="_ok")
          .sort_values(["finished_at", "config_hash"], kind="stable").reset_index(drop=True))
    df.attrs["units"] = units
    return df
