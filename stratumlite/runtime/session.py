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
from ..plan import Node
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
                 on_done: Callable[[TaskRecord, Any], None] | None = None):
        self.config = config or Config()
        self.values: dict[str, Any] = {}
        self.states: dict[tuple[str, str], Any] = {}
        self.records: list[TaskRecord] = []
        self.on_done = on_done
        self._env_memo: dict[int, tuple[Any, str]] = {}
        self._executor = None

    # --- lifecycle -----------------------------------------------------------
    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def executor(self):
        if self._executor is None:
            self._executor = make_executor(self.config.executor, self.config.workers)
        return self._executor

    # --- binding & requests -------------------------------------------------
    def bind(self, environment: dict, label: str = "", key: str | None = None) -> Binding:
        """Bind an environment: its key is made from its values' fingerprints."""
        if key is None:
            key = environment_key(environment, self._env_memo)
        return Binding(environment, key, label)

    def request(self, node: Node, mode: str, binding: Binding,
                fit_binding: Binding | None = None) -> Task:
        """The root task computing ``node`` in ``mode`` on ``binding``."""
        fitting = mode == "preview" or "fit" in mode
        return Task(node, mode, binding, None if fitting else fit_binding, False)

    def run(self, tasks: list[Task], *, raise_errors: bool = True,
            normalize: bool = True) -> list[Any]:
        """Compute ``tasks`` (deduplicated, in parallel); returns their values.

        With ``raise_errors=False`` a failed task's entry is its exception and
        the other tasks still run.
        """
        scheduler = Scheduler(self.values, self.states, self.executor,
                              cores=self.config.workers, on_done=self.on_done,
                              normalize=normalize)
        try:
            return scheduler.run(tasks, raise_errors=raise_errors)
        finally:
            self.records.extend(scheduler.records)

    def fitted_state(self, binding: Binding, nodes: list[Node]) -> dict[str, Any]:
        """The fitted private copies of ``nodes`` fitted on ``binding``."""
        out = {}
        for n in nodes:
            s = self.states.get((binding.key, n.key))
            if s is not None:
                out[n.key] = s
        return out

    def forget(self, keys) -> None:
        for k in keys:
            self.values.pop(k, None)
