"""The plan IR: immutable operator nodes hashed by structure, and the lineage key.

A plan is a DAG of :class:`Node` objects. A node is an :class:`Operator` (a value
object: ``kind``, a canonical ``token`` of its parameters, a short ``label`` for
explain) applied to input nodes. Every node carries its **lineage key**::

    key = lineage_key(op.kind, op.token, [input.key for input in inputs])

This is the only function in stratumlite that makes keys. The same key
identifies a computation for common-subexpression elimination (two nodes with
equal keys are the same computation), for the buffer pool and the persistent
cache, in the lineage store, for fitted state, and as the distributed task key.
Source nodes (``Var`` bound to data) get their key from a content fingerprint of
the data, so a key never requires hashing a large intermediate.

Nodes compare and hash by key, so CSE is deduplication:

>>> from stratumlite.plan import Const, Node, Plan
>>> a = Node(Const(1), ())
>>> b = Node(Const(1), ())
>>> a == b, a is b
(True, False)
>>> len(Plan((a, b)).nodes(dedupe="key"))
1

Operators also say how they are computed: ``evaluate(ctx)`` is a generator that
yields :class:`Need` requests for the inputs it wants (lazily: an ``if_else``
asks only for the branch it takes) and returns the result. The runtime answers
the requests; the IR holds no scheduling logic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import xxhash

__all__ = [
    "Node",
    "Operator",
    "Const",
    "Need",
    "Plan",
    "lineage_key",
    "short_key",
    "replace_nodes",
]


def lineage_key(kind: str, token: str, input_keys: tuple[str, ...] | list[str]) -> str:
    """The lineage key of ``(operator kind, canonical params, input keys)``.

    32 hex characters (xxh3-128). Input order matters: ``g(x, z)`` and
    ``g(z, x)`` have different keys.

    >>> lineage_key("add", "t", ["a", "b"]) == lineage_key("add", "t", ["b", "a"])
    False
    """
    h = xxhash.xxh3_128()
    h.update(kind.encode())
    h.update(b"\x00")
    h.update(token.encode())
    for k in input_keys:
        h.update(b"\x01")
        h.update(k.encode())
    return h.hexdigest()


def short_key(key: str) -> str:
    """The first 8 characters of a key, as shown in explain output."""
    return key[:8]


#: :meth:`Operator.cost_hint` of glue (a column selection) and of any other
#: operator whose cost nothing tells (a user function, a join)
LIGHT_COST = 0.001
OPERATOR_COST = 0.02


@dataclass(frozen=True, slots=True)
class Need:
    """Request sent by an operator to the runtime: the value of input ``index``."""

    index: int


@dataclass(frozen=True, eq=False)
class Operator:
    """Base class of operators: a value object, compared through ``kind`` + ``token``.

    Subclasses set ``kind`` (a short type name), ``token`` (canonical digest of
    the parameters, see :mod:`stratumlite.canonical`) and ``label`` (what
    explain prints), and implement :meth:`evaluate`.
    """

    kind: str = field(init=False, default="op")
    token: str = field(init=False, default="")
    label: str = field(init=False, default="")

    # Whether the result can be reused across runs (False for unseeded randomness).
    reusable: bool = field(init=False, default=True)

    def evaluate(self, ctx: EvalContext) -> Iterator[Any]:  # pragma: no cover - abstract
        """Generator: ``value = yield Need(i)`` for inputs, ``return result``."""
        raise NotImplementedError
        yield

    def is_source(self) -> bool:
        return False

    def is_estimator(self) -> bool:
        """True for operators that fit state (the learner keeps their fitted copy)."""
        return False

    def needed_inputs(self, mode: str, inner: bool) -> frozenset[int] | None:
        """Inputs the operator will request in ``mode`` (None: all). A hint for
        schedulers that start inputs ahead of time; never a promise."""
        return None

    def inputs_read(self, mode: str, inner: bool) -> frozenset[int] | None:
        """Every input the operator may read in ``mode`` (None: all): a sound
        superset of ``needed_inputs`` (which may leave out inputs asked for
        later, e.g. the branch an ``if_else`` takes), used for liveness."""
        return self.needed_inputs(mode, inner)

    def reads_state_of(self) -> tuple[int, ...]:
        """Indices of inputs whose fitted state this operator reads."""
        return ()

    def is_model_step(self) -> bool:
        """True for estimator steps that switch to transform when another step
        consumes them (skrub's "running Apply ancestor" rule)."""
        return False

    def is_light(self) -> bool:
        """True for glue whose cost is usually below that of shipping its inputs
        to another process (a column selection, an arithmetic operator): an
        executor in other processes runs it in the scheduler's process."""
        return False

    def releases_gil(self, node: Node) -> bool:
        """True when the operator spends most of its time in native code that
        releases Python's GIL for long stretches (a LightGBM or linear-algebra
        fit): two such tasks, or one beside Python-bound work, really run at
        once on threads. False for code that takes the GIL back often, even if
        most of its time is native (scikit-learn's HistGradientBoosting): beside
        a Python-bound task it waits for the GIL at every hand-back. ``node`` is
        this operator's node (its inputs may carry the estimator)."""
        return False

    def cost_hint(self, node: Node, fitting: bool) -> float:
        """A guess at the task's cost, before anything has run: relative units
        (a scikit-learn linear fit ~0.1, 100 boosting rounds ~1). The scheduler
        starts the work on the longest chain of guesses first; results never
        depend on it. ``fitting``: a fit, else a transform or a prediction."""
        return LIGHT_COST if self.is_light() else OPERATOR_COST

    def summary(self) -> dict[str, Any]:
        """Parameters to show in explain's JSON form."""
        return {}


class Const(Operator):
    """A constant value (choice outcomes, literals lifted out of arguments).

    >>> Const(3).label
    'Const 3'
    """

    def __init__(self, value: Any, token: str | None = None):
        from .canonical import tokenize

        object.__setattr__(self, "value", value)
        object.__setattr__(self, "kind", "const")
        object.__setattr__(self, "token", token if token is not None else tokenize(value))
        text = repr(value)
        if len(text) > 40:
            text = text[:37] + "..."
        object.__setattr__(self, "label", f"Const {text}")
        object.__setattr__(self, "reusable", True)

    def is_light(self) -> bool:
        return True

    def evaluate(self, ctx):
        return self.value
        yield

    def summary(self):
        return {"value": self.label[6:]}


class Node:
    """An operator applied to input nodes. Immutable; equal when keys are equal.

    ``name`` and ``description`` are what the user called the node (explain,
    lineage history); they are not part of the key unless the operator puts
    them in its token (a variable's name is).
    """

    __slots__ = ("op", "inputs", "key", "name", "__weakref__")

    def __init__(self, op: Operator, inputs: tuple[Node, ...] = (), name: str | None = None):
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "name", name)
        object.__setattr__(
            self, "key", lineage_key(op.kind, op.token, tuple(i.key for i in inputs))
        )

    def __setattr__(self, name, value):
        raise AttributeError("plan nodes are immutable; build a new Node instead")

    def __eq__(self, other):
        return isinstance(other, Node) and other.key == self.key

    def __reduce__(self):
        return (_rebuild_node, (self.op, self.inputs, self.name, self.key))

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        return f"<Node {self.op.label} {short_key(self.key)}>"

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        """The same operator over other inputs (returns self if nothing changed)."""
        inputs = tuple(inputs)
        if len(inputs) == len(self.inputs) and all(
            a is b for a, b in zip(inputs, self.inputs)
        ):
            return self
        return Node(self.op, inputs, name=self.name)


def _rebuild_node(op, inputs, name, key):
    node = object.__new__(Node)
    object.__setattr__(node, "op", op)
    object.__setattr__(node, "inputs", inputs)
    object.__setattr__(node, "name", name)
    object.__setattr__(node, "key", key)
    return node


@dataclass(frozen=True)
class Plan:
    """Output nodes of a DAG plus metadata (choices, sources) the frontend found.

    ``nodes()`` walks the DAG once, inputs before consumers, without recursion
    (plans may be 10,000 nodes deep).
    """

    outputs: tuple[Node, ...]
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def output(self) -> Node:
        return self.outputs[0]

    def nodes(self, dedupe: str = "id") -> list[Node]:
        """Topological order (inputs first). ``dedupe``: "id" (as written) or "key"."""
        return topological_order(self.outputs, dedupe=dedupe)

    def consumers(self, dedupe: str = "key") -> dict[Any, list[Node]]:
        """Map each node (by key or id) to the nodes that read it."""
        result: dict[Any, list[Node]] = {}
        ident = _ident(dedupe)
        for node in self.nodes(dedupe):
            result.setdefault(ident(node), [])
            for inp in node.inputs:
                lst = result.setdefault(ident(inp), [])
                if not lst or lst[-1] is not node:
                    lst.append(node)
        return result

    def with_outputs(self, outputs: tuple[Node, ...], **meta) -> Plan:
        return Plan(tuple(outputs), {**self.meta, **meta})


def _ident(dedupe: str) -> Callable[[Node], Any]:
    if dedupe == "id":
        return id
    if dedupe == "key":
        return lambda n: n.key
    raise ValueError(f"dedupe must be 'id' or 'key'. Got {dedupe!r} instead.")


def topological_order(outputs, dedupe: str = "id") -> list[Node]:
    """Inputs-first order of every node reachable from ``outputs`` (iterative DFS)."""
    ident = _ident(dedupe)
    seen: set = set()
    order: list[Node] = []
    for out in outputs:
        if ident(out) in seen:
            continue
        stack: list[tuple[Node, int]] = [(out, 0)]
        seen.add(ident(out))
        while stack:
            node, i = stack[-1]
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                child = node.inputs[i]
                cid = ident(child)
                if cid not in seen:
                    seen.add(cid)
                    stack.append((child, 0))
            else:
                stack.pop()
                order.append(node)
    return order


def replace_nodes(plan: Plan, rewrite: Callable[[Node], Node | None]) -> Plan:
    """The one traversal: rebuild bottom-up, applying ``rewrite`` to each node.

    ``rewrite(node)`` receives the node with its (already rewritten) inputs and
    returns a replacement or None to keep it. Nodes whose inputs did not change
    and that ``rewrite`` keeps are returned as the same object, so an unchanged
    plan comes back identical.
    """
    memo: dict[int, Node] = {}
    for node in plan.nodes("id"):
        new_inputs = tuple(memo[id(i)] for i in node.inputs)
        rebuilt = node.with_inputs(new_inputs)
        replaced = rewrite(rebuilt)
        memo[id(node)] = rebuilt if replaced is None else replaced
    outputs = tuple(memo[id(o)] for o in plan.outputs)
    if all(a is b for a, b in zip(outputs, plan.outputs)):
        return plan
    return plan.with_outputs(outputs)


def normalize_mode(mode: str, inner: bool, reads_mode: bool = False) -> str:
    """The mode a node really runs in when an estimator consumes it (``inner``).

    Under an estimator, skrub's ``fit`` and ``fit_transform`` compute the same
    thing, and ``predict``/``predict_proba``/``decision_function``/``score``
    become ``transform``. Not applied to nodes that read the mode name.

    >>> normalize_mode("predict", inner=True), normalize_mode("predict", inner=False)
    ('transform', 'predict')
    """
    if not inner or reads_mode:
        return mode
    if mode in ("fit", "fit_transform"):
        return "fit_transform"
    if mode in ("predict", "predict_proba", "decision_function", "score", "transform"):
        return "transform"
    return mode


def live_nodes(outputs, mode: str) -> frozenset[str]:
    """Keys of the nodes evaluating ``outputs`` in ``mode`` may read.

    Follows each operator's ``inputs_read`` (all inputs when it cannot
    tell), propagating skrub's "inner estimator" context.
    """
    seen: set[tuple[str, bool]] = set()
    live: set[str] = set()
    stack = [(o, False) for o in outputs]
    while stack:
        node, inner = stack.pop()
        if (node.key, inner) in seen:
            continue
        seen.add((node.key, inner))
        live.add(node.key)
        node_mode = normalize_mode(mode, inner)
        needed = node.op.inputs_read(node_mode, inner)
        child_inner = inner or node.op.is_model_step()
        indices = range(len(node.inputs)) if needed is None else needed
        for i in indices:
            stack.append((node.inputs[i], child_inner))
    return frozenset(live)


@dataclass
class EvalContext:
    """What an operator sees while it runs: the mode, the environment, state.

    ``state`` maps a node key to the fitted private copy of a stateful operator
    (the learner owns it). ``node`` is the node being evaluated.
    """

    mode: str
    environment: dict
    state: dict
    node: Node | None = None
    apply_ancestor: bool = False
    extra: dict = field(default_factory=dict)
