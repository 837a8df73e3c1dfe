"""Pipelines the benchmarks run that are not in ``examples/kaggle/``.

Each "example" the worker can run is a module-like object with
``make_data_op(n_rows=None)`` and ``SEARCH`` (the keyword arguments of the
search). The Kaggle examples are looked up as ``examples.kaggle.<name>``; the
ones below are looked up by name in :data:`EXAMPLES`.

* ``flights_runtime``: the issue-4 runtime benchmark, the NYC flights search
  of 2 feature variants x 4 models (x 3 folds), reusing the feature code of
  ``examples/kaggle/flight_delays.py``.
* ``tiny``: a seconds-long search on synthetic data (the smoke test).

:func:`agent_pipelines` builds the 20 separately written pipelines of the
agent-batch benchmark.
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import skrub
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# ----------------------------------------------------------------------------- flights


def _flights_runtime_data_op(n_rows: int | None = 100_000) -> skrub.DataOp:
    """2 feature variants x 4 models over the flights table (issue 4)."""
    from lightgbm import LGBMRegressor

    from examples.kaggle import flight_delays as fd
    from stratumlite.datasets import load_flights, load_flights_side_tables

    side = load_flights_side_tables()
    flights = skrub.var("flights", load_flights(n_rows=n_rows, random_state=0))
    weather = skrub.var("weather", side["weather"])
    planes = skrub.var("planes", side["planes"])
    airports = skrub.var("airports", side["airports"])

    flights = flights[flights[fd.TARGET].notna()].reset_index(drop=True)
    X = flights.drop(columns=[fd.TARGET, *fd.AFTER_DEPARTURE]).skb.mark_as_X()
    y = flights[fd.TARGET].skb.mark_as_y()

    base = fd.flight_features(X)
    features = skrub.as_data_op(
        skrub.choose_from(
            {
                "flights_only": base,
                "joined": fd.join_side_tables(base, weather, planes, airports),
            },
            name="features",
        )
    )
    vectorizer = skrub.TableVectorizer(
        high_cardinality=skrub.MinHashEncoder(n_components=10),
        datetime=skrub.DatetimeEncoder(add_weekday=True, add_day_of_year=True),
    )
    vectorized = features.skb.apply(vectorizer)
    model = skrub.choose_from(
        {
            "ridge": make_pipeline(SimpleImputer(), StandardScaler(), Ridge(alpha=10.0)),
            "lightgbm": LGBMRegressor(
                n_estimators=100, learning_rate=0.1, verbose=-1, random_state=0
            ),
            "lightgbm_63_leaves": LGBMRegressor(
                n_estimators=100, num_leaves=63, learning_rate=0.1, verbose=-1,
                random_state=0,
            ),
            "hgb": HistGradientBoostingRegressor(max_iter=100, random_state=0),
        },
        name="model",
    )
    return vectorized.skb.apply(model, y=y)


flights_runtime = types.SimpleNamespace(
    __name__="benchmarks.pipelines.flights_runtime",
    make_data_op=_flights_runtime_data_op,
    SEARCH=dict(cv=KFold(n_splits=3, shuffle=True, random_state=0), scoring="r2"),
    DEFAULT_ROWS=100_000,
)

# -------------------------------------------------------------------------------- tiny


def _tiny_frame(n_rows: int | None) -> pd.DataFrame:
    n = n_rows or 120
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "a": rng.normal(size=n),
        "b": rng.normal(size=n),
        "c": rng.choice(["x", "y", "z"], size=n),
    })
    df["target"] = 2 * df["a"] - df["b"] + (df["c"] == "x") + rng.normal(0.1, size=n)
    return df


def _tiny_data_op(n_rows: int | None = None) -> skrub.DataOp:
    data = skrub.var("data", _tiny_frame(n_rows))
    X = data.drop(columns="target").skb.mark_as_X()
    y = data["target"].skb.mark_as_y()
    features = X.skb.apply(_tv())
    model = skrub.choose_from(
        {
            "ridge": Ridge(alpha=skrub.choose_from([0.1, 10.0], name="alpha")),
            "lasso": Lasso(alpha=0.01),
        },
        name="model",
    )
    return features.skb.apply(model, y=y)


tiny = types.SimpleNamespace(
    __name__="benchmarks.pipelines.tiny",
    make_data_op=_tiny_data_op,
    SEARCH=dict(cv=KFold(n_splits=3, shuffle=True, random_state=0), scoring="r2"),
    DEFAULT_ROWS=None,
)

EXAMPLES = {"flights_runtime": flights_runtime, "tiny": tiny}

KAGGLE_EXAMPLES = ("house_prices", "flight_delays", "hotel_booking", "lending_club",
                   "telco_churn")


def load_example(name: str):
    """The example called ``name``: ours, or ``examples.kaggle.<name>``."""
    if name in EXAMPLES:
        return EXAMPLES[name]
    import importlib

    return importlib.import_module(f"examples.kaggle.{name}")


# ------------------------------------------------------------------------------ agents
#
# Twenty pipelines as an ML agent emits them over the Lending Club loans
# (target: interest_rate, R^2): each one is written on its own and builds its
# own ``skrub.var``; they repeat the same cleaning (same operations -> same
# lineage keys, shared by stratumlite) through different code paths (inline,
# helper functions, a loop), and a few are written differently enough that
# nothing is shared (a column subset instead of a drop list).

AGENT_TARGET = "interest_rate"
AGENT_LEAKY = [
    "grade", "sub_grade", "installment", "balance", "paid_total", "paid_principal",
    "paid_interest", "paid_late_fees", "loan_status",
]
AGENT_CV = KFold(n_splits=3, shuffle=True, random_state=0)
AGENT_SCORING = "r2"


def _loans(n_rows):
    from stratumlite.datasets import load_loans

    return load_loans(n_rows=n_rows)


def _xy(df):
    data = skrub.var("loans", df)
    X = data.drop(columns=[AGENT_TARGET, *AGENT_LEAKY]).skb.mark_as_X()
    y = data[AGENT_TARGET].skb.mark_as_y()
    return X, y


def _tv(**kwargs):
    """The vectorizer most agents use. skrub's default high-cardinality encoder
    (``StringEncoder``: a randomized SVD) is unseeded, which would make even two
    skrub runs differ; it is seeded here so that the scores can be compared."""
    kwargs.setdefault("high_cardinality", skrub.StringEncoder(random_state=0))
    return skrub.TableVectorizer(**kwargs)


def _linear(alpha):
    return make_pipeline(SimpleImputer(), StandardScaler(), Ridge(alpha=alpha))


def _ratios(X):
    income = X["annual_income"]
    return X.assign(
        loan_to_income=X["loan_amount"] / income.where(income > 0),
        credit_utilization=X["total_credit_utilized"]
        / X["total_credit_limit"].where(X["total_credit_limit"] > 0),
    )


def agent_01(df):  # baseline: TableVectorizer + ridge
    X, y = _xy(df)
    return X.skb.apply(_tv()).skb.apply(_linear(1.0), y=y)


def agent_02(df):  # same, stronger regularisation, written inline
    data = skrub.var("loans", df)
    X = data.drop(columns=[AGENT_TARGET, *AGENT_LEAKY]).skb.mark_as_X()
    y = data[AGENT_TARGET].skb.mark_as_y()
    vec = X.skb.apply(
        skrub.TableVectorizer(high_cardinality=skrub.StringEncoder(random_state=0)))
    return vec.skb.apply(
        make_pipeline(SimpleImputer(), StandardScaler(), Ridge(alpha=10.0)), y=y)


def agent_03(df):
    X, y = _xy(df)
    return X.skb.apply(_tv()).skb.apply(_linear(100.0), y=y)


def agent_04(df):  # lasso
    X, y = _xy(df)
    vec = X.skb.apply(_tv())
    model = make_pipeline(SimpleImputer(), StandardScaler(), Lasso(alpha=0.01))
    return vec.skb.apply(model, y=y)


def agent_05(df):  # elastic net
    X, y = _xy(df)
    vec = X.skb.apply(_tv())
    model = make_pipeline(SimpleImputer(), StandardScaler(),
                          ElasticNet(alpha=0.01, l1_ratio=0.5))
    return vec.skb.apply(model, y=y)


def agent_06(df):  # gradient boosting on the same features
    X, y = _xy(df)
    vec = X.skb.apply(_tv())
    return vec.skb.apply(HistGradientBoostingRegressor(max_iter=50, random_state=0), y=y)


def agent_07(df):  # ratio features + ridge
    X, y = _xy(df)
    return _ratios(X).skb.apply(_tv()).skb.apply(_linear(1.0), y=y)


def agent_08(df):  # ratio features + ridge, other alpha
    X, y = _xy(df)
    return _ratios(X).skb.apply(_tv()).skb.apply(_linear(10.0), y=y)


def agent_09(df):  # ratio features written inline (same operations as _ratios)
    data = skrub.var("loans", df)
    X = data.drop(columns=[AGENT_TARGET, *AGENT_LEAKY]).skb.mark_as_X()
    y = data[AGENT_TARGET].skb.mark_as_y()
    income = X["annual_income"]
    X = X.assign(
        loan_to_income=X["loan_amount"] / income.where(income > 0),
        credit_utilization=X["total_credit_utilized"]
        / X["total_credit_limit"].where(X["total_credit_limit"] > 0),
    )
    vec = X.skb.apply(skrub.TableVectorizer(
        high_cardinality=skrub.StringEncoder(n_components=30, random_state=0)))
    return vec.skb.apply(make_pipeline(SimpleImputer(), StandardScaler(),
                                       Lasso(alpha=0.01)), y=y)


def agent_10(df):  # ratio features + boosting
    X, y = _xy(df)
    vec = _ratios(X).skb.apply(_tv())
    return vec.skb.apply(HistGradientBoostingRegressor(max_iter=50, random_state=0), y=y)


def agent_11(df):  # MinHash for the free-text employment title
    X, y = _xy(df)
    vec = X.skb.apply(_tv(high_cardinality=skrub.MinHashEncoder()))
    return vec.skb.apply(_linear(1.0), y=y)


def agent_12(df):
    X, y = _xy(df)
    vec = X.skb.apply(_tv(high_cardinality=skrub.MinHashEncoder()))
    return vec.skb.apply(_linear(10.0), y=y)


def agent_13(df):
    X, y = _xy(df)
    vec = X.skb.apply(_tv(high_cardinality=skrub.MinHashEncoder()))
    return vec.skb.apply(make_pipeline(SimpleImputer(), StandardScaler(),
                                       ElasticNet(alpha=0.01, l1_ratio=0.2)), y=y)


def agent_14(df):  # lower-cased titles, then the default vectorizer
    X, y = _xy(df)
    X = X.assign(emp_title=X["emp_title"].str.lower())
    return X.skb.apply(_tv()).skb.apply(_linear(1.0), y=y)


def agent_15(df):
    X, y = _xy(df)
    X = X.assign(emp_title=X["emp_title"].str.lower())
    return X.skb.apply(_tv()).skb.apply(_linear(10.0), y=y)


def agent_16(df):  # drop the text column altogether
    X, y = _xy(df)
    X = X.drop(columns=["emp_title"])
    return X.skb.apply(_tv()).skb.apply(_linear(1.0), y=y)


def agent_17(df):
    X, y = _xy(df)
    X = X.drop(columns=["emp_title"])
    return X.skb.apply(_tv()).skb.apply(
        HistGradientBoostingRegressor(max_iter=50, random_state=0), y=y)


def agent_18(df):  # a column subset instead of a drop list: nothing shared upstream
    data = skrub.var("loans", df)
    keep = [c for c in df.columns if c not in (AGENT_TARGET, *AGENT_LEAKY)]
    X = data[keep].skb.mark_as_X()
    y = data[AGENT_TARGET].skb.mark_as_y()
    return X.skb.apply(_tv()).skb.apply(_linear(3.0), y=y)


def _agent_loop(alpha):
    def agent(df):  # generated in a loop: ratio features + ridge over an alpha grid
        X, y = _xy(df)
        vec = _ratios(X).skb.apply(_tv())
        return vec.skb.apply(_linear(alpha), y=y)

    return agent


agent_19 = _agent_loop(0.1)
agent_20 = _agent_loop(1000.0)

AGENTS = [agent_01, agent_02, agent_03, agent_04, agent_05, agent_06, agent_07, agent_08,
          agent_09, agent_10, agent_11, agent_12, agent_13, agent_14, agent_15, agent_16,
          agent_17, agent_18, agent_19, agent_20]


def agent_pipelines(n_rows: int | None = None) -> list[skrub.DataOp]:
    """The 20 agent pipelines over the loans table (``n_rows`` resamples it)."""
    df = _loans(n_rows)
    return [make(df) for make in AGENTS]
