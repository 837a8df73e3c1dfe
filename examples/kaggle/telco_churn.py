"""Telco customer churn: which customers of a telecom company will leave?

Binary classification of ``churn`` (``"Yes"`` for 26.5% of the 7,043
customers) from their contract, services and charges (IBM Watson telco data,
modeldata ``wa_churn``, :func:`stratumlite.datasets.load_churn`). Metric:
ROC AUC, with stratified folds.

The search space (a skrub DataOps plan):

* ``features``: ``raw`` (every column through the ``skrub.TableVectorizer``) or
  ``engineered`` (number of subscribed services, average and "expected"
  charges, contract/payment flags, tenure buckets);
* one shared ``skrub.TableVectorizer`` (all strings are low-cardinality, so
  they are one-hot encoded);
* ``model``: logistic regression (imputation + scaling, ``C`` tuned on 3
  values), LightGBM or HistGradientBoosting.

Run from the repository root::

    python -m examples.kaggle.telco_churn --engine skrub
    python -m examples.kaggle.telco_churn            # stratumlite engine
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import skrub
from lightgbm import LGBMClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

if importlib.util.find_spec("stratumlite") is None:  # plain script, source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from stratumlite.datasets import load_churn  # noqa: E402

try:  # imported as examples.kaggle.<name> (tests, benchmarks, python -m)
    from ._run import run_example
except ImportError:  # run as a script: its folder is on sys.path
    from _run import run_example  # noqa: E402

TARGET = "churn"
SERVICES = [
    "phone_service",
    "multiple_lines",
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
]

SEARCH = dict(
    cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0),
    scoring="roc_auc",
)


@skrub.deferred
def count_services(X: pd.DataFrame) -> pd.Series:
    """Number of subscribed services (``phone_service`` is 0/1, others Yes/No)."""
    subscribed = X[SERVICES].isin(["Yes", 1])
    return subscribed.sum(axis=1) + (X["internet_service"] != "No").astype(int)


def engineer(X: skrub.DataOp) -> skrub.DataOp:
    """Usual churn features, computed row by row."""
    tenure = X["tenure"]
    return X.assign(
        n_services=count_services(X),
        avg_monthly_charges=X["total_charges"] / tenure.where(tenure > 0),
        expected_total_charges=X["monthly_charges"] * tenure,
        month_to_month=(X["contract"] == "Month-to-month").astype(int),
        electronic_check=(X["payment_method"] == "Electronic check").astype(int),
        fiber_optic=(X["internet_service"] == "Fiber optic").astype(int),
        tenure_years=tenure // 12,
        new_customer=(tenure <= 6).astype(int),
    )


def make_data_op(n_rows: int | None = None) -> skrub.DataOp:
    """The full search space as a skrub DataOp (churn classifier).

    ``n_rows`` resamples the table (with replacement above 7,043 rows). The
    target is encoded as 1 for ``"Yes"`` and 0 for ``"No"``.
    """
    data = skrub.var("customers", load_churn(n_rows=n_rows))
    X = data.drop(columns=TARGET).skb.mark_as_X()
    y = (data[TARGET] == "Yes").astype(int).skb.mark_as_y()

    features = skrub.as_data_op(
        skrub.choose_from({"raw": X, "engineered": engineer(X)}, name="features")
    )
    vectorizer = skrub.TableVectorizer(high_cardinality=skrub.StringEncoder(random_state=0))
    vectorized = features.skb.apply(vectorizer)

    C = skrub.choose_float(0.01, 10.0, log=True, n_steps=3, name="C")
    model = skrub.choose_from(
        {
            "logistic": make_pipeline(
                SimpleImputer(), StandardScaler(), LogisticRegression(C=C, max_iter=1000)
            ),
            "lightgbm": LGBMClassifier(
                n_estimators=100,
                learning_rate=0.05,
                num_leaves=15,
                verbose=-1,
                random_state=0,
            ),
            "hgb": HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, random_state=0),
        },
        name="model",
    )
    return vectorized.skb.apply(model, y=y)


def main(argv: list[str] | None = None):
    return run_example(__doc__, make_data_op, SEARCH, argv, default_rows=None,
                       rows_help="resample the table to N rows (with replacement above 7,043)")


if __name__ == "__main__":
    main()
