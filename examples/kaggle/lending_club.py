"""Lending Club: predict the interest rate of a personal loan from the application.

Regression of ``interest_rate`` (percent) on 10,000 Lending Club loans issued in
Q1 2018 (openintro ``loans_full_schema``, :func:`stratumlite.datasets.load_loans`).
Metric: R^2.

Only what is known when the loan is requested is used. Lending Club derives
the rate from ``grade``/``sub_grade`` (``sub_grade`` alone gives R^2 = 0.998)
and ``installment`` is a function of rate, amount and term, so those columns
are dropped together with the outcomes observed after issuance (``balance``,
``paid_*``, ``loan_status``).

The search space (a skrub DataOps plan):

* ``features``: ``raw`` (every column through a default ``skrub.TableVectorizer``,
  so ``emp_title`` gets its default ``StringEncoder``) or ``engineered``
  (ratios such as loan/income and credit utilisation, length of credit
  history, and ``emp_title`` normalised then encoded by the nested
  ``emp_title_encoder`` choice: ``skrub.StringEncoder`` (tf-idf + SVD) or
  ``skrub.MinHashEncoder``). No pretrained text model (no network).
  ``issue_month`` always goes through a ``skrub.DatetimeEncoder``;
* ``model``: Ridge (imputation + ``skrub.SquashingScaler``, which tames the
  extreme ratios produced by the handful of applicants who report an annual
  income of a few dollars), LightGBM or HistGradientBoosting.

Run from the repository root::

    python -m examples.kaggle.lending_club --engine skrub
    python -m examples.kaggle.lending_club            # stratumlite engine
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

if importlib.util.find_spec("stratumlite") is None:  # plain script, source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from stratumlite.datasets import load_loans  # noqa: E402

try:  # imported as examples.kaggle.<name> (tests, benchmarks, python -m)
    from ._run import run_example
except ImportError:  # run as a script: its folder is on sys.path
    from _run import run_example  # noqa: E402

TARGET = "interest_rate"
# The rate itself in disguise, or only known after the loan was issued.
LEAKY = [
    "grade",
    "sub_grade",
    "installment",
    "balance",
    "paid_total",
    "paid_principal",
    "paid_interest",
    "paid_late_fees",
    "loan_status",
]

SEARCH = dict(
    cv=KFold(n_splits=3, shuffle=True, random_state=0),
    scoring="r2",
)


def safe_ratio(num: skrub.DataOp, den: skrub.DataOp) -> skrub.DataOp:
    """``num / den`` with a missing value instead of inf where ``den <= 0``."""
    return num / den.where(den > 0)


def engineer(X: skrub.DataOp) -> skrub.DataOp:
    """Credit-analyst features, then encode ``emp_title`` (a nested choice)."""
    income = X["annual_income"]
    features = X.assign(
        emp_title=X["emp_title"].str.lower().str.strip(),
        loan_to_income=safe_ratio(X["loan_amount"], income),
        joint_to_single_income=safe_ratio(X["annual_income_joint"], income),
        credit_utilization=safe_ratio(X["total_credit_utilized"], X["total_credit_limit"]),
        open_to_total_lines=safe_ratio(X["open_credit_lines"], X["total_credit_lines"]),
        credit_history_years=X["issue_month"].dt.year - X["earliest_credit_line"],
        has_delinquency=X["months_since_last_delinq"].notna().astype(int),
    )
    emp_title_encoder = skrub.choose_from(
        {
            "lse": skrub.StringEncoder(n_components=20, random_state=0),
            "minhash": skrub.MinHashEncoder(n_components=20),
        },
        name="emp_title_encoder",
    )
    return features.skb.apply(emp_title_encoder, cols="emp_title")


def make_data_op(n_rows: int | None = None) -> skrub.DataOp:
    """The full search space as a skrub DataOp (predictions of the rate).

    ``n_rows`` resamples the table (with replacement above 10,000 rows).
    """
    data = skrub.var("loans", load_loans(n_rows=n_rows))
    X = data.drop(columns=[TARGET, *LEAKY]).skb.mark_as_X()
    y = data[TARGET].skb.mark_as_y()

    features = skrub.as_data_op(
        skrub.choose_from({"raw": X, "engineered": engineer(X)}, name="features")
    )
    vectorized = features.skb.apply(
        skrub.TableVectorizer(
            cardinality_threshold=60,  # one-hot encode the 50 states
            high_cardinality=skrub.StringEncoder(random_state=0),
            datetime=skrub.DatetimeEncoder(add_total_seconds=True),
        )
    )

    model = skrub.choose_from(
        {
            "ridge": make_pipeline(
                SimpleImputer(add_indicator=True), skrub.SquashingScaler(), Ridge(alpha=10.0)
            ),
            "lightgbm": LGBMRegressor(
                n_estimators=100, learning_rate=0.1, verbose=-1, random_state=0
            ),
            "hgb": HistGradientBoostingRegressor(max_iter=100, random_state=0),
        },
        name="model",
    )
    return vectorized.skb.apply(model, y=y)


def main(argv: list[str] | None = None):
    return run_example(__doc__, make_data_op, SEARCH, argv, default_rows=None,
                       rows_help="resample the table to N rows (with replacement above 10,000)")


if __name__ == "__main__":
    main()
