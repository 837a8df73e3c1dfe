"""Flight delays: predict the arrival delay of NYC flights (nycflights13, 2013).

Regression of ``arr_delay`` (minutes) from what is known before departure:
the schedule, carrier, route and aircraft, plus (in the richer feature variant)
the weather at the origin airport during the scheduled departure hour, the
aircraft's characteristics and the destination airport's location, brought in
by three joins. Cancelled flights (missing ``arr_delay``) are dropped, and so
are the columns only known after departure (``dep_time``, ``dep_delay``,
``arr_time``, ``air_time``). Metric: R^2.

The flights table has 336,776 rows; ``--rows N`` (default 100,000) samples N
of them before the missing targets are dropped (with replacement if N is
larger than the table, which is only meant for benchmarks).

The search space (a skrub DataOps plan):

* ``features``: flight columns only, or flight columns joined with
  ``weather`` (on ``origin`` + ``time_hour``), ``planes`` (on ``tailnum``) and
  ``airports`` (``dest`` -> ``faa``);
* one shared ``skrub.TableVectorizer`` (``tailnum``, ``route`` and other
  high-cardinality strings through a ``skrub.MinHashEncoder``, which is
  much cheaper than a ``StringEncoder`` on short codes repeated over 100k rows;
  ``time_hour`` through a ``skrub.DatetimeEncoder``);
* ``model``: Ridge (imputation + scaling), LightGBM or HistGradientBoosting.

Run from the repository root::

    python -m examples.kaggle.flight_delays --engine skrub --rows 100000
    python -m examples.kaggle.flight_delays            # stratumlite engine
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
from stratumlite.datasets import load_flights, load_flights_side_tables  # noqa: E402

try:  # imported as examples.kaggle.<name> (tests, benchmarks, python -m)
    from ._run import run_example
except ImportError:  # run as a script: its folder is on sys.path
    from _run import run_example  # noqa: E402

DEFAULT_ROWS = 100_000
TARGET = "arr_delay"
# Only known once the plane has left: using them would leak the target.
AFTER_DEPARTURE = ["dep_time", "dep_delay", "arr_time", "air_time"]

SEARCH = dict(
    cv=KFold(n_splits=3, shuffle=True, random_state=0),
    scoring="r2",
)


def hhmm_to_minutes(hhmm: skrub.DataOp) -> skrub.DataOp:
    """Convert clock times written as HHMM integers to minutes after midnight."""
    return (hhmm // 100) * 60 + hhmm % 100


def flight_features(X: skrub.DataOp) -> skrub.DataOp:
    """Row-wise features of the flights table itself."""
    sched_dep = hhmm_to_minutes(X["sched_dep_time"])
    sched_arr = hhmm_to_minutes(X["sched_arr_time"])
    return X.assign(
        sched_dep_minutes=sched_dep,
        sched_arr_minutes=sched_arr,
        # scheduled duration in local clock times (so it includes the time-zone shift)
        sched_block_minutes=(sched_arr - sched_dep) % 1440,
        route=X["origin"] + "-" + X["dest"],
    ).drop(columns=["year", "sched_dep_time", "sched_arr_time"])


def join_side_tables(
    X: skrub.DataOp, weather: skrub.DataOp, planes: skrub.DataOp, airports: skrub.DataOp
) -> skrub.DataOp:
    """Left-join weather, plane and destination-airport information."""
    weather = weather.drop(columns=["year", "month", "day", "hour"])
    planes = planes.rename(columns={"year": "plane_year"})
    airports = airports[["faa", "lat", "lon", "alt", "tz"]].rename(
        columns={"faa": "dest", "lat": "dest_lat", "lon": "dest_lon", "alt": "dest_alt"}
    )
    joined = (
        X.merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")
        .merge(planes, on="tailnum", how="left", validate="many_to_one")
        .merge(airports, on="dest", how="left", validate="many_to_one")
    )
    return joined.assign(
        plane_age=2013 - joined["plane_year"],
        seats_per_engine=joined["seats"] / joined["engines"],
    ).drop(columns=["plane_year", "speed"])  # speed: 99% missing


def make_data_op(n_rows: int | None = DEFAULT_ROWS) -> skrub.DataOp:
    """The full search space as a skrub DataOp (predictions of ``arr_delay``).

    ``n_rows`` rows are sampled from the flights table (``None``: all 336,776)
    before cancelled flights are dropped.
    """
    side = load_flights_side_tables()
    flights = skrub.var("flights", load_flights(n_rows=n_rows, random_state=0))
    weather = skrub.var("weather", side["weather"])
    planes = skrub.var("planes", side["planes"])
    airports = skrub.var("airports", side["airports"])

    flights = flights[flights[TARGET].notna()].reset_index(drop=True)
    X = flights.drop(columns=[TARGET, *AFTER_DEPARTURE]).skb.mark_as_X()
    y = flights[TARGET].skb.mark_as_y()

    base = flight_features(X)
    features = skrub.as_data_op(
        skrub.choose_from(
            {
                "flights_only": base,
                "joined": join_side_tables(base, weather, planes, airports),
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
            "hgb": HistGradientBoostingRegressor(max_iter=100, random_state=0),
        },
        name="model",
    )
    return vectorized.skb.apply(model, y=y)


def main(argv: list[str] | None = None):
    return run_example(__doc__, make_data_op, SEARCH, argv, default_rows=DEFAULT_ROWS,
                       rows_help="flights sampled before dropping cancelled ones "
                       "(default %(default)s; with replacement above 336,776)")


if __name__ == "__main__":
    main()
