"""Numba kernels for hot scikit-learn / skrub operators, with exact parity.

Design
------
Each kernel is a *subclass* of the original estimator (``FastOneHotEncoder
(OneHotEncoder)``, ...): parameters, ``clone``, ``repr``, pickling and fitted
attributes are the original's, so a pipeline cannot tell the difference
except by speed.  A kernel overrides only the hot methods, and each override
first runs the static check ``supports(params, X)`` (dtypes and options the
kernel reproduces exactly); otherwise the original method runs.  Outputs are
equal to the original's exactly -- values, dtype, shape, dense vs CSR (with
the same index dtypes), feature names, pandas/polars containers -- and the
numeric statistics are bitwise equal because the kernels replay numpy's own
summation order (:mod:`._reductions`).

Modules: :mod:`.encoders` (one-hot, ordinal), :mod:`.scalers` (standard,
min-max), :mod:`.imputer` (simple imputer), :mod:`.datetime_encoder` (skrub),
:mod:`.registry` (``KERNELS``, ``select_kernel``: when to use which).

Threads
-------
Kernels use ``@njit(parallel=True)`` + ``prange`` and therefore run on the
numba thread count of the calling thread, read at call time.  Nothing in this
package changes it except :func:`kernel_threads`, a context manager for
callers (the runtime sets the count per node).  Kernels may use *fewer*
threads than that for small inputs (at least ``MIN_WORK_PER_THREAD``
elements per thread, see :func:`._common.work_scope`): a parallel region on
10K rows costs more than it saves, and on an oversubscribed machine a
barrier can cost a whole scheduler time slice.  On the shared 2-core
benchmark machine (load average 5-15) one thread was often faster than two
(numba's GNU OpenMP layer spins at barriers, competing with the other
processes), so the runtime should grant a node more than one thread only
when cores are actually idle.  Compiled code is cached on
disk (``cache=True``), so a new process loads it instead of recompiling; the
first call in a process still pays the load (see the benchmark's
"first call" column), which :func:`warm_up` can move out of the hot path.
"""

from __future__ import annotations

from ._common import kernel_threads
from .datetime_encoder import FastDatetimeEncoder
from .encoders import FastOneHotEncoder, FastOrdinalEncoder
from .imputer import FastSimpleImputer
from .minhash_encoder import FastMinHashEncoder
from .registry import KERNELS, KernelSpec, fast_copy, select_kernel
from .scalers import FastMinMaxScaler, FastStandardScaler

__all__ = [
    "KERNELS",
    "FastDatetimeEncoder",
    "FastMinHashEncoder",
    "FastMinMaxScaler",
    "FastOneHotEncoder",
    "FastOrdinalEncoder",
    "FastSimpleImputer",
    "FastStandardScaler",
    "KernelSpec",
    "fast_copy",
    "kernel_threads",
    "select_kernel",
    "warm_up",
]


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every kernel on tiny inputs."""
    import warnings

    import numpy as np
    import pandas as pd

    X = np.array([[0.0, 1.0], [np.nan, 3.0], [2.0, 2.0]])
    Xc = np.ascontiguousarray(X)
    Xf = np.asfortranarray(X)
    frame = pd.DataFrame(
        {
            "s": pd.Series(["a", "b", None], dtype=object),
            "t": pd.Series(["x", "y", "x"], dtype="str"),
            "c": pd.Series(["u", "v", "u"], dtype="category"),
            "i": [1, 2, 1],
            "f": [0.5, np.nan, 1.5],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data in (Xc, Xf):
            FastStandardScaler().fit_transform(data)
            FastMinMaxScaler(clip=True).fit_transform(data)
            for strategy in ("mean", "median", "most_frequent", "constant"):
                FastSimpleImputer(strategy=strategy).fit_transform(data)
        FastOneHotEncoder().fit_transform(frame)
        FastOneHotEncoder(sparse_output=False, drop="first").fit_transform(frame)
        FastOrdinalEncoder().fit_transform(frame)
        dates = pd.Series(pd.to_datetime(["2020-01-01 10:00", None]), name="d")
        FastDatetimeEncoder(add_weekday=True, add_day_of_year=True).fit_transform(dates)
        FastMinHashEncoder(n_components=2).fit_transform(frame["s"])
