"""Child-process targets of ``test_runtime_cache.py``.

A separate, light module: a ``spawn`` child imports the module of its target,
and importing this one costs numpy + the cache, not the whole test module.
"""

from __future__ import annotations

import numpy as np

from stratumlite.runtime.cache import PersistentCache

SLOW = 10.0  # seconds: always worth storing


def writer(directory, keys, started, size):
    """Put one large array per key, announcing each put on ``started``."""
    cache = PersistentCache(directory)
    value = np.arange(size, dtype=np.float64)
    for k in keys:
        started.put(k)
        cache.put(k, (value, {"k": k}), SLOW)


def race_value(key):
    import pandas as pd

    return pd.DataFrame({"a": np.full(50_000, int(key[:2]), dtype="int64")})


def race_writer(directory, keys, barrier):
    """Put ``keys`` in order, all writers starting together."""
    cache = PersistentCache(directory)
    barrier.wait()
    for k in keys:
        cache.put(k, (race_value(k), {"k": k}), SLOW)
