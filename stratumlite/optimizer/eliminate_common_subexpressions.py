"""Common-subexpression elimination: one node per lineage key (hash-consing).

Before (as written, two equal ``x + 1`` nodes)::

    #3 mul(#1, #2)   #1 add(#0, 1)   #2 add(#0, 1)   #0 var x

After::

    #2 mul(#1, #1)   #1 add(#0, 1)   #0 var x

>>> import skrub
>>> from stratumlite.frontend import to_plan
>>> from stratumlite.optimizer import OptimizerContext, eliminate_common_subexpressions
>>> x = skrub.var("x")
>>> plan = to_plan((x + 1) * (x + 1))
>>> merged = eliminate_common_subexpressions(plan, OptimizerContext())
>>> len(plan.nodes("id")), len(merged.nodes("id"))
(4, 3)
"""

from __future__ import annotations

from ..plan import Node, Plan, replace_nodes


def eliminate_common_subexpressions(plan: Plan, context) -> Plan:
    """Keep the first node of each lineage key; rewire consumers to it."""
    canonical: dict[str, Node] = {}
    merged = 0

    def rewrite(node: Node) -> Node | None:
        nonlocal merged
        first = canonical.get(node.key)
        if first is None:
            canonical[node.key] = node
            return None
        if first is not node:
            merged += 1
        return first

    new = replace_nodes(plan, rewrite)
    if merged:
        context.notes["eliminate_common_subexpressions"] = f"{merged} nodes merged"
    return new
