"""The buffer pool: the scheduler's intermediates under a memory budget.

Design
------
:class:`BufferPool` is a ``MutableMapping`` (task key -> value) the scheduler
uses as its ``values`` dict. It does what a dict does, plus: it knows the size
of every value (:func:`~.serialization.estimate_nbytes`: pandas
``memory_usage(deep=True)``, polars ``estimated_size()``, numpy ``nbytes``, the
arrays of a scipy sparse matrix, else the pickled length), and when the
in-memory total exceeds ``budget_bytes`` it *spills* buffers to ``spill_dir``
and reads them back transparently on ``__getitem__``.

The scheduler frees a buffer when its last reader has run (``refs`` in the
scheduler): that is the pool's first rule and costs nothing. Spilling is the
second rule, for what is still needed but does not fit.

Policy: least recently used first. Every ``__setitem__`` and ``__getitem__``
moves the key to the most-recent end; when over budget, buffers are spilled
from the least-recent end until the total fits. The buffer just set or read
is never spilled by that same call (its consumer is about to run), so a
single buffer larger than the whole budget stays in memory until another
buffer is touched. A value that cannot be serialized stays in memory (and
counts against the budget). Reading a spilled buffer deletes its file
(``spill_dir`` never holds a stale copy); deleting a spilled key deletes its
file without reading it.

Serialization is :mod:`.serialization`, the cache's own (parquet / npy /
cloudpickle, exact round trip, checksums skipped: the files are private and
short-lived), so results are identical with and without spilling.

State:

``_mem``        key -> value, in LRU order (``OrderedDict``)
``_sizes``      key -> estimated bytes of a value (in memory or spilled)
``_spilled``    key -> (directory, :class:`~.serialization.Written`)
``_pinned``     keys that could not be serialized (never spilled again)
``nbytes``      total estimated bytes in memory; ``peak_bytes`` its maximum
``events``      counts and bytes: ``spilled``, ``spilled_bytes``,
                ``reloaded``, ``reloaded_bytes``

Worked example, a 100-byte budget and three 80-byte arrays::

    >>> import numpy as np, tempfile
    >>> pool = BufferPool(100, spill_dir=tempfile.mkdtemp())
    >>> pool["a"] = np.zeros(10)      # 80 bytes: fits
    >>> pool["b"] = np.ones(10)       # 160 > 100: "a" (least recent) spills
    >>> pool.is_spilled("a"), pool.nbytes
    (True, 80)
    >>> float(pool["a"][0])           # read back; now "b" is least recent: spills
    0.0
    >>> pool.is_spilled("b"), pool.events["spilled"], pool.events["reloaded"]
    (True, 2, 1)
    >>> sorted(pool), pool.peak_bytes
    (['a', 'b'], 160)

The pool is thread-safe (one re-entrant lock around every operation; spill
and reload I/O happen under it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from .serialization import Written, estimate_nbytes, read_value, write_value

__all__ = ["BufferPool"]


class BufferPool(MutableMapping):
    """A dict of intermediates that spills to disk over ``budget_bytes``.

    Parameters
    ----------
    budget_bytes : int
        Bytes of values kept in memory before spilling.
    spill_dir : path or None
        Parent directory of the pool's spill files (a private subdirectory is
        created on the first spill and removed when the pool is closed or
        garbage collected). Default: the system's temporary directory.
    """

    def __init__(self, budget_bytes: int, spill_dir=None):
        if not isinstance(budget_bytes, int) or isinstance(budget_bytes, bool) \
                or budget_bytes <= 0:
            raise ValueError("The 'budget_bytes' parameter of BufferPool must be a "
                             f"positive int. Got {budget_bytes!r} instead.")
        self.budget_bytes = budget_bytes
        self.spill_dir = Path(spill_dir) if spill_dir is not None else \
            Path(tempfile.gettempdir()) / "stratumlite-spill"
        self._dir = self.spill_dir / f"pool-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.RLock()
        self._mem: OrderedDict[Any, Any] = OrderedDict()
        self._sizes: dict[Any, int] = {}
        self._spilled: dict[Any, tuple[Path, Written]] = {}
        self._pinned: set = set()
        self.nbytes = 0
        self.peak_bytes = 0
        self.events = {"spilled": 0, "spilled_bytes": 0, "reloaded": 0, "reloaded_bytes": 0}
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)

    # --- mapping -------------------------------------------------------------
    def __getitem__(self, key):
        with self._lock:
            if key in self._mem:
                self._mem.move_to_end(key)
                return self._mem[key]
            if key not in self._spilled:
                raise KeyError(key)
            directory, written = self._spilled[key]
            value = read_value(directory, written, verify=False)
            del self._spilled[key]
            shutil.rmtree(directory, ignore_errors=True)
            size = estimate_nbytes(value)
            self.events["reloaded"] += 1
            self.events["reloaded_bytes"] += size
            self._insert(key, value, size)
            return value

    def __setitem__(self, key, value) -> None:
        size = estimate_nbytes(value)
        with self._lock:
            self._drop(key)
            self._insert(key, value, size)

    def __delitem__(self, key) -> None:
        with self._lock:
            if key not in self._mem and key not in self._spilled:
                raise KeyError(key)
            self._drop(key)

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._mem or key in self._spilled

    def __iter__(self) -> Iterator:
        with self._lock:
            return iter([*self._mem, *self._spilled])

    def __len__(self) -> int:
        with self._lock:
            return len(self._mem) + len(self._spilled)

    def discard(self, key) -> None:
        """Delete ``key`` if present, without reading a spilled value back."""
        with self._lock:
            self._drop(key)

    def __repr__(self) -> str:
        return (f"<BufferPool {len(self._mem)} in memory ({self.nbytes} bytes), "
                f"{len(self._spilled)} spilled, budget {self.budget_bytes}>")

    # --- reporting & lifecycle ---------------------------------------------------
    def size_of(self, key) -> int:
        """Bytes of the value under ``key`` in memory or spilled (0 if absent)."""
        with self._lock:
            return self._sizes.get(key, 0)

    def is_spilled(self, key) -> bool:
        with self._lock:
            return key in self._spilled

    def stats(self) -> dict[str, int]:
        """Budget, bytes in memory, peak, buffers in memory / spilled, events."""
        with self._lock:
            return {"budget_bytes": self.budget_bytes, "nbytes": self.nbytes,
                    "peak_bytes": self.peak_bytes, "in_memory": len(self._mem),
                    "on_disk": len(self._spilled), **self.events}

    def close(self) -> None:
        """Forget every buffer and delete the spill files."""
        with self._lock:
            self._mem.clear()
            self._sizes.clear()
            self._spilled.clear()
            self.nbytes = 0
        self._finalizer()

    # --- transitions -------------------------------------------------------------
    def _drop(self, key) -> None:
        size = self._sizes.pop(key, 0)
        if key in self._mem:
            del self._mem[key]
            self.nbytes -= size
        spilled = self._spilled.pop(key, None)
        if spilled is not None:
            shutil.rmtree(spilled[0], ignore_errors=True)
        self._pinned.discard(key)

    def _insert(self, key, value, size: int) -> None:
        self._mem[key] = value
        self._sizes[key] = size
        self.nbytes += size
        self.peak_bytes = max(self.peak_bytes, self.nbytes)
        if self.nbytes > self.budget_bytes:
            self._spill(protect=key)

    def _spill(self, protect) -> None:
        """Spill least recently used buffers (except ``protect``) until under budget."""
        for key in list(self._mem):
            if self.nbytes <= self.budget_bytes:
                return
            if key == protect or key in self._pinned:
                continue
            directory = self._dir / uuid.uuid4().hex
            try:
                directory.mkdir(parents=True)
                written = write_value(self._mem[key], directory, checksum=False)
            except Exception:  # noqa: BLE001 - unserializable: keep it in memory
                shutil.rmtree(directory, ignore_errors=True)
                self._pinned.add(key)
                continue
            size = self._sizes[key]  # kept: size_of() a spilled buffer
            del self._mem[key]
            self.nbytes -= size
            self._spilled[key] = (directory, written)
            self.events["spilled"] += 1
            self.events["spilled_bytes"] += size
