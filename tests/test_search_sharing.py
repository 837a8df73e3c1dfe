"""A search fits each shared prefix once per fold (counted, not assumed).

The transformers below record every ``fit`` in a module-level log guarded by a
lock (the default executor runs tasks on threads). Each fit records the number
of rows it saw, so fits on a training fold (2/3 of the rows with ``cv=3``) can
be told apart from a refit on all the rows.

    data ─▶ X ─▶ CountingScaler ─┬─▶ Ridge(alpha=0.1)  ┐
                                 ├─▶ Ridge(alpha=10)   │ 4 configurations,
                                 ├─▶ Lasso             │ one shared prefix
                                 └─▶ KNeighbors        ┘

skrub fits the scaler for every (configuration, fold): 4 x 3 = 12 times;
stratumlite once per fold: 3 times.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import skrub
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import Lasso, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import stratumlite

N = 120
_LOCK = threading.Lock()
_FITS: list[tuple[str, int]] = []


class CountingScaler(StandardScaler):
    """A StandardScaler that logs its fits (class name, rows)."""

    def fit(self, X, y=None, sample_weight=None):
        with _LOCK:
            _FITS.append((type(self).__name__, len(X)))
        return super().fit(X, y, sample_weight=sample_weight)


class CountingMinMax(MinMaxScaler):
    def fit(self, X, y=None):
        with _LOCK:
            _FITS.append((type(self).__name__, len(X)))
        return super().fit(X, y)


def clear_fits() -> None:
    """Forget logged fits (skrub fits once on all rows to preview each new
    DataOp, when its variables have values: clear after building)."""
    with _LOCK:
        _FITS.clear()


def fits(name: str = "CountingScaler") -> list[int]:
    """Rows seen by each logged fit of ``name``."""
    with _LOCK:
        return [rows for n, rows in _FITS if n == name]


@pytest.fixture(autouse=True)
def clear_log():
    clear_fits()
    yield


def frame(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    df = pd.DataFrame(X.round(4), columns=["a", "b", "c"])
    df["y"] = (X @ [1.0, -2.0, 0.5] + rng.normal(scale=0.3, size=n)).round(4)
    return df


DF = frame()
MODELS = {"ridge small": Ridge(alpha=0.1), "ridge big": Ridge(alpha=10.0),
          "lasso": Lasso(alpha=0.1), "knn": KNeighborsRegressor(5)}


def shared_prefix_search_op():
    data = skrub.var("data", DF)
    X = data[["a", "b", "c"]].skb.mark_as_X()
    y = data["y"].skb.mark_as_y()
    scaled = X.skb.apply(CountingScaler())
    return scaled.skb.apply(skrub.choose_from(MODELS, name="model"), y=y)


def test_shared_prefix_fitted_once_per_fold():
    op = shared_prefix_search_op()
    clear_fits()
    search = stratumlite.make_grid_search(op, fitted=True, cv=3, refit=False, verbose=0)
    stratumlite_fits = fits()
    assert len(stratumlite_fits) == 3  # 1 transformer x 3 folds
    assert all(rows < N for rows in stratumlite_fits)  # each on a training fold
    assert sorted(stratumlite_fits) == sorted([N - len(t) for t in np.array_split(
        np.arange(N), 3)])
    stats = search.stats_
    assert stats["configurations"] == 4 and stats["folds"] == 3
    assert stats["fits_executed"] < stats["fits_naive"]
    # naive: (scaler + model) x 4 configurations x 3 folds; executed: 3 + 4 x 3
    assert stats["fits_naive"] == 2 * 4 * 3
    assert stats["fits_executed"] == 3 + 4 * 3

    clear_fits()
    reference = op.skb.make_grid_search(fitted=True, cv=3, refit=False)
    assert len(fits()) >= 12  # skrub: once per (configuration, fold)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               reference.cv_results_["mean_test_score"], rtol=1e-9)


def test_refit_fits_the_prefix_once_more_on_all_rows():
    op = shared_prefix_search_op()
    clear_fits()
    search = stratumlite.make_grid_search(op, fitted=True, cv=3, verbose=0)
    rows = fits()
    assert sorted(rows)[-1] == N and rows.count(N) == 1
    assert len(rows) == 4
    assert isinstance(search.best_learner_, stratumlite.Learner)


def test_nested_prefixes_each_shared():
    """Two transformers in a chain, a choice after each: every distinct
    (prefix, fold) is fitted once.

        X ─▶ CountingScaler ─▶ CountingMinMax? (optional) ─▶ Ridge(alpha ∈ 3)
    """
    data = skrub.var("data", DF)
    X = data[["a", "b", "c"]].skb.mark_as_X()
    y = data["y"].skb.mark_as_y()
    X = X.skb.apply(CountingScaler())
    X = X.skb.apply(skrub.optional(CountingMinMax(), name="minmax"))
    op = X.skb.apply(Ridge(alpha=skrub.choose_from([0.1, 1.0, 10.0], name="alpha")), y=y)
    clear_fits()
    search = stratumlite.make_grid_search(op, fitted=True, cv=3, refit=False, verbose=0)
    assert len(fits("CountingScaler")) == 3
    assert len(fits("CountingMinMax")) == 3  # not 3 alphas x 3 folds
    assert search.stats_["fits_executed"] < search.stats_["fits_naive"]
    assert len(search.results_) == 6


def test_randomized_search_shares_too():
    data = skrub.var("data", DF)
    X = data[["a", "b", "c"]].skb.mark_as_X()
    y = data["y"].skb.mark_as_y()
    op = X.skb.apply(CountingScaler()).skb.apply(
        Ridge(alpha=skrub.choose_float(0.01, 100.0, log=True, name="alpha")), y=y)
    clear_fits()
    search = stratumlite.make_randomized_search(op, fitted=True, cv=3, n_iter=5,
                                                random_state=0, refit=False, verbose=0)
    assert len(fits()) == 3
    assert search.stats_["fits_executed"] == 3 + 5 * 3


def _separately_built(model):
    """One pipeline of an agent's batch: its own variable, same data."""
    data = skrub.var("data", DF)
    X = data[["a", "b", "c"]].skb.mark_as_X()
    y = data["y"].skb.mark_as_y()
    return X.skb.apply(CountingScaler()).skb.apply(model, y=y)


def test_cross_validate_many_fits_shared_preprocessing_once_per_fold():
    models = [Ridge(alpha=0.1), Ridge(alpha=10.0), Lasso(alpha=0.1), KNeighborsRegressor(5),
              DummyRegressor()]
    ops = [_separately_built(m) for m in models]
    clear_fits()
    tables = stratumlite.cross_validate_many(ops, cv=3, verbose=0)
    assert len(fits()) == 3  # 5 pipelines, 3 folds: the scaler once per fold
    assert len(tables) == 5

    clear_fits()
    expected = [op.skb.cross_validate(cv=3) for op in ops]
    assert len(fits()) == 15  # skrub: per pipeline, per fold
    for table, ref in zip(tables, expected):
        np.testing.assert_allclose(table["test_score"], ref["test_score"], rtol=1e-9)


def test_cross_validate_many_evaluates_shared_x_and_y_once(monkeypatch):
    """Pipelines whose X and y are the same computation on the same data share
    one evaluation of them; other data gets its own (and the same scores)."""
    from stratumlite.frontend import search_adapter

    calls = []
    original = search_adapter.compute_cv_data

    def counting(data_op, environment, cv):
        calls.append(data_op)
        return original(data_op, environment, cv)

    monkeypatch.setattr(search_adapter, "compute_cv_data", counting)
    other = frame(seed=1)

    def build(df, model):
        data = skrub.var("data", df)
        X = data[["a", "b", "c"]].skb.mark_as_X()
        y = data["y"].skb.mark_as_y()
        return X.skb.apply(model, y=y)

    ops = [build(DF, Ridge(alpha=0.1)), build(DF, Ridge(alpha=10.0)),
           build(DF, Lasso(alpha=0.1)), build(other, Ridge(alpha=0.1))]
    tables = stratumlite.cross_validate_many(ops, cv=3, verbose=0)
    assert len(calls) == 2  # DF once for three pipelines, ``other`` once
    for table, op in zip(tables, ops):
        expected = op.skb.cross_validate(cv=3)
        np.testing.assert_allclose(table["test_score"], expected["test_score"], rtol=1e-12)


def test_cross_validate_many_does_not_share_different_data():
    """Same code on different data is different work (source fingerprints)."""
    other = frame(seed=1)

    def build(df):
        data = skrub.var("data", df)
        X = data[["a", "b", "c"]].skb.mark_as_X()
        y = data["y"].skb.mark_as_y()
        return X.skb.apply(CountingScaler()).skb.apply(Ridge(), y=y)

    ops = [build(DF), build(other)]
    clear_fits()
    tables = stratumlite.cross_validate_many(ops, cv=3, verbose=0)
    assert len(fits()) == 6
    assert not np.allclose(tables[0]["test_score"], tables[1]["test_score"])


def test_unrelated_parameters_are_not_shared():
    """A different transformer parameter is a different fit."""
    data = skrub.var("data", DF)
    X = data[["a", "b", "c"]].skb.mark_as_X()
    y = data["y"].skb.mark_as_y()
    scaler = skrub.choose_from({"mean": CountingScaler(),
                                "no mean": CountingScaler(with_mean=False)}, name="scaler")
    op = X.skb.apply(scaler).skb.apply(Ridge(alpha=skrub.choose_from([0.1, 10.0],
                                                                     name="alpha")), y=y)
    clear_fits()
    search = stratumlite.make_grid_search(op, fitted=True, cv=3, refit=False, verbose=0)
    assert len(fits()) == 2 * 3  # 2 distinct scalers x 3 folds (not x 2 alphas)
    assert search.stats_["fits_executed"] == 2 * 3 + 4 * 3


def test_cross_validate_many_takes_each_fold_from_the_data_once(monkeypatch):
    """Pipelines over the same X and y share their fold bindings: a fold's rows
    are taken from the data once however many pipelines read them, and the
    scores stay skrub's."""
    from stratumlite import search as search_module

    takes = []
    original = search_module._safe_indexing

    def counting(data, rows):
        takes.append(len(rows))
        return original(data, rows)

    monkeypatch.setattr(search_module, "_safe_indexing", counting)
    models = [Ridge(alpha=0.1), Ridge(alpha=10.0), Lasso(alpha=0.1)]
    stratumlite.cross_validate_many([_separately_built(models[0])], cv=3, verbose=0)
    alone = len(takes)
    assert alone > 0
    takes.clear()
    ops = [_separately_built(m) for m in models]
    tables = stratumlite.cross_validate_many(ops, cv=3, verbose=0)
    assert len(takes) == alone
    for table, op in zip(tables, ops):
        expected = op.skb.cross_validate(cv=3)
        np.testing.assert_allclose(table["test_score"], expected["test_score"], rtol=1e-12)
