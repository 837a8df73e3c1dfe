"""The stratumlite learner: a plan plus the fitted state of its nodes.

The learner never touches the user's DataOp: the plan was built from it once,
and fitted state (the private copies of stateful nodes) lives in
``learner.state_``, keyed by lineage key.

>>> import skrub, stratumlite
>>> from sklearn.linear_model import Ridge
>>> import pandas as pd
>>> df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 2.0, 4.0, 6.0]})
>>> data = skrub.var("data", df)
>>> X = data[["x"]].skb.mark_as_X()
>>> y = data["y"].skb.mark_as_y()
>>> pred = X.skb.apply(Ridge(alpha=1e-9), y=y)
>>> learner = stratumlite.make_learner(pred).fit({"data": df})
>>> learner.predict({"data": df}).round(3).tolist()
[0.0, 2.0, 4.0, 6.0]
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

from . import frontend
from .config import Config
from .errors import NotFittedError
from .plan import Plan
from .runtime.session import Session
from .runtime.tasks import Binding

_FITTING = ("fit", "fit_transform")
_PREDICT_LIKE = ("predict", "predict_proba", "decision_function", "transform", "score")


def first_apply_node(node):
    """The ``Apply`` node skrub's ``find_first_apply`` finds (the final
    estimator): pre-order, inputs in field order. The output itself may be a
    wrapper such as ``.skb.with_scoring``'s node."""
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if n.key in seen:
            continue
        seen.add(n.key)
        if n.op.kind == "Apply":
            return n
        stack.extend(reversed(n.inputs))
    return None


class Learner:
    """A learner over a DataOp's plan, with skrub's ``SkrubLearner`` interface.

    Methods take an ``environment`` dict mapping variable names to values:
    ``fit``, ``fit_transform``, ``transform``, ``predict``, ``predict_proba``,
    ``decision_function``, ``score`` (the ones the final estimator supports).

    Parameters
    ----------
    plan : Plan
        The plan built by the frontend (see :func:`stratumlite.make_learner`).
    modes : list of str
        Supported methods.
    scoring : object or None
        Scorer specification from ``.skb.with_scoring`` (handled by search).
    """

    def __init__(self, plan: Plan, modes: list[str], scoring: Any = None,
                 description: str = "", config: Config | None = None):
        self.plan = plan
        self.modes = list(modes)
        self.scoring = scoring
        self.description = description
        self.config = config
        self.state_: dict[str, Any] = {}
        self.fit_key_: str | None = None
        self.input_schema_: dict[str, dict[str, str]] = {}
        self.data_op = None  # set by the skrub drop-in (for skrub.cross_validate)
        self._is_fitted = False

    # --- sklearn-like introspection --------------------------------------
    def __repr__(self) -> str:
        status = "fitted" if self._is_fitted else "not fitted"
        return f"<stratumlite Learner {self.description} ({status})>"

    def __sklearn_is_fitted__(self) -> bool:
        return self._is_fitted

    @property
    def classes_(self):
        """``classes_`` of the final estimator (classification)."""
        node = first_apply_node(self.plan.output)
        impl = self.state_.get(node.key) if node is not None else None
        est = getattr(impl, "estimator_", None)
        if est is None or not hasattr(est, "classes_"):
            raise AttributeError("'Learner' object has no attribute 'classes_'")
        return est.classes_

    # --- evaluation -------------------------------------------------------
    def _run(self, mode: str, environment: dict) -> Any:
        if mode not in self.modes:
            raise AttributeError(
                f"This learner has no method {mode!r}: its final step supports "
                f"{', '.join(self.modes)}."
            )
        frontend.check_environment(environment)
        if mode not in _FITTING and not self._is_fitted:
            raise NotFittedError(
                f"This learner is not fitted yet: call fit(environment) before {mode}()."
            )
        env = dict(environment or {})
        config = self.config or Config.from_env()
        with Session(config, kind="fit" if mode in _FITTING else mode) as session:
            binding = session.bind(env)
            if mode in _FITTING:
                task = session.request(self.plan.output, mode, binding)
                (result,) = session.run([task])
                self.state_ = session.complete_fitted_state(task)
                self.fit_key_ = binding.key
                self.input_schema_ = _schemas(env, self.variables())
                self._is_fitted = True
                return result
            fit_binding = Binding({}, key=self.fit_key_, label="learner fit")
            for key, impl in self.state_.items():
                session.states[(fit_binding.key, key)] = impl
            task = session.request(self.plan.output, mode, binding, fit_binding)
            (result,) = session.run([task])
            return result

    def fit(self, environment: dict) -> Learner:
        """Fit every estimator of the plan on ``environment``; returns self."""
        self._run("fit", environment)
        return self

    def fit_transform(self, environment: dict) -> Any:
        return self._run("fit_transform", environment)

    def transform(self, environment: dict) -> Any:
        return self._run("transform", environment)

    def predict(self, environment: dict) -> Any:
        return self._run("predict", environment)

    def predict_proba(self, environment: dict) -> Any:
        return self._run("predict_proba", environment)

    def decision_function(self, environment: dict) -> Any:
        return self._run("decision_function", environment)

    def score(self, environment: dict) -> Any:
        """The final estimator's ``score`` on ``environment`` (skrub's score
        mode); with ``.skb.with_scoring``, a dict of those scorers' results,
        as skrub's learner returns."""
        output = self.plan.output
        if output.op.kind != "Scoring":
            return self._run("score", environment)
        if "score" not in self.modes:
            raise AttributeError("This learner has no method 'score'.")
        return self._score_with_scoring(dict(environment or {}), output)

    def _score_with_scoring(self, env: dict, scoring_node) -> Any:
        """skrub's ``SkrubLearner.score`` with ``.skb.with_scoring``: X and y
        are evaluated, then each scorer is called on the learner seen as an
        estimator of X (predictions through the runtime)."""
        from .frontend import X_NAME, Y_NAME, search_adapter
        from .frontend.templates import input_refs, resolve_with

        nodes = self.plan.nodes("key")
        x_node = next(n for n in nodes if getattr(n.op, "meta", {}).get("is_X"))
        y_nodes = [n for n in nodes if getattr(n.op, "meta", {}).get("is_y")]
        config = self.config or Config.from_env()
        template = scoring_node.op.templates["scorers"]
        refs = sorted(input_refs(template))
        with Session(config, kind="score") as session:
            binding = session.bind(env)
            tasks = [session.request(x_node, "fit_transform", binding)]
            tasks += [session.request(n, "fit_transform", binding) for n in y_nodes[:1]]
            values = session.run(tasks)
            X = values[0]
            y = values[1] if len(values) > 1 else None
            xy_env = {**env, X_NAME: X, **({Y_NAME: y} if y is not None else {})}
            xy = session.bind(xy_env)
            inputs = session.run([session.request(scoring_node.inputs[i], "fit_transform", xy)
                                  for i in refs])
        scorers = resolve_with(template, dict(zip(refs, inputs)))
        final = first_apply_node(scoring_node)
        final_estimator = self.state_[final.key].estimator_
        return search_adapter.score_with_scoring(self, env, X, y, final_estimator, scorers)

    def variables(self, mode: str = "predict") -> list[str]:
        """Names of the variables evaluating in ``mode`` reads (dead branches
        such as ``y`` when predicting are left out)."""
        from .plan import live_nodes

        live = live_nodes(self.plan.outputs, mode)
        names = []
        for node in self.plan.nodes("key"):
            name = getattr(node.op, "var_name", None)
            if name is not None and node.key in live and name not in names:
                names.append(name)
        return names

    # --- pickling (cloudpickle, so lambdas in the plan survive) -----------
    def __getstate__(self):
        payload = cloudpickle.dumps(
            (self.plan, self.modes, self.scoring, self.description, self.state_,
             self._is_fitted, self.fit_key_, getattr(self, "input_schema_", {}))
        )
        return {"payload": payload}

    def __setstate__(self, state):
        (self.plan, self.modes, self.scoring, self.description, self.state_,
         self._is_fitted, self.fit_key_, self.input_schema_) = pickle.loads(state["payload"])
        self.config = None
        self.data_op = None


def _schemas(env: dict, names: list[str]) -> dict[str, dict[str, str]]:
    """Column name -> dtype text of each dataframe variable seen at fit time."""
    out = {}
    for name in names:
        value = env.get(name)
        schema = getattr(value, "schema", None)  # polars
        if schema is not None and hasattr(value, "columns"):
            out[name] = {c: str(t) for c, t in schema.items()}
        elif hasattr(value, "dtypes") and hasattr(value, "columns"):  # pandas
            out[name] = {str(c): str(t) for c, t in value.dtypes.items()}
    return out


def make_learner(data_op, *, fitted: bool = False, environment: dict | None = None,
                 choose: Any = "default", keep_subsampling: bool = False,
                 config: Config | None = None) -> Learner:
    """Build a :class:`Learner` for ``data_op`` (like ``.skb.make_learner``).

    Parameters
    ----------
    data_op : skrub DataOp
    fitted : bool
        Fit right away, on ``environment`` or (if None) on the variables'
        values.
    environment : dict or None
        Data to fit on when ``fitted=True``.
    choose : 'default', 'random', 'random(seed)', RandomState or optuna trial
        How choices are resolved (as in skrub).
    keep_subsampling : bool
        Fit on the subsample configured with ``.skb.subsample`` (``fitted=True``).
    config : Config or None
        Runtime settings (executor, cache, lineage); default ``Config.from_env()``.

    >>> import skrub, stratumlite
    >>> x = skrub.var("x")
    >>> learner = stratumlite.make_learner(x * 2)
    >>> learner.fit_transform({"x": 21})
    42
    """
    data_op = frontend.as_data_op(data_op)
    if choose != "default":
        data_op = frontend.with_choices_set(data_op, choose)
    plan = frontend.to_plan(data_op)
    label = plan.output.op.label
    learner = Learner(plan, frontend.learner_modes(data_op), description=label,
                      config=config)
    if fitted:
        env = (frontend.fit_environment(data_op, keep_subsampling)
               if environment is None else environment)
        learner.fit(env)
    return learner
