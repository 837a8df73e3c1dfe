"""``SimpleImputer`` kernel for dense float64 data with ``missing_values=np.nan``.

Fit (statistics per column, all columns in a ``prange``):

* ``mean``: scikit-learn computes ``np.ma.mean``, i.e. ``X.filled(0).sum(0)``
  (numpy's summation order for the array's layout) times ``1.`` divided by
  the count of present values.  :func:`._reductions.column_sums` reproduces
  that sum bitwise without the filled copy and the mask arrays.
* ``median``: ``np.ma.median`` sorts every column; the kernel gathers the
  present values of a column and selects the two middle order statistics with
  a quickselect (O(n)), then evaluates scikit-learn's ``(low + high) / 2.``.
* ``most_frequent``: ``scipy.stats.mode`` per column (smallest of the most
  frequent values, via ``np.unique``) on a masked copy; here the present
  values are gathered by a numba loop, sorted with numpy's vectorised sort
  (faster than any hash count tried) and the runs scanned once; columns are
  spread over the numba thread count with a thread pool.
* ``constant``: only "is the column entirely missing" is computed.

Transform: one fused parallel pass writing ``statistic if isnan(x) else x``
into a fresh array laid out like scikit-learn's copy.

Fallbacks (the original runs): ``missing_values`` other than NaN, callable
strategies, ``add_indicator=True``, ``copy=False``, sparse or non-float64
validated data (e.g. integer frames with ``most_frequent``/``constant``, which
scikit-learn keeps integer), and at transform time features whose statistic is
NaN (scikit-learn drops them with a warning).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange
from sklearn.base import _fit_context
from sklearn.impute import SimpleImputer
from sklearn.utils._missing import is_scalar_nan
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import KernelMixin, params_of, unwrapped
from ._common import NJIT, NJIT_PAR, work_scope
from ._common import n_threads as _n_threads
from ._reductions import column_sums, summation_layout
from .scalers import _c_views, _dense_float64_input

_STRATEGIES = ("mean", "median", "most_frequent", "constant")


@njit(**NJIT)
def _select(a, k):
    """Rearrange ``a`` so that ``a[k]`` is its k-th smallest value; return it.

    Iterative quickselect (median-of-three pivot, Hoare partition).  Values
    are moved, never computed, so the result is exact.
    """
    lo = 0
    hi = a.shape[0] - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@njit(**NJIT_PAR)
def _median(X):
    n, d = X.shape
    stat = np.empty(d, dtype=np.float64)
    count = np.zeros(d, dtype=np.int64)
    for j in prange(d):
        buf = np.empty(n, dtype=np.float64)
        c = 0
        for i in range(n):
            v = X[i, j]
            if v == v:
                buf[c] = v
                c += 1
        count[j] = c
        if c == 0:
            stat[j] = np.nan
            continue
        h = c // 2
        vals = buf[:c]
        hi = _select(vals, h)
        if c % 2 == 1:
            lo = hi
        else:
            # after the selection every value left of h is <= a[h]
            lo = vals[0]
            for k in range(1, h):
                if vals[k] > lo:
                    lo = vals[k]
        stat[j] = (lo + hi) / 2.0


    return stat, count


@njit(**NJIT)
def _gather_present(X, col_major):
    # present (non-NaN) values of every column, packed at the start of the
    # rows of ``buf``; one pass over X in its memory order
    n, d = X.shape
    buf = np.empty((d, n), dtype=np.float64)
    cnt = np.zeros(d, dtype=np.int64)
    # branch-free: always store, advance only past present values
    if col_major:
        for j in range(d):
            c = 0
            for i in range(n):
                v = X[i, j]
                buf[j, c] = v
                c += v == v
            cnt[j] = c
    else:
        for i in range(n):
            for j in range(d):
                v = X[i, j]
                c = cnt[j]
                buf[j, c] = v
                cnt[j] = c + (v == v)
    return buf, cnt


@njit(**NJIT)
def _mode_sorted(s):
    # smallest of the most frequent values of a sorted array (scipy.stats.mode)
    c = s.shape[0]
    best = s[0]
    best_n = 0
    k = 0
    while k < c:
        m = k + 1
        while m < c and s[m] == s[k]:
            m += 1
        if m - k > best_n:
            best_n = m - k
            best = s[k]
        k = m
    return best


def _most_frequent(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = X.shape[1]
    buf, count = _gather_present(X, bool(X.flags.f_contiguous))
    stat = np.empty(d, dtype=np.float64)

    def one(j: int) -> None:
        c = int(count[j])
        if c == 0:
            stat[j] = np.nan
            return
        vals = buf[j, :c]
        vals.sort()  # numpy's vectorised sort, in place in the buffer
        stat[j] = _mode_sorted(vals)

    workers = min(d, _n_threads())
    if workers <= 1:
        for j in range(d):
            one(j)
    else:
        from concurrent.futures import ThreadPoolExecutor

        # numpy's sort releases the GIL
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, range(d)))
    return stat, count


@njit(**NJIT_PAR)
def _any_present(X):
    n, d = X.shape
    out = np.zeros(d, dtype=np.bool_)
    for j in prange(d):
        for i in range(n):
            if X[i, j] == X[i, j]:
                out[j] = True
                break
    return out


@njit(**NJIT_PAR)
def _fill(A, stats, per_col, cpr, out):
    n0, n1 = A.shape
    step = (n1 + cpr - 1) // cpr
    for c in prange(n0 * cpr):
        i = c // cpr
        j0 = (c - i * cpr) * step
        j1 = min(n1, j0 + step)
        if per_col:
            for j in range(j0, j1):
                v = A[i, j]
                out[i, j] = v if v == v else stats[j]
        else:
            st = stats[i]
            for j in range(j0, j1):
                v = A[i, j]
                out[i, j] = v if v == v else st


def supports_simple_imputer(estimator_or_params: Any, X: Any = None) -> tuple[bool, str]:
    p = params_of(estimator_or_params)
    if not is_scalar_nan(p.get("missing_values", np.nan)):
        return False, "missing_values is not NaN"
    strategy = p.get("strategy", "mean")
    if not (isinstance(strategy, str) and strategy in _STRATEGIES):
        return False, f"strategy={strategy!r} not supported"
    if p.get("add_indicator", False):
        return False, "add_indicator=True"
    if p.get("copy", True) is not True:
        return False, "copy=False (the original works in place)"
    return _dense_float64_input(X)


class FastSimpleImputer(KernelMixin, SimpleImputer):
    """:class:`~sklearn.impute.SimpleImputer` with numba kernels."""

    @classmethod
    def supports(cls, params: Any, X: Any = None) -> tuple[bool, str]:
        return supports_simple_imputer(params, X)

    def _validated(self, X, in_fit: bool):
        dtype = (
            None
            if self.strategy in ("most_frequent", "constant")
            else (np.float64, np.float32, np.float16)
        )
        if not in_fit and self._fit_dtype.kind == "O":
            return None
        Xv = validate_data(
            self,
            X,
            reset=in_fit,
            accept_sparse="csc",
            dtype=dtype,
            ensure_all_finite="allow-nan",
            copy=False,
        )
        if (
            not isinstance(Xv, np.ndarray)
            or Xv.dtype != np.float64
            or summation_layout(Xv) is None
        ):
            return None
        return Xv

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        ok, reason = supports_simple_imputer(self, X)
        if ok and self.strategy == "constant" and self.fill_value is not None:
            if not np.can_cast(type(self.fill_value), np.float64, casting="same_kind"):
                ok, reason = False, "fill_value not castable (the original raises)"
        if ok:
            Xv = self._validated(X, in_fit=True)
            if Xv is not None:
                with work_scope(Xv.size):
                    done = self._fast_fit(Xv)
                if done:
                    self._record_path("fit", True, "ok")
                    return self
                reason = "a sum overflows (numpy warns)"
            else:
                reason = "validated data not dense float64"
        self._record_path("fit", False, reason)
        return super().fit(X, y)

    def _fast_fit(self, X: np.ndarray) -> bool:
        keep = self.keep_empty_features
        strategy = self.strategy
        if strategy == "mean":
            dsum, nan_count = column_sums(X)
            cnt = X.shape[0] - nan_count
            if not np.all(np.isfinite(dsum[cnt > 0])):
                return False
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = dsum * 1.0 / cnt
            mean[cnt == 0] = 0 if keep else np.nan
            statistics = mean
        elif strategy in ("median", "most_frequent"):
            if strategy == "median":
                stat, cnt = _median(X)
                if not np.all(np.isfinite(stat[cnt > 0])):
                    return False
            else:
                stat, cnt = _most_frequent(X)
            stat[cnt == 0] = 0 if keep else np.nan
            statistics = stat
        else:
            fill_value = 0 if self.fill_value is None else self.fill_value
            statistics = np.full(X.shape[1], fill_value, dtype=np.object_)
            if not keep:
                statistics[~_any_present(X)] = np.nan
        self._fit_dtype = X.dtype
        self._fill_dtype = X.dtype
        self._fit_indicator(None)
        self.statistics_ = statistics
        return True

    def transform(self, X):
        check_is_fitted(self)
        ok, reason = supports_simple_imputer(self, X)
        if ok:
            invalid = np.array(
                [is_scalar_nan(v) for v in np.asarray(self.statistics_).ravel()]
            )
            if not self.keep_empty_features and invalid.any():
                ok, reason = False, "features without observed values are dropped"
        if ok:
            Xv = self._validated(X, in_fit=False)
            if Xv is not None and Xv.shape[1] == self.statistics_.shape[0]:
                stats = np.asarray(self.statistics_).astype(self._fill_dtype, copy=False)
                stats = np.ascontiguousarray(stats, dtype=np.float64)
                A, out, O, per_col, cpr = _c_views(Xv)
                with work_scope(Xv.size):
                    _fill(A, stats, per_col, cpr, O)
                self._record_path("transform", True, "ok")
                return out
            reason = "validated data not dense float64"
        self._record_path("transform", False, reason)
        return unwrapped(SimpleImputer.transform)(self, X)
