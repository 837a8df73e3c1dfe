"""Top-level functions: ``evaluate`` and ``explain``."""

from __future__ import annotations

from typing import Any

from . import frontend
from .config import Config
from .explain import render
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
            optimized: bool = False) -> str | dict:
    """A plan a person can read in a terminal (``format="text"``) or as data
    (``format="json"``).

    Nodes are numbered in execution order; each line shows the operator, a
    short parameter summary and the short lineage key; nodes read more than
    once are marked ``shared``; choices and sources are listed at the end.

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
    data_op = frontend.as_data_op(data_op)
    if environment is not None:
        frontend.check_environment(environment)
    plan = frontend.to_plan(data_op)
    title = "PLAN (as written)"
    dedupe = "id"
    if optimized:
        from .optimizer import OptimizerContext, optimize

        result = optimize(plan, context=OptimizerContext(all_configurations=True))
        return render(result.plan, format=format, title="PLAN (optimized)",
                      dedupe="key", rewrites=result.log)
    return render(plan, format=format, title=title, dedupe=dedupe)
