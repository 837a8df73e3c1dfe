"""House prices (Kaggle "House Prices: Advanced Regression Techniques") on Ames.

Predict the log of ``Sale_Price`` from the 73 other columns of the Ames housing
data (:func:`stratumlite.datasets.load_ames`, 2,930 sales). As on Kaggle, the
metric is the RMSE of the log price (reported by scikit-learn as a negative
number: closer to 0 is better).

The search space (a skrub DataOps plan):

* ``features``: the raw columns, or the raw columns plus hand-made features
  (total surface, bathrooms, ages, ordinal condition scores, sale date);
* every variant goes through one shared ``skrub.TableVectorizer``;
* ``model``: Ridge (with imputation and scaling, ``alpha`` tuned on 3 values),
  LightGBM, or scikit-learn's HistGradientBoosting.

Run from the repository root::

    python -m examples.kaggle.house_prices --engine skrub
    python -m examples.kaggle.house_prices            # stratumlite engine
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import skrub
from lightgbm import LGBMRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

if importlib.util.find_spec("stratumlite") is None:  # plain script, source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from stratumlite.datasets import load_ames  # noqa: E402

try:  # imported as examples.kaggle.<name> (tests, benchmarks, python -m)
    from ._run import run_example
except ImportError:  # run as a script: its folder is on sys.path
    from _run import run_example  # noqa: E402

TARGET = "Sale_Price"

SEARCH = dict(
    cv=KFold(n_splits=3, shuffle=True, random_state=0),
    scoring="neg_root_mean_squared_error",
)

# Ordinal scales hidden in the string categories.
OVERALL_SCALE = {
    "Very_Poor": 1,
    "Poor": 2,
    "Fair": 3,
    "Below_Average": 4,
    "Average": 5,
    "Above_Average": 6,
    "Good": 7,
    "Very_Good": 8,
    "Excellent": 9,
}
QUALITY_SCALE = {"Poor": 1, "Fair": 2, "Typical": 3, "Good": 4, "Excellent": 5}


@skrub.deferred
def sale_date(X: pd.DataFrame) -> pd.Series:
    """Month of the sale as a datetime (day 1), for the DatetimeEncoder."""
    return pd.to_datetime(pd.DataFrame({"year": X["Year_Sold"], "month": X["Mo_Sold"], "day": 1}))


def engineer(X: skrub.DataOp) -> skrub.DataOp:
    """Add the classic hand-made Ames features (all computed row by row)."""
    living = X["Gr_Liv_Area"]
    return X.assign(
        total_sf=X["Total_Bsmt_SF"] + X["First_Flr_SF"] + X["Second_Flr_SF"],
        total_baths=X["Full_Bath"]
        + 0.5 * X["Half_Bath"]
        + X["Bsmt_Full_Bath"]
        + 0.5 * X["Bsmt_Half_Bath"],
        porch_sf=X["Open_Porch_SF"]
        + X["Enclosed_Porch"]
        + X["Three_season_porch"]
        + X["Screen_Porch"]
        + X["Wood_Deck_SF"],
        house_age=X["Year_Sold"] - X["Year_Built"],
        years_since_remod=X["Year_Sold"] - X["Year_Remod_Add"],
        lot_per_living_area=X["Lot_Area"] / living,
        rooms_per_living_area=X["TotRms_AbvGrd"] / living,
        overall_cond_score=X["Overall_Cond"].map(OVERALL_SCALE),
        heating_qc_score=X["Heating_QC"].map(QUALITY_SCALE).fillna(0),
        exter_cond_score=X["Exter_Cond"].map(QUALITY_SCALE).fillna(0),
        garage_cond_score=X["Garage_Cond"].map(QUALITY_SCALE).fillna(0),
        sale_date=sale_date(X),
    )


def make_data_op(n_rows: int | None = None) -> skrub.DataOp:
    """The full search space as a skrub DataOp (predictions of log price).

    ``n_rows`` resamples the table (with replacement above 2,930 rows).
    """
    data = skrub.var("ames", load_ames(n_rows=n_rows))
    X = data.drop(columns=TARGET).skb.mark_as_X()
    y = data[TARGET].skb.apply_func(np.log).skb.mark_as_y()

    features = skrub.as_data_op(
        skrub.choose_from({"raw": X, "engineered": engineer(X)}, name="features")
    )
    vectorizer = skrub.TableVectorizer(high_cardinality=skrub.StringEncoder(random_state=0))
    vectorized = features.skb.apply(vectorizer)

    model = skrub.choose_from(
        {
            "ridge": make_pipeline(
                SimpleImputer(),
                StandardScaler(),
                Ridge(alpha=skrub.choose_float(1.0, 1000.0, log=True, n_steps=3, name="alpha")),
            ),
            "lightgbm": LGBMRegressor(
                n_estimators=200, learning_rate=0.05, verbose=-1, random_state=0
            ),
            "hgb": HistGradientBoostingRegressor(max_iter=100, random_state=0),
        },
        name="model",
    )
    return vectorized.skb.apply(model, y=y)


def main(argv: list[str] | None = None):
    return run_example(__doc__, make_data_op, SEARCH, argv, default_rows=None,
                       rows_help="resample the table to N rows (with replacement above 2,930)")


if __name__ == "__main__":
    main()
