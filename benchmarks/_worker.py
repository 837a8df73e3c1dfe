"""Run ONE system on ONE benchmark in this (fresh) process; print JSON.

Invoked by the harness as::

    python -m benchmarks._worker --system S --example E [--rows N] [--state-dir D] ...

The last line of stdout is ``BENCH_RESULT <json>``; everything else on stdout
or stderr is logging. Systems:

``skrub_n1`` / ``skrub_n2``   ``data_op.skb.make_grid_search(fitted=True, n_jobs=k, **SEARCH)``
``skrub_n1_1t``             skrub n_jobs=1 with BLAS/OpenMP limited to one thread (the
                            exact score reference; stratumlite's tasks run on one thread
                            when two are in flight)
``skrub_cache``             the same with skrub's joblib cache on (``SKB_CACHE`` set to
                            a fresh directory before skrub is imported, so the loky
                            workers inherit it), ``n_jobs=--n-jobs``
``stratumlite_cold``        ``stratumlite.make_grid_search`` with
                            ``Config(cache=True, state_dir=<fresh dir>)``
``stratumlite_warm``        the same on the state dir a cold run filled
``..._processes``           (cold, warm, agents) with ``executor="processes"``
``stratumlite_cold_budget`` cold with ``memory_budget="512MB"`` (buffers spilled and
                            tasks held back by the memory admission: the
                            memory / time trade-off)
``dedup_bound``             stratumlite with ``Config(executor="sequential",
                            n_workers=1)``: every distinct task runs once, one at a
                            time on one thread; the bound is the sum of the task
                            times divided by the cores
``skrub_agents``            the 20 agent pipelines, ``.skb.cross_validate`` one by one
``skrub_agents_1t``         the same with BLAS/OpenMP limited to one thread
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
SAMPLER = None  # the running MemorySampler (its thread also samples schedstat)


def sched_mark() -> tuple[float, float]:
    return SAMPLER.mark() if SAMPLER is not None else (0.0, 0.0)


def sched_delta(start: tuple[float, float]) -> dict:
    cpu, wait = sched_mark()
    return {"threads_cpu_seconds": cpu - start[0],
            "runqueue_wait_seconds": wait - start[1]}


def _pss(pid: int) -> int:
    """Proportional set size of ``pid`` in bytes (Linux), 0 when unreadable.

    RSS counts a page shared by N processes N times; worker processes forked
    from a server that imported the libraries share those pages, so summed RSS
    overstates what a process tree occupies. PSS charges each process 1/N.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _shm_dirs() -> set[str]:
    """stratumlite's executor directories on the memory file system."""
    import glob

    return set(glob.glob("/dev/shm/stratumlite-exec-*"))


def _dir_bytes(path: str) -> int:
    total = 0
    try:
        with os.scandir(path) as entries:
            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        total += _dir_bytes(e.path)
                    else:
                        total += e.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    pass
    except OSError:
        pass
    return total


class MemorySampler:
    """Peaks of the summed RSS and PSS of this process and all its descendants,
    each plus the bytes of the process executor's files in ``/dev/shm`` (a
    memory file system: published inputs, buffers in flight, the operator
    memo's shared pieces), which no process's RSS counts."""

    # PSS every tenth sample: reading ``smaps_rollup`` walks a process's page
    # tables under its memory-map lock, and at every sample it slowed the
    # measured run (agent batch, process executor: 13.1-13.4 s without, 14.1-14.2 s
    # with)
    PSS_EVERY = 10

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.peak_shm = 0
        self._samples = 0
        self.cpu_seconds = 0.0  # this thread's CPU time, set when it stops
        self._old_shm = _shm_dirs()  # left by other runs: not this one's
        self.sched: dict[str, tuple[int, int]] = {}  # tid -> (ns on CPU, ns runnable waiting)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample_sched(self):
        """Last seen scheduler stats of every thread of this process (Linux)."""
        try:
            tids = os.listdir("/proc/self/task")
        except OSError:  # pragma: no cover - not Linux
            return
        for tid in tids:
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as f:
                    on_cpu, waiting, _ = f.read().split()
            except (OSError, ValueError):
                continue
            with self._lock:
                self.sched[tid] = (int(on_cpu), int(waiting))

    def mark(self) -> tuple[float, float]:
        """(CPU seconds, seconds runnable but waiting for a CPU) summed over the
        process's threads so far, including threads that have exited since
        (their last sample, so up to ``interval`` short each)."""
        self.sample_sched()
        with self._lock:
            return (sum(v[0] for v in self.sched.values()) / 1e9,
                    sum(v[1] for v in self.sched.values()) / 1e9)

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
            with_pss = self._samples % self.PSS_EVERY == 0
            self._samples += 1
            me = psutil.Process()
            total = me.memory_info().rss
            pss = _pss(me.pid) if with_pss else 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                    if with_pss:
                        pss += _pss(child.pid)
                except psutil.Error:
                    pass
            shm = sum(_dir_bytes(d) for d in _shm_dirs() - self._old_shm)
            self.peak_shm = max(self.peak_shm, shm)
            self.peak = max(self.peak, total + shm)
            if with_pss:
                self.peak_pss = max(self.peak_pss, pss + shm)
        except Exception:  # pragma: no cover - never let sampling break a run
            pass

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self.sample_sched()
            self._stop.wait(self.interval)
        # what the sampling itself cost: CPU the measured run could not use
        self.cpu_seconds = time.thread_time()


def _shutdown_loky():
    """Stop joblib's worker processes so their peak RSS reaches RUSAGE_CHILDREN."""
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True, kill_workers=False)
    except Exception:
        pass


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


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


class SchedulerProbe:
    """Times what the scheduler's worker threads actually execute.

    ``TaskRecord.start`` is when a task is handed to the executor (it may then
    wait in the pool's queue), so the records alone cannot tell idle time from
    queueing. This wraps the scheduler's two submitted functions
    (``_run_and_store``: run a task, then store it in the persistent cache;
    ``_load_cached``: read a hit) to log when each really starts and ends, in
    the benchmark process only (stratumlite's code is not modified).
    """

    def __init__(self):
        self.events: list[tuple] = []  # (kind, start, end, compute_seconds, label)

    def install(self):
        try:
            from stratumlite.runtime import scheduler as sch
        except ImportError:  # pragma: no cover
            return self
        self._sch = sch
        self._orig = {}
        for name, kind in (("_run_and_store", "run"), ("_load_cached", "hit")):
            orig = getattr(sch, name, None)
            if orig is None:
                continue
            self._orig[name] = orig
            setattr(sch, name, self._wrap(orig, kind))
        return self

    def uninstall(self):
        for name, orig in getattr(self, "_orig", {}).items():
            setattr(self._sch, name, orig)

    def _wrap(self, orig, kind):
        events = self.events

        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            out = orig(*args, **kwargs)
            end = time.perf_counter()
            label = ""
            if kind == "run" and len(args) > 1:
                label = getattr(getattr(getattr(args[1], "node", None), "op", None),
                                "label", "")
            computed = type(out).__name__ == "Done"
            events.append((kind if computed else "missing-input", start, end,
                           getattr(out, "seconds", 0.0) if computed else 0.0, label))
            return out

        return wrapped


def _union(intervals):
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def record_summary(records, t0: float, t1: float, workers: int,
                   probe: SchedulerProbe | None = None) -> dict:
    """Where stratumlite's time goes: task time by operator, and time outside tasks.

    With a :class:`SchedulerProbe`: ``before_first_task`` (planning, binding,
    X/y and splits), ``idle_between_tasks`` (no task executing: the
    scheduler's loop, scikit-learn's bookkeeping between runs), ``after_last_task``,
    ``in_task_not_compute`` (executing but outside the operator's own timer:
    cache writes and reads, input hand-off, re-runs for missing inputs).
    """
    from collections import Counter, defaultdict

    by_status = Counter(r.status for r in records)
    by_op = defaultdict(lambda: [0, 0.0])
    for r in records:
        full = getattr(r.task.node.op, "label", "?")
        name = full if full.startswith(("Apply", "Call")) else full.split(" ")[0]
        by_op[name][0] += 1
        by_op[name][1] += r.seconds
    threads = Counter(r.threads for r in records)
    wall = t1 - t0
    sum_seconds = sum(r.seconds for r in records)
    top = sorted(by_op.items(), key=lambda kv: -kv[1][1])[:15]
    out = {
        "tasks": len(records),
        "by_status": dict(by_status),
        "threads": {str(k): v for k, v in sorted(threads.items())},
        "sum_task_seconds": sum_seconds,
        "wall": wall,
        "workers": workers,
        "utilization": sum_seconds / (wall * workers) if wall > 0 else None,
        "top_operators": [{"op": k, "tasks": v[0], "seconds": v[1]} for k, v in top],
    }
    events = probe.events if probe is not None else []
    if events:
        spans = [(s, e) for _, s, e, _, _ in events]
        first = min(s for s, _ in spans)
        last = max(e for _, e in spans)
        busy = _union(spans)
        executing = sum(e - s for s, e in spans)
        out.update({
            "before_first_task": max(0.0, first - t0),
            "after_last_task": max(0.0, t1 - last),
            "idle_between_tasks": max(0.0, (last - first) - busy),
            "executing_seconds": executing,
            "in_task_not_compute": executing - sum(c for _, _, _, c, _ in events),
            "cache_hit_read_seconds": sum(e - s for k, s, e, _, _ in events if k == "hit"),
            "missing_input_reruns": sum(1 for k, *_ in events if k == "missing-input"),
            "mean_concurrency": executing / (last - first) if last > first else None,
            "utilization": executing / (wall * workers) if wall > 0 else None,
        })
    else:  # sequential executor without the probe: records are exact
        intervals = sorted((r.start, r.end) for r in records if r.end >= r.start > 0)
        if intervals:
            first, last = intervals[0][0], max(e for _, e in intervals)
            out.update({"before_first_task": max(0.0, first - t0),
                        "after_last_task": max(0.0, t1 - last),
                        "idle_between_tasks": max(0.0, (last - first) - _union(intervals))})
    return out


def _fitting_calls_in_joblib_cache(cache_dir: Path) -> int:
    """Distinct estimator fitting calls skrub's joblib cache stored."""
    n = 0
    for d in cache_dir.rglob("*_call_fitting_method*"):
        if d.is_dir():
            n += sum(1 for e in d.iterdir() if e.is_dir())
    return n


def input_identity(data_ops, example_module=None) -> dict:
    """What the run computed on, to tell "scores differ" from "inputs differ".

    ``plan_key``: stratumlite's lineage key of the DataOp(s) -- operators,
    parameters and the content fingerprints of the data (computed after the
    timed region); ``source_digest``: sha256 of the example's and the loaders'
    source files (another engineer may edit them while a benchmark runs).
    """
    import hashlib
    import inspect

    out: dict = {}
    try:
        from stratumlite.frontend import to_plan

        keys = [to_plan(op).output.key for op in data_ops]
        out["plan_key"] = hashlib.sha256("|".join(keys).encode()).hexdigest()[:16]
    except Exception as err:  # a diagnostic, never a failure
        out["plan_key"] = f"unavailable: {type(err).__name__}"
    files = {Path(__file__).with_name("pipelines.py"),
             Path(__file__).resolve().parents[1] / "stratumlite" / "datasets.py"}
    if example_module is not None:
        try:
            files.add(Path(inspect.getsourcefile(example_module)))
        except TypeError:  # our SimpleNamespace examples: pipelines.py + what it imports
            files.add(Path(__file__).resolve().parents[1] / "examples" / "kaggle"
                      / "flight_delays.py")
    h = hashlib.sha256()
    for f in sorted(files):
        if f.exists():
            h.update(f.read_bytes())
    out["source_digest"] = h.hexdigest()[:16]
    return out


def skrub_n_jobs(system: str, default: int) -> int:
    """``skrub_n2`` -> 2, ``skrub_cache_n1`` -> 1, ``skrub_cache`` -> ``default``."""
    if system == "doctored":
        return 1
    tail = system.removesuffix("_1t").rsplit("_", 1)[-1]
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
        from contextlib import nullcontext

        from threadpoolctl import threadpool_limits

        n_jobs = skrub_n_jobs(system, args.n_jobs)
        out["n_jobs"] = n_jobs
        # ``_1t``: BLAS/OpenMP limited to one thread, as in stratumlite's tasks
        # when two run at once: the exact score reference (float results depend
        # on the thread count), not a timing baseline
        limit = threadpool_limits(limits=1) if system.endswith("_1t") else nullcontext()
        m0 = sched_mark()
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        with limit:
            search = data_op.skb.make_grid_search(fitted=True, n_jobs=n_jobs,
                                                  **search_kwargs)
        t1 = time.perf_counter()
        out.update(sched_delta(m0))
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
        out["cpu_seconds"] = cpu_seconds() - c0
        out["inputs"] = input_identity([data_op], example)
        return out

    import stratumlite

    if system.startswith(("stratumlite_cold", "stratumlite_warm")):
        # ``_processes``: the same with the local process executor
        executor = "processes" if system.endswith("_processes") else "threads"
        budget = "512MB" if system.endswith("_budget") else None
        config = stratumlite.Config(cache=True, state_dir=args.state_dir, verbose=0,
                                    executor=executor, memory_budget=budget)
    elif system == "dedup_bound":
        config = stratumlite.Config(executor="sequential", n_workers=1, cache=False,
                                    state_dir=args.state_dir, verbose=0)
    else:
        raise SystemExit(f"unknown system {system!r}")
    # the probe wraps functions the scheduler submits: in-process executors only
    probe = SchedulerProbe()
    if config.executor in ("threads", "sequential"):
        probe.install()
    m0 = sched_mark()
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    search = stratumlite.make_grid_search(data_op, fitted=True, config=config, verbose=0,
                                          **search_kwargs)
    t1 = time.perf_counter()
    out.update(sched_delta(m0))
    out["cpu_seconds"] = cpu_seconds() - c0
    probe.uninstall()
    stats = dict(search.stats_)
    out["wall_seconds"] = t1 - t0
    out["results"] = search_results(search)
    out["stats"] = {k: _jsonable(v) for k, v in stats.items()}
    out["fits"] = stats.get("fits_executed")
    out["fits_naive"] = stats.get("fits_naive")
    out["fits_kind"] = "fits executed (search.stats_, precompute; refit not counted)"
    workers = stats.get("workers") or config.workers
    out["records"] = record_summary(search.records_, t0, t1, workers, probe)
    out["sum_task_seconds_all"] = sum(r.seconds for r in search.records_)
    if system == "dedup_bound":
        out["bound_seconds"] = out["sum_task_seconds_all"] / args.cores
    out["inputs"] = input_identity([data_op], example)
    if args.explain:
        try:
            text = stratumlite.explain(search)
            # the totals block: the lines before the operator-selection list
            body = text.split("\noperator selection:")[0]
            out["explain_tail"] = "\n".join(body.splitlines()[-6:])
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
    m0 = sched_mark()
    c0 = cpu_seconds()
    if system in ("skrub_agents", "skrub_agents_1t"):
        from contextlib import nullcontext

        from threadpoolctl import threadpool_limits

        # ``_1t``: BLAS/OpenMP limited to one thread, as in stratumlite's tasks
        # when two run at once (float results depend on the thread count)
        limit = threadpool_limits(limits=1) if system.endswith("_1t") else nullcontext()
        t0 = time.perf_counter()
        with limit:
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
        probe = SchedulerProbe()
        if system in ("stratumlite_agents", "stratumlite_agents_processes"):
            executor = "processes" if system.endswith("_processes") else "threads"
            config = stratumlite.Config(state_dir=args.state_dir, verbose=0,
                                        executor=executor)
        elif system == "agents_bound":
            config = stratumlite.Config(executor="sequential", n_workers=1,
                                        state_dir=args.state_dir, verbose=0)
        else:
            raise SystemExit(f"unknown system {system!r}")
        if config.executor in ("threads", "sequential"):
            probe.install()
        t0 = time.perf_counter()
        tables = stratumlite.cross_validate_many(data_ops, cv=cv, scoring=scoring,
                                                 config=config, verbose=0)
        t1 = time.perf_counter()
        sl_search.run_tasks = original
        probe.uninstall()
        out["wall_seconds"] = t1 - t0
        records = [r for result, _ in captured for r in result["records"]]
        workers = captured[0][1] if captured else config.workers
        out["records"] = record_summary(records, t0, t1, workers, probe)
        out["fits"] = sum(1 for r in records
                          if r.task.fitting and r.task.node.op.is_estimator())
        out["fits_kind"] = "estimator fits executed (task records)"
        if system == "agents_bound":
            out["bound_seconds"] = sum(r.seconds for r in records) / args.cores
    out["cpu_seconds"] = cpu_seconds() - c0
    out.update(sched_delta(m0))
    out["inputs"] = input_identity(data_ops)
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
        global SAMPLER
        SAMPLER = sampler
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
        "peak_tree_pss_sampled": sampler.peak_pss or None,
        "peak_shm_sampled": sampler.peak_shm,
        "sampler_cpu_seconds": sampler.cpu_seconds,
        "pid": os.getpid(),
        "loadavg_end": list(os.getloadavg()),
    })
    print(RESULT_PREFIX + json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
