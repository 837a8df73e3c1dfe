"""Benchmark the numba kernels against the scikit-learn / skrub originals.

Run from the repository root::

    python -m benchmarks.bench_kernels            # 1K, 10K, 100K, 1M rows
    python -m benchmarks.bench_kernels --rows 10000 100000 --repeat 3

For every kernel and size: ``fit`` and ``transform`` timed separately, the
median of ``--repeat`` runs after one warm-up call (numba compilation and
cache loading excluded), on 2 numba threads (``kernel_threads(2)``; ``--threads 2 1`` adds a
1-thread table).  The
compile / first-call cost is measured separately in fresh subprocesses: once
with an empty numba cache directory (compilation) and once with that cache
filled (what every later process pays).  Each size also checks that the
kernel's output equals the original's.

Writes a markdown report to stdout and JSON to
``benchmarks/results/kernels.json``.  The machine is shared: the JSON records
the load average before and after, and every figure is reported, misses
included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "kernels.json"


# ---------------------------------------------------------------------------
# workloads


def _frame(n: int, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    cats = np.array([f"cat_{i:02d}" for i in range(50)], dtype=object)
    obj = cats[rng.integers(0, 20, n)].astype(object)
    obj[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "str50": pd.Series(cats[rng.integers(0, 50, n)], dtype="str"),
            "obj20": pd.Series(obj, dtype=object),
            "cat30": pd.Categorical(cats[rng.integers(0, 30, n)]),
            "int30": rng.integers(0, 30, n),
            "flt10": rng.integers(0, 10, n) * 0.5,
        }
    )


def _numeric(n: int, nan_frac: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 10)) * rng.uniform(0.5, 50, 10) + rng.uniform(-5, 5, 10)
    if nan_frac:
        X[rng.random(X.shape) < nan_frac] = np.nan
    return X


def _dates(n: int, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    ns = rng.integers(0, 50 * 365 * 86400, n) * 10**9 + rng.integers(0, 10**9, n)
    s = pd.Series(ns.astype("datetime64[ns]"), name="when")
    s[rng.random(n) < 0.01] = pd.NaT
    return s


def _polars_frame(n: int):
    import polars as pl

    return pl.from_pandas(_frame(n)[["str50", "obj20", "cat30"]])


def workloads() -> list[dict[str, Any]]:
    """(name, original factory, kernel factory, data factory) for each case."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import (
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        StandardScaler,
    )
    from skrub import DatetimeEncoder

    from stratumlite.runtime.kernels import (
        FastDatetimeEncoder,
        FastMinMaxScaler,
        FastOneHotEncoder,
        FastOrdinalEncoder,
        FastSimpleImputer,
        FastStandardScaler,
    )

    return [
        dict(name="OneHotEncoder (pandas, sparse)", kernel="OneHotEncoder",
             orig=lambda: OneHotEncoder(handle_unknown="ignore"),
             fast=lambda: FastOneHotEncoder(handle_unknown="ignore"), data=_frame),
        dict(name="OneHotEncoder (pandas, dense, drop=first)", kernel="OneHotEncoder",
             orig=lambda: OneHotEncoder(sparse_output=False, drop="first"),
             fast=lambda: FastOneHotEncoder(sparse_output=False, drop="first"),
             data=_frame),
        dict(name="OneHotEncoder (polars strings, sparse)", kernel="OneHotEncoder",
             orig=lambda: OneHotEncoder(), fast=lambda: FastOneHotEncoder(),
             data=_polars_frame),
        dict(name="OrdinalEncoder (pandas)", kernel="OrdinalEncoder",
             orig=lambda: OrdinalEncoder(), fast=lambda: FastOrdinalEncoder(),
             data=_frame),
        dict(name="StandardScaler (10 float cols)", kernel="StandardScaler",
             orig=lambda: StandardScaler(), fast=lambda: FastStandardScaler(),
             data=lambda n: _numeric(n)),
        dict(name="MinMaxScaler (10 float cols)", kernel="MinMaxScaler",
             orig=lambda: MinMaxScaler(), fast=lambda: FastMinMaxScaler(),
             data=lambda n: _numeric(n)),
        dict(name="SimpleImputer mean (10% NaN)", kernel="SimpleImputer",
             orig=lambda: SimpleImputer(), fast=lambda: FastSimpleImputer(),
             data=lambda n: _numeric(n, 0.1)),
        dict(name="SimpleImputer median (10% NaN)", kernel="SimpleImputer",
             orig=lambda: SimpleImputer(strategy="median"),
             fast=lambda: FastSimpleImputer(strategy="median"),
             data=lambda n: _numeric(n, 0.1)),
        dict(name="SimpleImputer most_frequent (10% NaN)", kernel="SimpleImputer",
             orig=lambda: SimpleImputer(strategy="most_frequent"),
             fast=lambda: FastSimpleImputer(strategy="most_frequent"),
             data=lambda n: np.round(_numeric(n, 0.1))),
        dict(name="DatetimeEncoder (pandas ns, weekday)", kernel="DatetimeEncoder",
             orig=lambda: DatetimeEncoder(add_weekday=True),
             fast=lambda: FastDatetimeEncoder(add_weekday=True), data=_dates),
    ]


# ---------------------------------------------------------------------------
# timing


def _time(fn, repeat: int) -> float:
    fn()  # warm-up: compilation / cache loading / first-touch excluded
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _same(a: Any, b: Any) -> bool:
    from scipy import sparse

    if sparse.issparse(a):
        return (
            type(a) is type(b)
            and a.dtype == b.dtype
            and a.indices.dtype == b.indices.dtype
            and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data)
        )
    if hasattr(a, "equals"):
        return bool(a.equals(b))
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def bench_case(case: dict[str, Any], n: int, repeat: int) -> dict[str, Any]:
    X = case["data"](n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        orig = case["orig"]().fit(X)
        fast = case["fast"]().fit(X)
        same = _same(orig.transform(X), fast.transform(X))
        paths = fast.kernel_paths
        row = {
            "case": case["name"],
            "kernel": case["kernel"],
            "rows": n,
            "fit_original_s": _time(lambda: case["orig"]().fit(X), repeat),
            "fit_kernel_s": _time(lambda: case["fast"]().fit(X), repeat),
            "transform_original_s": _time(lambda: orig.transform(X), repeat),
            "transform_kernel_s": _time(lambda: fast.transform(X), repeat),
            "equal_output": bool(same),
            "kernel_paths": paths,
        }
    for phase in ("fit", "transform"):
        row[f"{phase}_speedup"] = row[f"{phase}_original_s"] / row[f"{phase}_kernel_s"]
    total_o = row["fit_original_s"] + row["transform_original_s"]
    total_k = row["fit_kernel_s"] + row["transform_kernel_s"]
    row["fit_transform_speedup"] = total_o / total_k
    return row


_FIRST_CALL = """
import json, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from benchmarks.bench_kernels import workloads
from stratumlite.runtime.kernels import kernel_threads
t_import = time.perf_counter() - t0
out = {"import_s": t_import}
with kernel_threads(2):
    for case in workloads():
        X = case["data"](2000)
        t0 = time.perf_counter()
        case["fast"]().fit(X).transform(X)
        out[case["name"]] = time.perf_counter() - t0
print(json.dumps(out))
"""


def first_calls() -> dict[str, Any]:
    """First fit+transform per case in fresh processes: cold cache, then warm."""
    root = Path(__file__).resolve().parent.parent
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        for label in ("compile_cold_cache", "load_warm_cache"):
            proc = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL], cwd=root, env=env,
                capture_output=True, text=True, check=True,
            )
            result[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------
# report


def markdown(rows: list[dict[str, Any]], first: dict[str, Any], meta: dict) -> str:
    lines = [
        "# Kernel benchmark",
        "",
        f"repeat: {meta['repeat']} (median), load average before/after: "
        f"{meta['load_before']} / {meta['load_after']} on {meta['cpu_count']} cores",
    ]
    for threads in meta["threads"]:
        lines += _table([r for r in rows if r["threads"] == threads], threads)
    return "\n".join(lines + _first_call_and_misses(rows, first, meta))


def _table(rows: list[dict[str, Any]], threads: int) -> list[str]:
    lines = [
        "",
        f"## numba threads: {threads}",
        "",
        "| case | rows | fit orig (s) | fit kernel (s) | fit x | "
        "transform orig (s) | transform kernel (s) | transform x | fit+transform x |"
        " equal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['rows']:,} | {r['fit_original_s']:.4f} | "
            f"{r['fit_kernel_s']:.4f} | {r['fit_speedup']:.1f} | "
            f"{r['transform_original_s']:.4f} | {r['transform_kernel_s']:.4f} | "
            f"{r['transform_speedup']:.1f} | {r['fit_transform_speedup']:.1f} | "
            f"{'yes' if r['equal_output'] else 'NO'} |"
        )
    return lines


def _first_call_and_misses(rows, first, meta) -> list[str]:
    lines: list[str] = []
    if first:
        lines += [
            "",
            "## First call (fresh process, 2,000 rows, fit + transform)",
            "",
            "| case | cold cache: compile (s) | warm cache: load (s) |",
            "|---|---:|---:|",
        ]
        cold, warm = first["compile_cold_cache"], first["load_warm_cache"]
        for key in cold:
            lines.append(f"| {key} | {cold[key]:.2f} | {warm[key]:.2f} |")
    misses = [r for r in rows if r["rows"] >= 1_000_000 and r["fit_transform_speedup"] < 3]
    lines += ["", "## Below the 3x target at 1M rows (fit + transform)", ""]
    if misses:
        for r in misses:
            lines.append(
                f"- [{r['threads']} threads] {r['case']}: fit {r['fit_speedup']:.1f}x, "
                f"transform {r['transform_speedup']:.1f}x"
            )
    else:
        lines.append("- none")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+",
                        default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[2],
                        help="numba thread counts to run (one table each)")
    parser.add_argument("--only", default=None, help="substring of case names")
    parser.add_argument("--no-first-call", action="store_true")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)

    from stratumlite.runtime.kernels import kernel_threads

    load_before = os.getloadavg()
    rows = []
    for threads in args.threads:
        with kernel_threads(threads):
            for case in workloads():
                if args.only and args.only not in case["name"]:
                    continue
                for n in args.rows:
                    row = bench_case(case, n, args.repeat)
                    row["threads"] = threads
                    rows.append(row)
                    print(
                        f"[{threads} thr] {case['name']:45s} {n:>9,}  "
                        f"fit {row['fit_speedup']:5.1f}x  "
                        f"transform {row['transform_speedup']:5.1f}x",
                        file=sys.stderr,
                    )
    first = {} if args.no_first_call else first_calls()
    meta = {
        "threads": list(args.threads),
        "repeat": args.repeat,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    import numba
    import sklearn
    import skrub

    meta["versions"] = {
        "numpy": np.__version__, "numba": numba.__version__,
        "scikit-learn": sklearn.__version__, "skrub": skrub.__version__,
    }
    print(markdown(rows, first, meta))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows, "first_call": first},
                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
