"""Thread budgets inside one process: BLAS, OpenMP and numba thread counts.

The scheduler gives every task a thread budget (see :mod:`.scheduler`); the
functions here apply it in the thread that runs the task.

OpenMP teams belong to the thread that starts them. GNU OpenMP (``libgomp``:
LightGBM's and numba's ``omp`` layer) keeps a started team's threads for its
master thread's lifetime and counts them all; once it manages more threads
than the machine has cores, every barrier of every team stops spinning and
sleeps at once (its "throttled" mode), for the rest of the process. Measured on
2 cores: a LightGBM fit on 97,179 x 139 float32 rows with 2 threads took
2.0 s, and 2.8-3.1 s in the same process after any other thread had run one
parallel region with 2 threads (a numba ``prange`` kernel, a LightGBM model
being unpickled). So only task runners start teams: a value an executor
sends back pickled is unpickled in the scheduler's thread
(:class:`~.executors.ResultFuture`), which also runs the tasks that are alone,
and a cache entry is read under the reading task's budget.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_controller_cache: dict[int, Any] = {}


def _threadpool_controller():
    """threadpoolctl's controller, rescanned only when new modules were loaded
    (a scan costs milliseconds; applying a limit with it, microseconds)."""
    from threadpoolctl import ThreadpoolController

    n = len(sys.modules)
    controller = _controller_cache.get(n)
    if controller is None:
        _controller_cache.clear()
        controller = _controller_cache[n] = ThreadpoolController()
    return controller


def _with_budget(threads: int, fn, *args):
    """Run ``fn`` with BLAS/OpenMP and numba limited to ``threads`` threads."""
    numba_set = None
    try:
        import numba

        previous = numba.get_num_threads()
        wanted = min(threads, numba.config.NUMBA_NUM_THREADS)
        if wanted != previous:
            numba_set = numba.set_num_threads
            numba_set(wanted)
    except Exception:  # pragma: no cover - numba not usable
        numba_set = None
    try:
        # Set, not restored after the task: BLAS pools are process-wide, and a
        # task restoring "its" previous value would change the budget of a task
        # still running beside it. Tasks that can run side by side all have the
        # same budget (see the module docstring), so whichever sets it last sets
        # the right value; ``Scheduler.run`` restores the originals at the end.
        for lib in _threadpool_controller().lib_controllers:
            if lib.num_threads != threads:
                lib.set_num_threads(threads)
        return fn(*args)
    finally:
        if numba_set is not None:
            numba_set(previous)


def _saved_thread_limits() -> dict[str, int]:
    return {lib.filepath: lib.num_threads for lib in _threadpool_controller().lib_controllers}


def _restore_thread_limits(saved: dict[str, int]) -> None:
    """Put back what :func:`_saved_thread_limits` saw (libraries loaded since
    then get the machine's cores, their usual default)."""
    for lib in _threadpool_controller().lib_controllers:
        wanted = saved.get(lib.filepath, os.cpu_count() or 1)
        if lib.num_threads != wanted:
            lib.set_num_threads(wanted)
