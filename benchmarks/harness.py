"""The benchmark harness: fresh processes, repetitions, medians, same-run ratios.

Rules (from the project brief), and how this module follows them:

* each system runs in a **fresh process** (:func:`run_worker` starts
  ``python -m benchmarks._worker`` for every measurement);
* **several repetitions**, reported as **medians** (``--reps``, default 3);
* **ratios are taken in the same run**: repetition ``i`` runs every system once
  (interleaved), each ratio is computed inside that repetition, and the
  reported ratio is the median of the per-repetition ratios;
* the **dedup bound** (the distinct tasks' single-thread times summed, divided
  by the cores: system ``dedup_bound``) is printed beside every search timing;
* the per-configuration scores of every stratumlite run must equal skrub's
  (``results_`` joined on the choice columns, and ``cv_results_`` split by
  split; ``rtol=1e-9``): a mismatch is written into the report and the command
  exits non-zero.

Every command writes ``benchmarks/results/run-<timestamp>.json`` (all raw
measurements), a section of ``benchmarks/results/report-<date>.md`` (copied to
``latest.md``) and a plot ``benchmarks/results/<command>-<timestamp>.png``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
RESULT_PREFIX = "BENCH_RESULT "
RTOL = 1e-9
SCORES_OK = ("every stratumlite run equals a skrub run of its repetition for every "
             "configuration and split (rtol 1e-9); the table shows how far apart skrub's "
             "own runs are.")
SCORES_OK_AGENTS = "equal for every pipeline and fold (rtol 1e-9)."
NOT_CHECKED = "Scores **not checked**: no skrub system ran in this session."

SEARCH_SYSTEMS = ("skrub_n1", "skrub_n2", "skrub_cache", "skrub_n1_1t", "stratumlite_cold",
                  "stratumlite_warm", "dedup_bound")
AGENT_SYSTEMS = ("skrub_agents", "skrub_agents_1t", "stratumlite_agents", "agents_bound")


class BenchmarkError(RuntimeError):
    """A worker failed."""


class ScoreMismatch(AssertionError):
    """stratumlite's scores differ from skrub's."""


# ----------------------------------------------------------------------------- workers


def _worker_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRATUMLITE_", "SKB_"))}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


def run_worker(system: str, example: str, *, rows: int | None = None,
               state_dir: str | None = None, skrub_cache_dir: str | None = None,
               n_jobs: int = 2, cores: int | None = None, explain: bool = False,
               timeout: float | None = None, log=None) -> dict:
    """Run one system on one example in a fresh ``python -m benchmarks._worker``."""
    cmd = [sys.executable, "-m", "benchmarks._worker", "--system", system,
           "--example", example, "--n-jobs", str(n_jobs),
           "--cores", str(cores or os.cpu_count() or 1)]
    if rows is not None:
        cmd += ["--rows", str(rows)]
    if state_dir is not None:
        cmd += ["--state-dir", str(state_dir)]
    if skrub_cache_dir is not None:
        cmd += ["--skrub-cache-dir", str(skrub_cache_dir)]
    if explain:
        cmd.append("--explain")
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    # a session of its own: on a timeout the whole tree (loky workers too) is killed
    proc = subprocess.Popen(cmd, cwd=REPO, env=_worker_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        if log is not None:
            log(f"  {system:<18} {example:<16} rows={rows}  TIMED OUT after {timeout} s "
                f"(load {load_before[0]:.1f}); recorded as censored, the session goes on")
        return {"system": system, "example": example, "rows": rows, "timed_out": True,
                "timeout_seconds": timeout, "wall_seconds": None,
                "subprocess_seconds": time.perf_counter() - start,
                "loadavg_start": load_before}
    elapsed = time.perf_counter() - start
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((stderr or stdout).splitlines()[-25:])
        raise BenchmarkError(
            f"worker {system} on {example} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result["subprocess_seconds"] = elapsed
    result["loadavg_start"] = load_before
    if log is not None:
        log(f"  {system:<18} {example:<16} rows={rows}  wall {result['wall_seconds']:8.2f} s"
            f"  (process {elapsed:.1f} s, load {load_before[0]:.1f})")
    return result


def _kill_tree(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def fmt_wall(reps: list[dict], walls: list) -> str:
    """The median wall time; timed-out repetitions are shown as a lower bound."""
    timed_out = [r for r in reps if r.get("timed_out")]
    if not timed_out:
        return fmt_s(median(walls))
    limit = max(r["timeout_seconds"] for r in timed_out)
    if len(timed_out) * 2 >= len(reps):  # the median itself is censored
        return f"> {fmt_s(limit)} (timed out {len(timed_out)}/{len(reps)})"
    return f"{fmt_s(median(walls + [math.inf] * len(timed_out)))} " \
           f"({len(timed_out)}/{len(reps)} timed out at {fmt_s(limit)})"


# ------------------------------------------------------------------------ score check


def _close(a, b, rtol=RTOL) -> bool:
    if a is None or b is None:  # NaN scores (failed fits) are serialized as None
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rtol, abs_tol=0.0) or a == b


def compare_search_results(reference: dict, other: dict, rtol: float = RTOL) -> list[str]:
    """Differences between two workers' ``results`` (empty when they agree).

    ``results_`` rows are joined on their choice columns; ``cv_results_``
    split scores are compared candidate by candidate.
    """
    problems = []
    ref_rows = {r["key"]: r["scores"] for r in reference["rows"]}
    oth_rows = {r["key"]: r["scores"] for r in other["rows"]}
    if reference.get("key_columns") != other.get("key_columns"):
        problems.append(f"choice columns differ: {reference.get('key_columns')} vs "
                        f"{other.get('key_columns')}")
    for key in sorted(set(ref_rows) | set(oth_rows)):
        if key not in oth_rows or key not in ref_rows:
            problems.append(f"configuration {key!r} only in "
                            f"{'reference' if key in ref_rows else 'other'}")
            continue
        for col, ref in ref_rows[key].items():
            val = oth_rows[key].get(col)
            if not _close(ref, val, rtol):
                problems.append(f"{key}: {col} {val!r} != skrub's {ref!r}")
    ref_s, oth_s = reference.get("split_scores"), other.get("split_scores")
    if ref_s is not None and oth_s is not None:
        if len(ref_s) != len(oth_s):
            problems.append(f"{len(oth_s)} candidates vs skrub's {len(ref_s)}")
        else:
            for i, (a, b) in enumerate(zip(ref_s, oth_s)):
                if len(a) != len(b) or not all(_close(x, y, rtol) for x, y in zip(a, b)):
                    problems.append(f"candidate {i}: split scores {b} != skrub's {a}")
    return problems


def compare_agent_results(reference: dict, other: dict, rtol: float = RTOL) -> list[str]:
    problems = []
    ref, oth = reference["per_pipeline"], other["per_pipeline"]
    if len(ref) != len(oth):
        return [f"{len(oth)} pipelines vs skrub's {len(ref)}"]
    for i, (a, b) in enumerate(zip(ref, oth)):
        if len(a) != len(b) or not all(_close(x, y, rtol) for x, y in zip(a, b)):
            problems.append(f"pipeline {i + 1}: test scores {b} != skrub's {a}")
    return problems


def max_relative_difference(reference: dict, other: dict) -> float | None:
    """Largest relative difference between two results' scores (None: not comparable)."""
    worst = 0.0
    if "per_pipeline" in reference:
        pairs = [(a, b) for ra, rb in zip(reference["per_pipeline"], other["per_pipeline"])
                 for a, b in zip(ra, rb)]
    else:
        pairs = [(a, b) for ra, rb in zip(reference.get("split_scores") or [],
                                          other.get("split_scores") or [])
                 for a, b in zip(ra, rb)]
    for a, b in pairs:
        if a is None or b is None:
            if (a is None) != (b is None):
                return math.inf
            continue
        worst = max(worst, abs(a - b) / max(abs(a), abs(b), 1e-300))
    return worst if pairs else None


def difference_table(runs: dict[str, list[dict]], reference_system: str) -> str:
    """Per system, the largest relative score difference from the reference."""
    lines = [f"| system | largest relative score difference from {reference_system} "
             "(all splits, all repetitions) |", "|---|---:|"]
    refs = runs.get(reference_system, [])
    for system, reps in runs.items():
        if system == reference_system:
            continue
        diffs = [max_relative_difference(refs[i]["results"], r["results"])
                 for i, r in enumerate(reps)
                 if i < len(refs) and "results" in r and "results" in refs[i]]
        diffs = [d for d in diffs if d is not None]
        if diffs:
            lines.append(f"| {system} | {max(diffs):.1e} |")
    return "\n".join(lines)


def _same_inputs(a: dict, b: dict) -> bool | None:
    ia, ib = a.get("inputs"), b.get("inputs")
    if not ia or not ib:
        return None
    return ia.get("plan_key") == ib.get("plan_key") and \
        ia.get("source_digest") == ib.get("source_digest")


def check_scores(runs: dict[str, list[dict]], reference_system: str,
                 agents: bool = False) -> list[str]:
    """Compare each stratumlite run's scores with skrub's, rep by rep.

    A stratumlite run passes when its scores equal (``rtol=1e-9``) those of at
    least one skrub system of the same repetition: skrub itself differs from
    one process to another in the last digits when the BLAS thread count differs
    (``n_jobs=1`` gives a Ridge solve 2 threads, ``n_jobs=2`` 1 thread each),
    and stratumlite's thread budgets match one of them. skrub-vs-skrub
    differences are shown (``difference_table``) but are not failures. When
    the inputs differ (the example or the data changed during the session),
    that is reported instead of a score difference -- and still fails.
    """
    compare = compare_agent_results if agents else compare_search_results
    problems = []
    skrub_systems = [s for s in runs if s.startswith("skrub")]
    for system, reps in runs.items():
        if system.startswith("skrub"):
            continue
        for i, result in enumerate(reps):
            if "results" not in result:
                continue
            refs = [(s, runs[s][i]) for s in skrub_systems
                    if i < len(runs[s]) and "results" in runs[s][i]]
            if not refs:
                continue
            if any(not compare(ref["results"], result["results"]) for _, ref in refs):
                continue  # equal to at least one skrub run
            ref_name, ref = next(((s, r) for s, r in refs if s == reference_system), refs[0])
            if _same_inputs(ref, result) is False:
                problems.append(
                    f"{system} rep {i}: INPUTS DIFFER from {ref_name}'s (plan key "
                    f"{result['inputs'].get('plan_key')} vs {ref['inputs'].get('plan_key')}, "
                    f"sources {result['inputs'].get('source_digest')} vs "
                    f"{ref['inputs'].get('source_digest')}): the example or its data changed "
                    "during the session; rerun")
                continue
            for p in compare(ref["results"], result["results"]):
                problems.append(f"{system} rep {i} vs {ref_name}: {p}")
    return problems


# ------------------------------------------------------------------------------ machine


def machine_info() -> dict:
    import importlib.metadata as md

    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()),
    }
    try:
        import psutil

        info["memory_bytes"] = psutil.virtual_memory().total
    except ImportError:  # pragma: no cover
        info["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {}
    for pkg in ("stratumlite", "skrub", "scikit-learn", "pandas", "polars", "numpy",
                "lightgbm", "joblib", "numba", "threadpoolctl"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    info["versions"] = versions
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        info["git"] = head + (f" (+{len(dirty.splitlines())} uncommitted paths)"
                              if dirty else "")
    except OSError:  # pragma: no cover
        info["git"] = None
    return info


def machine_markdown(start: dict, end_load: list[float] | None = None) -> str:
    v = start["versions"]
    load = start["loadavg"]
    text = (f"Machine: {start['cores']} cores ({start['cores_available']} available), "
            f"{start['memory_bytes'] / 2**30:.1f} GiB, {start['platform']}, Python "
            f"{start['python']}; load average at start {load[0]:.2f} / {load[1]:.2f} / "
            f"{load[2]:.2f}")
    if end_load:
        text += f", at end {end_load[0]:.2f} / {end_load[1]:.2f} / {end_load[2]:.2f}"
    text += ".  \n" + "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items())
    text += f"; git {start.get('git')}."
    return text


# --------------------------------------------------------------------------- statistics


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def per_rep_ratios(runs, num: str, den: str, field: str = "wall_seconds") -> list[float]:
    """``num / den`` inside each repetition (both measured in the same rep)."""
    out = []
    for a, b in zip(runs.get(num, []), runs.get(den, [])):
        x, y = _field(a, field), _field(b, den_field(den, field))
        if x is None and a.get("timed_out") and field == "wall_seconds":
            x = a["timeout_seconds"]  # a lower bound: the ratio is then ">="
        if x is not None and y:
            out.append(x / y)
    return out


def _censored(runs, system: str) -> bool:
    """Whether a repetition of ``system`` timed out (its ratios are lower bounds)."""
    return any(r.get("timed_out") for r in runs.get(system, []))


def den_field(system: str, field: str) -> str:
    # a ratio "vs the bound" uses the bound, not the sequential run's wall time
    if system in ("dedup_bound", "agents_bound") and field == "wall_seconds":
        return "bound_seconds"
    return field


def _field(result: dict, field: str):
    return result.get(field)


def fmt_s(x) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 10:
        return f"{x:.1f} s"
    return f"{x:.2f} s"


def fmt_x(x) -> str:
    return "—" if x is None else f"{x:.2f}x"


def fmt_target(x, goal: str) -> str:
    """A measured ratio beside its goal (``"<= 1.25x"``): with four decimals
    when two would print the goal itself, so a value that misses by a hair
    does not read as the goal.

    >>> fmt_target(1.2512, "<= 1.25x"), fmt_target(2.24, ">= 6.0x"), fmt_target(None, "")
    ('1.2512x', '2.24x', '—')
    """
    if x is None:
        return "—"
    try:
        goal_value = float(goal.split()[-1].rstrip("x"))
    except (ValueError, IndexError):
        goal_value = None
    if goal_value is not None and round(x, 2) == round(goal_value, 2) and x != goal_value:
        return f"{x:.4f}x"
    return fmt_x(x)


def fmt_mb(x) -> str:
    return "—" if not x else f"{x / 2**20:.0f} MB"


# --------------------------------------------------------------------------- reporting


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def write_json(payload: dict, stamp: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"run-{stamp}.json"
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path


def _with_section(text: str, command: str, markdown: str) -> str:
    """``text`` with this command's section replaced (appended if absent)."""
    begin, end = f"<!-- begin {command} -->", f"<!-- end {command} -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        return head + block + tail.lstrip("\n")
    return text.rstrip("\n") + "\n\n" + block


def write_report_section(command: str, markdown: str) -> Path:
    """Replace this command's section of today's report and of ``latest.md``
    (each file's other sections stay as they are: ``latest.md`` may hold
    sections of earlier days, or of runs made in another checkout)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"report-{_dt.date.today().isoformat()}.md"
    header = (f"# stratumlite benchmarks, {_dt.date.today().isoformat()}\n\n"
              "Produced by `python -m benchmarks <command>` (see benchmarks/README.md). "
              "Each section is replaced when its command runs again.\n\n")
    for target in (path, RESULTS / "latest.md"):
        text = target.read_text() if target.exists() else header
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(_with_section(text, command, markdown))
        os.replace(tmp, target)
    return path


def plot_ratios(title: str, groups: dict[str, dict[str, float]], stamp: str, command: str,
                targets: dict[str, float] | None = None) -> Path | None:
    """Bar chart: one group per example, one bar per ratio (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return None
    labels = sorted({k for g in groups.values() for k in g})
    if not labels or not groups:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(groups) * max(1, len(labels))), 5.5))
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        xs, ys = [], []
        for i, g in enumerate(groups.values()):
            if g.get(label):
                xs.append(i + j * width)
                ys.append(g[label])
        bars = ax.bar(xs, ys, width, label=label)
        for b, y in zip(bars, ys):
            ax.annotate(f"{y:.1f}x", (b.get_x() + b.get_width() / 2, y), ha="center",
                        va="bottom", fontsize=7)
    for name, t in (targets or {}).items():
        ax.axhline(t, ls="--", lw=0.8, color="grey")
        ax.annotate(f"target {name} {t}x", (-0.45, t), fontsize=7, color="grey",
                    va="bottom")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels(list(groups), fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ratio (median of per-repetition ratios)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{command}-{stamp}.png"
    fig.savefig(path, dpi=110)
    shutil.copyfile(path, RESULTS / f"latest-{command}.png")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------- search runs


def warm_up(example: str, systems: list[str], rows: int | None,
            timeout: float | None = None, log=print) -> str | None:
    """One untimed run of the first stratumlite system on ``example``, its
    result discarded: numba compiles and caches its kernels next to the
    sources, once per checkout and signature, so the first stratumlite process
    of a fresh checkout would otherwise pay that compilation inside a timed
    repetition (the agent batch's first threads repetition: 18.0 s against
    12.6-12.9 s). Returns the system warmed up (None: no stratumlite system).
    """
    system = next((s for s in systems if s.startswith("stratumlite")
                   and s != "stratumlite_warm"), None)
    if system is None:
        return None
    log(f"warm-up (untimed): {system} on {example}")
    scratch = Path(tempfile.mkdtemp(prefix=f"slbench-warmup-{example}-"))
    try:
        run_worker(system, example, rows=rows, state_dir=str(scratch / "state"),
                   cores=os.cpu_count() or 1, timeout=timeout, log=log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return system


def run_search_session(examples: list[str], systems: list[str], reps: int,
                       rows: dict[str, int | None], *, n_jobs_cache: int = 2,
                       explain: bool = True, timeout: float | None = None,
                       log=print, warmup: bool = True) -> dict:
    """Every system on every example, ``reps`` times, interleaved, after one
    untimed warm-up run per example (:func:`warm_up`).

    Returns ``{example: {system: [result per rep]}}``. ``stratumlite_warm``
    reuses the state dir its repetition's ``stratumlite_cold`` filled.
    """
    cores = os.cpu_count() or 1
    runs: dict[str, dict[str, list]] = {e: {s: [] for s in systems} for e in examples}
    order = [s for s in systems if s != "stratumlite_warm"]
    if "stratumlite_warm" in systems:
        if "stratumlite_cold" not in systems:
            raise ValueError("stratumlite_warm needs stratumlite_cold in the same run")
        order.insert(order.index("stratumlite_cold") + 1, "stratumlite_warm")
    if warmup:
        for example in examples:
            warm_up(example, systems, rows.get(example), timeout=timeout, log=log)
    for rep in range(reps):
        for example in examples:
            log(f"rep {rep + 1}/{reps}, {example}")
            scratch = Path(tempfile.mkdtemp(prefix=f"slbench-{example}-"))
            try:
                for system in order:
                    # a warm run reuses its cold run's state dir; every other
                    # system starts from an empty one of its own
                    state = scratch / f"state-{system.replace('_warm', '_cold')}"
                    result = run_worker(
                        system, example, rows=rows.get(example), state_dir=str(state),
                        skrub_cache_dir=str(scratch / f"skrub-cache-{system}"),
                        n_jobs=n_jobs_cache, cores=cores,
                        explain=explain and system.startswith("stratumlite"),
                        timeout=timeout, log=log)
                    result["rep"] = rep
                    runs[example][system].append(result)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return runs


def reference_system(systems) -> str | None:
    for s in ("skrub_n1_1t", "skrub_n1", "skrub_n2", "skrub_cache_n1", "skrub_cache",
              "skrub_cache_n2"):
        if s in systems:
            return s
    return next((s for s in systems if s.startswith("skrub")), None)


def fill_skrub_fits(runs: dict[str, list]) -> None:
    """skrub's fits = configurations x folds x estimator steps (stated as such)."""
    naive = next((r.get("fits_naive") for s, reps in runs.items() for r in reps
                  if r.get("fits_naive")), None)
    for system, reps in runs.items():
        for r in reps:
            if system.startswith("skrub") and r.get("fits") is None:
                r["fits"] = naive


def search_table(runs: dict[str, list], cores: int) -> str:
    """One row per system: median wall, range, fits, memory, vs the bound."""
    bound = median([r.get("bound_seconds") for r in runs.get("dedup_bound", [])])
    lines = [
        "| system | median wall | min – max | vs dedup bound | CPU s | fits "
        "| peak RSS (tree + shm, sampled) | peak PSS (tree + shm, sampled) "
        "| peak RSS (self + largest child) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system, reps in runs.items():
        if not reps:
            continue
        walls = [r["wall_seconds"] for r in reps if r["wall_seconds"] is not None]
        shown = fmt_wall(reps, walls)
        name = system
        if system == "dedup_bound":
            name = f"dedup_bound (sum of task s / {cores} cores)"
            shown = fmt_s(bound)
            walls = [r["bound_seconds"] for r in reps]
        vs = per_rep_ratios(runs, system, "dedup_bound") if system != "dedup_bound" else []
        vs_text = ("≥ " if _censored(runs, system) else "") + fmt_x(median(vs)) if vs else "—"
        fits = median([r.get("fits") for r in reps])
        span = f"{fmt_s(min(walls))} – {fmt_s(max(walls))}" if walls else "—"
        lines.append(
            f"| {name} | {shown} | {span} | "
            f"{vs_text} | "
            f"{fmt_s(median([r.get('cpu_seconds') for r in reps]))} | "
            f"{'—' if fits is None else int(fits)} | "
            f"{fmt_mb(median([r.get('peak_tree_rss_sampled') for r in reps]))} | "
            f"{fmt_mb(median([r.get('peak_tree_pss_sampled') for r in reps]))} | "
            f"{fmt_mb(median([r.get('peak_rss') for r in reps]))} |")
    if "dedup_bound" in runs and runs["dedup_bound"]:
        seq = median([r["wall_seconds"] for r in runs["dedup_bound"]])
        lines.append(f"\n(dedup_bound's own sequential wall time: {fmt_s(seq)}; the bound "
                     f"is {fmt_s(bound)} = distinct tasks' single-thread seconds / {cores}.)")
    return "\n".join(lines)


RATIO_PAIRS = (
    ("skrub_n1", "stratumlite_cold", "skrub n_jobs=1 / stratumlite cold"),
    ("skrub_n2", "stratumlite_cold", "skrub n_jobs=2 / stratumlite cold"),
    ("skrub_cache", "stratumlite_cold", "skrub cache / stratumlite cold"),
    ("skrub_cache_n1", "stratumlite_cold", "skrub cache n_jobs=1 / stratumlite cold"),
    ("skrub_cache_n2", "stratumlite_cold", "skrub cache n_jobs=2 / stratumlite cold"),
    ("stratumlite_cold", "dedup_bound", "stratumlite cold / dedup bound"),
    ("stratumlite_cold", "stratumlite_warm", "stratumlite cold / warm"),
    ("skrub_n1", "dedup_bound", "skrub n_jobs=1 / dedup bound"),
    ("skrub_n1", "stratumlite_cold_processes", "skrub n_jobs=1 / stratumlite cold, processes"),
    ("skrub_cache", "stratumlite_cold_processes", "skrub cache / stratumlite cold, processes"),
    ("stratumlite_cold_processes", "dedup_bound", "stratumlite cold, processes / dedup bound"),
    ("skrub_n1", "stratumlite_cold_budget", "skrub n_jobs=1 / stratumlite cold, 512MB budget"),
    ("stratumlite_cold_budget", "dedup_bound", "stratumlite cold, 512MB budget / dedup bound"),
)


def ratio_rows(runs) -> list[tuple[str, float | None, list[float]]]:
    rows = []
    for num, den, label in RATIO_PAIRS:
        if runs.get(num) and runs.get(den):
            rs = per_rep_ratios(runs, num, den)
            rows.append((label, median(rs), rs))
    return rows


def ratio_table(runs) -> str:
    lines = ["| ratio (same repetition) | median | per repetition |", "|---|---:|---|"]
    for label, med, rs in ratio_rows(runs):
        num = next(n for n, _, lbl in RATIO_PAIRS if lbl == label)
        bound = "≥ " if _censored(runs, num) else ""
        lines.append(f"| {label} | {bound}{fmt_x(med)} | "
                     f"{', '.join(f'{r:.2f}' for r in rs)} |")
    return "\n".join(lines)


def overhead_table(runs) -> str:
    """Where stratumlite's wall time goes (medians over repetitions)."""
    lines = ["| system | wall | before first task | idle between tasks | after last task "
             "| executing (sum over workers) | of which outside the operator (cache "
             "writes/reads, hand-off) | operator compute (sum of task s) | mean concurrency "
             "| core utilization | CPU s of the process's threads | runnable but waiting for a "
             "CPU (other load) | tasks (by status) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for system in ("stratumlite_cold", "stratumlite_warm", "dedup_bound",
                   "stratumlite_agents", "stratumlite_agents_processes", "agents_bound"):
        reps = [r for r in runs.get(system, []) if r.get("records")]
        if not reps:
            continue

        def m(key, reps=reps):
            return median([r["records"].get(key) for r in reps])

        status = reps[0]["records"]["by_status"]
        conc = m("mean_concurrency")
        util = m("utilization")
        lines.append(
            f"| {system} | {fmt_s(m('wall'))} | {fmt_s(m('before_first_task'))} | "
            f"{fmt_s(m('idle_between_tasks'))} | {fmt_s(m('after_last_task'))} | "
            f"{fmt_s(m('executing_seconds'))} | {fmt_s(m('in_task_not_compute'))} | "
            f"{fmt_s(m('sum_task_seconds'))} | {'—' if conc is None else f'{conc:.2f}'} | "
            f"{'—' if util is None else f'{util:.0%}'} | "
            f"{fmt_s(median([r.get('threads_cpu_seconds') for r in reps]))} | "
            f"{fmt_s(median([r.get('runqueue_wait_seconds') for r in reps]))} | "
            f"{reps[0]['records']['tasks']} "
            f"({', '.join(f'{k} {v}' for k, v in status.items())}) |")
    return "\n".join(lines)


def top_ops_table(result: dict, n: int = 10) -> str:
    lines = ["| operator | tasks | task seconds |", "|---|---:|---:|"]
    for row in result["records"]["top_operators"][:n]:
        lines.append(f"| {row['op']} | {row['tasks']} | {row['seconds']:.2f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- commands


def _finish(command: str, payload: dict, markdown: str, problems: list[str], stamp: str,
            plot_groups=None, targets=None, log=print) -> int:
    payload["score_problems"] = problems
    payload["machine_end_loadavg"] = list(os.getloadavg())
    if problems:
        markdown += ("\n\n**SCORE MISMATCH — scores differ from the skrub reference "
                     "(rtol 1e-9):**\n\n" + "\n".join(f"- {p}" for p in problems[:40]))
        if len(problems) > 40:
            markdown += f"\n- ... {len(problems) - 40} more (see the JSON file)"
    if plot_groups:
        png = plot_ratios(command, plot_groups, stamp, command, targets)
        if png is not None:
            markdown += f"\n\nPlot: `{png.relative_to(REPO)}`."
    json_path = write_json(payload, stamp)
    markdown += f"\n\nRaw data: `{json_path.relative_to(REPO)}`."
    report = write_report_section(command, markdown)
    log(markdown)
    log(f"\nreport: {report}\njson: {json_path}")
    if problems:
        log("\nSCORE MISMATCH: " + "; ".join(problems[:5]), file=sys.stderr)
        return 2
    return 0


def _eprint(*args, file=None, **kwargs):
    print(*args, file=file or sys.stdout, flush=True, **kwargs)


def cmd_run(examples: list[str], reps: int, rows: int | None, systems: list[str],
            n_jobs_cache: int = 2, timeout: float | None = None, log=_eprint) -> int:
    stamp = timestamp()
    machine = machine_info()
    runs = run_search_session(examples, systems, reps, {e: rows for e in examples},
                              n_jobs_cache=n_jobs_cache, timeout=timeout, log=log)
    return render_run(runs, machine, list(os.getloadavg()), reps, rows, systems,
                      n_jobs_cache, stamp, log)


def render_run(runs: dict, machine: dict, end_load, reps: int, rows: int | None,
               systems: list[str], n_jobs_cache: int, stamp: str, log=_eprint,
               note: str = "") -> int:
    cores = machine["cores"]
    md = [f"## Kaggle examples: every system, {reps} repetition(s)\n",
          machine_markdown(machine, end_load) + note,
          f"\nEach system ran in a fresh process; rows: {rows or 'each example default'}; "
          f"skrub_cache uses n_jobs={n_jobs_cache}. Wall = the `make_grid_search(fitted=True)` "
          "call (data loading and DataOp construction excluded; skrub's eager previews off "
          "in both). skrub's fits are configurations x folds x estimator steps (what a "
          "search without sharing runs); stratumlite's are fits executed (`stats_`)."]
    problems = []
    plot_groups = {}
    for example, ex_runs in runs.items():
        fill_skrub_fits(ex_runs)
        ref = reference_system(ex_runs)
        probs = check_scores(ex_runs, ref) if ref else []
        problems += [f"{example}: {p}" for p in probs]
        md.append(f"\n### {example}\n")
        md.append(search_table(ex_runs, cores))
        md.append("\n" + ratio_table(ex_runs))
        md.append(f"\nScores vs {ref}: " + ("**MISMATCH** (details at the end)" if probs else
                                             SCORES_OK))
        if ref:
            md.append("\n" + difference_table(ex_runs, ref))
        if any(p.startswith("skrub") for p in probs):
            md.append(" skrub disagrees with itself between processes on this example: it "
                      "is not deterministic (unseeded randomness, e.g. a default "
                      "`StringEncoder`), so no engine can match it; seed the example.")
        plot_groups[example] = {label: med for label, med, _ in ratio_rows(ex_runs)
                                if med and "skrub n_jobs=1 / dedup" not in label}
    md.append("\n### Where stratumlite's time goes\n")
    for example, ex_runs in runs.items():
        md.append(f"\n{example}:\n\n" + overhead_table(ex_runs))
    payload = {"command": "run", "machine": machine, "reps": reps, "rows": rows,
               "systems": systems, "runs": runs}
    return _finish("run", payload, "\n".join(md), problems, stamp, plot_groups, log=log)


RUNTIME_TARGETS = {
    "skrub n_jobs=1 / stratumlite cold": (">=", 6.0),
    "skrub cache / stratumlite cold": (">=", 4.0),
    "stratumlite cold / dedup bound": ("<=", 1.25),
    "stratumlite cold / warm": (">=", 20.0),
}


def cmd_runtime(reps: int, rows: int, systems: list[str], n_jobs_cache: int = 2,
                timeout: float | None = None, log=_eprint) -> int:
    stamp = timestamp()
    machine = machine_info()
    example = "flights_runtime"
    runs_all = run_search_session([example], systems, reps, {example: rows},
                                  n_jobs_cache=n_jobs_cache, timeout=timeout, log=log)
    runs = runs_all[example]
    return render_runtime(runs, machine, list(os.getloadavg()), reps, rows, systems,
                          n_jobs_cache, stamp, log)


def render_runtime(runs: dict, machine: dict, end_load, reps: int, rows: int,
                   systems: list[str], n_jobs_cache: int, stamp: str, log=_eprint,
                   note: str = "") -> int:
    fill_skrub_fits(runs)
    cores = machine["cores"]
    ref = reference_system(runs)
    problems = check_scores(runs, ref) if ref else []
    ratios = {label: (med, rs) for label, med, rs in ratio_rows(runs)}
    # the cache target: against the best skrub-with-cache variant measured
    cache_labels = [lbl for lbl in ratios if lbl.startswith("skrub cache")]
    best_cache = min(cache_labels, key=lambda lbl: ratios[lbl][0] or math.inf, default=None)
    targets = []
    for label, (op, target) in RUNTIME_TARGETS.items():
        key = best_cache if label == "skrub cache / stratumlite cold" else label
        med = ratios.get(key, (None,))[0] if key else None
        if med is None:
            targets.append((label, f"{op} {target}", None, "not run"))
            continue
        ok = med >= target if op == ">=" else med <= target
        targets.append((key, f"{op} {target}x", med, "met" if ok else "MISSED"))
    # memory: stratumlite cold's sampled tree peak vs skrub's (n_jobs=1 and 2)
    for sl in ("stratumlite_cold", "stratumlite_cold_budget"):
        sl_mem = median([r.get("peak_tree_rss_sampled") for r in runs.get(sl, [])])
        for sk in ("skrub_n1", "skrub_n2"):
            sk_mem = median([r.get("peak_tree_rss_sampled") for r in runs.get(sk, [])])
            if sl_mem and sk_mem:
                targets.append((f"peak memory {sl} vs {sk}", "<= 1.0x",
                                sl_mem / sk_mem, "met" if sl_mem <= sk_mem else "MISSED"))
    md = [f"## Runtime benchmark (issue 4): flights, {rows:,} rows sampled, "
          "2 feature variants x 4 models x 3 folds\n",
          machine_markdown(machine, end_load) + note,
          f"\n{reps} repetition(s); every system in a fresh process; ratios inside each "
          f"repetition, then the median. skrub_cache: skrub's joblib cache (`SKB_CACHE`, a "
          f"fresh directory each repetition), n_jobs={n_jobs_cache} unless the system "
          "name says otherwise. Wall = the `make_grid_search(fitted=True)` call.\n",
          search_table(runs, cores), "\n" + ratio_table(runs),
          "\n### Targets\n", "| target | goal | measured | |", "|---|---:|---:|---|"]
    for label, goal, med, verdict in targets:
        md.append(f"| {label} | {goal} | {fmt_target(med, goal)} | {verdict} |")
    md.append(f"\nScores vs {ref}: " + ("**MISMATCH** (details at the end)" if problems else
                                        SCORES_OK) if ref else f"\n{NOT_CHECKED}")
    if ref:
        md.append("\n" + difference_table(runs, ref))
    md.append("\n### Where stratumlite's time goes\n")
    md.append(overhead_table(runs))
    cold = [r for r in runs.get("stratumlite_cold", []) if r.get("records")]
    if cold:
        md.append("\nTask time by operator (stratumlite cold, repetition 1):\n")
        md.append(top_ops_table(cold[0]))
        if cold[0].get("explain_tail"):
            md.append("\n`stratumlite.explain(search)` totals (cold, repetition 1):\n\n```\n"
                      + cold[0]["explain_tail"] + "\n```")
    warm = [r for r in runs.get("stratumlite_warm", []) if r.get("records")]
    if warm:
        md.append("\nTask time by operator (stratumlite warm, repetition 1):\n")
        md.append(top_ops_table(warm[0]))
    payload = {"command": "runtime", "machine": machine, "reps": reps, "rows": rows,
               "systems": systems, "runs": runs, "targets": targets,
               "n_jobs_cache": n_jobs_cache, "note": note}
    plot = {f"flights {rows:,} rows": {lbl: med for lbl, (med, _) in ratios.items()
                                       if med and "skrub n_jobs=1 / dedup" not in lbl}}
    return _finish("runtime", payload, "\n".join(md), problems, stamp, plot,
                   targets={"vs skrub n1": 6.0, "vs cache": 4.0, "cold/warm": 20.0,
                            "cold/bound (at most)": 1.25}, log=log)


AGENT_RATIOS = (
    ("skrub_agents", "stratumlite_agents", "skrub one by one / stratumlite batch (target)"),
    ("skrub_agents_1t", "stratumlite_agents",
     "skrub one by one, 1 BLAS thread / stratumlite batch"),
    ("skrub_agents", "stratumlite_agents_processes",
     "skrub one by one / stratumlite batch, process executor"),
    ("skrub_agents", "agents_bound", "skrub one by one / dedup bound"),
    ("stratumlite_agents", "agents_bound", "stratumlite batch / dedup bound"),
)


def agent_ratio_table(runs) -> str:
    lines = ["| ratio (same repetition) | median | per repetition |", "|---|---:|---|"]
    for num, den, label in AGENT_RATIOS:
        if runs.get(num) and runs.get(den):
            rs = per_rep_ratios(runs, num, den)
            lines.append(f"| {label} | {fmt_x(median(rs))} | "
                         f"{', '.join(f'{r:.2f}' for r in rs)} |")
    return "\n".join(lines)


def cmd_agents(reps: int, rows: int | None, systems: list[str], skrub_n_jobs: int = 1,
               timeout: float | None = None, log=_eprint) -> int:
    stamp = timestamp()
    machine = machine_info()
    cores = machine["cores"]
    runs: dict[str, list] = {s: [] for s in systems}
    warm_up("agents", systems, rows, timeout=timeout, log=log)
    for rep in range(reps):
        log(f"rep {rep + 1}/{reps}, agents")
        scratch = Path(tempfile.mkdtemp(prefix="slbench-agents-"))
        try:
            for system in systems:
                r = run_worker(system, "agents", rows=rows, state_dir=str(scratch / system),
                               n_jobs=skrub_n_jobs, cores=cores, timeout=timeout, log=log)
                r["rep"] = rep
                runs[system].append(r)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return render_agents(runs, machine, list(os.getloadavg()), reps, rows, systems,
                         skrub_n_jobs, stamp, log)


def render_agents(runs: dict, machine: dict, end_load, reps: int, rows, systems,
                  skrub_n_jobs: int, stamp: str, log=_eprint, note: str = "") -> int:
    cores = machine["cores"]
    checked = any(s.startswith("skrub") and runs.get(s) for s in runs)
    problems = check_scores(runs, "skrub_agents", agents=True) if checked \
        else []
    bound = median([r.get("bound_seconds") for r in runs.get("agents_bound", [])])
    lines = ["| system | median wall | min – max | vs bound | CPU s | estimator fits "
             "| peak RSS (tree + shm) | peak PSS (tree + shm) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for system, reps_ in runs.items():
        walls = [r["bound_seconds" if system == "agents_bound" else "wall_seconds"]
                 for r in reps_]
        vs = per_rep_ratios(runs, system, "agents_bound") if system != "agents_bound" else []
        fits = median([r.get("fits") for r in reps_])
        name = f"agents_bound (sum of task s / {cores})" if system == "agents_bound" \
            else system
        if system.startswith("skrub_agents"):
            name += f" (one by one, n_jobs={skrub_n_jobs}"
            name += ", BLAS/OpenMP 1 thread)" if system.endswith("_1t") else ")"
            fits = None
        lines.append(f"| {name} | {fmt_s(median(walls))} | {fmt_s(min(walls))} – "
                     f"{fmt_s(max(walls))} | {fmt_x(median(vs)) if vs else '—'} | "
                     f"{fmt_s(median([r.get('cpu_seconds') for r in reps_]))} | "
                     f"{'—' if fits is None else int(fits)} | "
                     f"{fmt_mb(median([r.get('peak_tree_rss_sampled') for r in reps_]))} | "
                     f"{fmt_mb(median([r.get('peak_tree_pss_sampled') for r in reps_]))} |")
    speed = per_rep_ratios(runs, "skrub_agents", "stratumlite_agents")
    med = median(speed)
    md = [f"## Agent batch: 20 separately written pipelines, loans "
          f"({rows or 10_000} rows), 3-fold CV\n",
          machine_markdown(machine, end_load) + note,
          f"\n{reps} repetition(s). skrub: `.skb.cross_validate(cv=KFold(3), scoring='r2')` "
          "for each pipeline in turn; stratumlite: one `cross_validate_many` call. "
          "Pipelines in `benchmarks/pipelines.py` (`agent_01` ... `agent_20`).\n",
          "\n".join(lines), "\n" + agent_ratio_table(runs),
          f"\nTarget >= 10x: **{'met' if med and med >= 10 else 'MISSED'}** "
          f"({fmt_x(med)}); bound {fmt_s(bound)}.",
          ("\nScores per pipeline vs skrub: " + ("**MISMATCH** (details at the end)"
                                                 if problems else SCORES_OK_AGENTS))
          if checked else f"\n{NOT_CHECKED}",
          "\n" + difference_table(runs, "skrub_agents") if runs.get("skrub_agents") else "",
          "\n### Where stratumlite's time goes\n", overhead_table(runs)]
    sl = [r for r in runs.get("stratumlite_agents", []) if r.get("records")]
    if sl:
        md.append("\nTask time by operator (stratumlite batch, repetition 1):\n")
        md.append(top_ops_table(sl[0]))
    payload = {"command": "agents", "machine": machine, "reps": reps, "rows": rows,
               "systems": systems, "runs": runs, "skrub_n_jobs": skrub_n_jobs, "note": note}
    plot = {"agents": {"skrub one by one / stratumlite": med,
                       **({"stratumlite / bound": median(per_rep_ratios(
                           runs, "stratumlite_agents", "agents_bound"))}
                          if runs.get("agents_bound") else {})}}
    return _finish("agents", payload, "\n".join(md), problems, stamp, plot,
                   targets={"": 10.0}, log=log)


def scaling_ratio_pairs(systems: list[str]) -> list[tuple[str, str]]:
    """The ratios the scaling table shows: each skrub timing system over each
    stratumlite system (a speed-up: > 1 means stratumlite is faster), then each
    stratumlite system over the dedup bound (how far from the physical limit).
    ``_1t`` systems are score references, not timing baselines.

    >>> scaling_ratio_pairs(["skrub_n1", "skrub_n1_1t", "stratumlite_cold", "dedup_bound"])
    [('skrub_n1', 'stratumlite_cold'), ('stratumlite_cold', 'dedup_bound')]
    """
    ours = [s for s in systems if s.startswith("stratumlite")]
    peers = [s for s in systems if s.startswith("skrub") and not s.endswith("_1t")]
    pairs = [(p, o) for p in peers for o in ours]
    if "dedup_bound" in systems:
        pairs += [(o, "dedup_bound") for o in ours]
    return pairs


def cmd_scaling(rows_list: list[int], reps: int, systems: list[str],
                timeout: float | None = None, log=_eprint) -> int:
    stamp = timestamp()
    machine = machine_info()
    example = "flights_runtime"
    by_rows = {}
    for rows in rows_list:
        # one warm-up for the whole command: the kernels compiled on the first
        # size serve the others
        runs = run_search_session([example], systems, reps, {example: rows},
                                  explain=False, timeout=timeout, log=log,
                                  warmup=rows == rows_list[0])[example]
        fill_skrub_fits(runs)
        by_rows[rows] = runs
    return render_scaling(by_rows, systems, machine, list(os.getloadavg()), reps, stamp, log)


def render_scaling(by_rows: dict[int, dict], systems: list[str], machine: dict, end_load,
                   reps: int, stamp: str, log=_eprint, note: str = "") -> int:
    """The scaling section (times, speed-ups, growth exponents, score check)
    from ``{rows: {system: [result per repetition]}}``."""
    by_rows = dict(sorted(by_rows.items()))
    problems = []
    for rows, runs in by_rows.items():
        ref = reference_system(runs)
        problems += [f"{rows} rows: {p}" for p in (check_scores(runs, ref) if ref else [])]
    pairs = scaling_ratio_pairs(systems)
    lines = ["| rows sampled | " + " | ".join(systems)
             + "".join(f" | {a} / {b}" for a, b in pairs) + " |",
             "|---:|" + "---:|" * (len(systems) + len(pairs))]
    for rows, runs in by_rows.items():
        cells = []
        for s in systems:
            field = "bound_seconds" if s == "dedup_bound" else "wall_seconds"
            cells.append(fmt_s(median([r[field] for r in runs[s]])))
        cells += [fmt_x(median(per_rep_ratios(runs, a, b))) for a, b in pairs]
        lines.append(f"| {rows:,} | " + " | ".join(cells) + " |")
    growth = ["\nGrowth exponent (log t2/t1 / log r2/r1; 1.0 = linear in rows):\n",
              "| from → to | " + " | ".join(systems) + " |",
              "|---|" + "---:|" * len(systems)]
    rl = list(by_rows)
    for a, b in zip(rl, rl[1:]):
        cells = []
        for s in systems:
            field = "bound_seconds" if s == "dedup_bound" else "wall_seconds"
            ta = median([r[field] for r in by_rows[a][s]])
            tb = median([r[field] for r in by_rows[b][s]])
            cells.append(f"{math.log(tb / ta) / math.log(b / a):.2f}" if ta and tb else "—")
        growth.append(f"| {a:,} → {b:,} | " + " | ".join(cells) + " |")
    md = ["## Scaling: the flights runtime search at growing row counts\n",
          machine_markdown(machine, end_load) + note,
          f"\n{reps} repetition(s) per size; rows sampled from the 336,776-row flights "
          "table before cancelled flights are dropped.\n",
          "\n".join(lines), "\n".join(growth)]
    ref = reference_system(systems)
    if ref:
        md.append(f"\nScores vs {ref}: " + ("**MISMATCH**" if problems else
                                            "every stratumlite run equals the skrub run of "
                                            "its repetition for every configuration and "
                                            "split (rtol 1e-9)."))
    else:
        md.append(f"\n{NOT_CHECKED}")
    payload = {"command": "scaling", "machine": machine, "reps": reps, "rows": list(by_rows),
               "systems": systems, "runs": {str(k): v for k, v in by_rows.items()}}
    plot = {f"{r:,}": {f"{a} / {b}": median(per_rep_ratios(runs, a, b)) for a, b in pairs}
            for r, runs in by_rows.items()} if pairs else None
    return _finish("scaling", payload, "\n".join(md), problems, stamp, plot, log=log)


def _report_scaling(paths: list[str], payloads: list[dict], log=_eprint) -> int:
    """Scaling runs merged: each row count from the later file that measured it
    (a size re-measured on a quiet machine replaces the earlier one)."""
    by_rows: dict[int, dict] = {}
    systems: list[str] = []
    for p in payloads:
        by_rows.update({int(k): v for k, v in p["runs"].items()})
        systems += [s for s in p["systems"] if s not in systems]
    systems = [s for s in systems if all(s in runs for runs in by_rows.values())]
    reps = min(len(r) for runs in by_rows.values() for r in runs.values() if r)
    note = _merged_note(paths, payloads)
    return render_scaling(by_rows, systems, payloads[0]["machine"],
                          payloads[-1].get("machine_end_loadavg"), reps, timestamp(), log,
                          note=note)


def cmd_compile(sizes: list[int], reps: int, fingerprint_rows: int,
                timeout: float | None = None, log=_eprint) -> int:
    stamp = timestamp()
    machine = machine_info()
    cmd = [sys.executable, "-m", "benchmarks.compile_bench", "--sizes",
           ",".join(map(str, sizes)), "--reps", str(reps), "--fingerprint-rows",
           str(fingerprint_rows)]
    proc = subprocess.run(cmd, cwd=REPO, env=_worker_env(), capture_output=True, text=True,
                          timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise BenchmarkError("compile benchmark failed:\n"
                             + "\n".join(proc.stderr.splitlines()[-25:]))
    data = json.loads(lines[-1][len(RESULT_PREFIX):])
    end_load = list(os.getloadavg())
    rows = ["| graph | nodes | construction (CPU) | to_plan (CPU) | optimize (CPU) "
            "| optimized nodes | to_plan+optimize wall | to_plan+optimize CPU | CPU per 1k nodes |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = []

    def total(case, kind=""):
        return case["to_plan" + kind] + (case.get("optimize" + kind) or 0)

    for case in data["cases"]:
        rows.append(
            f"| {case['shape']} {case['size']:,} | {case['plan_nodes']:,} | "
            f"{fmt_s(case['construct'])} ({fmt_s(case.get('construct_cpu'))}) | "
            f"{fmt_s(case['to_plan'])} ({fmt_s(case.get('to_plan_cpu'))}) | "
            f"{fmt_s(case['optimize'])} ({fmt_s(case.get('optimize_cpu'))}) | "
            f"{case.get('optimized_nodes', '—')} | {fmt_s(total(case))} | "
            f"{fmt_s(total(case, '_cpu'))} | "
            f"{total(case, '_cpu') / max(1, case['plan_nodes']) * 1e6:.0f} ms |")
    for shape in sorted({c["shape"] for c in data["cases"]}):
        cs = [c for c in data["cases"] if c["shape"] == shape]
        big = max(cs, key=lambda c: c["size"])
        small = min(cs, key=lambda c: c["size"])
        exp = (math.log(total(big, "_cpu") / total(small, "_cpu"))
               / math.log(big["plan_nodes"] / small["plan_nodes"])
               if total(small, "_cpu") > 0 and big is not small else None)
        verdicts.append(
            f"- {shape}: {big['plan_nodes']:,} nodes compile in {fmt_s(total(big))} wall, "
            f"{fmt_s(total(big, '_cpu'))} CPU (target < 2 s: wall **"
            f"{'met' if total(big) < 2 else 'MISSED'}**, CPU **"
            f"{'met' if total(big, '_cpu') < 2 else 'MISSED'}**); growth exponent of CPU time "
            f"{'—' if exp is None else f'{exp:.2f}'} (1.0 = linear: "
            f"**{'met' if exp is not None and exp < 1.2 else 'MISSED'}**)")
    fp = data["fingerprint"]
    md = ["## Core compile benchmark\n", machine_markdown(machine, end_load),
          f"\nMedian of {reps} runs per case in one fresh process; skrub's eager previews off "
          "(variables have no value, so nothing is previewed). `construction` is building "
          "the skrub DataOp graph (skrub's own cost, reported separately). `to_plan` is "
          "`stratumlite.frontend.to_plan(op)`, `optimize` is `stratumlite.optimizer.optimize` "
          "with the default context.\n", "\n".join(rows), "\n" + "\n".join(verdicts),
          f"\nSource fingerprint (`stratumlite.canonical.fingerprint`) of a "
          f"{fp['rows']:,} x {fp['columns']} frame, median of {fp['reps']}: "
          + ", ".join(f"{k} {v * 1e3:.1f} ms (CPU {fp['cpu_seconds'][k] * 1e3:.1f} ms)"
                      for k, v in fp["seconds"].items())
          + " (each timed call on a fresh copy, made outside the timer; a repeated call on "
          "the same object: "
          + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in fp.get("memoized_seconds", {}).items())
          + ").",
          "\nOn a loaded machine the CPU time of the (single-threaded) compile is the better "
          "estimate of its wall time on an idle one."]
    payload = {"command": "compile", "machine": machine, "data": data}
    return _finish("compile", payload, "\n".join(md), [], stamp, None, log=log)


def cmd_report(paths: list[str], log=_eprint) -> int:
    """Re-render a runtime report from saved runs; several files are merged
    (their repetitions concatenated: every ratio is still taken inside one
    repetition, medians are over all of them)."""
    payloads = []
    for spec in paths:
        # ``run-X.json:0,2`` keeps repetitions 0 and 2 of that file only
        path, _, keep = spec.partition(".json:")
        path = path if path.endswith(".json") else path + ".json"
        payload = json.loads(Path(path).read_text())
        if keep:
            wanted = {int(i) for i in keep.split(",")}
            payload["runs"] = {k: [r for i, r in enumerate(v) if i in wanted]
                               for k, v in payload["runs"].items()}
        payloads.append(payload)
    commands = {p["command"] for p in payloads}
    if len(commands) != 1 or not commands <= {"runtime", "agents", "run", "scaling"}:
        raise SystemExit("report: runtime, agents, run or scaling results (one kind at a "
                         "time)")
    if commands == {"run"}:
        return _report_run(paths, payloads, log)
    if commands == {"scaling"}:
        return _report_scaling(paths, payloads, log)
    if len({p["rows"] for p in payloads}) != 1:
        raise SystemExit("report: the runs have different row counts")
    runs: dict[str, list] = {}
    for p in payloads:
        for system, reps in p["runs"].items():
            runs.setdefault(system, []).extend(reps)
    # every system must have one result per repetition, in the same order
    n = min(len(v) for v in runs.values())
    runs = {k: v[:n] for k, v in runs.items()}
    first = payloads[0]
    note = _merged_note(paths, payloads)
    # systems measured in every file only (a ratio needs both sides in each rep)
    runs = {k: v for k, v in runs.items() if all(k in p["runs"] for p in payloads)}
    systems = [s for s in first["systems"] if s in runs]
    if first["command"] == "agents":
        return render_agents(runs, first["machine"], payloads[-1].get("machine_end_loadavg"),
                             n, first["rows"], systems, first.get("skrub_n_jobs", 1),
                             timestamp(), log, note=note)
    return render_runtime(runs, first["machine"], payloads[-1].get("machine_end_loadavg"), n,
                          first["rows"], systems, first.get("n_jobs_cache", 2),
                          timestamp(), log, note=note)


def _report_run(paths: list[str], payloads: list[dict], log=_eprint) -> int:
    """Kaggle-example runs side by side: each example from the file that measured
    it (an example in two files: the later file's repetitions)."""
    runs: dict[str, dict] = {}
    systems: list[str] = []
    for p in payloads:
        runs.update(p["runs"])
        systems += [s for s in p["systems"] if s not in systems]
    reps = min(len(r) for ex in runs.values() for r in ex.values() if r)
    note = _merged_note(paths, payloads)
    first = payloads[0]
    return render_run(runs, first["machine"], payloads[-1].get("machine_end_loadavg"), reps,
                      first["rows"], systems, first.get("n_jobs_cache", 2), timestamp(), log,
                      note=note)


def _merged_note(paths: list[str], payloads: list[dict]) -> str:
    return ("  \nMerged from " + ", ".join(Path(p).name for p in paths)
            + "; load average at the start of each: "
            + ", ".join(f"{p['machine']['loadavg'][0]:.2f}" for p in payloads) + ".")
