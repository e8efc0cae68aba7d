"""The on-disk cache of compiled projects: one entry per network shape, reused across calls and
processes.

An entry is a compiled cpp project (binary, static arrays, ``manifest.json``) under `cache_root`,
named by the hash of everything that shapes its code (`project_key`). Entries are only written
whole (copied to a temporary folder, then renamed) and never written by a run: runs keep their
inputs and results in folders of their own, so any number of processes can share an entry. A lock
per key keeps two processes from compiling the same shape at once. The cache keeps at most
`max_bytes`; beyond that the least recently used entries go.

A process that uses an entry holds a shared lock on it (`in_use`, as long as its `CompiledNetwork` is
open): eviction and `clear` take the entry only when nobody holds it, and remove it by renaming it
away first, so no process ever sees half an entry. A hit checks the entry's files against its
manifest (names and sizes); an incomplete entry is compiled again.

Settings (environment): ``BIOCONV_PROJECT_CACHE_DIR`` (default ``$BIOCONV_CACHE/projects``, beside
the zoo's ``$BIOCONV_CACHE/zoo``; ``$BIOCONV_CACHE`` defaults to ``~/.cache/bioconv``),
``BIOCONV_PROJECT_CACHE=off`` disables it, ``BIOCONV_PROJECT_CACHE_SIZE`` (bytes, or with K/M/G;
default 4G). The command line: ``bioconv cache list | clear | path``.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from ..errors import ParameterError

MANIFEST = "manifest.json"
_LAST_USED = ".last_used"
DEFAULT_SIZE = 4 * 2 ** 30


def cache_root() -> Path:
    env = os.environ.get("BIOCONV_PROJECT_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("BIOCONV_CACHE") or Path.home() / ".cache" / "bioconv") / "projects"


def enabled() -> bool:
    return os.environ.get("BIOCONV_PROJECT_CACHE", "on").strip().lower() not in ("0", "off", "false", "no")


def max_bytes() -> int:
    """The cache's size limit in bytes ($BIOCONV_PROJECT_CACHE_SIZE: a number, optionally with K, M or G)."""
    env = os.environ.get("BIOCONV_PROJECT_CACHE_SIZE", "").strip()
    if not env:
        return DEFAULT_SIZE
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?)I?B?", env.upper())
    if m is None:
        raise ParameterError(f"$BIOCONV_PROJECT_CACHE_SIZE must be a size such as 500M or 4G, got {env!r}")
    return int(float(m.group(1)) * {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}[m.group(2)])


def project_key(parts: dict) -> str:
    """sha256 of ``parts`` (JSON-able values and numpy arrays, nested in dicts and lists): the same
    parts give the same key in any process."""
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()[:32]


def _feed(h, value):
    if isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value):
            h.update(json.dumps(str(k)).encode())
            _feed(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(value, np.ndarray) or hasattr(value, "dtype"):
        arr = np.ascontiguousarray(np.asarray(value))
        h.update(f"nd{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    else:
        h.update(json.dumps(value, sort_keys=True, default=str).encode())


@dataclass
class Entry:
    key: str
    path: Path
    size: int
    last_used: float
    manifest: dict


def _folder_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:  # removed meanwhile by another process
            pass
    return total


def entries() -> list[Entry]:
    """Every complete entry, least recently used first."""
    root = cache_root()
    out = []
    if not root.is_dir():
        return out
    for path in root.iterdir():
        man = path / MANIFEST
        try:
            if not (path.is_dir() and man.exists()) or path.name.startswith("."):
                continue
            stamp = path / _LAST_USED
            used = stamp.stat().st_mtime if stamp.exists() else man.stat().st_mtime
            manifest = json.loads(man.read_text())
        except (OSError, ValueError):  # removed or being written meanwhile
            continue
        out.append(Entry(path.name, path, _folder_size(path), used, manifest))
    return sorted(out, key=lambda e: e.last_used)


def complete(path: Path, manifest: dict) -> bool:
    """Whether entry ``path`` holds every file its manifest lists, with its size."""
    for name, size in manifest.get("files", {}).items():
        try:
            if (Path(path) / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return "files" in manifest


@contextmanager
def in_use(key: str):
    """A shared lock on entry ``key`` while a process runs it: `evict` and `clear` leave it alone."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.use", "a") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_if_unused(key: str) -> bool:
    """Remove entry ``key`` unless a process uses or writes it: renamed away first (atomic), then deleted."""
    root = cache_root()
    try:
        with FileLock(str(root / f"{key}.lock"), timeout=0), open(root / f"{key}.use", "a") as use:
            try:
                fcntl.flock(use, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            gone = root / f".{key}.{os.getpid()}.removed"
            try:
                os.rename(root / key, gone)
            except FileNotFoundError:
                return False
            shutil.rmtree(gone, ignore_errors=True)
            return True
    except TimeoutError:  # being compiled or stored
        return False


@contextmanager
def locked(key: str, timeout: float = 3600):
    """Hold the lock of entry ``key`` (other processes wait up to ``timeout`` s): yields the entry's
    folder if it is complete, else None (the caller compiles and `store`s it under the lock)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock"), timeout=timeout):
        path = root / key
        try:
            hit = complete(path, json.loads((path / MANIFEST).read_text()))
        except (OSError, ValueError):
            hit = False
        yield path if hit else None


def store(key: str, project: Path, files: list[str], manifest: dict) -> Path:
    """Copy ``files`` (paths relative to ``project``: the binary, its static arrays) and the manifest
    into entry ``key``; call under `locked`. Returns the entry's folder."""
    root = cache_root()
    final = root / key
    tmp = root / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = dict(manifest, files={})
    for name in files:
        src, dst = Path(project) / name, tmp / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        manifest["files"][name] = dst.stat().st_size
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    if final.exists():  # an incomplete entry (under this key's lock: nobody runs it)
        old = root / f".{key}.{os.getpid()}.removed"
        os.rename(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.rename(tmp, final)
    touch(final)
    evict(keep=key)
    return final


def touch(path: Path):
    (Path(path) / _LAST_USED).write_text(str(time.time()))


def evict(keep: str | None = None, limit: int | None = None) -> list[str]:
    """Remove least recently used entries until the cache holds at most ``limit`` bytes (default
    `max_bytes`); never ``keep``. Returns the removed keys."""
    limit = max_bytes() if limit is None else int(limit)
    all_entries = entries()
    total = sum(e.size for e in all_entries)
    removed = []
    for e in all_entries:
        if total <= limit:
            break
        if e.key == keep or not _remove_if_unused(e.key):  # in use by another process: kept
            continue
        total -= e.size
        removed.append(e.key)
    return removed


def clear() -> int:
    """Remove every entry that no process uses, and what crashed writers left; returns how many
    entries were removed."""
    removed = len(evict(limit=0))
    root = cache_root()
    if root.is_dir():
        for path in root.glob(".*.tmp"):  # a writer that died while copying (its pid is gone)
            pid = path.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                shutil.rmtree(path, ignore_errors=True)
    return removed
