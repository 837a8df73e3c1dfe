"""The DAG scheduler: runs bound tasks as soon as their inputs exist.

Design (after dask's ``local.py``)
----------------------------------
One blocking loop around small state transitions. The executor is injected:
threads (default), a synchronous executor (debugging, ``executor="sequential"``)
and others are thin adapters with ``submit(fn, *args) -> Future``. Workers
report completion through ``Future.add_done_callback`` into a queue; the loop
blocks on that queue, never polls.

State (:class:`_RunState`):

``waiting``     task key -> keys of the tasks it still waits for
``dependents``  task key -> keys of the tasks waiting for it
``ready``       heap of (priority, key): runnable tasks. Priority: background
                tasks last, then the longest chain of guessed costs first
                (``level``, :func:`critical_path_levels` over
                ``Operator.cost_hint``), then discovery order: deterministic
``running``     number of tasks submitted and not finished
``refs``        task key -> number of unfinished readers; an intermediate's
                value is released when it reaches 0 (requested outputs are
                kept) — the buffer pool's first rule
``order``       static order: the order tasks were discovered (depth first,
                inputs before consumers)
``level``       a task's guessed cost plus the costliest chain of tasks that
                need it: started highest first, the longest work begins early
                and the run does not end on one long task alone on a core

Transitions: :meth:`Scheduler._add` (discover a task and its inputs, without
recursion), :meth:`_launch` (ready -> running, with a thread budget),
:meth:`_finish` (store the value and fitted state, release inputs, make
dependents ready), :meth:`_fail` (propagate an error to every dependent).

Inputs a node needs are known statically for most operators
(``needed_inputs``); an operator that asks for an input it was not given (an
``if_else`` branch, say) returns :class:`~.tasks.Missing`, the scheduler adds
that input and runs the task again once it is there.

Thread budget (BLAS/OpenMP via threadpoolctl, numba, estimator ``n_jobs``): a
task that is *alone by construction* -- every other task of the run is one of its
ancestors or descendants, so nothing can ever run beside it -- gets every core;
any other task gets ``max(1, cores // workers)``. The budget depends on the graph,
not on timing: floating-point results of BLAS and OpenMP reductions change in the
last digits with the thread count, and a budget that followed what happened to be
running would make two runs of the same search differ. The total never exceeds
the cores.

Worked example: a search over two models after one shared scaler, two folds::

    scaler(fold0) ─┬─ ridge(fold0)        scaler(fold1) ─┬─ ridge(fold1)
                   └─ hgb(fold0)                         └─ hgb(fold1)

The scaler tasks are discovered once per fold (same task key for both models),
run first on both workers, then the four model fits run two at a time.
"""

from __future__ import annotations

import heapq
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import EvaluationError, StratumliteError
from . import admission
from .budget import _restore_thread_limits, _saved_thread_limits, _with_budget
from .memo import OperatorMemo
from .serialization import estimate_nbytes
from .tasks import Binding, Done, Missing, Task, normalize_mode, run_task


@dataclass
class TaskRecord:
    """What happened to one task (explain analyze, lineage, benchmarks)."""

    task: Task
    seconds: float = 0.0
    threads: int = 1
    status: str = "computed"  # computed | stored | hit | failed
    start: float = 0.0
    end: float = 0.0
    attempts: int = 0


class ResultStore(Protocol):
    """The persistent cache as the scheduler sees it (a hook, not a part of it).

    Keys are task lineage keys; a payload is ``(value, fitted_state)``. ``put``
    decides whether storing is worth it (cost rule) and returns whether it did.
    Implementations must be picklable (they run inside workers).
    """

    def contains(self, key: str) -> bool: ...

    def get(self, key: str, *, state_only: bool = False) -> tuple[bool, Any]: ...

    def put(self, key: str, payload: Any, seconds: float) -> bool: ...


def _worker_died(task: Task, err: BaseException) -> EvaluationError:
    """One error per task when the executor's worker died: it names the node
    (the executor's own exception, shared by every pending task, would not,
    and re-raising one object many times grows its traceback)."""
    from .sequential import describe_node

    node = describe_node(task.node)
    new = EvaluationError(
        f"The worker process died while node {node} was running or queued (mode "
        f"{task.mode!r}): killed, out of memory, or a crash in native code "
        f"({type(err).__name__}). Rerun with Config(executor='threads') to see the "
        "error in this process. If the workers could not start: they import the main "
        "module, so a script must start its work under "
        "`if __name__ == '__main__':`.", node=node, original=err)
    new.__cause__ = type(err)(*err.args)
    return new


def _load_cached(cache: ResultStore, key: str) -> Done:
    found, payload = cache.get(key)
    if not found:
        return Missing(-1)
    value, state = payload
    return Done(value, state, 0.0)


def _run_and_store(cache: ResultStore | None, task: Task, inputs, state, threads: int = 1,
                   memo: OperatorMemo | None = None):
    outcome = run_task(task, inputs, state, threads, memo)
    if cache is not None and isinstance(outcome, Done):
        stored = cache.put(task.key, (outcome.value, outcome.state), outcome.seconds)
        outcome.stored = stored
    return outcome


class SyncExecutor:
    """Runs each submitted function immediately, in the calling thread."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - delivered through the future
            fut.set_exception(e)
        return fut

    def shutdown(self, wait: bool = True) -> None:
        pass


LIGHT_SECONDS = 0.05  # a light task slower than this goes to the workers next time

_BACKGROUND = 1 << 40  # order offset: background tasks sort after every other task
GIL_LOOKAHEAD = 32  # ready tasks looked at for one that releases the GIL (_pick)


def alone_tasks(tasks: dict, edges: dict[str, list[str]]) -> set[str]:
    """Keys of the tasks every other task is an ancestor or a descendant of.

    ``edges[key]`` lists the task's inputs among ``tasks``; ``tasks`` is in
    discovery order (inputs first). Reachability as Python int bitsets: one OR
    per edge in each direction.

    >>> sorted(alone_tasks({"a": 0, "b": 0, "c": 0, "d": 0},
    ...                    {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}))
    ['a', 'd']
    """
    keys = list(tasks)
    index = {k: i for i, k in enumerate(keys)}
    below = [0] * len(keys)  # ancestors (inputs, transitively)
    for i, k in enumerate(keys):
        acc = 0
        for c in edges.get(k, ()):
            j = index[c]
            acc |= below[j] | (1 << j)
        below[i] = acc
    above = [0] * len(keys)  # descendants: consumers come later, so walk backwards
    for i in range(len(keys) - 1, -1, -1):
        mine = above[i] | (1 << i)
        for c in edges.get(keys[i], ()):
            above[index[c]] |= mine
    n = len(keys)
    return {k for i, k in enumerate(keys)
            if below[i].bit_count() + above[i].bit_count() == n - 1}


def critical_path_levels(tasks: dict, edges: dict[str, list[str]],
                         cost: dict[str, float]) -> dict[str, float]:
    """Each task's cost plus the costliest chain of tasks that need it.

    Started highest level first, the work on the longest chain goes first and
    the end of a run is not one long task alone on a core: list scheduling by
    level ("HLFET"). ``tasks`` in discovery order (inputs first), ``edges[key]``
    its inputs among them, ``cost`` the operators' guesses
    (:meth:`~stratumlite.plan.Operator.cost_hint`).

    >>> levels = critical_path_levels(
    ...     {"a": 0, "b": 0, "c": 0, "d": 0},
    ...     {"b": ["a"], "c": ["a"], "d": ["b"]},
    ...     {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0})
    >>> levels
    {'d': 1.0, 'c': 2.0, 'b': 6.0, 'a': 7.0}
    """
    below: dict[str, float] = {}
    levels: dict[str, float] = {}
    for key in reversed(list(tasks)):  # a consumer before its inputs
        level = levels[key] = cost.get(key, 0.0) + below.get(key, 0.0)
        for child in edges.get(key, ()):
            if level > below.get(child, 0.0):
                below[child] = level
    return levels


@dataclass
class _RunState:
    order_base: int = 0
    alone: set[str] = field(default_factory=set)
    edges: dict[str, list[str]] = field(default_factory=dict)
    waiting: dict[str, set[str]] = field(default_factory=dict)
    dependents: dict[str, set[str]] = field(default_factory=dict)
    ready: list[tuple[int, str]] = field(default_factory=list)
    running: int = 0
    refs: dict[str, int] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    level: dict[str, float] = field(default_factory=dict)  # critical_path_levels
    new_level: float = 0.0  # the level of tasks discovered while running (_add_later)
    tasks: dict[str, Task] = field(default_factory=dict)
    inputs: dict[str, dict[int, str]] = field(default_factory=dict)
    state_deps: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    keep: set[str] = field(default_factory=set)
    failed: dict[str, BaseException] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    cached: set[str] = field(default_factory=set)  # tasks to load from the cache
    holding_gil: set[str] = field(default_factory=set)  # running Python-bound tasks
    # memory admission (``memory_budget``): bytes of this run's values, working
    # bytes of the running tasks
    sizes: dict[str, int] = field(default_factory=dict)
    working: dict[str, int] = field(default_factory=dict)


class Scheduler:
    """Runs tasks for a :class:`~stratumlite.runtime.session.Session`.

    Parameters
    ----------
    values, states : dict
        The session's stores: task key -> value, (binding key, node key) ->
        fitted private copy. Values of requested tasks are added to ``values``.
    executor : object with ``submit(fn, *args) -> Future``
    cores : int
        Thread budget shared by running tasks.
    on_done : callable(TaskRecord) or None
        Called in the scheduler thread after each task (progress, lineage).
    memory_budget : int or None
        Bytes of buffers held plus working memory of running tasks above which
        no further task starts while another runs (see :mod:`.admission`).
    """

    def __init__(self, values: dict, states: dict, executor=None, cores: int | None = None,
                 on_done: Callable[[TaskRecord, Any], None] | None = None,
                 normalize: bool = True, cache: ResultStore | None = None,
                 memo: OperatorMemo | None = None, memory_budget: int | None = None):
        self.cache = cache
        self.memo = memo
        self.memory_budget = memory_budget
        self.memory_waits = 0  # tasks held back for memory (explain, benchmarks)
        self._reusable: dict[str, bool] = {}
        self._cache_skip: set[str] = set()
        self.values = values
        self.states = states
        self.executor = executor or SyncExecutor()
        self.cores = cores or os.cpu_count() or 1
        self.on_done = on_done
        self.normalize = normalize
        self.records: list[TaskRecord] = []
        self._heavy: set[str] = set()  # keys of light nodes that were not (_run_here)

    # --- task derivation ---------------------------------------------------
    def child(self, task: Task, index: int) -> Task:
        node = task.node
        inner = task.inner or node.op.is_model_step()
        child_node = node.inputs[index]
        return self.make(child_node, task.requested, task.binding, task.fit_binding, inner)

    def make(self, node, requested: str, binding: Binding, fit_binding: Binding | None,
             inner: bool) -> Task:
        reads = getattr(node.op, "reads_mode", lambda: False)()
        mode = normalize_mode(requested, inner, reads or not self.normalize)
        fitting = mode == "preview" or "fit" in mode
        return Task(node, mode, binding, None if fitting else fit_binding, inner,
                    requested=requested)

    def fit_task(self, task: Task, node) -> Task:
        """The task whose completion provides ``node``'s fitted state for ``task``."""
        inner = task.inner if node is task.node else True
        return self.make(node, "fit", task.fit_binding, None, inner)

    # --- running -------------------------------------------------------------
    def run(self, roots: list[Task], raise_errors: bool = True,
            background: list[Task] = ()) -> list[Any]:
        """Compute ``roots``; returns their values (or exceptions if not raising).

        ``background`` tasks are computed (and kept) too, but only start when no
        other task is ready: work that will probably be asked for next (a
        search's refit preprocessing) fills the slots the roots leave idle.
        Their failures are not raised (the task fails again when asked for).
        """
        st = _RunState()
        # speculation is for work to compute: a stored background result is
        # loaded when it is asked for, not now (it would only hold memory)
        background = [r for r in background
                      if r.key not in self.values and not self._cache_has(r)]
        for r in [*roots, *background]:
            st.keep.add(r.key)
        for r in roots:
            self._add(st, r)
        st.order_base = _BACKGROUND
        for r in background:
            self._add(st, r)
        st.alone = alone_tasks(st.tasks, st.edges)
        st.level = critical_path_levels(
            st.tasks, st.edges,
            {k: t.node.op.cost_hint(t.node, t.fitting) for k, t in st.tasks.items()})
        st.ready = [(self._priority(st, key), key) for _, key in st.ready]
        heapq.heapify(st.ready)
        saved = _saved_thread_limits()
        try:
            return self._run_loop(st, roots, raise_errors)
        finally:
            _restore_thread_limits(saved)

    def _run_loop(self, st: _RunState, roots: list[Task], raise_errors: bool) -> list[Any]:
        done_q: queue.Queue = queue.Queue()
        slots = self.slots()
        while st.ready or st.running:
            # at most one task per worker in flight: the rest wait here, in
            # priority order, instead of in the executor's FIFO queue (inputs
            # are not shipped or held before a worker is free)
            while st.ready and st.running < slots:
                if not self._launch(st, done_q):
                    break  # held back for memory until a running task ends
            if not st.running:
                break
            key, fut, record = done_q.get()
            try:
                outcome = fut.result()
            except BrokenExecutor as e:
                outcome = _worker_died(st.tasks[key], e)
            except BaseException as e:  # noqa: BLE001
                outcome = e
            st.running -= 1
            st.holding_gil.discard(key)
            st.working.pop(key, None)
            self._complete(st, key, outcome, record)
        results = []
        for r in roots:
            if r.key in self.values:
                results.append(self.values[r.key])
            else:
                err = st.failed.get(r.key) or StratumliteError(
                    f"task for {r.node.op.label} was not computed")
                if raise_errors:
                    raise err
                results.append(err)
        return results

    def slots(self) -> int:
        """How many tasks may be in flight: the executor's workers (1 for the
        synchronous executor), else the cores."""
        if isinstance(self.executor, SyncExecutor):
            return 1
        workers = getattr(self.executor, "workers", None) or getattr(
            self.executor, "_max_workers", None)
        return max(1, int(workers or self.cores))

    def _add(self, st: _RunState, root: Task) -> None:
        """Discover ``root`` and everything it needs (iterative DFS)."""
        stack = [root]
        while stack:
            task = stack[-1]
            key = task.key
            if key in self.values:
                stack.pop()
                continue
            if key in st.tasks:
                if key in st.done:  # computed in this run, then released: redo
                    self._forget(st, key)
                else:
                    stack.pop()
                    continue
            node = task.node
            if self._cache_has(task):
                stack.pop()
                st.cached.add(key)
                self._register(st, task, {}, [])
                continue
            pending_children = []
            child_keys: dict[int, str] = {}
            needed = node.op.needed_inputs(task.mode, task.inner)
            indices = range(len(node.inputs)) if needed is None else sorted(needed)
            for i in indices:
                child = self.child(task, i)
                child_keys[i] = child.key
                if child.key not in self.values and (
                        child.key not in st.tasks or child.key in st.done):
                    pending_children.append(child)
            state_deps = self._state_deps(task)
            for dep_task, _ in state_deps:
                if dep_task.key not in st.tasks and dep_task.key not in self.values \
                        and self._missing_state(dep_task):
                    pending_children.append(dep_task)
            if pending_children:
                # register children first (post-order); a duplicate on the
                # stack is skipped once registered
                stack.extend(reversed(pending_children))
                continue
            stack.pop()
            self._register(st, task, child_keys, state_deps)

    def reusable(self, node) -> bool:
        """Whether a node's result may be reused across runs: its operator and
        everything upstream are deterministic (no unseeded randomness)."""
        known = self._reusable.get(node.key)
        if known is not None:
            return known
        from ..plan import topological_order

        for n in topological_order([node], dedupe="key"):
            if n.key not in self._reusable:
                self._reusable[n.key] = n.op.reusable and all(
                    self._reusable[i.key] for i in n.inputs)
        return self._reusable[node.key]

    def _cache_has(self, task: Task) -> bool:
        if self.cache is None or task.key in self._cache_skip or not self.reusable(task.node):
            return False
        try:
            return self.cache.contains(task.key)
        except Exception:
            return False

    def _forget(self, st: _RunState, key: str) -> None:
        """Drop a finished, released task so it can be computed again."""
        del st.tasks[key]
        st.done.discard(key)
        st.order.pop(key, None)

    def _state_deps(self, task: Task) -> list[tuple[Task, str]]:
        """Fit tasks providing the fitted state ``task`` reads, if not present."""
        deps = []
        node = task.node
        if not task.fitting and node.op.is_estimator():
            deps.append((self.fit_task(task, node), node.key))
        for i in node.op.reads_state_of():
            target = node.inputs[i]
            if not task.fitting:
                deps.append((self.fit_task(task, target), target.key))
        return deps

    def _missing_state(self, fit_task: Task) -> bool:
        return (fit_task.binding.key, fit_task.node.key) not in self.states

    def _register(self, st: _RunState, task: Task, child_keys: dict[int, str],
                  state_deps) -> None:
        key = task.key
        st.tasks[key] = task
        st.order[key] = st.order_base + len(st.order)
        st.level.setdefault(key, st.new_level)
        st.inputs[key] = child_keys
        st.edges[key] = [ck for ck in child_keys.values() if ck in st.tasks] + [
            dep.key for dep, _ in state_deps if dep.key in st.tasks]
        waits = set()
        for ck in child_keys.values():
            if ck not in self.values:
                waits.add(ck)
            st.refs[ck] = st.refs.get(ck, 0) + 1
        for dep_task, _ in state_deps:
            if self._missing_state(dep_task) and dep_task.key in st.tasks:
                waits.add(dep_task.key)
        for w in waits:
            st.dependents.setdefault(w, set()).add(key)
        st.waiting[key] = {w for w in waits if w not in self.values and w not in st.failed}
        failed = [w for w in waits if w in st.failed]
        if failed:
            self._fail(st, key, st.failed[failed[0]])
        elif not st.waiting[key]:
            self._push_ready(st, key)

    @staticmethod
    def _priority(st: _RunState, key: str) -> tuple[bool, float, int]:
        """Ready tasks start in this order: background tasks last, then the
        highest :func:`critical_path_levels` first, then discovery order (a
        task added while running has the level of the task that needs it,
        see :meth:`_add_later`)."""
        order = st.order[key]
        return order >= _BACKGROUND, -st.level.get(key, 0.0), order

    def _push_ready(self, st: _RunState, key: str) -> None:
        heapq.heappush(st.ready, (self._priority(st, key), key))

    def _shares_gil(self) -> bool:
        """Whether tasks in flight share this process's GIL (threads)."""
        return not (isinstance(self.executor, SyncExecutor)
                    or getattr(self.executor, "remote", False)) and self.slots() > 1

    def _holds_gil(self, task: Task) -> bool:
        """A Python-bound task worth keeping apart: neither glue nor native."""
        node = task.node
        return not node.op.is_light() and not node.op.releases_gil(node)

    def _pick(self, st: _RunState) -> str:
        """The next ready task: the first in priority order, except beside a
        running Python-bound task on threads, where a second Python-bound task
        would mostly wait for the GIL: then the first ready task that releases
        it, among the next ``GIL_LOOKAHEAD`` (background tasks stay last)."""
        if st.holding_gil and self._shares_gil() \
                and self._holds_gil(st.tasks[st.ready[0][1]]):
            for entry in heapq.nsmallest(GIL_LOOKAHEAD, st.ready):
                if entry[0][0]:  # background: only when nothing else is ready
                    break
                task = st.tasks[entry[1]]
                if task.fitting and task.node.op.releases_gil(task.node):
                    st.ready.remove(entry)
                    heapq.heapify(st.ready)
                    return entry[1]
        return heapq.heappop(st.ready)[1]

    # --- memory admission ------------------------------------------------------
    def _size(self, st: _RunState, key: str) -> int:
        """Bytes of a computed value (0 when unknown)."""
        size = st.sizes.get(key)
        if size is None:
            size_of = getattr(self.values, "size_of", None)
            size = size_of(key) if size_of is not None else 0
        return size

    def _held_bytes(self, st: _RunState) -> int:
        """Bytes held in memory: the buffer pool's (or this run's values) and
        the operator memo's."""
        held = getattr(self.values, "nbytes", None)
        if held is None:
            held = sum(st.sizes.get(k, 0) for k in st.done if k in self.values)
        return held + (self.memo.bytes if self.memo is not None else 0)

    def _released_bytes(self, st: _RunState, key: str) -> int:
        """Bytes of a value about to be released (arrays and frames only when
        the run does not track sizes; a spilled buffer is not read back)."""
        if key in st.sizes:
            return st.sizes[key]
        size_of = getattr(self.values, "size_of", None)
        if size_of is not None:
            return size_of(key) if not self.values.is_spilled(key) else 0
        return admission.array_nbytes(self.values[key])

    def _working(self, st: _RunState, key: str) -> int:
        task = st.tasks[key]
        inputs = sum(self._size(st, ck) for ck in st.inputs[key].values())
        return admission.working_bytes(task, inputs)

    def _admit(self, st: _RunState, key: str) -> bool:
        """Whether ``key`` may start now (always, without a memory budget)."""
        if self.memory_budget is None:
            return True
        need = self._working(st, key)
        if not admission.admits(self._held_bytes(st), sum(st.working.values()), need,
                                self.memory_budget, st.running):
            return False
        st.working[key] = need
        return True

    def _pick_within_memory(self, st: _RunState) -> str | None:
        """The first of the next ``GIL_LOOKAHEAD`` ready tasks that the memory
        budget admits (a small task beside a large one), or None."""
        for entry in heapq.nsmallest(GIL_LOOKAHEAD, st.ready):
            if entry[0][0]:  # background: only when nothing else is ready
                break
            if self._admit(st, entry[1]):
                st.ready.remove(entry)
                heapq.heapify(st.ready)
                return entry[1]
        return None

    def _launch(self, st: _RunState, done_q: queue.Queue) -> bool:
        """Start the next ready task; False (nothing started) when the memory
        budget holds it back."""
        key = self._pick(st)
        if not self._admit(st, key):
            self._push_ready(st, key)
            key = self._pick_within_memory(st)
            if key is None:
                self.memory_waits += 1
                return False
        task = st.tasks[key]
        inputs = {i: self.values[ck] for i, ck in st.inputs[key].items() if ck in self.values}
        state = self._state_for(task)
        threads = self.cores if key in st.alone else max(1, self.cores // self.slots())
        record = TaskRecord(task=task, threads=threads, start=time.perf_counter())
        st.running += 1
        if key in st.cached:
            st.cached.discard(key)
            record.status = "hit"

        def deliver(fut: Future, key=key, record=record):
            record.end = time.perf_counter()
            # the value is taken in the scheduler's thread (_run_loop): an
            # executor that sends values pickled has them unpickled there
            done_q.put((key, fut, record))

        # alone (nothing running, nothing else ready): run in this thread, no
        # hand-off to a worker; glue with an executor in other processes too
        executor = self.executor if (st.running > 1 or st.ready) else _INLINE
        here = executor is not _INLINE and self._run_here(task, record.status == "hit")
        if here:
            executor = _INLINE
        if record.status == "hit":
            # under the budget too: unpickling a model can start an OpenMP team
            fut = executor.submit(_with_budget, threads, _load_cached, self.cache, key)
        else:
            if self._shares_gil() and self._holds_gil(task):
                st.holding_gil.add(key)
            cache = self.cache if self.cache is not None and self.reusable(task.node) else None
            fut = executor.submit(_with_budget, threads, _run_and_store, cache, task,
                                  inputs, state, threads, self.memo)
        if here and not fut.exception():
            outcome = fut.result()
            if isinstance(outcome, Done) and outcome.seconds > LIGHT_SECONDS:
                self._heavy.add(task.node.key)
        fut.add_done_callback(deliver)
        return True

    def _run_here(self, task: Task, hit: bool) -> bool:
        """Whether a task runs in the scheduler's process although the executor
        is elsewhere: a cache hit (its value is wanted here: reading it in a
        worker would only add a trip back), and light glue
        (``Operator.is_light``) unless an earlier run of the same node took
        longer than :data:`LIGHT_SECONDS` (shipping its inputs and its result
        would cost more than the operator)."""
        if not getattr(self.executor, "remote", False):
            return False
        return hit or (task.node.op.is_light() and task.node.key not in self._heavy)

    def _state_for(self, task: Task) -> dict:
        node = task.node
        binding = task.state_binding()
        if binding is None:
            return {}
        state = {}
        for n in (node, *(node.inputs[i] for i in node.op.reads_state_of())):
            s = self.states.get((binding.key, n.key))
            if s is not None:
                state[n.key] = s
        return state

    def _complete(self, st: _RunState, key: str, outcome, record: TaskRecord) -> None:
        task = st.tasks[key]
        record.attempts += 1
        if isinstance(outcome, BaseException):
            record.status = "failed"
            self.records.append(record)
            self._fail(st, key, outcome)
            return
        if isinstance(outcome, Missing) and outcome.index == -1:
            # the cache entry vanished or was corrupt: compute the task instead
            del st.tasks[key]
            order, level = st.order.pop(key), st.level.pop(key, 0.0)
            self._cache_skip.add(key)
            self._add_later(st, task, order, level)
            return
        if isinstance(outcome, Missing):
            child = self.child(task, outcome.index)
            st.inputs[key][outcome.index] = child.key
            st.refs[child.key] = st.refs.get(child.key, 0) + 1
            if child.key in self.values:
                self._push_ready(st, key)
                return
            if child.key in st.failed:
                self._fail(st, key, st.failed[child.key])
                return
            st.waiting[key] = {child.key}
            st.dependents.setdefault(child.key, set()).add(key)
            if child.key not in st.tasks:
                self._add_later(st, child, st.order[key], st.level.get(key, 0.0))
            return
        assert isinstance(outcome, Done)
        record.seconds = outcome.seconds
        if getattr(outcome, "stored", False):
            record.status = "stored"
        self.records.append(record)
        binding = task.binding
        for node_key, impl in outcome.state.items():
            self.states[(binding.key, node_key)] = impl
        self.values[key] = outcome.value
        st.done.add(key)
        if self.memory_budget is not None:
            size_of = getattr(self.values, "size_of", None)
            st.sizes[key] = size_of(key) if size_of is not None \
                else estimate_nbytes(outcome.value)
        if self.on_done is not None:
            self.on_done(record, outcome.value)
        # release inputs whose last reader this was (buffer pool)
        released = 0
        for ck in st.inputs[key].values():
            st.refs[ck] -= 1
            if st.refs[ck] <= 0 and ck not in st.keep and ck in st.tasks \
                    and ck in self.values:
                released += self._released_bytes(st, ck)
                del self.values[ck]  # not pop(): a spilled buffer is not read back
        if released >= admission.TRIM_BYTES:
            admission.trim_heap()  # freed pages back to the system (RSS)
        for dep in st.dependents.get(key, ()):
            w = st.waiting.get(dep)
            if w is None or dep in st.done:
                continue
            w.discard(key)
            if not w and dep not in st.failed:
                self._push_ready(st, dep)

    def _add_later(self, st: _RunState, task: Task, order: int, level: float) -> None:
        """Discover ``task`` (and the inputs it needs) while the run goes on: an
        input an operator asked for that was not foreseen (an ``if_else``
        branch), or a task whose cache entry vanished. They take the priority of
        the task that needs them (``order``, ``level``): background or not, and
        its level, so a branch a long chain waits for does not wait behind
        shorter work."""
        st.order_base = _BACKGROUND if order >= _BACKGROUND else 0
        st.new_level = level
        self._add(st, task)

    def _fail(self, st: _RunState, key: str, error: BaseException) -> None:
        stack = [key]
        while stack:
            k = stack.pop()
            if k in st.failed:
                continue
            st.failed[k] = error
            stack.extend(st.dependents.get(k, ()))


_INLINE = SyncExecutor()


def make_executor(kind: str, workers: int, config=None):
    """Executor adapters: 'sequential' or 'threads' (processes/dask: see executors)."""
    if kind == "sequential" or workers <= 1:
        return SyncExecutor()
    if kind == "threads":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stratumlite")
    from .executors import make_external_executor

    return make_external_executor(kind, workers, config)
