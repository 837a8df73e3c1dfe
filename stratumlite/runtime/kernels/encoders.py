"""``OneHotEncoder`` / ``OrdinalEncoder`` kernels with scikit-learn's exact output.

Where the time goes in scikit-learn
-----------------------------------
For string columns scikit-learn converts each column to a numpy object array
(for pandas ``str``/Arrow and polars columns that conversion alone is a large
cost), builds a Python ``set`` to find unknown categories, then encodes with a
Python dict lookup per value (``_map_to_integer``), and finally builds the
one-hot CSR matrix with several n x d temporaries (``X_int``, ``X_mask``,
ravel, boolean indexing) and ``toarray()`` for dense output.  For numeric
columns it sorts (``np.unique``, ``setdiff1d``, ``isin``, ``searchsorted``).

What the kernels do
-------------------
Each input column is reduced to *codes into a small table of distinct values*
by the column's own native machinery, never by a per-value Python loop:

* pandas ``category``: the categorical codes as they are;
* pandas ``str`` (Arrow or Python storage) and ``object`` columns of strings:
  ``pandas.factorize`` (a C hash table; Arrow's dictionary encoding);
* polars ``String``/``Categorical``/``Enum``: ``unique`` and
  ``replace_strict`` (Rust, multi-threaded);
* numeric columns: no table at all -- a parallel numba binary search against
  the sorted categories.

The small table is matched against ``categories_`` in Python (a handful of
dict lookups) and a numba ``prange`` kernel turns the codes into category
indices, then into the output: CSR ``indptr``/``indices`` (row counts, prefix
sum, parallel fill) or the dense one-hot / ordinal matrix, written once.

Exactness
---------
``categories_`` is built exactly as scikit-learn's ``_unique`` would: the
distinct strings sorted with Python's ``sorted``, then ``None``, then ``nan``
(``None`` and ``nan`` are told apart on the missing positions only); numeric
categories are ``np.sort`` of the distinct values with one trailing NaN, and
fall back to scikit-learn's ``np.unique`` when a float column holds a zero
(signed zeros would make the chosen representative order dependent).  The
fitted state is then completed by scikit-learn's own code (``fit`` is
inherited; only ``_fit`` is replaced), so ``drop_idx_``, ``_n_features_outs``,
``_missing_indices`` and every validation error are the originals'.  The
output is built with scikit-learn's own helpers (``csr_array`` with the same
dtype, ``_ensure_sparse_index_int32``, ``_align_api_if_sparse``).  Unknown
categories raise through the original code path ('error'), are encoded as
zeros with scikit-learn's warnings ('ignore', 'infrequent_if_exist' and
'warn' without infrequent categories) or as ``unknown_value``.

Fallbacks (the original runs): user-given ``categories``, ``min_frequency`` /
``max_categories`` (infrequent grouping), columns of other dtypes (bool,
bytes, mixed objects, nullable pandas dtypes, categoricals of non-strings,
non-string objects, numpy ``str`` arrays), infinities, empty inputs, lists,
sparse output with pandas/polars output configured (the original raises).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from numba import njit, prange
from scipy import sparse
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder
from sklearn.utils._encode import _unique
from sklearn.utils._missing import is_scalar_nan
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import KernelMixin, params_of, unwrapped
from ._common import NJIT_PAR, is_pandas_frame, is_polars_frame, work_scope

try:  # scikit-learn >= 1.8
    from sklearn.utils import _align_api_if_sparse
except ImportError:  # pragma: no cover - older scikit-learn

    def _align_api_if_sparse(X):
        return X


try:
    from sklearn.utils.fixes import _ensure_sparse_index_int32
except ImportError:  # pragma: no cover

    def _ensure_sparse_index_int32(A):
        A.indices = A.indices.astype(np.int32, copy=False)
        A.indptr = A.indptr.astype(np.int32, copy=False)


class _Unsupported(Exception):
    """A column or option the kernel does not reproduce: run the original."""


# ---------------------------------------------------------------------------
# numba kernels


@njit(**NJIT_PAR)
def _search_codes(x, cats, nan_idx, out):
    # index of x[i] in the sorted (NaN-free) categories, -1 if absent
    k = cats.shape[0]
    for i in prange(x.shape[0]):
        v = x[i]
        if v != v:
            out[i] = nan_idx
            continue
        lo = 0
        hi = k
        while lo < hi:
            mid = (lo + hi) >> 1
            if cats[mid] < v:
                lo = mid + 1
            else:
                hi = mid
        if lo < k and cats[lo] == v:
            out[i] = lo
        else:
            out[i] = -1


@njit(**NJIT_PAR)
def _remap(codes, lut, out):
    # codes index lut (negative codes were already redirected to lut slots)
    for i in prange(codes.shape[0]):
        out[i] = lut[codes[i]]


@njit(**NJIT_PAR)
def _ohe_row_counts(codes, drop):
    n, d = codes.shape
    counts = np.empty(n + 1, dtype=np.int64)
    counts[0] = 0
    for i in prange(n):
        c = 0
        for j in range(d):
            v = codes[i, j]
            if v >= 0 and v != drop[j]:
                c += 1
        counts[i + 1] = c
    return counts


@njit(**NJIT_PAR)
def _ohe_fill_csr(codes, drop, offsets, indptr, indices):
    n, d = codes.shape
    for i in prange(n):
        p = indptr[i]
        for j in range(d):
            v = codes[i, j]
            dj = drop[j]
            if v < 0 or v == dj:
                continue
            if dj >= 0 and v > dj:
                v -= 1
            indices[p] = offsets[j] + v
            p += 1


@njit(**NJIT_PAR)
def _ohe_fill_dense(codes, drop, offsets, one, out):
    n, d = codes.shape
    for i in prange(n):
        for j in range(d):
            v = codes[i, j]
            dj = drop[j]
            if v < 0 or v == dj:
                continue
            if dj >= 0 and v > dj:
                v -= 1
            out[i, offsets[j] + v] = one


@njit(**NJIT_PAR)
def _ordinal_fill(codes, missing_idx, missing_value, unknown_value, out):
    n, d = codes.shape
    for i in prange(n):
        for j in range(d):
            v = codes[i, j]
            if v < 0:
                out[i, j] = unknown_value
            elif v == missing_idx[j]:
                out[i, j] = missing_value
            else:
                out[i, j] = v


@njit(**NJIT_PAR)
def _any_unknown(codes):
    n, d = codes.shape
    flags = np.zeros(d, dtype=np.bool_)
    for j in prange(d):
        for i in range(n):
            if codes[i, j] < 0:
                flags[j] = True
                break
    return flags


# ---------------------------------------------------------------------------
# column access and classification


def _columns(X: Any, materialize: bool = True) -> tuple[list[Any], int, int]:
    """The columns of a frame / 2-D array, n_samples, n_features.

    With ``materialize=False`` (the static check) polars numeric columns are
    only classified, not converted.
    """
    if is_pandas_frame(X):
        n, d = X.shape
        return [X.iloc[:, j] for j in range(d)], n, d
    if is_polars_frame(X):
        # scikit-learn converts a polars frame as a whole (no ``iloc``): all
        # columns share one numpy dtype.  Strings only -> object (kept as
        # polars Series here); numbers only -> their common dtype.
        import polars as pl

        n, d = X.shape
        series = [X.to_series(j) for j in range(d)]
        kinds = {
            "str"
            if (s.dtype == pl.String or isinstance(s.dtype, (pl.Categorical, pl.Enum)))
            else "num"
            for s in series
        }
        if kinds == {"str"}:
            return series, n, d
        if kinds == {"num"}:
            for s in series:
                _column_kind(s)
            if not materialize:
                return series, n, d
            arrays = [s.to_numpy() for s in series]
            common = np.result_type(*[a.dtype for a in arrays])
            return [a.astype(common, copy=False) for a in arrays], n, d
        raise _Unsupported(
            "polars frame mixing strings and other dtypes (converted to object)"
        )
    if isinstance(X, np.ndarray) and X.ndim == 2:
        n, d = X.shape
        return [X[:, j] for j in range(d)], n, d
    raise _Unsupported(f"input type {type(X).__name__} (not a frame or 2-D array)")


def _is_str_na_nan(dtype: Any) -> bool:
    return isinstance(dtype, pd.StringDtype) and is_scalar_nan(
        getattr(dtype, "na_value", None)
    )


def _column_kind(col: Any) -> str:
    """'num', 'obj', 'pdstr', 'pdcat', 'plstr' -- or raise _Unsupported."""
    if isinstance(col, np.ndarray):
        kind = col.dtype.kind
        if kind in "iuf" and col.dtype != np.uint64 and col.dtype != np.float16:
            return "num"
        if kind == "O":
            return "obj"
        raise _Unsupported(f"array dtype {col.dtype}")
    if isinstance(col, pd.Series):
        dtype = col.dtype
        if isinstance(dtype, np.dtype):
            if dtype.kind in "iuf" and dtype != np.uint64 and dtype != np.float16:
                return "num"
            if dtype.kind == "O":
                return "obj"
            raise _Unsupported(f"column {col.name!r} dtype {dtype}")
        if _is_str_na_nan(dtype):
            return "pdstr"
        if isinstance(dtype, pd.CategoricalDtype):
            if pd.api.types.infer_dtype(dtype.categories, skipna=False) == "string":
                return "pdcat"
            raise _Unsupported(f"categorical column {col.name!r} of non-strings")
        raise _Unsupported(f"column {col.name!r} dtype {dtype}")
    import polars as pl

    if isinstance(col, pl.Series):
        dtype = col.dtype
        if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
            return "plstr"
        if dtype.is_integer() or dtype.is_float():
            if dtype in (pl.UInt64, pl.Int128) or str(dtype) in ("Float16", "UInt128"):
                raise _Unsupported(f"column {col.name!r} dtype {dtype}")
            return "num"
        raise _Unsupported(f"column {col.name!r} dtype {dtype}")
    raise _Unsupported(f"column type {type(col).__name__}")


def _numeric_values(col: Any) -> np.ndarray:
    """The array scikit-learn's ``check_array`` would see, for numeric columns."""
    if isinstance(col, np.ndarray):
        values = col
    elif isinstance(col, pd.Series):
        values = col.to_numpy()
    else:
        values = col.to_numpy()
    if values.dtype.kind == "f" and np.isinf(values).any():
        raise _Unsupported("infinite values (the original raises)")
    return values


def _kernel_values(values: np.ndarray) -> np.ndarray:
    # one compiled variant per family: int64 or float64 (exact for all
    # supported dtypes: ints up to int64/uint32, float32 widens exactly)
    if values.dtype.kind == "f":
        return np.ascontiguousarray(values, dtype=np.float64)
    return np.ascontiguousarray(values, dtype=np.int64)


def _missing_split(values: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, bool, bool]:
    """Positions of missing values in an object column: is-None mask, has None/nan.

    Raises _Unsupported for missing markers scikit-learn does not treat as
    None/nan the same way (pd.NA, NaT, ...).
    """
    miss = np.flatnonzero(codes < 0)
    if miss.size == 0:
        return miss, False, False
    vals = values[miss]
    is_none = np.fromiter((v is None for v in vals), dtype=bool, count=vals.size)
    others = vals[~is_none]
    if not all(type(v) is float or isinstance(v, np.floating) for v in others):
        raise _Unsupported("missing markers other than None/nan")
    return miss[is_none], bool(is_none.any()), bool(others.size)


def _string_table(col: Any, kind: str) -> tuple[np.ndarray, list, Any]:
    """(codes, distinct strings, missing info) for a string-like column.

    ``codes`` index the distinct strings; -1 marks nan, -2 marks None.
    """
    if kind == "obj":
        values = col if isinstance(col, np.ndarray) else col.to_numpy()
        codes, uniques = pd.factorize(values)
        if uniques.size and pd.api.types.infer_dtype(uniques, skipna=False) != "string":
            raise _Unsupported("object column of non-strings")
        none_pos, _, _ = _missing_split(values, codes)
        if none_pos.size:
            codes = codes.copy()
            codes[none_pos] = -2
        return codes, list(uniques), None
    if kind == "pdstr":
        codes, uniques = pd.factorize(col)
        return np.asarray(codes), list(uniques), None
    if kind == "pdcat":
        codes = col.cat.codes.to_numpy()
        return codes, list(col.cat.categories), None
    raise AssertionError(kind)


def _sorted_string_categories(present: list, has_none: bool, has_nan: bool) -> np.ndarray:
    cats = sorted(present)
    if has_none:
        cats.append(None)
    if has_nan:
        cats.append(np.nan)
    out = np.empty(len(cats), dtype=object)
    out[:] = cats
    return out


def _fit_column(col: Any) -> np.ndarray:
    """``categories_[i]`` exactly as scikit-learn's ``_unique`` computes it."""
    kind = _column_kind(col)
    if kind == "num":
        values = _numeric_values(col)
        uniq = pd.unique(values)
        if values.dtype.kind == "f" and (uniq == 0).any():
            return _unique(values)  # signed zeros: let numpy pick, as sklearn
        return np.sort(uniq).astype(values.dtype, copy=False)
    if kind == "plstr":
        import polars as pl

        s = col if col.dtype == pl.String else col.cast(pl.String)
        present = s.drop_nulls().unique().to_list()
        return _sorted_string_categories(present, s.null_count() > 0, False)
    codes, uniques, _ = _string_table(col, kind)
    counts = np.bincount(codes + 2, minlength=len(uniques) + 2)
    present = [u for u, c in zip(uniques, counts[2:]) if c]
    return _sorted_string_categories(present, bool(counts[0]), bool(counts[1]))


def _string_index_table(cats: np.ndarray) -> tuple[dict, int, int]:
    lookup = {}
    none_idx = nan_idx = -1
    for i, c in enumerate(cats):
        if c is None:
            none_idx = i
        elif is_scalar_nan(c):
            nan_idx = i
        else:
            lookup[c] = i
    return lookup, none_idx, nan_idx


def _encode_column(col: Any, cats: np.ndarray, out: np.ndarray) -> None:
    """Write category indices of ``col`` (-1 unknown) into ``out`` (int32)."""
    kind = _column_kind(col)
    if kind == "num":
        values = _numeric_values(col)
        if cats.dtype.kind not in "iuf":
            raise _Unsupported("numeric column fitted with non-numeric categories")
        if values.dtype.kind != cats.dtype.kind and not (
            values.dtype.kind in "iu" and cats.dtype.kind in "iu"
        ):
            raise _Unsupported("column dtype kind changed since fit")
        has_nan = cats.size > 0 and cats.dtype.kind == "f" and np.isnan(cats[-1])
        body = cats[:-1] if has_nan else cats
        nan_idx = cats.size - 1 if has_nan else -1
        xv = _kernel_values(values)
        cv = np.ascontiguousarray(body, dtype=xv.dtype)
        if cv.dtype.kind == "i" and body.dtype.kind == "u" and body.size and (
            body.max() > np.iinfo(np.int64).max
        ):
            raise _Unsupported("uint64 categories")
        _search_codes(xv, cv, nan_idx, out)
        return
    if cats.dtype != object:
        raise _Unsupported("string column fitted with numeric categories")
    lookup, none_idx, nan_idx = _string_index_table(cats)
    if kind == "plstr":
        import polars as pl

        s = col if col.dtype == pl.String else col.cast(pl.String)
        keys = list(lookup)
        codes = s.replace_strict(
            keys, [lookup[k] for k in keys], default=-1, return_dtype=pl.Int32
        ).to_numpy()
        if s.null_count():
            codes = np.array(codes, dtype=np.int32, copy=True)
            codes[s.is_null().to_numpy()] = none_idx
        out[:] = codes
        return
    codes, uniques, _ = _string_table(col, kind)
    lut = np.empty(len(uniques) + 2, dtype=np.int32)
    lut[0] = none_idx  # code -2
    lut[1] = nan_idx  # code -1
    for i, u in enumerate(uniques):
        lut[i + 2] = lookup.get(u, -1)
    _remap(np.asarray(codes, dtype=np.int64) + 2, lut, out)


# ---------------------------------------------------------------------------
# shared estimator logic


def _supports_common(p: dict, X: Any) -> tuple[bool, str]:
    if not (isinstance(p.get("categories"), str) and p.get("categories") == "auto"):
        return False, "user-given categories"
    if p.get("min_frequency") is not None or p.get("max_categories") is not None:
        return False, "infrequent categories (min_frequency/max_categories)"
    try:
        dtype = np.dtype(p.get("dtype", np.float64))
    except TypeError:
        return False, "output dtype not a numpy dtype"
    if dtype.kind not in "biuf" or dtype == np.float16:
        return False, f"output dtype {dtype}"
    if X is None:
        return True, "ok"
    if sparse.issparse(X):
        return False, "sparse input"
    try:
        cols, n, d = _columns(X, materialize=False)
        if n == 0 or d == 0:
            return False, "empty input (the original raises its own error)"
        for col in cols:
            _column_kind(col)
    except _Unsupported as exc:
        return False, str(exc)
    return True, "ok"


class _FastEncoderMixin(KernelMixin):
    def _fit(
        self,
        X,
        handle_unknown="error",
        ensure_all_finite=True,
        return_counts=False,
        return_and_ignore_missing_for_infrequent=False,
    ):
        ok, reason = self.supports(self, X)
        if ok and return_counts:
            ok, reason = False, "category counts requested"
        if ok:
            try:
                self._check_infrequent_enabled()
                if self._infrequent_enabled:
                    raise _Unsupported("infrequent categories")
                cols, n_samples, n_features = _columns(X)
                categories = [_fit_column(col) for col in cols]
            except _Unsupported as exc:
                ok, reason = False, str(exc)
        if not ok:
            self._record_path("fit", False, reason)
            return super()._fit(
                X,
                handle_unknown=handle_unknown,
                ensure_all_finite=ensure_all_finite,
                return_counts=return_counts,
                return_and_ignore_missing_for_infrequent=(
                    return_and_ignore_missing_for_infrequent
                ),
            )
        validate_data(self, X=X, reset=True, skip_check_array=True)
        self.n_features_in_ = n_features
        self.categories_ = categories
        output = {"n_samples": n_samples}
        if return_and_ignore_missing_for_infrequent:
            output["missing_indices"] = {
                i: cats.size - 1
                for i, cats in enumerate(self.categories_)
                if cats.size and is_scalar_nan(cats[-1])
            }
        self._record_path("fit", True, "ok")
        return output

    def _fast_codes(self, X) -> np.ndarray:
        """Category indices (n, d) int32, -1 for unknown; raises _Unsupported."""
        if getattr(self, "_infrequent_enabled", False):
            raise _Unsupported("infrequent categories")
        cols, n, d = _columns(X)
        validate_data(self, X=X, reset=False, skip_check_array=True)
        if n == 0:
            raise _Unsupported("empty input (the original raises its own error)")
        codes = np.empty((n, d), dtype=np.int32, order="F")
        for j, col in enumerate(cols):
            _encode_column(col, self.categories_[j], codes[:, j])
        return codes


# ---------------------------------------------------------------------------
# OneHotEncoder


def supports_one_hot_encoder(estimator_or_params: Any, X: Any = None) -> tuple[bool, str]:
    p = params_of(estimator_or_params)
    return _supports_common(p, X)


class FastOneHotEncoder(_FastEncoderMixin, OneHotEncoder):
    """:class:`~sklearn.preprocessing.OneHotEncoder` with numba kernels."""

    @classmethod
    def supports(cls, params: Any, X: Any = None) -> tuple[bool, str]:
        return supports_one_hot_encoder(params, X)

    def transform(self, X):
        check_is_fitted(self)
        ok, reason = supports_one_hot_encoder(self, X)
        transform_output = _get_output_config("transform", estimator=self)["dense"]
        if ok and transform_output != "default" and self.sparse_output:
            ok, reason = False, "sparse output with a dataframe output (raises)"
        if ok:
            try:
                with work_scope(X.shape[0] * X.shape[1]):
                    codes = self._fast_codes(X)
                    out = self._fast_one_hot(codes)
                self._record_path("transform", True, "ok")
                return out
            except _Unsupported as exc:
                reason = str(exc)
        self._record_path("transform", False, reason)
        return unwrapped(OneHotEncoder.transform)(self, X)

    def _fast_one_hot(self, codes: np.ndarray):
        unknown = _any_unknown(codes)
        if unknown.any():
            if self.handle_unknown == "error":
                raise _Unsupported("unknown categories with handle_unknown='error'")
            if self.handle_unknown == "warn":
                warn_on_unknown, policy = True, "infrequent_if_exist"
            else:
                warn_on_unknown = self.drop is not None and self.handle_unknown in {
                    "ignore",
                    "infrequent_if_exist",
                }
                policy = self.handle_unknown
            if warn_on_unknown:
                columns_with_unknown = [int(i) for i in np.flatnonzero(unknown)]
                if policy == "infrequent_if_exist":
                    msg = (
                        "Found unknown categories in columns "
                        f"{columns_with_unknown} during transform. These "
                        "unknown categories will be encoded as the "
                        "infrequent category."
                    )
                else:
                    msg = (
                        "Found unknown categories in columns "
                        f"{columns_with_unknown} during transform. These "
                        "unknown categories will be encoded as all zeros"
                    )
                warnings.warn(msg, UserWarning)
        n, d = codes.shape
        drop = np.full(d, -1, dtype=np.int64)
        if self._drop_idx_after_grouping is not None:
            for j, v in enumerate(self._drop_idx_after_grouping):
                if v is not None:
                    drop[j] = int(v)
        n_outs = list(self._n_features_outs)
        offsets = np.zeros(d, dtype=np.int64)
        if d > 1:
            offsets[1:] = np.cumsum(n_outs[:-1])
        n_out = int(sum(n_outs))
        dtype = np.dtype(self.dtype)
        if not self.sparse_output:
            out = np.zeros((n, n_out), dtype=dtype)
            # write the bit pattern of ``dtype(1)`` through an unsigned view:
            # one compiled kernel per item size instead of one per dtype
            bits = np.dtype(f"u{dtype.itemsize}")
            one = np.array(1, dtype=dtype).view(bits)[()]
            _ohe_fill_dense(codes, drop, offsets, one, out.view(bits))
            return out
        counts = _ohe_row_counts(codes, drop)
        indptr64 = np.cumsum(counts)
        nnz = int(indptr64[-1])
        idx_dtype = np.int32 if max(nnz, n_out, n) < 2**31 - 1 else np.int64
        indptr = indptr64.astype(idx_dtype)
        indices = np.empty(nnz, dtype=idx_dtype)
        _ohe_fill_csr(codes, drop, offsets, indptr, indices)
        data = np.ones(nnz, dtype=dtype)
        out = sparse.csr_array((data, indices, indptr), shape=(n, n_out), dtype=dtype)
        _ensure_sparse_index_int32(out)
        return _align_api_if_sparse(out)


# ---------------------------------------------------------------------------
# OrdinalEncoder


def supports_ordinal_encoder(estimator_or_params: Any, X: Any = None) -> tuple[bool, str]:
    p = params_of(estimator_or_params)
    for name in ("unknown_value", "encoded_missing_value"):
        v = p.get(name)
        if v is not None and not is_scalar_nan(v):
            if not isinstance(v, (int, np.integer)) or abs(int(v)) >= 2**53:
                return False, f"{name}={v!r}"
    return _supports_common(p, X)


class FastOrdinalEncoder(_FastEncoderMixin, OrdinalEncoder):
    """:class:`~sklearn.preprocessing.OrdinalEncoder` with numba kernels."""

    @classmethod
    def supports(cls, params: Any, X: Any = None) -> tuple[bool, str]:
        return supports_ordinal_encoder(params, X)

    def transform(self, X):
        check_is_fitted(self, "categories_")
        ok, reason = supports_ordinal_encoder(self, X)
        if ok:
            try:
                with work_scope(X.shape[0] * X.shape[1]):
                    codes = self._fast_codes(X)
                    out = self._fast_ordinal(codes)
                self._record_path("transform", True, "ok")
                return out
            except _Unsupported as exc:
                reason = str(exc)
        self._record_path("transform", False, reason)
        return unwrapped(OrdinalEncoder.transform)(self, X)

    def _fast_ordinal(self, codes: np.ndarray) -> np.ndarray:
        if self.handle_unknown != "use_encoded_value" and _any_unknown(codes).any():
            raise _Unsupported("unknown categories with handle_unknown='error'")
        n, d = codes.shape
        missing_idx = np.full(d, -3, dtype=np.int64)
        for j, m in self._missing_indices.items():
            missing_idx[j] = m
        dtype = np.dtype(self.dtype)
        # computed in float64 (exact for every supported code and value), cast
        # like scikit-learn's ``X_int.astype(dtype)`` for other output dtypes
        out = np.empty((n, d), dtype=np.float64)
        unknown_value = self.unknown_value if self.unknown_value is not None else 0
        missing_value = (
            self.encoded_missing_value if missing_idx.max() >= 0 else 0
        )
        _ordinal_fill(codes, missing_idx, float(missing_value), float(unknown_value), out)
        return out if dtype == np.float64 else out.astype(dtype)
