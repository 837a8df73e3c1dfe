"""scikit-learn / skrub search plumbing (skrub internals live here, nowhere else).

A stratumlite search computes every (configuration, fold) fit and prediction
up front as one deduplicated task graph. It then lets scikit-learn's own
``GridSearchCV`` / ``RandomizedSearchCV`` / ``cross_validate`` do the
bookkeeping exactly as skrub does — candidates, scorers, ``error_score``,
ranks, ``cv_results_``, refit — over :class:`PlanPipeline`, skrub's
``_XyPipeline`` whose evaluation is answered by the stratumlite engine (from the
precomputed results, or computed on demand). Results are skrub's by
construction: same code computes them from the same values.

To let the engine identify folds without hashing data, scikit-learn is given a
proxy ``X``: a column of row numbers. ``PlanPipeline`` maps the rows it
receives back to the real ``X`` with scikit-learn's own ``_safe_indexing``.
"""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
from sklearn import model_selection
from sklearn.base import clone
from skrub._data_ops import _evaluation
from skrub._data_ops._estimator import (
    _SEARCH_FITTED_ATTRIBUTES,
    _SKLEARN_SEARCH_FITTED_ATTRIBUTES_TO_COPY,
    _BaseParamSearch,
    _compute_cv_data,
    _copy_attr,
    _SharedDict,
    _XyPipeline,
    default_score,
)
from skrub._data_ops._evaluation import find_scoring_node
from skrub._data_ops._utils import X_NAME, Y_NAME, unique_renaming

__all__ = [
    "PlanPipeline",
    "SearchBase",
    "X_NAME",
    "Y_NAME",
    "assignment_of",
    "compute_cv_data",
    "default_score",
    "prepare_sklearn_search",
    "shared",
]


class _Shared:
    """Holder passed through scikit-learn's ``clone`` without being copied."""

    def __init__(self, obj):
        self.obj = obj

    def __deepcopy__(self, memo):
        return self

    def __sklearn_clone__(self):
        return self

    def __repr__(self):
        return "<engine>"


def shared(obj) -> _Shared:
    return _Shared(obj)


def assignment_of(data_op) -> dict[int, object]:
    """The configuration set on ``data_op``: {choice id: outcome index or value}."""
    return {k: v for k, v in _evaluation.get_params(data_op).items() if v is not None}


def compute_cv_data(data_op, environment, cv):
    """X, y and the splitter, exactly as skrub computes them for a search."""
    return _compute_cv_data(data_op, environment, cv)


class PlanPipeline(_XyPipeline):
    """skrub's ``_XyPipeline`` evaluated by the stratumlite engine.

    ``X`` is a proxy column of row numbers (see module docstring).
    """

    def __init__(self, data_op, environment, engine):
        super().__init__(data_op, environment)
        self.engine = engine
        self._assignment = {}

    # The configuration lives on the pipeline, not on a clone of the DataOp:
    # scikit-learn clones the estimator for every (candidate, fold), and
    # cloning a DataOp graph costs milliseconds; the DataOp is shared, read-only.
    def __sklearn_clone__(self):
        new = type(self)(self.data_op, self.environment, self.engine)
        new._assignment = dict(self._assignment)
        return new

    def get_params(self, deep=True):
        params = {"data_op": self.data_op, "environment": self.environment,
                  "engine": self.engine}
        if deep:
            params.update({f"data_op__{k}": v for k, v in self._assignment.items()})
        return params

    def set_params(self, **params):
        for key, value in params.items():
            if key.startswith("data_op__"):
                self._assignment[int(key.removeprefix("data_op__"))] = value
            elif key in ("data_op", "environment", "engine"):
                setattr(self, key, value)
            else:
                raise ValueError(f"Invalid parameter {key!r} for {type(self).__name__}.")
        return self

    @property
    def assignment(self) -> dict:
        return dict(self._assignment)

    def __getattr__(self, name):
        # skrub looks up the supported methods by walking the graph on every
        # call; the engine knows them once.
        if name.startswith("_") or name not in self.engine.obj.modes:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def method(*args, **kwargs):
            if name == "score":
                return self._score(*args, **kwargs)
            result = self._eval_in_mode(name, *args, **kwargs)
            return self if name == "fit" else result

        method.__name__ = name
        return method

    def _eval_in_mode(self, mode, X, y=None):
        result = self.engine.obj.evaluate(self, mode, X, y)
        self._set_is_fitted(mode)
        return result

    @property
    def classes_(self):
        return self.engine.obj.classes(self)

    def _score(self, X, y=None, cast_to_float=True, return_predictions=False):
        # skrub's _XyPipeline._score, with the caching estimator evaluated by
        # the engine rather than by skrub.
        score_node = self.engine.obj.scoring_node
        if score_node is None:
            result = self._eval_in_mode("score", X, y)
            return (result, {}) if return_predictions else result
        # the scorers' kwargs may read X: evaluate them on the real rows, not
        # on the proxy; clear=True: the DataOp is shared by every (candidate,
        # fold), so skrub's per-node result cache must not leak across folds
        env = self._get_env(self.engine.obj.rows_to_X(X), y)
        scorers = _evaluation.evaluate(
            score_node._skrub_impl.scorers, mode="fit_transform",
            environment=env, ancestor_data_op=self.data_op, clear=True,
        )
        all_scores = []
        caching = _CachingPlanPipeline(self.data_op, self.environment, self.engine,
                                       X_id=id(X), cache={})
        caching._assignment = dict(self._assignment)
        caching._is_fitted = getattr(self, "_is_fitted", False)
        caching._sl_fit = getattr(self, "_sl_fit", None)
        for scorer_info in scorers:
            scorer = self._prepare_scorer(scorer_info["scoring"], scorer_info["kwargs"])
            scorer_output = scorer(caching, X, y)
            all_scores.extend(self._process_scores(scorer_info, scorer_output))
        rename = unique_renaming()
        result = {rename(name): score for name, score in all_scores}
        if cast_to_float and len(result) == 1 and not return_predictions:
            return next(iter(result.values()))
        return (result, caching.cache) if return_predictions else result


class _CachingPlanPipeline(PlanPipeline):
    def __init__(self, data_op, environment, engine, X_id=None, cache=None):
        super().__init__(data_op, environment, engine)
        self.X_id = X_id
        self.cache = cache

    def __sklearn_clone__(self):
        new = type(self)(self.data_op, self.environment, self.engine, self.X_id, self.cache)
        new._assignment = dict(self._assignment)
        return new

    def _eval_in_mode(self, mode, X, y=None):
        if y is not None or id(X) != self.X_id:
            return super()._eval_in_mode(mode, X, y=y)
        if mode not in self.cache:
            self.cache[mode] = super()._eval_in_mode(mode, X, y=y)
        return self.cache[mode]

    def _score(self, X, y=None, **kwargs):
        return super()._eval_in_mode("score", X, y=y)


class _FixedCandidates:
    """Mixin: evaluate a precomputed candidate list (so sampling happens once)."""

    def _run_search(self, evaluate_candidates):
        evaluate_candidates(self._stratumlite_candidates)


def prepare_sklearn_search(search, estimator, candidates, splits, grid):
    """A clone of ``search`` (GridSearchCV/RandomizedSearchCV) that evaluates
    ``candidates`` on ``splits`` with ``estimator``, in this process."""
    search = clone(search)
    base = type(search)
    fixed = type(f"Stratumlite{base.__name__}", (_FixedCandidates, base), {})
    params = search.get_params(deep=False)
    params.update(estimator=estimator, cv=splits, n_jobs=None, pre_dispatch="1")
    if "param_grid" in params:
        params["param_grid"] = grid
    else:
        params["param_distributions"] = grid
    new = fixed(**params)
    new._stratumlite_candidates = candidates
    if new.scoring is None:
        new.scoring = default_score
    return new


def response_methods(scoring, estimator, data_op) -> set[str]:
    """The estimator methods the scorers will call (to compute them ahead)."""
    from sklearn.metrics import check_scoring

    specs = []
    # a graph walk (~10 ms on a 20-node pipeline): only when no scoring is given
    score_node = find_scoring_node(data_op) if scoring is None else None
    if scoring is None and score_node is not None:
        try:
            infos = _evaluation.evaluate(score_node._skrub_impl.scorers, mode="fit_transform",
                                         environment={})
            specs = [info["scoring"] for info in infos]
        except Exception:
            return {"predict"}
    elif scoring is None:
        return {"score"}
    else:
        specs = [scoring]
    methods: set[str] = set()
    for spec in specs:
        if isinstance(spec, dict):
            items = list(spec.values())
        elif isinstance(spec, (list, tuple, set)):
            items = list(spec)
        else:
            items = [spec]
        for item in items:
            try:
                scorer = check_scoring(estimator, item) if not callable(item) or \
                    isinstance(item, str) else item
            except Exception:
                scorer = item
            rm = getattr(scorer, "_response_method", None)
            if rm is None:
                methods.add("predict")
            elif isinstance(rm, str):
                methods.add(rm)
            else:
                available = [m for m in rm if hasattr(estimator, m)]
                methods.add(available[0] if available else rm[0])
    return methods


class SearchBase(_BaseParamSearch):
    """skrub's result tables (``results_``, ``detailed_results_``,
    ``plot_results``) for a stratumlite search object."""

    _stratumlite_fitted = _SEARCH_FITTED_ATTRIBUTES

    def _call_predictor_method(self, name, environment, **kwargs):
        if not hasattr(self, "best_learner_"):
            raise AttributeError(
                "This parameter search was initialized with `refit=False`. "
                f"{name} is available only after refitting on the best parameters."
            )
        return getattr(self.best_learner_, name)(environment, **kwargs)


def copy_search_results(sk_search, target) -> None:
    _copy_attr(sk_search, target, _SKLEARN_SEARCH_FITTED_ATTRIBUTES_TO_COPY)


def cross_validate_sklearn(estimator, X, y, splits, kwargs):
    return model_selection.cross_validate(estimator, X, y, cv=splits, **kwargs)


def row_proxy(n: int) -> np.ndarray:
    """The proxy X given to scikit-learn: row numbers, one column."""
    return np.arange(n).reshape(-1, 1)


_ = (copy, partial, _SharedDict)


class _LearnerAsEstimator:
    """A fitted stratumlite Learner seen as a scikit-learn estimator on X
    (what skrub's scorers call): ``predict(X)`` evaluates the learner with X
    injected where the DataOp marks X."""

    def __init__(self, learner, environment, final):
        self._learner = learner
        self._environment = environment
        self._final = final  # the fitted final estimator (tags, classes_)

    def _run(self, mode, X):
        return self._learner._run(mode, {**self._environment, X_NAME: X})

    def predict(self, X):
        return self._run("predict", X)

    def predict_proba(self, X):
        return self._run("predict_proba", X)

    def decision_function(self, X):
        return self._run("decision_function", X)

    def __getattr__(self, name):
        if name in ("predict_proba", "decision_function") and not hasattr(self._final, name):
            raise AttributeError(name)
        if name in ("classes_", "_estimator_type"):
            return getattr(self._final, name)
        raise AttributeError(name)

    def __sklearn_tags__(self):
        return self._final.__sklearn_tags__()

    def fit(self, X, y=None):  # pragma: no cover - scorers never fit
        raise NotImplementedError


def score_with_scoring(learner, environment, X, y, final_estimator, scorers):
    """skrub's ``SkrubLearner.score`` when the DataOp has ``.skb.with_scoring``:
    a dict of the scorers' results (skrub's ``_XyPipeline._score``)."""
    from sklearn.metrics import check_scoring

    estimator = _LearnerAsEstimator(learner, environment, final_estimator)
    all_scores = []
    for scorer_info in scorers:
        scoring, kwargs = scorer_info["scoring"], scorer_info.get("kwargs") or {}
        scorer = check_scoring(estimator, scoring)
        if kwargs:
            if hasattr(scorer, "_kwargs"):
                scorer = copy.deepcopy(scorer)
                scorer._kwargs = {**scorer._kwargs, **kwargs}
            else:
                scorer = partial(scorer, **kwargs)
        output = scorer(estimator, X, y)
        all_scores.extend(_XyPipeline._process_scores(scorer_info, output))
    rename = unique_renaming()
    return {rename(name): score for name, score in all_scores}
