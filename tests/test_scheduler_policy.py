"""Scheduling policy: tasks in flight are bounded by the workers, background
(speculative) tasks only take slots nothing else wants, and a search's refit
reuses the preprocessing computed ahead in the background."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pandas as pd
import skrub
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import Ridge

import stratumlite
from stratumlite.frontend import to_plan
from stratumlite.runtime.session import Session

# a log file, not a list: module-level mutable state referenced by a function
# makes it impossible to tokenize (its node would get a unique key)
_LOG = os.path.join(tempfile.gettempdir(), f"stratumlite-sched-{os.getpid()}.log")


def _clear():
    with open(_LOG, "w"):
        pass


def _events():
    with open(_LOG) as f:
        return [line.split() for line in f if line.strip()]


def _slow(tag, seconds, x):
    with open(_LOG, "a") as f:
        f.write(f"start {tag} {time.perf_counter()}\n")
    time.sleep(seconds)
    with open(_LOG, "a") as f:
        f.write(f"end {tag} {time.perf_counter()}\n")
    return x + 1


def _op(tag, seconds):
    return skrub.deferred(_slow)(tag, seconds, skrub.var("x"))


def test_in_flight_tasks_never_exceed_the_workers():
    nodes = [to_plan(_op(f"t{i}", 0.15)).output for i in range(6)]
    config = stratumlite.Config(executor="threads", n_workers=2, verbose=0)
    _clear()
    with Session(config) as s:
        b = s.bind({"x": 1})
        assert s.run([s.request(n, "transform", b) for n in nodes]) == [2] * 6
    running, peak = 0, 0
    for kind, _, _t in sorted(_events(), key=lambda e: float(e[2])):
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_background_tasks_start_after_every_foreground_task():
    fg = [to_plan(_op(f"fg{i}", 0.1)).output for i in range(4)]
    bg = to_plan(_op("bg", 0.05)).output
    config = stratumlite.Config(executor="threads", n_workers=2, verbose=0)
    _clear()
    with Session(config) as s:
        b = s.bind({"x": 1})
        background = [s.request(bg, "transform", b)]
        values = s.run([s.request(n, "transform", b) for n in fg], background=background)
        assert values == [2] * 4
        assert s.values[background[0].key] == 2  # kept for whoever asks next
        # the scheduler's launch times (an operator's own log can lag its launch)
        launched = {r.task.node.key: r.start for r in s.records}
    assert launched[bg.key] >= max(launched[n.key] for n in fg)
    starts = {tag: float(t) for kind, tag, t in _events() if kind == "start"}
    ends = {tag: float(t) for kind, tag, t in _events() if kind == "end"}
    assert starts["bg"] >= min(ends[f"fg{i}"] for i in range(4))  # a slot freed first


class _CountingScaler(TransformerMixin, BaseEstimator):
    """Logs the rows of every fit (to the file above)."""

    def fit(self, X, y=None):
        with open(_LOG, "a") as f:
            f.write(f"fit {len(X)} 0\n")
        self.mean_ = X.mean()
        return self

    def transform(self, X):
        return X - self.mean_


def test_refit_reuses_the_speculative_preprocessing():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=90), "b": rng.normal(size=90)})
    y = 3 * df["a"] + rng.normal(scale=0.1, size=90)
    X = skrub.X(df).skb.apply(_CountingScaler())
    model = Ridge(alpha=skrub.choose_from([0.1, 10.0], name="alpha"))
    op = X.skb.apply(model, y=skrub.y(y))
    _clear()
    search = stratumlite.make_grid_search(op, fitted=True, cv=3, verbose=0,
                                          config=stratumlite.Config(verbose=0))
    rows = sorted(int(e[1]) for e in _events() if e[0] == "fit")
    # one fit per fold (60 rows each) and one on all 90 rows: the refit found
    # the speculative full-data fit instead of fitting the scaler again
    assert rows == [60, 60, 60, 90]
    assert search.stats_["speculative_fits"] == 1
    assert search.stats_["fits_executed"] == 3 + 6  # scaler per fold + ridge per config/fold
    expected = op.skb.make_grid_search(fitted=True, cv=3)
    np.testing.assert_allclose(search.results_["mean_test_score"],
                               expected.results_["mean_test_score"], rtol=1e-12)


def test_warm_search_does_not_load_stored_speculative_inputs(tmp_path):
    """On a warm rerun the refit's inputs are in the persistent cache: loading
    them ahead would only hold memory, so nothing is speculated."""
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"a": rng.normal(size=90), "b": rng.normal(size=90)})
    y = 2 * df["a"] + rng.normal(scale=0.1, size=90)
    X = skrub.X(df).skb.apply(_CountingScaler())
    op = X.skb.apply(Ridge(alpha=skrub.choose_from([0.1, 10.0], name="alpha")),
                     y=skrub.y(y))
    config = stratumlite.Config(verbose=0, cache=True, state_dir=tmp_path)
    cold = stratumlite.make_grid_search(op, fitted=True, cv=3, verbose=0, config=config)
    assert cold.stats_["speculative_tasks"] > 0
    _clear()
    warm = stratumlite.make_grid_search(op, fitted=True, cv=3, verbose=0, config=config)
    assert _events() == []  # nothing fitted again
    assert warm.stats_["speculative_fits"] == 0
    # the scaler's stored full-data output (90 rows) is not read: the refit
    # found the fitted pipeline itself in the cache
    loaded = [r for r in warm.records_ if r.status == "hit"
              and "_CountingScaler" in r.task.node.op.label and "90 rows" in repr(r.task.binding)]
    assert loaded == []
    np.testing.assert_array_equal(warm.results_["mean_test_score"],
                                  cold.results_["mean_test_score"])
    np.testing.assert_array_equal(warm.predict({"X": df}), cold.predict({"X": df}))


def test_no_speculation_without_refit():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=60)})
    y = df["a"] * 2
    X = skrub.X(df).skb.apply(_CountingScaler())
    op = X.skb.apply(Ridge(alpha=skrub.choose_from([0.1, 1.0], name="alpha")),
                     y=skrub.y(y))
    _clear()
    search = stratumlite.make_grid_search(op, fitted=True, cv=3, refit=False, verbose=0,
                                          config=stratumlite.Config(verbose=0))
    assert sorted(int(e[1]) for e in _events() if e[0] == "fit") == [40, 40, 40]
    assert search.stats_["speculative_fits"] == 0


class _BudgetRecorder(TransformerMixin, BaseEstimator):
    """Logs the BLAS/OpenMP thread limit it is fitted under (rows, threads)."""

    def fit(self, X, y=None):
        from threadpoolctl import threadpool_info

        blas = max([i["num_threads"] for i in threadpool_info()] or [1])
        with open(_LOG, "a") as f:
            f.write(f"budget {len(X)} {blas}\n")
        return self

    def transform(self, X):
        return X


def test_thread_budget_follows_the_graph_not_the_timing():
    """Fold fits can run side by side: 1 thread each, however the timing falls
    out (so does the refit's preprocessing, run ahead beside them); a lone chain
    gets every core. The budget never depends on what happens to be running, so
    results do not."""
    from threadpoolctl import threadpool_info

    if max([i["num_threads"] for i in threadpool_info()] or [1]) < 2:
        import pytest

        pytest.skip("no BLAS/OpenMP library with 2 threads to observe")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=90), "b": rng.normal(size=90)})
    y = df["a"] + rng.normal(scale=0.1, size=90)
    op = skrub.X(df).skb.apply(_BudgetRecorder()).skb.apply(
        Ridge(alpha=skrub.choose_from([0.1, 1.0], name="alpha")), y=skrub.y(y))
    config = stratumlite.Config(executor="threads", n_workers=2, verbose=0)
    for _ in range(2):  # twice: the same budgets whatever the timing
        _clear()
        stratumlite.make_grid_search(op, fitted=True, cv=3, verbose=0, config=config)
        budgets = sorted((int(e[1]), int(e[2])) for e in _events() if e[0] == "budget")
        assert budgets == [(60, 1), (60, 1), (60, 1), (90, 1)]
    lone = skrub.X(df).skb.apply(_BudgetRecorder())  # skrub may preview it here
    _clear()
    stratumlite.evaluate(lone, config=config)
    assert [int(e[2]) for e in _events() if e[0] == "budget"] == [2]


def test_thread_limits_are_restored_after_a_run():
    from threadpoolctl import threadpool_info, threadpool_limits

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=60)})
    op = skrub.X(df).skb.apply(Ridge(alpha=skrub.choose_from([0.1, 1.0], name="alpha")),
                               y=skrub.y(df["a"] * 2))
    with threadpool_limits(limits=1):  # the user's own setting, kept through the search
        before = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
        stratumlite.make_grid_search(op, fitted=True, cv=3, verbose=0,
                                     config=stratumlite.Config(n_workers=2, verbose=0))
        after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert {k: after[k] for k in before} == before


class _NativeSleeper(TransformerMixin, BaseEstimator):
    """Logs its fit like ``_slow``; counted as GIL-releasing by the test."""

    def fit(self, X, y=None):
        _slow("native", 0.15, 0)
        return self

    def transform(self, X):
        return X


def test_python_bound_tasks_are_paired_with_gil_releasing_ones(monkeypatch):
    """On threads, a second Python-bound task waits behind a ready fit that
    releases the GIL, instead of starting beside the first one."""
    from stratumlite.frontend import skrub_dataops

    monkeypatch.setattr(skrub_dataops, "_NATIVE_MODULES", (f"{__name__}.",))
    # the native fit guessed cheaper than the Python-bound calls: priority
    # alone would start py0 and py1 together (see the sequential run below)
    monkeypatch.setattr(skrub_dataops, "_ESTIMATOR_COST", 0.001)
    python_bound = [to_plan(_op(f"py{i}", 0.15)).output for i in range(3)]
    frame = skrub.var("df")
    native = to_plan(frame.skb.apply(_NativeSleeper())).output
    assert native.op.releases_gil(native)
    assert not python_bound[0].op.releases_gil(python_bound[0])
    config = stratumlite.Config(executor="threads", n_workers=2, verbose=0, lineage=False)
    _clear()
    with Session(config) as s:
        b = s.bind({"x": 1, "df": pd.DataFrame({"a": [1.0, 2.0]})})
        tasks = [s.request(n, "transform", b) for n in python_bound]
        s.run([*tasks, s.request(native, "fit_transform", b)])
        # the scheduler's launch times, not the operators' own logs: on a
        # loaded machine the native fit's thread can reach its first line
        # after py0 has ended and py1 has started (seen once on CI, 56 us late)
        tags = {n.key: f"py{i}" for i, n in enumerate(python_bound)} | {native.key: "native"}
        launched = {tags[r.task.node.key]: r.start for r in s.records if r.task.node.key in tags}
    assert launched["native"] < launched["py1"] < launched["py2"]
    # and py1 ran after py0 (beside the native fit), not beside it
    starts = {tag: float(t) for kind, tag, t in _events() if kind == "start"}
    ends = {tag: float(t) for kind, tag, t in _events() if kind == "end"}
    assert starts["py1"] >= ends["py0"] or starts["py1"] >= ends["native"]

    # sequentially (one worker), priority order alone decides
    _clear()
    with Session(config.replace(n_workers=1, executor="sequential")) as s:
        b = s.bind({"x": 1, "df": pd.DataFrame({"a": [1.0, 2.0]})})
        s.run([*[s.request(n, "transform", b) for n in python_bound],
               s.request(native, "fit_transform", b)])
    starts = {tag: float(t) for kind, tag, t in _events() if kind == "start"}
    assert starts["py0"] < starts["py1"] < starts["py2"] < starts["native"]


def test_native_fits_are_recognised_through_pipelines_and_choices():
    from lightgbm import LGBMRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from stratumlite.optimizer.expand_choices import expand_configuration

    X = skrub.var("X").skb.mark_as_X()
    y = skrub.var("y").skb.mark_as_y()

    def final(estimator):
        return to_plan(X.skb.apply(estimator, y=y)).output

    for estimator in (Ridge(), LGBMRegressor(), make_pipeline(StandardScaler(), Ridge())):
        node = final(estimator)
        assert node.op.releases_gil(node), estimator
    # HistGradientBoosting takes the GIL back at every Cython call: Python-bound
    for estimator in (skrub.TableVectorizer(), StandardScaler(), _CountingScaler(),
                      HistGradientBoostingRegressor()):
        node = final(estimator)
        assert not node.op.releases_gil(node), estimator
    # a choice of models: known once the configuration is expanded
    plan = to_plan(X.skb.apply(skrub.choose_from(
        {"vectorizer": skrub.TableVectorizer(), "ridge": Ridge()}, name="m"), y=y))
    assert not plan.output.op.releases_gil(plan.output)
    choice = next(n.op for n in plan.nodes("id") if n.op.kind == "choice")
    for index, native in ((0, False), (1, True)):
        node = expand_configuration(plan, {choice.choice_id: index}, "fit")
        assert node.op.releases_gil(node) is native


def _peak_concurrency() -> int:
    running, peak = 0, 0
    for kind, _, _t in sorted(_events(), key=lambda e: float(e[2])):
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    return peak


def test_memory_budget_holds_back_tasks_that_would_exceed_it(tmp_path):
    """Four tasks over one 8 MB array, each estimated to need twice its input:
    under a 30 MB budget only one runs at a time (8 MB held + 16 MB working,
    a second would make 40 MB); without a budget two run at once. A task
    larger than the whole budget still runs, alone."""
    x = np.arange(1_000_000, dtype=np.float64)  # 8 MB
    nodes = [to_plan(_op(f"t{i}", 0.1)).output for i in range(4)]
    peaks, values = {}, {}
    for budget in (None, "30MB", "1MB"):
        config = stratumlite.Config(executor="threads", n_workers=2, verbose=0,
                                    memory_budget=budget, state_dir=tmp_path / "state")
        _clear()
        with Session(config) as s:
            b = s.bind({"x": x})
            values[budget] = s.run([s.request(n, "transform", b) for n in nodes])
        peaks[budget] = _peak_concurrency()
    assert peaks == {None: 2, "30MB": 1, "1MB": 1}
    for budget in ("30MB", "1MB"):
        for got, expected in zip(values[budget], values[None]):
            np.testing.assert_array_equal(got, expected)


def test_a_small_task_may_start_beside_a_large_one_under_the_budget(tmp_path):
    """Held back by memory, the scheduler looks further down the ready queue
    for a task the budget admits: a task on a small input runs beside a large
    one, two large ones do not run together."""
    big = np.arange(1_000_000, dtype=np.float64)  # 8 MB: 16 MB working
    small = np.arange(10, dtype=np.float64)
    ops = [skrub.deferred(_slow)("big0", 0.3, skrub.var("big")),
           skrub.deferred(_slow)("big1", 0.3, skrub.var("big")),
           skrub.deferred(_slow)("small", 0.05, skrub.var("small"))]
    nodes = [to_plan(op).output for op in ops]
    config = stratumlite.Config(executor="threads", n_workers=2, verbose=0,
                                memory_budget="30MB", state_dir=tmp_path)
    _clear()
    with Session(config) as s:
        b = s.bind({"big": big, "small": small})
        s.run([s.request(n, "transform", b) for n in nodes])
    spans = {}
    for kind, tag, t in _events():
        spans.setdefault(tag, {})[kind] = float(t)

    def overlap(a, b):
        return spans[a]["start"] < spans[b]["end"] and spans[b]["start"] < spans[a]["end"]

    assert not overlap("big0", "big1")
    assert overlap("small", "big0") or overlap("small", "big1")
    assert spans["small"]["end"] < max(spans["big0"]["end"], spans["big1"]["end"])


def test_explain_analyze_reports_spills_and_memory_waits(tmp_path):
    """Under a tiny memory budget explain analyze says how many buffers were
    spilled and how often tasks were held back; without a budget, neither."""
    x = np.arange(200_000, dtype=np.float64)
    data = skrub.var("x", x)
    branches = [skrub.deferred(_slow)(f"b{i}", 0.02, data * (i + 1)) for i in range(3)]
    op = skrub.as_data_op(branches)
    config = stratumlite.Config(executor="threads", n_workers=2, verbose=0,
                                memory_budget="1MB", state_dir=tmp_path)
    text = stratumlite.explain(op, analyze=True, config=config)
    assert "buffers spilled:" in text
    assert "tasks held back by the memory budget:" in text
    data = stratumlite.explain(op, analyze=True, config=config, format="json")
    assert data["totals"]["spilled"] > 0 and data["totals"]["memory_waits"] > 0
    plain = stratumlite.explain(op, analyze=True, format="json",
                                config=config.replace(memory_budget=None))
    assert plain["totals"]["spilled"] == 0 and plain["totals"]["memory_waits"] == 0


def _log_load_limits(tag):
    """Unpickling a _LimitMarker: log the BLAS/OpenMP limit of the loading thread."""
    from threadpoolctl import threadpool_info

    blas = max([i["num_threads"] for i in threadpool_info()] or [1])
    with open(_LOG, "a") as f:
        f.write(f"load {tag} {blas}\n")
    return f"loaded {tag}"


class _LimitMarker:
    def __init__(self, tag):
        self.tag = tag

    def __reduce__(self):
        return (_log_load_limits, (self.tag,))


def _make_marker(tag, x):
    time.sleep(0.3)  # worth storing: recomputing costs more than reading
    return _LimitMarker(tag)


def test_cache_entries_are_read_under_the_task_thread_budget(tmp_path):
    """Reading a stored value can start native thread pools (unpickling a
    LightGBM model starts an OpenMP team): it happens under the reading task's
    thread budget, 1 thread each for two hits side by side on 2 workers."""
    from threadpoolctl import threadpool_info

    if max([i["num_threads"] for i in threadpool_info()] or [1]) < 2:
        import pytest

        pytest.skip("no BLAS/OpenMP library with 2 threads to observe")
    nodes = [to_plan(skrub.deferred(_make_marker)(tag, skrub.var("x"))).output
             for tag in ("a", "b")]
    config = stratumlite.Config(executor="threads", n_workers=2, verbose=0, cache=True,
                                state_dir=tmp_path)
    with Session(config) as s:  # computes and stores
        b = s.bind({"x": 1})
        s.run([s.request(n, "transform", b) for n in nodes])
    _clear()
    with Session(config) as s:  # reads both back
        b = s.bind({"x": 1})
        assert s.run([s.request(n, "transform", b) for n in nodes]) == ["loaded a",
                                                                         "loaded b"]
        hits = [r for r in s.records if r.status == "hit"]
    assert sorted(e[1] for e in _events() if e[0] == "load") == ["a", "b"]
    assert len(hits) == 2 and {r.threads for r in hits} == {1}
    assert [int(e[2]) for e in _events() if e[0] == "load"] == [1, 1]


def test_tasks_on_the_costliest_chain_start_first():
    """Listed last, the boosting fit's chain starts first: its scaler before a
    scaler nothing costly waits for, then the boosting fit, then the rest in
    the order they were asked for (list scheduling by critical path)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X, y = skrub.var("X"), skrub.var("y")
    ridge = to_plan(X.skb.apply(Ridge(), y=y)).output
    lonely = to_plan(X.skb.apply(StandardScaler())).output
    scaled = X.skb.apply(MinMaxScaler())
    boosted = to_plan(scaled.skb.apply(
        HistGradientBoostingRegressor(max_iter=200, random_state=0), y=y)).output
    names = {ridge.key: "ridge", lonely.key: "lonely", boosted.key: "boosted",
             boosted.inputs[0].key: "scaler"}
    rng = np.random.default_rng(0)
    env = {"X": pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)}),
           "y": pd.Series(rng.normal(size=40))}
    for executor, workers in (("sequential", 1), ("threads", 2)):
        config = stratumlite.Config(executor=executor, n_workers=workers, verbose=0,
                                    lineage=False)
        with Session(config) as s:
            b = s.bind(env)
            s.run([s.request(n, "fit_transform", b) for n in (ridge, lonely, boosted)])
            launched = [names[r.task.node.key] for r in sorted(s.records, key=lambda r: r.start)
                        if r.task.node.key in names]
        if executor == "sequential":
            assert launched == ["scaler", "boosted", "ridge", "lonely"]
        else:  # two at once: the costly chain's head takes the first slot
            assert launched[0] == "scaler", launched


def test_cost_hints_rank_ensembles_above_vectorizers_above_linear_fits():
    from lightgbm import LGBMRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = skrub.var("X").skb.mark_as_X(), skrub.var("y").skb.mark_as_y()

    def hint(estimator, fitting=True):
        node = to_plan(X.skb.apply(estimator, y=y)).output
        return node.op.cost_hint(node, fitting)

    ridge, vectorizer = hint(Ridge()), hint(skrub.TableVectorizer())
    lgbm, lgbm_300 = hint(LGBMRegressor()), hint(LGBMRegressor(n_estimators=300))
    hgb_50 = hint(HistGradientBoostingRegressor(max_iter=50))
    assert ridge < vectorizer < hgb_50 < lgbm < lgbm_300
    assert lgbm_300 == 3 * lgbm  # ensembles scale with their rounds
    assert hint(make_pipeline(StandardScaler(), Ridge())) == 2 * ridge
    assert hint(LGBMRegressor(), fitting=False) < lgbm  # predicting costs less
    glue = to_plan(X["a"]).output
    assert glue.op.cost_hint(glue, False) < ridge
    # a choice of models is guessed once expanded
    plan = to_plan(X.skb.apply(skrub.choose_from(
        {"ridge": Ridge(), "lgbm": LGBMRegressor()}, name="m"), y=y))
    from stratumlite.optimizer.expand_choices import expand_configuration

    choice = next(n.op for n in plan.nodes("id") if n.op.kind == "choice")
    hints = [expand_configuration(plan, {choice.choice_id: i}, "fit") for i in (0, 1)]
    assert [n.op.cost_hint(n, True) for n in hints] == [ridge, lgbm]


def test_an_input_asked_for_while_running_takes_the_priority_of_its_reader():
    """An ``if_else`` asks for its branch only once it runs; the branch (and
    the long chain waiting for it) goes before shorter ready work, not after
    it as if it were speculative background work."""
    cond, x = skrub.var("c"), skrub.var("x")
    out = cond.skb.if_else(skrub.deferred(_slow)("branch_a", 0.0, x),
                           skrub.deferred(_slow)("branch_b", 0.0, x))
    for i in range(10):
        out = skrub.deferred(_slow)(f"after{i}", 0.0, out)
    chain = to_plan(out).output
    others = [to_plan(_op(f"fg{i}", 0.0)).output for i in range(3)]
    config = stratumlite.Config(executor="sequential", n_workers=1, verbose=0, lineage=False)
    _clear()
    with Session(config) as s:
        b = s.bind({"x": 1, "c": True})
        values = s.run([s.request(chain, "transform", b),
                        *[s.request(n, "transform", b) for n in others]])
    assert values == [12, 2, 2, 2]
    started = [tag for kind, tag, _ in _events() if kind == "start"]
    assert started == ["branch_a", *[f"after{i}" for i in range(10)], "fg0", "fg1", "fg2"]
