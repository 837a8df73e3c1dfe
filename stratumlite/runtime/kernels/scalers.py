"""``StandardScaler`` and ``MinMaxScaler`` kernels, bitwise equal to scikit-learn.

Fit
---
``StandardScaler.partial_fit`` (first call, dense float64, no sample weight)
runs scikit-learn's ``_incremental_mean_and_var`` as two fused passes:

1. per column, ``np.nansum(X)`` and the NaN count, summed in numpy's own
   order (pairwise for column-contiguous data, row after row for C-ordered
   data; see :mod:`._reductions`);
2. per column, the sums of ``X - T`` and ``(X - T)**2`` (NaN read as 0), where
   ``T = sum / count`` exactly as scikit-learn computes it.

where scikit-learn materialises ``isnan(X)``, ``X - T`` and ``(X - T)**2``
(three n x d temporaries and five passes).  The remaining d-sized vector
arithmetic is scikit-learn's own expressions in the same order, so ``mean_``,
``var_``, ``scale_`` and ``n_samples_seen_`` (a float64, as in scikit-learn
1.9) are bitwise identical, and numpy emits the same warnings (e.g. for an
all-NaN column).  When scikit-learn would use ``np.sum`` rather than
``np.nansum`` (no NaN anywhere) the two agree unless ``X - T`` produces a NaN,
which needs a non-finite sum; sums or squares that overflow (numpy would warn)
run the original too.

``MinMaxScaler.partial_fit`` computes ``nanmin``/``nanmax`` per column in one
parallel pass (min and max are exact in any order).

Transform
---------
One fused parallel pass ``(x - mean_) / scale_`` (resp. ``x * scale_ +
min_`` then numpy's NaN-propagating clip) into a fresh array with the same
memory layout as scikit-learn's copy, instead of copy + two in-place passes.
Each operation is rounded separately (no ``fastmath``, no FMA), like numpy.
Both sides must allocate the n x d output, and its first-touch page faults
are a large share of the time, so the transform gain is modest (see
``benchmarks/results/kernels.json``); the fit gain is larger.

Fallbacks (the original runs): sparse input, float32/float16 data, sample
weights, ``partial_fit`` after a first fit, ``copy=False`` (scikit-learn then
works in place on the caller's array), both ``with_mean`` and ``with_std``
off, non-contiguous validated arrays, registered fit callbacks.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numba import njit, prange
from scipy import sparse
from sklearn.base import _fit_context
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import KernelMixin, params_of, unwrapped
from ._common import (
    NJIT_PAR,
    frame_all_numeric,
    is_pandas_frame,
    is_polars_frame,
    work_scope,
)
from ._common import n_threads as _n_threads
from ._reductions import centered_sums, column_nanminmax, column_sums, summation_layout

_FLOAT64_ONLY = "float32/float16 data (the kernels compute in float64 only)"


def _dense_float64_input(X: Any) -> tuple[bool, str]:
    """Static check: a dense numeric input that validates to float64."""
    if X is None:
        return True, "ok"
    if sparse.issparse(X):
        return False, "sparse input"
    ok, reason = frame_all_numeric(X)
    if not ok:
        return False, reason
    if isinstance(X, np.ndarray):
        if X.dtype in (np.float32, np.float16):
            return False, _FLOAT64_ONLY
    elif is_pandas_frame(X):
        if any(dt in (np.float32, np.float16) for dt in X.dtypes):
            return False, _FLOAT64_ONLY
    elif is_polars_frame(X):
        if any(str(dt) in ("Float32", "Float16") for dt in X.schema.values()):
            return False, _FLOAT64_ONLY
    if X.shape[0] == 0 or X.shape[1] == 0:
        return False, "empty input (the original raises its own error)"
    return True, "ok"


def _no_callbacks(estimator: Any) -> bool:
    return not getattr(estimator, "_skl_callbacks", None)


# --------------------------------------------------------------------------
# Elementwise kernels on a C-contiguous 2-D view ``A``: ``per_col`` says whether
# the parameters index the last axis (X C-ordered) or the first (``X.T`` of an
# F-ordered X).  The prange runs over ``n0 * cpr`` chunks, ``cpr`` chunks per
# row, so a few long rows (F-ordered data with few columns) still spread over
# all threads.


@njit(**NJIT_PAR)
def _standardize(A, mean, scale, per_col, cpr, out):
    # (x - mean) / scale; with_mean=False passes zeros and with_std=False ones,
    # which leave every value bitwise unchanged (x - 0.0 == x, x / 1.0 == x)
    n0, n1 = A.shape
    step = (n1 + cpr - 1) // cpr
    for c in prange(n0 * cpr):
        i = c // cpr
        j0 = (c - i * cpr) * step
        j1 = min(n1, j0 + step)
        if per_col:
            for j in range(j0, j1):
                out[i, j] = (A[i, j] - mean[j]) / scale[j]
        else:
            m = mean[i]
            s = scale[i]
            for j in range(j0, j1):
                out[i, j] = (A[i, j] - m) / s


@njit(**NJIT_PAR)
def _minmax(A, scale, mn, clip, lo, hi, per_col, cpr, out):
    n0, n1 = A.shape
    step = (n1 + cpr - 1) // cpr
    for c in prange(n0 * cpr):
        i = c // cpr
        j0 = (c - i * cpr) * step
        j1 = min(n1, j0 + step)
        if per_col:
            for j in range(j0, j1):
                out[i, j] = A[i, j] * scale[j] + mn[j]
        else:
            sc = scale[i]
            m = mn[i]
            for j in range(j0, j1):
                out[i, j] = A[i, j] * sc + m
        if clip:
            # numpy's clip: _NPY_MIN(_NPY_MAX(x, lo), hi), NaN propagating
            for j in range(j0, j1):
                v = out[i, j]
                if v == v:
                    v = v if v > lo else lo
                    v = v if v < hi else hi
                    out[i, j] = v


def _c_views(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, int]:
    """C-contiguous view of X, output (X's layout) and its view, per_col, cpr."""
    out = np.empty_like(X)
    if X.flags.c_contiguous:
        A, O, per_col = X, out, True
    else:
        A, O, per_col = X.T, out.T, False
    n0, n1 = A.shape
    want = 4 * _n_threads()
    cpr = 1
    if n0 < want:
        cpr = max(1, min(-(-want // max(n0, 1)), n1 // 4096))
    return A, out, O, per_col, cpr


# --------------------------------------------------------------------------
# StandardScaler


def supports_standard_scaler(estimator_or_params: Any, X: Any = None) -> tuple[bool, str]:
    p = params_of(estimator_or_params)
    if not (p.get("with_mean", True) or p.get("with_std", True)):
        return False, "with_mean=False and with_std=False (nothing to compute)"
    if p.get("copy", True) is not True:
        return False, "copy=False (the original works in place)"
    return _dense_float64_input(X)


class FastStandardScaler(KernelMixin, StandardScaler):
    """:class:`~sklearn.preprocessing.StandardScaler` with numba kernels."""

    @classmethod
    def supports(cls, params: Any, X: Any = None) -> tuple[bool, str]:
        return supports_standard_scaler(params, X)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        ok, reason = supports_standard_scaler(self, X)
        if ok and sample_weight is not None:
            ok, reason = False, "sample_weight"
        if ok and hasattr(self, "n_samples_seen_"):
            ok, reason = False, "incremental partial_fit"
        if ok and not _no_callbacks(self):
            ok, reason = False, "fit callbacks registered"
        if ok:
            done = self._fast_partial_fit(X, y)
            if done:
                self._record_path("fit", True, "ok")
                return self
            reason = "validated data not float64/contiguous or non-finite mean"
        self._record_path("fit", False, reason)
        return super().partial_fit(X, y, sample_weight)

    def _fast_partial_fit(self, X, y) -> bool:
        Xv = validate_data(
            self,
            X,
            accept_sparse=("csr", "csc"),
            dtype=(np.float64, np.float32, np.float16),
            ensure_all_finite="allow-nan",
            reset=True,
        )
        if Xv.dtype != np.float64 or summation_layout(Xv) is None:
            return False
        n_samples, n_features = Xv.shape
        with work_scope(Xv.size):
            new_sum, nan_count = column_sums(Xv)
        # numpy warns when a sum or a square overflows; the kernels do not, so
        # any non-finite intermediate sends the call to the original instead
        counted = nan_count < n_samples
        if not np.all(np.isfinite(new_sum[counted])):
            return False
        new_sample_count = n_samples - nan_count.astype(np.float64)
        if self.with_std:
            with np.errstate(all="ignore"):
                T_kernel = new_sum / new_sample_count
            with work_scope(Xv.size):
                correction, sq = centered_sums(Xv, T_kernel)
            if not (
                np.all(np.isfinite(correction[counted]))
                and np.all(np.isfinite(sq[counted]))
            ):
                return False
        callback_ctx = None
        if hasattr(self, "_init_callback_context"):
            callback_ctx = self._init_callback_context()
            callback_ctx.call_on_fit_task_begin(
                estimator=self, X=Xv, y=y, metadata={"sample_weight": None}
            )
        # from here on: scikit-learn's _incremental_mean_and_var, expression
        # by expression (same results, same numpy warnings)
        last_sample_count = np.zeros(n_features, dtype=np.int64).astype(np.float64)
        last_mean = 0.0
        last_sum = last_mean * last_sample_count
        updated_sample_count = last_sample_count + new_sample_count
        updated_mean = (last_sum + new_sum) / updated_sample_count
        if not self.with_std:
            updated_variance = None
        else:
            last_variance = 0.0
            T = new_sum / new_sample_count  # noqa: F841 - same warnings as sklearn
            new_unnormalized_variance = sq
            new_unnormalized_variance -= correction**2 / new_sample_count
            last_unnormalized_variance = last_variance * last_sample_count
            with np.errstate(divide="ignore", invalid="ignore"):
                last_over_new_count = last_sample_count / new_sample_count
                updated_unnormalized_variance = (
                    last_unnormalized_variance
                    + new_unnormalized_variance
                    + last_over_new_count
                    / updated_sample_count
                    * (last_sum / last_over_new_count - new_sum) ** 2
                )
            zeros = last_sample_count == 0
            updated_unnormalized_variance[zeros] = new_unnormalized_variance[zeros]
            updated_variance = updated_unnormalized_variance / updated_sample_count
        self.mean_ = updated_mean
        self.var_ = updated_variance
        self.n_samples_seen_ = updated_sample_count
        if np.max(self.n_samples_seen_) == np.min(self.n_samples_seen_):
            self.n_samples_seen_ = self.n_samples_seen_[0]
        if self.with_std:
            from sklearn.preprocessing._data import (
                _handle_zeros_in_scale,
                _is_constant_feature,
            )

            constant_mask = _is_constant_feature(
                self.var_, self.mean_, self.n_samples_seen_
            )
            self.scale_ = _handle_zeros_in_scale(
                np.sqrt(self.var_), copy=False, constant_mask=constant_mask
            )
        else:
            self.scale_ = None
        if callback_ctx is not None:
            callback_ctx.call_on_fit_task_end(
                estimator=self,
                X=Xv,
                y=y,
                metadata={"sample_weight": None},
                reconstruction_attributes={},
            )
        return True

    def transform(self, X, copy=None):
        check_is_fitted(self)
        ok, reason = supports_standard_scaler(self, X)
        if ok and copy is False:
            ok, reason = False, "copy=False (the original works in place)"
        if ok and not isinstance(self.mean_ if self.with_mean else self.scale_,
                                 np.ndarray):
            ok, reason = False, "fitted on sparse data"
        if ok:
            Xv = validate_data(
                self,
                X,
                reset=False,
                accept_sparse="csr",
                copy=False,
                dtype=(np.float64, np.float32, np.float16),
                force_writeable=False,
                ensure_all_finite="allow-nan",
            )
            if Xv.dtype == np.float64 and summation_layout(Xv) is not None:
                A, out, O, per_col, cpr = _c_views(Xv)
                d = Xv.shape[1]
                mean = np.ascontiguousarray(
                    self.mean_ if self.with_mean else np.zeros(d), dtype=np.float64
                )
                scale = np.ascontiguousarray(
                    self.scale_ if self.with_std else np.ones(d), dtype=np.float64
                )
                with work_scope(Xv.size):
                    _standardize(A, mean, scale, per_col, cpr, O)
                self._record_path("transform", True, "ok")
                return out
            reason = "validated data not float64/contiguous"
        self._record_path("transform", False, reason)
        return unwrapped(StandardScaler.transform)(self, X, copy=copy)


# --------------------------------------------------------------------------
# MinMaxScaler


def supports_minmax_scaler(estimator_or_params: Any, X: Any = None) -> tuple[bool, str]:
    p = params_of(estimator_or_params)
    if p.get("copy", True) is not True:
        return False, "copy=False (the original works in place)"
    fr = p.get("feature_range", (0, 1))
    if not isinstance(fr, tuple) or len(fr) != 2:
        return False, "feature_range is not a 2-tuple (the original validates it)"
    return _dense_float64_input(X)


class FastMinMaxScaler(KernelMixin, MinMaxScaler):
    """:class:`~sklearn.preprocessing.MinMaxScaler` with numba kernels."""

    @classmethod
    def supports(cls, params: Any, X: Any = None) -> tuple[bool, str]:
        return supports_minmax_scaler(params, X)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        ok, reason = supports_minmax_scaler(self, X)
        if ok and hasattr(self, "n_samples_seen_"):
            ok, reason = False, "incremental partial_fit"
        if ok:
            feature_range = self.feature_range
            if feature_range[0] >= feature_range[1]:
                ok, reason = False, "invalid feature_range (the original raises)"
        if ok:
            Xv = validate_data(
                self,
                X,
                reset=True,
                dtype=(np.float64, np.float32, np.float16),
                ensure_all_finite="allow-nan",
            )
            if Xv.dtype == np.float64:
                self._fast_fit_minmax(Xv)
                self._record_path("fit", True, "ok")
                return self
            reason = "validated data not float64"
        self._record_path("fit", False, reason)
        return super().partial_fit(X, y)

    def _fast_fit_minmax(self, Xv: np.ndarray) -> None:
        from sklearn.preprocessing._data import _handle_zeros_in_scale

        feature_range = (
            np.asarray(self.feature_range[0], dtype=Xv.dtype),
            np.asarray(self.feature_range[1], dtype=Xv.dtype),
        )
        with work_scope(Xv.size):
            data_min, data_max = column_nanminmax(Xv, 4 * _n_threads())
        if np.isnan(data_min).any():
            # np.nanmin and np.nanmax each warn on an all-NaN column
            warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=3)
            warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=3)
        self.n_samples_seen_ = Xv.shape[0]
        data_range = data_max - data_min
        self.scale_ = (feature_range[1] - feature_range[0]) / _handle_zeros_in_scale(
            data_range, copy=True
        )
        self.min_ = feature_range[0] - data_min * self.scale_
        self.data_min_ = data_min
        self.data_max_ = data_max
        self.data_range_ = data_range

    def transform(self, X):
        check_is_fitted(self)
        ok, reason = supports_minmax_scaler(self, X)
        if ok:
            Xv = validate_data(
                self,
                X,
                copy=False,
                dtype=(np.float64, np.float32, np.float16),
                force_writeable=False,
                ensure_all_finite="allow-nan",
                reset=False,
            )
            if Xv.dtype == np.float64 and summation_layout(Xv) is not None:
                A, out, O, per_col, cpr = _c_views(Xv)
                lo = float(np.asarray(self.feature_range[0], dtype=np.float64))
                hi = float(np.asarray(self.feature_range[1], dtype=np.float64))
                with work_scope(Xv.size):
                    _minmax(
                        A,
                        np.asarray(self.scale_, dtype=np.float64),
                        np.asarray(self.min_, dtype=np.float64),
                        bool(self.clip), lo, hi, per_col, cpr, O,
                    )
                self._record_path("transform", True, "ok")
                return out
            reason = "validated data not float64/contiguous"
        self._record_path("transform", False, reason)
        return unwrapped(MinMaxScaler.transform)(self, X)
