"""Dead-node elimination: drop what the plan's mode never reads.

A plan's outputs define what is computed; what a mode does not read (the
``y`` branch when predicting, the outcomes of a choice that was not taken,
the fit-only arguments of an estimator) is dead. Since node keys depend on
their inputs, the nodes themselves are not rewritten: the rule records the
live set in ``plan.meta["live"]`` (keys), which serving and explain use, and
drops duplicate outputs.

Before (predict mode)::

    #3 Apply Ridge(X=#1, y=#2)   #2 data["y"]   #1 data[["x"]]   #0 var data

After: live = {#3, #1, #0}; #2 (the y branch) is dead.

>>> import skrub
>>> from sklearn.linear_model import Ridge
>>> from stratumlite.frontend import to_plan
>>> from stratumlite.optimizer import OptimizerContext, eliminate_dead_nodes
>>> data = skrub.var("data")
>>> pred = data[["x"]].skb.apply(Ridge(), y=data["y"])
>>> plan = eliminate_dead_nodes(to_plan(pred), OptimizerContext(mode="predict"))
>>> len(plan.meta["live"]), len(plan.nodes())
(3, 4)
"""

from __future__ import annotations

from ..plan import Plan, live_nodes


def eliminate_dead_nodes(plan: Plan, context) -> Plan:
    """Record the nodes ``context.mode`` reads; drop duplicate outputs."""
    live = live_nodes(plan.outputs, context.mode)
    outputs = tuple(dict.fromkeys(plan.outputs))
    dead = len({n.key for n in plan.nodes("id")}) - len(live)
    if dead:
        context.notes["eliminate_dead_nodes"] = (
            f"{dead} nodes not read in {context.mode!r} mode"
        )
    if len(outputs) == len(plan.outputs) and plan.meta.get("live") == live:
        return plan
    return plan.with_outputs(outputs, live=live)
