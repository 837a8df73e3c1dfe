"""Operator memo: a bounded, in-memory store for results *inside* an operator.

The scheduler deduplicates whole nodes by lineage key. Some operators are made of
smaller pure pieces that two different nodes share: skrub's ``TableVectorizer``
fits one transformer per column, so two vectorizers over tables that differ in one
column (an added ratio, a dropped text field) repeat every other column's work.
An operator may keep such pieces here, keyed by *content* (a fingerprint of the
column and a token of the transformer), and find them when another node asks.

The runtime gives each running task the session's memo (:func:`current_memo`);
what goes in it is the operator's business (see
``stratumlite/frontend/column_memo.py``). Entries are kept by value density as
in the persistent cache: ``compute seconds / bytes``; when the byte budget is
exceeded the least valuable entries go first. Pieces cheaper than
``min_seconds`` to recompute are never stored, and a kind of piece is only
looked up once one of its pieces proved that costly
(:meth:`OperatorMemo.worth_looking_up`).

A memo is per process. Pickled (to a worker process), it becomes that process's
memo of the same id, so a pool worker keeps its entries from task to task.
Local worker processes also share a directory (:meth:`OperatorMemo.share`, on
the executor's memory file system): a worker writes there the pieces that took
long enough to be worth reading back (at least ``SHARE_MIN_SECONDS``, and more
than reading them would take), up to its share of the budget, and another
worker that misses looks there before computing. Two vectorizers over the same
fold then share their columns even when they run in different workers. Files
are written under a temporary name and renamed: a reader sees a whole entry or
none.

>>> memo = OperatorMemo(max_bytes=1000)
>>> memo.put(("fit", "a"), "value", nbytes=100, seconds=0.5)
True
>>> memo.get(("fit", "a"))
(True, 'value')
>>> with memo_scope(memo):
...     current_memo() is memo
True
>>> current_memo() is None
True
"""

from __future__ import annotations

import os
import pickle
import threading
import uuid
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["OperatorMemo", "current_memo", "memo_scope"]

_CURRENT: ContextVar[OperatorMemo | None] = ContextVar("stratumlite_operator_memo",
                                                       default=None)


def current_memo() -> OperatorMemo | None:
    """The memo of the task running in this thread (None outside a task or when off)."""
    return _CURRENT.get()


@contextmanager
def memo_scope(memo: OperatorMemo | None) -> Iterator[None]:
    """Make ``memo`` the current memo for the duration of the block."""
    token = _CURRENT.set(memo)
    try:
        yield
    finally:
        _CURRENT.reset(token)


class OperatorMemo:
    """Thread-safe memo with a byte budget and eviction by seconds per byte.

    Parameters
    ----------
    max_bytes : int
        Budget for the stored values (their sizes as given to :meth:`put`).
    min_seconds : float
        Values that took less than this to compute are not stored.
    worker_bytes : int or None
        Budget of the memo this one becomes in a worker process (each worker
        keeps its own); default ``max_bytes``. Local worker processes share the
        machine's memory, so the session gives each a share of the budget.
    """

    #: pieces cheaper than this are not written to the shared directory
    SHARE_MIN_SECONDS = 0.002
    #: bytes per second assumed for reading a shared piece back
    SHARE_READ_BYTES_PER_SECOND = 500e6

    def __init__(self, max_bytes: int, min_seconds: float = 0.002,
                 memo_id: str | None = None, worker_bytes: int | None = None,
                 shared_dir: str | None = None, shared_bytes: int = 0):
        if max_bytes < 0:
            raise ValueError(f"OperatorMemo: max_bytes must be >= 0, got {max_bytes}.")
        self.max_bytes = int(max_bytes)
        self.worker_bytes = self.max_bytes if worker_bytes is None else int(worker_bytes)
        self.min_seconds = float(min_seconds)
        self.id = memo_id or uuid.uuid4().hex
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[Any, int, float]] = {}
        self.bytes = 0
        self.stats = {"hits": 0, "misses": 0, "stored": 0, "evicted": 0,
                      "seconds_saved": 0.0, "skipped": 0, "shared_hits": 0,
                      "shared_written": 0}
        # the directory worker processes share (see share), and the bytes this
        # process may write there
        self.shared_dir = shared_dir
        self.shared_bytes = int(shared_bytes)
        self._shared_used = 0
        # kinds of which a piece cost at least min_seconds (see worth_looking_up)
        self._costly: set[Hashable] = set()

    def __reduce__(self):
        return (_process_memo, (self.id, self.worker_bytes, self.min_seconds,
                                self.shared_dir, self.shared_bytes))

    def share(self, directory: str, nbytes_per_process: int) -> None:
        """Let the worker processes this memo is pickled to share pieces through
        files in ``directory`` (each writes at most ``nbytes_per_process``)."""
        self.shared_dir = str(directory)
        self.shared_bytes = int(nbytes_per_process)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self.stats["hits"] += 1
                self.stats["seconds_saved"] += entry[2]
                return True, entry[0]
        entry = self._read_shared(key) if self.shared_dir else None
        with self._lock:
            if entry is None:
                self.stats["misses"] += 1
                return False, None
            value, nbytes, seconds = entry
            self.stats["hits"] += 1
            self.stats["shared_hits"] += 1
            self.stats["seconds_saved"] += seconds
            if nbytes <= self.max_bytes:
                self._insert(key, value, nbytes, seconds)
            return True, value

    def put(self, key: Hashable, value: Any, nbytes: int, seconds: float,
            always: bool = False) -> bool:
        """Store ``value`` if it is worth it; returns whether it was stored.

        ``always``: even if it took less than ``min_seconds`` (for a caller
        whose keys cost nothing to make: a lookup that misses costs nothing
        either)."""
        nbytes = max(int(nbytes), 1)
        if (seconds < self.min_seconds and not always) or nbytes > self.max_bytes:
            return False
        with self._lock:
            if key in self._entries:
                return True
            self._insert(key, value, nbytes, seconds)
            self.stats["stored"] += 1
            stored = key in self._entries
        if self.shared_dir and seconds >= self.SHARE_MIN_SECONDS \
                and nbytes / self.SHARE_READ_BYTES_PER_SECOND < seconds / 2:
            self._write_shared(key, value, nbytes, seconds)
        return stored

    def _insert(self, key: Hashable, value: Any, nbytes: int, seconds: float) -> None:
        """Add an entry, evicting the least valuable over budget (lock held)."""
        if key in self._entries:
            return
        self._entries[key] = (value, nbytes, seconds)
        self.bytes += nbytes
        if self.bytes > self.max_bytes:
            self._evict()

    # --- the directory shared by worker processes ------------------------------
    def _path(self, prefix: str, item: Hashable) -> str:
        import xxhash

        return os.path.join(self.shared_dir,
                            prefix + xxhash.xxh3_128_hexdigest(repr(item).encode()))

    def _shared_path(self, key: Hashable) -> str:
        return self._path("", key)

    def _kind_path(self, kind: Hashable) -> str:
        return self._path("kind-", kind)

    def _write_shared(self, key: Hashable, value: Any, nbytes: int, seconds: float) -> None:
        """Best effort: a piece that cannot be written stays in this process."""
        try:
            path = self._shared_path(key)
            if os.path.exists(path):
                return
            blob = pickle.dumps((key, value, nbytes, seconds), protocol=5)
        except Exception:  # noqa: BLE001 - not picklable: stays in this process
            return
        with self._lock:
            if self._shared_used + len(blob) > self.shared_bytes:
                return
            self._shared_used += len(blob)
            self.stats["shared_written"] += 1
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)  # readers see a whole entry or none
        except OSError:  # the directory is gone (the session ended) or full
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _read_shared(self, key: Hashable) -> tuple[Any, int, float] | None:
        try:
            with open(self._shared_path(key), "rb") as f:
                blob = f.read()
            stored_key, value, nbytes, seconds = pickle.loads(blob)
        except Exception:  # noqa: BLE001 - absent or unreadable: a miss
            return None
        return (value, nbytes, seconds) if stored_key == key else None

    def worth_looking_up(self, kind: Hashable) -> bool:
        """Whether a piece of ``kind`` (say, one transformer class on one column)
        may be in the memo: only once a piece of that kind has cost at least
        ``min_seconds`` (:meth:`observe`). Only such pieces are stored, so a
        lookup for any other kind misses for sure, and its key (a fingerprint of
        the column) would cost about as much as computing the piece: skipped
        (``stats["skipped"]``).

        >>> memo = OperatorMemo(1000, min_seconds=0.01)
        >>> memo.observe("ToFloat", 0.0001)
        >>> memo.observe("MinHash", 0.5)
        >>> memo.worth_looking_up("ToFloat"), memo.worth_looking_up("MinHash")
        (False, True)
        >>> memo.worth_looking_up("never seen")
        False
        """
        with self._lock:
            if kind in self._costly:
                return True
        if self.shared_dir and _exists(self._kind_path, kind):
            with self._lock:  # another worker process found the kind costly
                self._costly.add(kind)
            return True
        with self._lock:
            self.stats["skipped"] += 1
        return False

    def observe(self, kind: Hashable, seconds: float) -> None:
        """Record what computing a piece of ``kind`` cost (see
        :meth:`worth_looking_up`); one costly piece keeps the kind looked up."""
        if seconds < self.min_seconds:
            return
        with self._lock:
            new = kind not in self._costly
            self._costly.add(kind)
        if new and self.shared_dir:  # tell the other worker processes
            try:
                open(self._kind_path(kind), "ab").close()
            except Exception:  # noqa: BLE001 - best effort: they find it costly themselves
                pass

    def _evict(self) -> None:
        order = sorted(self._entries, key=lambda k: self._entries[k][2] / self._entries[k][1])
        for k in order:
            if self.bytes <= self.max_bytes:
                break
            _, nbytes, _ = self._entries.pop(k)
            self.bytes -= nbytes
            self.stats["evicted"] += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._costly.clear()
            self.bytes = 0


def _exists(path_of, item) -> bool:
    try:
        return os.path.exists(path_of(item))
    except Exception:  # noqa: BLE001 - best effort
        return False


_PROCESS_MEMOS: dict[str, OperatorMemo] = {}
_PROCESS_LOCK = threading.Lock()


def _process_memo(memo_id: str, max_bytes: int, min_seconds: float,
                  shared_dir: str | None = None, shared_bytes: int = 0) -> OperatorMemo:
    """This process's memo for ``memo_id`` (made on first use)."""
    with _PROCESS_LOCK:
        memo = _PROCESS_MEMOS.get(memo_id)
        if memo is None:
            # one memo per process at a time: a new session's memo replaces the last
            _PROCESS_MEMOS.clear()
            memo = _PROCESS_MEMOS[memo_id] = OperatorMemo(
                max_bytes, min_seconds, memo_id, shared_dir=shared_dir,
                shared_bytes=shared_bytes)
        return memo
