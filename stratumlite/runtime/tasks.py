"""Bound tasks: a plan node (the template) + mode + data (the binding).

Hamilton separates a ``TaskSpec`` from a ``TaskImplementation``; here the plan
:class:`~stratumlite.plan.Node` is the template and a :class:`Task` is that node
bound to an environment (the data), a mode, and the fitted state it reads.

Task identity is a lineage key too: ``lineage_key("task", mode|inner,
[node.key, env.key, fit_env_key])``, where ``env.key`` is made from the content
fingerprints of the environment's values (the sources). Two requests for the
same computation on the same data are the same task, across configurations,
folds and calls; no intermediate is ever hashed.

``inner`` is skrub's "running Apply ancestor" flag: an estimator step whose
result feeds another estimator transforms instead of predicting.

Mode normalisation: under an estimator (``inner``), ``fit`` and
``fit_transform`` compute the same thing, and so do ``predict``,
``predict_proba``, ``decision_function``, ``score`` and ``transform``, so inner
tasks use the normalised mode and are shared between the methods a search
calls (unless the plan reads the mode name with ``skrub.eval_mode()``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..canonical import fingerprint_once, tokenize
from ..errors import EvaluationError, StratumliteError
from ..plan import EvalContext, Need, Node, lineage_key, normalize_mode  # noqa: F401
from .memo import OperatorMemo, memo_scope

FIT_MODES = ("fit", "fit_transform", "preview")


def is_fit_mode(mode: str) -> bool:
    return mode == "preview" or "fit" in mode


class Binding:
    """An environment (variable name -> value) with its content key.

    >>> b = Binding({"x": 1})
    >>> b.key == Binding({"x": 1}).key
    True
    """

    __slots__ = ("env", "key", "label")

    def __init__(self, env: dict, key: str | None = None, label: str = ""):
        self.env = env
        self.key = key if key is not None else environment_key(env)
        self.label = label

    def __repr__(self):
        return f"<Binding {self.label or self.key[:8]}>"


def environment_key(env: dict, memo: dict | None = None) -> str:
    """Lineage key of an environment: the fingerprints of its values."""
    parts = []
    for name in sorted(env, key=repr):
        parts.append(tokenize(name) + ":" + fingerprint_once(env[name], memo))
    return lineage_key("environment", "", parts)


@dataclass(frozen=True, eq=False)
class Task:
    node: Node
    mode: str
    binding: Binding
    fit_binding: Binding | None  # whose fitted state non-fit modes read
    inner: bool
    requested: str = ""  # the mode the caller asked for (``mode`` is normalised)
    key: str = field(default="")

    def __post_init__(self):
        if not self.requested:
            object.__setattr__(self, "requested", self.mode)
        fit_key = self.fit_binding.key if self.fit_binding is not None else ""
        object.__setattr__(
            self, "key",
            lineage_key("task", f"{self.mode}|{int(self.inner)}",
                        [self.node.key, self.binding.key, fit_key]),
        )

    @property
    def fitting(self) -> bool:
        return is_fit_mode(self.mode)

    def state_binding(self) -> Binding:
        return self.binding if self.fitting else self.fit_binding


@dataclass
class Done:
    value: Any
    state: dict  # node key -> fitted private copy (fit modes)
    seconds: float
    stored: bool = False  # written to the persistent cache


@dataclass
class Missing:
    index: int  # the input the operator asked for and was not given


def run_task(task: Task, inputs: dict[int, Any], state: dict,
             threads: int = 1, memo: OperatorMemo | None = None) -> Done | Missing:
    """Run one task given its inputs' values (a pure function of its arguments).

    ``state`` holds the fitted copies this node may read. Returns
    :class:`Done` or, when the operator asks for an input it was not given,
    :class:`Missing` (the scheduler provides it and runs the task again).
    ``memo`` is the operator memo the task may reuse pieces from (see
    :mod:`stratumlite.runtime.memo`).
    """
    with memo_scope(memo):
        return _run_task(task, inputs, state, threads)


def _run_task(task: Task, inputs: dict[int, Any], state: dict, threads: int) -> Done | Missing:
    node = task.node
    ctx = EvalContext(mode=task.mode, environment=task.binding.env, state=dict(state),
                      node=node, extra={"threads": threads})
    gen = node.op.evaluate(ctx)
    value: Any = None
    start = time.perf_counter()
    try:
        while True:
            try:
                request = gen.send(value)
            except StopIteration as stop:
                new_state = {k: v for k, v in ctx.state.items() if state.get(k) is not v}
                return Done(stop.value, new_state, time.perf_counter() - start)
            if isinstance(request, Need):
                if request.index in inputs:
                    value = inputs[request.index]
                else:
                    gen.close()
                    return Missing(request.index)
            else:
                value = task.inner
    except StratumliteError:
        raise
    except Exception as err:
        from .sequential import describe_node

        raise EvaluationError(
            f"Evaluation of node {describe_node(node)} failed in mode {task.mode!r}: "
            f"{type(err).__name__}: {err}",
            node=describe_node(node),
            original=err,
        ) from err
