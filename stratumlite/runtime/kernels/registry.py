"""Operator selection: which estimators have a kernel, and when to use it.

``KERNELS`` maps an original class (exact type, not subclasses: a user
subclass may change behaviour) to a :class:`KernelSpec`:

* ``fast_class`` -- the kernel subclass;
* ``supports(estimator, X)`` -- the static check, ``(True, "ok")`` or
  ``(False, reason)``; the reason is meant for ``explain`` output;
* ``min_rows`` -- below this many rows the original is as fast or faster
  (Python overhead dominates, numba's thread start-up does not pay); set from
  ``python -m benchmarks.bench_kernels`` (fit + transform, 2 threads).

:func:`select_kernel` is the one entry point for the planner: it returns the
estimator itself or a fast copy with identical ``get_params`` (and, if the
estimator was already fitted or configured with ``set_output``, the same
state), plus the reason.  It never changes library defaults or global
configuration.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from skrub import DatetimeEncoder, MinHashEncoder

from .datetime_encoder import FastDatetimeEncoder, supports_datetime_encoder
from .encoders import (
    FastOneHotEncoder,
    FastOrdinalEncoder,
    supports_one_hot_encoder,
    supports_ordinal_encoder,
)
from .imputer import FastSimpleImputer, supports_simple_imputer
from .minhash_encoder import FastMinHashEncoder, supports_minhash_encoder
from .scalers import (
    FastMinMaxScaler,
    FastStandardScaler,
    supports_minmax_scaler,
    supports_standard_scaler,
)


@dataclass(frozen=True)
class KernelSpec:
    """How to swap an estimator for its kernel (see module docstring)."""

    original: type
    fast_class: type
    supports: Callable[[Any, Any], tuple[bool, str]]
    min_rows: int

    @property
    def name(self) -> str:
        return self.original.__name__


# min_rows: from benchmarks/results/kernels.json (2 threads; sizes 1K, 10K,
# 100K, 1M): the smallest measured size from which the kernel's fit +
# transform beat the original at every larger size, over all cases of the
# operator, taking the larger value over the last two full runs (the machine
# is shared and loaded, so single runs are noisy).  OneHotEncoder on polars
# at 1K rows and StandardScaler/MinMaxScaler at 1K rows were at or below 1x.
KERNELS: dict[type, KernelSpec] = {
    OneHotEncoder: KernelSpec(OneHotEncoder, FastOneHotEncoder,
                              supports_one_hot_encoder, min_rows=10_000),
    OrdinalEncoder: KernelSpec(OrdinalEncoder, FastOrdinalEncoder,
                               supports_ordinal_encoder, min_rows=1_000),
    StandardScaler: KernelSpec(StandardScaler, FastStandardScaler,
                               supports_standard_scaler, min_rows=10_000),
    MinMaxScaler: KernelSpec(MinMaxScaler, FastMinMaxScaler,
                             supports_minmax_scaler, min_rows=10_000),
    SimpleImputer: KernelSpec(SimpleImputer, FastSimpleImputer,
                              supports_simple_imputer, min_rows=1_000),
    DatetimeEncoder: KernelSpec(DatetimeEncoder, FastDatetimeEncoder,
                                supports_datetime_encoder, min_rows=1_000),
    # min_rows: measured on the loans titles and flights tail numbers, the kernel
    # wins from the first hundreds of distinct strings; below 1,000 rows the
    # compile-cache load and packing are not worth it
    MinHashEncoder: KernelSpec(MinHashEncoder, FastMinHashEncoder,
                               supports_minhash_encoder, min_rows=1_000),
}

_FAST_CLASSES = tuple(spec.fast_class for spec in KERNELS.values())


def fast_copy(estimator: Any, fast_class: type) -> Any:
    """An instance of ``fast_class`` with ``estimator``'s params and state."""
    fast = fast_class.__new__(fast_class)
    fast.__dict__.update(copy.deepcopy(estimator.__dict__))
    return fast


def select_kernel(estimator: Any, n_rows: int, X: Any = None) -> tuple[Any, str]:
    """Return ``(estimator or its kernel twin, reason)``.

    The kernel twin is chosen when a kernel exists for ``type(estimator)``,
    its static check passes (on ``X`` too when given) and ``n_rows`` reaches
    the kernel's ``min_rows``.  The input estimator is never modified.
    """
    if isinstance(estimator, _FAST_CLASSES):
        return estimator, "already a kernel estimator"
    spec = KERNELS.get(type(estimator))
    if spec is None:
        return estimator, f"no kernel for {type(estimator).__name__}"
    ok, reason = spec.supports(estimator, X)
    if not ok:
        return estimator, reason
    if n_rows < spec.min_rows:
        return estimator, (
            f"{n_rows} rows < min_rows={spec.min_rows} (the original is faster)"
        )
    return fast_copy(estimator, spec.fast_class), "ok"
