"""Tests of the SQLite lineage store (stratumlite.lineage.store).

Real SQLite files in ``tmp_path``; concurrency and crash tests use real
processes (multiprocessing with spawn, and a subprocess killed with SIGKILL).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from stratumlite.config import Config
from stratumlite.errors import LineageError, StratumliteError
from stratumlite.lineage import LineageStore
from stratumlite.lineage.store import MIGRATIONS, SCHEMA_VERSION


def _key(kind, params=None, code=None, inputs=()):
    """A miniature lineage key: hash of (kind, params, code, input keys)."""
    text = json.dumps([kind, params, code, list(inputs)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


@pytest.fixture
def store(tmp_path):
    s = LineageStore(tmp_path / "state" / "lineage.db")
    yield s
    s.close()


# --------------------------------------------------------------------------- basics


def test_fresh_file_has_current_schema_in_wal_mode(store):
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    for table in (
        "runs",
        "nodes",
        "edges",
        "sources",
        "executions",
        "models",
        "aliases",
        "artifacts",
        "run_nodes",
    ):
        assert table in tables
    conn.close()
    assert store.integrity_check() == "ok"


def test_from_config_uses_lineage_db(tmp_path):
    cfg = Config(state_dir=tmp_path / "st")
    s = LineageStore.from_config(cfg)
    assert s.path == cfg.lineage_db and cfg.lineage_db.exists()
    s.close()


def test_not_a_database_is_a_lineage_error(tmp_path):
    bad = tmp_path / "lineage.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LineageError, match="cannot open lineage store"):
        LineageStore(bad)


def test_errors_hierarchy():
    assert issubclass(LineageError, StratumliteError)
    assert issubclass(LineageError, LookupError)


def test_run_lifecycle_and_fields(store, tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text("print('hi')\n")
    run_id = store.start_run("fit", script=str(script), config={"executor": "threads"})
    r = store.run(run_id)
    assert r["kind"] == "fit" and r["status"] == "running"
    assert r["script"] == str(script)
    assert r["config"] == {"executor": "threads"}
    assert r["pid"] == os.getpid() and r["hostname"]
    assert r["ended_at"] is None and r["heartbeat"] >= r["started_at"]
    store.end_run(run_id)
    r = store.run(run_id)
    assert r["status"] == r["recorded_status"] == "finished"
    assert r["duration"] >= 0
    # a unique prefix works, an unknown id names itself
    assert store.run(run_id[:8])["id"] == run_id
    with pytest.raises(LineageError, match="unknown run 'nope'"):
        store.run("nope")
    with pytest.raises(LineageError, match="unknown run 'nope'"):
        store.end_run("nope")
    with pytest.raises(ValueError, match="finished"):
        store.end_run(run_id, "done")


def test_pydantic_config_is_stored_as_json(store):
    run_id = store.start_run("evaluate", config=Config(executor="sequential"))
    assert store.run(run_id)["config"]["executor"] == "sequential"


def test_git_commit_is_recorded_inside_a_repository(store, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    try:
        subprocess.run([*git, "init", "-q"], check=True, timeout=30)
        (repo / "script.py").write_text("x = 1\n")
        subprocess.run([*git, "add", "script.py"], check=True, timeout=30)
        subprocess.run([*git, "commit", "-q", "-m", "init"], check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("git is not usable here")
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    inside = store.start_run("fit", script=str(repo / "script.py"))
    assert store.run(inside)["git_commit"] == head
    outside_dir = tmp_path / "plain"
    outside_dir.mkdir()
    outside = store.start_run("fit", script=str(outside_dir / "s.py"))
    assert store.run(outside)["git_commit"] != head


def test_runs_are_listed_newest_first(store):
    ids = [store.start_run(kind) for kind in ("fit", "evaluate", "search")]
    assert [r["id"] for r in store.runs()] == ids[::-1]
    assert [r["kind"] for r in store.runs(limit=2)] == ["search", "evaluate"]


# --------------------------------------------------------------------------- recorder


def test_recorder_batches_by_count_and_time(store):
    run_id = store.start_run("evaluate")
    rec = store.recorder(run_id, batch_size=3, flush_interval=3600)
    rec.execution("k", "transform", None, 0.1, 1, 1, 8, "miss")
    rec.execution("k", "transform", None, 0.1, 1, 1, 8, "hit")
    assert rec.pending == 2 and store.run(run_id)["n_executions"] == 0
    rec.execution("k", "transform", None, 0.1, 1, 1, 8, "stored")
    assert rec.pending == 0 and store.run(run_id)["n_executions"] == 3
    rec.flush_interval = 0.0  # every record is now "due"
    rec.execution("k", "transform", None, 0.1, 1, 1, 8, "spilled")
    assert rec.pending == 0
    assert store.run(run_id)["cache"] == {
        "hit": 1,
        "miss": 1,
        "stored": 1,
        "spilled": 1,
    }
    rec.close()
    with pytest.raises(LineageError, match="closed"):
        rec.execution("k", "transform", None, 0.1, 1, 1, 8, "miss")
    with pytest.raises(ValueError, match="cache_status"):
        store.recorder(run_id).execution("k", "t", None, 0.1, 1, 1, 8, "maybe")


def test_recorder_context_manager_flushes(store):
    run_id = store.start_run("evaluate")
    with store.recorder(run_id, batch_size=10_000, flush_interval=3600) as rec:
        for i in range(10):
            rec.node(
                f"k{i}", "apply", f"n{i}", {"i": i}, None, [f"k{i - 1}"] if i else []
            )
        assert rec.pending == 10
    assert store.run(run_id)["n_nodes"] == 10
    assert store.node("k3")["inputs"] == ["k2"]
    assert store.node("k3")["params"] == {"i": 3}


def test_recorder_rejects_unknown_run(store):
    with pytest.raises(LineageError, match="unknown run 'ghost'"):
        store.recorder("ghost")


def test_recorder_is_thread_safe(store):
    run_id = store.start_run("evaluate")
    rec = store.recorder(run_id, batch_size=37, flush_interval=3600)

    def work(t):
        for i in range(500):
            rec.node(f"t{t}-{i}", "apply", None, None, None, [])
            rec.execution(f"t{t}-{i}", "transform", None, 0.0, i, 1, 8, "miss")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    r = store.run(run_id)
    assert r["n_executions"] == 4000 and r["n_nodes"] == 4000


def test_connections_of_finished_threads_are_released(store):
    import gc

    def read():
        store.runs()

    for _ in range(3):
        threads = [threading.Thread(target=read) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    gc.collect()
    assert len(store._conns) <= 1  # at most the main thread's


def test_record_run_marks_failure(store):
    with pytest.raises(RuntimeError):
        with store.record_run("fit") as rec:
            rec.execution("k", "fit_transform", 0, 0.1, 1, 1, 8, "miss")
            raise RuntimeError("boom")
    r = store.run(rec.run_id)
    assert r["status"] == "failed" and r["n_executions"] == 1


def test_heartbeat_thread_refreshes_and_flushes(tmp_path):
    s = LineageStore(tmp_path / "l.db", heartbeat_interval=0.05)
    run_id = s.start_run("serve")
    first = s.run(run_id)["heartbeat"]
    rec = s.recorder(run_id, batch_size=10_000, flush_interval=0.1)
    rec.execution("k", "predict", None, 0.0, 1, 1, 8, None)
    deadline = time.time() + 10
    while time.time() < deadline and (
        rec.pending or s.run(run_id)["heartbeat"] == first
    ):
        time.sleep(0.05)
    assert rec.pending == 0, "the heartbeat thread flushes an idle recorder"
    assert s.run(run_id)["heartbeat"] > first
    s.end_run(run_id)
    s.close()


# --------------------------------------------------------------------------- graph


def _record_graph_runs(store):
    """Record two runs of the same pipeline, as drawn below.

    ::

        run A                                 run B
        orders      customers                 orders      customers'  (new data)
          |             |                       |             |
        clean           |                     clean'          |       (new code)
            \\         /                           \\         /
               join                                  join
                |                                     |
             features                              features
              /     \\                              /     \\
          model     summary                   model'      report     (C: 1 -> 10)

    Returns ``(run_a, run_b, keys_a, keys_b)`` (label -> key per run).
    """

    def record(rec, fp_customers, clean_code, c_value, last):
        keys = {}
        keys["orders"] = _key("source", "fp-orders")
        keys["customers"] = _key("source", fp_customers)
        rec.source(
            keys["orders"],
            "orders",
            "fp-orders",
            "content",
            100,
            {"id": "int64", "amount": "float64"},
        )
        rec.source(
            keys["customers"],
            "customers",
            fp_customers,
            "path+size+mtime",
            20,
            {"id": "int64"},
        )
        keys["clean"] = _key("call", {"f": "clean"}, clean_code, [keys["orders"]])
        rec.node(
            keys["clean"], "call", "clean", {"f": "clean"}, clean_code, [keys["orders"]]
        )
        keys["join"] = _key(
            "merge", {"on": "id"}, None, [keys["clean"], keys["customers"]]
        )
        rec.node(
            keys["join"],
            "merge",
            "join",
            {"on": "id"},
            None,
            [keys["clean"], keys["customers"]],
        )
        keys["features"] = _key("apply", {"t": "OneHot"}, None, [keys["join"]])
        rec.node(
            keys["features"], "apply", "features", {"t": "OneHot"}, None, [keys["join"]]
        )
        params = {"estimator": "LogisticRegression", "C": c_value}
        keys["model"] = _key("apply", params, None, [keys["features"]])
        rec.node(keys["model"], "apply", "model", params, None, [keys["features"]])
        keys[last] = _key("call", {"f": last}, "c1", [keys["features"]])
        rec.node(keys[last], "call", last, {"f": last}, "c1", [keys["features"]])
        for label, key in keys.items():
            mode = "fit_transform" if label in ("features", "model") else "transform"
            rec.execution(key, mode, None, 0.01, 10, 2, 160, "miss")
        return keys

    with store.record_run("fit") as rec_a:
        keys_a = record(rec_a, "fp-cust-1", "code-1", 1, "summary")
    with store.record_run("fit") as rec_b:
        keys_b = record(rec_b, "fp-cust-2", "code-2", 10, "report")
    return rec_a.run_id, rec_b.run_id, keys_a, keys_b


def _by_depth(nodes):
    out = {}
    for n in nodes:
        out.setdefault(n["depth"], []).append(n["label"])
    return {d: sorted(labels) for d, labels in out.items()}


def test_ancestors_and_descendants(store):
    run_a, run_b, ka, kb = _record_graph_runs(store)
    anc = store.ancestors(ka["model"])
    assert _by_depth(anc) == {
        1: ["features"],
        2: ["join"],
        3: ["clean", "customers"],
        4: ["orders"],
    }
    assert {n["key"] for n in anc} == {
        ka[x] for x in ("features", "join", "clean", "customers", "orders")
    }
    assert _by_depth(store.ancestors(ka["model"], max_depth=2)) == {
        1: ["features"],
        2: ["join"],
    }
    assert store.ancestors(ka["orders"]) == []
    # descendants of a key span every run that used it: orders is shared by A and B
    desc = store.descendants(ka["orders"])
    assert _by_depth(desc) == {
        1: ["clean", "clean"],
        2: ["join", "join"],
        3: ["features", "features"],
        4: ["model", "model", "report", "summary"],
    }
    assert _by_depth(store.descendants(ka["customers"])) == {
        1: ["join"],
        2: ["features"],
        3: ["model", "summary"],
    }
    src = [n for n in anc if n["label"] == "customers"][0]
    assert src["source"]["fingerprint"] == "fp-cust-1"
    assert src["source"]["how"] == "path+size+mtime"
    with pytest.raises(LineageError, match="unknown node 'zzz'"):
        store.ancestors("zzz")


def test_node_and_lineage_tree(store):
    _, _, ka, _ = _record_graph_runs(store)
    node = store.node(ka["join"])
    assert node["kind"] == "merge" and node["label"] == "join"
    assert node["inputs"] == [ka["clean"], ka["customers"]]
    assert store.node(ka["join"][:10])["key"] == ka["join"]
    tree = store.lineage_tree(ka["model"])
    assert tree["label"] == "model"
    (features,) = tree["inputs"]
    (join,) = features["inputs"]
    clean, customers = join["inputs"]
    assert clean["label"] == "clean" and clean["code_hash"] == "code-1"
    (orders,) = clean["inputs"]
    assert orders["source"]["rows"] == 100 and orders["inputs"] == []
    assert customers["source"]["schema"] == {"id": "int64"}


def test_lineage_tree_marks_shared_subtrees(store):
    """Diamond::

            a
           / \\
          b   c
           \\ /
            d
    """
    with store.record_run("evaluate") as rec:
        rec.node("a", "var", "a", None, None, [])
        rec.node("b", "apply", "b", None, None, ["a"])
        rec.node("c", "apply", "c", None, None, ["a"])
        rec.node("d", "concat", "d", None, None, ["b", "c"])
    tree = store.lineage_tree("d")
    b, c = tree["inputs"]
    assert b["inputs"][0]["key"] == "a" and "repeated" not in b["inputs"][0]
    assert c["inputs"][0] == {"key": "a", "kind": "var", "label": "a", "repeated": True}
    assert [n["key"] for n in store.ancestors("d")] == ["b", "c", "a"]


def test_history_follows_a_label_across_runs(store):
    run_a, run_b, ka, kb = _record_graph_runs(store)
    hist = store.history("model")
    assert [(h["run_id"], h["node_key"]) for h in hist] == [
        (run_a, ka["model"]),
        (run_b, kb["model"]),
    ]
    assert hist[0]["mode"] == "fit_transform" and hist[0]["rows"] == 10
    assert store.history("no such node") == []


def test_diff_explains_why(store):
    run_a, run_b, ka, kb = _record_graph_runs(store)
    d = store.diff(run_a, run_b)
    assert d["unchanged"] == [ka["orders"]]
    assert [n["label"] for n in d["only_in_a"]] == ["summary"]
    assert [n["label"] for n in d["only_in_b"]] == ["report"]
    reasons = {c["label"]: c["reasons"] for c in d["changed"]}
    assert reasons == {
        "customers": ["source data changed"],
        "clean": ["code changed"],
        "join": ["input changed"],
        "features": ["input changed"],
        "model": ["parameters changed", "input changed"],
    }
    assert [c["label"] for c in d["changed"]] == [
        "customers",
        "clean",
        "join",
        "features",
        "model",
    ]  # sources first
    by_label = {c["label"]: c for c in d["changed"]}
    assert by_label["model"]["details"]["parameters"]["changed"] == {"C": [1, 10]}
    assert by_label["join"]["details"]["inputs"] == ["clean", "customers"]
    assert by_label["customers"]["details"]["fingerprint"] == ["fp-cust-1", "fp-cust-2"]
    assert (by_label["model"]["key_a"], by_label["model"]["key_b"]) == (
        ka["model"],
        kb["model"],
    )
    assert all(c["paired_by"] == "address" for c in d["changed"])
    assert d["root_causes"] == ["customers", "clean", "model"]
    assert d["summary"] == {
        "unchanged": 1,
        "changed": 5,
        "only_in_a": 1,
        "only_in_b": 1,
    }
    same = store.diff(run_a, run_a)
    assert same["changed"] == [] and len(same["unchanged"]) == 7
    with pytest.raises(LineageError, match="unknown run 'nope'"):
        store.diff(run_a, "nope")


def test_diff_pairs_by_label_when_a_step_is_inserted(store):
    """A: src -> scale -> model      B: src -> impute -> scale -> model"""
    with store.record_run("fit") as a:
        a.source("s", "src", "fp", "content", 1, None)
        a.node("scale-a", "apply", "scale", {"t": "S"}, None, ["s"])
        a.node("model-a", "apply", "model", {"C": 1}, None, ["scale-a"])
    with store.record_run("fit") as b:
        b.source("s", "src", "fp", "content", 1, None)
        b.node("impute-b", "apply", "impute", {"t": "I"}, None, ["s"])
        b.node("scale-b", "apply", "scale", {"t": "S"}, None, ["impute-b"])
        b.node("model-b", "apply", "model", {"C": 1}, None, ["scale-b"])
    d = store.diff(a.run_id, b.run_id)
    assert [(c["label"], c["paired_by"], c["reasons"]) for c in d["changed"]] == [
        ("scale", "label", ["input changed"]),
        ("model", "label", ["input changed"]),
    ]
    assert [n["label"] for n in d["only_in_b"]] == ["impute"]
    assert d["root_causes"] == []


def test_diff_pairs_unnamed_nodes_by_position(store):
    """Two unnamed ``apply`` nodes in a chain: the label is ambiguous, the
    address (label + inputs' addresses) is not."""
    with store.record_run("fit") as a:
        a.source("s", "src", "fp", "content", 1, None)
        a.node("a1", "apply", None, {"p": 1}, None, ["s"])
        a.node("a2", "apply", None, {"p": 2}, None, ["a1"])
    with store.record_run("fit") as b:
        b.source("s", "src", "fp", "content", 1, None)
        b.node("b1", "apply", None, {"p": 5}, None, ["s"])
        b.node("b2", "apply", None, {"p": 2}, None, ["b1"])
    d = store.diff(a.run_id, b.run_id)
    assert [
        (c["key_a"], c["key_b"], c["paired_by"], c["reasons"]) for c in d["changed"]
    ] == [
        ("a1", "b1", "address", ["parameters changed"]),
        ("a2", "b2", "address", ["input changed"]),
    ]


def test_diff_identity_changed_when_nothing_else_differs(store):
    with store.record_run("fit") as a:
        a.node("r1", "apply", "rand", {"random_state": None}, None, [])
    with store.record_run("fit") as b:
        b.node("r2", "apply", "rand", {"random_state": None}, None, [])
    (c,) = store.diff(a.run_id, b.run_id)["changed"]
    assert c["reasons"] == ["identity changed"]


# --------------------------------------------------------------------------- cache


def test_is_available(store, tmp_path):
    cache = tmp_path / "cache"
    (cache / "ab").mkdir(parents=True)
    (cache / "ab" / "abc.pkl").write_bytes(b"x")
    with store.record_run("fit") as rec:
        rec.execution(
            "k1", "fit_transform", None, 0.1, 1, 1, 8, "stored", "ab/abc.pkl", "00" * 32
        )
        rec.execution(
            "k2", "fit_transform", None, 0.1, 1, 1, 8, "stored", str(cache / "gone.pkl")
        )
        rec.execution("k3", "fit_transform", None, 0.1, 1, 1, 8, "miss")
    assert store.is_available("k1", cache)
    assert not store.is_available("k2", cache)
    assert not store.is_available("k3", cache)
    assert store.is_available("k3", lambda key: key == "k3")
    (cache / "ab" / "abc.pkl").unlink()
    assert not store.is_available("k1", str(cache))


# --------------------------------------------------------------------------- processes


def _write_executions(path, n, start, queue):
    s = LineageStore(path)
    run_id = s.start_run("evaluate")
    start.wait(60)
    with s.recorder(run_id, batch_size=10, flush_interval=3600) as rec:
        for i in range(n):
            if i % 20 == 0:  # nodes shared by both processes: upsert contention
                rec.node(f"shared{i}", "apply", f"n{i}", {"i": i}, None, [])
            rec.execution(
                f"shared{i - i % 20}", "transform", None, 0.001, i, 2, 16, "miss"
            )
    s.end_run(run_id)
    s.close()
    queue.put(run_id)


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "lineage.db"
    LineageStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_write_executions, args=(str(path), 2000, start, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    run_ids = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = LineageStore(path)
    assert s.integrity_check() == "ok"
    for run_id in run_ids:
        r = s.run(run_id)
        assert r["status"] == "finished"
        assert r["n_executions"] == 2000
        assert r["n_nodes"] == 100
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0] == 4000
    assert conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0] == 100
    conn.close()
    s.close()


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from stratumlite.lineage import LineageStore

    store = LineageStore(sys.argv[1], heartbeat_interval=0.2)
    run_id = store.start_run("search")
    rec = store.recorder(run_id, batch_size=100, flush_interval=3600)
    print(run_id, flush=True)
    i = 0
    while True:
        rec.execution(f"k{i % 50}", "fit_transform", i % 5, 0.0, i, 3, 24, "miss")
        if rec.pending == 0:
            print(rec.n_written, flush=True)
        i += 1
    """
)


def test_run_killed_with_sigkill_leaves_a_consistent_store(tmp_path):
    path = tmp_path / "lineage.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=_subprocess_env(),
    )
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the writer did not start"
        written = 0
        while written < 2000:
            line = proc.stdout.readline()
            assert line, "the writer died"
            written = int(line)
        os.kill(proc.pid, signal.SIGKILL)  # mid-way: it keeps writing meanwhile
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    s = LineageStore(path)
    assert s.integrity_check() == "ok"
    r = s.run(run_id)
    assert r["recorded_status"] == "running"
    assert r["status"] == "interrupted"  # same host, dead pid
    assert [x["status"] for x in s.runs()] == ["interrupted"]
    # every flush is one transaction: whole batches of 100, nothing torn
    assert r["n_executions"] >= 2000 and r["n_executions"] % 100 == 0
    s.close()


def test_stale_heartbeat_on_another_host_reads_as_interrupted(tmp_path):
    s = LineageStore(tmp_path / "l.db", heartbeat_interval=None, stale_after=30)
    run_id = s.start_run("serve")
    conn = sqlite3.connect(s.path)
    conn.execute(
        "UPDATE runs SET hostname = 'elsewhere', heartbeat = ? WHERE id = ?",
        (time.time() - 5, run_id),
    )
    conn.commit()
    other = LineageStore(s.path, heartbeat_interval=None, stale_after=30)
    assert other.run(run_id)["status"] == "running"
    conn.execute(
        "UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time() - 31, run_id)
    )
    conn.commit()
    assert other.run(run_id)["status"] == "interrupted"
    assert other.run(run_id)["recorded_status"] == "running"
    conn.close()
    other.close()
    s.close()


def _fork_child_writes(store, run_id):
    with store.recorder(run_id) as rec:
        for i in range(100):
            rec.execution("child", "transform", None, 0.0, i, 1, 8, "miss")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_store_object_survives_fork(store):
    run_id = store.start_run("evaluate")
    with store.recorder(run_id) as rec:
        rec.execution("parent", "transform", None, 0.0, 1, 1, 8, "miss")
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_fork_child_writes, args=(store, run_id))
    p.start()
    p.join(60)
    if p.is_alive():
        p.kill()
    assert p.exitcode == 0
    with store.recorder(run_id) as rec:
        rec.execution("parent", "transform", None, 0.0, 2, 1, 8, "miss")
    assert store.run(run_id)["n_executions"] == 102
    assert store.integrity_check() == "ok"


# --------------------------------------------------------------------------- migrations

# The v1 DDL exactly as released (frozen here: a released migration never changes).
_V1_DDL = [
    """CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'running', started_at REAL NOT NULL,
        ended_at REAL, heartbeat REAL, script TEXT, config TEXT, git_commit TEXT,
        pid INTEGER, hostname TEXT)""",
    "CREATE INDEX runs_started ON runs (started_at)",
    """CREATE TABLE nodes (key TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT,
        params TEXT, code_hash TEXT, created_at REAL)""",
    """CREATE TABLE edges (child TEXT NOT NULL, parent TEXT NOT NULL,
        position INTEGER NOT NULL, PRIMARY KEY (child, position))""",
    "CREATE INDEX edges_parent ON edges (parent)",
    """CREATE TABLE sources (key TEXT PRIMARY KEY, name TEXT,
        fingerprint TEXT NOT NULL, how TEXT, rows INTEGER, schema TEXT)""",
    """CREATE TABLE executions (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL,
        node_key TEXT NOT NULL, mode TEXT, fold INTEGER, started_at REAL,
        duration REAL, rows INTEGER, cols INTEGER, nbytes INTEGER,
        cache_status TEXT, artifact TEXT, sha256 TEXT)""",
    "CREATE INDEX executions_run ON executions (run_id)",
    """CREATE TABLE models (name TEXT NOT NULL, version INTEGER NOT NULL,
        lineage_key TEXT, run_id TEXT, sha256 TEXT NOT NULL, metrics TEXT,
        tags TEXT, created_at REAL NOT NULL, PRIMARY KEY (name, version))""",
    """CREATE TABLE aliases (name TEXT NOT NULL, alias TEXT NOT NULL,
        version INTEGER NOT NULL, PRIMARY KEY (name, alias))""",
]


def _norm(sql):
    return " ".join(
        sql.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split()
    )


def test_v1_migration_is_frozen():
    assert [_norm(s) for s in MIGRATIONS[0]] == [_norm(s) for s in _V1_DDL]


def test_migration_from_a_v1_file_keeps_data(tmp_path):
    path = tmp_path / "lineage.db"
    conn = sqlite3.connect(path)
    for statement in _V1_DDL:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    now = time.time()
    conn.execute(
        "INSERT INTO runs (id, kind, status, started_at, ended_at, heartbeat) "
        "VALUES ('run-1', 'fit', 'finished', ?, ?, ?)",
        (now - 9, now - 1, now - 1),
    )
    conn.execute(
        "INSERT INTO nodes VALUES ('k-src', 'source', 'orders', NULL, NULL, ?)", (now,)
    )
    conn.execute(
        "INSERT INTO nodes VALUES ('k-model', 'apply', 'model', '{\"C\":1}', NULL, ?)",
        (now,),
    )
    conn.execute("INSERT INTO edges VALUES ('k-model', 'k-src', 0)")
    conn.execute(
        "INSERT INTO sources VALUES ('k-src', 'orders', 'fp', 'content', 5, NULL)"
    )
    conn.executemany(
        "INSERT INTO executions (run_id, node_key, mode, started_at, duration, "
        "cache_status) VALUES ('run-1', ?, 'fit_transform', ?, 0.1, 'miss')",
        [("k-src", now - 8), ("k-model", now - 7)],
    )
    conn.execute(
        "INSERT INTO models VALUES ('churn', 1, 'k-model', 'run-1', ?, "
        "'{\"auc\":0.8}', NULL, ?)",
        ("ab" * 32, now),
    )
    conn.execute("INSERT INTO aliases VALUES ('churn', 'prod', 1)")
    conn.commit()
    conn.close()

    s = LineageStore(path)
    assert s.schema_version == 2
    assert s.integrity_check() == "ok"
    r = s.run("run-1")
    assert r["status"] == "finished" and r["n_executions"] == 2
    assert r["n_nodes"] == 2  # run_nodes back-filled from executions
    assert [h["node_key"] for h in s.history("model")] == ["k-model"]
    assert [a["key"] for a in s.ancestors("k-model")] == ["k-src"]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT path FROM artifacts").fetchall() == [
        (f"ab/{'ab' * 32}.pkl",)
    ]
    assert conn.execute("SELECT alias, version FROM aliases").fetchall() == [
        ("prod", 1)
    ]
    conn.close()
    # new writes work on the migrated file, and reopening does not migrate again
    with s.record_run("fit") as rec:
        rec.node("k-new", "apply", "model", {"C": 2}, None, ["k-src"])
    s.close()
    s2 = LineageStore(path)
    assert s2.schema_version == 2 and len(s2.runs()) == 2
    d = s2.diff("run-1", rec.run_id)
    assert [(c["label"], c["reasons"]) for c in d["changed"]] == [
        ("model", ["parameters changed"])
    ]
    s2.close()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "lineage.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(LineageError, match="newer than this stratumlite supports"):
        LineageStore(path)
