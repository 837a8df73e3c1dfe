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

    def __init__(self, max_bytes: int, min_seconds: float = 0.002,
                 memo_id: str | None = None, worker_bytes: int | None = None):
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
                      "seconds_saved": 0.0, "skipped": 0}
        # kinds of which a piece cost at least min_seconds (see worth_looking_up)
        self._costly: set[Hashable] = set()

    def __reduce__(self):
        return (_process_memo, (self.id, self.worker_bytes, self.min_seconds))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.stats["misses"] += 1
                return False, None
            self.stats["hits"] += 1
            self.stats["seconds_saved"] += entry[2]
            return True, entry[0]

    def put(self, key: Hashable, value: Any, nbytes: int, seconds: float) -> bool:
        """Store ``value`` if it is worth it; returns whether it was stored."""
        nbytes = max(int(nbytes), 1)
        if seconds < self.min_seconds or nbytes > self.max_bytes:
            return False
        with self._lock:
            if key in self._entries:
                return True
            self._entries[key] = (value, nbytes, seconds)
            self.bytes += nbytes
            self.stats["stored"] += 1
            if self.bytes > self.max_bytes:
                self._evict()
            return key in self._entries

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
            self.stats["skipped"] += 1
            return False

    def observe(self, kind: Hashable, seconds: float) -> None:
        """Record what computing a piece of ``kind`` cost (see
        :meth:`worth_looking_up`); one costly piece keeps the kind looked up."""
        if seconds >= self.min_seconds:
            with self._lock:
                self._costly.add(kind)

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


_PROCESS_MEMOS: dict[str, OperatorMemo] = {}
_PROCESS_LOCK = threading.Lock()


def _process_memo(memo_id: str, max_bytes: int, min_seconds: float) -> OperatorMemo:
    """This process's memo for ``memo_id`` (made on first use)."""
    with _PROCESS_LOCK:
        memo = _PROCESS_MEMOS.get(memo_id)
        if memo is None:
            # one memo per process at a time: a new session's memo replaces the last
            _PROCESS_MEMOS.clear()
            memo = _PROCESS_MEMOS[memo_id] = OperatorMemo(max_bytes, min_seconds, memo_id)
        return memo
