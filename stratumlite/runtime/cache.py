"""The persistent cache: node outputs and fitted state on disk, by lineage key.

Design
------
:class:`PersistentCache` implements the scheduler's ``ResultStore`` protocol
(``contains``, ``get``, ``put``); a payload is ``(value, fitted_state)``. It is
a hook around the scheduler (it never decides *what* to compute) and it is
picklable: workers of the process and Dask executors store their own results.

Layout (one directory per entry, written once, never modified)::

    <directory>/
      ab/abcdef0123.../            one entry (key = lineage key of the task)
        manifest.json              format, per-file bytes + sha256, seconds, ...
        value.parquet | value.npy | value.pkl
        state.pkl                  fitted state (cloudpickle, always)
      ab/abcdef0123....uses        hit log: one byte appended per hit
      .tmp/                        entries being written (and being deleted)
      .lock                        serializes eviction between processes

The value is stored by :mod:`.serialization` (parquet for pandas/polars frames
and series, ``.npy`` for numpy arrays, cloudpickle otherwise; always an exact
round trip). ``manifest.json`` holds ``format``, ``files`` (bytes and sha256 of
each file), ``bytes`` (their total), ``seconds`` (compute time), ``created``,
``last_used`` and ``uses`` at creation, and a ``checksum`` of the manifest
itself. An entry is immutable, so hits are recorded next to it: each hit
appends one byte to ``<key>.uses`` (one ``write`` with ``O_APPEND``, safe
between processes); ``uses = 1 + size of that file`` and ``last_used`` is its
mtime.

Atomic writes: an entry is written into ``.tmp/<key>.<host>.<pid>.<random>/``
(each file fsynced), then renamed into place with one ``rename``. A reader sees
either no entry or a complete one, never a torn one. The directories are not
fsynced (each fsync costs 0.5-5 ms here): after an OS crash a lost rename is a
miss, and a lost file is caught by the checks below like any corruption.
When two processes write the same key at once, the second ``rename`` fails
(the target exists and is not empty): that writer drops its copy and both end
with the winner's valid entry. A writer killed mid-way leaves only a
``.tmp`` directory, swept later (its process is gone, or it is over an hour
old).

Integrity: ``get`` checks the manifest's checksum and every file's size and
sha256 while reading. A corrupt, truncated or undecodable entry is renamed
away (the one reader whose rename succeeds issues one
:class:`CacheCorruptionWarning` naming the key), deleted, and ``get`` returns
``(False, None)``: the scheduler recomputes the task and stores it again.

Cost rule (``put``): an entry is worth storing when computing it again costs
more than reading it back::

    store  iff  seconds > read_overhead + bytes / read_bandwidth

with ``read_overhead`` = 1 ms (opening three files, parsing the manifest,
unpickling) and ``read_bandwidth`` = 500 MB/s (decode + sha256 on one core;
see ``PersistentCache`` for the measured figures). The test runs
twice: before writing, with the value's in-memory size (so a task faster than
``read_overhead`` — a column selection, a constant — is skipped without
serializing anything), and after, with the real size of the files. An entry
larger than ``max_bytes`` is never stored.

Eviction (size cap ``max_bytes``): after each store that brings the total over
the cap, entries are evicted by increasing *value*
``uses * seconds / bytes`` (SystemDS' lineage cache: what one byte of the
entry saves), oldest ``last_used`` first among equals, until the total fits.

Worked example::

    >>> import tempfile, pandas as pd
    >>> cache = PersistentCache(tempfile.mkdtemp())
    >>> df = pd.DataFrame({"a": [1.0, 2.0]})
    >>> cache.put("a" * 32, (df, {}), seconds=0.0001)   # instant: not worth it
    False
    >>> cache.put("a" * 32, (df, {}), seconds=2.0)
    True
    >>> found, (value, state) = cache.get("a" * 32)
    >>> found, value.equals(df)
    (True, True)
    >>> {k: cache.stats()[k] for k in ("entries", "hits", "stores")}
    {'entries': 1, 'hits': 1, 'stores': 1}

Counters (``hits``, ``misses``, ``stores``, ``evictions``, ``corruptions``) are
kept per process: with the process or Dask executors, the workers' counters stay
in the workers (the scheduler's task records say which tasks hit).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from .serialization import (
    CorruptFileError,
    FileInfo,
    Written,
    canonical_json,
    dump_pickle,
    estimate_nbytes,
    load_pickle,
    read_value,
    write_value,
)

__all__ = ["CacheCorruptionWarning", "PersistentCache"]

_KEY = re.compile(r"[0-9A-Za-z_-]{3,128}")
_MANIFEST = "manifest.json"
_STATE = "state.pkl"
_STALE_SECONDS = 3600.0
_COUNTERS = ("hits", "misses", "stores", "evictions", "corruptions")


class CacheCorruptionWarning(UserWarning):
    """A cache entry was corrupt or unreadable; it was deleted and will be recomputed."""


class PersistentCache:
    """Lineage-keyed store of ``(value, fitted_state)`` on disk (see module docstring).

    Parameters
    ----------
    directory : path
        Where entries live (``Config.cache_dir``); created on first write.
    max_bytes : int or None
        Size cap; entries are evicted by value ``uses * seconds / bytes``.
    read_bandwidth : float
        Bytes per second the cost rule assumes for reading an entry back.
        Measured (``benchmarks/bench_runtime.py``, 64 MB of float64, sha256
        checked, 2 shared cores at load ~10): npy ~400 MB/s, parquet ~160 MB/s,
        pickle ~220 MB/s; on an idle core parquet decode + sha256 of 132 MB
        takes 0.2 s (~650 MB/s). Writes: 85-130 MB/s (parquet encoding, sha256
        and fsync).
    read_overhead : float
        Fixed seconds per entry read (files opened, manifest parsed): 1-4 ms
        measured for a tiny entry (a tiny put costs ~20 ms: three fsyncs). The
        default 1 ms also skips tasks too quick to be worth a file.
    """

    def __init__(self, directory, max_bytes: int | None = None, *,
                 read_bandwidth: float = 5e8, read_overhead: float = 1e-3):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.read_bandwidth = float(read_bandwidth)
        self.read_overhead = float(read_overhead)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._swept = False
        self._manifests: dict[tuple[str, int], dict] = {}  # (key, inode) -> manifest

    # --- pickling (workers get a copy without the lock and counters) -------
    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        state["_counts"] = dict.fromkeys(_COUNTERS, 0)
        state["_manifests"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        cap = "" if self.max_bytes is None else f", max_bytes={self.max_bytes}"
        return f"PersistentCache({str(self.directory)!r}{cap})"

    # --- paths ---------------------------------------------------------------
    def _entry(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"A cache key must be 3-128 characters [0-9A-Za-z_-]. "
                             f"Got {key!r} instead.")
        return self.directory / key[:2] / key

    def _uses_file(self, key: str) -> Path:
        return self.directory / key[:2] / (key + ".uses")

    @property
    def _tmp(self) -> Path:
        return self.directory / ".tmp"

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    # --- the ResultStore protocol ------------------------------------------
    def contains(self, key: str) -> bool:
        """Whether an entry exists for ``key`` (not verified: ``get`` does that)."""
        return (self._entry(key) / _MANIFEST).is_file()

    def get(self, key: str, *, state_only: bool = False) -> tuple[bool, Any]:
        """``(True, (value, state))`` for a valid entry, else ``(False, None)``.

        ``state_only=True`` reads only the fitted state (the value is ``None``):
        a learner needs an upstream transformer's state, not its output.
        """
        entry = self._entry(key)
        try:
            manifest = _read_manifest(entry)
            files = {n: FileInfo(int(f["bytes"]), str(f["sha256"]))
                     for n, f in manifest["files"].items()}
            state_info = files.pop(_STATE)
            written = Written(manifest["format"], files, manifest.get("meta") or {})
            value = None if state_only else read_value(entry, written)
            state = load_pickle(entry / _STATE, state_info)
        except FileNotFoundError as e:
            if entry.exists():  # a file of a visible entry is missing
                self._corrupt(key, entry, e)
            self._count("misses")
            return False, None
        except Exception as e:  # noqa: BLE001 - corrupt, truncated or undecodable
            self._corrupt(key, entry, e)
            self._count("misses")
            return False, None
        self._touch(key)
        self._count("hits")
        return True, (value, state)

    def put(self, key: str, payload: Any, seconds: float) -> bool:
        """Store ``payload = (value, state)`` if the cost rule says it is worth it.

        Returns whether an entry was written (``False``: not worth it, too big
        for ``max_bytes``, or already present).
        """
        value, state = payload
        entry = self._entry(key)
        if seconds <= self.read_overhead:  # instant: not even worth sizing
            return False
        if not self._worth(seconds, estimate_nbytes(value)) or self.contains(key):
            return False
        self._sweep_once()
        tmp = self._tmp / f"{key}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            written = write_value(value, tmp, fsync=True)
            state_info = dump_pickle(state, tmp / _STATE, fsync=True)
            files = {**written.files, _STATE: state_info}
            nbytes = sum(f.bytes for f in files.values())
            if not self._worth(seconds, nbytes):
                return False
            now = time.time()
            manifest = {"version": 1, "key": key, "format": written.format,
                        "meta": written.meta, "bytes": nbytes, "seconds": float(seconds),
                        "created": now, "last_used": now, "uses": 1,
                        "files": {n: {"bytes": f.bytes, "sha256": f.sha256}
                                  for n, f in files.items()}}
            _write_manifest(tmp, manifest)
            entry.parent.mkdir(parents=True, exist_ok=True)
            for attempt in range(2):
                try:
                    os.rename(tmp, entry)
                    break
                except OSError as e:
                    if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    if self.contains(key):
                        return True  # another writer won; its entry is as good as ours
                    if attempt:
                        raise
                    self._remove(entry)  # a damaged entry (its manifest is gone)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self._uses_file(key).unlink()
        self._count("stores")
        if self.max_bytes is not None:
            self._enforce_cap()
        return True

    def _worth(self, seconds: float, nbytes: int) -> bool:
        if self.max_bytes is not None and nbytes > self.max_bytes:
            return False
        return seconds > self.read_overhead + nbytes / self.read_bandwidth

    # --- hits, corruption ----------------------------------------------------
    def _touch(self, key: str) -> None:
        try:
            fd = os.open(self._uses_file(key), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)

    def _corrupt(self, key: str, entry: Path, error: BaseException) -> None:
        if self._remove(entry):
            self._count("corruptions")
            warnings.warn(
                f"stratumlite cache entry {key} in {self.directory} is corrupt or "
                f"unreadable ({type(error).__name__}: {error}); it was deleted and "
                f"will be recomputed.", CacheCorruptionWarning, stacklevel=3)

    def _remove(self, entry: Path) -> bool:
        """Take ``entry`` out of view (one rename), then delete it; False if gone."""
        grave = self._tmp / f"{entry.name}.del.{uuid.uuid4().hex[:8]}"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            os.rename(entry, grave)
        except FileNotFoundError:
            return False
        except OSError:
            shutil.rmtree(entry, ignore_errors=True)
        else:
            shutil.rmtree(grave, ignore_errors=True)
        with contextlib.suppress(OSError):
            self._uses_file(entry.name).unlink()
        return True

    # --- eviction ------------------------------------------------------------
    def _scan(self) -> list[dict]:
        """Every entry: key, bytes, seconds, uses, last_used, created."""
        out = []
        seen: dict[tuple[str, int], dict] = {}
        if not self.directory.is_dir():
            return out
        for shard in os.scandir(self.directory):
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for item in os.scandir(shard.path):
                if not item.is_dir():
                    continue
                memo = (item.name, item.inode())  # entries are immutable
                m = self._manifests.get(memo)
                if m is None:
                    try:
                        m = _read_manifest(Path(item.path))
                    except Exception:  # noqa: BLE001 - gone, or get() reports it
                        continue
                seen[memo] = m
                uses, last_used = int(m.get("uses", 1)), float(m.get("last_used", 0.0))
                try:
                    st = os.stat(self._uses_file(item.name))
                    uses += st.st_size
                    last_used = max(last_used, st.st_mtime)
                except OSError:
                    pass
                out.append({"key": item.name, "bytes": int(m["bytes"]),
                            "seconds": float(m["seconds"]), "uses": uses,
                            "last_used": last_used, "created": float(m["created"])})
        self._manifests = seen
        return out

    def _enforce_cap(self) -> None:
        with _FileLock(self.directory / ".lock"):
            entries = self._scan()
            total = sum(e["bytes"] for e in entries)
            if total <= self.max_bytes:
                return
            entries.sort(key=lambda e: (e["uses"] * e["seconds"] / max(e["bytes"], 1),
                                        e["last_used"]))
            for e in entries:
                if total <= self.max_bytes:
                    break
                if self._remove(self._entry(e["key"])):
                    self._count("evictions")
                total -= e["bytes"]

    def _sweep_once(self) -> None:
        """Delete ``.tmp`` leftovers of dead writers (once per cache object)."""
        if self._swept:
            return
        self._swept = True
        if not self._tmp.is_dir():
            return
        host = socket.gethostname()
        now = time.time()
        for item in os.scandir(self._tmp):
            parts = item.name.split(".")
            stale = False
            try:
                stale = now - item.stat().st_mtime > _STALE_SECONDS
                if not stale and len(parts) == 4 and parts[1] == host:
                    stale = not _pid_alive(int(parts[2]))
            except (OSError, ValueError):
                continue
            if stale:
                shutil.rmtree(item.path, ignore_errors=True)

    # --- reporting -----------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Entries and bytes on disk, plus this process' counters.

        >>> import tempfile
        >>> PersistentCache(tempfile.mkdtemp()).stats()["entries"]
        0
        """
        entries = self._scan()
        with self._lock:
            counts = dict(self._counts)
        return {"entries": len(entries), "bytes": sum(e["bytes"] for e in entries),
                **counts}

    def clear(self) -> None:
        """Delete every entry (and leftovers of interrupted writes)."""
        for e in self._scan():
            self._remove(self._entry(e["key"]))
        if self.directory.is_dir():
            for shard in os.scandir(self.directory):
                if len(shard.name) == 2 and shard.is_dir():
                    shutil.rmtree(shard.path, ignore_errors=True)
        shutil.rmtree(self._tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# manifest


def _write_manifest(directory: Path, manifest: dict) -> None:
    body = dict(manifest)
    body["checksum"] = hashlib.sha256(canonical_json(manifest)).hexdigest()
    with open(directory / _MANIFEST, "wb") as f:
        f.write(json.dumps(body, indent=1, sort_keys=True).encode())
        f.flush()
        os.fsync(f.fileno())


def _read_manifest(entry: Path) -> dict:
    with open(entry / _MANIFEST, "rb") as f:
        data = f.read()
    try:
        body = json.loads(data)
        checksum = body.pop("checksum")
    except (ValueError, KeyError, AttributeError, TypeError) as e:
        raise CorruptFileError(f"{_MANIFEST}: not a valid manifest ({e})") from None
    if hashlib.sha256(canonical_json(body)).hexdigest() != checksum:
        raise CorruptFileError(f"{_MANIFEST}: checksum does not match")
    return body


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _FileLock:
    """An exclusive ``flock`` on a file (a no-op where ``fcntl`` is missing)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = None

    def __enter__(self):
        try:
            import fcntl

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            self.fd = None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
