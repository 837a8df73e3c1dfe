"""Prediction cache: an LRU map from (model, method, row fingerprint) to the row's answer.

* **Key**: the *model key* (sha256 of the registered artifact, so a new
  version never reads an old version's answers and a hot swap needs no
  invalidation), the method (``predict`` / ``predict_proba`` ...) and a
  fingerprint of the row: xxh3-128 of the JSON text of the row's validated
  values in the model's input-schema column order (:func:`row_fingerprints`).
  Two requests whose rows build the same input frame row share an entry;
  rows that merely *might* be equal (``1`` vs ``1.0``) get different keys,
  which costs a miss, never a wrong answer.
* **Value**: the row's JSON-ready answer (a number, string, list...), shared
  read-only between responses.
* **Size cap** in rows (``ServingSettings.cache_size``): least recently used
  entries are evicted first. ``cache_size=0`` or ``cache_enabled=False``
  switches the cache off.

Caching relies on predictions being row-wise (a row's answer does not depend
on the other rows of its batch), the same assumption dynamic batching makes.

>>> cache = PredictionCache(2)
>>> cache.put_many("m1", "predict", [b"a", b"b", b"c"], [1, 2, 3])
>>> cache.get_many("m1", "predict", [b"a", b"c"])  # 'a' was evicted
[<missing>, 3]
>>> len(cache)
2
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence

import xxhash

__all__ = ["MISSING", "PredictionCache", "row_fingerprints"]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


def row_fingerprints(columns: dict[str, list], order: Sequence[str], n_rows: int) -> list[bytes]:
    """One xxh3-128 digest per row of column-wise ``columns`` (``order`` fixes the
    column order; values are JSON scalars or what ``str`` renders, e.g. timestamps).

    >>> a = row_fingerprints({"x": [1.5, 2.0], "s": ["a", "b"]}, ["x", "s"], 2)
    >>> b = row_fingerprints({"s": ["b"], "x": [2.0]}, ["x", "s"], 1)
    >>> a[1] == b[0], a[0] == a[1]
    (True, False)
    """
    if n_rows == 0:
        return []
    dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
    digest = xxhash.xxh3_128_digest
    cols = [columns[c] for c in order]
    return [digest(dumps(row).encode()) for row in zip(*cols)] if cols else [digest(b"")] * n_rows


class PredictionCache:
    """Thread-safe LRU cache of per-row predictions (see the module docstring)."""

    def __init__(self, max_entries: int):
        self.max_entries = int(max_entries)
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def get_many(self, model_key: str, method: str, rows: Sequence[bytes]) -> list:
        """The cached answer of each row, or :data:`MISSING`."""
        out = []
        data = self._data
        with self._lock:
            for row in rows:
                key = (model_key, method, row)
                value = data.get(key, MISSING)
                if value is not MISSING:
                    data.move_to_end(key)
                out.append(value)
        return out

    def put_many(self, model_key: str, method: str, rows: Sequence[bytes],
                 values: Sequence) -> None:
        if not self.enabled:
            return
        data = self._data
        with self._lock:
            for row, value in zip(rows, values):
                key = (model_key, method, row)
                data[key] = value
                data.move_to_end(key)
            while len(data) > self.max_entries:
                data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
