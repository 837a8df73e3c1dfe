"""The lineage store: runs, nodes, edges, sources, executions and models in SQLite.

One SQLite file (``Config.lineage_db``, by default ``.stratumlite/lineage.db``)
records every executed node under its lineage key (see ARCHITECTURE.md), the
graph between keys, where source data came from, and every run.

Concurrency and crash safety
----------------------------
* The file is in WAL mode: readers never block the writer and a writer never
  blocks readers. ``synchronous=NORMAL``: a committed transaction survives the
  process being killed (``kill -9``); only an OS crash / power loss may lose the
  last few commits, never consistency.
* Every write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken
  up front, so two writers never deadlock on a read->write upgrade). SQLite's
  ``busy_timeout`` waits for the lock, and ``database is locked`` errors that
  still escape it are retried with jittered backoff until ``busy_timeout``
  seconds have passed; then :class:`~stratumlite.errors.LineageError`.
* One connection per thread (``threading.local``); a forked child opens its own
  connections (the inherited ones are left alone, never closed, as SQLite
  requires).
* A run killed mid-way stays ``running`` in the file; it is *reported* as
  ``interrupted`` (see :meth:`LineageStore.runs`) when its process is dead (same
  host) or its heartbeat is older than ``stale_after`` seconds. A daemon
  thread refreshes the heartbeat of this process's open runs every
  ``heartbeat_interval`` seconds, and flushes recorders whose records are older
  than their ``flush_interval``.

Schema versions
---------------
``PRAGMA user_version`` holds the schema version. :data:`MIGRATIONS` lists the
migrations in order (entry ``i`` moves a file from version ``i`` to ``i + 1``);
opening a file applies the missing ones in one transaction. A file written by a
newer stratumlite (higher version) is refused rather than misread.

* v1: ``runs``, ``nodes``, ``edges``, ``sources``, ``executions``, ``models``,
  ``aliases``.
* v2: ``artifacts`` (content-addressed registry files, back-filled from
  ``models``), ``run_nodes`` (which nodes belong to which run, and under what
  label: back-filled from ``executions``), indexes on ``executions.node_key``
  and the labels.

>>> import tempfile, os
>>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "lineage.db"))
>>> run_id = store.start_run("evaluate")
>>> with store.recorder(run_id) as rec:
...     rec.source("k_src", "orders", "xxh:12ab", "content", 3, {"a": "int64"})
...     rec.node("k_sum", "apply", "total", {"cols": ["a"]}, None, ["k_src"])
...     rec.execution("k_sum", "fit_transform", None, 0.01, 3, 1, 24, "miss")
>>> store.end_run(run_id)
>>> [a["label"] for a in store.ancestors("k_sum")]
['orders']
>>> store.run(run_id)["status"]
'finished'
>>> store.close()
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from stratumlite.errors import LineageError

__all__ = [
    "CACHE_STATUSES",
    "MIGRATIONS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "LineageStore",
    "Recorder",
]

# --------------------------------------------------------------------------------------
# Schema. Never edit a released migration: add a new one at the end.
# --------------------------------------------------------------------------------------

_V1: tuple[str, ...] = (
    """CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL DEFAULT 'running',
        started_at  REAL NOT NULL,
        ended_at    REAL,
        heartbeat   REAL,
        script      TEXT,
        config      TEXT,
        git_commit  TEXT,
        pid         INTEGER,
        hostname    TEXT
    )""",
    "CREATE INDEX runs_started ON runs (started_at)",
    """CREATE TABLE nodes (
        key         TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        label       TEXT,
        params      TEXT,
        code_hash   TEXT,
        created_at  REAL
    )""",
    """CREATE TABLE edges (
        child       TEXT NOT NULL,
        parent      TEXT NOT NULL,
        position    INTEGER NOT NULL,
        PRIMARY KEY (child, position)
    )""",
    # (not WITHOUT ROWID: SQLite 3.40's integrity_check reports a false "NULL
    # value" for a NOT NULL non-key column declared before a key column there)
    "CREATE INDEX edges_parent ON edges (parent)",
    """CREATE TABLE sources (
        key         TEXT PRIMARY KEY,
        name        TEXT,
        fingerprint TEXT NOT NULL,
        how         TEXT,
        rows        INTEGER,
        schema      TEXT
    )""",
    """CREATE TABLE executions (
        id           INTEGER PRIMARY KEY,
        run_id       TEXT NOT NULL,
        node_key     TEXT NOT NULL,
        mode         TEXT,
        fold         INTEGER,
        started_at   REAL,
        duration     REAL,
        rows         INTEGER,
        cols         INTEGER,
        nbytes       INTEGER,
        cache_status TEXT,
        artifact     TEXT,
        sha256       TEXT
    )""",
    "CREATE INDEX executions_run ON executions (run_id)",
    """CREATE TABLE models (
        name        TEXT NOT NULL,
        version     INTEGER NOT NULL,
        lineage_key TEXT,
        run_id      TEXT,
        sha256      TEXT NOT NULL,
        metrics     TEXT,
        tags        TEXT,
        created_at  REAL NOT NULL,
        PRIMARY KEY (name, version)
    )""",
    """CREATE TABLE aliases (
        name        TEXT NOT NULL,
        alias       TEXT NOT NULL,
        version     INTEGER NOT NULL,
        PRIMARY KEY (name, alias)
    )""",
)

_V2: tuple[str, ...] = (
    """CREATE TABLE artifacts (
        sha256      TEXT PRIMARY KEY,
        path        TEXT NOT NULL,
        nbytes      INTEGER,
        created_at  REAL
    )""",
    """INSERT OR IGNORE INTO artifacts (sha256, path, nbytes, created_at)
       SELECT sha256, substr(sha256, 1, 2) || '/' || sha256 || '.pkl', NULL,
              MIN(created_at)
       FROM models GROUP BY sha256""",
    """CREATE TABLE run_nodes (
        run_id      TEXT NOT NULL,
        node_key    TEXT NOT NULL,
        label       TEXT,
        PRIMARY KEY (run_id, node_key)
    ) WITHOUT ROWID""",
    """INSERT OR IGNORE INTO run_nodes (run_id, node_key, label)
       SELECT DISTINCT e.run_id, e.node_key, n.label
       FROM executions e LEFT JOIN nodes n ON n.key = e.node_key""",
    "CREATE INDEX run_nodes_label ON run_nodes (label)",
    "CREATE INDEX executions_node ON executions (node_key)",
    "CREATE INDEX nodes_label ON nodes (label)",
)

#: ``MIGRATIONS[i]`` moves a file from schema version ``i`` to ``i + 1``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)
#: The schema version this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)

#: Recorded run statuses (``interrupted`` is also *reported*, never required).
RUN_STATUSES = ("running", "finished", "failed", "interrupted")
#: What happened to a node's output with respect to the cache (``None``: no cache).
CACHE_STATUSES = ("hit", "miss", "stored", "spilled")

_SQL_CHUNK = 500  # bound on ``IN (...)`` parameter lists


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (plain ones cannot)."""


# Connections inherited through fork(): never closed (closing could checkpoint or
# delete the parent's WAL), just kept alive here.
_ABANDONED: list[sqlite3.Connection] = []


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _to_json(value: Any) -> str | None:
    """Canonical JSON text (sorted keys, compact); a string is kept as is."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if hasattr(value, "model_dump"):  # pydantic objects such as Config
        value = value.model_dump(mode="json")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _from_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: exists, owned by someone else
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _git_commit(script: str | None) -> str | None:
    """``git rev-parse HEAD`` in the script's directory (or the cwd), or None."""
    cwd = Path(script).resolve().parent if script else Path.cwd()
    if not cwd.is_dir():
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _chunks(items: Sequence, size: int = _SQL_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


# --------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------


class LineageStore:
    """Embedded SQLite store of runs, nodes, edges, sources, executions, models.

    Parameters
    ----------
    path : str or Path
        The SQLite file (created with its parent directory if missing). Use
        ``Config.lineage_db``, or :meth:`from_config`.
    busy_timeout : float
        Seconds a writer waits for another process's write lock (SQLite
        ``busy_timeout``, then retries) before raising ``LineageError``.
    heartbeat_interval : float or None
        Seconds between heartbeats of this process's open runs (a daemon
        thread). ``None`` disables the thread: then long pauses between
        recorder flushes make a live run look stale on another host; raise
        ``stale_after`` accordingly.
    stale_after : float
        A ``running`` run whose heartbeat is older than this is reported as
        ``interrupted``. On the same host a dead pid is enough.

    >>> import tempfile, os
    >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
    >>> store.schema_version == SCHEMA_VERSION
    True
    >>> store.close()
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 30.0,
        heartbeat_interval: float | None = 5.0,
        stale_after: float = 60.0,
    ):
        if str(path) == ":memory:" or str(path).startswith("file::memory:"):
            raise ValueError(
                "LineageStore needs a file path (each thread opens its own "
                "connection, an in-memory database would not be shared)."
            )
        self.path = Path(path)
        self.busy_timeout = float(busy_timeout)
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = float(stale_after)
        self._local = threading.local()
        # weak: a connection dies (and closes) with the thread that opened it
        self._conns: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self._pid = os.getpid()
        self._hostname = socket.gethostname()
        self._active_runs: set[str] = set()
        self._recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()
        self._hb_lock = threading.Lock()
        self._hb_thread: threading.Thread | None = None
        self._hb_stop = threading.Event()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._initialize()

    @classmethod
    def from_config(cls, config, **kwargs) -> LineageStore:
        """The store at ``config.lineage_db`` (a :class:`stratumlite.config.Config`).

        >>> import tempfile
        >>> from stratumlite.config import Config
        >>> store = LineageStore.from_config(Config(state_dir=tempfile.mkdtemp()))
        >>> store.path.name
        'lineage.db'
        >>> store.close()
        """
        return cls(config.lineage_db, **kwargs)

    def __repr__(self) -> str:
        return f"LineageStore({str(self.path)!r})"

    # ---------------------------------------------------------------- connections

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # forked child: start afresh
            self._after_fork()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.add(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # only so close() may close them all
                factory=_Connection,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            raise LineageError(
                f"cannot open lineage store {str(self.path)!r}: {exc}"
            ) from exc
        return conn

    def _after_fork(self) -> None:
        # (the parent's locks may have been held by another thread at fork time)
        self._conns_lock = threading.Lock()
        _ABANDONED.extend(list(self._conns))
        self._conns = weakref.WeakSet()
        self._local = threading.local()
        self._pid = os.getpid()
        self._active_runs = set()
        self._recorders = weakref.WeakSet()
        self._hb_lock = threading.Lock()
        self._hb_thread = None
        self._hb_stop = threading.Event()

    def _release_thread_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._conns_lock:
            self._conns.discard(conn)
        conn.close()

    def close(self) -> None:
        """Flush open recorders, stop the heartbeat and close every connection.

        The store reopens connections on next use.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> store.close(); store.runs()
        []
        """
        for rec in list(self._recorders):
            try:
                rec.flush()
            except LineageError:
                pass
        self._stop_heartbeat()
        with self._conns_lock:
            conns, self._conns = list(self._conns), weakref.WeakSet()
        self._local = threading.local()
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> LineageStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- transactions

    def _retrying(self, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt``; retry it while the database is locked/busy."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.002
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise LineageError(
                        f"lineage store {str(self.path)!r} stayed locked for "
                        f"{self.busy_timeout:g}s: {exc}"
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction, with retries."""

        def attempt():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        return self._retrying(attempt)

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one read transaction (a consistent snapshot)."""

        def attempt():
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

        return self._retrying(attempt)

    # ---------------------------------------------------------------- schema

    def _initialize(self) -> None:
        def set_wal():
            conn = self._conn()
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LineageError(
                    f"lineage store {str(self.path)!r}: cannot switch to WAL "
                    f"mode (got {mode!r})"
                )

        try:
            self._retrying(set_wal)
            version = self._retrying(
                lambda: self._conn().execute("PRAGMA user_version").fetchone()[0]
            )
            if version > SCHEMA_VERSION:
                raise LineageError(
                    f"lineage store {str(self.path)!r} has schema version {version}, "
                    f"newer than this stratumlite supports ({SCHEMA_VERSION}); "
                    "upgrade stratumlite or use another state directory"
                )
            if version < SCHEMA_VERSION:
                self._write(self._migrate)
        except sqlite3.DatabaseError as exc:
            raise LineageError(
                f"cannot open lineage store {str(self.path)!r}: {exc}"
            ) from exc

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        # Re-read inside the write transaction: another process may have migrated.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")

    @property
    def schema_version(self) -> int:
        """The file's ``PRAGMA user_version``."""
        return self._conn().execute("PRAGMA user_version").fetchone()[0]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` (``'ok'`` when healthy).

        >>> import tempfile, os
        >>> LineageStore(os.path.join(tempfile.mkdtemp(), "l.db")).integrity_check()
        'ok'
        """
        rows = self._conn().execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)

    # ---------------------------------------------------------------- runs

    def start_run(
        self,
        kind: str,
        *,
        script: str | None = None,
        config: dict | Any | None = None,
    ) -> str:
        """Record a new run (status ``running``) and return its id (a uuid4).

        ``kind`` is what the run does (``evaluate``, ``fit``, ``search``,
        ``serve``, ...). ``config`` is stored as JSON (a dict, or a pydantic
        ``Config``). The git commit is ``git rev-parse HEAD`` in the script's
        directory (the cwd without a script), or None outside a repository. The
        pid and hostname are recorded to detect a killed run.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> run_id = store.start_run("fit", config={"executor": "threads"})
        >>> store.run(run_id)["config"]
        {'executor': 'threads'}
        >>> store.end_run(run_id)
        """
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"a run kind must be a non-empty str. Got {kind!r}.")
        run_id = str(uuid.uuid4())
        now = time.time()
        row = (
            run_id,
            kind,
            now,
            now,
            None if script is None else str(script),
            _to_json(config),
            _git_commit(None if script is None else str(script)),
            os.getpid(),
            self._hostname,
        )
        self._write(
            lambda conn: conn.execute(
                "INSERT INTO runs (id, kind, status, started_at, heartbeat, script, "
                "config, git_commit, pid, hostname) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )
        self._active_runs.add(run_id)
        self._ensure_heartbeat()
        return run_id

    def end_run(self, run_id: str, status: str = "finished") -> None:
        """Mark a run ended (``finished`` or ``failed``), flushing its recorders.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> run_id = store.start_run("fit")
        >>> store.end_run(run_id, "failed")
        >>> store.run(run_id)["status"]
        'failed'
        """
        if status not in ("finished", "failed", "interrupted"):
            raise ValueError(
                "a run ends 'finished', 'failed' or 'interrupted'. "
                f"Got {status!r} instead."
            )
        for rec in list(self._recorders):
            if rec.run_id == run_id:
                rec.flush()
        now = time.time()

        def write(conn):
            cur = conn.execute(
                "UPDATE runs SET status = ?, ended_at = ?, heartbeat = ? WHERE id = ?",
                (status, now, now, run_id),
            )
            if cur.rowcount == 0:
                raise LineageError(f"unknown run {run_id!r}")

        self._write(write)
        self._active_runs.discard(run_id)

    def record_run(
        self,
        kind: str,
        *,
        script: str | None = None,
        config: dict | Any | None = None,
        **recorder_options,
    ) -> _RunContext:
        """Context manager: start a run, yield its :class:`Recorder`, end the run.

        The run ends ``finished``, or ``failed`` if the block raises.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("evaluate") as rec:
        ...     rec.node("k1", "var", "x", None, None, [])
        >>> store.run(rec.run_id)["status"], store.run(rec.run_id)["n_nodes"]
        ('finished', 1)
        """
        return _RunContext(self, kind, script, config, recorder_options)

    def heartbeat(self, run_id: str) -> None:
        """Refresh a run's heartbeat now (the heartbeat thread does this itself)."""
        now = time.time()
        self._write(
            lambda conn: conn.execute(
                "UPDATE runs SET heartbeat = ? WHERE id = ?", (now, run_id)
            )
        )

    def _ensure_heartbeat(self) -> None:
        if self.heartbeat_interval is None:
            return
        with self._hb_lock:
            if self._hb_thread is not None:
                return
            self._hb_stop = threading.Event()
            self._hb_thread = threading.Thread(
                target=_heartbeat_loop,
                args=(weakref.ref(self), self._hb_stop, float(self.heartbeat_interval)),
                name="stratumlite-lineage-heartbeat",
                daemon=True,
            )
            self._hb_thread.start()

    def _stop_heartbeat(self) -> None:
        with self._hb_lock:
            thread, self._hb_thread = self._hb_thread, None
            self._hb_stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _beat(self) -> None:
        """One heartbeat tick: refresh open runs, flush recorders that are due."""
        runs = list(self._active_runs)
        if runs:
            now = time.time()
            self._write(
                lambda conn: conn.executemany(
                    "UPDATE runs SET heartbeat = ? WHERE id = ? AND status = 'running'",
                    [(now, r) for r in runs],
                )
            )
        for rec in list(self._recorders):
            rec._flush_if_due()

    def _heartbeat_idle(self) -> bool:
        """Called by the heartbeat thread: True (and forget the thread) when
        there is no open run and no pending record left."""
        with self._hb_lock:
            if self._active_runs or any(r._pending for r in list(self._recorders)):
                return False
            if self._hb_thread is threading.current_thread():
                self._hb_thread = None
            return True

    def _effective_status(self, row: sqlite3.Row, now: float) -> str:
        status = row["status"]
        if status != "running":
            return status
        if row["id"] in self._active_runs and row["pid"] == os.getpid():
            return "running"
        if (
            row["hostname"] == self._hostname
            and row["pid"] is not None
            and not _pid_alive(row["pid"])
        ):
            return "interrupted"
        beat = row["heartbeat"] if row["heartbeat"] is not None else row["started_at"]
        return "interrupted" if now - beat > self.stale_after else "running"

    def _run_dict(self, row: sqlite3.Row, now: float) -> dict:
        ended = row["ended_at"]
        return {
            "id": row["id"],
            "kind": row["kind"],
            "status": self._effective_status(row, now),
            "recorded_status": row["status"],
            "started_at": row["started_at"],
            "ended_at": ended,
            "duration": None if ended is None else ended - row["started_at"],
            "heartbeat": row["heartbeat"],
            "script": row["script"],
            "config": _from_json(row["config"]),
            "git_commit": row["git_commit"],
            "pid": row["pid"],
            "hostname": row["hostname"],
            "n_executions": row["n_executions"],
        }

    def runs(self, limit: int | None = None) -> list[dict]:
        """Runs, newest first, as dicts.

        ``status`` is the *effective* status: a ``running`` run whose process
        is dead (same host) or whose heartbeat is older than ``stale_after``
        seconds is reported ``interrupted`` (``recorded_status`` keeps what the
        file says).

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> first = store.start_run("fit"); second = store.start_run("evaluate")
        >>> [r["kind"] for r in store.runs()], len(store.runs(limit=1))
        (['evaluate', 'fit'], 1)
        """
        sql = (
            "SELECT r.*, (SELECT COUNT(*) FROM executions e WHERE e.run_id = r.id) "
            "AS n_executions FROM runs r ORDER BY r.started_at DESC, r.rowid DESC"
        )
        params: tuple = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (int(limit),)
        rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        now = time.time()
        return [self._run_dict(row, now) for row in rows]

    def _resolve_run_id(self, conn: sqlite3.Connection, run_id: str) -> str:
        if not isinstance(run_id, str) or not run_id:
            raise LineageError(f"unknown run {run_id!r}")
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            return run_id
        matches = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM runs WHERE id >= ? AND id < ? LIMIT 6",
                (run_id, run_id + "\U0010ffff"),
            )
        ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise LineageError(
                f"run id prefix {run_id!r} is ambiguous: it matches "
                + ", ".join(matches[:5])
            )
        raise LineageError(f"unknown run {run_id!r}")

    def run(self, run_id: str) -> dict:
        """One run as a dict (a unique prefix of its id is accepted).

        Adds ``n_nodes`` and ``cache`` (execution counts per cache status) to
        the fields of :meth:`runs`. Raises ``LineageError`` naming the id when
        no run matches.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> store.run("nope")
        Traceback (most recent call last):
        ...
        stratumlite.errors.LineageError: unknown run 'nope'
        """

        def read(conn):
            rid = self._resolve_run_id(conn, run_id)
            row = conn.execute(
                "SELECT r.*, (SELECT COUNT(*) FROM executions e WHERE e.run_id = r.id)"
                " AS n_executions FROM runs r WHERE r.id = ?",
                (rid,),
            ).fetchone()
            n_nodes = conn.execute(
                "SELECT COUNT(*) FROM run_nodes WHERE run_id = ?", (rid,)
            ).fetchone()[0]
            cache = dict(
                conn.execute(
                    "SELECT COALESCE(cache_status, 'none'), COUNT(*) FROM executions "
                    "WHERE run_id = ? GROUP BY 1",
                    (rid,),
                ).fetchall()
            )
            return row, n_nodes, cache

        row, n_nodes, cache = self._read(read)
        out = self._run_dict(row, time.time())
        out["n_nodes"] = n_nodes
        out["cache"] = cache
        return out

    # ---------------------------------------------------------------- recording

    def recorder(
        self, run_id: str, *, batch_size: int = 1000, flush_interval: float = 1.0
    ) -> Recorder:
        """A :class:`Recorder` batching this run's writes (see its docstring).

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> run_id = store.start_run("evaluate")
        >>> with store.recorder(run_id, batch_size=100) as rec:
        ...     rec.node("k1", "var", "x", None, None, [])
        >>> store.node("k1")["label"]
        'x'
        """
        run_id = self._read(lambda conn: self._resolve_run_id(conn, run_id))
        rec = Recorder(
            self, run_id, batch_size=batch_size, flush_interval=flush_interval
        )
        self._recorders.add(rec)
        self._ensure_heartbeat()
        return rec

    # ---------------------------------------------------------------- nodes & graph

    def _resolve_key(self, conn: sqlite3.Connection, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise LineageError(f"unknown node {key!r}")
        for table, column in (("nodes", "key"), ("edges", "parent")):
            if conn.execute(
                f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1", (key,)
            ).fetchone():
                return key
        matches = [
            r[0]
            for r in conn.execute(
                "SELECT key FROM nodes WHERE key >= ? AND key < ? LIMIT 6",
                (key, key + "\U0010ffff"),
            )
        ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise LineageError(
                f"node key prefix {key!r} is ambiguous: it matches "
                + ", ".join(matches[:5])
            )
        raise LineageError(f"unknown node {key!r}")

    @staticmethod
    def _node_infos(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, dict]:
        """Node dicts (with ``inputs`` and ``source``) for ``keys``, in one pass."""
        infos: dict[str, dict] = {
            k: {
                "key": k,
                "kind": None,
                "label": None,
                "params": None,
                "code_hash": None,
                "inputs": [],
                "source": None,
            }
            for k in keys
        }
        for chunk in _chunks(list(infos)):
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(
                "SELECT key, kind, label, params, code_hash FROM nodes "
                f"WHERE key IN ({marks})",
                chunk,
            ):
                info = infos[row["key"]]
                info.update(
                    kind=row["kind"],
                    label=row["label"],
                    params=_from_json(row["params"]),
                    code_hash=row["code_hash"],
                )
            for row in conn.execute(
                f"SELECT child, parent FROM edges WHERE child IN ({marks}) "
                "ORDER BY child, position",
                chunk,
            ):
                infos[row["child"]]["inputs"].append(row["parent"])
            for row in conn.execute(
                "SELECT key, name, fingerprint, how, rows, schema FROM sources "
                f"WHERE key IN ({marks})",
                chunk,
            ):
                infos[row["key"]]["source"] = {
                    "name": row["name"],
                    "fingerprint": row["fingerprint"],
                    "how": row["how"],
                    "rows": row["rows"],
                    "schema": _from_json(row["schema"]),
                }
        return infos

    def node(self, key: str) -> dict:
        """One node: ``key, kind, label, params, code_hash, inputs, source``.

        ``inputs`` are the parent keys in position order; ``source`` is the
        fingerprint record for a source node (else None). A unique key prefix
        is accepted; an unknown key raises ``LineageError``.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("fit") as rec:
        ...     rec.node("k9", "estimator", "model", {"C": 1.0}, None, [])
        >>> store.node("k9")["params"]
        {'C': 1.0}
        """

        def read(conn):
            k = self._resolve_key(conn, key)
            return self._node_infos(conn, [k])[k]

        return self._read(read)

    @staticmethod
    def _subgraph_edges(
        conn: sqlite3.Connection, key: str, up: bool, max_depth: int | None
    ) -> list[tuple[str, str]]:
        """``(from, to)`` edges reachable from ``key`` (up: child->parent).

        Without ``max_depth``: one recursive CTE over *keys* (``UNION``
        deduplicates, so the work is linear in the edges and a corrupt cyclic
        graph still terminates). With it: one query per level, so a shallow
        look at a huge graph stays cheap.
        """
        src, dst = ("child", "parent") if up else ("parent", "child")
        if max_depth is None:
            sql = f"""
                WITH RECURSIVE walk(key) AS (
                    SELECT :key
                    UNION
                    SELECT e.{dst} FROM edges e JOIN walk w ON e.{src} = w.key
                )
                SELECT e.{src}, e.{dst} FROM edges e JOIN walk w ON e.{src} = w.key
                ORDER BY e.{src}, e.position
            """
            return [(r[0], r[1]) for r in conn.execute(sql, {"key": key})]
        edges: list[tuple[str, str]] = []
        seen = {key}
        frontier = [key]
        for _ in range(max_depth):
            nxt: list[str] = []
            for chunk in _chunks(frontier):
                marks = ",".join("?" * len(chunk))
                for a, b in conn.execute(
                    f"SELECT {src}, {dst} FROM edges WHERE {src} IN ({marks}) "
                    f"ORDER BY {src}, position",
                    chunk,
                ):
                    edges.append((a, b))
                    if b not in seen:
                        seen.add(b)
                        nxt.append(b)
            if not nxt:
                break
            frontier = nxt
        return edges

    def _walk(self, key: str, max_depth: int | None, up: bool) -> list[dict]:
        if max_depth is not None and max_depth < 0:
            raise ValueError(f"max_depth must be >= 0. Got {max_depth}.")

        def read(conn):
            k = self._resolve_key(conn, key)
            adjacency: dict[str, list[str]] = {}
            for a, b in self._subgraph_edges(conn, k, up, max_depth):
                adjacency.setdefault(a, []).append(b)
            depth = {k: 0}  # breadth-first: the shortest path to each node
            frontier = [k]
            while frontier and (max_depth is None or depth[frontier[0]] < max_depth):
                nxt = []
                for a in frontier:
                    for b in adjacency.get(a, ()):
                        if b not in depth:
                            depth[b] = depth[a] + 1
                            nxt.append(b)
                frontier = nxt
            del depth[k]
            order = sorted(depth, key=lambda n: (depth[n], n))
            infos = self._node_infos(conn, order)
            return [{**infos[n], "depth": depth[n]} for n in order]

        return self._read(read)

    def ancestors(self, key: str, max_depth: int | None = None) -> list[dict]:
        """Every node ``key`` depends on (recursive CTE over ``edges``).

        Node dicts as :meth:`node`, plus ``depth`` (1 = a direct input; the
        shortest path when several), sorted by depth then key. ``max_depth``
        bounds the walk.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("fit") as rec:
        ...     rec.node("a", "var", "a", None, None, [])
        ...     rec.node("b", "apply", "b", None, None, ["a"])
        ...     rec.node("c", "apply", "c", None, None, ["b"])
        >>> [(n["key"], n["depth"]) for n in store.ancestors("c")]
        [('b', 1), ('a', 2)]
        >>> [n["key"] for n in store.ancestors("c", max_depth=1)]
        ['b']
        """
        return self._walk(key, max_depth, up=True)

    def descendants(self, key: str, max_depth: int | None = None) -> list[dict]:
        """Every node that depends on ``key`` (recursive CTE), as :meth:`ancestors`.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("fit") as rec:
        ...     rec.node("a", "var", "a", None, None, [])
        ...     rec.node("b", "apply", "b", None, None, ["a"])
        >>> [n["key"] for n in store.descendants("a")]
        ['b']
        """
        return self._walk(key, max_depth, up=False)

    def lineage_tree(self, key: str) -> dict:
        """The nested lineage of ``key`` down to its sources.

        Each level is the node dict of :meth:`node` whose ``inputs`` are the
        subtrees of its parents (in position order). A node reached a second
        time through another path (a shared subexpression) is not expanded
        again: it appears as ``{"key", "kind", "label", "repeated": True}``.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("fit") as rec:
        ...     rec.source("s", "orders", "fp1", "content", 2, None)
        ...     rec.node("b", "apply", "b", None, None, ["s"])
        >>> tree = store.lineage_tree("b")
        >>> tree["label"], tree["inputs"][0]["source"]["fingerprint"]
        ('b', 'fp1')
        """

        def read(conn):
            k = self._resolve_key(conn, key)
            keys = {k}
            for _, parent in self._subgraph_edges(conn, k, True, None):
                keys.add(parent)
            return k, self._node_infos(conn, sorted(keys))

        root, infos = self._read(read)
        expanded: set[str] = set()

        def build(k: str) -> dict:
            info = infos[k]
            if k in expanded:
                return {
                    "key": k,
                    "kind": info["kind"],
                    "label": info["label"],
                    "repeated": True,
                }
            expanded.add(k)
            return {**info, "inputs": [build(p) for p in info["inputs"]]}

        return build(root)

    # ---------------------------------------------------------------- queries

    def history(self, name: str) -> list[dict]:
        """Executions of the nodes labelled ``name``, across runs, oldest first.

        A label is matched per run (the label the node had in that run), so a
        node keeps its history when its key changes (new parameters, new data).
        Each dict: ``run_id, run_kind, run_started_at, node_key, label, mode,
        fold, started_at, duration, rows, cols, nbytes, cache_status, artifact,
        sha256``. An unknown name gives ``[]``.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("fit") as rec:
        ...     rec.node("k1", "estimator", "model", {"C": 1}, None, [])
        ...     rec.execution("k1", "fit_transform", 0, 0.5, 10, 2, 160, "stored")
        >>> [(h["mode"], h["cache_status"]) for h in store.history("model")]
        [('fit_transform', 'stored')]
        """
        rows = self._read(
            lambda conn: conn.execute(
                """SELECT e.run_id, r.kind AS run_kind, r.started_at AS run_started_at,
                          e.node_key, COALESCE(rn.label, n.label) AS label,
                          e.mode, e.fold, e.started_at, e.duration, e.rows,
                          e.cols, e.nbytes, e.cache_status,
                          e.artifact, e.sha256
                   FROM run_nodes rn
                   JOIN executions e
                        ON e.run_id = rn.run_id AND e.node_key = rn.node_key
                   LEFT JOIN runs r ON r.id = e.run_id
                   LEFT JOIN nodes n ON n.key = rn.node_key
                   WHERE rn.label = :name OR (rn.label IS NULL AND n.label = :name)
                   ORDER BY e.started_at, e.id""",
                {"name": name},
            ).fetchall()
        )
        return [dict(row) for row in rows]

    def _run_graph(self, conn: sqlite3.Connection, run_id: str) -> dict[str, dict]:
        graph: dict[str, dict] = {}
        for row in conn.execute(
            """SELECT rn.node_key AS key, COALESCE(rn.label, n.label) AS label,
                      n.kind, n.params, n.code_hash, s.fingerprint
               FROM run_nodes rn
               LEFT JOIN nodes n ON n.key = rn.node_key
               LEFT JOIN sources s ON s.key = rn.node_key
               WHERE rn.run_id = ?""",
            (run_id,),
        ):
            graph[row["key"]] = {
                "key": row["key"],
                "label": row["label"] or row["kind"] or row["key"],
                "kind": row["kind"],
                "params": row["params"],
                "code_hash": row["code_hash"],
                "fingerprint": row["fingerprint"],
                "inputs": [],
            }
        for row in conn.execute(
            """SELECT e.child, e.parent FROM edges e
               JOIN run_nodes rn ON rn.node_key = e.child AND rn.run_id = ?
               ORDER BY e.child, e.position""",
            (run_id,),
        ):
            graph[row["child"]]["inputs"].append(row["parent"])
        return graph

    def diff(self, run_a: str, run_b: str) -> dict:
        """What differs between the graphs of two runs, and why.

        A run's graph is the set of nodes it recorded (``Recorder.node``,
        ``.source`` or ``.execution``) with their edges.

        **Pairing rule.** Nodes with the same lineage key in both runs are the
        same computation (``unchanged``). The others are paired, in order:

        1. by *address*: the node's label (its name, else its operator kind)
           together with the addresses of its inputs in position order,
           recursively down to the sources — i.e. "the node called ``model``
           fed by ``features`` fed by ``join`` of ``clean(orders)`` and
           ``customers``". Addresses use labels, never keys, so they survive
           parameter, code and data changes. A pair is made only when the
           address is unique in each run;
        2. then, among nodes still unpaired, by label alone when the label is
           unique among the unpaired nodes of each run (a step inserted
           upstream changes the addresses below it, not the labels).

        Whatever is left is ``only_in_a`` / ``only_in_b``.

        **Reasons** for a changed pair (several may apply, in this order):
        ``"operator changed"`` (kind differs), ``"parameters changed"``
        (canonical params differ; ``details["parameters"]`` lists the top-level
        keys that changed), ``"code changed"`` (code_hash differs), ``"source
        data changed"`` (source fingerprint differs), ``"input changed"`` (an
        input's key differs, i.e. some ancestor changed; ``details["inputs"]``
        names them). A pair with different keys and none of these gets
        ``"identity changed"`` (uncanonicalizable or unseeded-random node).
        ``root_causes`` lists the changed nodes with a reason other than
        ``"input changed"``.

        Returns ``{"run_a", "run_b", "unchanged": [keys], "changed": [...],
        "only_in_a": [node dicts], "only_in_b": [node dicts], "root_causes":
        [labels], "summary": {counts}}``; each changed entry is ``{"label",
        "key_a", "key_b", "paired_by", "reasons", "details"}``, sources first.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("fit") as a:
        ...     a.source("s1", "orders", "fp1", "content", 2, None)
        ...     a.node("m1", "estimator", "model", {"C": 1}, None, ["s1"])
        >>> with store.record_run("fit") as b:
        ...     b.source("s2", "orders", "fp2", "content", 2, None)
        ...     b.node("m2", "estimator", "model", {"C": 1}, None, ["s2"])
        >>> d = store.diff(a.run_id, b.run_id)
        >>> [(c["label"], c["reasons"]) for c in d["changed"]]
        [('orders', ['source data changed']), ('model', ['input changed'])]
        """

        def read(conn):
            ra = self._resolve_run_id(conn, run_a)
            rb = self._resolve_run_id(conn, run_b)
            return ra, rb, self._run_graph(conn, ra), self._run_graph(conn, rb)

        ra, rb, ga, gb = self._read(read)
        addr_a, depth_a = _addresses(ga)
        addr_b, depth_b = _addresses(gb)
        common = set(ga) & set(gb)
        left = set(ga) - common
        right = set(gb) - common
        pairs: list[tuple[str, str, str]] = []

        def pair_by(how: str, key_a: Callable[[str], str], key_b: Callable[[str], str]):
            groups_a: dict[str, list[str]] = {}
            groups_b: dict[str, list[str]] = {}
            for k in left:
                groups_a.setdefault(key_a(k), []).append(k)
            for k in right:
                groups_b.setdefault(key_b(k), []).append(k)
            for group, ka in groups_a.items():
                kb = groups_b.get(group, [])
                if len(ka) == 1 and len(kb) == 1:
                    pairs.append((ka[0], kb[0], how))
                    left.discard(ka[0])
                    right.discard(kb[0])

        pair_by("address", addr_a.__getitem__, addr_b.__getitem__)
        pair_by("label", lambda k: ga[k]["label"], lambda k: gb[k]["label"])

        label_of = {k: v["label"] for k, v in ga.items()}
        label_of.update({k: v["label"] for k, v in gb.items()})
        changed = []
        for ka, kb, how in pairs:
            a, b = ga[ka], gb[kb]
            reasons: list[str] = []
            details: dict[str, Any] = {}
            if a["kind"] != b["kind"]:
                reasons.append("operator changed")
                details["kind"] = [a["kind"], b["kind"]]
            if a["params"] != b["params"]:
                reasons.append("parameters changed")
                details["parameters"] = _param_diff(a["params"], b["params"])
            if a["code_hash"] != b["code_hash"]:
                reasons.append("code changed")
            if a["fingerprint"] != b["fingerprint"]:
                reasons.append("source data changed")
                details["fingerprint"] = [a["fingerprint"], b["fingerprint"]]
            if a["inputs"] != b["inputs"]:
                reasons.append("input changed")
                n = max(len(a["inputs"]), len(b["inputs"]))
                inputs = []
                for i in range(n):
                    pa = a["inputs"][i] if i < len(a["inputs"]) else None
                    pb = b["inputs"][i] if i < len(b["inputs"]) else None
                    if pa != pb:
                        inputs.append(label_of.get(pb or pa, pb or pa))
                details["inputs"] = inputs
            if not reasons:
                reasons.append("identity changed")
            changed.append(
                {
                    "label": b["label"],
                    "key_a": ka,
                    "key_b": kb,
                    "paired_by": how,
                    "reasons": reasons,
                    "details": details,
                    "_order": (depth_b[kb], b["label"], kb),
                }
            )
        changed.sort(key=lambda c: c["_order"])

        def public(node: dict, depth: int) -> dict:
            return {
                "key": node["key"],
                "label": node["label"],
                "kind": node["kind"],
                "inputs": list(node["inputs"]),
                "_order": (depth, node["label"], node["key"]),
            }

        only_a = sorted((public(ga[k], depth_a[k]) for k in left), key=_order)
        only_b = sorted((public(gb[k], depth_b[k]) for k in right), key=_order)
        for d in changed + only_a + only_b:
            del d["_order"]
        root_causes = [c["label"] for c in changed if c["reasons"] != ["input changed"]]
        return {
            "run_a": ra,
            "run_b": rb,
            "unchanged": sorted(common, key=lambda k: (depth_b[k], gb[k]["label"], k)),
            "changed": changed,
            "only_in_a": only_a,
            "only_in_b": only_b,
            "root_causes": root_causes,
            "summary": {
                "unchanged": len(common),
                "changed": len(changed),
                "only_in_a": len(only_a),
                "only_in_b": len(only_b),
            },
        }

    def is_available(self, key: str, cache: str | Path | Callable[[str], bool]) -> bool:
        """Whether the output / fitted state of ``key`` can still be loaded.

        ``cache`` is either a callable ``exists(key) -> bool`` supplied by the
        cache (which owns its layout: this is the preferred form), or the
        cache directory: then the answer is whether any file recorded as the
        ``artifact`` of an execution of ``key`` (relative paths are taken
        relative to that directory) still exists.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> store.is_available("k1", lambda key: key == "k1")
        True
        >>> store.is_available("k1", tempfile.mkdtemp())
        False
        """
        if callable(cache):
            return bool(cache(key))
        base = Path(cache)
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT DISTINCT artifact FROM executions "
                "WHERE node_key = ? AND artifact IS NOT NULL ORDER BY id DESC",
                (key,),
            ).fetchall()
        )
        for (artifact,) in rows:
            path = Path(artifact)
            if not path.is_absolute():
                path = base / path
            if path.exists():
                return True
        return False


# --------------------------------------------------------------------------------------
# Diff helpers
# --------------------------------------------------------------------------------------


def _addresses(graph: dict[str, dict]) -> tuple[dict[str, str], dict[str, int]]:
    """Label-path address and depth (longest path from a source) of every node."""
    addr: dict[str, str] = {}
    depth: dict[str, int] = {}

    def label(k: str) -> str:
        return graph[k]["label"] if k in graph else k

    for root in graph:
        stack = [(root, False)]
        on_path: set[str] = set()
        while stack:
            k, ready = stack.pop()
            if k in addr:
                continue
            inputs = graph[k]["inputs"] if k in graph else []
            if not ready:
                on_path.add(k)
                stack.append((k, True))
                stack.extend(
                    (p, False) for p in inputs if p not in addr and p not in on_path
                )
                continue
            on_path.discard(k)
            parts = [addr.get(p, p) for p in inputs]
            text = label(k) + "(" + ",".join(parts) + ")"
            addr[k] = hashlib.sha1(text.encode()).hexdigest()
            depth[k] = 1 + max((depth.get(p, 0) for p in inputs), default=-1)
    return addr, depth


def _order(entry: dict) -> tuple:
    return entry["_order"]


def _param_diff(a_text: str | None, b_text: str | None) -> dict:
    a, b = _from_json(a_text), _from_json(b_text)
    if isinstance(a, dict) and isinstance(b, dict):
        return {
            "changed": {
                k: [a[k], b[k]] for k in sorted(set(a) & set(b)) if a[k] != b[k]
            },
            "added": sorted(set(b) - set(a)),
            "removed": sorted(set(a) - set(b)),
        }
    return {"before": a, "after": b}


# --------------------------------------------------------------------------------------
# Heartbeat thread
# --------------------------------------------------------------------------------------


def _heartbeat_loop(
    store_ref: weakref.ref, stop: threading.Event, interval: float
) -> None:
    store = None
    try:
        while not stop.wait(interval):
            store = store_ref()
            if store is None:
                return
            try:
                store._beat()
            except (LineageError, sqlite3.Error):
                pass  # try again next tick; never kill the user's process
            if store._heartbeat_idle():
                return
            store = None
    finally:
        store = store_ref()
        if store is not None:
            with store._hb_lock:
                if store._hb_thread is threading.current_thread():
                    store._hb_thread = None
            try:
                store._release_thread_conn()
            except sqlite3.Error:
                pass


# --------------------------------------------------------------------------------------
# Recorder
# --------------------------------------------------------------------------------------


class Recorder:
    """Batches the lineage writes of one run.

    Records are buffered and written in one transaction (``executemany``) when
    ``batch_size`` records are pending, when ``flush_interval`` seconds have
    passed since the last flush (checked on each record, and by the store's
    heartbeat thread), on :meth:`flush`, and on leaving the ``with`` block. A
    process killed between flushes loses only its pending records; the file
    stays consistent. All methods are thread-safe.

    Methods: ``node(key, kind, label, params, code_hash, inputs)``,
    ``source(key, name, fingerprint, how, rows, schema)``,
    ``execution(node_key, mode, fold, duration, rows, cols, nbytes,
    cache_status, artifact=None, sha256=None, started_at=None)``, ``flush()``,
    ``close()``.

    >>> import tempfile, os
    >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
    >>> run_id = store.start_run("evaluate")
    >>> rec = store.recorder(run_id, batch_size=2)
    >>> rec.node("k1", "var", "x", None, None, [])
    >>> rec.pending
    1
    >>> rec.execution("k1", "transform", None, 0.0, 1, 1, 8, None)
    >>> rec.pending  # the batch was full: flushed
    0
    >>> rec.close()
    """

    def __init__(
        self,
        store: LineageStore,
        run_id: str,
        *,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Got {batch_size}.")
        self.store = store
        self.run_id = run_id
        self.batch_size = int(batch_size)
        self.flush_interval = float(flush_interval)
        self._lock = threading.RLock()
        self._nodes: list[tuple] = []
        self._edges: list[tuple] = []
        self._sources: list[tuple] = []
        self._source_nodes: list[tuple] = []
        self._members: list[tuple] = []
        self._executions: list[tuple] = []
        self._in_run: set[str] = set()  # node keys already attached to this run
        self._sources_seen: set[str] = set()
        self._pending = 0
        self._last_flush = time.monotonic()
        self.closed = False
        self.n_written = 0

    @property
    def pending(self) -> int:
        """Records buffered and not yet written."""
        return self._pending

    def _check_open(self) -> None:
        if self.closed:
            raise LineageError(f"the recorder of run {self.run_id!r} is closed")

    def _added(self) -> None:
        self._pending += 1
        if (
            self._pending >= self.batch_size
            or time.monotonic() - self._last_flush >= self.flush_interval
        ):
            self.flush()

    def node(
        self,
        key: str,
        kind: str,
        label: str | None,
        params: Any,
        code_hash: str | None,
        inputs: Sequence[str],
    ) -> None:
        """Record a plan node: its key, operator kind, label, canonical params
        (a JSON-able value or already-canonical text), code hash and the keys
        of its inputs (in position order). Recording a key twice in a run is a
        no-op.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("fit") as rec:
        ...     rec.node("k2", "apply", "scale", {"with_mean": True}, "c0de", ["k1"])
        >>> store.node("k2")["inputs"]
        ['k1']
        """
        with self._lock:
            self._check_open()
            if key in self._in_run:
                return
            self._in_run.add(key)
            self._nodes.append(
                (key, kind, label, _to_json(params), code_hash, time.time())
            )
            self._edges.extend((key, parent, i) for i, parent in enumerate(inputs))
            self._members.append((self.run_id, key, label))
            self._added()

    def source(
        self,
        key: str,
        name: str | None,
        fingerprint: str,
        how: str | None,
        rows: int | None,
        schema: Any,
    ) -> None:
        """Record a source: its key, name, data fingerprint, how it was
        fingerprinted (``content`` hash, ``path+size+mtime``, ...), row count
        and schema (JSON-able, e.g. ``{"col": "dtype"}``). Also records a node
        of kind ``source`` labelled ``name`` unless :meth:`node` gives one.
        Recording a source twice in a run is a no-op.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("fit") as rec:
        ...     rec.source("s1", "orders", "xxh:ab12", "content", 100, {"id": "int64"})
        >>> store.node("s1")["source"]["rows"]
        100
        """
        with self._lock:
            self._check_open()
            if key in self._sources_seen:
                return
            self._sources_seen.add(key)
            self._sources.append((key, name, fingerprint, how, rows, _to_json(schema)))
            self._source_nodes.append((key, name, time.time()))
            if key not in self._in_run:
                self._in_run.add(key)
                self._members.append((self.run_id, key, name))
            self._added()

    def execution(
        self,
        node_key: str,
        mode: str | None,
        fold: int | None,
        duration: float | None,
        rows: int | None,
        cols: int | None,
        nbytes: int | None,
        cache_status: str | None,
        artifact: str | None = None,
        sha256: str | None = None,
        *,
        started_at: float | None = None,
    ) -> None:
        """Record one execution of a node in this run: mode (``fit_transform``,
        ``transform``, ``predict``...), fold (None outside a search), duration
        in seconds, output shape and size, cache status (``hit``, ``miss``,
        ``stored``, ``spilled`` or None without a cache), and where the output
        was stored (``artifact``, with its ``sha256``). ``started_at`` defaults
        to now minus ``duration``.

        >>> import tempfile, os
        >>> store = LineageStore(os.path.join(tempfile.mkdtemp(), "l.db"))
        >>> with store.record_run("fit") as rec:
        ...     rec.execution("k1", "fit_transform", 0, 0.2, 10, 3, 240, "miss")
        >>> store.run(rec.run_id)["cache"]
        {'miss': 1}
        """
        if cache_status is not None and cache_status not in CACHE_STATUSES:
            raise ValueError(
                f"cache_status must be one of {CACHE_STATUSES} or None. "
                f"Got {cache_status!r} instead."
            )
        now = time.time()
        if started_at is None:
            started_at = now - (duration or 0.0)
        with self._lock:
            self._check_open()
            self._executions.append(
                (
                    self.run_id,
                    node_key,
                    mode,
                    fold,
                    started_at,
                    duration,
                    rows,
                    cols,
                    nbytes,
                    cache_status,
                    artifact,
                    sha256,
                )
            )
            if node_key not in self._in_run:
                self._in_run.add(node_key)
                self._members.append((self.run_id, node_key, None))
            self._added()

    def _flush_if_due(self) -> None:
        if self._pending and time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write every pending record in one transaction.

        On failure the records stay pending (nothing is lost or written twice)
        and the error is raised.
        """
        with self._lock:
            if not self._pending:
                self._last_flush = time.monotonic()
                return
            nodes, source_nodes = self._nodes, self._source_nodes
            edges, sources = self._edges, self._sources
            members, executions = self._members, self._executions
            now = time.time()
            run_id = self.run_id

            def write(conn: sqlite3.Connection) -> None:
                if source_nodes:
                    conn.executemany(
                        "INSERT OR IGNORE INTO nodes (key, kind, label, created_at) "
                        "VALUES (?, 'source', ?, ?)",
                        source_nodes,
                    )
                    conn.executemany(
                        "INSERT OR REPLACE INTO sources "
                        "(key, name, fingerprint, how, rows, schema) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        sources,
                    )
                if nodes:
                    conn.executemany(
                        "INSERT INTO nodes (key, kind, label, params, code_hash, "
                        "created_at) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, "
                        "label = COALESCE(excluded.label, nodes.label), "
                        "params = excluded.params, code_hash = excluded.code_hash",
                        nodes,
                    )
                if edges:
                    conn.executemany(
                        "INSERT OR IGNORE INTO edges (child, parent, position) "
                        "VALUES (?, ?, ?)",
                        edges,
                    )
                if members:
                    conn.executemany(
                        "INSERT INTO run_nodes (run_id, node_key, label) "
                        "VALUES (?, ?, ?) ON CONFLICT (run_id, node_key) "
                        "DO UPDATE SET label = COALESCE(run_nodes.label, "
                        "excluded.label)",
                        members,
                    )
                if executions:
                    conn.executemany(
                        "INSERT INTO executions (run_id, node_key, mode, fold, "
                        "started_at, duration, rows, cols, nbytes, cache_status, "
                        "artifact, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        executions,
                    )
                conn.execute(
                    "UPDATE runs SET heartbeat = ? WHERE id = ? AND status = 'running'",
                    (now, run_id),
                )

            self.store._write(write)
            self.n_written += self._pending
            self._nodes, self._source_nodes, self._edges = [], [], []
            self._sources, self._members, self._executions = [], [], []
            self._pending = 0
            self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and refuse further records."""
        with self._lock:
            if not self.closed:
                self.flush()
                self.closed = True
        self.store._recorders.discard(self)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _RunContext:
    """What :meth:`LineageStore.record_run` returns."""

    def __init__(self, store, kind, script, config, recorder_options):
        self._store = store
        self._args = (kind, script, config)
        self._options = recorder_options
        self.recorder: Recorder | None = None

    def __enter__(self) -> Recorder:
        kind, script, config = self._args
        run_id = self._store.start_run(kind, script=script, config=config)
        try:
            self.recorder = self._store.recorder(run_id, **self._options)
        except BaseException:
            self._store.end_run(run_id, "failed")
            raise
        return self.recorder

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.recorder is not None
        try:
            self.recorder.close()
        finally:
            self._store.end_run(
                self.recorder.run_id, "finished" if exc_type is None else "failed"
            )
