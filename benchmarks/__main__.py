"""``python -m benchmarks <command>``: see benchmarks/README.md.

Commands: ``run`` (Kaggle examples, every system), ``runtime`` (issue 4: the
flights search), ``agents`` (20 agent pipelines), ``scaling`` (rows 25K to
336K), ``compile`` (frontend + optimizer on generated graphs).
Exit status 2 when stratumlite's scores differ from skrub's.
"""

from __future__ import annotations

import argparse
import sys

from . import harness
from .pipelines import KAGGLE_EXAMPLES


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    common.add_argument("--quick", action="store_true",
                        help="1 repetition and fewer rows: a smoke run, not a measurement")
    common.add_argument("--timeout", type=float, default=None,
                        help="seconds before a worker is killed")

    p = sub.add_parser("run", parents=[common], help="Kaggle examples, every system")
    p.add_argument("--examples", default=",".join(KAGGLE_EXAMPLES))
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--systems", default=",".join(harness.SEARCH_SYSTEMS))
    p.add_argument("--skrub-cache-n-jobs", type=int, default=2)

    p = sub.add_parser("runtime", parents=[common], help="issue 4: the flights search")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--systems", default=",".join(harness.SEARCH_SYSTEMS))
    p.add_argument("--skrub-cache-n-jobs", type=int, default=2)

    p = sub.add_parser("agents", parents=[common], help="20 agent pipelines, one plan")
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--systems", default=",".join(harness.AGENT_SYSTEMS))
    p.add_argument("--skrub-n-jobs", type=int, default=1)

    p = sub.add_parser("scaling", parents=[common], help="flights at growing row counts")
    p.add_argument("--rows", default="25000,100000,336776")
    p.add_argument("--systems",
                   default="skrub_n1,skrub_n1_1t,stratumlite_cold,dedup_bound")

    p = sub.add_parser("compile", parents=[common], help="frontend + optimizer time")
    p.add_argument("--sizes", default="1000,5000,10000")
    p.add_argument("--fingerprint-rows", type=int, default=1_000_000)

    p = sub.add_parser("report", help="re-render (and merge) saved runtime, agents, run or "
                                      "scaling runs")
    p.add_argument("json", nargs="+",
                   help="benchmarks/results/run-*.json files; run-X.json:0,2 keeps reps 0, 2")

    args = parser.parse_args(argv)
    if args.command == "report":
        return harness.cmd_report(args.json)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if args.command == "run":
        rows = args.rows if args.rows is not None else (3000 if args.quick else None)
        return harness.cmd_run(_list(args.examples), reps, rows, _list(args.systems),
                               args.skrub_cache_n_jobs, args.timeout)
    if args.command == "runtime":
        rows = 20_000 if args.quick and args.rows == 100_000 else args.rows
        return harness.cmd_runtime(reps, rows, _list(args.systems), args.skrub_cache_n_jobs,
                                   args.timeout)
    if args.command == "agents":
        rows = args.rows if args.rows is not None else (3000 if args.quick else None)
        return harness.cmd_agents(reps, rows, _list(args.systems), args.skrub_n_jobs,
                                  args.timeout)
    if args.command == "scaling":
        rows = [int(r) for r in _list(args.rows)]
        if args.quick and args.rows == "25000,100000,336776":
            rows = [5000, 20000]
        return harness.cmd_scaling(rows, args.reps or 1, _list(args.systems), args.timeout)
    if args.command == "compile":
        sizes = [int(s) for s in _list(args.sizes)]
        if args.quick and args.sizes == "1000,5000,10000":
            sizes = [500, 1000, 2000]
        return harness.cmd_compile(sizes, reps, args.fingerprint_rows, args.timeout)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
