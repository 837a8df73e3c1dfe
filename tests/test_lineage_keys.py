"""Properties of lineage keys (``to_plan(op).output.key``).

A key must change whenever the computation may change (argument order,
parameter values, function code, closure and global values, data, variable
names) and must stay the same when it cannot (parallelism/logging parameters,
equal estimators, re-created identical functions, identical graphs built
twice). Objects that cannot be canonicalized get a unique key: never shared.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import skrub
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stratumlite import plan as plan_module
from stratumlite.frontend import to_plan
from stratumlite.plan import Const, Node, lineage_key


def key(op) -> str:
    return to_plan(op).output.key


def frame():
    return pd.DataFrame(
        {"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0], "z": [7.0, 8.0, 9.0],
         "t1": [0.5, 0.1, 0.2], "t2": [1.0, 0.0, 1.0]}
    )


def _g(a, b):
    return a - b


def _h(df, a=0, b=0):
    return df * 2 + a - b


# --------------------------------------------------------------------------
# keys that must differ


def test_key_format():
    k = key(skrub.var("x") + 1)
    assert isinstance(k, str) and len(k) == 32
    int(k, 16)


def test_argument_order_matters():
    x, z = skrub.var("x"), skrub.var("z")
    assert key(skrub.deferred(_g)(x, z)) != key(skrub.deferred(_g)(z, x))
    assert key(x - z) != key(z - x)
    assert key(x.skb.concat([z], axis=0)) != key(z.skb.concat([x], axis=0))


def test_apply_func_kwarg_value_matters():
    t = skrub.var("t")
    assert key(t.skb.apply_func(_h, a=1)) != key(t.skb.apply_func(_h, a=2))
    assert key(t.skb.apply_func(_h, a=1)) == key(t.skb.apply_func(_h, a=1))


def test_kwargs_vs_positional_of_different_params():
    t = skrub.var("t")
    positional = key(skrub.deferred(_h)(t, 1))  # a=1
    keyword_b = key(skrub.deferred(_h)(t, b=1))  # b=1
    keyword_a = key(skrub.deferred(_h)(t, a=1))
    assert positional != keyword_b
    assert keyword_a != keyword_b


def test_column_list_order_matters():
    df = skrub.var("df")
    assert key(df[["x", "y"]]) != key(df[["y", "x"]])


def test_apply_differing_only_in_y():
    data = skrub.var("data")
    X = data[["x", "y"]]
    assert key(X.skb.apply(Ridge(), y=data["t1"])) != key(
        X.skb.apply(Ridge(), y=data["t2"]))


def test_cols_order_matters():
    t = skrub.var("t")
    assert key(t.skb.apply(StandardScaler(), cols=["x", "y"])) != key(
        t.skb.apply(StandardScaler(), cols=["y", "x"]))


def test_apply_parameters_matter():
    t = skrub.var("t")
    base = key(t.skb.apply(StandardScaler()))
    assert base != key(t.skb.apply(StandardScaler(with_mean=False)))
    assert base != key(t.skb.apply(StandardScaler(), exclude_cols=["x"]))
    assert base != key(t.skb.apply(StandardScaler(), allow_reject=True))
    assert base != key(t.skb.apply(StandardScaler(), no_wrap=True))
    assert key(t.skb.apply(Ridge(), y=t["x"])) != key(
        t.skb.apply(Ridge(), y=t["x"], unsupervised=True))


def test_nested_estimator_params_matter():
    t = skrub.var("t")
    one = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    two = make_pipeline(StandardScaler(), Ridge(alpha=2.0))
    assert key(t.skb.apply(one, y=t["x"])) != key(t.skb.apply(two, y=t["x"]))
    no_mean = make_pipeline(StandardScaler(with_mean=False), Ridge(alpha=1.0))
    assert key(t.skb.apply(one, y=t["x"])) != key(t.skb.apply(no_mean, y=t["x"]))


def _exec_function(source, namespace=None):
    namespace = {} if namespace is None else namespace
    exec(source, namespace)
    return namespace["transform"]


def test_function_source_change():
    f1 = _exec_function("def transform(x):\n    return x + 1\n")
    f2 = _exec_function("def transform(x):\n    return x + 2\n")
    assert f1.__name__ == f2.__name__ and f1.__qualname__ == f2.__qualname__
    t = skrub.var("t")
    assert key(t.skb.apply_func(f1)) != key(t.skb.apply_func(f2))
    assert key(skrub.deferred(f1)(t)) != key(skrub.deferred(f2)(t))
    f3 = _exec_function("def transform(x):\n    return x - 1\n")
    assert key(t.skb.apply_func(f1)) != key(t.skb.apply_func(f3))


def _make_adder(value):
    def add(x):
        return x + value

    return add


def test_closure_value_change():
    t = skrub.var("t")
    assert key(t.skb.apply_func(_make_adder(1))) != key(t.skb.apply_func(_make_adder(2)))
    assert key(t.skb.apply_func(_make_adder(1))) == key(t.skb.apply_func(_make_adder(1)))


def test_closure_over_dataop_value_change():
    t = skrub.var("t")
    k1 = key(t.skb.apply_func(_make_adder(skrub.var("a"))))
    k2 = key(t.skb.apply_func(_make_adder(skrub.var("b"))))
    k3 = key(t.skb.apply_func(_make_adder(skrub.var("a"))))
    assert k1 != k2
    assert k1 == k3


SCALE = 2


def _times_global(x):
    return x * SCALE


def test_referenced_global_change(monkeypatch):
    t = skrub.var("t")
    before = key(t.skb.apply_func(_times_global))
    assert before == key(t.skb.apply_func(_times_global))
    monkeypatch.setattr(__import__(__name__), "SCALE", 3)
    assert _times_global(1) == 3
    assert key(t.skb.apply_func(_times_global)) != before


def test_referenced_global_change_exec_namespace():
    source = "def transform(x):\n    return x * FACTOR\n"
    f1 = _exec_function(source, {"FACTOR": 1})
    f2 = _exec_function(source, {"FACTOR": 2})
    t = skrub.var("t")
    assert key(t.skb.apply_func(f1)) != key(t.skb.apply_func(f2))


def test_default_argument_change():
    def make(default):
        def f(x, k=default):
            return x * k

        return f

    t = skrub.var("t")
    assert key(t.skb.apply_func(make(1))) != key(t.skb.apply_func(make(2)))


def test_different_data_in_value():
    df1 = frame()
    df2 = frame()
    df2.loc[1, "y"] = 5.5
    assert key(skrub.as_data_op(df1)) != key(skrub.as_data_op(df2))
    assert key(skrub.as_data_op(df1)["x"] + 1) != key(skrub.as_data_op(df2)["x"] + 1)


def test_different_data_in_numpy_value():
    a = np.arange(10.0)
    b = a.copy()
    b[-1] = -1.0
    assert key(skrub.as_data_op(a)) != key(skrub.as_data_op(b))


def test_different_data_in_var_value():
    df1, df2 = frame(), frame()
    df2.loc[0, "x"] = -1.0
    assert key(skrub.var("t", df1)) != key(skrub.var("t", df2))


def test_different_var_names():
    assert key(skrub.var("a")) != key(skrub.var("b"))
    assert key(skrub.var("a") + 1) != key(skrub.var("b") + 1)


def test_different_node_names():
    t = skrub.var("t")
    assert key((t + 1).skb.set_name("p")) != key((t + 1).skb.set_name("q"))


def test_different_operators():
    t = skrub.var("t")
    assert key(t + 1) != key(t - 1)
    assert key(t + 1) != key(t + 1.0)
    assert key(-t) != key(abs(t))


def test_different_choices():
    t = skrub.var("t")
    a = skrub.choose_from([1, 2], name="c")
    b = skrub.choose_from([1, 3], name="c")
    assert key(t * a) != key(t * b)
    c = skrub.choose_float(0.1, 1.0, name="c")
    d = skrub.choose_float(0.1, 2.0, name="c")
    assert key(t * c) != key(t * d)


def test_estimators_with_different_params():
    t = skrub.var("t")
    assert key(t.skb.apply(Ridge(alpha=1.0), y=t["x"])) != key(
        t.skb.apply(Ridge(alpha=1.5), y=t["x"]))
    assert key(t.skb.apply(Ridge(), y=t["x"])) != key(
        t.skb.apply(LogisticRegression(), y=t["x"]))


# --------------------------------------------------------------------------
# keys that must agree


def test_n_jobs_and_verbose_do_not_matter():
    t = skrub.var("t")
    a = t.skb.apply(LogisticRegression(n_jobs=1), y=t["x"])
    b = t.skb.apply(LogisticRegression(n_jobs=4, verbose=3), y=t["x"])
    assert key(a) == key(b)
    rf1 = make_pipeline(StandardScaler(), RandomForestRegressor(n_jobs=None, verbose=0))
    rf2 = make_pipeline(StandardScaler(), RandomForestRegressor(n_jobs=-1, verbose=2))
    assert key(t.skb.apply(rf1, y=t["x"])) == key(t.skb.apply(rf2, y=t["x"]))


def test_equal_estimators_distinct_objects():
    t = skrub.var("t")
    r1, r2 = Ridge(alpha=0.5), Ridge(alpha=0.5)
    assert r1 is not r2
    assert key(t.skb.apply(r1, y=t["x"])) == key(t.skb.apply(r2, y=t["x"]))


def test_recreated_identical_lambda():
    t = skrub.var("t")
    keys = []
    for _ in range(2):
        keys.append(key(t.skb.apply_func(lambda d: d * 2)))  # noqa: B023
    assert keys[0] == keys[1]

    def make():
        return lambda d: d + 1

    assert make() is not make()
    assert key(t.skb.apply_func(make())) == key(t.skb.apply_func(make()))


def test_equal_data_distinct_objects():
    assert key(skrub.as_data_op(frame())) == key(skrub.as_data_op(frame()))
    assert key(skrub.var("t", frame())) == key(skrub.var("t", frame()))


def _build_pipeline(df):
    data = skrub.var("data", df)
    X = data[["x", "y", "z"]].skb.mark_as_X()
    y = data["t1"].skb.mark_as_y()
    X = X.assign(w=X["x"] * X["y"])
    X = X.skb.apply(StandardScaler(), cols=["x", "w"])
    X = X.skb.apply_func(_h, a=2)
    alpha = skrub.choose_float(0.1, 10.0, log=True, name="alpha")
    scaler = skrub.choose_from([StandardScaler(), "passthrough"], name="scaler")
    X = X.skb.apply(scaler)
    shared = X["x"] * 2
    X = X.assign(s=shared + shared)
    return X.skb.apply(Ridge(alpha=alpha), y=y)


def test_identical_graphs_built_twice():
    df = frame()
    p1, p2 = to_plan(_build_pipeline(df)), to_plan(_build_pipeline(df))
    assert p1.output.key == p2.output.key
    assert [n.key for n in p1.nodes()] == [n.key for n in p2.nodes()]


def test_identical_graphs_built_twice_distinct_data_objects():
    assert key(_build_pipeline(frame())) == key(_build_pipeline(frame()))


def test_same_graph_converted_twice():
    op = _build_pipeline(frame())
    assert key(op) == key(op)


def test_shared_subexpression_has_one_key():
    t = skrub.var("t")
    a = t["x"] * 2
    b = t["x"] * 2  # built separately, same computation
    p = to_plan(a + b)
    left, right = p.output.inputs
    assert left.key == right.key
    assert len(p.nodes(dedupe="key")) < len(p.nodes(dedupe="id"))


# --------------------------------------------------------------------------
# objects that cannot be canonicalized


class _HoldsLock:
    def __init__(self):
        self.lock = threading.Lock()
        self.value = 1


def _use_holder(x, holder):
    return x + holder.value


def test_unknown_object_as_value_gets_unique_key():
    def build():
        return skrub.as_data_op(_HoldsLock())

    assert key(build()) != key(build())


def test_unknown_object_as_argument_gets_unique_key():
    def build():
        return skrub.deferred(_use_holder)(skrub.var("x"), _HoldsLock())

    k1, k2 = key(build()), key(build())
    assert k1 != k2
    assert key(skrub.var("x") + 1) == key(skrub.var("x") + 1)


def test_bare_lock_argument_gets_unique_key():
    def build():
        return skrub.deferred(_use_holder)(skrub.var("x"), threading.Lock())

    assert key(build()) != key(build())


def test_unknown_object_does_not_leak_into_unrelated_keys():
    x = skrub.var("x")
    upstream = x * 3
    a = skrub.deferred(_use_holder)(upstream, _HoldsLock())
    b = skrub.deferred(_use_holder)(upstream, _HoldsLock())
    pa, pb = to_plan(a), to_plan(b)
    assert pa.output.key != pb.output.key
    assert pa.output.inputs[0].key == pb.output.inputs[0].key


# --------------------------------------------------------------------------
# lineage_key is the only key function


def test_every_node_key_is_lineage_key_of_its_parts():
    p = to_plan(_build_pipeline(frame()))
    nodes = p.nodes()
    assert len(nodes) > 10
    for n in nodes:
        assert n.key == lineage_key(n.op.kind, n.op.token, [i.key for i in n.inputs])


def test_node_key_is_lineage_key():
    a = Node(Const(1))
    b = Node(Const(2))
    n = Node(Const(3), (a, b))
    assert n.key == lineage_key("const", n.op.token, [a.key, b.key])
    assert a.key == lineage_key(a.op.kind, a.op.token, [])
    assert Node(Const(3), (b, a)).key != n.key


def test_nodes_get_their_key_from_lineage_key(monkeypatch):
    produced = []
    original = plan_module.lineage_key

    def spy(kind, token, input_keys):
        k = original(kind, token, input_keys)
        produced.append(k)
        return k

    monkeypatch.setattr(plan_module, "lineage_key", spy)
    p = to_plan(_build_pipeline(frame()))
    keys = {n.key for n in p.nodes()}
    assert keys <= set(produced)


def test_lineage_key_depends_on_every_part():
    base = lineage_key("k", "t", ["a", "b"])
    assert base != lineage_key("k2", "t", ["a", "b"])
    assert base != lineage_key("k", "t2", ["a", "b"])
    assert base != lineage_key("k", "t", ["b", "a"])
    assert base != lineage_key("k", "t", ["a"])
    assert base != lineage_key("k", "t", ["ab"])
    assert lineage_key("k", "t", ["a", "b"]) == base


@pytest.mark.parametrize(
    "a, b", [(("ab", "c"), ("a", "bc")), (("", "x"), ("x", ""))]
)
def test_lineage_key_fields_are_delimited(a, b):
    assert lineage_key(a[0], a[1], []) != lineage_key(b[0], b[1], [])


def test_a_batch_of_conversions_fingerprints_a_shared_frame_once(monkeypatch):
    """``to_plan(..., fingerprints=)``: pipelines that each wrap the same data frame
    in their own ``skrub.var`` (an agent's batch) fingerprint it once; the keys
    are those of separate conversions, and an equal copy is fingerprinted anew."""
    from stratumlite import canonical

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=50), "y": rng.normal(size=50)})
    seen = []
    real = canonical.fingerprint
    monkeypatch.setattr(canonical, "fingerprint", lambda v: seen.append(v) or real(v))

    def pipeline(frame, alpha):
        data = skrub.var("data", frame)
        X = data[["a"]].skb.mark_as_X()
        return X.skb.apply(Ridge(alpha=alpha), y=data["y"].skb.mark_as_y())

    ops = [pipeline(df, alpha) for alpha in (0.1, 1.0, 10.0)]
    copy_op = pipeline(df.copy(), 1.0)
    cache: dict = {}
    shared = [to_plan(op, fingerprints=cache).output.key for op in [*ops, copy_op]]
    assert sum(v is df for v in seen) == 1
    assert len(seen) == 2  # df once, its copy once
    seen.clear()
    assert shared == [to_plan(op).output.key for op in [*ops, copy_op]]
    assert len(seen) == 4  # without the shared dict: once per conversion
    assert shared[1] == shared[3]  # equal content, equal key
