"""Run ONE system on ONE benchmark in this (fresh) process; print JSON.

Invoked by the harness as::

    python -m benchmarks._worker --system S --example E [--rows N] [--state-dir D] ...

The last line of stdout is ``BENCH_RESULT <json>``; everything else on stdout
or stderr is logging. Systems:

``skrub_n1`` / ``skrub_n2``   ``data_op.skb.make_grid_search(fitted=True, n_jobs=k, **SEARCH)``
``skrub_cache``             the same with skrub's joblib cache on (``SKB_CACHE`` set to
                            a fresh directory before skrub is imported, so the loky
                            workers inherit it), ``n_jobs=--n-jobs``
``stratumlite_cold``        ``stratumlite.make_grid_search`` with
                            ``Config(cache=True, state_dir=<fresh dir>)``
``stratumlite_warm``        the same on the state dir a cold run filled
``dedup_bound``             stratumlite with ``Config(executor="sequential",
                            n_workers=1)``: every distinct task runs once, one at a
                            time on one thread; the bound is the sum of the task
                            times divided by the cores
``skrub_agents``            the 20 agent pipelines, ``.skb.cross_validate`` one by one
``stratumlite_agents``      the same 20 in one ``stratumlite.cross_validate_many``
``agents_bound``            ``cross_validate_many`` with the sequential executor
``doctored``                (smoke test only) skrub_n1 with the first score changed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path

RESULT_PREFIX = "BENCH_RESULT "


class MemorySampler:
    """Peak of the summed RSS of this process and all its descendants."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def sample(self):
        try:
            import psutil
        except ImportError:  # pragma: no cover
            return
        try:
            me = psutil.Process()
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
        except Exception:  # pragma: no cover - never let sampling break a run
            pass

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def _shutdown_loky():
    """Stop joblib's worker processes so their peak RSS reaches RUSAGE_CHILDREN."""
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True, kill_workers=False)
    except Exception:
        pass


def _rusage_bytes():
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kb * 1024, child_kb * 1024


def _jsonable(v):
    import numpy as np

    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


def _key_value(v) -> str:
    """How a choice value is printed in the join key (NaN and None alike)."""
    import numpy as np

    if isinstance(v, np.generic):
        v = v.item()
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return repr(round(v, 12))
    return str(v)


def search_results(search) -> dict:
    """Per-configuration scores keyed by the choice columns of ``results_``.

    Also the per-split test scores of ``cv_results_`` in candidate order (the
    order of scikit-learn's ParameterGrid, the same in skrub and stratumlite).
    """
    table = search.results_
    score_cols = [c for c in table.columns if c.startswith("mean_test")]
    skip = set(score_cols) | {"error"} | {c for c in table.columns
                                         if c.startswith(("std_", "mean_fit", "mean_score"))}
    key_cols = [c for c in table.columns if c not in skip]
    rows = []
    for _, row in table.iterrows():
        rows.append({
            "key": " | ".join(f"{c}={_key_value(row[c])}" for c in key_cols),
            "scores": {c: _jsonable(row[c]) for c in score_cols},
        })
    cv = search.cv_results_
    split_cols = sorted(k for k in cv if k.startswith("split") and "_test_" in k)
    splits = [[_jsonable(cv[c][i]) for c in split_cols] for i in range(len(cv["params"]))]
    return {"key_columns": key_cols, "rows": rows, "split_scores": splits,
            "best_score": _jsonable(getattr(search, "best_score_", None))}


def record_summary(records, t0: float, t1: float, workers: int) -> dict:
    """Where stratumlite's time goes: task time by operator, and time outside tasks."""
    from collections import Counter, defaultdict

    by_status = Counter(r.status for r in records)
    by_op = defaultdict(lambda: [0, 0.0])
    for r in records:
        label = r.task.node.op.label.split(" ")[0] if hasattr(r.task.node.op, "label") else "?"
        full = getattr(r.task.node.op, "label", "?")
        name = full if full.startswith(("Apply", "Call")) else label
        entry = by_op[name]
        entry[0] += 1
        entry[1] += r.seconds
    threads = Counter(r.threads for r in records)
    intervals = sorted((r.start, r.end) for r in records if r.end >= r.start > 0)
    # union of task intervals, and time-weighted parallelism
    busy = 0.0
    cur_s = cur_e = None
    for s, e in intervals:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                busy += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        busy += cur_e - cur_s
    first = intervals[0][0] if intervals else t1
    last = max((e for _, e in intervals), default=t0)
    wall = t1 - t0
    sum_seconds = sum(r.seconds for r in records)
    span_sum = sum(e - s for s, e in intervals)
    top = sorted(by_op.items(), key=lambda kv: -kv[1][1])[:15]
    return {
        "tasks": len(records),
        "by_status": dict(by_status),
        "threads": {str(k): v for k, v in sorted(threads.items())},
        "sum_task_seconds": sum_seconds,
        "sum_task_spans": span_sum,  # start->end incl. input waits / scheduling inside
        "before_first_task": max(0.0, first - t0),
        "after_last_task": max(0.0, t1 - last),
        "idle_between_tasks": max(0.0, (last - first) - busy) if intervals else 0.0,
        "busy_union": busy,
        "wall": wall,
        "utilization": sum_seconds / (wall * workers) if wall > 0 else None,
        "top_operators": [{"op": k, "tasks": v[0], "seconds": v[1]} for k, v in top],
    }


def _fitting_calls_in_joblib_cache(cache_dir: Path) -> int:
    """Distinct estimator fitting calls skrub's joblib cache stored."""
    n = 0
    for d in cache_dir.rglob("*_call_fitting_method*"):
        if d.is_dir():
            n += sum(1 for e in d.iterdir() if e.is_dir())
    return n


def skrub_n_jobs(system: str, default: int) -> int:
    """``skrub_n2`` -> 2, ``skrub_cache_n1`` -> 1, ``skrub_cache`` -> ``default``."""
    if system == "doctored":
        return 1
    tail = system.rsplit("_", 1)[-1]
    if tail.startswith("n") and tail[1:].isdigit():
        return int(tail[1:])
    return default


def run_search(args) -> dict:
    from benchmarks.pipelines import load_example

    example = load_example(args.example)
    t_build = time.perf_counter()
    data_op = example.make_data_op(n_rows=args.rows)
    build_seconds = time.perf_counter() - t_build
    search_kwargs = dict(example.SEARCH)
    out: dict = {"build_seconds": build_seconds}
    system = args.system
    if system.startswith("skrub") or system == "doctored":
        n_jobs = skrub_n_jobs(system, args.n_jobs)
        out["n_jobs"] = n_jobs
        t0 = time.perf_counter()
        search = data_op.skb.make_grid_search(fitted=True, n_jobs=n_jobs, **search_kwargs)
        t1 = time.perf_counter()
        out["wall_seconds"] = t1 - t0
        out["results"] = search_results(search)
        if system == "doctored":
            first = out["results"]["rows"][0]["scores"]
            for k in first:
                first[k] = (first[k] or 0.0) * (1 + 1e-6) + 1e-9
        if system.startswith("skrub_cache"):
            out["fits"] = _fitting_calls_in_joblib_cache(Path(args.skrub_cache_dir))
            out["fits_kind"] = "distinct fitting calls stored in skrub's joblib cache"
        else:
            out["fits_kind"] = "configurations x folds x estimator steps (see harness)"
        if n_jobs != 1:
            _shutdown_loky()
        return out

    import stratumlite

    if system == "stratumlite_cold" or system == "stratumlite_warm":
        config = stratumlite.Config(cache=True, state_dir=args.state_dir, verbose=0)
    elif system == "dedup_bound":
        config = stratumlite.Config(executor="sequential", n_workers=1, cache=False,
                                    state_dir=args.state_dir, verbose=0)
    else:
        raise SystemExit(f"unknown system {system!r}")
    t0 = time.perf_counter()
    search = stratumlite.make_grid_search(data_op, fitted=True, config=config, verbose=0,
                                          **search_kwargs)
    t1 = time.perf_counter()
    stats = dict(search.stats_)
    out["wall_seconds"] = t1 - t0
    out["results"] = search_results(search)
    out["stats"] = {k: _jsonable(v) for k, v in stats.items()}
    out["fits"] = stats.get("fits_executed")
    out["fits_naive"] = stats.get("fits_naive")
    out["fits_kind"] = "fits executed (search.stats_, precompute; refit not counted)"
    workers = stats.get("workers") or config.workers
    out["records"] = record_summary(search.records_, t0, t1, workers)
    out["sum_task_seconds_all"] = sum(r.seconds for r in search.records_)
    if system == "dedup_bound":
        out["bound_seconds"] = out["sum_task_seconds_all"] / args.cores
    if args.explain:
        try:
            text = stratumlite.explain(search)
            out["explain_tail"] = "\n".join(text.splitlines()[-6:])
        except Exception as err:  # explain is a report, never a failure
            out["explain_tail"] = f"explain failed: {type(err).__name__}: {err}"
    return out


def run_agents(args) -> dict:
    from benchmarks import pipelines

    t_build = time.perf_counter()
    data_ops = pipelines.agent_pipelines(n_rows=args.rows)
    out: dict = {"build_seconds": time.perf_counter() - t_build,
                 "pipelines": len(data_ops)}
    cv, scoring = pipelines.AGENT_CV, pipelines.AGENT_SCORING
    system = args.system
    if system == "skrub_agents":
        t0 = time.perf_counter()
        tables = [op.skb.cross_validate(cv=cv, scoring=scoring, n_jobs=args.n_jobs)
                  for op in data_ops]
        out["wall_seconds"] = time.perf_counter() - t0
        out["n_jobs"] = args.n_jobs
        if args.n_jobs != 1:
            _shutdown_loky()
    else:
        import stratumlite
        import stratumlite.search as sl_search

        captured = []
        original = sl_search.run_tasks

        def capturing(session, groups, normalize=True):
            result = original(session, groups, normalize)
            captured.append((result, session.config.workers))
            return result

        sl_search.run_tasks = capturing
        if system == "stratumlite_agents":
            config = stratumlite.Config(state_dir=args.state_dir, verbose=0)
        elif system == "agents_bound":
            config = stratumlite.Config(executor="sequential", n_workers=1,
                                        state_dir=args.state_dir, verbose=0)
        else:
            raise SystemExit(f"unknown system {system!r}")
        t0 = time.perf_counter()
        tables = stratumlite.cross_validate_many(data_ops, cv=cv, scoring=scoring,
                                                 config=config, verbose=0)
        t1 = time.perf_counter()
        sl_search.run_tasks = original
        out["wall_seconds"] = t1 - t0
        records = [r for result, _ in captured for r in result["records"]]
        workers = captured[0][1] if captured else config.workers
        out["records"] = record_summary(records, t0, t1, workers)
        out["fits"] = sum(1 for r in records
                          if r.task.fitting and r.task.node.op.is_estimator())
        out["fits_kind"] = "estimator fits executed (task records)"
        if system == "agents_bound":
            out["bound_seconds"] = sum(r.seconds for r in records) / args.cores
    out["results"] = {"per_pipeline": [[_jsonable(s) for s in t["test_score"]]
                                       for t in tables]}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="one benchmark system in one process")
    parser.add_argument("--system", required=True)
    parser.add_argument("--example", required=True)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--skrub-cache-dir", default=None)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--eager", action="store_true",
                        help="keep skrub's eager previews while building the DataOp")
    args = parser.parse_args(argv)

    # before skrub is imported anywhere (loky workers inherit the environment)
    if args.system.startswith("skrub_cache"):
        if not args.skrub_cache_dir:
            raise SystemExit("skrub_cache needs --skrub-cache-dir")
        os.environ["SKB_CACHE"] = str(args.skrub_cache_dir)
        os.environ["SKB_TARGET_CACHE_SIZE"] = "none"  # no pruning subprocess
    else:
        os.environ.pop("SKB_CACHE", None)
    if not args.eager:
        os.environ["SKB_EAGER_DATA_OPS"] = "False"
    warnings.filterwarnings("ignore")

    t_start = time.perf_counter()
    import skrub  # noqa: F401  (import time is not measured as search time)

    with MemorySampler() as sampler:
        if args.example == "agents":
            out = run_agents(args)
        else:
            out = run_search(args)
        sampler.sample()
    self_rss, child_rss = _rusage_bytes()
    out.update({
        "system": args.system,
        "example": args.example,
        "rows": args.rows,
        "eager_previews": bool(args.eager),
        "process_seconds": time.perf_counter() - t_start,
        "peak_rss_self": self_rss,
        "peak_rss_children": child_rss,
        "peak_rss": self_rss + child_rss,
        "peak_tree_rss_sampled": sampler.peak,
        "pid": os.getpid(),
        "loadavg_end": list(os.getloadavg()),
    })
    print(RESULT_PREFIX + json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
