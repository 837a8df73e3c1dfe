"""Differential tests of searches: stratumlite vs skrub (the oracle).

Every case builds one DataOp and runs the same search (same data, same cv, same
seeds) with stratumlite and with skrub, then checks **labels -> scores**:

- ``results_`` of both, joined on the choice columns: each configuration's
  ``mean_test_*`` must be equal (``rtol=1e-9``);
- ``cv_results_``: same keys, same ``params`` in the same order, same per-split
  scores and ranks;
- ``best_params_``, ``best_score_``, and ``predict`` / ``score`` of the refitted
  search on new rows; ``best_learner_`` is a :class:`stratumlite.Learner`.

stratumlite always runs first on a graph, so that a modification of the user's
graph by stratumlite could not be hidden by skrub's evaluation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import skrub
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyRegressor
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import Lasso, LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, make_scorer, mean_absolute_error
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from skrub._data_ops import _skrub_namespace

import stratumlite

RTOL = 1e-9
N_TRAIN, N_TEST = 150, 40
FEATURES = ["x1", "x2", "x3", "x4"]

# --------------------------------------------------------------------------
# data


def _regression(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    target = 2.0 * X[:, 0] - 1.5 * X[:, 1] + 0.5 * X[:, 2] + rng.normal(scale=0.5, size=n)
    df = pd.DataFrame(X.round(4), columns=FEATURES)
    df["target"] = target.round(4)
    df["group"] = np.arange(n) % 7
    return df


def _classification(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    logits = 1.5 * X[:, 0] - X[:, 1] + 0.3 * X[:, 2]
    # unbalanced classes, so that stratification changes the folds
    label = np.where(logits + rng.normal(scale=0.7, size=n) > 1.0, "yes", "no")
    df = pd.DataFrame(X.round(4), columns=FEATURES)
    df["label"] = label
    return df


REG = _regression(N_TRAIN, 0)
REG_NEW = _regression(N_TEST, 1)
CLF = _classification(N_TRAIN, 2)
CLF_NEW = _classification(N_TEST, 3)


def as_backend(df: pd.DataFrame, backend: str):
    return pl.from_pandas(df) if backend == "polars" else df


def reg_xy(backend: str = "pandas", **mark_kwargs):
    """(data var, X, y) over the regression frame (``data`` has a default value)."""
    data = skrub.var("data", as_backend(REG, backend))
    X = data[FEATURES].skb.mark_as_X(**mark_kwargs)
    y = data["target"].skb.mark_as_y()
    return data, X, y


def clf_xy(backend: str = "pandas"):
    data = skrub.var("data", as_backend(CLF, backend))
    X = data[FEATURES].skb.mark_as_X()
    y = data["label"].skb.mark_as_y()
    return data, X, y


def new_env(frame: pd.DataFrame, backend: str = "pandas") -> dict:
    return {"data": as_backend(frame, backend)}


# --------------------------------------------------------------------------
# module-level functions and estimators (stable for canonicalization)


def scale_cols(X, a):
    """An order-sensitive function of ``a``: scales the first column by ``a``."""
    X = X.copy() if hasattr(X, "copy") else X
    first = X.columns[0]
    if isinstance(X, pl.DataFrame):
        return X.with_columns(pl.col(first) * a)
    X[first] = X[first] * a
    return X


def shift(X, offset=0.0):
    return X + offset


def combine(u, v):
    """Not symmetric: combine(u, v) != combine(v, u)."""
    return np.asarray(u) * 2.0 - np.asarray(v)


def first_column(X):
    return np.asarray(X)[:, :1]


def to_frame(s, name="feature"):
    if isinstance(s, pl.Series):
        return s.alias(name).to_frame()
    return s.rename(name).to_frame()


class Fragile(RegressorMixin, BaseEstimator):
    """A ridge regression whose ``fit`` raises for a negative ``alpha``."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y):
        if self.alpha < 0:
            raise ValueError(f"Fragile: alpha must be >= 0, got {self.alpha}")
        self.model_ = Ridge(alpha=self.alpha).fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(X)


# --------------------------------------------------------------------------
# the comparison


def run_both(op, kind: str = "grid", **kwargs):
    """Fit the same search with stratumlite (first) and skrub; returns (sl, sk)."""
    if kind == "grid":
        sl = stratumlite.make_grid_search(op, fitted=True, verbose=0, **kwargs)
        sk = op.skb.make_grid_search(fitted=True, **kwargs)
    else:
        sl = stratumlite.make_randomized_search(op, fitted=True, verbose=0, **kwargs)
        sk = op.skb.make_randomized_search(fitted=True, **kwargs)
    assert isinstance(sl, stratumlite.ParamSearch)
    assert not isinstance(sk, stratumlite.ParamSearch)
    return sl, sk


def _choice_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns
            if not c.startswith(("mean_", "std_")) and c != "error"]


def _score_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("mean_test_")]


def _label_to_scores(table: pd.DataFrame) -> dict[tuple, list[tuple]]:
    """{choice labels: sorted list of score tuples} (labels may repeat)."""
    out: dict[tuple, list[tuple]] = {}
    for _, row in table.iterrows():
        labels = tuple(str(row[c]) for c in _choice_columns(table))
        scores = tuple(float(row[c]) for c in _score_columns(table))
        out.setdefault(labels, []).append(scores)
    return {k: sorted(v, key=lambda t: [(np.isnan(s), s) for s in t]) for k, v in out.items()}


def assert_same_results_table(sl, sk):
    """``results_`` joined on the choice columns: equal ``mean_test_*``."""
    a, b = sl.results_, sk.results_
    assert _choice_columns(a) == _choice_columns(b)
    assert _score_columns(a) == _score_columns(b)
    assert len(a) == len(b)
    sa, sb = _label_to_scores(a), _label_to_scores(b)
    assert sorted(sa) == sorted(sb), "configurations (labels) differ"
    for labels in sb:
        assert len(sa[labels]) == len(sb[labels]), labels
        np.testing.assert_allclose(np.array(sa[labels]), np.array(sb[labels]), rtol=RTOL,
                                   equal_nan=True, err_msg=f"scores of {labels}")
    # and the merge the user would write, when labels are unique
    cols = _choice_columns(b)
    if cols and not b[cols].astype(str).duplicated().any():
        left, right = a.astype({c: str for c in cols}), b.astype({c: str for c in cols})
        merged = left.merge(right, on=cols, suffixes=("_sl", "_sk"), validate="1:1")
        assert len(merged) == len(b)
        for c in _score_columns(b):
            np.testing.assert_allclose(merged[f"{c}_sl"], merged[f"{c}_sk"], rtol=RTOL,
                                       equal_nan=True, err_msg=c)


_TIME_KEYS = ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time")


def assert_same_cv_results(sl, sk):
    a, b = sl.cv_results_, sk.cv_results_
    assert sorted(a) == sorted(b)
    assert [dict(p) for p in a["params"]] == [dict(p) for p in b["params"]]
    for key in b:
        if key in _TIME_KEYS or key == "params":
            continue
        if key.startswith("param_"):
            assert list(a[key]) == list(b[key]), key
        elif key.startswith("rank_"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            np.testing.assert_allclose(np.asarray(a[key], dtype=float),
                                       np.asarray(b[key], dtype=float),
                                       rtol=RTOL, equal_nan=True, err_msg=key)


def assert_same_search(sl, sk, new: dict | None = None, *, score: bool = True):
    """Everything a user reads off a fitted search is equal (see module doc)."""
    assert_same_cv_results(sl, sk)
    assert_same_results_table(sl, sk)
    assert sl.best_params_ == sk.best_params_
    assert sl.best_index_ == sk.best_index_
    if sk.refit_ is not False or "best_score_" in vars(sk):
        np.testing.assert_allclose(sl.best_score_, sk.best_score_, rtol=RTOL)
    if sk.refit_ is False:
        assert not hasattr(sl, "best_learner_")
        return
    assert isinstance(sl.best_learner_, stratumlite.Learner)
    if new is not None:
        assert_same_value_loose(sl.best_learner_.classes_ if hasattr(sk, "classes_") else 0,
                                sk.classes_ if hasattr(sk, "classes_") else 0)
        pa, pb = sl.predict(new), sk.predict(new)
        assert type(pa) is type(pb)
        if np.asarray(pb).dtype.kind in "fc":
            np.testing.assert_allclose(np.asarray(pa), np.asarray(pb), rtol=RTOL)
        else:
            np.testing.assert_array_equal(np.asarray(pa), np.asarray(pb))
        if score:
            assert_same_value_loose(sl.score(new), sk.score(new))


def assert_same_value_loose(a, b):
    """Equal numbers, arrays or dicts of numbers (``rtol=1e-9``)."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and list(a) == list(b), (a, b)
        for k in b:
            assert_same_value_loose(a[k], b[k])
    elif np.asarray(b).dtype.kind in "fc":
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def distinct_scores(search) -> int:
    col = _score_columns(search.results_)[0]
    return search.results_[col].round(12).nunique()


# --------------------------------------------------------------------------
# every choice kind


def op_choose_from_list():
    _, X, y = reg_xy()
    return X.skb.apply(skrub.choose_from([Ridge(alpha=1.0), Lasso(alpha=0.3),
                                          DummyRegressor()], name="model"), y=y)


def op_choose_from_dict():
    _, X, y = reg_xy()
    return X.skb.apply(skrub.choose_from({"ridge": Ridge(), "knn": KNeighborsRegressor(5),
                                          "dummy": DummyRegressor()}, name="model"), y=y)


def op_nested_choice():
    _, X, y = reg_xy()
    model = skrub.choose_from({
        "ridge": Ridge(alpha=skrub.choose_from([0.01, 100.0], name="alpha")),
        "knn": KNeighborsRegressor(n_neighbors=skrub.choose_int(2, 20, n_steps=3, name="k")),
    }, name="model")
    return X.skb.apply(model, y=y)


def op_optional():
    _, X, y = reg_xy()
    X = X.skb.apply(skrub.optional(MinMaxScaler(feature_range=(0, 50)), name="scale"))
    return X.skb.apply(Lasso(alpha=0.5), y=y)


def op_choose_bool():
    _, X, y = reg_xy()
    return X.skb.apply(Ridge(fit_intercept=skrub.choose_bool(name="intercept")), y=y)


def op_choose_bool_if_else():
    _, X, y = reg_xy()
    flag = skrub.choose_bool(name="double")
    X = flag.if_else(X * 3.0, X).as_data_op()
    return X.skb.apply(Ridge(alpha=20.0), y=y)


def op_numeric_grid():
    _, X, y = reg_xy()
    knn = KNeighborsRegressor(n_neighbors=skrub.choose_int(1, 30, n_steps=4, name="k"))
    X = X.skb.apply_func(shift, offset=skrub.choose_float(-1.0, 1.0, n_steps=2,
                                                          name="offset"))
    return X.skb.apply(knn, y=y)


def op_numeric_log_grid():
    _, X, y = reg_xy()
    return X.skb.apply(Ridge(alpha=skrub.choose_float(0.01, 1000.0, log=True, n_steps=5,
                                                      name="alpha")), y=y)


def op_match():
    _, X, y = reg_xy()
    kind = skrub.choose_from(["raw", "scaled", "first"], name="features")
    features = kind.match({
        "raw": X,
        "scaled": X.skb.apply(MinMaxScaler()),
        "first": X[["x1"]],
    }).as_data_op()
    return features.skb.apply(Ridge(alpha=10.0), y=y)


def op_pipeline_step():
    _, X, y = reg_xy()
    pipe = Pipeline([
        ("scale", skrub.choose_from({"std": StandardScaler(), "minmax": MinMaxScaler()},
                                    name="scaler")),
        ("model", Ridge(alpha=skrub.choose_float(0.1, 100.0, log=True, n_steps=3,
                                                 name="alpha"))),
    ])
    return X.skb.apply(pipe, y=y)


def op_apply_func_kwarg():
    _, X, y = reg_xy()
    X = X.skb.apply_func(scale_cols, a=skrub.choose_from([0.1, 1.0, 10.0], name="a"))
    return X.skb.apply(Ridge(alpha=30.0), y=y)


def op_deferred_kwarg():
    _, X, y = reg_xy()
    X = skrub.deferred(scale_cols)(X, a=skrub.choose_float(0.5, 5.0, n_steps=3, name="a"))
    return X.skb.apply(Ridge(alpha=30.0), y=y)


def op_cross_product():
    _, X, y = reg_xy()
    X = X.skb.apply(skrub.choose_from({"std": StandardScaler(), "minmax": MinMaxScaler()},
                                      name="scaler"))
    X = X.skb.apply_func(scale_cols, a=skrub.choose_from([1.0, 4.0], name="a"))
    return X.skb.apply(Ridge(alpha=skrub.choose_from([0.1, 50.0], name="alpha")), y=y)


GRID_CASES = {
    "choose_from_list": op_choose_from_list,
    "choose_from_dict": op_choose_from_dict,
    "nested_choice": op_nested_choice,
    "optional": op_optional,
    "choose_bool": op_choose_bool,
    "choose_bool_if_else": op_choose_bool_if_else,
    "numeric_grid_n_steps": op_numeric_grid,
    "numeric_log_grid": op_numeric_log_grid,
    "match": op_match,
    "pipeline_step": op_pipeline_step,
    "apply_func_kwarg": op_apply_func_kwarg,
    "deferred_kwarg": op_deferred_kwarg,
    "cross_product": op_cross_product,
}


@pytest.mark.parametrize("case", list(GRID_CASES))
def test_grid_search_matches_skrub(case):
    op = GRID_CASES[case]()
    sl, sk = run_both(op, cv=3)
    assert_same_search(sl, sk, new_env(REG_NEW))
    # the cases are built so that the choices matter
    assert distinct_scores(sk) > 1


def op_numeric_continuous():
    _, X, y = reg_xy()
    knn = KNeighborsRegressor(n_neighbors=skrub.choose_int(1, 40, name="k"))
    X = X.skb.apply_func(scale_cols, a=skrub.choose_float(0.1, 10.0, log=True, name="a"))
    return X.skb.apply(knn, y=y)


RANDOMIZED_CASES = {
    "continuous_numeric": op_numeric_continuous,
    "mixed_with_choose_from": op_nested_choice,
    "match": op_match,
}


@pytest.mark.filterwarnings("ignore:The total space of parameters")  # "match": 3 < n_iter
@pytest.mark.parametrize("case", list(RANDOMIZED_CASES))
def test_randomized_search_matches_skrub(case):
    op = RANDOMIZED_CASES[case]()
    sl, sk = run_both(op, "randomized", cv=3, n_iter=6, random_state=0)
    assert_same_search(sl, sk, new_env(REG_NEW))
    # n_iter, or the whole grid when it is smaller (as scikit-learn samples)
    assert len(sl.results_) == (3 if case == "match" else 6)


def test_randomized_search_other_seed_other_candidates():
    op = op_numeric_continuous()
    a = stratumlite.make_randomized_search(op, fitted=True, verbose=0, cv=3, n_iter=4,
                                           random_state=0)
    b = stratumlite.make_randomized_search(op, fitted=True, verbose=0, cv=3, n_iter=4,
                                           random_state=1)
    assert a.cv_results_["params"] != b.cv_results_["params"]


def test_grid_search_refuses_continuous_range_like_skrub():
    op = op_numeric_continuous()
    with pytest.raises(ValueError):
        op.skb.make_grid_search(fitted=False)
    with pytest.raises(ValueError):
        stratumlite.make_grid_search(op, fitted=False)


# --------------------------------------------------------------------------
# the unsound merges of the prior system: these outcomes must stay apart


def op_apply_func_a1_a2():
    _, X, y = reg_xy()
    features = skrub.as_data_op(skrub.choose_from({
        "a=1": X.skb.apply_func(scale_cols, a=1.0),
        "a=2": X.skb.apply_func(scale_cols, a=2.0),
        "a=40": X.skb.apply_func(scale_cols, a=40.0),
    }, name="f"))
    return features.skb.apply(Ridge(alpha=50.0), y=y)


def op_argument_order():
    _, X, y = reg_xy()
    u, v = X[["x1", "x2"]], X[["x3", "x4"]]
    features = skrub.as_data_op(skrub.choose_from({
        "g(x, z)": skrub.deferred(combine)(u, v),
        "g(z, x)": skrub.deferred(combine)(v, u),
    }, name="order"))
    return features.skb.apply(Ridge(), y=y)


def op_column_order():
    _, X, y = reg_xy()
    first = Pipeline([("first", FunctionTransformer(first_column)), ("ridge", Ridge())])
    features = skrub.as_data_op(skrub.choose_from(
        {"x1,x2": X[["x1", "x2"]], "x2,x1": X[["x2", "x1"]]}, name="columns"))
    return features.skb.apply(first, y=y)


def op_apply_differs_in_y():
    from sklearn.feature_selection import SelectKBest, f_regression

    _, X, y = reg_xy()
    other_target = X["x3"] * 1.0
    features = skrub.as_data_op(skrub.choose_from({
        "select by target": X.skb.apply(SelectKBest(f_regression, k=1), y=y),
        "select by x3": X.skb.apply(SelectKBest(f_regression, k=1), y=other_target),
    }, name="selection"))
    return features.skb.apply(Ridge(), y=y)


def op_identical_outcomes():
    _, X, y = reg_xy()
    return X.skb.apply(skrub.choose_from([Ridge(alpha=2.0), Ridge(alpha=2.0), Lasso()],
                                         name="model"), y=y)


def op_identical_dataop_outcomes():
    _, X, y = reg_xy()
    features = skrub.as_data_op(
        skrub.choose_from({"one": X * 2.0, "two": X * 2.0, "raw": X}, name="f"))
    return features.skb.apply(Ridge(alpha=30.0), y=y)


def op_permuted_grid():
    # 2 x 3, labels deliberately in non-sorted order, so a mix-up shows
    _, X, y = reg_xy()
    X = X.skb.apply(skrub.choose_from({"zscale": StandardScaler(), "minmax": MinMaxScaler()},
                                      name="scaler"))
    alpha = skrub.choose_from({"big": 300.0, "small": 0.01, "mid": 5.0}, name="alpha")
    return X.skb.apply(Ridge(alpha=alpha), y=y)


def op_two_choices_plus():
    _, X, y = reg_xy()
    a = X["x1"] * skrub.choose_from([1.0, 5.0], name="a")
    b = X["x2"] * skrub.choose_from([0.0, 1.0], name="b")
    feature = (a + b).skb.apply_func(to_frame)
    return feature.skb.apply(Ridge(alpha=100.0), y=y)


UNSOUND_CASES = {
    "apply_func_a1_a2": op_apply_func_a1_a2,
    "argument_order": op_argument_order,
    "column_order": op_column_order,
    "apply_differs_in_y": op_apply_differs_in_y,
    "permuted_2x3_grid": op_permuted_grid,
    "two_choices_plus": op_two_choices_plus,
}


@pytest.mark.parametrize("case", list(UNSOUND_CASES))
def test_distinct_outcomes_are_not_merged(case):
    op = UNSOUND_CASES[case]()
    sl, sk = run_both(op, cv=3)
    assert_same_search(sl, sk, new_env(REG_NEW))
    # every configuration has its own score: nothing was merged
    assert distinct_scores(sl) == len(sl.results_)


@pytest.mark.parametrize("case", [op_identical_outcomes, op_identical_dataop_outcomes],
                         ids=["estimators", "dataops"])
def test_identical_outcomes_both_rows_present(case):
    op = case()
    sl, sk = run_both(op, cv=3)
    assert_same_search(sl, sk, new_env(REG_NEW))
    assert len(sl.results_) == 3
    scores = sl.cv_results_["mean_test_score"]
    assert scores[0] == scores[1]
    # the identical outcomes were computed once per fold
    assert sl.stats_["fits_executed"] < sl.stats_["fits_naive"]


# --------------------------------------------------------------------------
# classification, cv=int and scoring


def op_classifier():
    _, X, y = clf_xy()
    return X.skb.apply(LogisticRegression(C=skrub.choose_float(0.001, 10.0, log=True,
                                                               n_steps=3, name="C")), y=y)


def _proba_of_yes(estimator, X, y):
    proba = estimator.predict_proba(X)
    return float(np.mean(np.abs(proba[:, 1] - (np.asarray(y) == "yes"))))


SCORINGS = {
    "default": None,
    "string": "balanced_accuracy",
    "list": ["accuracy", "f1_macro"],
    "dict": {"acc": "accuracy", "bal": make_scorer(balanced_accuracy_score),
             "auc": "roc_auc"},
    "callable_scorer": make_scorer(balanced_accuracy_score),
    "callable_function": _proba_of_yes,
}


@pytest.mark.parametrize("scoring", list(SCORINGS))
def test_classification_scoring(scoring):
    op = op_classifier()
    kwargs = {"cv": 3}
    if SCORINGS[scoring] is not None:
        kwargs["scoring"] = SCORINGS[scoring]
    if isinstance(SCORINGS[scoring], (list, dict)):
        kwargs["refit"] = "accuracy" if scoring == "list" else "bal"
    sl, sk = run_both(op, **kwargs)
    assert_same_search(sl, sk, new_env(CLF_NEW))
    assert set(sl.results_.columns) == set(sk.results_.columns)


def test_classification_cv_int_is_stratified():
    op = op_classifier()
    # unbalanced labels: stratified and plain k-fold give different splits
    y = CLF["label"]
    strat = [t for _, t in StratifiedKFold(3).split(CLF[FEATURES], y)]
    plain = [t for _, t in KFold(3).split(CLF[FEATURES], y)]
    assert any(not np.array_equal(a, b) for a, b in zip(strat, plain))
    table = stratumlite.cross_validate(op, cv=3, return_indices=True, verbose=0)
    for got, expected in zip(table["test_indices"], strat):
        np.testing.assert_array_equal(got, expected)
    sl, sk = run_both(op, cv=3)
    assert_same_search(sl, sk, new_env(CLF_NEW))


@pytest.mark.parametrize("scoring", [
    "accuracy",
    ["accuracy", "balanced_accuracy"],
    make_scorer(balanced_accuracy_score),
], ids=["string", "list", "scorer"])
def test_with_scoring(scoring):
    op = op_classifier().skb.with_scoring(scoring)
    sl, sk = run_both(op, cv=3, refit="accuracy" if isinstance(scoring, list) else True)
    # score(): see test_with_scoring_search_score
    assert_same_search(sl, sk, new_env(CLF_NEW), score=False)


def test_with_scoring_search_score():
    op = op_classifier().skb.with_scoring(make_scorer(balanced_accuracy_score))
    sl, sk = run_both(op, cv=3)
    assert_same_value_loose(sl.score(new_env(CLF_NEW)), sk.score(new_env(CLF_NEW)))


def test_with_scoring_kwargs_from_the_data():
    data, X, y = clf_xy()
    pred = X.skb.apply(LogisticRegression(C=skrub.choose_from([0.01, 1.0], name="C")), y=y)
    weight = (X["x1"].abs() + 0.1)
    op = pred.skb.with_scoring("accuracy", kwargs={"sample_weight": weight},
                               name="weighted").skb.with_scoring("accuracy")
    sl, sk = run_both(op, cv=3, refit="weighted")
    assert_same_search(sl, sk, new_env(CLF_NEW), score=False)
    assert "mean_test_weighted" in sl.cv_results_
    # the weights are computed from each fold's test rows
    assert len(set(sl.cv_results_["split0_test_weighted"]) |
               set(sl.cv_results_["split1_test_weighted"])) == 4
    a = stratumlite.cross_validate(op, cv=3, verbose=0)
    b = op.skb.cross_validate(cv=3)
    _assert_same_cv_table(a, b)


def test_regression_scoring_string():
    op = op_numeric_log_grid()
    sl, sk = run_both(op, cv=3, scoring="neg_mean_absolute_error")
    assert_same_search(sl, sk, new_env(REG_NEW), score=False)
    sl, sk = run_both(op, cv=3, scoring=make_scorer(mean_absolute_error,
                                                    greater_is_better=False))
    assert_same_search(sl, sk, new_env(REG_NEW), score=False)


# --------------------------------------------------------------------------
# cv options


def test_group_cv_from_mark_as_X():
    data = skrub.var("data", REG)
    X = data[FEATURES].skb.mark_as_X(cv=GroupKFold(3), split_kwargs={"groups": data["group"]})
    y = data["target"].skb.mark_as_y()
    op = X.skb.apply(Ridge(alpha=skrub.choose_from([0.1, 1000.0], name="alpha")), y=y)
    sl, sk = run_both(op)
    assert_same_search(sl, sk, new_env(REG_NEW))
    # the folds are the groups' folds
    table = stratumlite.cross_validate(op, return_indices=True, verbose=0)
    expected = [t for _, t in GroupKFold(3).split(REG[FEATURES], groups=REG["group"])]
    assert len(table) == 3
    for got, want in zip(table["test_indices"], expected):
        np.testing.assert_array_equal(got, want)
    for groups in (REG["group"].iloc[t] for t in table["test_indices"]):
        others = set(REG["group"]) - set(groups)
        assert not set(groups) & others


def test_cv_splitter_object():
    op = op_permuted_grid()
    sl, sk = run_both(op, cv=KFold(3, shuffle=True, random_state=0))
    assert_same_search(sl, sk, new_env(REG_NEW))


def test_refit_false():
    op = op_choose_from_dict()
    sl, sk = run_both(op, cv=3, refit=False)
    assert_same_search(sl, sk)
    with pytest.raises(AttributeError):
        sk.predict(new_env(REG_NEW))
    with pytest.raises(AttributeError, match="refit=False"):
        sl.predict(new_env(REG_NEW))


def test_return_train_score():
    op = op_nested_choice()
    sl, sk = run_both(op, cv=3, return_train_score=True)
    assert "mean_train_score" in sl.cv_results_
    assert_same_search(sl, sk, new_env(REG_NEW))
    cols = [c for c in sk.detailed_results_.columns if "time" not in c]
    pd.testing.assert_frame_equal(sl.detailed_results_[cols], sk.detailed_results_[cols],
                                  rtol=RTOL)


# --------------------------------------------------------------------------
# failures


def op_fragile():
    _, X, y = reg_xy()
    return X.skb.apply(Fragile(alpha=skrub.choose_from([1.0, -1.0, 10.0], name="alpha")),
                       y=y)


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_failing_configuration_gets_error_score():
    op = op_fragile()
    with pytest.warns(FitFailedWarning):  # as scikit-learn warns
        sl, sk = run_both(op, cv=3)
    assert_same_search(sl, sk, new_env(REG_NEW))
    scores = sl.cv_results_["mean_test_score"]
    assert np.isnan(scores[1]) and np.isfinite(scores[0]) and np.isfinite(scores[2])
    assert set(sl.errors_) == {1}
    assert "alpha must be >= 0" in sl.errors_[1]
    table = sl.results_
    assert "error" in table.columns
    failed = table[table["alpha"].astype(str) == "-1.0"]
    assert len(failed) == 1 and "alpha must be >= 0" in failed["error"].iloc[0]
    assert (table[table["alpha"].astype(str) != "-1.0"]["error"] == "").all()


def test_failing_configuration_numeric_error_score():
    op = op_fragile()
    with pytest.warns(FitFailedWarning):
        sl, sk = run_both(op, cv=3, error_score=-123.0)
    assert_same_search(sl, sk, new_env(REG_NEW))
    assert sl.cv_results_["mean_test_score"][1] == -123.0


def test_error_score_raise():
    op = op_fragile()
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        op.skb.make_grid_search(fitted=True, cv=3, error_score="raise")
    with pytest.raises(stratumlite.EvaluationError) as info:
        stratumlite.make_grid_search(op, fitted=True, cv=3, error_score="raise", verbose=0)
    err = info.value
    assert "Apply" in err.node and "Fragile" in str(err)
    assert isinstance(err.original, ValueError)
    assert "alpha must be >= 0" in str(err.original)


# --------------------------------------------------------------------------
# cross-validation


def _assert_same_cv_table(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns)
    for c in b.columns:
        if "time" in c:
            continue
        if c.endswith("_indices"):
            for x, y in zip(a[c], b[c]):
                np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(a[c], b[c], rtol=RTOL, err_msg=c)


@pytest.mark.parametrize("kwargs", [
    {"cv": 3},
    {"cv": 3, "scoring": ["r2", "neg_mean_squared_error"], "return_train_score": True},
    {"cv": KFold(4, shuffle=True, random_state=1), "return_indices": True},
], ids=["cv3", "multi_metric_train", "kfold_indices"])
def test_cross_validate_matches_skrub(kwargs):
    op = op_pipeline_step()
    a = stratumlite.cross_validate(op, verbose=0, **kwargs)
    b = op.skb.cross_validate(**kwargs)
    _assert_same_cv_table(a, b)


def test_cross_validate_return_learner():
    op = op_cross_product()
    a = stratumlite.cross_validate(op, cv=3, return_learner=True, verbose=0)
    b = op.skb.cross_validate(cv=3, return_learner=True)
    _assert_same_cv_table(a.drop(columns="learner"), b.drop(columns="learner"))
    for la, lb in zip(a["learner"], b["learner"]):
        assert isinstance(la, stratumlite.Learner)
        np.testing.assert_allclose(la.predict(new_env(REG_NEW)), lb.predict(new_env(REG_NEW)),
                                   rtol=RTOL)


def test_cross_validate_classification():
    op = op_classifier()
    a = stratumlite.cross_validate(op, cv=3, scoring="roc_auc", verbose=0)
    b = op.skb.cross_validate(cv=3, scoring="roc_auc")
    _assert_same_cv_table(a, b)


def _separate_pipeline(model):
    """A pipeline written from scratch (its own variable) over the same data."""
    data = skrub.var("data", REG)
    X = data[FEATURES].skb.mark_as_X()
    y = data["target"].skb.mark_as_y()
    return X.skb.apply(StandardScaler()).skb.apply(model, y=y)


def test_cross_validate_many_matches_skrub_per_pipeline():
    models = [Ridge(alpha=0.1), Ridge(alpha=100.0), Lasso(alpha=0.2), KNeighborsRegressor(3),
              DummyRegressor()]
    ops = [_separate_pipeline(m) for m in models]
    tables = stratumlite.cross_validate_many(ops, cv=3, verbose=0)
    assert len(tables) == len(ops)
    for table, op in zip(tables, ops):
        _assert_same_cv_table(table, op.skb.cross_validate(cv=3))
    tables = stratumlite.cross_validate_many(ops, cv=3, scoring="neg_mean_absolute_error",
                                             return_train_score=True, verbose=0)
    for table, op in zip(tables, ops):
        expected = op.skb.cross_validate(cv=3, scoring="neg_mean_absolute_error",
                                         return_train_score=True)
        _assert_same_cv_table(table, expected)


# --------------------------------------------------------------------------
# polars


@pytest.mark.parametrize("case", ["permuted_2x3_grid", "argument_order", "apply_func_a1_a2"])
def test_grid_search_polars(case):
    _, X, y = reg_xy("polars")
    if case == "permuted_2x3_grid":
        X = X.skb.apply(skrub.choose_from({"zscale": StandardScaler(),
                                           "minmax": MinMaxScaler()}, name="scaler"))
        op = X.skb.apply(Ridge(alpha=skrub.choose_from({"big": 300.0, "small": 0.01,
                                                        "mid": 5.0}, name="alpha")), y=y)
    elif case == "argument_order":
        u, v = X[["x1", "x2"]], X[["x3", "x4"]]
        op = skrub.as_data_op(skrub.choose_from({"g(x, z)": skrub.deferred(combine)(u, v),
                                                 "g(z, x)": skrub.deferred(combine)(v, u)},
                                                name="order")).skb.apply(Ridge(), y=y)
    else:
        op = skrub.as_data_op(skrub.choose_from(
            {f"a={a}": X.skb.apply_func(scale_cols, a=a) for a in (1.0, 2.0, 40.0)},
            name="f")).skb.apply(Ridge(alpha=50.0), y=y)
    sl, sk = run_both(op, cv=3)
    assert_same_search(sl, sk, new_env(REG_NEW, "polars"))
    assert distinct_scores(sl) == len(sl.results_)


def test_randomized_search_polars_classification():
    _, X, y = clf_xy("polars")
    op = X.skb.apply(LogisticRegression(C=skrub.choose_float(0.001, 10.0, log=True,
                                                             name="C")), y=y)
    sl, sk = run_both(op, "randomized", cv=3, n_iter=4, random_state=3, scoring="roc_auc")
    assert_same_search(sl, sk, new_env(CLF_NEW, "polars"), score=False)


def test_cross_validate_polars():
    _, X, y = reg_xy("polars")
    op = X.skb.apply(StandardScaler()).skb.apply(Ridge(), y=y)
    _assert_same_cv_table(stratumlite.cross_validate(op, cv=3, verbose=0),
                          op.skb.cross_validate(cv=3))


# --------------------------------------------------------------------------
# the drop-in: an unchanged skrub script under ``stratumlite.patched_skrub()``


def _skrub_script():
    """A skrub script, as a user writes it (no stratumlite in it)."""
    _, X, y = reg_xy()
    X = X.skb.apply(skrub.choose_from({"std": StandardScaler(), "minmax": MinMaxScaler()},
                                      name="scaler"))
    pred = X.skb.apply(Ridge(alpha=skrub.choose_float(0.1, 100.0, log=True, n_steps=3,
                                                      name="alpha")), y=y)
    out = {"eval": pred.skb.eval(), "eval_new": pred.skb.eval(new_env(REG_NEW))}
    learner = pred.skb.make_learner(fitted=True)
    out["learner"] = learner
    out["learner_predict"] = learner.predict(new_env(REG_NEW))
    grid = pred.skb.make_grid_search(fitted=True, cv=3)
    out["grid"] = grid
    out["grid_predict"] = grid.predict(new_env(REG_NEW))
    rand = pred.skb.make_randomized_search(fitted=True, cv=3, n_iter=4, random_state=0)
    out["randomized"] = rand
    out["cv_method"] = pred.skb.cross_validate(cv=3)
    out["cv_function"] = skrub.cross_validate(pred.skb.make_learner(), pred.skb.get_data(),
                                              cv=3)
    return out


_ENTRY_POINTS = ("eval", "make_learner", "make_grid_search", "make_randomized_search",
                 "cross_validate")


def test_patched_skrub_drop_in():
    originals = {n: _skrub_namespace.SkrubNamespace.__dict__[n] for n in _ENTRY_POINTS}
    original_cv = skrub.cross_validate
    with stratumlite.patched_skrub():
        patched = _skrub_script()
    plain = _skrub_script()

    # it went through stratumlite...
    assert isinstance(patched["learner"], stratumlite.Learner)
    assert isinstance(patched["grid"], stratumlite.ParamSearch)
    assert isinstance(patched["randomized"], stratumlite.ParamSearch)
    assert isinstance(patched["grid"].best_learner_, stratumlite.Learner)
    # ... and skrub is restored after the block
    assert not isinstance(plain["learner"], stratumlite.Learner)
    assert not isinstance(plain["grid"], stratumlite.ParamSearch)
    for name in _ENTRY_POINTS:
        assert _skrub_namespace.SkrubNamespace.__dict__[name] is originals[name]
    assert skrub.cross_validate is original_cv

    # same results
    for key in ("eval", "eval_new", "learner_predict", "grid_predict"):
        np.testing.assert_allclose(np.asarray(patched[key]), np.asarray(plain[key]),
                                   rtol=RTOL, err_msg=key)
    assert_same_search(patched["grid"], plain["grid"], new_env(REG_NEW))
    assert_same_search(patched["randomized"], plain["randomized"], new_env(REG_NEW))
    for key in ("cv_method", "cv_function"):
        _assert_same_cv_table(patched[key], plain[key])


def test_patched_skrub_restored_after_an_error():
    original_cv = skrub.cross_validate
    with pytest.raises(RuntimeError, match="boom"):
        with stratumlite.patched_skrub():
            assert skrub.cross_validate is not original_cv
            raise RuntimeError("boom")
    assert skrub.cross_validate is original_cv
    learner = (skrub.var("x", 1) * 2).skb.make_learner()
    assert not isinstance(learner, stratumlite.Learner)


def test_learner_score_with_scoring_kwargs_matches_skrub():
    """``Learner.score`` with ``.skb.with_scoring`` (kwargs computed from X)
    returns skrub's dict of scores."""
    data, X, y = clf_xy()
    pred = X.skb.apply(LogisticRegression(), y=y)
    weight = X["x1"].abs() + 0.1
    op = pred.skb.with_scoring("accuracy", kwargs={"sample_weight": weight},
                               name="weighted").skb.with_scoring("accuracy")
    env = new_env(CLF_NEW)
    ours = stratumlite.make_learner(op).fit(op.skb.get_data()).score(env)
    theirs = op.skb.make_learner().fit(op.skb.get_data()).score(env)
    assert isinstance(ours, dict) and set(ours) == set(theirs)
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-9)
