"""The logical optimizer: an ordered list of rewrite rules, one per module.

Each rule is a pure function ``rule(plan, context) -> plan`` (see
:class:`Rule`). :func:`optimize` runs them in order and records, for explain,
what each changed (nodes before and after, what merged).

>>> import skrub
>>> from stratumlite.frontend import to_plan
>>> from stratumlite.optimizer import optimize
>>> x = skrub.var("x")
>>> result = optimize(to_plan((x + 1) * (x + 1)))
>>> for r in result.log:
...     print(r["rule"], r["nodes_before"], r["nodes_after"])
expand_choices 4 4
select_operators 4 4
eliminate_common_subexpressions 4 3
eliminate_dead_nodes 3 3
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..plan import Plan
from .eliminate_common_subexpressions import eliminate_common_subexpressions
from .eliminate_dead_nodes import eliminate_dead_nodes
from .expand_choices import expand_choices
from .select_operators import select_operators


@dataclass
class OptimizerContext:
    """Options reaching the rules (never global flags).

    ``assignments``: the configurations to expand (a list of
    ``{choice_id: outcome index or value}``); None keeps each choice at the
    outcome skrub would evaluate (its chosen or default outcome) unless
    ``all_configurations`` is set, in which case every configuration of the
    choices' grid is expanded. ``mode``: the mode the plan will run in (dead
    node elimination keeps what that mode reads).
    """

    assignments: list[dict[int, Any]] | None = None
    all_configurations: bool = False
    mode: str = "fit_transform"
    n_rows: int | None = None  # rows the plan will see (operator selection's cost rule)
    operator_selection: bool = True
    notes: dict[str, str] = field(default_factory=dict)


class Rule(Protocol):
    """A rewrite rule: a pure function of the plan and the context.

    It must return the same plan object when it changes nothing, never mutate
    its input, and never change what the plan computes.
    """

    __name__: str

    def __call__(self, plan: Plan, context: OptimizerContext) -> Plan: ...


# Order matters:
# 1. expand_choices first: it turns choices into plain nodes, which creates the
#    duplicates CSE merges (configurations sharing a prefix);
# 2. select_operators: swaps estimators for kernels; equal swaps give equal keys,
#    so it runs before CSE merges them;
# 3. eliminate_common_subexpressions: hash-consing by lineage key;
# 4. eliminate_dead_nodes last: it needs the final shape to know what a mode reads.
RULES: tuple[Rule, ...] = (
    expand_choices,
    select_operators,
    eliminate_common_subexpressions,
    eliminate_dead_nodes,
)


@dataclass
class OptimizeResult:
    plan: Plan
    log: list[dict]


def optimize(plan: Plan, rules: tuple[Rule, ...] = RULES,
             context: OptimizerContext | None = None) -> OptimizeResult:
    """Run ``rules`` in order; returns the plan and what each rule did."""
    context = context or OptimizerContext()
    log = []
    for rule in rules:
        before = len(plan.nodes("id"))
        new = rule(plan, context)
        after = len(new.nodes("id"))
        log.append({
            "rule": rule.__name__,
            "nodes_before": before,
            "nodes_after": after,
            "changed": new is not plan,
            "detail": context.notes.pop(rule.__name__, ""),
        })
        plan = new
    return OptimizeResult(plan, log)


__all__ = [
    "RULES",
    "OptimizeResult",
    "OptimizerContext",
    "Rule",
    "eliminate_common_subexpressions",
    "eliminate_dead_nodes",
    "expand_choices",
    "optimize",
    "select_operators",
]
