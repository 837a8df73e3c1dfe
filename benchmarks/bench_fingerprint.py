"""Micro-benchmark of :mod:`stratumlite.canonical`.

Times ``fingerprint()`` of a 1,000,000-row x 10-column frame (6 float64, 2 int64
and 2 string columns of 5,000 distinct values) in pandas and in polars, and
``tokenize()`` of a scikit-learn Pipeline and of a small lambda. Each figure is the
median of ``--repeat`` timed calls (default 5) after one warm-up call, so one-time
costs (lazy registration, imports) are excluded. Prints a markdown table and
writes ``benchmarks/results/fingerprint.json``.

Run with ``python -m benchmarks.bench_fingerprint`` from the repository root
(``--rows`` and ``--repeat`` to vary).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from stratumlite.canonical import fingerprint, tokenize

RESULTS = Path(__file__).resolve().parent / "results" / "fingerprint.json"


def make_columns(n_rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for i in range(6):
        columns[f"float_{i}"] = rng.normal(size=n_rows)
    for i in range(2):
        columns[f"int_{i}"] = rng.integers(0, 1_000_000, size=n_rows)
    vocabulary = np.array([f"category_{k}" for k in range(5_000)], dtype=object)
    for i in range(2):
        columns[f"str_{i}"] = vocabulary[rng.integers(0, len(vocabulary), n_rows)]
    return columns


def make_pipeline() -> Pipeline:
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["float_0", "float_1"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["str_0"]),
        ],
        n_jobs=2,
    )
    model = HistGradientBoostingClassifier(learning_rate=0.1, random_state=0)
    return Pipeline([("pre", pre), ("model", model)])


def median_seconds(func: Callable[[], Any], repeat: int) -> float:
    func()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(n_rows: int, repeat: int) -> dict[str, Any]:
    columns = make_columns(n_rows)
    pandas_frame = pd.DataFrame(columns)
    object_frame = pandas_frame.astype({"str_0": object, "str_1": object})
    polars_frame = pl.from_pandas(pandas_frame)
    pipeline = make_pipeline()
    offset = 3

    def small_lambda(x):
        return x * 2 + offset

    cases = {
        f"fingerprint pandas {n_rows:,}x10": lambda: fingerprint(pandas_frame),
        f"fingerprint pandas {n_rows:,}x10, object strings": lambda: fingerprint(
            object_frame
        ),
        f"fingerprint polars {n_rows:,}x10": lambda: fingerprint(polars_frame),
        "tokenize sklearn Pipeline": lambda: tokenize(pipeline),
        "tokenize lambda": lambda: tokenize(lambda x: small_lambda(x) + 1),
    }
    # More repeats for the microsecond-scale cases, so the median is meaningful.
    results = {}
    for name, func in cases.items():
        reps = repeat if name.startswith("fingerprint") else max(repeat, 1_000)
        results[name] = median_seconds(func, reps)
    return {
        "rows": n_rows,
        "columns": 10,
        "repeat": repeat,
        "pandas_dtypes": [str(d) for d in pandas_frame.dtypes],
        "polars_dtypes": [str(d) for d in polars_frame.dtypes],
        "median_seconds": results,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "pandas": pd.__version__,
            "polars": pl.__version__,
            "numpy": np.__version__,
        },
    }


def format_table(report: dict[str, Any]) -> str:
    lines = ["| case | median |", "|---|---:|"]
    for name, seconds in report["median_seconds"].items():
        if seconds >= 1e-3:
            shown = f"{seconds * 1e3:.1f} ms"
        else:
            shown = f"{seconds * 1e6:.1f} µs"
        lines.append(f"| {name} | {shown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    report = run(args.rows, args.repeat)
    print(format_table(report))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")
    return report


if __name__ == "__main__":
    main()
