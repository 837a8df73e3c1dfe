"""Parity of the numba kernels with the scikit-learn / skrub originals.

Every test runs the original and the kernel estimator side by side and asserts
identical results: output values (bitwise for floats), dtype, shape, dense vs
sparse type and index dtypes, feature names, pandas/polars containers, fitted
attributes, warnings and exception types.  Tests also assert that the kernel
path was actually taken where it should be, so parity is not satisfied
vacuously by the fallback.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from skrub import DatetimeEncoder, MinHashEncoder

from stratumlite.runtime.kernels import (
    KERNELS,
    FastDatetimeEncoder,
    FastMinHashEncoder,
    FastMinMaxScaler,
    FastOneHotEncoder,
    FastOrdinalEncoder,
    FastSimpleImputer,
    FastStandardScaler,
    kernel_threads,
    select_kernel,
)

PAIRS = [
    (OneHotEncoder, FastOneHotEncoder),
    (OrdinalEncoder, FastOrdinalEncoder),
    (StandardScaler, FastStandardScaler),
    (MinMaxScaler, FastMinMaxScaler),
    (SimpleImputer, FastSimpleImputer),
    (DatetimeEncoder, FastDatetimeEncoder),
    (MinHashEncoder, FastMinHashEncoder),
]

FAST = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------------
# comparison helpers


def assert_same(a, b):
    """Exact equality of two outputs, including type, dtype and layout info."""
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        return
    if isinstance(a, pl.DataFrame):
        assert isinstance(b, pl.DataFrame)
        assert a.schema == b.schema
        assert a.equals(b), (a, b)
        return
    if sparse.issparse(a):
        assert type(a) is type(b)
        assert a.format == b.format and a.shape == b.shape and a.dtype == b.dtype
        assert a.indices.dtype == b.indices.dtype
        assert a.indptr.dtype == b.indptr.dtype
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)
        return
    if hasattr(a, "get_params") and not isinstance(a, type):
        assert type(a) is type(b) and repr(a) == repr(b)
        return
    if isinstance(a, dict):
        assert type(b) is dict and list(a) == list(b)
        for key in a:
            if hasattr(a[key], "get_params"):  # estimators: same class and params
                assert type(a[key]) is type(b[key]) and repr(a[key]) == repr(b[key])
            else:
                assert_same(a[key], b[key])
        return
    if a is None or isinstance(a, (list, str, int, float, np.dtype)):
        if isinstance(a, list) and a and isinstance(a[0], np.ndarray):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                assert_same(x, y)
            return
        assert type(a) is type(b) or (a is None and b is None)
        if isinstance(a, float) and a != a:
            assert b != b
        else:
            assert a == b, (a, b)
        return
    assert type(a) is type(b), (type(a), type(b))
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    assert a_arr.dtype == b_arr.dtype, (a_arr.dtype, b_arr.dtype)
    assert a_arr.shape == b_arr.shape
    if a_arr.dtype == object:
        for x, y in zip(a_arr.ravel(), b_arr.ravel()):
            assert type(x) is type(y) or (
                isinstance(x, str) and isinstance(y, str)
            ), (x, y)
            assert (x == y) or (x != x and y != y), (x, y)
    else:
        np.testing.assert_array_equal(a_arr, b_arr, strict=True)


FITTED = [
    "categories_", "drop_idx_", "n_features_in_", "feature_names_in_",
    "_missing_indices", "_n_features_outs", "_infrequent_enabled",
    "mean_", "var_", "scale_", "n_samples_seen_", "min_",
    "data_min_", "data_max_", "data_range_",
    "statistics_", "indicator_", "_fit_dtype", "_fill_dtype",
    "extracted_features_", "all_outputs_", "_periodic_encoders",
]


def assert_fitted_equal(orig, fast):
    for name in FITTED:
        assert hasattr(orig, name) == hasattr(fast, name), name
        if hasattr(orig, name):
            assert_same(getattr(orig, name), getattr(fast, name))


def run_both(orig, fast, calls):
    """Apply ``calls`` (list of (method, X)) to both; compare every outcome."""
    outcomes = []
    for est in (orig, fast):
        results = []
        calls_copy = copy.deepcopy(calls)  # copy=False estimators mutate X
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for method, X in calls_copy:
                try:
                    out = getattr(est, method)(X)
                    results.append(("ok", None if method == "fit" else out))
                except Exception as exc:  # noqa: BLE001 - compared below
                    results.append(("error", type(exc)))
                    break
        messages = [
            (w.category, str(w.message))
            for w in caught
            if not issubclass(w.category, (DeprecationWarning, FutureWarning))
        ]
        outcomes.append((results, messages))
    (res_o, warn_o), (res_f, warn_f) = outcomes
    assert [r[0] for r in res_o] == [r[0] for r in res_f], (res_o, res_f)
    for (kind, o), (_, f) in zip(res_o, res_f):
        if kind == "error":
            assert o is f, (o, f)
        elif o is not None:
            assert_same(o, f)
    assert warn_o == warn_f
    if res_o and res_o[0][0] == "ok":
        assert_fitted_equal(orig, fast)
    return res_o


# ---------------------------------------------------------------------------
# numeric inputs


def _container(X: np.ndarray, kind: str):
    cols = [f"c{i}" for i in range(X.shape[1])]
    if kind == "C":
        return np.ascontiguousarray(X)
    if kind == "F":
        return np.asfortranarray(X)
    if kind == "pandas":
        return pd.DataFrame(X, columns=cols)
    return pl.DataFrame(X, schema=cols, orient="row") if X.shape[0] else pl.DataFrame(
        {c: pl.Series(c, [], dtype=pl.Float64) for c in cols}
    )


VALUES = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=64),
    st.sampled_from([np.nan, 0.0, 1.0, -2.5, 3.0, 1e-300, 1e300]),
)


@st.composite
def numeric_data(draw, min_rows=0, max_rows=40):
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(1, 4))
    values = draw(st.lists(VALUES, min_size=n * d, max_size=n * d))
    X = np.array(values, dtype=np.float64).reshape(n, d)
    if n and draw(st.booleans()):
        X[:, draw(st.integers(0, d - 1))] = draw(VALUES)  # constant column
    kind = draw(st.sampled_from(["C", "F", "pandas", "polars"]))
    out = draw(st.sampled_from(["default", "pandas", "polars"]))
    return X, kind, out


def _scaler_pairs(draw):
    which = draw(st.sampled_from(["standard", "minmax"]))
    if which == "standard":
        kw = {"with_mean": draw(st.booleans()), "with_std": draw(st.booleans())}
        if not (kw["with_mean"] or kw["with_std"]):
            kw["with_mean"] = True
        return StandardScaler(**kw), FastStandardScaler(**kw)
    kw = {
        "clip": draw(st.booleans()),
        "feature_range": draw(st.sampled_from([(0, 1), (-1, 1), (-3.5, 2)])),
    }
    return MinMaxScaler(**kw), FastMinMaxScaler(**kw)


def _check_numeric(data, make_pair, draw):
    X, kind, out = data
    orig, fast = make_pair(draw)
    orig.set_output(transform=out)
    fast.set_output(transform=out)
    Xin = _container(X, kind)
    Xt = _container(X[::-1].copy(), kind)
    res = run_both(orig, fast, [("fit", Xin), ("transform", Xin), ("transform", Xt)])
    if res[0][0] == "ok":
        assert fast.kernel_paths.get("transform") == "kernel", fast.kernel_paths
    return res


@FAST
@given(data=numeric_data(), extra=st.data())
def test_scalers_parity(data, extra):
    _check_numeric(data, _scaler_pairs, extra.draw)


def _imputer_pair(draw):
    kw = {
        "strategy": draw(st.sampled_from(["mean", "median", "most_frequent", "constant"])),
        "keep_empty_features": draw(st.booleans()),
    }
    if kw["strategy"] == "constant" and draw(st.booleans()):
        kw["fill_value"] = -7.5
    return SimpleImputer(**kw), FastSimpleImputer(**kw)


@FAST
@given(data=numeric_data(), extra=st.data())
def test_simple_imputer_parity(data, extra):
    X, kind, out = data
    orig, fast = _imputer_pair(extra.draw)
    orig.set_output(transform=out)
    fast.set_output(transform=out)
    Xin = _container(X, kind)
    run_both(orig, fast, [("fit", Xin), ("transform", Xin)])


@pytest.mark.parametrize("layout", ["C", "F", "pandas", "polars"])
@pytest.mark.parametrize("n", [127, 128, 129, 1031, 20_011])
def test_standard_scaler_bitwise_large(layout, n):
    # sizes around numpy's pairwise block (128) and its parallel split
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 3)) * [1e-3, 1.0, 1e6] + [0.0, 1e3, -5.0]
    X[rng.random(X.shape) < 0.05] = np.nan
    Xin = _container(X, layout)
    orig, fast = StandardScaler(), FastStandardScaler()
    run_both(orig, fast, [("fit", Xin), ("transform", Xin)])
    assert fast.kernel_paths == {"fit": "kernel", "transform": "kernel"}
    for strategy in ("mean", "median", "most_frequent"):
        run_both(SimpleImputer(strategy=strategy),
                 FastSimpleImputer(strategy=strategy), [("fit", Xin), ("transform", Xin)])


# ---------------------------------------------------------------------------
# categorical inputs

WORDS = ["a", "b", "cc", "Z", "é", ""]
NEW_WORDS = ["new", "b2"]


@st.composite
def categorical_frames(draw, min_rows=0, max_rows=30):
    n_fit = draw(st.integers(min_rows, max_rows))
    n_tr = draw(st.integers(max(min_rows, 1), 12))
    kinds = draw(
        st.lists(st.sampled_from(["obj", "str", "cat", "int", "float"]),
                 min_size=1, max_size=4)
    )
    backend = draw(st.sampled_from(["pandas", "pandas", "polars", "numpy"]))
    unseen = draw(st.booleans())

    def column(kind, n, allow_new):
        pool = WORDS + (NEW_WORDS if allow_new else [])
        if kind in ("obj", "str", "cat"):
            missing = [None, np.nan] if kind == "obj" else [None]
            return draw(st.lists(st.sampled_from(pool + missing), min_size=n, max_size=n))
        if kind == "int":
            hi = 6 if allow_new else 3
            return draw(st.lists(st.integers(-2, hi), min_size=n, max_size=n))
        vals = [0.5, 1.5, -2.25, np.nan] + ([9.75] if allow_new else [])
        return draw(st.lists(st.sampled_from(vals), min_size=n, max_size=n))

    def build(n, allow_new):
        data = {f"{k}{i}": (k, column(k, n, allow_new)) for i, k in enumerate(kinds)}
        if backend == "pandas":
            cols = {}
            for name, (k, v) in data.items():
                if k == "obj":
                    cols[name] = pd.Series(v, dtype=object)
                elif k == "str":
                    cols[name] = pd.Series(v, dtype="str")
                elif k == "cat":
                    cols[name] = pd.Series(v, dtype="category")
                elif k == "int":
                    cols[name] = pd.Series(v, dtype=np.int64)
                else:
                    cols[name] = pd.Series(v, dtype=np.float64)
            return pd.DataFrame(cols, index=pd.RangeIndex(n))
        if backend == "polars":
            cols = []
            for name, (k, v) in data.items():
                if k in ("obj", "str", "cat"):
                    v = [None if not isinstance(x, str) else x for x in v]
                    s = pl.Series(name, v, dtype=pl.String)
                    cols.append(s.cast(pl.Categorical) if k == "cat" else s)
                elif k == "int":
                    cols.append(pl.Series(name, v, dtype=pl.Int64))
                else:
                    cols.append(pl.Series(name, v, dtype=pl.Float64))
            return pl.DataFrame(cols)
        # numpy: a float array if every column is numeric, else an object
        # array (strings, None, nan, and Python numbers for numeric columns)
        numeric = all(k in ("int", "float") for k in kinds)
        arr = np.empty((n, len(kinds)), dtype=np.float64 if numeric else object)
        for j, (_, v) in enumerate(data.values()):
            arr[:, j] = v
        return arr

    return build(n_fit, False), build(n_tr, unseen)


def _encoder_pair(draw):
    if draw(st.booleans()):
        kw = {
            "sparse_output": draw(st.booleans()),
            "handle_unknown": draw(
                st.sampled_from(["error", "ignore", "infrequent_if_exist", "warn"])
            ),
            "drop": draw(st.sampled_from([None, "first", "if_binary"])),
            "dtype": draw(st.sampled_from([np.float64, np.float32, np.int8, bool])),
        }
        return OneHotEncoder(**kw), FastOneHotEncoder(**kw), kw
    handle = draw(st.sampled_from(["error", "use_encoded_value"]))
    kw = {
        "handle_unknown": handle,
        "unknown_value": draw(st.sampled_from([-1, 99, np.nan]))
        if handle == "use_encoded_value" else None,
        "encoded_missing_value": draw(st.sampled_from([np.nan, -2])),
    }
    return OrdinalEncoder(**kw), FastOrdinalEncoder(**kw), kw


def _check_encoders(frames, draw):
    X_fit, X_tr = frames
    orig, fast, kw = _encoder_pair(draw)
    sparse_out = kw.get("sparse_output", False)
    out = "default" if sparse_out else draw(st.sampled_from(["default", "pandas", "polars"]))
    orig.set_output(transform=out)
    fast.set_output(transform=out)
    res = run_both(orig, fast, [("fit", X_fit), ("transform", X_fit), ("transform", X_tr)])
    if res[0][0] == "ok":
        assert_same(orig.get_feature_names_out(), fast.get_feature_names_out())
    return fast


@FAST
@given(frames=categorical_frames(), extra=st.data())
def test_encoders_parity(frames, extra):
    _check_encoders(frames, extra.draw)


def test_encoders_take_the_kernel_path():
    df = pd.DataFrame({
        "o": pd.Series(["a", None, np.nan, "b"], dtype=object),
        "s": pd.Series(["x", "y", None, "x"], dtype="str"),
        "c": pd.Series(["u", "v", "u", None], dtype="category"),
        "i": [1, 2, 3, 1],
        "f": [0.5, np.nan, 1.5, 0.5],
    })
    unseen = df.assign(o=pd.Series(["zz", "a", None, "b"], dtype=object))
    for orig, fast in [
        (OneHotEncoder(handle_unknown="ignore", drop="first"),
         FastOneHotEncoder(handle_unknown="ignore", drop="first")),
        (OneHotEncoder(sparse_output=False, handle_unknown="warn"),
         FastOneHotEncoder(sparse_output=False, handle_unknown="warn")),
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
         FastOrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)),
    ]:
        run_both(orig, fast, [("fit", df), ("transform", df), ("transform", unseen)])
        assert fast.kernel_paths == {"fit": "kernel", "transform": "kernel"}
    # 'error' raises the original's ValueError (through the original code path)
    orig, fast = OneHotEncoder(), FastOneHotEncoder()
    res = run_both(orig, fast, [("fit", df), ("transform", unseen)])
    assert res[-1] == ("error", ValueError)


# ---------------------------------------------------------------------------
# datetimes


@st.composite
def datetime_columns(draw):
    n = draw(st.integers(1, 25))
    unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
    ticks = draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n))
    if draw(st.booleans()):  # dates only: resolution capped at "day"
        ticks = [t // (86_400 * 10**9) * 86_400 * 10**9 for t in ticks]
    values = np.array(ticks, dtype="datetime64[ns]").astype(f"datetime64[{unit}]")
    s = pd.Series(values, name=draw(st.sampled_from(["when", "d"])))
    nulls = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    s[np.array(nulls)] = pd.NaT
    if unit != "s" and draw(st.booleans()):
        return pl.from_pandas(s.to_frame()).to_series(0)
    return s


def _check_datetime(col, extra):
    kw = {
        "resolution": extra.draw(st.sampled_from(
            ["year", "month", "day", "hour", "minute", "second", "microsecond",
             "nanosecond", None])),
        "add_weekday": extra.draw(st.booleans()),
        "add_total_seconds": extra.draw(st.booleans()),
        "add_day_of_year": extra.draw(st.booleans()),
    }
    orig, fast = DatetimeEncoder(**kw), FastDatetimeEncoder(**kw)
    head = col[: max(1, len(col) // 2)]
    run_both(orig, fast, [("fit", col), ("transform", col), ("transform", head)])
    o2, f2 = DatetimeEncoder(**kw), FastDatetimeEncoder(**kw)
    run_both(o2, f2, [("fit_transform", col)])
    if f2.extracted_features_:
        assert f2.kernel_paths == {"fit": "kernel", "transform": "kernel"}


@FAST
@given(col=datetime_columns(), extra=st.data())
def test_datetime_encoder_parity(col, extra):
    _check_datetime(col, extra)


def test_datetime_encoder_falls_back():
    s = pd.Series(pd.date_range("2020-01-01", periods=5, freq="7h", tz="UTC"), name="t")
    for X, kw in [(s, {}), (s.dt.tz_localize(None), {"periodic_encoding": "circular"})]:
        orig, fast = DatetimeEncoder(**kw), FastDatetimeEncoder(**kw)
        run_both(orig, fast, [("fit_transform", X)])
        assert fast.kernel_paths["fit"].startswith("fallback")
    orig, fast = DatetimeEncoder(), FastDatetimeEncoder()
    res = run_both(orig, fast, [("fit_transform", pd.Series([1, 2], name="x"))])
    assert res[0][0] == "error"


# ---------------------------------------------------------------------------
# MinHashEncoder

# ASCII, accents, CJK and emoji (multi-byte UTF-8: skrub reads the first
# len(string) bytes), so every code path of the byte packing is exercised
TEXT = st.text(alphabet=st.sampled_from(list("abcAB -_.0é中😀")), max_size=12)


@FAST
@given(values=st.lists(st.one_of(TEXT, st.none()), min_size=1, max_size=40),
       n_components=st.integers(1, 12),
       ngram=st.sampled_from([(2, 4), (1, 1), (1, 3), (3, 6), (5, 5)]),
       polars=st.booleans())
def test_minhash_encoder_parity(values, n_components, ngram, polars):
    col = pd.Series(values, name="title", dtype=object)
    if polars:
        col = pl.Series("title", values, dtype=pl.String)
    kw = {"n_components": n_components, "ngram_range": ngram}
    orig, fast = MinHashEncoder(**kw), FastMinHashEncoder(**kw)
    run_both(orig, fast, [("fit_transform", col), ("transform", col)])
    assert fast.kernel_paths == {"transform": "kernel"}


def test_minhash_encoder_categorical_and_index():
    col = pd.Series(["b", "a", None, "b"], name="c", dtype="category",
                    index=[10, 11, 12, 13])
    orig, fast = MinHashEncoder(n_components=4), FastMinHashEncoder(n_components=4)
    run_both(orig, fast, [("fit_transform", col)])
    assert fast.kernel_paths == {"transform": "kernel"}


@pytest.mark.parametrize("kw", [{"minmax_hash": True, "n_components": 4},
                                {"hashing": "murmur", "n_components": 3}])
def test_minhash_encoder_falls_back(kw):
    col = pd.Series(["north", "south", None], name="c")
    orig, fast = MinHashEncoder(**kw), FastMinHashEncoder(**kw)
    run_both(orig, fast, [("fit_transform", col)])
    assert fast.kernel_paths["transform"].startswith("fallback")


# ---------------------------------------------------------------------------
# edge cases: empty frames, single rows, fallbacks


@pytest.mark.parametrize("orig_cls,fast_cls", PAIRS[:5])
@pytest.mark.parametrize("rows", [0, 1])
def test_empty_and_single_row(orig_cls, fast_cls, rows):
    X = pd.DataFrame({"a": [1.5] * rows, "b": [np.nan] * rows})
    res = run_both(orig_cls(), fast_cls(), [("fit", X), ("transform", X)])
    if rows == 0:
        assert res[0][0] == "error"


@pytest.mark.parametrize(
    "orig,fast,X",
    [
        (OneHotEncoder(min_frequency=2), FastOneHotEncoder(min_frequency=2),
         pd.DataFrame({"a": ["x", "x", "y", "z"]})),
        (OneHotEncoder(max_categories=2, handle_unknown="infrequent_if_exist"),
         FastOneHotEncoder(max_categories=2, handle_unknown="infrequent_if_exist"),
         pd.DataFrame({"a": ["x", "x", "y", "z"]})),
        (OneHotEncoder(categories=[["x", "y", "z"]]),
         FastOneHotEncoder(categories=[["x", "y", "z"]]),
         pd.DataFrame({"a": ["x", "x", "y", "z"]})),
        (OrdinalEncoder(), FastOrdinalEncoder(),
         pd.DataFrame({"a": pd.array([1, None, 2], dtype="Int64")})),
        (OneHotEncoder(), FastOneHotEncoder(), [["a", 1], ["b", 2]]),
        (OneHotEncoder(), FastOneHotEncoder(),
         pd.DataFrame({"a": [True, False, True]})),
        (OneHotEncoder(), FastOneHotEncoder(),
         pd.DataFrame({"a": ["x", 1, "y"]}, dtype=object)),
        (OneHotEncoder(), FastOneHotEncoder(), pd.DataFrame({"a": [1.0, np.inf]})),
        (StandardScaler(), FastStandardScaler(), np.ones((3, 2), dtype=np.float32)),
        (StandardScaler(with_mean=False), FastStandardScaler(with_mean=False),
         sparse.csr_matrix(np.eye(3))),
        (StandardScaler(), FastStandardScaler(), np.array([[1.0, np.inf]])),
        (MinMaxScaler(copy=False), FastMinMaxScaler(copy=False), np.eye(3)),
        (SimpleImputer(missing_values=-1), FastSimpleImputer(missing_values=-1),
         np.array([[1.0, -1.0], [2.0, 3.0]])),
        (SimpleImputer(add_indicator=True), FastSimpleImputer(add_indicator=True),
         np.array([[1.0, np.nan], [2.0, 3.0]])),
        (SimpleImputer(strategy="most_frequent"),
         FastSimpleImputer(strategy="most_frequent"),
         pd.DataFrame({"a": ["x", None, "x"]}, dtype=object)),
        (SimpleImputer(), FastSimpleImputer(), np.array([[np.nan, 1.0], [np.nan, 2.0]])),
    ],
)
def test_fallback_cases_match(orig, fast, X):
    res = run_both(orig, fast, [("fit", X), ("transform", X)])
    paths = fast.kernel_paths.values()
    assert res[0][0] == "error" or any(v.startswith("fallback") for v in paths)


# ---------------------------------------------------------------------------
# estimator API: get_params, clone, repr, pickle


@pytest.mark.parametrize("orig_cls,fast_cls", PAIRS)
def test_params_clone_pickle(orig_cls, fast_cls):
    orig, fast = orig_cls(), fast_cls()
    assert orig.get_params() == fast.get_params()
    assert repr(fast) == repr(orig).replace(orig_cls.__name__, fast_cls.__name__, 1)
    cloned = clone(fast)
    assert type(cloned) is fast_cls and cloned.get_params() == fast.get_params()
    if orig_cls is DatetimeEncoder:
        X = pd.Series(pd.to_datetime(["2021-03-04 05:06", None, "1999-12-31 00:00"]), name="t")
    elif orig_cls is MinHashEncoder:
        X = pd.Series(["data analyst", None, "nurse"], name="t")
    elif orig_cls in (OneHotEncoder, OrdinalEncoder):
        X = pd.DataFrame({"a": ["x", "y", None], "b": [1, 2, 1]})
    else:
        X = np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 3.0]])
    fast.fit(X)
    orig.fit(X)
    restored = pickle.loads(pickle.dumps(fast))
    assert type(restored) is fast_cls
    assert_fitted_equal(orig, restored)
    assert_same(orig.transform(X), restored.transform(X))


# ---------------------------------------------------------------------------
# registry and threads


def test_registry_select_kernel():
    assert set(KERNELS) == {o for o, _ in PAIRS}
    X = pd.DataFrame({"a": ["x", "y"] * 5})
    est = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    est.set_output(transform="pandas")
    spec = KERNELS[OneHotEncoder]
    chosen, reason = select_kernel(est, spec.min_rows, X)
    assert type(chosen) is FastOneHotEncoder and reason == "ok"
    assert chosen.get_params() == est.get_params()
    assert type(est) is OneHotEncoder  # the input is never modified
    assert_same(chosen.fit_transform(X), est.fit_transform(X))
    small, why = select_kernel(est, spec.min_rows - 1, X)
    assert small is est and "min_rows" in why
    unsupported, why = select_kernel(OneHotEncoder(min_frequency=3), 10**7)
    assert type(unsupported) is OneHotEncoder and "infrequent" in why
    other, why = select_kernel(SimpleImputer(strategy=np.median), 10**7)
    assert type(other) is SimpleImputer and "strategy" in why
    fitted = StandardScaler().fit(np.eye(3))
    twin, _ = select_kernel(fitted, 10**7)
    assert_fitted_equal(fitted, twin)
    from sklearn.preprocessing import RobustScaler

    assert select_kernel(RobustScaler(), 10**7)[1].startswith("no kernel")


def test_kernel_threads_restores_count():
    before = numba.get_num_threads()
    with kernel_threads(1) as n:
        assert n == 1 and numba.get_num_threads() == 1
        with kernel_threads(10**6) as m:
            assert m == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == before


def test_results_do_not_depend_on_threads():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((300_000, 3))
    X[rng.random(X.shape) < 0.01] = np.nan
    results = []
    for n in (1, numba.config.NUMBA_NUM_THREADS):
        with kernel_threads(n):
            est = FastStandardScaler().fit(np.asfortranarray(X))
            results.append((est.mean_, est.var_))
    assert_same(results[0][0], results[1][0])
    assert_same(results[0][1], results[1][1])


def test_cached_kernels_reload_in_a_new_process():
    # numba's on-disk cache once crashed (segfault) when reloading some
    # kernels: warm up this process (compiles or loads, fills the cache), then
    # run the whole kernel set in a fresh process, which loads from the cache
    from stratumlite.runtime.kernels import warm_up

    warm_up()
    code = "from stratumlite.runtime.kernels import warm_up; warm_up(); print('ok')"
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


# ---------------------------------------------------------------------------
# bigger runs


@pytest.mark.slow
@SLOW
@given(data=numeric_data(max_rows=400), extra=st.data())
def test_scalers_and_imputer_parity_slow(data, extra):
    _check_numeric(data, _scaler_pairs, extra.draw)
    X, kind, out = data
    orig, fast = _imputer_pair(extra.draw)
    Xin = _container(X, kind)
    run_both(orig, fast, [("fit", Xin), ("transform", Xin)])


@pytest.mark.slow
@SLOW
@given(frames=categorical_frames(max_rows=200), extra=st.data())
def test_encoders_parity_slow(frames, extra):
    _check_encoders(frames, extra.draw)


@pytest.mark.slow
@SLOW
@given(col=datetime_columns(), extra=st.data())
def test_datetime_encoder_parity_slow(col, extra):
    _check_datetime(col, extra)
