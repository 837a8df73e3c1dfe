"""Cost of lineage recording on a real search: ``Config(lineage=True)`` vs ``False``.

A grid search over the telco churn table (:func:`stratumlite.datasets.load_churn`,
7,043 customers; ``--rows`` to subsample): a ``TableVectorizer`` shared by
every configuration, then logistic regression (3 values of ``C``) or
HistGradientBoosting (the logistic regression after imputation and scaling),
3-fold cross-validation, accuracy. The search runs
``--repeat`` times (default 3) with lineage off and on, interleaved (off, on,
off, on, ...) so that load on the machine hits both alike; each run has its own
fresh state directory. Reported: the median wall time of each setting, the
relative difference of the medians, and the time spent *inside* the lineage
hook (start, every ``task_done``, end: measured directly, so it does not
depend on the machine's noise) as a fraction of the search's wall time.

Run with ``python -m benchmarks.bench_lineage_overhead``. Results go to
``benchmarks/results/lineage_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "lineage_overhead.json"


def make_data_op(n_rows: int | None):
    import skrub
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from stratumlite.datasets import load_churn

    df = load_churn(n_rows=n_rows)
    data = skrub.var("churn", df)
    X = data.drop(columns="churn").skb.mark_as_X()
    y = data["churn"].skb.mark_as_y()
    features = X.skb.apply(skrub.TableVectorizer())
    model = skrub.choose_from(
        {
            "logistic": make_pipeline(
                SimpleImputer(), StandardScaler(),
                LogisticRegression(C=skrub.choose_from([0.1, 1.0, 10.0], name="C"),
                                   max_iter=500)),
            "hgb": HistGradientBoostingClassifier(max_iter=50, random_state=0),
        },
        name="model",
    )
    return features.skb.apply(model, y=y)


class _Timed:
    """Wraps LineageHook's methods to add up the time spent inside them."""

    def __init__(self):
        from stratumlite.lineage.recording import LineageHook

        self.cls = LineageHook
        self.seconds = 0.0
        self.calls = 0
        self.by_method = {"start": 0.0, "task_done": 0.0, "end": 0.0}
        self.saved = {}

    def __enter__(self):
        for name in ("start", "task_done", "end"):
            original = getattr(self.cls, name)
            self.saved[name] = original

            def wrapper(hook, *args, _original=original, _name=name, **kwargs):
                t = time.perf_counter()
                try:
                    return _original(hook, *args, **kwargs)
                finally:
                    spent = time.perf_counter() - t
                    self.seconds += spent
                    self.by_method[_name] += spent
                    self.calls += 1

            setattr(self.cls, name, wrapper)
        return self

    def __exit__(self, *exc):
        for name, original in self.saved.items():
            setattr(self.cls, name, original)


def run_once(data_op, lineage: bool, workers: int | None) -> dict:
    import stratumlite
    from stratumlite.config import Config
    from stratumlite.lineage import LineageStore

    with tempfile.TemporaryDirectory() as state:
        config = Config(state_dir=state, lineage=lineage, n_workers=workers)
        with _Timed() as timed, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            search = stratumlite.make_grid_search(
                data_op, fitted=True, cv=3, scoring="accuracy", config=config,
                verbose=0)
            seconds = time.perf_counter() - start
        out = {"seconds": seconds, "hook_seconds": timed.seconds,
               "hook_calls": timed.calls, "hook_seconds_by_method": timed.by_method,
               "tasks": len(search.records_)}
        if lineage:
            store = LineageStore(config.lineage_db)
            run = store.runs()[0]
            detail = store.run(run["id"])
            out.update(n_nodes=detail["n_nodes"], n_executions=detail["n_executions"],
                       status=detail["status"])
            store.close()
        return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None,
                        help="subsample the churn table to N rows (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    data_op = make_data_op(args.rows)
    run_once(data_op, False, args.workers)  # warm-up: imports, numba, caches
    trials = {False: [], True: []}
    for _ in range(args.repeat):
        for lineage in (False, True):
            trial = run_once(data_op, lineage, args.workers)
            trials[lineage].append(trial)
            print(f"lineage={lineage!s:5}  {trial['seconds']:.2f} s  "
                  f"hook {trial['hook_seconds'] * 1000:.1f} ms "
                  f"({trial['hook_calls']} calls: "
                  + ", ".join(f"{k} {v * 1000:.1f} ms"
                              for k, v in trial["hook_seconds_by_method"].items())
                  + ")", flush=True)
    off = statistics.median(t["seconds"] for t in trials[False])
    on = statistics.median(t["seconds"] for t in trials[True])
    hook = statistics.median(t["hook_seconds"] / t["seconds"] for t in trials[True])
    last = trials[True][-1]
    result = {
        "benchmark": "lineage recording overhead (grid search, churn)",
        "rows": args.rows or 7043,
        "configurations": 4,
        "folds": 3,
        "tasks_per_search": last["tasks"],
        "nodes_recorded": last.get("n_nodes"),
        "executions_recorded": last.get("n_executions"),
        "repeat": args.repeat,
        "median_seconds_lineage_off": off,
        "median_seconds_lineage_on": on,
        "wall_overhead": (on - off) / off,
        "median_hook_fraction": hook,
        "median_hook_ms": 1000 * statistics.median(
            t["hook_seconds"] for t in trials[True]),
        "trials": {"off": trials[False], "on": trials[True]},
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"median off {off:.2f} s, on {on:.2f} s: wall overhead "
          f"{100 * result['wall_overhead']:+.1f}%; time inside the hook "
          f"{100 * hook:.2f}% of the search ({result['median_hook_ms']:.0f} ms)")
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
