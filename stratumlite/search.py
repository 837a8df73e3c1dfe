"""Grid search, randomized search and cross-validation over one expanded plan.

How a search runs
-----------------
1. The DataOp is converted once; X, y and the cv splits are computed as skrub
   computes them.
2. The configurations are enumerated exactly as skrub's search enumerates them
   (scikit-learn's ``ParameterGrid`` / ``ParameterSampler`` over skrub's grid,
   same ``random_state``). ``expand_choices`` turns each into a choice-free
   output node; equal nodes have equal lineage keys, so configurations share
   their common prefix (CSE by hash-consing).
3. Every (configuration, fold) fit and the predictions the scorers need are
   requested from the runtime as one task graph: each distinct (node, fold)
   is fitted once however many configurations share it, independent tasks run
   in parallel.
4. scikit-learn's search object then does the bookkeeping over
   :class:`~stratumlite.frontend.search_adapter.PlanPipeline` — the same code
   skrub uses — answered from the computed results, so ``cv_results_``,
   ``results_``, ``best_params_`` and the refit match skrub's.

>>> import numpy as np, skrub, stratumlite
>>> from sklearn.linear_model import Ridge
>>> rng = np.random.default_rng(0)
>>> X = skrub.X(rng.normal(size=(60, 3)))
>>> y = skrub.y(rng.normal(size=60))
>>> pred = X.skb.apply(Ridge(alpha=skrub.choose_from([0.1, 10.0], name="alpha")), y=y)
>>> search = stratumlite.make_grid_search(pred, fitted=True, cv=3, verbose=0)
>>> list(search.results_.columns)
['alpha', 'mean_test_score']
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import numpy as np
from sklearn import model_selection
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing

from . import frontend
from .config import Config
from .errors import NotFittedError
from .frontend import search_adapter as adapter
from .learner import Learner, first_apply_node
from .optimizer import OptimizerContext, select_operators
from .optimizer.expand_choices import expand_configuration
from .plan import Node, Plan, lineage_key
from .runtime.session import Session
from .runtime.tasks import Binding

_FIT_MODES = ("fit", "fit_transform")


def _rows_key(plan: Plan, base: Binding) -> str:
    """Lineage key of what a search's rows index into: the X and y nodes (and
    their data, the bound environment)."""
    xy = [n.key for n in (plan.meta.get("X"), plan.meta.get("y")) if n]
    return lineage_key("rows-of", "", [base.key, *xy])


class SearchEngine:
    """Answers ``PlanPipeline`` evaluations from one session (see module doc)."""

    def __init__(self, data_op, environment: dict, session: Session, X, y,
                 plan: Plan | None = None, bindings: dict | None = None):
        self.data_op = data_op
        self.plan = plan if plan is not None else frontend.to_plan(data_op)
        self.environment = environment
        self.session = session
        self.base = session.bind(environment, label="full environment")
        self.X, self.y = X, y
        self.n_rows = _n_rows(X)
        # what the rows index into: the X and y nodes (and their data)
        self.rows_of = _rows_key(self.plan, self.base)
        # fold bindings by rows key; engines whose rows index the same X and y
        # (same ``rows_of``) may share one dict, so each fold's rows are taken
        # from the data once (``cross_validate_many``)
        self._bindings: dict[str, Binding] = bindings if bindings is not None else {}
        self._outputs: dict[tuple, Node] = {}
        self.failed: dict[str, BaseException] = {}
        self.operator_selection: dict[str, list] = {}
        self.evaluations = 0
        self.modes = frontend.learner_modes(data_op)
        self.scoring_node = frontend.find_scoring(data_op)
        self.normalize = not any(
            getattr(n.op, "reads_mode", lambda: False)() for n in self.plan.nodes("id")
        )

    def rows_to_X(self, X_rows):
        """The real ``X`` rows behind scikit-learn's proxy (row numbers)."""
        return _safe_indexing(self.X, np.asarray(X_rows).ravel())

    # --- configurations and folds -------------------------------------------
    def output_for(self, assignment: dict[int, Any]) -> Node:
        key = tuple(sorted((k, _hashable(v)) for k, v in assignment.items()))
        node = self._outputs.get(key)
        if node is None:
            node = expand_configuration(self.plan, assignment, "fit")
            if self.session.config.operator_selection:
                ctx = OptimizerContext(n_rows=self.n_rows)
                selected = select_operators(Plan((node,)), ctx)
                node = selected.output
                self.operator_selection.update(selected.meta.get("operator_selection", {}))
            self._outputs[key] = node
        return node

    def binding_for(self, rows: np.ndarray, y: Any, has_y: bool) -> Binding:
        rows = np.ascontiguousarray(np.asarray(rows).ravel(), dtype=np.int64)
        rows_key = lineage_key("rows", "y" if has_y else "", [self.rows_of,
                                                             _rows_digest(rows)])
        cached = self._bindings.get(rows_key)
        if cached is not None:
            return cached
        env = {**self.environment, adapter.X_NAME: _safe_indexing(self.X, rows)}
        if has_y:
            env[adapter.Y_NAME] = y if y is not None else _safe_indexing(self.y, rows)
        binding = Binding(env, rows_key, label=f"{len(rows)} rows")
        self._bindings[rows_key] = binding
        return binding

    # --- evaluation (called by PlanPipeline through scikit-learn) -----------
    def evaluate(self, pipeline, mode: str, X_rows, y=None):
        self.evaluations += 1
        node = self.output_for(pipeline.assignment)
        binding = self.binding_for(X_rows, y, y is not None)
        if mode in _FIT_MODES:
            task = self.session.request(node, mode, binding)
            pipeline._sl_fit = (node, binding)
        else:
            fit = getattr(pipeline, "_sl_fit", None)
            if fit is None:
                raise NotFittedError(f"call fit() before {mode}()")
            task = self.session.request(node, mode, binding, fit[1])
        if task.key in self.failed:
            raise self.failed[task.key]
        (value,) = self.session.run([task], normalize=self.normalize)
        return value

    def classes(self, pipeline):
        fit = getattr(pipeline, "_sl_fit", None)
        if fit is None:
            raise AttributeError("'PlanPipeline' object has no attribute 'classes_'")
        node, binding = fit
        node = first_apply_node(node)
        impl = self.session.states.get((binding.key, node.key)) if node is not None else None
        est = getattr(impl, "estimator_", None)
        if est is None or not hasattr(est, "classes_"):
            raise AttributeError("'PlanPipeline' object has no attribute 'classes_'")
        return est.classes_

    def learner_for(self, pipeline) -> Learner:
        """A stratumlite Learner holding the state ``pipeline`` was fitted to."""
        node, binding = pipeline._sl_fit
        plan = Plan((node,))
        learner = Learner(plan, frontend.learner_modes(self.data_op),
                          description=node.op.label)
        learner.state_ = self.session.complete_fitted_state(
            self.session.request(node, "fit", binding), self.normalize)
        learner.fit_key_ = binding.key  # fitted-state identity (registry, lineage)
        learner._is_fitted = True
        return learner

    # --- the precomputed task graph ----------------------------------------
    def plan_tasks(self, assignments: list[dict], splits: list, methods: set[str],
                   return_train_score: bool = False) -> list:
        """Every fit, and every prediction the scorers need, as root tasks."""
        tasks = []
        for assignment in assignments:
            node = self.output_for(assignment)
            for train, test in splits:
                train_b = self.binding_for(train, None, True)
                tasks.append(self.session.request(node, "fit", train_b))
                eval_sets = [test, train] if return_train_score else [test]
                for rows in eval_sets:
                    for m in sorted(methods):
                        b = self.binding_for(rows, None, m == "score")
                        tasks.append(self.session.request(node, m, b, train_b))
        return tasks

    def refit_inputs(self, assignments: list[dict]) -> list:
        """Speculative work for the refit: each configuration's final-estimator
        inputs on all rows (its preprocessing). The refit needs one of them; run
        in the background, they fill cores the search leaves idle (its last
        folds), and the refit then only fits the model."""
        from .learner import first_apply_node

        full = self.binding_for(np.arange(self.n_rows), None, True)
        tasks = {}
        for assignment in assignments:
            node = self.output_for(assignment)
            final = first_apply_node(node)
            if final is None:
                continue
            root = self.session.request(node, "fit", full)
            for t in self.session.input_tasks(root, final, self.normalize):
                tasks.setdefault(t.key, t)
        # all but one preprocessing is wasted work: speculate only while they fit
        # in the workers (one slot each at the end of the search). Inputs with no
        # estimator upstream (a choice outcome, the y column) cost nothing.
        costly = [t for t in tasks.values() if _has_estimator(t.node)]
        if len(costly) > self.session.config.workers:
            return []
        return list(tasks.values())

    def precompute(self, assignments: list[dict], splits: list, methods: set[str],
                   return_train_score: bool = False, refit: bool = False) -> dict:
        """Request every fit and scorer prediction at once; returns counts."""
        tasks = self.plan_tasks(assignments, splits, methods, return_train_score)
        background = self.refit_inputs(assignments) if refit else []
        return run_tasks(self.session, [(self, tasks)], self.normalize, background)


def _has_estimator(node) -> bool:
    from .plan import topological_order

    return any(n.op.is_estimator() for n in topological_order([node], dedupe="key"))


def run_tasks(session: Session, groups: list, normalize: bool = True,
              background: list = ()) -> dict:
    """Run the tasks of several engines as one graph; failures go to each
    engine's ``failed`` map (the other tasks still run). ``background`` tasks
    only use slots the others leave free (see ``Scheduler.run``)."""
    before = len(session.records)
    all_tasks = [t for _, tasks in groups for t in tasks]
    results = session.run(all_tasks, raise_errors=False, normalize=normalize,
                          background=background)
    i = 0
    for engine, tasks in groups:
        for task in tasks:
            if isinstance(results[i], BaseException):
                engine.failed[task.key] = results[i]
            i += 1
    return {"tasks_requested": len(all_tasks), "records": session.records[before:],
            "background": {t.key for t in background}}


def _hashable(v):
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)


def _rows_digest(rows: np.ndarray) -> str:
    import xxhash

    return xxhash.xxh3_128(rows.view(np.uint8)).hexdigest()


def _n_rows(X) -> int:
    shape = getattr(X, "shape", None)
    if shape is not None:
        return int(shape[0])
    return len(X)


def _workers(n_jobs, config: Config) -> int:
    import os

    cores = os.cpu_count() or 1
    if n_jobs is None:
        return config.n_workers or cores
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return max(1, int(n_jobs))


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, verbose: int, description: str):
        self.bar = None
        if verbose and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(description, total=None)

    def __call__(self, record, value):
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self):
        if self.bar is not None:
            self.bar.update(self.task, total=self.bar.tasks[0].completed)
            self.bar.stop()


class ParamSearch(adapter.SearchBase):
    """Hyperparameter search over a DataOp, run as one optimized plan.

    Created by :func:`make_grid_search` / :func:`make_randomized_search`.
    After ``fit``: skrub's ``results_``, ``detailed_results_``, ``cv_results_``,
    ``best_params_``, ``best_score_``, ``best_learner_`` (a stratumlite
    :class:`~stratumlite.Learner`), plus ``stats_`` (fits executed vs what a
    naive search runs), ``errors_`` (configuration -> error text) and
    ``records_`` (per-task timings, for ``explain`` and benchmarks).
    """

    def __init__(self, data_op, search, config: Config | None = None, verbose: int = 1):
        self.data_op = data_op
        self.search = search
        self.config = config
        self.verbose = verbose

    def fit(self, environment: dict) -> ParamSearch:
        """Run the search on ``environment`` (variable name -> value)."""
        frontend.check_environment(environment)
        config = self.config or Config.from_env()
        n_jobs = getattr(self.search, "n_jobs", None)
        config = config.replace(n_workers=_workers(n_jobs, config))
        self.refit_ = self.search.refit
        X, y, splitter = adapter.compute_cv_data(self.data_op, environment, self.search.cv)
        progress = _Progress(self.verbose, "search")
        start = time.perf_counter()
        with Session(config, on_done=progress, kind="search") as session:
            engine = SearchEngine(self.data_op, environment, session, X, y)
            estimator = adapter.PlanPipeline(self.data_op, _shared_env(environment),
                                             adapter.shared(engine))
            grid = estimator.get_param_grid()
            sk = clone(self.search)
            if hasattr(sk, "param_grid"):
                candidates = list(model_selection.ParameterGrid(grid))
            else:
                candidates = list(model_selection.ParameterSampler(
                    grid, sk.n_iter, random_state=sk.random_state))
            cv = check_cv(splitter if splitter is not None else sk.cv, y,
                          classifier=is_classifier(estimator))
            splits = list(cv.split(X, y))
            assignments = [{int(k.removeprefix("data_op__")): v for k, v in c.items()}
                           for c in candidates]
            methods = adapter.response_methods(sk.scoring, estimator, self.data_op)
            pre = engine.precompute(assignments, splits, methods,
                                    return_train_score=bool(sk.return_train_score),
                                    refit=bool(sk.refit))
            sk = adapter.prepare_sklearn_search(sk, estimator, candidates, splits, grid)
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                sk.fit(adapter.row_proxy(engine.n_rows), y)
            progress.close()
            adapter.copy_search_results(sk, self)
            best = getattr(sk, "best_estimator_", None)
            if best is not None:
                self.best_learner_ = engine.learner_for(best)
            self.records_ = list(session.records)
            self.operator_selection_ = dict(engine.operator_selection)
            self.run_id_ = session.run_id
            self.output_key_ = None  # lineage key of the refitted best learner
            if best is not None:
                self.output_key_ = self.best_learner_.plan.output.key
                if config.lineage:
                    from .lineage.recording import fitted_run

                    found = fitted_run(self.best_learner_.plan.output.key,
                                       self.best_learner_.fit_key_, config.lineage_db)
                    if found is not None:
                        self.output_key_ = found[1]
            self.stats_ = _stats(engine, assignments, splits, pre, session,
                                 time.perf_counter() - start)
            self.errors_ = _errors(engine, assignments, splits)
        return self

    @property
    def results_(self):
        table = super().results_
        if getattr(self, "errors_", None):
            params = [{int(k.removeprefix("data_op__")): v for k, v in p.items()}
                      for p in self.cv_results_["params"]]
            errors = [self.errors_.get(i, "") for i in range(len(params))]
            order = self._results_order()
            table["error"] = [errors[i] for i in order]
        return table

    def _results_order(self):
        scores = self.cv_results_[[k for k in self.cv_results_ if
                                   k.startswith("mean_test_")][0]]
        import pandas as pd

        return list(pd.Series(scores).sort_values(ascending=False, kind="stable").index)


def _shared_env(environment):
    from skrub._data_ops._estimator import _SharedDict  # noqa: F401 (frontend type)

    return adapter._SharedDict(environment)


def _errors(engine: SearchEngine, assignments, splits) -> dict[int, str]:
    errors = {}
    if not engine.failed:
        return errors
    for c, assignment in enumerate(assignments):
        node = engine.output_for(assignment)
        for train, _ in splits:
            b = engine.binding_for(train, None, True)
            task = engine.session.request(node, "fit", b)
            if task.key in engine.failed:
                err = engine.failed[task.key]
                errors[c] = f"{type(err).__name__}: {err}"
                break
    return errors


def _background_closure(pre) -> set[str]:
    """Keys of the speculative tasks: every task on a background root's binding
    (all rows, which no fold uses: only the refit does)."""
    background = pre.get("background") or set()
    bindings = {r.task.binding.key for r in pre["records"] if r.task.key in background}
    return {r.task.key for r in pre["records"] if r.task.binding.key in bindings}


def _stats(engine, assignments, splits, pre, session, seconds) -> dict:
    from .plan import topological_order

    background = _background_closure(pre)
    records = [r for r in pre["records"] if r.task.key not in background]
    speculative = [r for r in pre["records"] if r.task.key in background]
    all_fits = [r for r in records if r.task.fitting and r.task.node.op.is_estimator()]
    fits = [r for r in all_fits if r.status != "hit"]  # a cache hit loads, not fits
    naive_fits = 0
    naive_tasks = 0
    for assignment in assignments:
        nodes = topological_order([engine.output_for(assignment)], dedupe="key")
        naive_fits += sum(1 for n in nodes if n.op.is_estimator()) * len(splits)
        naive_tasks += len(nodes) * len(splits)
    return {
        "configurations": len(assignments),
        "folds": len(splits),
        "fits_executed": len(fits),
        "fits_from_cache": len(all_fits) - len(fits),
        "fits_naive": naive_fits,
        "tasks_executed": len(records),
        "tasks_requested": pre["tasks_requested"],
        # the refit's preprocessing, run ahead in idle slots (not in the counts above)
        "speculative_tasks": len(speculative),
        "speculative_fits": sum(1 for r in speculative
                                if r.task.fitting and r.task.node.op.is_estimator()),
        "wall_seconds": seconds,
        "sum_task_seconds": sum(r.seconds for r in records),
        "workers": session.config.workers,
        "memory_waits": session.memory_waits,
    }


def make_grid_search(data_op, *, fitted: bool = False, environment: dict | None = None,
                     keep_subsampling: bool = False, config: Config | None = None,
                     verbose: int = 1, **kwargs) -> ParamSearch:
    """Grid search over a DataOp's choices (like ``.skb.make_grid_search``).

    ``kwargs`` are those of scikit-learn's ``GridSearchCV`` (``cv``,
    ``scoring``, ``n_jobs``, ``refit``, ``error_score``,
    ``return_train_score``...). ``n_jobs`` sets how many tasks run at once.
    """
    data_op = frontend.as_data_op(data_op)
    adapter_check = frontend.check_grid_search_possible
    adapter_check(data_op)
    search = ParamSearch(data_op.skb.clone(), model_selection.GridSearchCV(None, None, **kwargs),
                         config=config, verbose=verbose)
    return _maybe_fit(search, data_op, fitted, environment, keep_subsampling)


def make_randomized_search(data_op, *, fitted: bool = False, environment: dict | None = None,
                           keep_subsampling: bool = False, config: Config | None = None,
                           verbose: int = 1, **kwargs) -> ParamSearch:
    """Randomized search over a DataOp's choices (like
    ``.skb.make_randomized_search``); ``n_iter`` and ``random_state`` as in
    scikit-learn's ``RandomizedSearchCV``."""
    data_op = frontend.as_data_op(data_op)
    search = ParamSearch(data_op.skb.clone(),
                         model_selection.RandomizedSearchCV(None, None, **kwargs),
                         config=config, verbose=verbose)
    return _maybe_fit(search, data_op, fitted, environment, keep_subsampling)


def _maybe_fit(search, data_op, fitted, environment, keep_subsampling):
    if not fitted:
        return search
    env = (frontend.fit_environment(data_op, keep_subsampling)
           if environment is None else environment)
    return search.fit(env)


def cross_validate(data_op, environment: dict | None = None, *, keep_subsampling: bool = False,
                   config: Config | None = None, verbose: int = 1, **kwargs):
    """Cross-validate a DataOp's learner (like ``.skb.cross_validate``).

    Returns skrub's table (a pandas DataFrame with ``test_score``, ``fit_time``
    ... and ``learner`` when ``return_learner=True``).
    """
    import pandas as pd

    data_op = frontend.as_data_op(data_op)
    if environment is None:
        environment = frontend.fit_environment(data_op, keep_subsampling)
    data_op = data_op.skb.clone()
    cv = kwargs.pop("cv", None)
    if "return_estimator" in kwargs:
        raise TypeError("Use `return_learner` instead of `return_estimator`.")
    return_learner = kwargs.pop("return_learner", False)
    config = (config or Config.from_env())
    config = config.replace(n_workers=_workers(kwargs.pop("n_jobs", None), config))
    X, y, splitter = adapter.compute_cv_data(data_op, environment, cv)
    with Session(config, kind="cross_validate") as session:
        engine = SearchEngine(data_op, environment, session, X, y)
        estimator = adapter.PlanPipeline(data_op, _shared_env(environment),
                                         adapter.shared(engine))
        cvo = check_cv(splitter if splitter is not None else cv, y,
                       classifier=is_classifier(estimator))
        splits = list(cvo.split(X, y))
        methods = adapter.response_methods(kwargs.get("scoring"), estimator, data_op)
        engine.precompute([adapter.assignment_of(data_op)], splits, methods,
                          return_train_score=bool(kwargs.get("return_train_score")))
        result = model_selection.cross_validate(
            estimator, adapter.row_proxy(engine.n_rows), y, cv=splits,
            return_estimator=return_learner, **kwargs)
        if (fitted := result.pop("estimator", None)) is not None:
            result["learner"] = [engine.learner_for(p) for p in fitted]
    if (indices := result.pop("indices", None)) is not None:
        result["train_indices"] = indices["train"]
        result["test_indices"] = indices["test"]
    return pd.DataFrame(result)


def cross_validate_many(data_ops, environment: dict | None = None, *, cv=None,
                        scoring=None, config: Config | None = None, verbose: int = 1,
                        **kwargs) -> list:
    """Cross-validate a batch of separately written pipelines as ONE plan.

    The way an ML agent emits them: each pipeline builds its own ``skrub.var``
    over the same data. Their plans are converted separately; wherever two
    pipelines compute the same thing on the same data (same lineage key: same
    operators, parameters and inputs) it is computed once, fold by fold, and
    everything independent runs in parallel.

    Returns one table per pipeline, each equal to what
    ``data_op.skb.cross_validate(environment, cv=cv, scoring=scoring)`` returns.

    >>> import numpy as np, pandas as pd, skrub, stratumlite
    >>> from sklearn.linear_model import Ridge
    >>> df = pd.DataFrame({"a": np.arange(30.0), "y": np.arange(30.0) * 2})
    >>> def pipeline(alpha):
    ...     data = skrub.var("data", df)
    ...     X = data[["a"]].skb.mark_as_X()
    ...     return X.skb.apply(Ridge(alpha=alpha), y=data["y"].skb.mark_as_y())
    >>> tables = stratumlite.cross_validate_many([pipeline(1.0), pipeline(2.0)], cv=3,
    ...                                          verbose=0)
    >>> [list(t.columns) for t in tables][0]
    ['fit_time', 'score_time', 'test_score']
    """
    import pandas as pd

    config = (config or Config.from_env())
    config = config.replace(n_workers=_workers(kwargs.pop("n_jobs", None), config))
    if "return_estimator" in kwargs:
        raise TypeError("Use `return_learner` instead of `return_estimator`.")
    return_learner = kwargs.pop("return_learner", False)
    prepared = []
    progress = _Progress(verbose, f"{len(data_ops)} pipelines")
    with Session(config, on_done=progress, kind="cross_validate_many") as session:
        groups = []
        # rows key -> (X, y, splitter, the engines' shared fold bindings)
        cv_data: dict[str, tuple] = {}
        for data_op in data_ops:
            data_op = frontend.as_data_op(data_op)
            env = (frontend.fit_environment(data_op) if environment is None
                   else environment)
            # the data frame every pipeline wraps in its own skrub.var is
            # fingerprinted once, for the plans and the bindings alike
            plan = frontend.to_plan(data_op, fingerprints=session.fingerprints)
            # pipelines whose X and y are the same computation on the same data
            # (same lineage keys) share one evaluation of them; not cloned here:
            # nothing below mutates the DataOp, and skrub's X/y evaluation works
            # on its own clone (a clone costs ~25 ms)
            rows_key = _rows_key(plan, session.bind(env)) \
                if plan.meta.get("X") is not None else None
            if rows_key is None or rows_key not in cv_data:
                X, y, splitter = adapter.compute_cv_data(data_op, env, cv)
                bindings: dict = {}
                if rows_key is not None:
                    cv_data[rows_key] = X, y, splitter, bindings
            else:
                X, y, splitter, bindings = cv_data[rows_key]
            engine = SearchEngine(data_op, env, session, X, y, plan, bindings=bindings)
            estimator = adapter.PlanPipeline(data_op, _shared_env(env), adapter.shared(engine))
            cvo = check_cv(splitter if splitter is not None else cv, y,
                           classifier=is_classifier(estimator))
            splits = list(cvo.split(X, y))
            methods = adapter.response_methods(scoring, estimator, data_op)
            tasks = engine.plan_tasks([adapter.assignment_of(data_op)], splits, methods,
                                      bool(kwargs.get("return_train_score")))
            groups.append((engine, tasks))
            prepared.append((engine, estimator, y, splits))
        run_tasks(session, groups)
        tables = []
        for engine, estimator, y, splits in prepared:
            result = model_selection.cross_validate(
                estimator, adapter.row_proxy(engine.n_rows), y, cv=splits, scoring=scoring,
                return_estimator=return_learner, **kwargs)
            if (fitted := result.pop("estimator", None)) is not None:
                result["learner"] = [engine.learner_for(p) for p in fitted]
            if (indices := result.pop("indices", None)) is not None:
                result["train_indices"] = indices["train"]
                result["test_indices"] = indices["test"]
            tables.append(pd.DataFrame(result))
        progress.close()
    return tables
