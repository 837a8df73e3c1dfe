"""Dynamic batching: many small requests -> one predict per batch.

Design (per served model name, plus one per explicitly pinned version):

* **Bounded queue.** Validated requests (:class:`Pending`: a method, its rows
  kept column-wise, a future) enter a FIFO of at most ``queue_capacity``
  requests. When it is full the request is refused at once
  (:class:`QueueFull` -> HTTP 503 with ``Retry-After``) instead of waiting
  without bound. An accepted request is always answered: its future gets a
  result or an exception, also when its batch fails or the server stops.
* **Batch formation.** One asyncio task takes the oldest request, then keeps
  taking requests while the batch stays within the current row limit, waiting
  at most ``max_wait_ms`` after the first one for more to arrive. It waits
  only when more are expected: when the recent mean gap between arrivals
  (an exponential moving average) is shorter than ``max_wait_ms``; a lone
  client (whose next request comes only after its answer) is never delayed.
  A request with more rows than the limit forms a batch alone (requests are
  never split).
* **One predict per batch.** The batch's column lists are concatenated, ONE
  frame is built and ONE ``predict`` runs in the batcher's worker thread (a
  single thread per batcher, so the event loop keeps accepting and
  validating requests meanwhile, and the model's runtime session is driven by
  one thread). The result rows are split back by offsets. Requests of several
  methods in one batch run as one predict per method.
* **Failure isolation.** If a batch of several requests fails, each request
  is retried alone, so one request the model cannot handle (e.g. an unknown
  category with ``handle_unknown='error'``) fails alone. A result that does
  not have one row per input row (a learner that is not row-wise) is treated
  the same way.
* **Adaptive batch size** (:class:`AIMDController`, as Clipper): after each
  batch the limit grows additively while batches are full and their run time
  stays under the latency budget, and shrinks multiplicatively (x0.9) when a
  batch's run time exceeds it. The budget is half the p99 objective: under
  sustained load a request waits for the running batch, then runs in the next
  one. When even the smallest batches exceed the budget (the model's fixed
  cost alone breaks the objective), shrinking cannot help and only lowers
  throughput, so the controller lets the limit grow to ``max_batch_rows``
  instead and reports the objective as infeasible.
* **Hot swap.** A batch asks for its target model when it is formed (the
  name's current version; requests validated against another input schema
  stay on the model they were validated against). A running batch keeps the
  model it started with, so swapping never fails an in-flight request.

Batching assumes the learner is row-wise (a row's prediction does not depend
on the other rows of the frame), as every scikit-learn predictor is.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from .inputs import to_json_rows

__all__ = ["AIMDController", "Batcher", "BatchError", "Pending", "QueueFull"]


class QueueFull(Exception):
    """The batch queue is at capacity (HTTP 503). ``retry_after`` in seconds."""

    def __init__(self, retry_after: int):
        super().__init__("the prediction queue is full")
        self.retry_after = retry_after


class BatchError(RuntimeError):
    """Running a request's predict failed (HTTP 500); ``__cause__`` is the error."""


@dataclass(eq=False)
class Pending:
    """A validated request waiting for its batch."""

    model: Any  # the LoadedModel it was validated against
    method: str
    columns: dict[str, list]
    n_rows: int
    future: asyncio.Future
    pinned: bool = False  # run on ``model`` even if another version is current
    enqueued: float = field(default_factory=time.perf_counter)


class AIMDController:
    """Additive-increase / multiplicative-decrease of the batch row limit.

    Parameters
    ----------
    max_rows : int
        Upper bound of the limit (``max_batch_rows``).
    objective_s : float
        p99 latency objective in seconds; a batch's run time budget is half.
    increase : int or None
        Rows added after a full batch within budget (default ``max_rows // 32``,
        at least 1).
    decrease : float
        Factor applied after a batch over budget (Clipper uses 0.9).
    adaptive : bool
        When False the limit stays at ``max_rows``.

    >>> c = AIMDController(64, objective_s=0.1, increase=4)
    >>> c.limit
    16
    >>> c.observe(16, 0.01); c.limit          # full and fast: +4
    20
    >>> c.observe(20, 0.08); c.limit          # over the 50 ms budget: x0.9
    18
    >>> for _ in range(40): c.observe(1, 0.2)  # even 1 row is too slow
    >>> c.feasible, c.limit
    (False, 64)
    """

    def __init__(self, max_rows: int, objective_s: float, increase: int | None = None,
                 decrease: float = 0.9, adaptive: bool = True, window: int = 32):
        self.max_rows = max(1, int(max_rows))
        self.budget = objective_s / 2
        self.increase = increase or max(1, self.max_rows // 32)
        self.decrease = decrease
        self.adaptive = adaptive
        self.limit = min(self.max_rows, 16) if adaptive else self.max_rows
        self.feasible = True
        self._samples: deque[tuple[int, float]] = deque(maxlen=window)

    def fixed_cost(self) -> float:
        """Least-squares intercept of run time vs rows over recent batches (the
        per-batch cost no batch size avoids); the smallest run time when all
        recent batches had the same size."""
        samples = list(self._samples)
        xs = [n for n, _ in samples]
        if not samples:
            return 0.0
        if min(xs) == max(xs):
            return min(s for _, s in samples)
        n = len(samples)
        mx = sum(xs) / n
        my = sum(s for _, s in samples) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (s - my) for x, s in samples) / sxx
        slope = max(slope, 0.0)
        return max(0.0, my - slope * mx)

    def observe(self, rows: int, seconds: float) -> None:
        """Update the limit after a batch of ``rows`` rows that ran ``seconds``."""
        self._samples.append((rows, seconds))
        if not self.adaptive:
            return
        self.feasible = self.fixed_cost() <= self.budget
        if not self.feasible:
            # the objective cannot be met at any batch size: maximize throughput
            self.limit = min(self.max_rows, self.limit + max(self.increase, rows))
        elif seconds > self.budget:
            self.limit = max(1, min(self.limit, math.floor(self.limit * self.decrease)))
        elif rows >= self.limit:
            self.limit = min(self.max_rows, self.limit + self.increase)


class Batcher:
    """A bounded queue + the task forming and running batches (module docstring).

    Parameters
    ----------
    name : str
        Model name (metrics label).
    target : callable(Pending) -> LoadedModel
        The model a request runs on, asked when its batch forms.
    settings : ServingSettings
    metrics : Metrics
    """

    def __init__(self, name: str, target: Callable[[Pending], Any], settings, metrics):
        self.name = name
        self.target = target
        self.settings = settings
        self.metrics = metrics
        self.controller = AIMDController(settings.max_batch_rows,
                                         settings.p99_objective_ms / 1000.0,
                                         adaptive=settings.adaptive_batching)
        self.capacity = settings.queue_capacity
        self._items: deque[Pending] = deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"serve-{name}")
        self._task: asyncio.Task | None = None
        self._closing = False
        self._last_batch_seconds = 0.0
        self._last_arrival: float | None = None
        self.mean_gap = float("inf")  # EWMA of the time between two arrivals
        self.metrics.batch_limit.set(self.controller.limit, model=name)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                           name=f"batcher-{self.name}")

    async def close(self) -> None:
        """Stop accepting, answer everything queued, stop the loop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return len(self._items)

    # ------------------------------------------------------------ submission
    def submit(self, pending: Pending) -> asyncio.Future:
        """Queue ``pending``; raises :class:`QueueFull` when at capacity."""
        if self._closing or len(self._items) >= self.capacity:
            raise QueueFull(self.retry_after())
        now = pending.enqueued
        if self._last_arrival is not None:
            gap = max(0.0, now - self._last_arrival)
            self.mean_gap = gap if self.mean_gap == float("inf") else \
                0.8 * self.mean_gap + 0.2 * gap
        self._last_arrival = now
        self._items.append(pending)
        self.metrics.queue_depth.set(len(self._items), model=self.name)
        self._wakeup.set()
        return pending.future

    def retry_after(self) -> int:
        """Seconds after which the queue has likely drained (at least 1)."""
        batches = math.ceil((len(self._items) + 1) / max(1, self.controller.limit))
        return max(1, math.ceil(batches * max(self._last_batch_seconds, 0.001)))

    # ------------------------------------------------------------ the loop
    async def _wait_for_items(self, timeout: float | None) -> bool:
        if self._items:
            return True
        self._wakeup.clear()
        if self._items or self._closing:
            return bool(self._items)
        try:
            if timeout is None:
                await self._wakeup.wait()
            else:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass
        return bool(self._items)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        max_wait = self.settings.max_wait_ms / 1000.0
        while True:
            if not await self._wait_for_items(None):
                if self._closing:
                    return
                continue
            batch = [self._items.popleft()]
            rows = batch[0].n_rows
            limit = self.controller.limit
            # wait for more only when more are expected within the window
            wait = max_wait if self.mean_gap < max_wait else 0.0
            deadline = loop.time() + wait
            while rows < limit:
                if not self._items:
                    remaining = deadline - loop.time()
                    if remaining <= 0 or self._closing:
                        break
                    if not await self._wait_for_items(remaining):
                        break
                if rows + self._items[0].n_rows > limit:
                    break
                item = self._items.popleft()
                batch.append(item)
                rows += item.n_rows
            self.metrics.queue_depth.set(len(self._items), model=self.name)
            try:
                await self._run(batch)
            except Exception as exc:  # noqa: BLE001 - never lose a request
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(BatchError(str(exc)))

    async def _run(self, batch: list[Pending]) -> None:
        groups: dict[tuple[int, str], tuple[Any, str, list[Pending]]] = {}
        for p in batch:
            model = self.target(p)
            key = (id(model), p.method)
            if key not in groups:
                groups[key] = (model, p.method, [])
            groups[key][2].append(p)
        loop = asyncio.get_running_loop()
        for model, method, pendings in groups.values():
            rows = sum(p.n_rows for p in pendings)
            start = time.perf_counter()
            outcome = await loop.run_in_executor(self._executor, _run_group, model, method,
                                                 pendings)
            seconds = time.perf_counter() - start
            self._last_batch_seconds = seconds
            self.controller.observe(rows, seconds)
            self.metrics.batch_rows.observe(rows, model=self.name)
            self.metrics.batch_seconds.observe(seconds, model=self.name)
            self.metrics.batch_limit.set(self.controller.limit, model=self.name)
            for p, result in zip(pendings, outcome):
                if p.future.done():
                    continue
                if isinstance(result, BaseException):
                    p.future.set_exception(result)
                else:
                    p.future.set_result((model, result))


def _predict(model, method: str, columns: dict[str, list], n_rows: int) -> list:
    frame = model.schema.build_frame(columns)
    result = model.predictor.run(method, {model.schema.variable: frame})
    return to_json_rows(result, n_rows)


def _run_group(model, method: str, pendings: list[Pending]) -> list:
    """Run one predict for ``pendings`` (in the worker thread); one entry per
    request: its rows, or the exception it gets."""
    if len(pendings) == 1:
        p = pendings[0]
        try:
            return [_predict(model, method, p.columns, p.n_rows)]
        except Exception as exc:  # noqa: BLE001
            err = BatchError(f"{type(exc).__name__}: {exc}")
            err.__cause__ = exc
            return [err]
    names = model.schema.order
    columns = {c: list(chain.from_iterable(p.columns[c] for p in pendings)) for c in names}
    total = sum(p.n_rows for p in pendings)
    try:
        rows = _predict(model, method, columns, total)
    except Exception:  # noqa: BLE001 - isolate the failing request(s)
        return [_run_group(model, method, [p])[0] for p in pendings]
    out, start = [], 0
    for p in pendings:
        out.append(rows[start:start + p.n_rows])
        start += p.n_rows
    return out
