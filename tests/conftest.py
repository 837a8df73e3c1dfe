"""Shared fixtures and the value-comparison helper of the test-suite.

skrub is the oracle: most tests compute a value with skrub and with
stratumlite and compare them with :func:`assert_same_value`, which is strict
about types, column names and dtypes (a polars result must stay polars, a
pandas ``int64`` column must not become ``float64``...).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd
import polars as pl
import polars.testing
import pytest
import scipy.sparse
from sklearn.base import BaseEstimator

# --------------------------------------------------------------------------
# slow tests: skipped unless selected with ``-m slow``


def pytest_collection_modifyitems(config, items):
    markexpr = config.getoption("-m") or ""
    if "slow" in markexpr:
        return
    skip = pytest.mark.skip(reason="slow test: run with `-m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------
# comparison helper

_RTOL = 1e-6
_ATOL = 1e-6


def assert_same_value(a, b, *, path: str = "value"):
    """Assert that ``a`` (stratumlite) equals ``b`` (skrub), types included.

    Handles pandas/polars frames, series and indexes (names, dtypes, index),
    numpy arrays (dtype, shape, allclose), scipy sparse matrices/arrays,
    scalars (floats with a tolerance, NaN == NaN), lists/tuples/dicts
    recursively and fitted scikit-learn estimators (class, parameters and
    fitted attributes).
    """
    if isinstance(b, pd.DataFrame):
        assert isinstance(a, pd.DataFrame), f"{path}: {type(a)} is not a pandas DataFrame"
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=_RTOL, atol=_ATOL)
        return
    if isinstance(b, pd.Series):
        assert isinstance(a, pd.Series), f"{path}: {type(a)} is not a pandas Series"
        pd.testing.assert_series_equal(a, b, check_exact=False, rtol=_RTOL, atol=_ATOL)
        return
    if isinstance(b, pd.Index):
        assert isinstance(a, pd.Index), f"{path}: {type(a)} is not a pandas Index"
        pd.testing.assert_index_equal(a, b, exact=True)
        return
    if isinstance(b, pl.DataFrame):
        assert isinstance(a, pl.DataFrame), f"{path}: {type(a)} is not a polars DataFrame"
        polars.testing.assert_frame_equal(a, b, check_exact=False, rel_tol=_RTOL,
                                          abs_tol=_ATOL)
        return
    if isinstance(b, pl.LazyFrame):
        assert isinstance(a, pl.LazyFrame), f"{path}: {type(a)} is not a LazyFrame"
        polars.testing.assert_frame_equal(a.collect(), b.collect())
        return
    if isinstance(b, pl.Series):
        assert isinstance(a, pl.Series), f"{path}: {type(a)} is not a polars Series"
        polars.testing.assert_series_equal(a, b, check_exact=False, rel_tol=_RTOL,
                                           abs_tol=_ATOL)
        return
    if scipy.sparse.issparse(b):
        assert scipy.sparse.issparse(a), f"{path}: {type(a)} is not sparse"
        assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
        assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
        np.testing.assert_allclose(a.toarray(), b.toarray(), rtol=_RTOL, atol=_ATOL,
                                   err_msg=path)
        return
    if isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray), f"{path}: {type(a)} is not a numpy array"
        assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=_RTOL, atol=_ATOL, equal_nan=True,
                                       err_msg=path)
        elif a.dtype.kind == "O":
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
                assert_same_value(x, y, path=f"{path}.flat[{i}]")
        else:
            np.testing.assert_array_equal(a, b, err_msg=path)
        return
    if isinstance(b, np.generic):
        assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
        _assert_scalar(a.item(), b.item(), path)
        return
    if isinstance(b, Mapping):
        assert isinstance(a, Mapping), f"{path}: {type(a)} is not a mapping"
        assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
        assert list(a.keys()) == list(b.keys()), f"{path}: keys {list(a)} != {list(b)}"
        for k in b:
            assert_same_value(a[k], b[k], path=f"{path}[{k!r}]")
        return
    if isinstance(b, (list, tuple)):
        assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_value(x, y, path=f"{path}[{i}]")
        return
    if isinstance(b, BaseEstimator):
        _assert_same_estimator(a, b, path)
        return
    if isinstance(b, (bool, numbers.Number, str, bytes)) or b is None:
        assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
        _assert_scalar(a, b, path)
        return
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    assert a == b, f"{path}: {a!r} != {b!r}"


def _assert_scalar(a, b, path):
    if isinstance(b, float) or isinstance(b, complex):
        if isinstance(b, float) and math.isnan(b):
            assert math.isnan(a), f"{path}: {a!r} != {b!r}"
            return
        assert a == pytest.approx(b, rel=_RTOL, abs=_ATOL), f"{path}: {a!r} != {b!r}"
        return
    assert a == b, f"{path}: {a!r} != {b!r}"


def _assert_same_estimator(a, b, path):
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    assert a is not b, f"{path}: stratumlite returned skrub's own estimator object"
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    assert list(pa) == list(pb), f"{path}: params {list(pa)} != {list(pb)}"
    for k in pb:
        assert_same_value(pa[k], pb[k], path=f"{path}.{k}")
    fitted_a = {k for k in vars(a) if k.endswith("_") and not k.startswith("_")}
    fitted_b = {k for k in vars(b) if k.endswith("_") and not k.startswith("_")}
    assert fitted_a == fitted_b, f"{path}: fitted attributes {fitted_a} != {fitted_b}"
    for k in sorted(fitted_b):
        va, vb = getattr(a, k), getattr(b, k)
        if _comparable(vb):
            assert_same_value(va, vb, path=f"{path}.{k}")


def _comparable(value) -> bool:
    if isinstance(value, (pd.DataFrame, pd.Series, pd.Index, pl.DataFrame, pl.Series,
                          np.ndarray, np.generic, BaseEstimator, bool, numbers.Number,
                          str)) or value is None:
        return True
    if scipy.sparse.issparse(value):
        return True
    if isinstance(value, (list, tuple)):
        return all(_comparable(v) for v in value)
    if isinstance(value, dict):
        return all(_comparable(v) for v in value.values())
    return False


# --------------------------------------------------------------------------
# data

N_ROWS = 30


def mixed_frame(n: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n).round(3),
            "b": rng.integers(0, 10, size=n).astype("int64"),
            "c": rng.normal(loc=5.0, size=n).round(3),
            "s": [["red", "green", "blue", "green blue"][i % 4] for i in range(n)],
            "d": pd.date_range("2024-01-01", periods=n, freq="D"),
        }
    )


def to_backend(df: pd.DataFrame, backend: str):
    """A pandas frame (or series) as ``backend`` ('pandas' or 'polars')."""
    if backend == "pandas":
        return df
    if isinstance(df, pd.Series):
        return pl.from_pandas(df)
    return pl.from_pandas(df)


@pytest.fixture(params=["pandas", "polars"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def df_pandas() -> pd.DataFrame:
    """8 rows: float ``a``, int ``b``, float ``c``, string ``s``, datetime ``d``."""
    return mixed_frame()


@pytest.fixture
def df_polars() -> pl.DataFrame:
    return pl.from_pandas(mixed_frame())


@pytest.fixture
def df(backend):
    """The small mixed frame in the ``backend`` flavour."""
    return to_backend(mixed_frame(), backend)


def regression_frame(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(-1, 1, size=n)
    x3 = rng.normal(size=n)
    target = 2.0 * x1 - 3.0 * x2 + 0.5 * x3 + rng.normal(scale=0.1, size=n)
    return pd.DataFrame(
        {
            "x1": x1.round(4),
            "x2": x2.round(4),
            "x3": x3.round(4),
            "cat": [["u", "v", "w"][i % 3] for i in range(n)],
            "target": target.round(4),
        }
    )


def classification_frame(n: int = N_ROWS, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    x3 = rng.normal(size=n)
    logits = 1.5 * x1 - x2 + 0.3 * x3
    label = np.where(logits + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    return pd.DataFrame(
        {"x1": x1.round(4), "x2": x2.round(4), "x3": x3.round(4), "label": label}
    )


@pytest.fixture
def regression_data(backend):
    """(train, test) frames in ``backend``: features x1..x3, cat, target."""
    full = regression_frame(N_ROWS + 10)
    train = full.iloc[:N_ROWS].reset_index(drop=True)
    test = full.iloc[N_ROWS:].reset_index(drop=True)
    return to_backend(train, backend), to_backend(test, backend)


@pytest.fixture
def classification_data(backend):
    """(train, test) frames in ``backend``: features x1..x3, label yes/no."""
    full = classification_frame(N_ROWS + 10)
    train = full.iloc[:N_ROWS].reset_index(drop=True)
    test = full.iloc[N_ROWS:].reset_index(drop=True)
    return to_backend(train, backend), to_backend(test, backend)
