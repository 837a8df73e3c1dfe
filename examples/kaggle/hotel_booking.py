"""Hotel booking demand: predict the average daily rate of a resort-hotel booking.

Regression of ``avg_price_per_room`` (the "ADR", euros) on 15,402 bookings of a
Portuguese resort hotel, July 2016 to August 2017 (modeldata ``hotel_rates``,
:func:`stratumlite.datasets.load_hotel_rates`). Metric: R^2.

The search space (a skrub DataOps plan):

* ``features``: ``raw`` (every column through the ``skrub.TableVectorizer``;
  ``country``, ``agent`` and ``company`` are high-cardinality strings and get a
  ``StringEncoder``) or ``engineered`` (length of stay, party size, room
  upgrade flag, departure date, and a supervised ``TargetEncoder`` for
  ``country``/``agent``/``company`` -- fitted on the training folds only);
* one shared ``skrub.TableVectorizer`` whose ``DatetimeEncoder`` adds weekday,
  day of year and circular (sine/cosine) encodings of the arrival date, since
  prices are strongly seasonal;
* ``model``: Ridge (imputation + scaling), LightGBM or HistGradientBoosting.

Run from the repository root::

    python -m examples.kaggle.hotel_booking --engine skrub
    python -m examples.kaggle.hotel_booking            # stratumlite engine
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import skrub
from lightgbm import LGBMRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, TargetEncoder

if importlib.util.find_spec("stratumlite") is None:  # plain script, source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from stratumlite.datasets import load_hotel_rates  # noqa: E402

try:  # imported as examples.kaggle.<name> (tests, benchmarks, python -m)
    from ._run import run_example
except ImportError:  # run as a script: its folder is on sys.path
    from _run import run_example  # noqa: E402

TARGET = "avg_price_per_room"
HIGH_CARDINALITY = ["country", "agent", "company"]

SEARCH = dict(
    cv=KFold(n_splits=3, shuffle=True, random_state=0),
    scoring="r2",
)


def engineer(X: skrub.DataOp, y: skrub.DataOp) -> skrub.DataOp:
    """Stay/party features, then target-encode the high-cardinality columns."""
    nights = X["stays_in_weekend_nights"] + X["stays_in_week_nights"]
    guests = X["adults"] + X["children"] + X["babies"]
    features = X.assign(
        total_nights=nights,
        weekend_share=X["stays_in_weekend_nights"] / nights.where(nights > 0),
        total_guests=guests,
        has_kids=(X["children"] + X["babies"] > 0).astype(int),
        room_upgraded=(X["reserved_room_type"] != X["assigned_room_type"]).astype(int),
        departure_date=X["arrival_date"] + skrub.deferred(pd.to_timedelta)(nights, unit="D"),
        lead_weeks=X["lead_time"] // 7,
    )
    encoder = TargetEncoder(
        target_type="continuous", cv=KFold(n_splits=5, shuffle=True, random_state=0)
    )
    return features.skb.apply(encoder, y=y, cols=HIGH_CARDINALITY)


def make_data_op(n_rows: int | None = None) -> skrub.DataOp:
    """The full search space as a skrub DataOp (predictions of the ADR).

    ``n_rows`` resamples the table (with replacement above 15,402 rows).
    """
    data = skrub.var("hotel", load_hotel_rates(n_rows=n_rows))
    X = data.drop(columns=TARGET).skb.mark_as_X()
    y = data[TARGET].skb.mark_as_y()

    features = skrub.as_data_op(
        skrub.choose_from({"raw": X, "engineered": engineer(X, y)}, name="features")
    )
    vectorizer = skrub.TableVectorizer(
        high_cardinality=skrub.StringEncoder(random_state=0),
        datetime=skrub.DatetimeEncoder(
            add_weekday=True, add_day_of_year=True, periodic_encoding="circular"
        ),
    )
    vectorized = features.skb.apply(vectorizer)

    model = skrub.choose_from(
        {
            "ridge": make_pipeline(SimpleImputer(), StandardScaler(), Ridge(alpha=10.0)),
            "lightgbm": LGBMRegressor(
                n_estimators=200, learning_rate=0.1, verbose=-1, random_state=0
            ),
            "hgb": HistGradientBoostingRegressor(max_iter=100, random_state=0),
        },
        name="model",
    )
    return vectorized.skb.apply(model, y=y)


def main(argv: list[str] | None = None):
    return run_example(__doc__, make_data_op, SEARCH, argv, default_rows=None,
                       rows_help="resample the table to N rows (with replacement above 15,402)")


if __name__ == "__main__":
    main()
