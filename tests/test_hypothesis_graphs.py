"""Hypothesis-generated DataOps graphs: stratumlite must agree with skrub.

A graph starts from a fixed small frame (numeric columns, one with missing
values, plus one string column) and applies a random sequence of steps to
random earlier nodes (so sub-graphs are shared): column selection, ``assign``
of column arithmetic, arithmetic with scalars, ``abs``, ``fillna``, sklearn
transformers through ``.skb.apply`` with random ``cols``, skrub encoders on
the string column, ``apply_func`` with keyword arguments and choices (left at
their defaults). It ends with a Ridge or LogisticRegression predictor fitted
with ``y``.

Checks: ``stratumlite.evaluate`` == ``.skb.eval`` (for the prediction and for
every intermediate frame), and learner ``fit``/``predict`` (+ ``score`` or
``predict_proba``) == skrub's learner on new rows.

The default run draws 50 graphs (derandomized, reproducible); the ``slow``
variant draws 500 with a random seed (``pytest -m slow``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import skrub
from conftest import assert_same_value, to_backend
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures, StandardScaler

import stratumlite

N_TRAIN, N_TEST = 30, 12
NUMERIC = ["n1", "n2", "n3", "n4"]
WORDS = ["red apple", "green apple", "blue sky", "red sky", "green tea", "black tea"]


def _base_frame() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n = N_TRAIN + N_TEST
    n1 = rng.normal(size=n).round(3)
    n2 = rng.uniform(0, 5, size=n).round(3)
    n3 = rng.integers(-3, 4, size=n).astype("float64")
    n4 = rng.normal(loc=2.0, size=n).round(3)
    n4[::5] = np.nan  # missing values in train and test
    target = (1.5 * n1 - 0.5 * n2 + n3 + rng.normal(scale=0.2, size=n)).round(3)
    label = np.where(n1 + 0.3 * n3 > 0, "pos", "neg")
    return pd.DataFrame(
        {
            "n1": n1, "n2": n2, "n3": n3, "n4": n4,
            "s": [WORDS[i % len(WORDS)] for i in range(n)],
            "target": target, "label": label,
        }
    )


_BASE = _base_frame()
_TRAIN = _BASE.iloc[:N_TRAIN].reset_index(drop=True)
_TEST = _BASE.iloc[N_TRAIN:].reset_index(drop=True)


def _affine(df, scale=1.0, shift=0.0):
    return df * scale + shift


# --------------------------------------------------------------------------
# graph builder


class Frame:
    """A pool entry: a DataOp evaluating to a frame, and what we know of it."""

    def __init__(self, op, backend):
        self.op = op
        preview = op.skb.preview()
        if backend == "pandas":
            self.columns = [str(c) for c in preview.columns]
            dtypes = {c: preview[c].dtype for c in preview.columns}
            self.numeric = [c for c in self.columns
                            if pd.api.types.is_numeric_dtype(dtypes[c])]
            self.with_nulls = {c for c in self.numeric if preview[c].isna().any()}
        else:
            self.columns = list(preview.columns)
            self.numeric = [c for c in self.columns if preview[c].dtype.is_numeric()]
            self.with_nulls = {
                c for c in self.numeric
                if preview[c].null_count() > 0 or preview[c].is_nan().any()
            }
        self.has_string = "s" in self.columns


class GraphBuilder:
    def __init__(self, draw, backend, task):
        self.draw = draw
        self.backend = backend
        self.task = task
        self.data = skrub.var("data", to_backend(_TRAIN, backend))
        X = self.data[[*NUMERIC, "s"]].skb.mark_as_X()
        target = "target" if task == "regression" else "label"
        self.y = self.data[target].skb.mark_as_y()
        self.pool = [Frame(X, backend)]
        self.n_new = 0
        self.log = []

    # helpers
    def pick(self, predicate=lambda f: True):
        candidates = [f for f in self.pool if predicate(f)]
        return self.draw(st.sampled_from(candidates))

    def cols(self, frame, max_size=None, no_nulls=False):
        options = [c for c in frame.numeric if not (no_nulls and c in frame.with_nulls)]
        if not options:
            return None
        return self.draw(
            st.lists(st.sampled_from(options), min_size=1, unique=True,
                     max_size=max_size or len(options))
        )

    def new_name(self):
        self.n_new += 1
        return f"f{self.n_new}"

    def add(self, op, text):
        self.log.append(text)
        frame = Frame(op, self.backend)
        self.pool.append(frame)
        return frame

    # steps
    def step(self):
        kind = self.draw(st.sampled_from([
            "select", "assign", "assign_reversed", "assign_shared", "scalar", "abs",
            "fillna",
            "transformer", "string", "apply_func", "choice",
        ]))
        getattr(self, f"step_{kind}")()

    def step_select(self):
        f = self.pick(lambda f: f.numeric)
        cols = self.cols(f)
        if f.has_string and self.draw(st.booleans()):
            cols = [*cols, "s"]
        self.add(f.op[cols], f"#{self.pool.index(f)}[{cols}]")

    def _arith(self, a, b):
        op = self.draw(st.sampled_from(["+", "-", "*"]))
        return {"+": a + b, "-": a - b, "*": a * b}[op], op

    def _assign(self, target, column, text):
        name = self.new_name()
        if self.backend == "pandas":
            op = target.op.assign(**{name: column})
        else:
            op = target.op.with_columns(column.alias(name))
        self.add(op, f"#{self.pool.index(target)}.assign({name}={text})")

    def step_assign(self):
        f = self.pick(lambda f: f.numeric)
        c1, c2 = (self.draw(st.sampled_from(f.numeric)) for _ in range(2))
        column, op = self._arith(f.op[c1], f.op[c2])
        self._assign(f, column, f"{c1} {op} {c2}")

    def step_assign_reversed(self):
        f = self.pick(lambda f: f.numeric)
        c = self.draw(st.sampled_from(f.numeric))
        k = self.draw(st.sampled_from([1.0, -2.0]))
        op = self.draw(st.sampled_from(["-", "*", "/"]))
        column = {"-": lambda: k - f.op[c], "*": lambda: k * f.op[c],
                  "/": lambda: k / (abs(f.op[c]) + 1.0)}[op]()
        self._assign(f, column, f"{k} {op} {c}")

    def step_assign_shared(self):
        # a column computed from another pool frame with the same rows
        target = self.pick()
        source = self.pick(lambda f: f.numeric)
        c = self.draw(st.sampled_from(source.numeric))
        k = self.draw(st.sampled_from([2.0, -1.0, 0.5]))
        self._assign(target, source.op[c] * k,
                     f"#{self.pool.index(source)}[{c!r}] * {k}")

    def step_scalar(self):
        f = self.pick(lambda f: f.numeric)
        cols = self.cols(f)
        k = self.draw(st.sampled_from([0.5, 2.0, -3.0, 10.0]))
        ops = ["+", "-", "*", "/"]
        if self.backend == "pandas":  # polars frames have no reflected operators
            ops += ["r-", "r*"]
        op = self.draw(st.sampled_from(ops))
        sub = f.op[cols]
        result = {
            "+": lambda: sub + k, "-": lambda: sub - k, "*": lambda: sub * k,
            "/": lambda: sub / k, "r-": lambda: k - sub, "r*": lambda: k * sub,
        }[op]()
        self.add(result, f"#{self.pool.index(f)}[{cols}] {op} {k}")

    def step_abs(self):
        f = self.pick(lambda f: f.numeric)
        cols = self.cols(f)
        sub = f.op[cols]
        op = abs(sub) if self.backend == "pandas" else sub.select(pl.all().abs())
        self.add(op, f"abs(#{self.pool.index(f)}[{cols}])")

    def step_fillna(self):
        f = self.pick(lambda f: f.numeric)
        cols = self.cols(f)
        value = self.draw(st.sampled_from([0.0, -1.0, 2.5]))
        sub = f.op[cols]
        if self.backend == "pandas":
            op = sub.fillna(value)
        else:
            op = sub.fill_null(value).fill_nan(value)
        self.add(op, f"#{self.pool.index(f)}[{cols}].fillna({value})")

    def step_transformer(self):
        f = self.pick(lambda f: f.numeric)
        name = self.draw(st.sampled_from(["standard", "minmax", "poly", "imputer"]))
        if name == "poly":
            cols = self.cols(f, max_size=3, no_nulls=True)
            if cols is None:
                return
            est = PolynomialFeatures(degree=2)
        else:
            est = {"standard": StandardScaler(), "minmax": MinMaxScaler(),
                   "imputer": SimpleImputer()}[name]
            use_selector = self.draw(st.booleans())
            cols = skrub.selectors.numeric() if use_selector else self.cols(f)
        self.add(f.op.skb.apply(est, cols=cols),
                 f"#{self.pool.index(f)}.skb.apply({est!r}, cols={cols!r})")

    def step_string(self):
        f = self.pick(lambda f: f.has_string)
        if self.draw(st.booleans()):
            est = skrub.StringEncoder(n_components=2, random_state=0)
            op = f.op.skb.apply(est, cols=["s"])
        else:
            est = skrub.TableVectorizer()
            op = f.op.skb.apply(est)
        self.add(op, f"#{self.pool.index(f)}.skb.apply({est!r})")

    def step_apply_func(self):
        f = self.pick(lambda f: f.numeric)
        cols = self.cols(f)
        scale = self.draw(st.sampled_from([0.5, 1.0, 3.0]))
        shift = self.draw(st.sampled_from([0.0, -2.0]))
        op = f.op[cols].skb.apply_func(_affine, scale=scale, shift=shift)
        self.add(op, f"#{self.pool.index(f)}[{cols}].skb.apply_func("
                     f"_affine, scale={scale}, shift={shift})")

    def step_choice(self):
        f = self.pick(lambda f: f.numeric)
        cols = self.cols(f)
        name = self.new_name()
        kind = self.draw(st.sampled_from(["choose_from", "optional", "apply_func"]))
        sub = f.op[cols]
        if kind == "choose_from":
            choice = skrub.choose_from([StandardScaler(), MinMaxScaler()], name=name)
            op = sub.skb.apply(choice)
        elif kind == "optional":
            op = sub.skb.apply(skrub.optional(MinMaxScaler(), name=name))
        else:
            factor = skrub.choose_float(0.5, 4.0, log=True, name=name)
            op = sub.skb.apply_func(_affine, scale=factor)
        self.add(op, f"#{self.pool.index(f)}[{cols}] with {kind} {name!r}")

    def finish(self):
        f = self.pick(lambda f: f.numeric)
        X = f.op[f.numeric]
        if f.with_nulls or self.draw(st.booleans()):
            X = X.skb.apply(SimpleImputer())
        if self.task == "regression":
            alpha = skrub.choose_float(0.1, 10.0, log=True, name="alpha")
            pred = X.skb.apply(Ridge(alpha=alpha), y=self.y)
        else:
            pred = X.skb.apply(LogisticRegression(C=0.5), y=self.y)
        self.log.append(f"predict from #{self.pool.index(f)} ({self.task})")
        return pred


@st.composite
def graphs(draw):
    backend = draw(st.sampled_from(["pandas", "polars"]))
    task = draw(st.sampled_from(["regression", "classification"]))
    builder = GraphBuilder(draw, backend, task)
    for _ in range(draw(st.integers(1, 6))):
        builder.step()
    pred = builder.finish()
    frames = [f.op for f in builder.pool]
    return backend, task, pred, frames, builder.log


def _check(graph):
    backend, task, pred, frames, log = graph
    note("\n".join(log))
    train = {"data": to_backend(_TRAIN, backend)}
    test = {"data": to_backend(_TEST, backend)}

    everything = skrub.as_data_op({"pred": pred, "frames": frames})
    ours = stratumlite.evaluate(everything, dict(train))
    theirs = everything.skb.eval(dict(train))
    assert_same_value(ours, theirs)

    learner = stratumlite.make_learner(pred).fit(dict(train))
    reference = pred.skb.make_learner().fit(dict(train))
    methods = ["predict", "score"] if task == "regression" else [
        "predict", "predict_proba"]
    for method in methods:
        assert_same_value(getattr(learner, method)(dict(test)),
                          getattr(reference, method)(dict(test)), path=method)


_COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck),
               print_blob=True)


@settings(max_examples=50, derandomize=True, database=None, **_COMMON)
@given(graphs())
def test_random_graphs_match_skrub(graph):
    _check(graph)


@pytest.mark.slow
@settings(max_examples=500, **_COMMON)
@given(graphs())
def test_random_graphs_match_skrub_many(graph):
    _check(graph)
