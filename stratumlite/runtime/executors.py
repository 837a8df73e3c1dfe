"""Executors in other processes: a local process pool and Dask distributed.

Design
------
Both are thin adapters with the scheduler's executor interface,
``submit(fn, *args) -> concurrent.futures.Future`` and ``shutdown(wait)``
(made by :func:`make_external_executor`). What they share is how a call
travels to a worker: :class:`_Shipper` pickles ``(fn, args)`` with cloudpickle
(plans hold lambdas), protocol 5, with two refinements.

1. **Out-of-band buffers.** numpy arrays and the blocks of pandas frames are
   not copied into the pickle: they come out as separate buffers
   (``buffer_callback``). The process pool writes each buffer of 1 MiB or more
   into a file under ``/dev/shm`` (a memory file system; else the temporary
   directory) that the worker maps copy-on-write (``mmap``, no copy) and
   deletes: one copy instead of the five of pickling into a pipe. Results
   travel back the same way. Dask scatters large buffers to a worker and moves
   the rest as its own zero-copy frames. (polars frames pickle to one IPC
   blob: in-band.)

2. **Shared objects travel once per worker.** A task holds its plan node
   (and through ``inputs`` every upstream node, whose operators can hold
   data: ``skrub.var("X", df)``) and its bindings (``Binding.env``: the whole
   dataset). Shipping them with every task would send the dataset once per
   task. Instead the pickler replaces every :class:`~stratumlite.plan.Node`
   and :class:`~.tasks.Binding` by a *reference* (``reducer_override``): the node
   key, or the binding key plus its variable names. The object itself is
   published once — a file in the executor's directory (processes) or a
   scattered piece of data (Dask) — and each worker keeps what it loaded in a
   per-process LRU (:data:`_WORKER_OBJECTS`), namespaced by executor. A
   message carries the references it needs in inputs-first order, so a worker
   loads the missing ones without recursion. Keys are content keys, so a
   reference can never stand for two different objects.

Errors raised in a worker come back with their type and ``__cause__`` (an
exception is rebuilt without calling its ``__init__``), the remote traceback
added as a note.

Process pool: ``concurrent.futures.ProcessPoolExecutor`` with the
``forkserver`` start method (``spawn`` where missing): ``fork`` would copy the
parent's threads' locks. The fork server is asked to import stratumlite's
runtime, skrub and numba once (added to its preload list if it is not running
yet), so workers fork warm.

Dask: a ``distributed.Client`` on ``Config.dask_address``, or on a
``LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)``
started here and closed on ``shutdown``. Each call is submitted with
``key=`` derived from the task's lineage key (plus the inputs it is given, so
a task re-run with an extra input is a new key) and ``pure=True``: the same
work submitted twice while the first is in flight runs once. The Dask future
is released as soon as its result has been fetched (the scheduler keeps the
values).

Worked example::

    >>> ex = make_external_executor("processes", 2)   # doctest: +SKIP
    >>> ex.submit(lambda x: x + 1, 41).result()       # doctest: +SKIP
    42
    >>> ex.shutdown()                                 # doctest: +SKIP

Measured (``benchmarks/bench_runtime.py``; 2 cores shared, load ~10): process
pool, trivial task round trip 0.3-0.9 ms; a 64 MB array there and back
0.16-0.19 s (plain pickling of the same array in one process: ~0.4 s); first
result 3-10 s (the fork server imports skrub and scikit-learn once), ~50 ms for
later executors of the same process. Four bindings holding a 40 MB dataset
each: 160 MB published for 20 tasks, instead of 800 MB shipped with them.
Dask (LocalCluster, 2 workers): 14-19 ms per trivial task.
"""

from __future__ import annotations

import io
import mmap
import multiprocessing
import os
import pickle
import shutil
import tempfile
import threading
import traceback
import uuid
from collections import OrderedDict
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cloudpickle
import xxhash

from ..errors import StratumliteError
from ..plan import Node, topological_order
from .tasks import Binding, Task

__all__ = ["DaskExecutor", "ProcessExecutor", "ResultFuture", "make_external_executor"]

#: Buffers of at least this many bytes travel through files (process pool).
FILE_THRESHOLD = 1 << 20


def make_external_executor(kind: str, workers: int, config=None):
    """An executor running tasks in other processes: ``"processes"`` or ``"dask"``.

    ``config`` (a :class:`~stratumlite.Config`) gives ``dask_address``.
    """
    if kind == "processes":
        return ProcessExecutor(workers)
    if kind == "dask":
        address = getattr(config, "dask_address", None) if config is not None else None
        return DaskExecutor(workers, address=address)
    raise StratumliteError(
        f"The 'executor' parameter of Config must be one of 'sequential', 'threads', "
        f"'processes', 'dask'. Got {kind!r} instead.")


# --------------------------------------------------------------------------
# pickling with references (parent side)


class _Message:
    """A pickled call: header, out-of-band buffers, references it needs (in order)."""

    __slots__ = ("header", "buffers", "refs")

    def __init__(self, header: bytes, buffers: list, refs: list[str]):
        self.header = header
        self.buffers = buffers
        self.refs = refs


def _rebuild_exception(cls, args, state, cause, note):
    try:
        exc = cls.__new__(cls)
    except Exception:  # noqa: BLE001 - a __new__ that wants arguments
        exc = BaseException.__new__(cls)
    exc.args = args
    if state:
        try:
            exc.__dict__.update(state)
        except AttributeError:
            pass
    if cause is not None:
        exc.__cause__ = cause
    if note:
        exc.add_note(note)
    return exc


def _reduce_exception(exc: BaseException):
    state = getattr(exc, "__dict__", None) or None
    if state and "__notes__" in state:
        state = {k: v for k, v in state.items() if k != "__notes__"}
    notes = getattr(exc, "__notes__", None)
    return (_rebuild_exception,
            (type(exc), exc.args, state, exc.__cause__, "\n".join(notes) if notes else ""))


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, protocol 5, exceptions by value; nodes and bindings by
    reference when a :class:`_Shipper` is given."""

    def __init__(self, file, shipper: _Shipper | None = None, root=None,
                 buffer_callback=None):
        super().__init__(file, protocol=5, buffer_callback=buffer_callback)
        self.shipper = shipper
        self.root = root
        self.refs: list[str] = []

    def reducer_override(self, obj):
        # nodes and bindings by reference (in ``reducer_override``, which the C
        # pickler calls for objects of non-atomic types only; ``persistent_id``
        # would be called for every string of an object column)
        t = type(obj)
        if (t is Node or t is Binding) and self.shipper is not None and obj is not self.root:
            ref = self.shipper.publish(obj)
            self.refs.append(ref)
            return _referenced, (ref,)
        # exceptions of libraries and user code often cannot be rebuilt from
        # their args (keyword-only __init__): rebuild without __init__, keep
        # __cause__; builtin exceptions pickle as usual
        if isinstance(obj, BaseException) and type(obj).__module__ != "builtins":
            return _reduce_exception(obj)
        return super().reducer_override(obj)


_LOADING = threading.local()  # the objects references resolve to, while loading


def _referenced(ref: str):
    """Unpickling a reference: the object a worker already loaded."""
    try:
        return _LOADING.objects[ref]
    except (AttributeError, KeyError, TypeError):
        raise pickle.UnpicklingError(f"unknown reference {ref!r}") from None


def _dumps(obj, shipper: _Shipper | None = None, root=None, oob: bool = True):
    buffers: list = []
    out = io.BytesIO()
    p = _Pickler(out, shipper, root, buffers.append if oob else None)
    p.dump(obj)
    return out.getvalue(), buffers, p.refs


def _loads(header, buffers=(), objects=None):
    previous = getattr(_LOADING, "objects", None)
    _LOADING.objects = objects
    try:
        return pickle.loads(header, buffers=buffers)
    finally:
        _LOADING.objects = previous


class _Shipper:
    """Publishes nodes and bindings once; pickles calls that refer to them.

    ``store(ref, blob)`` makes a published blob available to workers.
    """

    def __init__(self, store):
        self.namespace = uuid.uuid4().hex[:12]
        self._store = store
        self._closure: dict[str, list[str]] = {}  # ref -> refs it needs, in order
        self._lock = threading.RLock()

    @staticmethod
    def ref_of(obj) -> str:
        if type(obj) is Node:
            return "n" + obj.key
        names = ",".join(sorted(map(repr, obj.env)))
        return "b" + xxhash.xxh3_128_hexdigest(f"{obj.key}|{names}".encode())

    def publish(self, obj) -> str:
        """Publish ``obj`` (and the nodes it depends on) if needed; its reference."""
        ref = self.ref_of(obj)
        with self._lock:
            if ref in self._closure:
                return ref
            if type(obj) is Node:  # inputs first, iteratively: no deep recursion
                for n in topological_order([obj], dedupe="key"):
                    if self.ref_of(n) not in self._closure:
                        self._publish_one(n)
            else:
                self._publish_one(obj)
        return ref

    def _publish_one(self, obj) -> None:
        ref = self.ref_of(obj)
        blob, _, refs = _dumps(obj, self, root=obj, oob=False)
        self._store(ref, blob)
        self._closure[ref] = _ordered_union([*self._closure[r], r] for r in refs)

    def pack(self, obj) -> _Message:
        header, buffers, refs = _dumps(obj, self)
        with self._lock:
            needed = _ordered_union([*self._closure[r], r] for r in refs)
        return _Message(header, buffers, needed)


def _ordered_union(lists) -> list[str]:
    seen: dict[str, None] = {}
    for lst in lists:
        for r in lst:
            seen.setdefault(r, None)
    return list(seen)


# --------------------------------------------------------------------------
# worker side


#: Per worker process: namespace -> (reference -> object), least recent first.
#: Process-wide on purpose: it is the worker's memory of what each executor
#: already sent it (like a Dask worker's data store), bounded below.
_WORKER_OBJECTS: OrderedDict[str, OrderedDict[str, Any]] = OrderedDict()
_WORKER_NAMESPACES = 4
_WORKER_REFS = 4096


def _worker_objects(namespace: str, refs: list[str], fetch) -> dict[str, Any]:
    """The objects ``refs`` name, loading missing ones in order with ``fetch``."""
    objects = _WORKER_OBJECTS.get(namespace)
    if objects is None:
        objects = _WORKER_OBJECTS[namespace] = OrderedDict()
        while len(_WORKER_OBJECTS) > _WORKER_NAMESPACES:
            _WORKER_OBJECTS.popitem(last=False)
    _WORKER_OBJECTS.move_to_end(namespace)
    for ref in refs:
        if ref in objects:
            objects.move_to_end(ref)
        else:
            objects[ref] = _loads(fetch(ref), (), objects)
    while len(objects) > max(_WORKER_REFS, len(refs)):
        objects.popitem(last=False)
    return objects


def _call(fn, args):
    """Run the call; return ("ok", result) or ("error", exception)."""
    try:
        return ("ok", fn(*args))
    except BaseException as e:  # noqa: BLE001 - sent back to the parent
        note = "Remote traceback:\n" + "".join(traceback.format_exception(e))
        try:
            e.add_note(note)
        except Exception:  # noqa: BLE001
            pass
        return ("error", e)


def _pack_result(result, write_file=None):
    """Pickle a worker's ``(kind, obj)`` result; buffers over the threshold go
    through files. Returns ``(kind, header, wire)``: the kind travels outside
    the pickle so that the parent tells an error without unpickling a value."""
    kind = result[0]
    try:
        header, buffers, _ = _dumps(result)
    except Exception as e:  # noqa: BLE001 - unpicklable result or error
        obj = result[1]
        text = "".join(traceback.format_exception(obj)) if kind == "error" else repr(obj)
        kind = "error"
        header, buffers, _ = _dumps(("error", StratumliteError(
            f"The result of a task could not be sent back from the worker "
            f"({type(e).__name__}: {e}):\n{text}")))
    return kind, header, _wire_buffers(buffers, write_file)


def _unpack_result(header, wire) -> Any:
    kind, obj = _loads(header, _read_wire_buffers(wire))
    if kind == "error":
        raise obj
    return obj


class ResultFuture(Future):
    """A future whose value arrives pickled and is unpickled by the first
    thread that asks for it (``result()``), not by the executor's callback thread.

    The scheduler asks from its own thread. Unpickling can run native code that
    starts threads: a LightGBM model starts an OpenMP team in the thread that
    loads it, and GNU OpenMP slows every team down once it manages more threads
    than there are cores (see :mod:`.budget`). Errors are unpickled at once
    (:meth:`set_packed` with ``kind="error"``), so ``exception()`` and
    callbacks see them as usual.
    """

    _UNSET = object()

    def __init__(self) -> None:
        super().__init__()
        self._load_lock = threading.Lock()
        self._loaded: Any = self._UNSET
        self._load_error: BaseException | None = None

    def set_packed(self, kind: str, header: bytes, wire: list) -> None:
        if kind == "error":
            try:
                _unpack_result(header, wire)
            except BaseException as e:  # noqa: BLE001 - the remote error
                self.set_exception(e)
            return
        self.set_result((header, wire))

    def result(self, timeout: float | None = None) -> Any:
        packed = super().result(timeout)
        with self._load_lock:
            if self._loaded is self._UNSET and self._load_error is None:
                try:
                    self._loaded = _unpack_result(*packed)
                except BaseException as e:  # noqa: BLE001 - raised to every caller
                    self._load_error = e
            if self._load_error is not None:
                raise self._load_error
            return self._loaded


class _Deferred(Future):
    """The future of a call held until a slot frees (:class:`ProcessExecutor`
    while its workers start): done when the future it was given to is, and its
    result read through that one (a :class:`ResultFuture` unpickles in the
    asking thread)."""

    def __init__(self) -> None:
        super().__init__()
        self._inner: Future | None = None

    def attach(self, inner: Future) -> None:
        self._inner = inner
        inner.add_done_callback(self._settle)

    def _settle(self, inner: Future) -> None:
        error = inner.exception()
        if error is not None:
            self.set_exception(error)
        else:
            self.set_result(None)  # the value stays in ``inner``

    def result(self, timeout: float | None = None) -> Any:
        super().result(timeout)  # raises the error, if any
        return self._inner.result()


# --------------------------------------------------------------------------
# buffers through files (process pool)


def _spool_dir() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="stratumlite-exec-", dir=base))


def _wire_buffers(buffers, directory: Path | None) -> list:
    """Out-of-band buffers as ``("b", bytes)`` or ``("f", path, nbytes)``."""
    wire = []
    for b in buffers:
        raw = b.raw() if isinstance(b, pickle.PickleBuffer) else memoryview(b)
        if directory is not None and raw.nbytes >= FILE_THRESHOLD:
            path = directory / uuid.uuid4().hex
            try:
                with open(path, "wb") as f:
                    f.write(raw)
            except OSError:  # full or missing: send it inline
                path.unlink(missing_ok=True)
            else:
                wire.append(("f", str(path), raw.nbytes))
                continue
        wire.append(("b", raw.tobytes()))
    return wire


def _read_wire_buffers(wire) -> list:
    out = []
    for item in wire:
        if item[0] == "b":
            out.append(item[1])
            continue
        _, path, nbytes = item
        with open(path, "rb") as f:  # a private copy-on-write mapping: no copy
            if os.fstat(f.fileno()).st_size != nbytes:
                raise StratumliteError(f"short task buffer ({path})")
            buf = mmap.mmap(f.fileno(), nbytes, access=mmap.ACCESS_COPY)
        os.unlink(path)
        out.append(buf)
    return out


def _discard_wire(wire) -> None:
    for item in wire:
        if item[0] == "f":
            try:
                os.unlink(item[1])
            except OSError:
                pass


# --------------------------------------------------------------------------
# process pool


def _process_entry(namespace: str, directory: str, header: bytes, wire, refs):
    """Runs in a pool worker: resolve references, run, send the result back."""
    directory = Path(directory)

    def fetch(ref):
        with open(directory / ref, "rb") as f:
            return f.read()

    objects = _worker_objects(namespace, refs, fetch)
    fn, args = _loads(header, _read_wire_buffers(wire), objects)
    return _pack_result(_call(fn, args), directory)


def _preload_forkserver(ctx) -> None:
    """Have the fork server import stratumlite once, so workers start warm.

    Adds to the preload list (does not replace it); no effect once the fork
    server runs (it is one per process, started on first use).
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    current = list(getattr(server, "_preload_modules", None) or ["__main__"])
    wanted = [m for m in _PRELOAD if m not in current]
    if wanted and getattr(server, "_forkserver_pid", None) is None:
        ctx.set_forkserver_preload(current + wanted)


_PRELOAD = ("stratumlite.runtime.executors", "stratumlite.runtime.scheduler",
            "stratumlite.frontend.skrub_dataops", "numba", "threadpoolctl")


class ProcessExecutor:
    """Tasks in a local ``ProcessPoolExecutor`` (forkserver), see module docstring.

    The workers start in the background as soon as the executor is made
    (seconds: the fork server imports skrub and scikit-learn). Until they are
    up, one task at a time runs in a thread of this process (``stats["local"]``
    counts them; two would share the GIL with each other and the cores with the
    starting server). A task submitted while that thread is busy is held here
    and goes to whichever frees first, the thread or the pool: queued in the
    starting pool, a two-millisecond task (a search's ``y``) would hold back
    everything downstream of it for seconds. ``stats`` also counts
    ``published`` objects and their ``published_bytes``, and ``tasks``
    submitted.
    """

    remote = True  # the scheduler runs glue and cache reads itself

    def __init__(self, workers: int):
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if ctx.get_start_method() == "forkserver":
            _preload_forkserver(ctx)
        self.workers = workers
        self._dir = _spool_dir()
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        self._shipper = _Shipper(self._store)
        self.stats = {"tasks": 0, "published": 0, "published_bytes": 0, "local": 0}
        self._local = ThreadPoolExecutor(1, thread_name_prefix="stratumlite-local")
        self._local_free = threading.Semaphore(1)
        self._lock = threading.Lock()
        self._starting = True  # until the workers answered (see _warm)
        self._held: list[tuple[Any, tuple, _Deferred]] = []  # calls waiting for a slot
        # start the workers now, in the background: a worker's first start
        # (the fork server importing skrub and scikit-learn) takes seconds, which
        # then overlap with what the caller does before its first task
        self._warming = threading.Thread(target=self._warm, daemon=True,
                                         name="stratumlite-warm-workers")
        self._warming.start()

    def _warm(self) -> None:
        try:
            for f in [self._pool.submit(os.getpid) for _ in range(self.workers)]:
                f.result()
        except BaseException:  # noqa: BLE001 - a broken pool fails the first real task
            pass
        with self._lock:
            self._starting = False
            held, self._held = self._held, []
        for fn, args, out in held:
            out.attach(self._submit_remote(fn, args))

    def wait_started(self) -> None:
        """Block until the worker processes are up (tasks submitted before run
        here, one at a time, see the class docstring)."""
        self._warming.join()

    def scratch_dir(self, name: str) -> Path:
        """A directory the workers and this process share (on the memory file
        system where there is one), removed with the executor."""
        path = self._dir / name
        path.mkdir(exist_ok=True)
        return path

    def _store(self, ref: str, blob: bytes) -> None:
        tmp = self._dir / f".{ref}.{uuid.uuid4().hex[:6]}"
        tmp.write_bytes(blob)
        os.replace(tmp, self._dir / ref)
        self.stats["published"] += 1
        self.stats["published_bytes"] += len(blob)

    def submit(self, fn, *args) -> Future:
        self.stats["tasks"] += 1
        with self._lock:
            if self._starting:
                # the workers are still starting: the task runs here, in a thread
                # (tasks are pure: same result wherever they run), or waits for
                # the thread or the pool, whichever frees first
                if not self._local_free.acquire(blocking=False):
                    out = _Deferred()
                    self._held.append((fn, args, out))
                    return out
                local = True
            else:
                local = False
        return self._run_local(fn, args) if local else self._submit_remote(fn, args)

    def _run_local(self, fn, args) -> Future:
        """Run in the local thread (its slot taken); when done, the slot passes
        to a held call, or is freed."""
        self.stats["local"] += 1
        fut = self._local.submit(fn, *args)
        fut.add_done_callback(self._local_done)
        return fut

    def _local_done(self, _fut: Future) -> None:
        with self._lock:
            if not (self._starting and self._held):
                self._local_free.release()
                return
            fn, args, out = self._held.pop(0)
        out.attach(self._run_local(fn, args))

    def _submit_remote(self, fn, args) -> Future:
        msg = self._shipper.pack((fn, args))
        wire = _wire_buffers(msg.buffers, self._dir)
        out = ResultFuture()
        try:
            inner = self._pool.submit(_process_entry, self._shipper.namespace,
                                      str(self._dir), msg.header, wire, msg.refs)
        except BrokenExecutor as e:  # the pool died before: this task fails like the others
            _discard_wire(wire)
            out.set_exception(e)
            return out
        except BaseException:
            _discard_wire(wire)
            raise

        def done(f: Future) -> None:
            try:
                out.set_packed(*f.result())
            except BaseException as e:  # noqa: BLE001 - delivered through the future
                _discard_wire(wire)  # the worker never read them (it died)
                out.set_exception(e)

        inner.add_done_callback(done)
        return out

    def shutdown(self, wait: bool = True) -> None:
        self._warming.join()
        self._local.shutdown(wait=wait)
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        shutil.rmtree(self._dir, ignore_errors=True)


# --------------------------------------------------------------------------
# dask


def _dask_entry(namespace: str, header: bytes, buffers: list, blobs: dict):
    """Runs on a Dask worker; ``blobs`` (reference -> blob) arrive as data."""
    objects = _worker_objects(namespace, list(blobs), blobs.__getitem__)
    fn, args = _loads(header, buffers, objects)
    return _pack_dask_result(_call(fn, args))


def _pack_dask_result(result):
    try:
        header, buffers, _ = _dumps(result)
    except Exception:  # noqa: BLE001 - let _pack_result build the error
        kind, header, wire = _pack_result(result)
        return kind, header, [item[1] for item in wire]
    return result[0], header, [b.raw() for b in buffers]  # Dask sends memoryviews as frames


def dask_key(fn, args) -> str | None:
    """The Dask key of a call: from the lineage key of the Task among ``args``.

    The thread budget (an int) is left out; the input and state indices a call
    is given are in (a task re-run with an extra input is another call).
    ``None`` when the call carries no task and no key string.
    """
    task = next((a for a in args if isinstance(a, Task)), None)
    parts = [getattr(fn, "__qualname__", type(fn).__name__)]
    ident = None
    for a in args:
        if isinstance(a, Task):
            parts.append(a.key)
        elif callable(a):
            parts.append(getattr(a, "__qualname__", type(a).__name__))
        elif isinstance(a, dict):
            parts.append(repr(sorted(map(repr, a))))
        elif isinstance(a, str):
            parts.append(a)
            ident = a
        elif a is None:
            parts.append("None")
        elif not isinstance(a, int):
            parts.append(type(a).__name__)
    if task is None and ident is None:
        return None
    label = task.node.op.kind if task is not None else "load"
    return f"stratumlite-{label}-{xxhash.xxh3_128_hexdigest('|'.join(parts).encode())}"


class DaskExecutor:
    """Tasks on a Dask cluster (see module docstring)."""

    remote = True  # the scheduler runs glue and cache reads itself

    def __init__(self, workers: int, address: str | None = None):
        import logging

        from distributed import Client, LocalCluster

        self._cluster = None
        if address:
            self.client = Client(address, set_as_default=False)
        else:
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                         processes=True, dashboard_address=None,
                                         silence_logs=logging.ERROR)
            self.client = Client(self._cluster, set_as_default=False)
        # tasks in flight at once: the cluster's threads (a remote one may have more)
        try:
            self.workers = max(workers, sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001 - a scheduler that does not answer yet
            self.workers = workers
        self._blobs: dict[str, Any] = {}
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._shipper = _Shipper(self._store)
        self.stats = {"tasks": 0, "published": 0, "published_bytes": 0}

    def _store(self, ref: str, blob: bytes) -> None:
        self._blobs[ref] = self.client.scatter(blob, hash=False)
        self.stats["published"] += 1
        self.stats["published_bytes"] += len(blob)

    def submit(self, fn, *args) -> Future:
        msg = self._shipper.pack((fn, args))
        key = dask_key(fn, args)
        buffers = [b.raw() for b in msg.buffers]
        # large buffers go to a worker directly, not through the task graph
        buffers = [self.client.scatter(b, hash=False) if b.nbytes >= FILE_THRESHOLD else b
                   for b in buffers]
        blobs = {r: self._blobs[r] for r in msg.refs}
        self.stats["tasks"] += 1
        kwargs = {"key": key, "pure": True} if key is not None else {"pure": False}
        with self._lock:
            dfut = self.client.submit(_dask_entry, self._shipper.namespace, msg.header,
                                      buffers, blobs, **kwargs)
            self._pending.setdefault(dfut.key, dfut)
        out = ResultFuture()

        def done(f) -> None:
            try:
                kind, header, raw = f.result()
                out.set_packed(kind, header, [("b", b) for b in raw])
            except BaseException as e:  # noqa: BLE001 - delivered through the future
                out.set_exception(e)
            finally:
                with self._lock:
                    self._pending.pop(f.key, None)

        dfut.add_done_callback(done)
        return out

    def shutdown(self, wait: bool = True) -> None:
        self._pending.clear()
        self._blobs.clear()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
