"""The offline dataset loaders and the Kaggle-style example pipelines.

Fast checks only: loaders return the documented tables, and every example's
``make_data_op()`` builds a search space that skrub can evaluate on a few
hundred rows (every feature variant, with the cheap linear model). The full
searches run with ``-m slow`` (tiny sizes) or from the command line.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import skrub
from sklearn.model_selection import KFold, StratifiedKFold

from stratumlite import datasets

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("examples") is None:  # pytest does not put the root on sys.path
    sys.path.insert(0, str(ROOT))

EXAMPLES = ["house_prices", "flight_delays", "lending_club", "hotel_booking", "telco_churn"]
LINEAR_MODELS = {"ridge", "logistic"}


def _example(name):
    return importlib.import_module(f"examples.kaggle.{name}")


@functools.cache
def _small_data_op(name):
    return _example(name).make_data_op(n_rows=200)


# --------------------------------------------------------------------------- loaders

LOADERS = {
    # loader: (shape, columns that must be there, datetime columns)
    "load_ames": ((2930, 74), ["Sale_Price", "Neighborhood", "Gr_Liv_Area"], []),
    "load_flights": ((336776, 19), ["arr_delay", "tailnum", "origin", "dest"], ["time_hour"]),
    "load_loans": ((10000, 55), ["interest_rate", "emp_title"], ["issue_month"]),
    "load_hotel_rates": ((15402, 28), ["avg_price_per_room", "country"], ["arrival_date"]),
    "load_churn": ((7043, 20), ["churn", "tenure", "contract"], []),
    "load_diamonds": ((53940, 10), ["price", "carat", "cut"], []),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_loader_shape_and_columns(loader):
    shape, columns, datetimes = LOADERS[loader]
    df = getattr(datasets, loader)()
    assert isinstance(df, pd.DataFrame)
    assert df.shape == shape
    assert "rownames" not in df.columns
    assert set(columns) <= set(df.columns)
    for col in datetimes:
        assert pd.api.types.is_datetime64_any_dtype(df[col]), col
        assert df[col].notna().all(), col


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_loader_returns_copies(loader):
    load = getattr(datasets, loader)
    first = load()
    first["extra"] = 1
    first.iloc[0, 0] = first.iloc[1, 0]
    second = load()
    assert second is not first
    assert "extra" not in second.columns
    assert second.shape == LOADERS[loader][0]


def test_sampling_rows():
    small = datasets.load_churn(n_rows=100)
    assert small.shape == (100, 20)
    assert small.index.equals(pd.RangeIndex(100))
    assert not small.duplicated().any()  # no replacement below the table size
    pd.testing.assert_frame_equal(small, datasets.load_churn(n_rows=100))  # seeded
    assert not small.equals(datasets.load_churn(n_rows=100, random_state=1))

    big = datasets.load_churn(n_rows=10_000)  # table has 7,043 rows
    assert big.shape == (10_000, 20)
    assert big.duplicated().any()  # sampled with replacement


def test_flights_sample_and_side_tables():
    flights = datasets.load_flights(n_rows=1000)
    assert flights.shape == (1000, 19)
    assert str(flights["time_hour"].dt.tz) == "America/New_York"
    # time_hour is the scheduled local departure hour
    assert (flights["time_hour"].dt.hour == flights["hour"]).all()

    side = datasets.load_flights_side_tables()
    assert {k: v.shape for k, v in side.items()} == {
        "weather": (26115, 15),
        "planes": (3322, 9),
        "airlines": (16, 2),
        "airports": (1458, 8),
    }
    weather = side["weather"]
    assert weather["time_hour"].dtype == flights["time_hour"].dtype
    assert not weather.duplicated(["origin", "time_hour"]).any()
    assert side["planes"]["tailnum"].is_unique
    assert side["airports"]["faa"].is_unique
    joined = flights.merge(weather, on=["origin", "time_hour"], how="left")
    assert joined["temp"].notna().mean() > 0.95


# -------------------------------------------------------------------------- examples


def _grid(data_op):
    """The list of ``describe_params()`` dicts of the whole grid."""
    return [learner.describe_params() for learner in data_op.skb.iter_learners_grid()]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_search_space(name):
    module = _example(name)
    cv, scoring = module.SEARCH["cv"], module.SEARCH["scoring"]
    assert isinstance(cv, KFold | StratifiedKFold)
    assert (cv.n_splits, cv.shuffle, cv.random_state) == (3, True, 0)
    assert isinstance(scoring, str)

    data_op = _small_data_op(name)
    assert isinstance(data_op, skrub.DataOp)
    grid = _grid(data_op)
    assert len({p["features"] for p in grid}) >= 2
    models = {p["model"] for p in grid}
    assert len(models) >= 3
    assert models & LINEAR_MODELS
    assert {"lightgbm", "hgb"} <= models


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_evaluates_on_a_few_rows(name):
    data_op = _small_data_op(name)
    env = data_op.skb.get_data()
    n_rows = len(env[next(iter(env))])

    predictions = data_op.skb.preview()
    assert 0 < len(predictions) <= n_rows

    # every feature variant, end to end, with the (cheap) linear model
    seen = set()
    for learner in data_op.skb.iter_learners_grid():
        params = learner.describe_params()
        if params["model"] not in LINEAR_MODELS:
            continue
        variant = tuple(sorted((k, v) for k, v in params.items() if k not in {"alpha", "C"}))
        if variant in seen:
            continue
        seen.add(variant)
        learner.fit(env)
        assert len(learner.predict(env)) == len(predictions)
    assert len(seen) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_main_with_skrub_engine(name, capsys):
    search = _example(name).main(["--engine", "skrub", "--rows", "300"])
    assert len(search.results_) == len(_grid(_example(name).make_data_op(n_rows=300)))
    assert "best score" in capsys.readouterr().out
