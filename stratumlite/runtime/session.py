"""A session: the runtime's stores (values, fitted state) and its scheduler.

A :class:`Session` lives as long as a search (or a user's interactive work).
It binds environments to content keys (fingerprinting each source value once),
turns requests ``(node, mode, binding)`` into tasks, and runs them with the
configured executor. Everything it computes is keyed by lineage key, so asking
twice for the same thing computes it once.

>>> import skrub
>>> from stratumlite.frontend import to_plan
>>> from stratumlite.runtime.session import Session
>>> plan = to_plan(skrub.var("x") * 2)
>>> with Session() as s:
...     b = s.bind({"x": 21})
...     s.run([s.request(plan.output, "fit_transform", b)])
[42]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import Config
from ..plan import Node, topological_order
from .memo import OperatorMemo
from .scheduler import Scheduler, TaskRecord, make_executor
from .tasks import Binding, Task, environment_key


class Session:
    """Runtime stores + scheduler (see module docstring).

    Parameters
    ----------
    config : Config or None
        Executor, workers, budgets (default ``Config()``).
    on_done : callable(TaskRecord, value) or None
        Called after each task (progress bars, lineage recording).
    """

    def __init__(self, config: Config | None = None,
                 on_done: Callable[[TaskRecord, Any], None] | None = None,
                 cache=None, values=None, kind: str = "evaluate",
                 script: str | None = None, hooks: list | None = None):
        self.config = config or Config()
        self.kind = kind
        self.script = script
        # Hooks observe the session: ``start(session)``, ``task_done(record,
        # value)``, ``end(session, status)``. The lineage recorder is one.
        self.hooks = list(hooks) if hooks is not None else _default_hooks(self.config)
        self.run_id: str | None = None
        self.cache = cache if cache is not None else _default_cache(self.config)
        memo_bytes = self.config.memory_split[1]
        # local worker processes each keep a memo, and write pieces for the
        # others to a shared directory (see ``executor``): they share the budget
        share = 2 * self.config.workers if self.config.executor == "processes" else 1
        self.memo = OperatorMemo(memo_bytes, worker_bytes=memo_bytes // share) \
            if memo_bytes else None
        self.values: dict[str, Any] = values if values is not None else _default_pool(self.config)
        self.states: dict[tuple[str, str], Any] = {}
        self.records: list[TaskRecord] = []
        # times a ready task was held back by the memory budget (explain analyze)
        self.memory_waits = 0
        self.on_done = on_done
        # source values fingerprinted in this session (``canonical.fingerprint_once``):
        # environments bound and plans converted share it
        self.fingerprints: dict[int, tuple[Any, str]] = {}
        self._executor = None

    # --- lifecycle -----------------------------------------------------------
    def __enter__(self) -> Session:
        for hook in self.hooks:
            hook.start(self)
        if self.config.executor == "processes" and self.config.workers > 1:
            self.executor  # noqa: B018 - its workers start while the caller prepares
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "finished" if exc_type is None else "failed"
        try:
            for hook in self.hooks:
                hook.end(self, status)
        finally:
            self.close()

    def _task_done(self, record: TaskRecord, value: Any) -> None:
        for hook in self.hooks:
            hook.task_done(record, value)
        if self.on_done is not None:
            self.on_done(record, value)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def executor(self):
        if self._executor is None:
            self._executor = make_executor(self.config.executor, self.config.workers,
                                           self.config)
            scratch = getattr(self._executor, "scratch_dir", None)
            if scratch is not None and self.memo is not None:
                self.memo.share(scratch("memo"), self.memo.worker_bytes)
        return self._executor

    # --- binding & requests -------------------------------------------------
    def bind(self, environment: dict, label: str = "", key: str | None = None) -> Binding:
        """Bind an environment: its key is made from its values' fingerprints."""
        if key is None:
            key = environment_key(environment, self.fingerprints)
        return Binding(environment, key, label)

    def request(self, node: Node, mode: str, binding: Binding,
                fit_binding: Binding | None = None) -> Task:
        """The root task computing ``node`` in ``mode`` on ``binding``."""
        fitting = mode == "preview" or "fit" in mode
        return Task(node, mode, binding, None if fitting else fit_binding, False)

    def run(self, tasks: list[Task], *, raise_errors: bool = True,
            normalize: bool = True, background: list[Task] = ()) -> list[Any]:
        """Compute ``tasks`` (deduplicated, in parallel); returns their values.

        With ``raise_errors=False`` a failed task's entry is its exception and
        the other tasks still run.
        """
        scheduler = Scheduler(self.values, self.states, self.executor,
                              cores=self.config.workers, on_done=self._task_done,
                              normalize=normalize, cache=self.cache, memo=self.memo,
                              memory_budget=self.config.memory_budget)
        try:
            return scheduler.run(tasks, raise_errors=raise_errors, background=background)
        finally:
            self.records.extend(scheduler.records)
            self.memory_waits += scheduler.memory_waits

    def walk_tasks(self, root: Task, normalize: bool = True):
        """Yield ``(task, children)`` for ``root`` and every task it needs, as
        the scheduler derives them (each task once, depth first)."""
        scheduler = Scheduler(self.values, self.states, normalize=normalize)
        stack, seen = [root], set()
        while stack:
            t = stack.pop()
            if t.key in seen:
                continue
            seen.add(t.key)
            needed = t.node.op.needed_inputs(t.mode, t.inner)
            indices = range(len(t.node.inputs)) if needed is None else sorted(needed)
            children = [scheduler.child(t, i) for i in indices]
            yield t, children
            stack.extend(children)

    def input_tasks(self, task: Task, node: Node, normalize: bool = True) -> list[Task]:
        """The tasks computing the inputs of ``node`` when ``task`` runs (``node``
        is ``task``'s node or one of its ancestors), as the scheduler derives them."""
        for t, children in self.walk_tasks(task, normalize):
            if t.node.key == node.key:
                return children
        return []

    def fitted_state(self, binding: Binding, nodes: list[Node]) -> dict[str, Any]:
        """The fitted private copies of ``nodes`` fitted on ``binding``."""
        out = {}
        for n in nodes:
            s = self.states.get((binding.key, n.key))
            if s is not None:
                out[n.key] = s
        return out

    def complete_fitted_state(self, root: Task, normalize: bool = True) -> dict[str, Any]:
        """Every fitted state a fit ``root`` produced, as ``fitted_state`` gives,
        including the states of upstream transformers.

        A root found in the persistent cache brings only its own state (its
        inputs are not loaded); the states of the estimators upstream are then
        read from the cache without their outputs, or fitted if not stored. A
        learner built from the result predicts without the cache.
        """
        missing = {t.key: t for t, _ in self.walk_tasks(root, normalize)
                   if t.node.op.is_estimator()
                   and (t.binding.key, t.node.key) not in self.states}
        to_run = []
        for key, t in missing.items():
            found, payload = (self.cache.get(key, state_only=True)
                              if self.cache is not None and self.cache.contains(key)
                              else (False, None))
            if found:
                for node_key, impl in payload[1].items():
                    self.states[(t.binding.key, node_key)] = impl
            else:
                to_run.append(t)
        if to_run:
            kept = set(self.values)
            self.run(to_run, normalize=normalize)
            self.forget([t.key for t in to_run if t.key not in kept])
        return self.fitted_state(root.binding, topological_order([root.node], dedupe="key"))

    def forget(self, keys) -> None:
        for k in keys:
            self.values.pop(k, None)


def _default_cache(config: Config):
    """The persistent cache the configuration asks for (None when off)."""
    if not config.cache:
        return None
    from .cache import PersistentCache

    return PersistentCache(config.cache_dir, max_bytes=config.cache_max_bytes)


def _default_pool(config: Config):
    """A plain dict, or a spilling buffer pool when a memory budget is set."""
    pool_bytes = config.memory_split[0]
    if pool_bytes is None:
        return {}
    from .bufferpool import BufferPool

    return BufferPool(max(1, pool_bytes), spill_dir=config.state_dir / "spill")


def _default_hooks(config: Config) -> list:
    """Hooks the configuration asks for: the lineage recorder when ``lineage``."""
    if not config.lineage:
        return []
    from ..lineage.recording import LineageHook

    return [LineageHook(config)]
