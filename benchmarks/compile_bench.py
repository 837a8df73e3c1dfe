"""Core compile benchmark: frontend + optimizer time on generated skrub graphs.

Graphs (built with ``skrub.var`` and arithmetic / ``skrub.deferred`` functions,
eager previews off; the variable has no value, so nothing is evaluated):

* ``chain``: ``x = x + 1`` repeated (one node per step);
* ``diamond``: layers of four branches over the same ``x`` -- ``x * 2``,
  ``x + 3``, a deferred function of ``x``, and ``x * 2`` again, built
  separately (the same computation twice: common-subexpression elimination
  merges it) -- summed pairwise into the next ``x`` (7 nodes per layer).

For each shape and size: construction time (skrub's own), ``to_plan`` and
``optimize`` (median of ``--reps``), plan sizes. Then the source fingerprint
of a 1M-row x 10-column frame (pandas and polars).

Run through ``python -m benchmarks compile``; standalone it prints
``BENCH_RESULT <json>``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

RESULT_PREFIX = "BENCH_RESULT "


def build_chain(n: int):
    import skrub

    x = skrub.var("x")
    for _ in range(n - 1):
        x = x + 1
    return x


def build_diamond(n: int):
    import skrub

    @skrub.deferred
    def shift(v):
        return v - 1

    x = skrub.var("x")
    for _ in range(max(1, (n - 1) // 7)):
        a = x * 2
        b = x + 3
        c = shift(x)
        d = x * 2  # the same computation as ``a``, written again
        x = (a + b) + (c + d)
    return x


SHAPES = {"chain": build_chain, "diamond": build_diamond}


def timed(func, reps: int, cpu: list | None = None):
    """Median wall seconds of ``reps`` calls (and, into ``cpu``, the median
    CPU seconds of this process: on a loaded machine the better estimate of
    what the call costs on an idle one)."""
    times, cpus, value = [], [], None
    for _ in range(reps):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        value = func()
        times.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    if cpu is not None:
        cpu.append(statistics.median(cpus))
    return statistics.median(times), value


def fingerprint_case(rows: int, reps: int) -> dict:
    import pandas as pd
    import polars as pl

    from benchmarks.bench_fingerprint import make_columns
    from stratumlite.canonical import fingerprint

    frame = pd.DataFrame(make_columns(rows))
    polars_frame = pl.from_pandas(frame)
    fingerprint(frame.head(10))  # warm-up (lazy registration), on another object
    fingerprint(polars_frame.head(10))
    # ``tokenize`` memoizes by object identity: each timed call gets a fresh copy
    # (made outside the timer), so this is the cost of hashing new data; the
    # memoized second call on the same object is reported separately.
    out, cpu, again = {}, {}, {}
    for name, obj in (("pandas", frame), ("polars", polars_frame)):
        times, cpus = [], []
        for _ in range(reps):
            fresh = obj.copy() if name == "pandas" else obj.clone()
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            fingerprint(fresh)
            times.append(time.perf_counter() - start)
            cpus.append(time.process_time() - start_cpu)
        out[name], cpu[name] = statistics.median(times), statistics.median(cpus)
        again[name], _ = timed(lambda fresh=fresh: fingerprint(fresh), reps)
    return {"rows": rows, "columns": frame.shape[1], "reps": reps, "seconds": out,
            "cpu_seconds": cpu, "memoized_seconds": again}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--shapes", default="chain,diamond")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--fingerprint-rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)

    import skrub

    skrub.set_config(eager_data_ops=False)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))
    from stratumlite.frontend import to_plan
    from stratumlite.optimizer import optimize

    to_plan(build_chain(10))  # warm-up: imports, registrations
    cases = []
    for shape in args.shapes.split(","):
        for size in map(int, args.sizes.split(",")):
            cpu: list = []
            t_build, op = timed(lambda shape=shape, size=size: SHAPES[shape](size), 1, cpu)
            t_plan, plan = timed(lambda op=op: to_plan(op), args.reps, cpu)
            case = {"shape": shape, "size": size, "construct": t_build,
                    "construct_cpu": cpu[0], "to_plan": t_plan, "to_plan_cpu": cpu[1],
                    "plan_nodes": len(plan.nodes("id")),
                    "skrub_nodes": len(plan.nodes("id"))}
            try:
                t_opt, result = timed(lambda plan=plan: optimize(plan), args.reps, cpu)
                case["optimize"] = t_opt
                case["optimize_cpu"] = cpu[2]
                case["optimized_nodes"] = len(result.plan.nodes("id"))
                case["rewrites"] = [{k: r[k] for k in ("rule", "nodes_before", "nodes_after")}
                                    for r in result.log]
            except Exception as err:  # report, do not hide
                case["optimize"] = None
                case["optimize_error"] = f"{type(err).__name__}: {err}"
            cases.append(case)
            print(f"{shape} {size}: construct {t_build:.2f} s, to_plan {t_plan:.3f} s, "
                  f"optimize {case['optimize']}", file=sys.stderr, flush=True)
            del op, plan
    out = {"cases": cases,
           "fingerprint": fingerprint_case(args.fingerprint_rows, max(args.reps, 5))}
    print(RESULT_PREFIX + json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
