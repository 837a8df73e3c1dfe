"""Micro-benchmark of the lineage store's write path (and a few queries).

Records 10,000 nodes (each with two inputs: the previous node and node i // 2,
so 20,000 edges) and 100,000 executions through one :class:`Recorder` into a
fresh SQLite file, and reports records per second and the cost per record in
microseconds (the Python call that buffers the record plus its share of the
batched ``executemany`` transactions). Then times a second run of the same
graph with 10% of the nodes changed, ``ancestors`` of the deepest node (the
whole graph), ``history`` and ``diff`` of the two runs. The benchmark is
repeated (``--repeat``, default 3, fresh file each time) and the median trial
is reported, with wall-clock and CPU time (the wall clock includes the disk).

Run with ``python -m benchmarks.bench_lineage`` (``--executions``,
``--nodes``, ``--batch-size`` to vary). Results go to
``benchmarks/results/lineage.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from stratumlite.lineage import LineageStore

RESULTS = Path(__file__).resolve().parent / "results" / "lineage.json"


def _key(run: int, i: int, changed: set[int]) -> str:
    # run 2 changes the keys of the changed nodes and of everything downstream;
    # a stand-in for real lineage keys (only their shape matters here)
    return f"{'b' if run == 2 and i in changed else 'a'}{i:07d}" + "0" * 9


def _record_nodes(rec, n_nodes: int, run: int, changed: set[int]) -> list[str]:
    keys = []
    for i in range(n_nodes):
        key = _key(run, i, changed)
        inputs = [] if i == 0 else [keys[i - 1], keys[i // 2]]
        params = {"estimator": "StandardScaler", "i": i, "with_mean": i % 2 == 0}
        if run == 2 and i in changed:
            params["with_std"] = False
        rec.node(key, "apply", f"node{i}", params, None, inputs)
        keys.append(key)
    return keys


def _changed(n_nodes: int) -> set[int]:
    # a node changes when it, or an input, changed: 10% of the nodes change
    # their own parameters (the last 10%, so only they and their descendants
    # differ)
    return set(range(n_nodes - n_nodes // 10, n_nodes))


def run(n_executions: int, n_nodes: int, batch_size: int) -> dict:
    """Run the benchmark; return the figures (also written as JSON).

    >>> figures = run(2000, 200, 100)
    >>> figures["records"]
    2200
    """
    with tempfile.TemporaryDirectory(prefix="bench-lineage-") as tmp:
        store = LineageStore(Path(tmp) / "lineage.db")
        run_id = store.start_run("evaluate")
        rec = store.recorder(run_id, batch_size=batch_size, flush_interval=3600)

        t0 = time.perf_counter()
        c0 = time.process_time()
        keys = _record_nodes(rec, n_nodes, 1, set())
        rec.flush()
        t_nodes = time.perf_counter() - t0

        modes = ("fit_transform", "transform", "predict")
        statuses = ("miss", "hit", "stored", "spilled")
        t1 = time.perf_counter()
        for i in range(n_executions):
            rec.execution(
                keys[i % n_nodes],
                modes[i % 3],
                i % 5,
                0.001,
                1000 + i,
                12,
                96_000,
                statuses[i % 4],
            )
        rec.flush()
        t_exec = time.perf_counter() - t1
        total = time.perf_counter() - t0
        cpu_total = time.process_time() - c0
        rec.close()
        store.end_run(run_id)

        # cost of buffering alone (no flush): same calls with a huge batch
        run_b = store.start_run("evaluate")
        buf = store.recorder(run_b, batch_size=10**9, flush_interval=10**9)
        t2 = time.perf_counter()
        for i in range(n_executions):
            buf.execution(keys[i % n_nodes], "transform", None, 0.001, 1, 1, 8, "hit")
        t_buffer = time.perf_counter() - t2
        buf._executions.clear()  # discard: we only timed the buffering
        buf._members.clear()
        buf._pending = 0
        buf.close()
        store.end_run(run_b)

        # a second run of the graph with 10% of the nodes changed, and queries
        changed = _changed(n_nodes)
        run2 = store.start_run("evaluate")
        with store.recorder(run2, batch_size=batch_size) as rec2:
            t3 = time.perf_counter()
            keys2 = _record_nodes(rec2, n_nodes, 2, changed)
        t_nodes2 = time.perf_counter() - t3
        store.end_run(run2)

        t4 = time.perf_counter()
        anc = store.ancestors(keys[-1])
        t_anc = time.perf_counter() - t4
        t5 = time.perf_counter()
        hist = store.history("node7")
        t_hist = time.perf_counter() - t5
        t6 = time.perf_counter()
        d = store.diff(run_id, run2)
        t_diff = time.perf_counter() - t6
        assert len(anc) == n_nodes - 1, len(anc)
        assert d["summary"]["changed"] == len(changed), d["summary"]
        assert keys2[-1] != keys[-1]
        counts = store.run(run_id)
        assert counts["n_executions"] == n_executions
        db_bytes = sum(
            f.stat().st_size
            for f in Path(tmp).iterdir()
            if f.name.startswith("lineage")
        )
        store.close()

    records = n_executions + n_nodes
    return {
        "benchmark": "lineage store write path (Recorder)",
        "executions": n_executions,
        "nodes": n_nodes,
        "edges": 2 * (n_nodes - 1),
        "records": records,
        "batch_size": batch_size,
        "seconds_total": round(total, 4),
        "records_per_second": round(records / total),
        "us_per_record": round(total / records * 1e6, 2),
        "cpu_us_per_record": round(cpu_total / records * 1e6, 2),
        "nodes_seconds": round(t_nodes, 4),
        "us_per_node": round(t_nodes / n_nodes * 1e6, 2),
        "executions_seconds": round(t_exec, 4),
        "executions_per_second": round(n_executions / t_exec),
        "us_per_execution": round(t_exec / n_executions * 1e6, 2),
        "us_per_execution_buffering_only": round(t_buffer / n_executions * 1e6, 2),
        "second_run_nodes_seconds": round(t_nodes2, 4),
        "ancestors_all_nodes_ms": round(t_anc * 1e3, 1),
        "history_ms": round(t_hist * 1e3, 1),
        "history_rows": len(hist),
        "diff_ms": round(t_diff * 1e3, 1),
        "db_bytes": db_bytes,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> dict:
    """Command line entry: run, print a summary, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    trials = [
        run(args.executions, args.nodes, args.batch_size) for _ in range(args.repeat)
    ]
    trials.sort(key=lambda f: f["seconds_total"])
    figures = dict(trials[len(trials) // 2])  # the median trial
    figures["repeat"] = args.repeat
    figures["records_per_second_all_trials"] = [f["records_per_second"] for f in trials]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"{figures['records']:,} records ({figures['nodes']:,} nodes, "
        f"{figures['executions']:,} executions) in {figures['seconds_total']:.2f}s: "
        f"{figures['records_per_second']:,} records/s, "
        f"{figures['us_per_record']:.2f} us/record "
        f"({figures['cpu_us_per_record']:.2f} us CPU) "
        f"(node {figures['us_per_node']:.2f} us, execution "
        f"{figures['us_per_execution']:.2f} us of which buffering "
        f"{figures['us_per_execution_buffering_only']:.2f} us); "
        f"ancestors of {figures['nodes'] - 1:,} nodes "
        f"{figures['ancestors_all_nodes_ms']:.0f} ms, "
        f"diff {figures['diff_ms']:.0f} ms -> {args.output}"
    )
    return figures


if __name__ == "__main__":
    main()
