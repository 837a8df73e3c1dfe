"""The command line every Kaggle example shares: build the DataOp, run the search
with skrub or with stratumlite, print the results and the best score.

With ``--engine stratumlite`` (the default) the plan is printed first, the search
keeps a persistent cache and records its lineage in ``./.stratumlite`` (or
``$STRATUMLITE_HOME``), and the run id and a ``stratumlite lineage`` command are
printed at the end. With ``--engine skrub`` the same DataOp runs through skrub's
own ``.skb.make_grid_search``, nothing of stratumlite involved.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import pandas as pd


def run_example(doc: str, make_data_op: Callable, search_kwargs: dict,
                argv: list[str] | None = None, *, default_rows: int | None = None,
                rows_help: str = "resample the table to N rows"):
    """Parse ``argv``, run the search, print what a competitor wants to see."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--engine", choices=["stratumlite", "skrub"], default="stratumlite")
    parser.add_argument("--rows", type=int, default=default_rows, help=rows_help)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Found unknown categories")

    data_op = make_data_op(n_rows=args.rows)
    config = None
    start = time.perf_counter()
    if args.engine == "skrub":
        search = data_op.skb.make_grid_search(fitted=True, **search_kwargs)
    else:
        import stratumlite

        # record every executed node (lineage) and keep a persistent cache, in
        # ./.stratumlite unless STRATUMLITE_HOME says otherwise
        config = stratumlite.Config.from_env(lineage=True, cache=True)
        print(stratumlite.explain(data_op))
        search = stratumlite.make_grid_search(data_op, fitted=True, config=config,
                                              **search_kwargs)
    elapsed = time.perf_counter() - start

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(search.results_)
    print(f"best score ({search_kwargs['scoring']}): {search.best_score_:.4f}")
    print(f"search wall time ({args.engine}): {elapsed:.1f} s")
    if config is not None:
        stats = search.stats_
        loaded = stats.get("fits_from_cache", 0)
        print(f"fits executed: {stats['fits_executed']} (a naive search runs "
              f"{stats['fits_naive']})" + (f", {loaded} read from the cache" if loaded else ""))
        print(f"lineage: run {search.run_id_} recorded in {config.lineage_db}; "
              f"inspect it with `stratumlite runs` and "
              f"`stratumlite lineage {search.output_key_[:12]}`")
    return search
