"""Executors: one conformance suite run by every implementation.

Every executor (``sequential``, ``threads``, ``processes``, ``dask`` on a real
``LocalCluster`` started here) must give the same search results as skrub,
ship lambdas (cloudpickle), propagate errors with their type, keep numpy
buffers exact, and respect the thread budget. The search plan under test::

    X ──▶ deferred(lambda) ──▶ apply(ThreadRecorder?) ──▶ choose_from{ridge, tree} ◀── y
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skrub
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeRegressor

import stratumlite
from stratumlite.frontend import to_plan
from stratumlite.runtime.executors import ProcessExecutor
from stratumlite.runtime.scheduler import make_executor
from stratumlite.runtime.session import Session
from stratumlite.runtime.tasks import Binding

EXECUTORS = ["sequential", "threads", "processes", "dask"]
CORES = 2


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("distributed")
    import logging

    cluster = distributed.LocalCluster(n_workers=CORES, threads_per_worker=1,
                                       processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(params=EXECUTORS)
def config(request):
    kind = request.param
    address = request.getfixturevalue("dask_address") if kind == "dask" else None
    return stratumlite.Config(executor=kind, n_workers=CORES, dask_address=address,
                              verbose=0)


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                       "c": rng.integers(0, 3, size=n).astype(float)})
    y = pd.Series(2 * df["a"] - df["c"] + rng.normal(scale=0.1, size=n), name="y")
    return df, y


def _search_op(transformer=None):
    df, y = _data()
    X = skrub.X(df)
    X = skrub.deferred(lambda d: d.assign(ab=d["a"] * d["b"]))(X)  # cloudpickle path
    if transformer is not None:
        X = X.skb.apply(transformer)
    model = skrub.choose_from({"ridge": Ridge(random_state=0),
                               "tree": DecisionTreeRegressor(max_depth=3, random_state=0)},
                              name="model")
    return X.skb.apply(model, y=skrub.y(y))


@pytest.fixture(scope="module")
def skrub_results():
    return _search_op().skb.make_grid_search(fitted=True, cv=3).results_


def test_search_equals_skrub(config, skrub_results):
    search = stratumlite.make_grid_search(_search_op(), fitted=True, cv=3, verbose=0,
                                          config=config)
    ours = search.results_
    score_columns = [c for c in skrub_results.columns if "score" in c]
    assert score_columns
    pd.testing.assert_frame_equal(ours[["model", *score_columns]],
                                  skrub_results[["model", *score_columns]], check_exact=True)


# --------------------------------------------------------------------------
# executor conformance (submit / result / add_done_callback / errors)


def _boom(x):
    raise KeyError(f"missing {x}")


@pytest.fixture
def executor(config):
    ex = make_executor(config.executor, config.workers, config)
    yield ex
    ex.shutdown(wait=True)


def test_submit_protocol(executor):
    done = threading.Event()
    fut = executor.submit(lambda a, b: a * b, 6, 7)  # a lambda: cloudpickle
    fut.add_done_callback(lambda f: done.set())
    assert fut.result(timeout=120) == 42
    assert done.wait(timeout=10)


def test_errors_keep_their_type(executor):
    fut = executor.submit(_boom, "x")
    with pytest.raises(KeyError, match="missing x"):
        fut.result(timeout=120)


def test_large_buffers_round_trip_exactly(executor):
    rng = np.random.default_rng(1)
    arr = np.asfortranarray(rng.normal(size=(600, 500)))  # 2.4 MB: goes through files
    df = pd.DataFrame({"x": rng.normal(size=300_000), "k": np.arange(300_000)})
    out_arr, out_df = executor.submit(lambda a, d: (a, d), arr, df).result(timeout=120)
    assert out_arr.dtype == arr.dtype and out_arr.flags.f_contiguous
    assert out_arr.tobytes(order="A") == arr.tobytes(order="A")
    pd.testing.assert_frame_equal(out_df, df, check_exact=True)


@pytest.mark.parametrize("kind", ["processes", "dask"])
def test_values_are_unpickled_by_the_thread_that_asks_for_them(kind, request):
    """Not by the executor's callback thread: unpickling a LightGBM model starts
    an OpenMP team in the loading thread, and a second team slows every later
    OpenMP fit in the process (runtime/budget.py). The scheduler asks from its
    own thread."""

    def _loaded():  # cloudpickled by value: the worker need not import this module
        return ("loaded in", threading.get_ident())

    class Marker:
        def __reduce__(self):
            return (_loaded, ())

    address = request.getfixturevalue("dask_address") if kind == "dask" else None
    executor = make_executor(kind, CORES, stratumlite.Config(dask_address=address))
    request.addfinalizer(executor.shutdown)
    if kind == "processes":
        executor.wait_started()  # else the call runs here, in a thread: no pickling
    fut = executor.submit(lambda: Marker())
    seen = []
    fut.add_done_callback(lambda f: seen.append(threading.get_ident()))
    assert fut.exception(timeout=120) is None
    asker = {}
    t = threading.Thread(target=lambda: asker.update(value=fut.result(),
                                                     ident=threading.get_ident()))
    t.start()
    t.join(timeout=120)
    assert asker["value"] == ("loaded in", asker["ident"])
    assert seen and seen[0] != asker["ident"]  # the callback ran elsewhere
    assert fut.result() == asker["value"]  # loaded once, then kept


def test_evaluation_errors_are_the_same_as_in_process(config):
    @skrub.deferred
    def fails(x):
        raise ValueError(f"bad value {x}")

    def error(cfg):
        with pytest.raises(Exception) as info:
            stratumlite.evaluate(fails(skrub.var("x", 3)) + 1, config=cfg)
        e = info.value
        return type(e), str(e), type(e.__cause__), getattr(e, "__notes__", [])[:1]

    reference = error(stratumlite.Config(executor="sequential", verbose=0))
    assert "bad value 3" in reference[1] or "bad value 3" in str(reference[3])
    assert error(config) == reference


# --------------------------------------------------------------------------
# thread budget: no oversubscription


class ThreadRecorder(BaseEstimator, TransformerMixin):
    """Records the BLAS/OpenMP and numba thread counts it runs with."""

    def __init__(self, log_dir=None):
        self.log_dir = log_dir

    def fit(self, X, y=None):
        import numba
        from threadpoolctl import threadpool_info

        start = time.time()
        blas = max([i["num_threads"] for i in threadpool_info()] or [1])
        record = {"start": start, "blas": blas, "numba": numba.get_num_threads(),
                  "pid": os.getpid()}
        time.sleep(0.3)  # overlap with the other folds' fits
        record["end"] = time.time()
        name = f"{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}.json"
        Path(self.log_dir, name).write_text(json.dumps(record))
        return self

    def transform(self, X):
        return X


def _max_concurrent_sum(records, field):
    events = sorted([(r["start"], r[field]) for r in records]
                    + [(r["end"], -r[field]) for r in records], key=lambda e: (e[0], e[1]))
    total = peak = 0
    for _, delta in events:
        total += delta
        peak = max(peak, total)
    return peak


def test_thread_budget_is_respected(config, tmp_path):
    search = stratumlite.make_grid_search(_search_op(ThreadRecorder(str(tmp_path))),
                                          fitted=True, cv=3, verbose=0, config=config)
    assert len(search.results_) == 2
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert len(records) >= 3  # one fit per fold (shared by both models) + refit
    assert all(1 <= r["blas"] <= CORES and 1 <= r["numba"] <= CORES for r in records)
    assert _max_concurrent_sum(records, "blas") <= CORES
    assert _max_concurrent_sum(records, "numba") <= CORES


# --------------------------------------------------------------------------
# processes: shared objects travel once per worker


def _total(column):
    return float(column.sum())


def test_processes_publish_bindings_once():
    df = pd.DataFrame({"a": np.arange(200_000, dtype=float)})  # 1.6 MB environment
    # apply_func (a user function) runs in the workers; the glue around it here
    op = skrub.var("df")["a"].skb.apply_func(_total) + skrub.var("k")
    plan = to_plan(op)
    env_bytes = df.memory_usage(deep=True).sum()
    with Session(stratumlite.Config(executor="processes", n_workers=CORES)) as s:
        s.executor._warming.join()  # every task in a worker, none in the local thread
        bindings = [s.bind({"df": df, "k": k}) for k in range(8)]
        values = s.run([s.request(plan.output, "fit_transform", b) for b in bindings])
        stats = s.executor.stats
    assert values == [df["a"].sum() + k for k in range(8)]
    assert 6 <= stats["tasks"] <= 8  # one per binding (the last may run here, alone)
    # each binding is published once (not once per task); the data of the
    # environment travels with each binding, never with each task
    assert 4 * env_bytes <= stats["published_bytes"] < 8 * 1.5 * env_bytes


def _pid(_):
    return os.getpid()


def _slow_identity(v):
    time.sleep(0.2)
    return v


def test_processes_run_light_glue_here_and_the_rest_in_workers():
    """Glue (``Operator.is_light``) runs in the scheduler's process, where its
    inputs already are; user functions run in the workers; a light node that
    turned out slow goes to the workers from then on."""
    config = stratumlite.Config(executor="processes", n_workers=CORES)
    pids = to_plan(skrub.var("df")["a"].skb.apply_func(_pid) + skrub.var("k"))
    with Session(config) as s:
        s.executor._warming.join()
        bindings = [s.bind({"df": pd.DataFrame({"a": [1.0, 2.0]}), "k": k}) for k in range(4)]
        values = s.run([s.request(pids.output, "fit_transform", b) for b in bindings])
        assert 3 <= s.executor.stats["tasks"] <= 4  # the Call tasks, not the glue
    here = os.getpid()
    assert {v - k for k, v in enumerate(values)} - {here}, "user functions ran in workers"

    slow = to_plan(skrub.var("s").apply(_slow_identity))  # a CallMethod: light, but slow
    with Session(config) as s:
        s.executor._warming.join()
        bindings = [s.bind({"s": pd.Series([float(k)])}) for k in range(3)]
        values = s.run([s.request(slow.output, "fit_transform", b) for b in bindings])
        # the first ran here and took 0.2 s: the two others went to the workers
        assert s.executor.stats["tasks"] == 2
    assert [v.tolist() for v in values] == [[0.0], [1.0], [2.0]]


# --------------------------------------------------------------------------
# dask: identical work submitted twice runs once


def _count_and_wait(path, task):
    with open(path, "a") as f:
        f.write(task.key + "\n")
    time.sleep(1.0)
    return task.key


def test_dask_deduplicates_identical_tasks(dask_address, tmp_path):
    config = stratumlite.Config(executor="dask", n_workers=CORES, dask_address=dask_address)
    plan = to_plan(skrub.var("x") * 2)
    with Session(config) as s:
        task = s.request(plan.output, "fit_transform", Binding({"x": 1}))
        other = s.request(plan.output, "fit_transform", Binding({"x": 2}))
        ex = s.executor
        log = str(tmp_path / "runs.txt")
        futures = [ex.submit(_count_and_wait, log, task), ex.submit(_count_and_wait, log, task),
                   ex.submit(_count_and_wait, log, other)]
        assert [f.result(timeout=120) for f in futures] == [task.key, task.key, other.key]
    runs = Path(log).read_text().split()
    assert sorted(runs) == sorted([task.key, other.key])


def _die(x):
    os._exit(3)


def _plus(x, i):
    return x + i


def test_a_dead_worker_is_an_error_naming_a_node():
    """A worker process that dies (killed, out of memory, a native crash) fails
    the run with an EvaluationError naming a node, one error object per task,
    not the pool's shared BrokenProcessPool."""
    x = skrub.var("x")
    # ``_die`` first: it starts while other tasks are ready, so it goes to a
    # worker (a task alone in the graph runs in this process, and would end it)
    outs = [skrub.deferred(_die)(x)] + [skrub.deferred(_plus)(x, i) for i in range(4)]
    total = skrub.deferred(lambda *a: sum(a))(*outs)
    config = stratumlite.Config(executor="processes", n_workers=2, verbose=0)
    plan = to_plan(total)
    with Session(config) as s:
        s.executor._warming.join()  # until the workers are up, tasks run in this process
        with pytest.raises(stratumlite.errors.EvaluationError,
                           match=r"worker process died while node <Call '_(plus|die)'>") as info:
            s.run([s.request(plan.output, "fit_transform", s.bind({"x": 1.0}))])
    err = info.value
    assert type(err.original).__name__ == "BrokenProcessPool"
    assert err.__cause__ is not err.original  # a copy: the shared one is never re-raised


_NO_MAIN_GUARD = """
import time
import numpy as np, pandas as pd, skrub, stratumlite
from sklearn.linear_model import Ridge


def slow(X):  # longer than the pool takes to fail: some task must go to it
    time.sleep(3)
    return X


df = pd.DataFrame({"a": np.arange(30.0), "y": np.arange(30.0) * 2})
data = skrub.var("data", df)
X = skrub.deferred(slow)(data[["a"]].skb.mark_as_X())
pred = X.skb.apply(Ridge(), y=data["y"].skb.mark_as_y())
stratumlite.cross_validate_many(
    [pred], cv=3, verbose=0,
    config=stratumlite.Config(executor="processes", n_workers=2, lineage=False))
"""


def test_a_script_without_main_guard_gets_a_clear_error(tmp_path):
    """Worker processes import the main module: a script that starts a search
    at import time (no ``if __name__ == "__main__":``) kills them. The user gets
    an EvaluationError naming a node and the fix, not a bare BrokenProcessPool
    raised from the executor (the process pool raised it from ``submit``, out of
    the scheduler). The folds take longer than the pool takes to fail: tasks
    that run in this process while the workers start would succeed."""
    import subprocess
    import sys

    script = tmp_path / "no_guard.py"
    script.write_text(_NO_MAIN_GUARD)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    # scikit-learn's cross_validate reports the failed fits with their errors
    # (a FitFailedWarning and NaN scores; an error when every fit failed)
    assert "EvaluationError" in result.stderr, result.stderr[-3000:]
    assert "worker process died while node" in result.stderr
    assert "a script must start its work under `if __name__ == '__main__':`" in result.stderr


class _SlowStartingPool(ProcessExecutor):
    """A process pool whose workers come up only when ``gate`` is set (a fork
    server importing skrub takes seconds; here the test decides when)."""

    def __init__(self, workers: int, gate: threading.Event):
        self.gate = gate
        super().__init__(workers)

    def _warm(self) -> None:
        self.gate.wait(60)
        super()._warm()


def _raise_value_error():
    raise ValueError("held call failed")


def test_a_call_submitted_while_the_pool_starts_waits_for_the_first_free_slot():
    """While the workers start, one call runs in a local thread; the next is
    held and goes to the local thread when it frees (not queued behind the
    starting pool), or to the pool if that comes up first. Results and errors
    reach the caller either way."""
    gate, release_first, release_second = (threading.Event() for _ in range(3))
    executor = _SlowStartingPool(2, gate)
    try:
        first = executor.submit(release_first.wait, 30)
        held = executor.submit(os.getpid)
        held_error = executor.submit(_raise_value_error)
        time.sleep(0.2)
        assert not held.done() and not held_error.done()  # nothing free yet
        release_first.set()
        assert first.result(timeout=30) is True
        assert held.result(timeout=30) == os.getpid()  # ran here, the pool still down
        with pytest.raises(ValueError, match="held call failed"):
            held_error.result(timeout=30)
        assert executor.stats["local"] == 3 and executor._warming.is_alive()

        # the local thread busy again: a held call now goes to the pool once up
        busy = executor.submit(release_second.wait, 30)
        to_pool = executor.submit(os.getpid)
        time.sleep(0.2)
        assert not to_pool.done()
        gate.set()
        worker_pid = to_pool.result(timeout=120)
        assert worker_pid != os.getpid()  # a worker process ran it
        assert not busy.done()  # the local thread was still busy all along
        release_second.set()
        assert busy.result(timeout=30) is True
        assert executor.stats["local"] == 4
        # once the workers are up, every call goes to them
        assert executor.submit(os.getpid).result(timeout=60) != os.getpid()
        assert executor.stats["local"] == 4
    finally:
        gate.set()
        release_first.set()
        release_second.set()
        executor.shutdown()
