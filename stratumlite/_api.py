"""Top-level functions: ``evaluate`` and ``explain``."""

from __future__ import annotations

from typing import Any

from . import frontend
from .config import Config
from .render import render
from .runtime.session import Session


def evaluate(data_op, environment: dict | None = None, *,
             config: Config | None = None) -> Any:
    """Evaluate a DataOp: the same value as ``data_op.skb.eval(environment)``.

    Parameters
    ----------
    data_op : skrub DataOp
    environment : dict or None
        Values for the variables; None uses the values the variables were
        created with.
    config : Config or None
        Runtime settings (executor, cache, lineage); default ``Config.from_env()``.

    >>> import skrub, stratumlite
    >>> a, b = skrub.var("a", 10), skrub.var("b", 5)
    >>> stratumlite.evaluate(a + b)
    15
    >>> stratumlite.evaluate(a + b, {"a": 1, "b": 2})
    3
    """
    data_op = frontend.as_data_op(data_op)
    env = frontend.eval_environment(data_op, environment)
    plan = frontend.to_plan(data_op)
    with Session(config or Config.from_env(), kind="evaluate") as session:
        task = session.request(plan.output, "fit_transform", session.bind(env))
        (value,) = session.run([task])
    return value


def explain(data_op, *, environment: dict | None = None, format: str = "text",
            optimized: bool = False, analyze: bool = False,
            config: Config | None = None) -> str | dict:
    """A plan a person can read in a terminal (``format="text"``) or as data
    (``format="json"``).

    Nodes are numbered in execution order; each line shows the operator, a
    short parameter summary and the short lineage key; nodes read more than
    once are marked ``shared``; choices and sources are listed at the end.

    ``optimized=True`` shows the plan after the optimizer (every configuration
    of the choices expanded, common sub-expressions merged) and the rewrites
    applied. ``analyze=True`` runs the plan (``evaluate``, on ``environment``)
    and adds, per node, wall time, thread budget, output shape and bytes and
    cache status, then totals, the critical path and peak memory. A fitted
    search object can be passed instead of a DataOp: its measured run is shown.

    >>> import skrub, stratumlite
    >>> x = skrub.var("x")
    >>> print(stratumlite.explain((x + 1) * (x + 1)))
    PLAN (as written): 4 nodes, 0 choices, 1 source
    #3 BinOp: mul  [...]
    ├── #1 BinOp: add  [...]
    │   └── #0 Var 'x'  [...] shared x2
    └── #2 BinOp: add  [...]
        └── -> #0 Var 'x' (shared, see above)
    sources:
      #0 Var 'x' [...]: value from the environment
    """
    from .search import ParamSearch

    if isinstance(data_op, ParamSearch):
        return _explain_search(data_op, format=format)
    data_op = frontend.as_data_op(data_op)
    if environment is not None:
        frontend.check_environment(environment)
    if analyze:
        return _explain_analyze(data_op, environment, format, config)
    plan = frontend.to_plan(data_op)
    title = "PLAN (as written)"
    dedupe = "id"
    if optimized:
        from .optimizer import OptimizerContext, optimize

        result = optimize(plan, context=OptimizerContext(all_configurations=True))
        return render(result.plan, format=format, title="PLAN (optimized)",
                      dedupe="key", rewrites=result.log)
    return render(plan, format=format, title=title, dedupe=dedupe)


def _peak_rss() -> int | None:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except Exception:  # pragma: no cover - not on this platform
        return None


def _explain_analyze(data_op, environment, format, config):
    import time

    from .render import Analysis, plan_to_dict, render_text, render_totals

    env = frontend.eval_environment(data_op, environment)
    plan = frontend.to_plan(data_op)
    analysis = Analysis()
    config = config or Config.from_env()
    start = time.perf_counter()
    with Session(config, on_done=analysis, kind="evaluate") as session:
        task = session.request(plan.output, "fit_transform", session.bind(env))
        session.run([task])
        events = getattr(session.values, "events", {})
        spilled = events.get("spilled", 0)
        memory_waits = session.memory_waits
    wall = time.perf_counter() - start
    data = plan_to_dict(plan, dedupe="key", title="PLAN (analyzed)",
                        metrics=analysis.metrics)
    data["totals"] = analysis.totals(plan, wall, config.workers, _peak_rss(), spilled,
                                     memory_waits)
    if format == "json":
        return data
    number = {n["key"]: n["id"] for n in data["nodes"]}
    return render_text(data) + "\n" + render_totals(data["totals"], number)


def _explain_search(search, format):
    from .plan import Plan
    from .render import Analysis, plan_to_dict, render_text, render_totals

    analysis = Analysis()
    for record in search.records_:
        analysis(record, None)
    outputs = tuple(dict.fromkeys(r.task.node for r in search.records_
                                  if not r.task.inner))
    plan = Plan(outputs)
    stats = search.stats_
    data = plan_to_dict(plan, dedupe="key", title="SEARCH PLAN (analyzed)",
                        metrics=analysis.metrics)
    data["totals"] = analysis.totals(plan, stats["wall_seconds"], stats["workers"],
                                     _peak_rss(), memory_waits=stats.get("memory_waits", 0))
    data["stats"] = stats
    data["operator_selection"] = getattr(search, "operator_selection_", {})
    if format == "json":
        return data
    number = {n["key"]: n["id"] for n in data["nodes"]}
    s = stats
    head = (f"search: {s['configurations']} configurations x {s['folds']} folds; "
            f"fits executed {s['fits_executed']} (a naive search runs {s['fits_naive']})"
            + (f", {s['fits_from_cache']} read from the cache" if s.get("fits_from_cache")
               else ""))
    text = head + "\n" + render_text(data) + "\n" + render_totals(data["totals"], number)
    selection = getattr(search, "operator_selection_", {})
    if selection:
        lines = ["operator selection:"]
        for key, decisions in selection.items():
            where = f"#{number[key]}" if key in number else key[:8]
            for original, chosen, reason in decisions:
                lines.append(f"  {where} {original} -> {chosen}: {reason}")
        text += "\n" + "\n".join(lines)
    return text
