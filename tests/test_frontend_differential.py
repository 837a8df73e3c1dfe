"""Differential tests: stratumlite vs skrub (the oracle), node kind by node kind.

For every case, ``stratumlite.evaluate(op, env)`` must equal
``op.skb.eval(env)``, and a learner built by ``stratumlite.make_learner`` must
give the same ``fit_transform`` / ``transform`` / ``predict`` /
``predict_proba`` / ``decision_function`` / ``score`` results as
``op.skb.make_learner()`` fitted on the same data (with choices at their
default and at outcomes drawn by ``choose="random(seed)"``). Every case runs on
pandas AND polars inputs.

stratumlite always runs first on a graph, so that a modification of the
user's graph by stratumlite could not be hidden by skrub's own evaluation.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
import skrub
from conftest import (
    N_ROWS,
    assert_same_value,
    classification_frame,
    mixed_frame,
    regression_frame,
    to_backend,
)
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.linear_model import Lasso, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures, StandardScaler

import stratumlite
from stratumlite.frontend import to_plan

# --------------------------------------------------------------------------
# data helpers


def mixed(backend, n=8, seed=0):
    return to_backend(mixed_frame(n, seed), backend)


def numeric(backend, n=8, seed=0):
    return to_backend(mixed_frame(n, seed)[["a", "b", "c"]], backend)


def _split(frame, backend):
    train = frame.iloc[:N_ROWS].reset_index(drop=True)
    test = frame.iloc[N_ROWS:].reset_index(drop=True)
    return to_backend(train, backend), to_backend(test, backend)


def reg(backend):
    return _split(regression_frame(N_ROWS + 10), backend)


def clf(backend):
    return _split(classification_frame(N_ROWS + 10), backend)


FEATURES = ["x1", "x2", "x3"]


def reg_xy(cv=None):
    """``data`` var -> (X marked as X, y marked as y) for the regression frame."""
    data = skrub.var("data")
    if cv is None:
        X = data[FEATURES].skb.mark_as_X()
    else:
        X = data[FEATURES].skb.mark_as_X(cv=cv)
    y = data["target"].skb.mark_as_y()
    return X, y


def clf_xy():
    data = skrub.var("data")
    return data[FEATURES].skb.mark_as_X(), data["label"].skb.mark_as_y()


# --------------------------------------------------------------------------
# cases


@dataclass
class Learn:
    fit_env: dict
    predict_env: dict
    methods: tuple[str, ...]
    chooses: tuple[str, ...] = ("default",)


@dataclass
class Case:
    op: Any
    env: dict | None
    learn: Learn | None = None
    extra_envs: list = field(default_factory=list)


CASES: dict[str, Callable[[str], Case | None]] = {}

PREDICT = ("predict", "score")
CLASSIFY = ("predict", "predict_proba", "decision_function", "score")
TRANSFORM = ("fit_transform", "transform")
RANDOM = ("default", "random(0)", "random(1)")


def case(name):
    def register(f):
        assert name not in CASES
        CASES[name] = f
        return f

    return register


def reg_case(op, backend, methods=PREDICT, chooses=("default",)):
    train, test = reg(backend)
    return Case(op, {"data": train}, Learn({"data": train}, {"data": test}, methods, chooses))


def clf_case(op, backend, methods=CLASSIFY, chooses=("default",)):
    train, test = clf(backend)
    return Case(op, {"data": train}, Learn({"data": train}, {"data": test}, methods, chooses))


def frame_case(op, backend, methods=TRANSFORM, chooses=("default",), name="t",
               make=mixed, **extra):
    train, test = make(backend), make(backend, seed=1)
    return Case(
        op,
        {name: train, **extra},
        Learn({name: train, **extra}, {name: test, **extra}, methods, chooses),
    )


# --- sources ---------------------------------------------------------------


@case("var")
def _(b):
    return frame_case(skrub.var("t"), b)


@case("var_with_value")
def _(b):
    # env None: the variable's value is used
    t = skrub.var("t", mixed(b))
    return Case(t[["a", "c"]] * 2, None)


@case("var_values_empty_env")
def _(b):
    # an environment that binds no variable: skrub uses the variables' values
    t = skrub.var("t", mixed(b))
    return Case(t["a"] * skrub.var("k", 2), {})


@case("var_becomes_default")
def _(b):
    t = skrub.var("t")
    k = skrub.var("k", 3, becomes_default=True)
    c = frame_case(t["c"] - k, b)
    c.extra_envs = [{"k": -1}]
    return c


@case("var_scalar_arith")
def _(b):
    n = skrub.var("n")
    return Case((n + 1) * n - 3, {"n": 4}, Learn({"n": 4}, {"n": 10}, TRANSFORM))


@case("skrub_X_y")
def _(b):
    train, test = reg(b)
    pred = skrub.X().skb.apply(Ridge(), y=skrub.y())
    fit_env = {"X": train[FEATURES], "y": train["target"]}
    return Case(pred, fit_env,
                Learn(fit_env, {"X": test[FEATURES], "y": test["target"]}, PREDICT))


@case("value_frame")
def _(b):
    return Case(skrub.as_data_op(mixed(b))["a"] * 2, None)


@case("value_dict_lookup")
def _(b):
    key = skrub.var("key")
    op = skrub.as_data_op({"k": 1, "j": [1, 2]})[key]
    return Case(op, {"key": "j"}, Learn({"key": "j"}, {"key": "k"}, TRANSFORM))


# --- apply -----------------------------------------------------------------


@case("apply_cols_list")
def _(b):
    return frame_case(skrub.var("t").skb.apply(StandardScaler(), cols=["a", "c"]), b)


@case("apply_cols_selector")
def _(b):
    op = skrub.var("t").skb.apply(StandardScaler(), cols=skrub.selectors.numeric())
    return frame_case(op, b)


@case("apply_exclude_cols")
def _(b):
    op = skrub.var("t").skb.apply(
        MinMaxScaler(), cols=skrub.selectors.numeric(), exclude_cols=["b"]
    )
    return frame_case(op, b)


@case("apply_no_wrap")
def _(b):
    op = skrub.var("t")[["a", "c"]].skb.apply(StandardScaler(), no_wrap=True)
    return frame_case(op, b)


@case("apply_allow_reject")
def _(b):
    op = skrub.var("t").skb.apply(skrub.DatetimeEncoder(), allow_reject=True)
    return frame_case(op, b)


@case("apply_string_encoder")
def _(b):
    op = skrub.var("t").skb.apply(skrub.StringEncoder(n_components=2, random_state=0), cols=["s"])
    return frame_case(op, b)


@case("apply_table_vectorizer")
def _(b):
    return frame_case(skrub.var("t").skb.apply(skrub.TableVectorizer()), b)


@case("apply_transformer_chain")
def _(b):
    t = skrub.var("t")[["a", "b", "c"]]
    op = t.skb.apply(StandardScaler()).skb.apply(PCA(n_components=2))
    return frame_case(op, b)


@case("apply_regressor_y")
def _(b):
    X, y = reg_xy()
    return reg_case(X.skb.apply(Ridge(alpha=0.5), y=y), b)


@case("apply_transformer_then_regressor")
def _(b):
    X, y = reg_xy()
    pred = X.skb.apply(StandardScaler()).skb.apply(Ridge(), y=y)
    return reg_case(pred, b)


@case("apply_classifier_y")
def _(b):
    X, y = clf_xy()
    return clf_case(X.skb.apply(LogisticRegression(), y=y), b)


@case("apply_y_dataframe")
def _(b):
    data = skrub.var("data")
    X = data[FEATURES].skb.mark_as_X()
    y = data[["target"]].skb.mark_as_y()
    return reg_case(X.skb.apply(Ridge(), y=y), b)


@case("apply_unsupervised")
def _(b):
    X, y = reg_xy()
    pred = X.skb.apply(KMeans(n_clusters=2, n_init=2, random_state=0), y=y,
                       unsupervised=True)
    return reg_case(pred, b, methods=("predict", "transform", "score"))


@case("apply_fit_kwargs")
def _(b):
    X, y = reg_xy()
    w = skrub.var("w")
    pred = X.skb.apply(Ridge(), y=y, fit_kwargs={"sample_weight": w})
    c = reg_case(pred, b)
    weights = np.linspace(0.1, 2.0, N_ROWS)
    c.env["w"] = weights
    c.learn.fit_env["w"] = weights
    return c


@case("apply_method_kwargs")
def _(b):
    t = skrub.var("t")
    w = skrub.var("w")
    op = t[["a", "c"]].skb.apply(
        StandardScaler(), no_wrap=True,
        fit_transform_kwargs={"sample_weight": w},
        transform_kwargs={"copy": True},
    )
    return frame_case(op, b, w=np.linspace(0.5, 1.5, 8))


@case("apply_passthrough")
def _(b):
    return frame_case(skrub.var("t").skb.apply("passthrough"), b)


# --- calls -----------------------------------------------------------------


def _weighted(a, c, weight=1.0, offset=0.0):
    return a * weight + c + offset


@case("deferred_positional_keyword")
def _(b):
    t = skrub.var("t")
    op = skrub.deferred(_weighted)(t["a"], t["c"], weight=skrub.var("w"), offset=0.5)
    return frame_case(op, b, w=3.0)


def _make_scaler(factor):
    @skrub.deferred
    def scale(x):
        return x * factor

    return scale


@case("deferred_closure_over_dataop")
def _(b):
    t = skrub.var("t")
    op = _make_scaler(skrub.var("factor"))(t[["a", "c"]])
    return frame_case(op, b, factor=3)


@case("deferred_default_arg_dataop")
def _(b):
    offset = skrub.var("offset")

    def shift(x, by=offset):
        return x + by

    op = skrub.deferred(shift)(skrub.var("t")["a"])
    return frame_case(op, b, offset=10.0)


@case("deferred_kwdefault_dataop")
def _(b):
    offset = skrub.var("offset")

    def shift(x, *, by=offset):
        return x - by

    op = skrub.deferred(shift)(skrub.var("t")["c"])
    return frame_case(op, b, offset=1.5)


@case("deferred_global_dataop")
def _(b):
    namespace = {"GLOBAL_FACTOR": skrub.var("g")}
    exec("def times_global(x):\n    return x * GLOBAL_FACTOR\n", namespace)
    op = skrub.deferred(namespace["times_global"])(skrub.var("t")["a"])
    return frame_case(op, b, g=-2)


def _select_and_scale(df, col, scale=1.0):
    return df[col] * scale


@case("apply_func_args_kwargs")
def _(b):
    op = skrub.var("t").skb.apply_func(_select_and_scale, "c", scale=skrub.var("k"))
    return frame_case(op, b, k=2.5)


@case("apply_func_lambda")
def _(b):
    op = skrub.var("t")[["a", "b"]].skb.apply_func(lambda d: d * 2 + 1)
    return frame_case(op, b)


@case("call_method_assign")
def _(b):
    t = skrub.var("t")
    if b == "pandas":
        op = t.assign(e=t["a"] * 2, f=lambda d: d["c"] + 1)
    else:
        op = t.with_columns((t["a"] * 2).alias("e"), f=pl.col("c") + 1)
    return frame_case(op, b)


@case("call_method_merge")
def _(b):
    t, other = skrub.var("t"), skrub.var("other")
    lookup = to_backend(
        pd.DataFrame({"s": ["red", "green", "blue"], "score": [1.0, 2.0, 3.0]}), b
    )
    if b == "pandas":
        op = t.merge(other, on="s", how="left")
    else:
        op = t.join(other, on="s", how="left", maintain_order="left")
    return frame_case(op, b, other=lookup)


@case("call_method_scalar")
def _(b):
    t = skrub.var("t")
    return frame_case(t["a"].mean() + t["c"].max(), b)


# --- attributes, items, operators ----------------------------------------


@case("getattr_columns")
def _(b):
    return frame_case(skrub.var("t").columns, b)


@case("getattr_shape")
def _(b):
    return frame_case(skrub.var("t").shape, b)


@case("getitem_column_list")
def _(b):
    return frame_case(skrub.var("t")[["c", "a"]], b)


@case("getitem_column")
def _(b):
    return frame_case(skrub.var("t")["s"], b)


@case("getitem_boolean_mask")
def _(b):
    t = skrub.var("t")
    if b == "pandas":
        op = t[t["a"] > 0]
    else:  # polars has no boolean-mask __getitem__; filter is its spelling
        op = t.filter(t["a"] > 0)
    return frame_case(op, b)


@case("getitem_slice_dataop")
def _(b):
    arr = skrub.var("arr")
    op = arr[skrub.var("start"):skrub.var("stop")]
    env = {"arr": np.arange(10), "start": 2, "stop": 7}
    return Case(op, env, Learn(env, {**env, "start": 0}, TRANSFORM))


@case("binops")
def _(b):
    t = skrub.var("t")
    op = (t["a"] + t["c"]) * 2 - t["b"] / 3
    return frame_case(op, b)


@case("binops_scalar")
def _(b):
    t = skrub.var("t")[["a", "c"]]
    return frame_case(((t + 1) * 2 - 0.5) / 4, b)


@case("binops_reversed")
def _(b):
    t = skrub.var("t")
    op = 10 - t["a"] + 1 / t["c"] + 2 * t["b"] + 2 ** t["b"]
    return frame_case(op, b)


@case("binops_comparison_logical")
def _(b):
    t = skrub.var("t")
    op = (t["a"] > 0) & (t["c"] <= 5.0) | (t["b"] == 3)
    return frame_case(op, b)


@case("unaryops")
def _(b):
    t = skrub.var("t")
    negated = ~(t["a"] > 0)
    as_int = negated.cast(pl.Int64) if b == "polars" else negated.astype("int64")
    return frame_case(-t["a"] + abs(t["c"]) + as_int, b)


# --- concat, control flow ---------------------------------------------------


@case("concat_axis0")
def _(b):
    t = skrub.var("t")[["a", "b"]]
    return frame_case(t.skb.concat([t * 2, t + 1], axis=0), b)


@case("concat_axis1")
def _(b):
    t = skrub.var("t")
    # no duplicate column names: skrub renames duplicates with random suffixes
    op = t[["a", "b"]].skb.concat([(t[["c"]] * 2), t[["s"]]], axis=1)
    return frame_case(op, b)


@case("concat_numpy")
def _(b):
    arr = skrub.var("arr")
    op = arr.skb.concat([arr * 2], axis=1)
    env = {"arr": np.arange(6.0).reshape(3, 2)}
    return Case(op, env, Learn(env, {"arr": np.ones((2, 2))}, TRANSFORM))


def _explode(x):
    raise AssertionError("this branch must not be evaluated")


@case("if_else_true")
def _(b):
    t = skrub.var("t")
    op = skrub.var("flag").skb.if_else(t["a"], skrub.deferred(_explode)(t))
    return frame_case(op, b, flag=True)


@case("if_else_false")
def _(b):
    t = skrub.var("t")
    op = (t["a"].sum() > 1000).skb.if_else(skrub.deferred(_explode)(t), t["c"] * 2)
    return frame_case(op, b)


@case("match")
def _(b):
    t = skrub.var("t")
    op = skrub.var("which").skb.match(
        {"a": t["a"], "c": t["c"], "x": skrub.deferred(_explode)(t)}, default=t["b"]
    )
    c = frame_case(op, b, which="c")
    c.extra_envs = [{"which": "zzz"}]
    return c


@case("freeze_after_fit")
def _(b):
    t = skrub.var("t")
    op = t["a"] - t["a"].mean().skb.freeze_after_fit()
    return frame_case(op, b)


@case("applied_estimator_transformer")
def _(b):
    op = skrub.var("t").skb.apply(StandardScaler(), cols=["a", "c"]).skb.applied_estimator
    return frame_case(op, b)


@case("applied_estimator_attribute")
def _(b):
    X, y = reg_xy()
    coef = X.skb.apply(Ridge(), y=y).skb.applied_estimator.coef_
    train, test = reg(b)
    return Case(coef, {"data": train})


@case("as_tuple_deferred")
def _(b):
    @skrub.deferred
    def split(df):
        return df["a"], df["c"]

    a, c = split(skrub.var("t"))
    return frame_case(a * 10 + c, b)


@case("as_tuple_value")
def _(b):
    first, second = skrub.var("pair")
    env = {"pair": (3, 4)}
    return Case(first * 10 + second, env, Learn(env, {"pair": [5, 6]}, TRANSFORM))


@case("eval_mode")
def _(b):
    return Case(skrub.eval_mode(), {}, Learn({}, {}, TRANSFORM))


@case("eval_mode_match")
def _(b):
    t = skrub.var("t")
    op = skrub.eval_mode().skb.match({"transform": t["a"]}, default=t["c"])
    return frame_case(op, b)


@case("mark_as_X_cv")
def _(b):
    X, y = reg_xy(cv=3)
    return reg_case(X.skb.apply(Ridge(), y=y), b)


@case("with_scoring_value")
def _(b):
    X, y = reg_xy()
    op = X.skb.apply(Ridge(), y=y).skb.with_scoring("r2")
    return reg_case(op, b, methods=("predict",))


@case("subsample_eval")
def _(b):
    train, test = reg(b)
    data = skrub.var("data", train).skb.subsample(n=7)
    X = data[FEATURES].skb.mark_as_X()
    y = data["target"].skb.mark_as_y()
    return Case(X.skb.apply(Ridge(), y=y), None,
                Learn({"data": train}, {"data": test}, PREDICT))


@case("named_node_env_override")
def _(b):
    t = skrub.var("t")
    mid = (t["a"] * 2).skb.set_name("doubled")
    c = frame_case(mid + 1, b)
    c.extra_envs = [{"doubled": 100}]
    return c


# --- choices ------------------------------------------------------------------


@case("choose_from_list")
def _(b):
    X, y = reg_xy()
    scaler = skrub.choose_from([StandardScaler(), MinMaxScaler()], name="scaler")
    pred = X.skb.apply(scaler).skb.apply(Ridge(), y=y)
    return reg_case(pred, b, chooses=RANDOM)


@case("choose_from_dict")
def _(b):
    X, y = reg_xy()
    model = skrub.choose_from({"ridge": Ridge(), "lasso": Lasso(alpha=0.05)}, name="m")
    return reg_case(X.skb.apply(model, y=y), b, chooses=RANDOM)


@case("choose_from_dataops")
def _(b):
    t = skrub.var("t")
    feats = skrub.choose_from({"a": t[["a"]], "ac": t[["a", "c"]]}, name="feats")
    op = skrub.as_data_op(feats).skb.apply(StandardScaler())
    return frame_case(op, b, chooses=RANDOM)


@case("optional")
def _(b):
    X, y = reg_xy()
    pred = X.skb.apply(skrub.optional(StandardScaler(), name="scale")).skb.apply(
        Ridge(), y=y)
    return reg_case(pred, b, chooses=RANDOM)


@case("choose_bool")
def _(b):
    X, y = reg_xy()
    pred = X.skb.apply(Ridge(fit_intercept=skrub.choose_bool(name="fi")), y=y)
    return reg_case(pred, b, chooses=RANDOM)


@case("choose_float_log")
def _(b):
    X, y = reg_xy()
    alpha = skrub.choose_float(0.01, 100.0, log=True, name="alpha")
    return reg_case(X.skb.apply(Ridge(alpha=alpha), y=y), b, chooses=RANDOM)


@case("choose_float_n_steps")
def _(b):
    X, y = reg_xy()
    alpha = skrub.choose_float(0.1, 10.0, n_steps=5, name="alpha")
    return reg_case(X.skb.apply(Ridge(alpha=alpha), y=y), b, chooses=RANDOM)


@case("choose_float_log_n_steps")
def _(b):
    X, y = reg_xy()
    alpha = skrub.choose_float(0.01, 10.0, log=True, n_steps=4, name="alpha")
    return reg_case(X.skb.apply(Ridge(alpha=alpha), y=y), b, chooses=RANDOM)


@case("choose_int")
def _(b):
    X, y = reg_xy()
    deg = skrub.choose_int(1, 3, name="degree")
    pred = X.skb.apply(PolynomialFeatures(degree=deg)).skb.apply(Ridge(), y=y)
    return reg_case(pred, b, chooses=RANDOM)


@case("choose_int_log_n_steps")
def _(b):
    X, y = reg_xy()
    k = skrub.choose_int(1, 3, log=True, n_steps=3, name="k")
    pred = X.skb.apply(SelectKBest(f_regression, k=k), y=y).skb.apply(Ridge(), y=y)
    return reg_case(pred, b, chooses=RANDOM)


@case("choice_match")
def _(b):
    X, y = reg_xy()
    kind = skrub.choose_from(["linear", "poly"], name="kind")
    est = kind.match(
        {"linear": Ridge(), "poly": make_pipeline(PolynomialFeatures(2), Ridge())}
    )
    return reg_case(X.skb.apply(est, y=y), b, chooses=RANDOM)


@case("choice_match_dataops")
def _(b):
    t = skrub.var("t")
    kind = skrub.choose_from(["a", "c"], name="col")
    op = kind.match({"a": t["a"], "c": t["c"] * 2}).as_data_op() + 1
    return frame_case(op, b, chooses=RANDOM)


@case("nested_choices")
def _(b):
    X, y = reg_xy()
    model = skrub.choose_from(
        {
            "ridge": Ridge(alpha=skrub.choose_float(0.1, 10.0, log=True, name="ra")),
            "lasso": Lasso(alpha=skrub.choose_float(0.001, 0.1, log=True, name="la")),
        },
        name="model",
    )
    return reg_case(X.skb.apply(model, y=y), b, chooses=RANDOM)


@case("choice_in_estimator_param_classifier")
def _(b):
    X, y = clf_xy()
    est = LogisticRegression(C=skrub.choose_float(0.01, 10.0, log=True, name="C"))
    return clf_case(X.skb.apply(est, y=y), b, chooses=RANDOM)


@case("choice_in_pipeline_step_param")
def _(b):
    X, y = reg_xy()
    est = make_pipeline(
        StandardScaler(), Ridge(alpha=skrub.choose_float(0.1, 10.0, name="alpha"))
    )
    return reg_case(X.skb.apply(est, y=y), b, chooses=RANDOM)


@case("choice_as_pipeline_step")
def _(b):
    X, y = reg_xy()
    est = Pipeline(
        [
            ("scale", skrub.choose_from([StandardScaler(), MinMaxScaler()], name="s")),
            ("ridge", Ridge()),
        ]
    )
    return reg_case(X.skb.apply(est, y=y), b, chooses=RANDOM)


def _scale_frame(df, factor=1.0, shift=0.0):
    return df * factor + shift


@case("choice_in_apply_func_kwargs")
def _(b):
    X, y = reg_xy()
    scaled = X.skb.apply_func(
        _scale_frame, factor=skrub.choose_float(0.5, 2.0, name="factor"),
        shift=skrub.choose_from([0.0, 1.0], name="shift"),
    )
    return reg_case(scaled.skb.apply(Ridge(), y=y), b, chooses=RANDOM)


@case("choice_in_deferred_kwargs")
def _(b):
    X, y = reg_xy()
    scaled = skrub.deferred(_scale_frame)(
        X, factor=skrub.choose_int(1, 4, name="factor")
    )
    return reg_case(scaled.skb.apply(Ridge(), y=y), b, chooses=RANDOM)


@case("choice_env_override")
def _(b):
    t = skrub.var("t")
    op = t["a"] * skrub.choose_int(1, 5, name="mult")
    c = frame_case(op, b, chooses=RANDOM)
    c.extra_envs = [{"mult": 10}]
    return c


# --------------------------------------------------------------------------
# the differential tests

CASE_NAMES = sorted(CASES)
LEARNER_CASE_NAMES = sorted(
    name for name in CASES if CASES[name]("pandas").learn is not None
)


def build(name, backend) -> Case:
    return CASES[name](backend)


def _eval_env(c, extra=None):
    if c.env is None:
        return None
    return {**c.env, **(extra or {})}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_evaluate_matches_skrub(name, backend):
    c = build(name, backend)
    for extra in [None, *c.extra_envs]:
        env = _eval_env(c, extra)
        ours = stratumlite.evaluate(c.op, None if env is None else dict(env))
        theirs = c.op.skb.eval(None if env is None else dict(env))
        assert_same_value(ours, theirs)


SEPARATE_GRAPH_CASES = sorted(
    name for name in CASE_NAMES
    if name.startswith(("apply", "choice", "choose", "freeze", "concat", "subsample"))
)


@pytest.mark.parametrize("name", SEPARATE_GRAPH_CASES)
def test_evaluate_on_separate_identical_graph(name, backend):
    # stratumlite on one graph, skrub on another built identically: a result
    # that skrub would compute only because of state left on the graph by a
    # previous evaluation cannot leak into the comparison.
    ours_graph, theirs_graph = build(name, backend), build(name, backend)
    env = _eval_env(ours_graph)
    ours = stratumlite.evaluate(ours_graph.op, env)
    theirs = theirs_graph.op.skb.eval(_eval_env(theirs_graph))
    assert_same_value(ours, theirs)


@pytest.mark.parametrize("name", LEARNER_CASE_NAMES)
def test_learner_matches_skrub(name, backend):
    c = build(name, backend)
    learn = c.learn
    for choose in learn.chooses:
        ours = stratumlite.make_learner(c.op, choose=choose)
        theirs = c.op.skb.make_learner(choose=choose)
        if "fit_transform" in learn.methods:
            a = ours.fit_transform(dict(learn.fit_env))
            b = theirs.fit_transform(dict(learn.fit_env))
            assert_same_value(a, b, path=f"fit_transform[{choose}]")
        else:
            assert ours.fit(dict(learn.fit_env)) is ours
            theirs.fit(dict(learn.fit_env))
        for method in learn.methods:
            if method == "fit_transform":
                continue
            a = getattr(ours, method)(dict(learn.predict_env))
            b = getattr(theirs, method)(dict(learn.predict_env))
            assert_same_value(a, b, path=f"{method}[{choose}]")


def test_random_choose_reaches_non_default_outcomes():
    # guard for the "random(seed)" parametrization: over the seeds used, the
    # choice takes both outcomes (otherwise the learner tests would only
    # exercise defaults).
    X, y = reg_xy()
    model = skrub.choose_from({"ridge": Ridge(), "lasso": Lasso(alpha=0.5)}, name="m")
    pred = X.skb.apply(model, y=y)
    train, test = reg("pandas")
    predictions = set()
    for choose in RANDOM:
        learner = stratumlite.make_learner(pred, choose=choose).fit({"data": train})
        predictions.add(tuple(np.round(learner.predict({"data": test}), 6)))
    assert len(predictions) == 2


def test_fitted_learner_keep_subsampling(backend):
    train, test = reg(backend)

    def graph():
        data = skrub.var("data", train).skb.subsample(n=7)
        X = data[FEATURES].skb.mark_as_X()
        y = data["target"].skb.mark_as_y()
        return X.skb.apply(Ridge(), y=y)

    results = {}
    for keep in (False, True):
        ours = stratumlite.make_learner(graph(), fitted=True, keep_subsampling=keep)
        theirs = graph().skb.make_learner(fitted=True, keep_subsampling=keep)
        results[keep] = ours.predict({"data": test})
        assert_same_value(results[keep], theirs.predict({"data": test}))
        assert_same_value(ours.score({"data": test}), theirs.score({"data": test}))
    # fitting on 7 rows instead of 30 changes the model
    assert not np.allclose(np.asarray(results[False]), np.asarray(results[True]))


def test_fitted_learner_on_variable_values(backend):
    train, test = reg(backend)
    data = skrub.var("data", train)
    pred = data[FEATURES].skb.mark_as_X().skb.apply(
        Ridge(), y=data["target"].skb.mark_as_y())
    ours = stratumlite.make_learner(pred, fitted=True)
    theirs = pred.skb.make_learner(fitted=True)
    assert_same_value(ours.predict({"data": test}), theirs.predict({"data": test}))


def test_learner_classes(backend):
    c = build("apply_classifier_y", backend)
    learner = stratumlite.make_learner(c.op).fit(c.learn.fit_env)
    theirs = c.op.skb.make_learner().fit(c.learn.fit_env)
    assert_same_value(learner.classes_, theirs.classes_)


# --------------------------------------------------------------------------
# the user's DataOp is never modified


def _walk_user_graph(op):
    """Every skrub node impl and every estimator/choice reachable from ``op``."""
    from skrub._data_ops import _choosing
    from skrub._data_ops._data_ops import DataOp
    from skrub._data_ops._evaluation import nodes

    impls, others = [], []
    seen = set()

    def visit(value):
        if id(value) in seen:
            return
        if isinstance(value, DataOp):
            return  # listed by nodes()
        if isinstance(value, (list, tuple, set, frozenset)):
            for v in value:
                visit(v)
            return
        if isinstance(value, dict):
            for v in value.values():
                visit(v)
            return
        if isinstance(value, (BaseEstimator, _choosing.BaseChoice, _choosing.Match)):
            seen.add(id(value))
            others.append(value)
            children = (
                value.get_params(deep=False).values()
                if isinstance(value, BaseEstimator)
                else vars(value).values()
            )
            for v in children:
                visit(v)

    for node in nodes(op):
        impl = node._skrub_impl
        impls.append(impl)
        for f in impl._fields:
            visit(getattr(impl, f))
    return impls, others


def _snapshot(op):
    impls, others = _walk_user_graph(op)
    snap = []
    for impl in impls:
        state = {k: v for k, v in vars(impl).items()
                 if k not in ("results", "errors", "metadata")}
        snap.append((
            impl,
            {k: id(v) for k, v in state.items()},
            {k: id(v) for k, v in impl.results.items()},
            dict(impl.errors),
        ))
    for obj in others:
        snap.append((obj, {k: id(v) for k, v in vars(obj).items()}, None, None))
    return snap


def _assert_unchanged(op, before):
    after = _snapshot(op)
    assert len(after) == len(before)
    for (obj, attrs, results, errors), (obj2, attrs2, results2, errors2) in zip(
        before, after
    ):
        assert obj is obj2
        added = set(attrs2) - set(attrs)
        assert not added, f"stratumlite set {sorted(added)} on the user's {obj!r}"
        assert attrs == attrs2, f"stratumlite modified the user's {obj!r}"
        assert results == results2, f"stratumlite stored results on the user's {obj!r}"
        assert errors == errors2


UNMODIFIED_CASES = [
    "apply_cols_list",
    "apply_classifier_y",
    "apply_transformer_then_regressor",
    "apply_unsupervised",
    "freeze_after_fit",
    "concat_axis1",
    "applied_estimator_transformer",
    "choose_from_list",
    "nested_choices",
    "choice_as_pipeline_step",
    "choice_in_apply_func_kwargs",
    "subsample_eval",
    "deferred_closure_over_dataop",
]


@pytest.mark.parametrize("name", UNMODIFIED_CASES)
def test_user_dataop_is_never_modified(name, backend):
    c = build(name, backend)
    before = _snapshot(c.op)
    env = _eval_env(c)
    stratumlite.evaluate(c.op, env)
    stratumlite.explain(c.op)
    to_plan(c.op)
    _assert_unchanged(c.op, before)
    learn = c.learn
    for choose in learn.chooses[:2]:
        learner = stratumlite.make_learner(c.op, choose=choose)
        learner.fit(learn.fit_env)
        for method in learn.methods:
            if method != "fit_transform":
                getattr(learner, method)(learn.predict_env)
        _assert_unchanged(c.op, before)
    # and the user's estimators are still unfitted: skrub gives the same
    # result on the same graph afterwards
    theirs = c.op.skb.make_learner()
    method = [m for m in learn.methods if m != "fit_transform"][0]
    theirs.fit(learn.fit_env)
    ours = stratumlite.make_learner(c.op).fit(learn.fit_env)
    assert_same_value(getattr(ours, method)(learn.predict_env),
                      getattr(theirs, method)(learn.predict_env))


def test_estimator_passed_by_user_is_not_fitted(backend):
    ridge = Ridge()
    X, y = reg_xy()
    pred = X.skb.apply(ridge, y=y)
    train, test = reg(backend)
    stratumlite.evaluate(pred, {"data": train})
    stratumlite.make_learner(pred).fit({"data": train}).predict({"data": test})
    assert not hasattr(ridge, "coef_")
    assert not hasattr(ridge, "n_features_in_")


# --------------------------------------------------------------------------
# pickling


PICKLE_CASES = [
    "apply_func_lambda",
    "call_method_assign",
    "apply_transformer_then_regressor",
    "apply_classifier_y",
    "freeze_after_fit",
    "choice_in_apply_func_kwargs",
    "deferred_closure_over_dataop",
    "concat_axis1",
]


@pytest.mark.parametrize("name", PICKLE_CASES)
def test_learner_pickle_roundtrip(name, backend):
    c = build(name, backend)
    learn = c.learn
    learner = stratumlite.make_learner(c.op, choose=learn.chooses[-1])
    learner.fit(learn.fit_env)
    restored = pickle.loads(pickle.dumps(learner))
    assert isinstance(restored, stratumlite.Learner)
    for method in learn.methods:
        if method == "fit_transform":
            method = "transform"
        assert_same_value(getattr(restored, method)(learn.predict_env),
                          getattr(learner, method)(learn.predict_env))
    # an unfitted learner pickles too, and can be fitted after unpickling
    fresh = pickle.loads(pickle.dumps(stratumlite.make_learner(c.op)))
    fresh.fit(learn.fit_env)


def test_learner_with_lambda_pickles_with_plain_pickle(backend):
    factor = 3.0
    X, y = reg_xy()
    pred = X.skb.apply_func(lambda d: d * factor).skb.apply(Ridge(), y=y)
    train, test = reg(backend)
    learner = stratumlite.make_learner(pred).fit({"data": train})
    blob = pickle.dumps(learner)
    restored = pickle.loads(blob)
    assert_same_value(restored.predict({"data": test}), learner.predict({"data": test}))
    theirs = pred.skb.make_learner().fit({"data": train})
    assert_same_value(restored.predict({"data": test}), theirs.predict({"data": test}))


def test_learner_deepcopy(backend):
    c = build("apply_transformer_then_regressor", backend)
    learner = stratumlite.make_learner(c.op).fit(c.learn.fit_env)
    clone = copy.deepcopy(learner)
    assert_same_value(clone.predict(c.learn.predict_env),
                      learner.predict(c.learn.predict_env))


# --------------------------------------------------------------------------
# explain


def _explain_graph():
    t = skrub.var("t")
    shared = t["a"] * 2
    scaler = skrub.choose_from([StandardScaler(), MinMaxScaler()], name="scaler")
    out = (shared + shared.abs()).to_frame().skb.apply(scaler)
    alpha = skrub.choose_float(0.1, 10.0, log=True, name="alpha")
    return out.skb.apply(Ridge(alpha=alpha), y=t["c"]), t


def test_explain_text_structure():
    op, _ = _explain_graph()
    text = stratumlite.explain(op)
    assert isinstance(text, str)
    lines = text.splitlines()
    header = lines[0]
    assert header.startswith("PLAN (as written): ")
    n_nodes = int(header.split(": ")[1].split(" nodes")[0])
    assert n_nodes == len(to_plan(op).nodes())
    assert "2 choices" in header
    assert "1 source" in header
    # nodes are numbered, shared nodes are marked
    assert any(line.lstrip("│├└─ ").startswith("#") for line in lines[1:])
    assert "shared x" in text
    assert "(shared, see above)" in text
    # the choices are listed with their names and outcomes
    assert "choices:" in lines
    choice_lines = lines[lines.index("choices:") + 1:]
    assert any("'scaler'" in line and "StandardScaler" in line
               and "MinMaxScaler" in line for line in choice_lines)
    assert any("'alpha'" in line for line in choice_lines)
    assert "sources:" in lines
    assert any("Var 't'" in line or "Var t" in line for line in lines)


def test_explain_json_structure():
    op, _ = _explain_graph()
    data = stratumlite.explain(op, format="json")
    json.dumps(data, default=str)  # plain data
    plan = to_plan(op)
    assert data["n_nodes"] == len(plan.nodes()) == len(data["nodes"])
    ids = [n["id"] for n in data["nodes"]]
    assert ids == list(range(len(ids)))
    for entry in data["nodes"]:
        assert {"id", "kind", "label", "key", "inputs", "consumers"} <= set(entry)
        assert len(entry["key"]) == 32
        # inputs first: numbered in execution order
        assert all(i < entry["id"] for i in entry["inputs"])
    keys = {n.key for n in plan.nodes()}
    assert {n["key"] for n in data["nodes"]} == keys
    shared = [n for n in data["nodes"] if n["consumers"] > 1]
    assert shared, "the multiplication feeds two consumers"
    assert data["outputs"] == [len(ids) - 1]
    names = sorted(c["name"] for c in data["choices"])
    assert names == ["alpha", "scaler"]
    scaler = next(c for c in data["choices"] if c["name"] == "scaler")
    assert scaler["outcomes"] == ["StandardScaler", "MinMaxScaler"] or len(
        scaler["outcomes"]) == 2
    sources = [n for n in data["nodes"] if "source" in n]
    assert len(sources) == 1 and sources[0]["source"]["variable"] == "t"


def test_explain_numbers_match_text_and_json():
    op, _ = _explain_graph()
    text = stratumlite.explain(op)
    data = stratumlite.explain(op, format="json")
    for entry in data["nodes"]:
        assert f"#{entry['id']} " in text
        assert entry["key"][:8] in text


def test_explain_rejects_unknown_format():
    with pytest.raises(ValueError):
        stratumlite.explain(skrub.var("x") + 1, format="yaml")


# --------------------------------------------------------------------------
# errors


def test_missing_variable_names_the_variable():
    op = skrub.var("x") + skrub.var("zz_missing")
    with pytest.raises(stratumlite.MissingVariableError) as info:
        stratumlite.evaluate(op, {"x": 1})
    err = info.value
    assert isinstance(err, KeyError)
    assert isinstance(err, stratumlite.StratumliteError)
    assert "zz_missing" in str(err)
    assert err.name == "zz_missing"
    # skrub agrees that it is missing
    with pytest.raises(KeyError):
        op.skb.eval({"x": 1})


def test_missing_variable_in_learner(backend):
    X, y = reg_xy()
    extra = skrub.var("extra_var")
    pred = (X * extra).skb.apply(Ridge(), y=y)
    train, _ = reg(backend)
    with pytest.raises(stratumlite.MissingVariableError, match="extra_var") as info:
        stratumlite.make_learner(pred).fit({"data": train})
    assert isinstance(info.value, KeyError)


def test_variable_values_ignored_when_environment_binds_a_variable():
    # skrub's rule: once the environment binds one variable, the values the
    # other variables were created with are not used
    op = skrub.var("t", 5) * skrub.var("k")
    with pytest.raises(stratumlite.MissingVariableError, match="'t'"):
        stratumlite.evaluate(op, {"k": 2})
    with pytest.raises(KeyError):
        op.skb.eval({"k": 2})


def _failing(x):
    raise ValueError("boom: user function failed")


def test_failing_function_raises_evaluation_error():
    t = skrub.var("t")
    op = skrub.deferred(_failing)(t["a"]) + 1
    with pytest.raises(stratumlite.EvaluationError) as info:
        stratumlite.evaluate(op, {"t": mixed("pandas")})
    err = info.value
    assert isinstance(err, stratumlite.StratumliteError)
    assert "_failing" in str(err)  # names the node
    assert isinstance(err.__cause__, ValueError)
    assert str(err.__cause__) == "boom: user function failed"
    assert err.original is err.__cause__
    assert "_failing" in err.node


def test_failing_estimator_raises_evaluation_error(backend):
    X, y = reg_xy()
    pred = X.skb.apply(Ridge(), y=y).skb.set_name("my_ridge")
    train, _ = reg("pandas")
    train = train.copy()
    train.loc[3, "x1"] = np.nan
    train = to_backend(train, backend)
    with pytest.raises(stratumlite.EvaluationError) as info:
        stratumlite.make_learner(pred).fit({"data": train})
    err = info.value
    assert "Ridge" in str(err)
    assert "my_ridge" in str(err)
    assert isinstance(err.__cause__, ValueError)
    # skrub fails the same way
    with pytest.raises(ValueError):
        pred.skb.make_learner().fit({"data": train})


def test_failing_method_call_raises_evaluation_error():
    t = skrub.var("t")
    op = t.no_such_method_xyz()
    with pytest.raises(stratumlite.EvaluationError, match="no_such_method_xyz") as info:
        stratumlite.evaluate(op, {"t": mixed("pandas")})
    assert isinstance(info.value.__cause__, AttributeError)


@pytest.mark.parametrize("method", ["predict", "score", "transform"])
def test_predict_before_fit_raises_not_fitted(method, backend):
    X, y = reg_xy()
    learner = stratumlite.make_learner(X.skb.apply(Ridge(), y=y))
    _, test = reg(backend)
    with pytest.raises(stratumlite.NotFittedError):
        getattr(learner, method)({"data": test})


def test_not_fitted_error_is_attribute_error():
    learner = stratumlite.make_learner(skrub.var("x") * 2)
    with pytest.raises(AttributeError):
        learner.transform({"x": 1})


def test_unsupported_method_raises_attribute_error():
    learner = stratumlite.make_learner(skrub.var("x") * 2)
    learner.fit({"x": 1})
    with pytest.raises(AttributeError):
        learner.predict_proba({"x": 1})


def test_environment_must_be_a_dict():
    with pytest.raises(TypeError):
        stratumlite.evaluate(skrub.var("x"), [("x", 1)])


# --------------------------------------------------------------------------
# the comparison helper is strict (otherwise the tests above prove little)


@pytest.mark.parametrize(
    "a, b",
    [
        (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [1.0, 2.0]})),  # dtype
        (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"b": [1, 2]})),  # name
        (pd.DataFrame({"a": [1, 2]}), pl.DataFrame({"a": [1, 2]})),  # library
        (pl.DataFrame({"a": [1, 2]}), pl.DataFrame({"a": [1, 3]})),  # value
        (pl.Series("a", [1.0]), pl.Series("a", [1.0], dtype=pl.Float32)),
        (pd.Series([1.0], name="a"), pd.Series([1.0], name="b")),
        (np.array([1.0, 2.0]), np.array([1.0, 2.5])),
        (np.array([1, 2]), np.array([1.0, 2.0])),
        (np.array([1.0, 2.0]), [1.0, 2.0]),
        ((1, 2), [1, 2]),
        ({"a": 1}, {"a": 1, "b": 2}),
        (1, 1.0),
        (0.1, 0.2),
        (Ridge(alpha=1.0), Ridge(alpha=2.0)),
    ],
)
def test_assert_same_value_detects_differences(a, b):
    with pytest.raises(AssertionError):
        assert_same_value(a, b)


def test_assert_same_value_accepts_equal_values():
    import scipy.sparse

    assert_same_value(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0]}))
    assert_same_value(pl.DataFrame({"a": [None, 1.0]}), pl.DataFrame({"a": [None, 1.0]}))
    assert_same_value(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    assert_same_value(scipy.sparse.csr_matrix(np.eye(2)), scipy.sparse.csr_matrix(np.eye(2)))
    assert_same_value({"x": [1, (2.0, "s")]}, {"x": [1, (2.0, "s")]})
    assert_same_value(float("nan"), float("nan"))
    assert_same_value(np.float64(1.0), np.float64(1.0))
