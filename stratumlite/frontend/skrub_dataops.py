"""skrub DataOps -> stratumlite plan. The only module that reads skrub internals.

Conversion
----------
Every ``DataOp`` node becomes one plan :class:`~stratumlite.plan.Node` whose
operator is a :class:`SkrubOp`: the node's class, its metadata (name, is_X,
is_y, ...) and one *template* per field (see :mod:`.templates`) in which each
DataOp, choice or choice-match is an ``InputRef`` to an input node. Choices
become :class:`ChoiceOp` nodes whose inputs are their outcomes (plain outcomes
become :class:`~stratumlite.plan.Const` or :class:`ValueOp` nodes), numeric
choices :class:`NumericChoiceOp`, ``choice.match(...)`` :class:`ChoiceMatchOp`.

The walk is iterative (plans may be 10,000 nodes deep) and never modifies the
user's DataOp.

Semantics: reuse skrub's, own the rest
--------------------------------------
To compute a node, :class:`SkrubOp` makes a *private copy* of the skrub node
whose fields are the templates, and drives skrub's own ``eval`` generator (or
``compute``) on it, answering each request from the plan's inputs. A node's
value is therefore skrub's by construction. Fitted state (an ``Apply``'s
``estimator_``, a ``Concat``'s output columns, a ``freeze_after_fit`` value)
lands on the private copy, which the caller keeps in ``ctx.state`` under the
node's lineage key — never on the user's graph.
"""

from __future__ import annotations

import copy
import traceback
from dataclasses import dataclass
from types import CodeType, FunctionType, SimpleNamespace
from typing import Any

import skrub
from sklearn.base import BaseEstimator
from sklearn.base import clone as skl_clone

from ..canonical import fingerprint_once, tokenize
from ..errors import MissingVariableError, NotFittedError, PlanError, UnsupportedVersionError
from ..plan import OPERATOR_COST, Const, Need, Node, Operator, Plan
from .templates import (
    EstimatorTemplate,
    InputRef,
    input_refs,
    is_static,
    resolve,
    token_form,
)

SUPPORTED_SKRUB = ((0, 11), (0, 12))  # [min, max)


def _check_skrub_version(version: str) -> None:
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    low, high = SUPPORTED_SKRUB
    if not (low <= parts < high):
        raise UnsupportedVersionError(
            f"stratumlite supports skrub >={low[0]}.{low[1]},<{high[0]}.{high[1]}; "
            f"skrub {version} is installed. Install a supported version with "
            f"`pip install 'skrub>={low[0]}.{low[1]},<{high[0]}.{high[1]}'`."
        )


_check_skrub_version(skrub.__version__)

# skrub internals: imported here and nowhere else in stratumlite.
from skrub._data_ops import _choosing, _data_ops, _evaluation  # noqa: E402
from skrub._data_ops._data_ops import DataOp, UninitializedVariable  # noqa: E402
from skrub._data_ops._evaluation import HasRunningApplyAncestor  # noqa: E402
from skrub._data_ops._utils import NULL, X_NAME, Y_NAME  # noqa: E402

from . import column_memo  # noqa: E402,F401  (installs the per-column memo)

# Node classes that keep fitted state on themselves between fit and predict.
_STATEFUL = {"Apply", "Concat", "FreezeAfterFit"}
# glue operators (see ``Operator.is_light``); not ``Call`` (any user function),
# not estimators
_LIGHT = {"Var", "Value", "GetItem", "GetAttr", "BinOp", "UnaryOp", "CallMethod",
          "AsTuple", "IfElse", "Match", "EvalMode", "SplitX"}
# estimators whose fit runs in native code that releases the GIL for long
# stretches (see ``Operator.releases_gil``): gradient boosting libraries whose
# fit is one native call per iteration, and linear models solved by LAPACK/BLAS
# or Cython coordinate descent. Not scikit-learn's HistGradientBoosting: its
# tree growing is Python code calling short ``nogil`` Cython sections, so it
# takes the GIL back hundreds of times per iteration and waits for it each time
# beside Python-bound work. Measured on 2 cores (10,000 x 124 float32, 50
# iterations, one thread each): alone 0.51 s; beside a TableVectorizer loop
# 5.47 s (the vectorizer ran at full speed); beside another HistGradientBoosting
# 1.04 s; beside LightGBM 0.92 s. A LightGBM fit beside the vectorizer: 0.82 s.
_NATIVE_MODULES = ("lightgbm.", "xgboost.", "catboost.",
                   "sklearn.linear_model._ridge.", "sklearn.linear_model._base.",
                   "sklearn.linear_model._coordinate_descent.")
# ``Operator.cost_hint`` of an estimator's fit (relative units; predictions and
# transforms: ``_PREDICT_SHARE`` of that). Ensembles scale with their rounds:
# on the flights search (100,000 rows, one thread) 100 rounds of LightGBM or
# HistGradientBoosting took 1.7-9.6 s, a TableVectorizer 0.6-1.7 s, an imputer
# + scaler + Ridge 0.3-0.6 s. Only the order of the guesses matters.
_ENSEMBLE_MODULES = ("sklearn.ensemble.", "lightgbm.", "xgboost.", "catboost.")
_ROUNDS_PARAMS = ("n_estimators", "max_iter", "num_boost_round", "iterations")
_ENSEMBLE_COST = 1.0  # per 100 rounds
_VECTORIZER_COST = 0.3
_ESTIMATOR_COST = 0.1
_PREDICT_SHARE = 0.2
_META_ATTRS = ("name", "uuid", "is_X", "is_y", "description", "_creation_stack", "checked")
_NON_SEMANTIC_ESTIMATOR = ("n_jobs", "verbose", "verbosity", "num_threads", "nthread")


@dataclass(frozen=True, slots=True)
class AskApplyAncestor:
    """Request to the runtime: is an estimator node waiting for my result?"""


ASK_APPLY_ANCESTOR = AskApplyAncestor()
_NO_FIELD = object()


def describe_impl(impl_repr: str) -> str:
    return impl_repr.splitlines()[0].strip().removeprefix("<").removesuffix(">")


class SkrubOp(Operator):
    """Evaluates one skrub DataOp node by driving skrub's logic on a private copy."""

    def __init__(self, impl, templates: dict[str, Any], token: str, label: str):
        cls = type(impl)
        meta = {a: getattr(impl, a, None) for a in _META_ATTRS}
        if meta["_creation_stack"]:
            meta["_creation_stack"] = list(meta["_creation_stack"])[-1:]
        object.__setattr__(self, "cls", cls)
        object.__setattr__(self, "meta", meta)
        object.__setattr__(self, "templates", templates)
        object.__setattr__(self, "static", {k: is_static(v) for k, v in templates.items()})
        object.__setattr__(self, "kind", cls.__name__)
        object.__setattr__(self, "token", token)
        object.__setattr__(self, "label", label)
        # skrub's ``no_cache=True`` (apply, apply_func, deferred): never reuse across runs
        object.__setattr__(self, "reusable", not _has_unseeded_randomness(templates)
                           and templates.get("no_cache") is not True)
        object.__setattr__(self, "field_inputs", {k: input_refs(v) for k, v in templates.items()})

    def with_templates(self, label: str | None = None, **templates) -> SkrubOp:
        """The same node with some field templates replaced (a new operator)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        merged = {**self.templates, **templates}
        object.__setattr__(new, "templates", merged)
        object.__setattr__(new, "static", {k: is_static(v) for k, v in merged.items()})
        object.__setattr__(new, "field_inputs", {k: input_refs(v) for k, v in merged.items()})
        meta = self.meta
        object.__setattr__(new, "token", node_token(self.cls, meta["is_X"], meta["is_y"],
                                                    meta["name"], merged))
        if label is not None:
            object.__setattr__(new, "label", label)
        return new

    # --- information -----------------------------------------------------
    @property
    def node_class(self) -> str:
        return self.cls.__name__

    def is_source(self) -> bool:
        if self.cls is _data_ops.Var:
            return True
        # a Value wrapping data; not one wrapping a choice (``as_data_op(choice)``)
        return self.cls is _data_ops.Value and not self.field_inputs.get("value")

    def is_estimator(self) -> bool:
        return self.cls.__name__ in _STATEFUL

    def is_model_step(self) -> bool:
        return self.cls is _data_ops.Apply

    def is_light(self) -> bool:
        return self.cls.__name__ in _LIGHT

    def releases_gil(self, node) -> bool:
        if self.cls is not _data_ops.Apply:
            return False
        estimator = _estimator_object(self.templates.get("estimator"), node)
        while hasattr(estimator, "steps"):  # a Pipeline: its final step dominates
            estimator = estimator.steps[-1][1] if estimator.steps else None
        module = type(estimator).__module__ + "." if estimator is not None else ""
        return module.startswith(_NATIVE_MODULES)

    def cost_hint(self, node, fitting: bool) -> float:
        if self.cls is not _data_ops.Apply:
            return super().cost_hint(node, fitting)
        estimator = _estimator_object(self.templates.get("estimator"), node)
        if estimator is None:  # a choice not expanded yet
            return OPERATOR_COST
        cost = _estimator_cost(estimator)
        return cost if fitting else cost * _PREDICT_SHARE

    def reads_state_of(self) -> tuple[int, ...]:
        if self.cls is _data_ops.AppliedEstimator:
            return tuple(self.field_inputs["target"])
        return ()

    def reads_mode(self) -> bool:
        """True when the node's value depends on the mode name itself."""
        return self.cls.__name__ == "EvalMode"

    @property
    def var_name(self) -> str | None:
        return self.templates.get("name") if self.cls is _data_ops.Var else None

    def creation_line(self) -> str:
        stack = self.meta.get("_creation_stack")
        if not stack:
            return ""
        line = traceback.format_list(stack[-1:])[0]
        return line.strip().splitlines()[0]

    def summary(self) -> dict[str, Any]:
        out = {"class": self.cls.__name__}
        for flag in ("name", "description"):
            if self.meta.get(flag) is not None:
                out[flag] = self.meta[flag]
        if self.meta.get("is_X"):
            out["is_X"] = True
        if self.meta.get("is_y"):
            out["is_y"] = True
        return out

    # --- evaluation ------------------------------------------------------
    def needed_inputs(self, mode: str, inner: bool) -> frozenset[int] | None:
        """Inputs this node will ask for in ``mode`` (None: all of them).

        Static knowledge used by the parallel scheduler to start inputs early;
        a node that asks for more is simply restarted once it is available.
        """
        name = self.cls.__name__
        fitting = mode == "preview" or "fit" in mode
        if name == "Apply":
            if fitting:
                # "kwargs" holds per-method arguments: which entry is read
                # depends on the method, so it is left to be asked for.
                fields = ["X", "estimator", "cols", "exclude_cols", "no_wrap",
                          "allow_reject", "no_cache"]
                if not (self.static["unsupervised"] and self.templates["unsupervised"]):
                    fields.append("y")
            else:
                fields = ["X", "no_cache"]
                if mode == "score" and not inner:
                    fields.append("y")
        elif name == "IfElse":
            fields = ["condition"]
        elif name == "Match":
            fields = ["query"]
        elif name == "FreezeAfterFit":
            fields = ["target"] if fitting else []
        elif name == "AppliedEstimator":
            fields = ["target"]
        else:
            return None
        return frozenset().union(*(self.field_inputs[f] for f in fields))

    def inputs_read(self, mode: str, inner: bool) -> frozenset[int] | None:
        """``needed_inputs`` plus what is asked for later: the branch of an
        ``if_else`` / ``match`` (data-dependent: all of them) and the
        per-method ``kwargs`` of an ``Apply``."""
        name = self.cls.__name__
        if name in ("IfElse", "Match"):
            return None
        needed = self.needed_inputs(mode, inner)
        if name == "Apply" and needed is not None:
            needed = needed | frozenset(self.field_inputs["kwargs"])
        return needed

    def _private_copy(self):
        impl = object.__new__(self.cls)
        d = impl.__dict__
        d.update(self.templates)
        d.update(self.meta)
        d["results"], d["errors"], d["metadata"] = {}, {}, {}
        return impl

    def env_override(self, environment: dict) -> tuple[bool, Any]:
        """skrub's rule for values injected through the environment."""
        meta = self.meta
        if not environment:
            return False, None
        if meta["is_X"] and X_NAME in environment:
            return True, environment[X_NAME]
        if meta["is_y"] and Y_NAME in environment:
            return True, environment[Y_NAME]
        if meta["uuid"] in environment:
            return True, environment[meta["uuid"]]
        name = meta["name"]
        if name is not None and self.cls is not _data_ops.Var and name in environment:
            return True, environment[name]
        return False, None

    def evaluate(self, ctx):
        found, value = self.env_override(ctx.environment)
        if found:
            return value
        mode = ctx.mode
        if self.cls is _data_ops.AppliedEstimator:
            # skrub reads the fitted estimator off the user's graph; we read it
            # from the fitted private copy of the target node.
            (index,) = self.field_inputs["target"]
            yield Need(index)
            target = ctx.node.inputs[index]
            try:
                return ctx.state[target.key].estimator_
            except (KeyError, AttributeError):
                raise NotFittedError(
                    f"{self.label}: the estimator of {target.op.label!r} is not fitted."
                ) from None
        fitting = mode == "preview" or "fit" in mode
        stateful = self.is_estimator()
        if stateful and not fitting:
            try:
                impl = ctx.state[ctx.node.key]
            except KeyError:
                raise NotFittedError(
                    f"Node {self.label!r} has no fitted state: call fit() before "
                    f"{mode}()."
                ) from None
        else:
            impl = self._private_copy()
        try:
            if hasattr(impl, "eval"):
                result = yield from self._drive(
                    impl.eval(mode=mode, environment=ctx.environment), impl,
                    ctx.extra.get("threads", 1))
            else:
                fields = {}
                for name in self.cls._fields:
                    t = self.templates[name]
                    fields[name] = t if self.static[name] else (yield from resolve(t))
                result = impl.compute(SimpleNamespace(**fields), mode=mode,
                                      environment=ctx.environment)
        except UninitializedVariable as e:
            name = e.args[0] if e.args else self.var_name
            raise MissingVariableError(
                name,
                f"No value for variable {name!r}: pass it in the environment, e.g. "
                f"{{{name!r}: ...}}, or create it with "
                f"skrub.var({name!r}, value=..., becomes_default=True).",
            ) from None
        if stateful and fitting:
            ctx.state[ctx.node.key] = impl
        return result

    def _drive(self, gen, impl, threads: int = 1):
        value = None
        estimator_field = impl.__dict__.get("estimator", _NO_FIELD)
        while True:
            try:
                request = gen.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(request, HasRunningApplyAncestor):
                value = yield ASK_APPLY_ANCESTOR
            else:
                value = yield from resolve(request)
                if request is estimator_field and isinstance(value, BaseEstimator):
                    # An estimator reaching an Apply through an input (a choice
                    # outcome) is shared by every consumer of that input: fit a
                    # private clone, as skrub clones at each evaluation.
                    value = skl_clone(value)
                if request is estimator_field and isinstance(value, BaseEstimator):
                    value = _with_thread_budget(value, threads)


class ValueOp(Operator):
    """A lifted literal that contains choices or DataOps (e.g. a choice outcome
    ``Ridge(alpha=choose_float(...))``): resolves its template."""

    def __init__(self, template: Any, token: str, label: str):
        object.__setattr__(self, "template", template)
        object.__setattr__(self, "kind", "value")
        object.__setattr__(self, "token", token)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "reusable", not _has_unseeded_randomness(template))

    def is_light(self) -> bool:
        return True

    def evaluate(self, ctx):
        return (yield from resolve(self.template))


class ChoiceOp(Operator):
    """``choose_from`` / ``optional`` / ``choose_bool``: inputs are the outcomes.

    Evaluated unexpanded, it takes the outcome skrub would take (the value
    named in the environment, the default in preview, else the chosen or
    default outcome) and asks only for that input.
    """

    def __init__(self, choice, choice_id: int, display_name: str):
        object.__setattr__(self, "choice_name", choice.name)
        object.__setattr__(self, "choice_id", choice_id)
        object.__setattr__(self, "display_name", display_name)
        object.__setattr__(self, "choice_type", type(choice).__name__)
        names = choice.outcome_names
        object.__setattr__(self, "outcome_names", None if names is None else list(names))
        object.__setattr__(self, "outcome_labels", [
            names[i] if names is not None else _short(o) for i, o in enumerate(choice.outcomes)
        ])
        object.__setattr__(self, "outcome_values", list(choice.outcomes))
        object.__setattr__(self, "chosen_idx", choice.chosen_outcome_idx)
        object.__setattr__(self, "kind", "choice")
        object.__setattr__(self, "token", tokenize(
            (choice_id, choice.name, self.outcome_names, choice.chosen_outcome_idx,
             self.choice_type)))
        label = f"{self.choice_type} {display_name!r}: " + " | ".join(self.outcome_labels)
        object.__setattr__(self, "label", label)

    def needed_inputs(self, mode: str, inner: bool) -> frozenset[int] | None:
        return frozenset((self.index_for(mode),))

    def index_for(self, mode: str) -> int:
        if mode == "preview":
            return 0
        return self.chosen_idx or 0

    def is_light(self) -> bool:
        return True

    def evaluate(self, ctx):
        env = ctx.environment
        if self.choice_name is not None and env and self.choice_name in env:
            return env[self.choice_name]
        return (yield Need(self.index_for(ctx.mode)))

    def summary(self):
        return {"name": self.display_name, "outcomes": self.outcome_labels,
                "type": self.choice_type}


class NumericChoiceOp(Operator):
    """``choose_float`` / ``choose_int`` (with or without ``n_steps``)."""

    def __init__(self, choice, choice_id: int, display_name: str):
        object.__setattr__(self, "choice", copy.copy(choice))
        object.__setattr__(self, "choice_id", choice_id)
        object.__setattr__(self, "choice_name", choice.name)
        object.__setattr__(self, "display_name", display_name)
        object.__setattr__(self, "kind", "numeric_choice")
        fields = {k: v for k, v in vars(choice).items() if not k.startswith("_")}
        fields.pop("grid", None)
        object.__setattr__(self, "token", tokenize((choice_id, type(choice).__name__, fields)))
        object.__setattr__(self, "label", f"{type(choice).__name__} {display_name!r}: {choice!r}")

    def is_light(self) -> bool:
        return True

    def evaluate(self, ctx):
        env = ctx.environment
        if self.choice_name is not None and env and self.choice_name in env:
            return env[self.choice_name]
        if ctx.mode == "preview":
            return self.choice.default()
        return self.choice.chosen_outcome_or_default()
        yield

    def summary(self):
        return {"name": self.display_name, "range": repr(self.choice)}


class ChoiceMatchOp(Operator):
    """``choice.match({...})``: input 0 is the choice, then one input per key."""

    def __init__(self, keys: list, token: str):
        object.__setattr__(self, "keys", list(keys))
        object.__setattr__(self, "kind", "choice_match")
        object.__setattr__(self, "token", token)
        object.__setattr__(self, "label", "Match " + ", ".join(_short(k) for k in keys))

    def needed_inputs(self, mode: str, inner: bool) -> frozenset[int] | None:
        return frozenset((0,))

    def inputs_read(self, mode: str, inner: bool) -> frozenset[int] | None:
        return None  # the target read depends on the choice's outcome

    def is_light(self) -> bool:
        return True

    def evaluate(self, ctx):
        outcome = yield Need(0)
        try:
            position = self.keys.index(outcome)
        except ValueError:
            raise KeyError(outcome) from None
        return (yield Need(1 + position))


# Estimators whose ``n_jobs`` means threads in this process (OpenMP or joblib's
# threading backend): the runtime's budget is applied to them when the user left
# ``n_jobs=None``. Process-based ``n_jobs`` (joblib's loky) is left alone.
_THREADED_N_JOBS = ("LGBMRegressor", "LGBMClassifier", "LGBMRanker", "LGBMModel",
                    "RandomForestRegressor", "RandomForestClassifier",
                    "ExtraTreesRegressor", "ExtraTreesClassifier")


def _with_thread_budget(estimator, threads: int):
    """The estimator with the node's thread budget as ``n_jobs`` (on a clone)."""
    if type(estimator).__name__ not in _THREADED_N_JOBS:
        return estimator
    try:
        if estimator.get_params(deep=False).get("n_jobs") is not None:
            return estimator
    except Exception:
        return estimator
    estimator = skl_clone(estimator)
    estimator.set_params(n_jobs=threads)
    return estimator


def _estimator_object(template: Any, node: Node):
    """The estimator an ``Apply`` node runs, when the plan holds it (a constant,
    a choice outcome after expansion), else None."""
    if type(template) is InputRef:
        if template.index >= len(node.inputs):
            return None
        source = node.inputs[template.index].op
        if isinstance(source, Const):
            template = source.value
        elif isinstance(source, ValueOp):
            template = source.template
        elif isinstance(source, SkrubOp) and source.cls is _data_ops.Value:
            template = source.templates.get("value")
        else:
            return None
    if type(template) is EstimatorTemplate:
        template = template.estimator
    return template if isinstance(template, BaseEstimator) else None


def _estimator_cost(estimator: BaseEstimator) -> float:
    """The fit's ``cost_hint``: a pipeline sums its steps; an ensemble costs
    ``_ENSEMBLE_COST`` per 100 rounds (100 when its rounds are not a number)."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list):
        return sum(_estimator_cost(step) for _, step in steps
                   if isinstance(step, BaseEstimator))
    if isinstance(estimator, skrub.TableVectorizer):
        return _VECTORIZER_COST
    if not (type(estimator).__module__ + ".").startswith(_ENSEMBLE_MODULES):
        return _ESTIMATOR_COST
    try:
        params = estimator.get_params(deep=False)
    except Exception:  # noqa: BLE001 - a guess, never an error
        params = {}
    rounds = next((params[p] for p in _ROUNDS_PARAMS
                   if isinstance(params.get(p), int) and params[p] > 0), 100)
    return _ENSEMBLE_COST * rounds / 100


def _short(obj: Any, width: int = 30) -> str:
    if isinstance(obj, BaseEstimator):
        text = type(obj).__name__
    elif isinstance(obj, DataOp):
        text = describe_impl(repr(obj._skrub_impl))
    else:
        text = repr(obj)
    return text if len(text) <= width else text[: width - 3] + "..."


# Estimators whose ``random_state`` only matters for some solvers.
_SEED_USED_BY = {
    "Ridge": ("solver", ("sag", "saga")),
    "RidgeClassifier": ("solver", ("sag", "saga")),
    "LogisticRegression": ("solver", ("sag", "saga", "liblinear")),
}


def _estimator_unseeded(est) -> bool:
    """Whether fitting ``est`` (or an estimator nested in its parameters)
    draws from an unseeded random generator (``random_state=None`` where the
    seed is used)."""
    try:
        params = est.get_params(deep=False)
    except Exception:
        return True
    if "random_state" in params and params["random_state"] is None:
        rule = _SEED_USED_BY.get(type(est).__name__)
        if rule is None or params.get(rule[0]) in rule[1]:
            return True
    for value in params.values():
        if isinstance(value, BaseEstimator) and _estimator_unseeded(value):
            return True
        if type(value) in (list, tuple):
            for item in value:
                inner = item[-1] if type(item) is tuple and item else item
                if isinstance(inner, BaseEstimator) and _estimator_unseeded(inner):
                    return True
    return False


def _has_unseeded_randomness(template: Any) -> bool:
    t = type(template)
    if t is EstimatorTemplate:
        template = template.estimator
        t = type(template)
    if isinstance(template, BaseEstimator):
        return _estimator_unseeded(template)
    if t is FunctionType:
        return _code_uses_random(template.__code__)
    if t in (list, tuple, set, frozenset):
        return any(_has_unseeded_randomness(x) for x in template)
    if t is dict:
        return any(_has_unseeded_randomness(x) for x in template.values())
    return False


def _code_uses_random(code: CodeType) -> bool:
    """Conservative: a function whose code names ``random`` (``np.random.rand``,
    ``random.random``, ``rng = np.random.default_rng(0)``) may draw unseeded
    random numbers, so its results are not reused across runs."""
    if "random" in code.co_names or "random" in code.co_varnames:
        return True
    return any(isinstance(c, CodeType) and _code_uses_random(c) for c in code.co_consts)


# --------------------------------------------------------------------------
# conversion


def _is_dynamic(obj) -> bool:
    return isinstance(obj, (DataOp, _choosing.BaseChoice, _choosing.Match))


def _scan(value, out: list, memo: dict) -> bool:
    """Append DataOps/choices found in ``value`` to ``out``; return True if any."""
    t = type(value)
    if _is_dynamic(value):
        out.append(value)
        return True
    if t in (list, tuple, set, frozenset):
        found = False
        for x in value:
            found |= _scan(x, out, memo)
        return found
    if t is dict:
        found = False
        for x in value.values():
            found |= _scan(x, out, memo)
        return found
    if t is slice:
        return any([_scan(x, out, memo) for x in (value.start, value.stop, value.step)])
    if isinstance(value, BaseEstimator):
        key = id(value)
        if key in memo:
            if memo[key]:
                _scan_params(value, out, memo)
            return memo[key]
        memo[key] = False
        found = _scan_params(value, out, memo)
        memo[key] = found
        return found
    return False


def _scan_params(est, out, memo) -> bool:
    try:
        params = est.get_params(deep=False)
    except Exception:
        return False
    found = False
    for v in params.values():
        found |= _scan(v, out, memo)
    return found


class _Converter:
    def __init__(self, root, fingerprints: dict | None = None):
        self.root = root
        # id(source value) -> (value, fingerprint): shared by the conversions of
        # one batch (``to_plan(..., fingerprints=)``); holding the value keeps
        # its id from being reused while the cache lives
        self.fingerprints = fingerprints if fingerprints is not None else {}
        self.nodes: dict[int, Node] = {}  # id(DataOp | choice | match) -> Node
        self.scan_memo: dict[int, bool] = {}
        self._keep_alive: list = []
        self.choice_ids: dict[int, int] = {}
        self.choice_names: dict[int, str] = {}

    def _number_choices(self) -> None:
        """skrub's choice ids and display names (only walked when there are choices)."""
        graph = _evaluation.choice_graph(self.root, check_Xy=False)
        self.choice_ids = {id(c): i for i, c in graph["choices"].items()}
        self.choice_names = graph["choice_display_names"]

    # dependencies of an object, in field order
    def deps(self, obj) -> list:
        out: list = []
        if isinstance(obj, DataOp):
            impl = obj._skrub_impl
            for f in impl._fields:
                _scan(getattr(impl, f), out, self.scan_memo)
        elif isinstance(obj, _choosing.Match):
            out.append(obj.choice)
            for v in obj.outcome_mapping.values():
                _scan(v, out, self.scan_memo)
        elif isinstance(obj, _choosing.Choice):
            for o in obj.outcomes:
                _scan(o, out, self.scan_memo)
        return out

    def run(self) -> Node:
        # iterative post-order over DataOps / choices / matches
        stack = [(self.root, None)]
        visiting: set[int] = set()
        while stack:
            obj, deps = stack[-1]
            oid = id(obj)
            if oid in self.nodes:
                stack.pop()
                continue
            if deps is None:
                if oid in visiting:
                    raise PlanError(
                        "The DataOp contains a circular reference; plans must be acyclic."
                    )
                visiting.add(oid)
                deps = self.deps(obj)
                stack[-1] = (obj, deps)
            pending = [d for d in deps if id(d) not in self.nodes]
            if pending:
                for d in reversed(pending):
                    if id(d) in visiting:
                        raise PlanError(
                            f"Circular reference found at {_short(d)}: plans must be acyclic."
                        )
                    stack.append((d, None))
                continue
            stack.pop()
            visiting.discard(oid)
            self._keep_alive.append(obj)
            self.nodes[oid] = None  # placeholder: ordered, built below
        order = self._keep_alive
        if any(isinstance(o, (_choosing.BaseChoice, _choosing.Match)) for o in order):
            self._number_choices()
        for obj in order:
            self.nodes[id(obj)] = self.build(obj)
        return self.nodes[id(self.root)]

    # lifting a field value into a template + the inputs it references
    def lift(self, value, inputs: list[Node], index: dict[int, int]):
        t = type(value)
        if _is_dynamic(value):
            node = self.nodes[id(value)]
            pos = index.get(id(node))
            if pos is None:
                pos = index[id(node)] = len(inputs)
                inputs.append(node)
            return InputRef(pos)
        if t in (list, tuple, set, frozenset):
            return t(self.lift(x, inputs, index) for x in value)
        if t is dict:
            return {k: self.lift(v, inputs, index) for k, v in value.items()}
        if t is slice:
            return slice(self.lift(value.start, inputs, index),
                         self.lift(value.stop, inputs, index),
                         self.lift(value.step, inputs, index))
        if isinstance(value, BaseEstimator) and self.scan_memo.get(id(value)):
            params = value.get_params(deep=False)
            dyn = {}
            for k, v in params.items():
                probe: list = []
                if _scan(v, probe, self.scan_memo):
                    dyn[k] = self.lift(v, inputs, index)
            return EstimatorTemplate(value, dyn)
        return value

    def lifted_node(self, value) -> Node:
        """A node for a choice outcome / match target."""
        if _is_dynamic(value):
            return self.nodes[id(value)]
        inputs: list[Node] = []
        template = self.lift(value, inputs, {})
        if not inputs and is_static(template):
            return Node(Const(value))
        token = tokenize(token_form(template))
        return Node(ValueOp(template, token, f"Value {_short(value)}"), tuple(inputs))

    def build(self, obj) -> Node:
        if isinstance(obj, _choosing.Match):
            choice_node = self.nodes[id(obj.choice)]
            targets = [self.lifted_node(v) for v in obj.outcome_mapping.values()]
            keys = list(obj.outcome_mapping.keys())
            op = ChoiceMatchOp(keys, tokenize(("match", keys)))
            return Node(op, (choice_node, *targets))
        if isinstance(obj, _choosing.BaseChoice):
            cid = self.choice_ids[id(obj)]
            name = self.choice_names[cid]
            if isinstance(obj, _choosing.Choice):
                outcomes = tuple(self.lifted_node(o) for o in obj.outcomes)
                return Node(ChoiceOp(obj, cid, name), outcomes, name=obj.name)
            return Node(NumericChoiceOp(obj, cid, name), (), name=obj.name)
        impl = obj._skrub_impl
        inputs: list[Node] = []
        index: dict[int, int] = {}
        templates = {}
        for f in impl._fields:
            templates[f] = self.lift(getattr(impl, f), inputs, index)
        token = self.token(impl, templates)
        label = describe_impl(repr(impl))
        return Node(SkrubOp(impl, templates, token, label), tuple(inputs), name=impl.name)

    def token(self, impl, templates) -> str:
        return node_token(type(impl), impl.is_X, impl.is_y, impl.name, templates,
                          self.fingerprints)


def node_token(cls, is_X, is_y, name, templates, fingerprints: dict | None = None) -> str:
    """The canonical token of a skrub node: class, flags, name, field templates.

    ``fingerprints`` (id -> (value, digest)) reuses a source value's
    fingerprint when the same object was already fingerprinted."""
    # The name is part of the key: a named node can be overridden by the
    # environment ({name: value}), so two equal computations with different
    # names are not interchangeable.
    flags = (bool(is_X), bool(is_y), name)
    if cls is _data_ops.Var:
        value = templates["value"]
        data = None if value is NULL else fingerprint_once(value, fingerprints)
        return tokenize(("Var", templates["name"], templates["becomes_default"], data))
    form = {k: token_form(v) for k, v in templates.items()}
    if cls is _data_ops.Call:
        form["func"] = _call_func_token_form(form)
    return tokenize((cls.__module__, cls.__qualname__, flags, form))


def _call_func_token_form(form: dict):
    """The function of a ``Call`` as tokenize may see it.

    When the function's globals, closure or defaults hold DataOps or choices,
    skrub copies them into the node's fields (lifted to ``InputRef``s in the
    templates) and rebuilds the function from them at call time. Tokenizing
    the raw function would reach those DataOps (``TypeError``): tokenize the
    function rebuilt the same way, with the placeholders instead.
    """
    func = form["func"]
    if not (form["globals"] or form["closure"] or form["defaults"] or form["kwdefaults"]):
        return func
    import types

    rebuilt = types.FunctionType(
        func.__code__,
        {**func.__globals__, **form["globals"]},
        func.__name__,
        form["defaults"],
        tuple(types.CellType(c) for c in form["closure"]),
    )
    rebuilt.__kwdefaults__ = form["kwdefaults"]
    rebuilt.__qualname__ = func.__qualname__
    rebuilt.__module__ = func.__module__
    return rebuilt


def to_plan(data_op, *, fingerprints: dict | None = None) -> Plan:
    """Convert a skrub DataOp (or anything ``skrub.as_data_op`` accepts) to a plan.

    ``fingerprints``: a dict shared by the conversions of a batch of DataOps
    (``cross_validate_many``), so that a data frame every pipeline reads through
    its own ``skrub.var`` is fingerprinted once. Only share it while nothing can
    modify the data in place (between the conversions of one call).

    >>> import skrub
    >>> from stratumlite.frontend import to_plan
    >>> a = skrub.var("a", 1)
    >>> plan = to_plan(a + 1)
    >>> [n.op.label for n in plan.nodes()]
    ["Var 'a'", 'BinOp: add']
    """
    if not isinstance(data_op, DataOp):
        data_op = skrub.as_data_op(data_op)
    converter = _Converter(data_op, fingerprints)
    output = converter.run()
    plan = Plan((output,))
    nodes = plan.nodes()
    choices = [n for n in nodes if isinstance(n.op, (ChoiceOp, NumericChoiceOp))]
    x_nodes = [n for n in nodes if isinstance(n.op, SkrubOp) and n.op.meta.get("is_X")]
    y_nodes = [n for n in nodes if isinstance(n.op, SkrubOp) and n.op.meta.get("is_y")]
    return plan.with_outputs(
        plan.outputs,
        choices=choices,
        grid=_grid(data_op) if choices else [],
        X=x_nodes[0] if x_nodes else None,
        y=y_nodes[0] if y_nodes else None,
    )


def _grid(data_op) -> list[dict[int, list]]:
    """skrub's parameter grid, with every value list made explicit.

    Numeric ranges without ``n_steps`` cannot be enumerated: they keep their
    chosen or default value (a grid search refuses them, as skrub does).
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = _evaluation.param_grid(data_op)
    out = []
    for sub in grid:
        explicit = {}
        for k, v in sub.items():
            if isinstance(v, _choosing.NumericChoice):
                explicit[k] = [v.chosen_outcome_or_default()]
            else:
                explicit[k] = list(v)
        out.append(explicit)
    return out


# --------------------------------------------------------------------------
# environments and learner helpers (skrub's conventions, read from skrub)


def as_data_op(obj):
    """``obj`` as a skrub DataOp (raises a clear error for anything else)."""
    if isinstance(obj, DataOp):
        return obj
    try:
        return skrub.as_data_op(obj)
    except Exception as e:  # pragma: no cover - skrub accepts almost anything
        raise PlanError(f"Cannot turn {type(obj).__name__} into a skrub DataOp: {e}") from e


def eval_environment(data_op, environment: dict | None) -> dict:
    """The environment ``data_op.skb.eval(environment)`` evaluates with."""
    from skrub._data_ops._skrub_namespace import _var_values_provided

    if environment is not None and not hasattr(environment, "keys"):
        raise TypeError(
            "The `environment` should be None or a dictionary of input values, e.g. "
            f"{{'X': df}}. Got an object of type {type(environment).__name__!r}."
        )
    if environment is None:
        return data_op.skb._get_env()
    _evaluation._check_environment(environment)
    return {
        **environment,
        "_skrub_use_var_values": not _var_values_provided(data_op, environment),
    }


def fit_environment(data_op, keep_subsampling: bool = False) -> dict:
    """The environment ``make_learner(fitted=True)`` fits on (variables' values)."""
    from skrub._data_ops._subsampling import env_with_subsampling

    return env_with_subsampling(data_op, data_op.skb._get_env(), keep_subsampling)


def check_environment(environment) -> None:
    if environment is not None:
        _evaluation._check_environment(environment)


def learner_modes(data_op) -> list[str]:
    """Methods a learner built on ``data_op`` supports (as SkrubLearner)."""
    from skrub._data_ops._evaluation import supported_modes

    return list(supported_modes(data_op))


def with_choices_set(data_op, choose):
    """A clone of ``data_op`` whose choices are set as ``make_learner(choose=...)``
    would set them (skrub resolves 'default', 'random(seed)', a RandomState or an
    optuna trial)."""
    learner = data_op.skb.make_learner(choose=choose)
    return learner.data_op


def find_scoring(data_op):
    """The ``.skb.with_scoring`` node of ``data_op`` (or None)."""
    from skrub._data_ops._evaluation import find_scoring_node

    return find_scoring_node(data_op)


def evaluate_static(obj, environment: dict | None = None):
    """Evaluate a small structure that may hold choices (e.g. scorer specs)."""
    return _evaluation.evaluate(obj, mode="fit_transform", environment=environment or {})


def check_grid_search_possible(data_op) -> None:
    """Refuse continuous numeric ranges in a grid search (as skrub does)."""
    from skrub._data_ops._skrub_namespace import _check_grid_search_possible

    _check_grid_search_possible(data_op)
