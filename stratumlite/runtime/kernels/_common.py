"""Shared helpers for the numba kernels: compile options, frame detection, threads.

Every kernel in this package is compiled with :data:`NJIT` (``nopython``,
``cache=True`` so the machine code is written next to the module and later
processes skip compilation) and, where a loop over rows or columns pays,
:data:`NJIT_PAR` (``parallel=True`` + ``prange``).  No kernel uses
``fastmath``: exact parity with numpy needs IEEE semantics (no reassociation,
no FMA contraction).

Threads: a ``prange`` loop runs on the numba thread count of the *calling*
thread, i.e. :func:`numba.get_num_threads` at call time, which the runtime
sets (``numba.set_num_threads`` or :func:`stratumlite.runtime.kernels.kernel_threads`).
Kernels that split work in explicit chunks read :func:`n_threads` at call time
too; nothing here changes the thread count.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numba
import numpy as np

NJIT = {"cache": True, "nogil": True}
NJIT_PAR = {"cache": True, "nogil": True, "parallel": True}


#: below this many elements per thread a parallel region costs more than it
#: saves (and on an oversubscribed machine a barrier can cost a time slice)
MIN_WORK_PER_THREAD = 1_000_000


def n_threads() -> int:
    """The numba thread count of the calling thread (read at call time)."""
    return int(numba.get_num_threads())


@contextmanager
def kernel_threads(n: int) -> Iterator[int]:
    """Run the kernels of this block on ``n`` threads (clamped to numba's pool).

    Restores the previous count on exit.  numba's thread count is per calling
    thread, so concurrent blocks on other threads are not affected.
    """
    previous = numba.get_num_threads()
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)


@contextmanager
def work_scope(work: int) -> Iterator[int]:
    """Use at most the caller's thread count, fewer for small inputs.

    ``work`` is the number of elements the kernels of the block touch; each
    thread gets at least :data:`MIN_WORK_PER_THREAD` of them.
    """
    available = n_threads()
    want = max(1, min(available, int(work) // MIN_WORK_PER_THREAD))
    if want == available:
        yield available
    else:
        with kernel_threads(want) as used:
            yield used


def is_pandas_frame(X: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(X, pd.DataFrame)


def is_polars_frame(X: Any) -> bool:
    pl = sys.modules.get("polars")
    return pl is not None and isinstance(X, pl.DataFrame)


def is_pandas_series(X: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(X, pd.Series)


def is_polars_series(X: Any) -> bool:
    pl = sys.modules.get("polars")
    return pl is not None and isinstance(X, pl.Series)


def n_rows(X: Any) -> int:
    """Number of rows of a frame, series, array or sequence (0 if unknown)."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1:
        return int(shape[0])
    try:
        return len(X)
    except TypeError:
        return 0


def is_dense_2d_numeric(X: Any) -> bool:
    """True for a 2-D numpy array of a real numeric (or bool) dtype."""
    return (
        isinstance(X, np.ndarray)
        and X.ndim == 2
        and X.dtype.kind in "biuf"
    )


def frame_all_numeric(X: Any) -> tuple[bool, str]:
    """Check that a dense input is numeric everywhere (array or frame)."""
    if isinstance(X, np.ndarray):
        if X.ndim != 2:
            return False, "input is not 2-D"
        if X.dtype.kind not in "biuf":
            return False, f"array dtype {X.dtype} is not numeric"
        return True, "ok"
    if is_pandas_frame(X):
        for name, dtype in X.dtypes.items():
            if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf":
                return False, f"column {name!r} has dtype {dtype} (not a numpy number)"
        return True, "ok"
    if is_polars_frame(X):
        for name, dtype in X.schema.items():
            if not (dtype.is_numeric() or dtype == _polars().Boolean):
                return False, f"column {name!r} has dtype {dtype} (not numeric)"
            if dtype.is_decimal():
                return False, f"column {name!r} has decimal dtype"
        return True, "ok"
    return False, f"input type {type(X).__name__} is not an array or a frame"


def _polars():
    import polars as pl

    return pl
