"""Lineage recording of sessions (LineageHook), diffs of real runs, the registry API,
and a run killed mid-way."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import skrub
from sklearn.linear_model import Ridge

import stratumlite
from stratumlite.canonical import fingerprint
from stratumlite.config import Config
from stratumlite.lineage import LineageStore
from stratumlite.registry_api import (
    fitted_key,
    list_models,
    load_model,
    register,
    set_alias,
)


def _frame(seed: int = 0, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    df["y"] = 2 * df["x"] - df["z"] + rng.normal(scale=0.1, size=n)
    return df


def _make_func(body: str):
    """A function ``double`` (same name, same module) with the given body."""
    namespace = {"__name__": "user_pipeline"}
    exec(f"def double(d):\n    return {body}\n", namespace)
    return namespace["double"]


def _pipeline(df=None, *, alpha=1.0, func=None, name_data=True):
    data = skrub.var("data", df) if df is not None else skrub.var("data")
    X = data[["x", "z"]].skb.mark_as_X()
    y = data["y"].skb.mark_as_y()
    if func is not None:
        X = X.skb.apply_func(func)
    return X.skb.apply(Ridge(alpha=alpha), y=y)


@pytest.fixture
def config(tmp_path):
    return Config(state_dir=tmp_path / "state", lineage=True, executor="sequential")


def _latest_run(config) -> dict:
    with LineageStore(config.lineage_db) as store:
        return store.run(store.runs(limit=1)[0]["id"])


def _fit(pred, config, env=None):
    """Fit on ``env``, or on the variables' values; returns (learner, its run)."""
    if env is None:
        learner = stratumlite.make_learner(pred, fitted=True, config=config)
    else:
        learner = stratumlite.make_learner(pred, config=config).fit(env)
    return learner, _latest_run(config)


# ---------------------------------------------------------------------------------
# what a run records


def test_search_records_every_executed_node(tmp_path):
    config = Config(state_dir=tmp_path, lineage=True, n_workers=2)
    df = _frame()
    data = skrub.var("data", df)
    X = data[["x", "z"]].skb.mark_as_X().skb.apply_func(_make_func("d * 2"))
    y = data["y"].skb.mark_as_y()
    pred = X.skb.apply(Ridge(alpha=skrub.choose_from([0.1, 1.0, 10.0], name="a")), y=y)
    search = stratumlite.make_grid_search(pred, fitted=True, cv=3, config=config,
                                          verbose=0)
    run = _latest_run(config)
    assert run["kind"] == "search" and run["status"] == "finished"
    executed = {r.task.node.key for r in search.records_ if r.status != "failed"}
    assert run["n_nodes"] == len(executed)
    assert run["n_executions"] == len(search.records_)
    with LineageStore(config.lineage_db) as store:
        history = store.history("data")
        assert history and {h["run_id"] for h in history} == {run["id"]}
        assert all(h["rows"] == len(df) and h["cols"] == 3 for h in history)
        assert all(h["duration"] is not None and "@" in h["fold"] for h in history)
        models = [h for h in store.history("Apply Ridge") if h["mode"] == "fit"]
        assert len(models) >= 3 * 3  # every configuration on every fold
        # the search's DataOp is cloned without values, yet the recorded keys
        # pin the data: they are the keys of the script's plan (explain)
        plan_keys = {n.key for n in stratumlite.frontend.to_plan(pred).nodes()}
        assert {h["node_key"] for h in history} <= plan_keys


def test_ancestors_of_the_output_reach_the_source(config):
    df = _frame()
    learner, run = _fit(_pipeline(df, func=_make_func("d * 2")), config, {"data": df})
    assert run["kind"] == "fit" and run["status"] == "finished"
    with LineageStore(config.lineage_db) as store:
        ancestors = store.ancestors(learner.plan.output.key)
        sources = [a for a in ancestors if a["source"] is not None]
        assert [s["source"]["name"] for s in sources] == ["data"]
        src = sources[0]["source"]
        assert src["fingerprint"] == fingerprint(df)
        assert src["rows"] == len(df)
        assert src["schema"] == {"x": "float64", "z": "float64", "y": "float64"}
        calls = [a for a in ancestors if a["kind"] == "Call"]
        assert calls and calls[0]["code_hash"]
        root = store.node(learner.plan.output.key)
        est = root["params"]["fields"]["estimator"]
        assert est["class"].endswith("Ridge") and est["params"]["alpha"] == 1.0


def test_runs_on_new_data_get_keys_pinning_that_data(config):
    pred = _pipeline()  # skrub.var("data") without a value
    _, run_a = _fit(pred, config, {"data": _frame(0)})
    _, run_b = _fit(pred, config, {"data": _frame(1)})
    _, run_c = _fit(pred, config, {"data": _frame(0)})
    with LineageStore(config.lineage_db) as store:
        assert store.diff(run_a["id"], run_c["id"])["summary"]["changed"] == 0
        d = store.diff(run_a["id"], run_b["id"])
    assert d["root_causes"] == ["data"]
    assert d["changed"][0]["reasons"] == ["source data changed"]


# ---------------------------------------------------------------------------------
# diff of two real runs


def _diff(config, run_a, run_b) -> dict:
    with LineageStore(config.lineage_db) as store:
        return store.diff(run_a["id"], run_b["id"])


def _reasons(d: dict) -> dict[str, list[str]]:
    return {c["label"]: c["reasons"] for c in d["changed"]}


def test_diff_parameter_changed(config):
    df = _frame()
    _, a = _fit(_pipeline(df, alpha=1.0), config)
    _, b = _fit(_pipeline(df, alpha=10.0), config)
    d = _diff(config, a, b)
    assert _reasons(d) == {"Apply Ridge": ["parameters changed"]}
    before, after = d["changed"][0]["details"]["parameters"]["changed"]["fields"]
    assert before["estimator"]["params"]["alpha"] == 1.0
    assert after["estimator"]["params"]["alpha"] == 10.0
    assert d["summary"]["unchanged"] >= 3  # the data and the X/y selections


def test_diff_function_body_changed(config):
    df = _frame()
    _, a = _fit(_pipeline(df, func=_make_func("d * 2")), config)
    _, b = _fit(_pipeline(df, func=_make_func("d * 3")), config)
    reasons = _reasons(_diff(config, a, b))
    assert "code changed" in reasons["Call 'double'"]
    assert "parameters changed" not in reasons["Call 'double'"]
    assert reasons["Apply Ridge"] == ["input changed"]


def test_diff_source_data_changed(config):
    _, a = _fit(_pipeline(_frame(0)), config)
    _, b = _fit(_pipeline(_frame(1)), config)
    d = _diff(config, a, b)
    assert d["root_causes"] == ["data"]
    reasons = _reasons(d)
    assert reasons.pop("data") == ["source data changed"]
    assert reasons and all(r == ["input changed"] for r in reasons.values())


# ---------------------------------------------------------------------------------
# registry API


def test_register_load_model_round_trip(config):
    df = _frame()
    learner, run = _fit(_pipeline(df, func=_make_func("d * 2")), config, {"data": df})
    version = register(learner, "ridge", metrics={"rmse": 0.1}, alias="prod",
                       tags={"team": "a"}, config=config)
    assert version == 1
    assert register(learner, "ridge", config=config) == 2
    loaded = load_model("ridge", alias="prod", config=config)
    assert isinstance(loaded, stratumlite.Learner)
    test = _frame(5)
    np.testing.assert_allclose(loaded.predict({"data": test}),
                               learner.predict({"data": test}))
    assert set_alias("ridge", "prod", 2, config=config) == 1
    assert [(m["name"], m["latest_version"], m["aliases"])
            for m in list_models(config=config)] == [("ridge", 2, {"prod": 2})]
    with LineageStore(config.lineage_db) as store:
        from stratumlite.lineage import ModelRegistry

        entry = ModelRegistry(store, config.artifacts_dir).resolve("ridge", version=1)
        assert entry["lineage_key"] == fitted_key(learner)
        assert entry["run_id"] == run["id"]  # the run that fitted it
        tree = store.lineage_tree(entry["lineage_key"])
        assert tree["kind"] == "fitted" and tree["label"] == "ridge"
        assert tree["inputs"][0]["key"] == learner.plan.output.key
        keys = [a["source"]["fingerprint"] for a in store.ancestors(entry["lineage_key"])
                if a["source"]]
        assert keys == [fingerprint(df)]


def test_register_best_learner_of_a_search(tmp_path):
    config = Config(state_dir=tmp_path, lineage=True, executor="sequential")
    df = _frame()
    data = skrub.var("data", df)
    X, y = data[["x", "z"]].skb.mark_as_X(), data["y"].skb.mark_as_y()
    pred = X.skb.apply(Ridge(alpha=skrub.choose_from([0.1, 100.0], name="a")), y=y)
    search = stratumlite.make_grid_search(pred, fitted=True, cv=2, config=config,
                                          verbose=0)
    version = register(search.best_learner_, "best", config=config)
    loaded = load_model("best", version=version, config=config)
    np.testing.assert_allclose(loaded.predict({"data": df}),
                               search.best_learner_.predict({"data": df}))
    with LineageStore(config.lineage_db) as store:
        from stratumlite.lineage import ModelRegistry

        (run,) = store.runs()
        entry = ModelRegistry(store, config.artifacts_dir).resolve("best")
        assert run["kind"] == "search" and entry["run_id"] == run["id"]
        assert entry["lineage_key"] == fitted_key(search.best_learner_)


def test_register_refuses_unfitted_learner(config):
    learner = stratumlite.make_learner(_pipeline(_frame()), config=config)
    with pytest.raises(stratumlite.NotFittedError):
        register(learner, "m", config=config)


def test_lineage_off_records_nothing(tmp_path):
    config = Config(state_dir=tmp_path, lineage=False, executor="sequential")
    stratumlite.make_learner(_pipeline(_frame()), config=config).fit({"data": _frame()})
    assert not config.lineage_db.exists()


# ---------------------------------------------------------------------------------
# a run killed mid-way


_SLOW_SEARCH = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pandas as pd, skrub
    from sklearn.linear_model import Ridge
    import stratumlite
    from stratumlite.config import Config

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=40), "z": rng.normal(size=40)})
    df["y"] = df["x"]

    @skrub.deferred
    def slow(d, i):
        time.sleep(0.3)
        return d

    data = skrub.var("data", df)
    X = slow(data[["x", "z"]].skb.mark_as_X(), skrub.choose_from(list(range(30)), name="i"))
    y = data["y"].skb.mark_as_y()
    pred = X.skb.apply(Ridge(), y=y)
    config = Config(state_dir=sys.argv[1], lineage=True, executor="sequential")
    stratumlite.make_grid_search(pred, fitted=True, cv=3, config=config, verbose=0)
    print("finished")
    """
)


def _count(db, sql) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        conn.close()


def test_killed_run_leaves_store_consistent_and_shows_interrupted(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(_SLOW_SEARCH)
    state = tmp_path / "state"
    db = state / "lineage.db"
    proc = subprocess.Popen([sys.executable, str(script), str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail("the search ended before it was killed: "
                            + proc.stderr.read().decode()[-2000:])
            if db.exists() and _count(db, "SELECT COUNT(*) FROM executions") >= 5:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no execution was recorded in time")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = LineageStore(db)
    try:
        assert store.integrity_check() == "ok"
        (run,) = store.runs()
        assert run["status"] == "interrupted"
        assert run["recorded_status"] == "running"
        detail = store.run(run["id"])
        assert detail["n_executions"] >= 5
        conn = store._conn()
        # every execution belongs to a recorded node of the run; every edge's
        # child is a recorded node
        assert conn.execute(
            "SELECT COUNT(*) FROM executions e LEFT JOIN run_nodes rn ON "
            "rn.run_id = e.run_id AND rn.node_key = e.node_key "
            "WHERE rn.node_key IS NULL").fetchone()[0] == 0
        assert conn.execute(
            "SELECT COUNT(*) FROM edges e LEFT JOIN nodes n ON n.key = e.child "
            "WHERE n.key IS NULL").fetchone()[0] == 0
    finally:
        store.close()

    shown = subprocess.run(
        [sys.executable, "-m", "stratumlite.cli", "--state-dir", str(state), "runs"],
        capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "interrupted" in shown.stdout
