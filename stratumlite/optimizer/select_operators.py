"""Operator selection: swap in a faster physical implementation when it is
known to give the same result.

The logical operator is "fit this scikit-learn/skrub estimator"; the registry
in :mod:`stratumlite.runtime.kernels.registry` lists numba kernels that are
subclasses of the originals with identical results for the parameters and
input types their static check accepts. A kernel replaces the original only
when (1) its check passes for the estimator's parameters, and (2) the cost rule
says it is faster: the rows the node will see (``context.n_rows``, known from
the bound sources) reach the kernel's measured ``min_rows``. Estimators nested
in parameters (a ``Pipeline`` step, ``TableVectorizer(numeric=...)``) are
considered too. Otherwise the original runs. Library defaults are never
changed: the rule only rewrites the plan's private copies.

Every decision, taken or not, is recorded with its reason in
``plan.meta["operator_selection"]`` (node key -> list of (estimator, choice,
reason)) for ``explain``.

Before (100,000 rows)::

    #2 Apply StandardScaler(X=#1)

After::

    #2 Apply FastStandardScaler(X=#1)   reason: ok

>>> import numpy as np, skrub
>>> from sklearn.preprocessing import StandardScaler
>>> from stratumlite.frontend import to_plan
>>> from stratumlite.optimizer import OptimizerContext, select_operators
>>> X = skrub.var("X")
>>> plan = to_plan(X.skb.apply(StandardScaler()))
>>> fast = select_operators(plan, OptimizerContext(n_rows=100_000))
>>> fast.output.op.label
'Apply FastStandardScaler'
>>> slow = select_operators(plan, OptimizerContext(n_rows=100))
>>> slow.output is plan.output, slow.meta["operator_selection"][plan.output.key][0][1]
(True, 'original')
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from ..plan import Const, Node, Plan, replace_nodes


def _select(estimator: Any, n_rows: int, decisions: list) -> Any:
    """The estimator, or a copy with kernels swapped in (recursively)."""
    from ..runtime.kernels.registry import KERNELS, select_kernel

    if not isinstance(estimator, BaseEstimator):
        return estimator
    if type(estimator) in KERNELS:
        chosen, reason = select_kernel(estimator, n_rows)
        decisions.append((type(estimator).__name__,
                          type(chosen).__name__ if chosen is not estimator else "original",
                          reason))
        return chosen
    try:
        params = estimator.get_params(deep=False)
    except Exception:
        return estimator
    changed = {}
    for name, value in params.items():
        new = _select_value(value, n_rows, decisions)
        if new is not value:
            changed[name] = new
    if not changed:
        return estimator
    from sklearn.base import clone

    copy = clone(estimator, safe=False)
    copy.set_params(**changed)
    return copy


def _select_value(value: Any, n_rows: int, decisions: list) -> Any:
    if isinstance(value, BaseEstimator):
        return _select(value, n_rows, decisions)
    if type(value) in (list, tuple):
        items = [_select_value(v, n_rows, decisions) for v in value]
        if any(a is not b for a, b in zip(items, value)):
            return type(value)(items)
    return value


def select_operators(plan: Plan, context) -> Plan:
    """Swap estimators for equivalent kernels where the cost rule says so."""
    if not getattr(context, "operator_selection", True):
        context.notes["select_operators"] = "off (Config.operator_selection=False)"
        return plan
    n_rows = getattr(context, "n_rows", None)
    if n_rows is None:
        context.notes["select_operators"] = "row count unknown: originals kept"
        return plan
    decisions: dict[str, list] = {}

    def rewrite(node: Node) -> Node | None:
        op = node.op
        found: list = []
        new = None
        if op.kind == "const" and isinstance(op.value, BaseEstimator):
            value = _select(op.value, n_rows, found)
            if value is not op.value:
                new = Node(Const(value), ())
        elif op.kind == "Apply" and isinstance(
                getattr(op, "templates", {}).get("estimator"), BaseEstimator):
            est = op.templates["estimator"]
            value = _select(est, n_rows, found)
            if value is not est:
                label = f"Apply {type(value).__name__}"
                new = Node(op.with_templates(label=label, estimator=value), node.inputs,
                           name=node.name)
        if found:
            decisions[(new or node).key] = found
        return new

    new_plan = replace_nodes(plan, rewrite)
    swapped = sum(1 for ds in decisions.values() for d in ds if d[1] != "original")
    context.notes["select_operators"] = (
        f"{swapped} kernel(s) selected of {sum(len(d) for d in decisions.values())} "
        f"candidates at {n_rows} rows")
    meta = {**new_plan.meta.get("operator_selection", {}), **decisions}
    return new_plan.with_outputs(new_plan.outputs, operator_selection=meta)
