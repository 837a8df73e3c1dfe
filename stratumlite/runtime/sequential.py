"""The sequential executor: evaluates plan nodes on demand, one at a time.

Design
------
Each operator's ``evaluate(ctx)`` is a generator that yields requests
(``Need(i)``: the value of input ``i``; ``ASK_APPLY_ANCESTOR``: is an estimator
waiting for my result?) and returns its value. This executor is a trampoline:
an explicit stack of running generators, no recursion, so a 10,000-node chain
runs in constant Python stack depth.

State:

``memo``      node key -> value computed in this call (each key computed once;
              equal keys are the same computation, so sharing is free)
``stack``     frames ``(node, generator)`` of nodes started but not finished
``running_estimators``  how many estimator frames are on the stack; answers
              ``ASK_APPLY_ANCESTOR`` exactly as skrub's evaluator does

Inputs are demanded lazily, in the order the operator asks for them, which is
skrub's own order: an ``if_else`` evaluates one branch, ``predict`` never
evaluates ``y``.

Errors: an exception raised by a node is re-raised as
:class:`~stratumlite.errors.EvaluationError` naming the node (its operator,
name and where it was defined), with the original as ``__cause__``.
Stratumlite's own errors (a missing variable...) pass through unchanged.

Example::

    a = var("a")          #0
    b = a + 1             #1  -> Need(0)
    c = b * b             #2  -> Need(0) Need(1)... b computed once

"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import EvaluationError, StratumliteError
from ..plan import EvalContext, Need, Node


class NodeTiming:
    __slots__ = ("key", "seconds", "calls")

    def __init__(self, key):
        self.key = key
        self.seconds = 0.0
        self.calls = 0


def describe_node(node: Node) -> str:
    """One line naming a node for error messages."""
    op = node.op
    parts = [f"<{op.label}>"]
    if node.name:
        parts.append(f"named {node.name!r}")
    desc = getattr(op, "meta", {}).get("description") if hasattr(op, "meta") else None
    if desc:
        parts.append(f"({desc})")
    where = op.creation_line() if hasattr(op, "creation_line") else ""
    text = " ".join(parts)
    if where:
        text += f", defined at {where}"
    return text


def execute(
    outputs: Sequence[Node],
    mode: str,
    environment: dict | None,
    state: dict | None = None,
    *,
    memo: dict | None = None,
    on_node_done: Callable[[Node, Any, float], None] | None = None,
) -> list[Any]:
    """Evaluate ``outputs`` in ``mode``; returns their values in order.

    ``state`` (node key -> fitted private copy) is read in predict-like modes
    and written in fit modes. ``memo`` may be passed to share already computed
    values (key -> value) across calls. ``on_node_done(node, value, seconds)``
    is called after each node (own time, excluding its inputs).
    """
    environment = {} if environment is None else environment
    state = {} if state is None else state
    memo = {} if memo is None else memo
    results = []
    for out in outputs:
        results.append(_run_one(out, mode, environment, state, memo, on_node_done))
    return results


def _run_one(root, mode, environment, state, memo, on_node_done):
    if root.key in memo:
        return memo[root.key]
    stack: list[list] = []  # frames: [node, generator, own_seconds]
    n_estimators_running = 0
    ctx_base = dict(mode=mode, environment=environment, state=state)

    def push(node):
        nonlocal n_estimators_running
        ctx = EvalContext(node=node, **ctx_base)
        gen = node.op.evaluate(ctx)
        stack.append([node, gen, 0.0])
        if node.op.is_model_step():
            n_estimators_running += 1

    push(root)
    value: Any = None
    while stack:
        frame = stack[-1]
        node, gen = frame[0], frame[1]
        start = time.perf_counter()
        try:
            request = gen.send(value)
        except StopIteration as stop:
            frame[2] += time.perf_counter() - start
            stack.pop()
            if node.op.is_model_step():
                n_estimators_running -= 1
            value = stop.value
            memo[node.key] = value
            if on_node_done is not None:
                on_node_done(node, value, frame[2])
            continue
        except StratumliteError:
            raise
        except Exception as err:
            raise EvaluationError(
                f"Evaluation of node {describe_node(node)} failed in mode {mode!r}: "
                f"{type(err).__name__}: {err}",
                node=describe_node(node),
                original=err,
            ) from err
        frame[2] += time.perf_counter() - start
        if isinstance(request, Need):
            child = node.inputs[request.index]
            if child.key in memo:
                value = memo[child.key]
            else:
                value = None
                push(child)
        else:  # ASK_APPLY_ANCESTOR
            own = 1 if node.op.is_model_step() else 0
            value = n_estimators_running - own > 0
    return value
