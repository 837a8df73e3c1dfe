"""Choice expansion: one plan holding the configurations of a search.

Each configuration (an assignment ``{choice_id: value}``, numbered and valued
exactly as skrub's parameter grid: an outcome index for ``choose_from`` /
``optional`` / ``choose_bool``, a number for ``choose_float`` / ``choose_int``)
becomes one output of the plan, in which every choice node is replaced by the
outcome it takes (numeric choices by a constant, ``choice.match`` by the
matching target). Because node keys are structural, two configurations that
share a prefix produce the same nodes there; CSE then keeps one.

Before (one output, a choice between two models after a shared scaler)::

    #4 Apply(X=#1, est=#3)   #3 choice('model': ridge | hgb)(#2a, #2b)
    #1 Apply StandardScaler(#0)   #0 var X

After (two outputs)::

    out0: Apply(X=#1, est=ridge)   out1: Apply(X=#1, est=hgb)   (#1 shared)

>>> import skrub
>>> from sklearn.linear_model import Ridge
>>> from sklearn.dummy import DummyRegressor
>>> from stratumlite.frontend import to_plan
>>> from stratumlite.optimizer import OptimizerContext, expand_choices
>>> X = skrub.var("X")
>>> model = skrub.choose_from([Ridge(), DummyRegressor()], name="model")
>>> plan = to_plan(X.skb.apply(model, y=skrub.var("y")))
>>> ctx = OptimizerContext(all_configurations=True)
>>> expanded = expand_choices(plan, ctx)
>>> len(expanded.outputs), expanded.meta["configurations"]
(2, [{0: 0}, {0: 1}])
"""

from __future__ import annotations

from typing import Any

from ..plan import Const, Node, Plan


def _is_choice(node: Node) -> bool:
    return node.op.kind in ("choice", "numeric_choice", "choice_match")


def _grid_configurations(plan: Plan) -> list[dict[int, Any]]:
    """Every configuration of the plan's grid, in the order skrub's grid search
    evaluates them (sklearn's ``ParameterGrid`` over ``data_op__<id>`` names)."""
    from sklearn.model_selection import ParameterGrid

    grid = plan.meta.get("grid")
    if not grid:
        return [{}]
    named = [{f"data_op__{k}": list(v) for k, v in sub.items()} for sub in grid]
    return [{int(k.removeprefix("data_op__")): v for k, v in params.items()}
            for params in ParameterGrid(named)]


def expand_configuration(plan: Plan, assignment: dict[int, Any], mode: str) -> Node:
    """The output node of ``plan`` with every choice resolved by ``assignment``."""
    memo: dict[int, Node] = {}
    for node in plan.nodes("id"):
        op = node.op
        if op.kind == "choice":
            idx = assignment.get(op.choice_id)
            if idx is None:
                idx = op.index_for(mode)
            memo[id(node)] = memo[id(node.inputs[idx])]
            continue
        if op.kind == "numeric_choice":
            value = assignment.get(op.choice_id)
            if value is None:
                value = (op.choice.default() if mode == "preview"
                         else op.choice.chosen_outcome_or_default())
            memo[id(node)] = Node(Const(value))
            continue
        if op.kind == "choice_match":
            choice_node = node.inputs[0]
            outcome = _outcome_value(choice_node, assignment, mode)
            try:
                position = op.keys.index(outcome)
            except ValueError:
                raise KeyError(outcome) from None
            memo[id(node)] = memo[id(node.inputs[1 + position])]
            continue
        inputs = tuple(memo[id(i)] for i in node.inputs)
        memo[id(node)] = node.with_inputs(inputs)
    return memo[id(plan.output)]


def _outcome_value(choice_node: Node, assignment, mode):
    op = choice_node.op
    if op.kind == "numeric_choice":
        value = assignment.get(op.choice_id)
        return op.choice.chosen_outcome_or_default() if value is None else value
    if op.kind == "choice_match":
        inner = _outcome_value(choice_node.inputs[0], assignment, mode)
        return op.keys.index(inner)  # pragma: no cover - nested match of a match
    idx = assignment.get(op.choice_id)
    if idx is None:
        idx = op.index_for(mode)
    return op.outcome_values[idx]


def expand_choices(plan: Plan, context) -> Plan:
    """Replace choices by the outcomes each configuration takes (see module doc)."""
    if not any(_is_choice(n) for n in plan.nodes("id")):
        return plan
    if context.assignments is not None:
        configs = list(context.assignments)
    elif context.all_configurations:
        configs = _grid_configurations(plan)
    else:
        configs = [{}]
    outputs = tuple(expand_configuration(plan, c, context.mode) for c in configs)
    context.notes["expand_choices"] = f"{len(configs)} configuration(s)"
    return Plan(outputs, {**plan.meta, "configurations": configs})
