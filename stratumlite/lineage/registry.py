"""Model registry: named, versioned fitted objects in content-addressed files.

A registered model is a row of the lineage store's ``models`` table (name,
version, lineage key of the fit, run, sha256, metrics, tags) plus a file in the
artifacts directory (``Config.artifacts_dir``) named by the sha256 of its
cloudpickle bytes: ``artifacts/ab/abcdef....pkl``. Identical objects share one
file. Aliases (``production``, ``staging``, ...) point at versions and move.

Writing is crash-safe: the bytes go to a temporary file in the same directory,
are fsynced, then ``os.replace``-d into place (atomic), and the directory is
fsynced, all before the row is committed. Version numbers are allocated inside
a ``BEGIN IMMEDIATE`` transaction, so concurrent registrations from several
processes get distinct, consecutive versions.

Loading verifies the sha256 of the bytes *before* unpickling: a tampered or
truncated file raises :class:`ArtifactIntegrityError` and nothing is
unpickled. (This protects against corruption or tampering of the artifact
files; whoever can rewrite both the database and the files can make you load
anything, as with any pickle-based store.)

>>> import tempfile, os
>>> from stratumlite.lineage.store import LineageStore
>>> state = tempfile.mkdtemp()
>>> registry = ModelRegistry(LineageStore(os.path.join(state, "lineage.db")),
...                          os.path.join(state, "artifacts"))
>>> registry.register({"coef": [1, 2]}, "churn", lineage_key="k1", alias="prod")
1
>>> registry.register({"coef": [3, 4]}, "churn", lineage_key="k2")
2
>>> registry.load("churn", alias="prod")
{'coef': [1, 2]}
>>> registry.load("churn")  # latest
{'coef': [3, 4]}
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudpickle

from stratumlite.errors import LineageError, StratumliteError
from stratumlite.lineage.store import LineageStore, _from_json, _to_json

__all__ = ["ArtifactIntegrityError", "ModelRegistry"]


class ArtifactIntegrityError(StratumliteError):
    """A registered artifact is missing, truncated or does not match its sha256.

    Raised before anything is unpickled. ``name``, ``version`` and ``path``
    identify the artifact.
    """

    def __init__(self, message: str, *, name: str, version: int, path: Path):
        super().__init__(message)
        self.name = name
        self.version = version
        self.path = path


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a {what} must be a non-empty str. Got {value!r} instead.")
    return value


class ModelRegistry:
    """Named, versioned models stored by the lineage store + an artifacts dir.

    Parameters
    ----------
    store : LineageStore
        Holds the ``models`` / ``aliases`` / ``artifacts`` tables.
    artifacts_dir : str or Path
        Content-addressed files (``Config.artifacts_dir``); created on demand.

    >>> import tempfile, os
    >>> from stratumlite.config import Config
    >>> registry = ModelRegistry.from_config(Config(state_dir=tempfile.mkdtemp()))
    >>> registry.artifacts_dir.name
    'artifacts'
    """

    def __init__(self, store: LineageStore, artifacts_dir: str | Path):
        self.store = store
        self.artifacts_dir = Path(artifacts_dir)

    @classmethod
    def from_config(cls, config) -> ModelRegistry:
        """The registry of a :class:`~stratumlite.config.Config`'s state directory."""
        return cls(LineageStore(config.lineage_db), config.artifacts_dir)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.store.path)!r}, {str(self.artifacts_dir)!r})"

    # ---------------------------------------------------------------- files

    @staticmethod
    def _relative_path(sha256: str) -> str:
        return f"{sha256[:2]}/{sha256}.pkl"

    def artifact_path(self, sha256: str) -> Path:
        """Where the artifact with this sha256 lives.

        >>> ModelRegistry(None, "/state/artifacts").artifact_path("abcd").as_posix()
        '/state/artifacts/ab/abcd.pkl'
        """
        return self.artifacts_dir / self._relative_path(sha256)

    def _write_artifact(self, data: bytes, sha256: str) -> Path:
        path = self.artifact_path(sha256)
        try:
            if path.stat().st_size == len(data) and _sha256_file(path) == sha256:
                return path  # already stored (same content, same name)
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{sha256[:12]}-", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(path.parent)
        return path

    # ---------------------------------------------------------------- writing

    def register(
        self,
        obj: Any,
        name: str,
        *,
        lineage_key: str,
        run_id: str | None = None,
        metrics: dict | None = None,
        alias: str | None = None,
        tags: dict | None = None,
    ) -> int:
        """Store ``obj`` as the next version of model ``name``; return the version.

        ``lineage_key`` is the key of the fit that produced it (see
        ARCHITECTURE.md), ``run_id`` the run (must exist when given),
        ``metrics`` / ``tags`` JSON-able dicts, ``alias`` an alias to point at
        the new version in the same transaction.

        >>> import tempfile, os
        >>> from stratumlite.config import Config
        >>> registry = ModelRegistry.from_config(Config(state_dir=tempfile.mkdtemp()))
        >>> registry.register([1, 2, 3], "m", lineage_key="k", metrics={"auc": 0.9})
        1
        >>> registry.resolve("m")["metrics"]
        {'auc': 0.9}
        """
        _check_name("model name", name)
        _check_name("lineage key", lineage_key)
        if alias is not None:
            self._check_alias(alias)
        if run_id is not None:  # fail before writing any file
            run_id = self.store._read(
                lambda conn: self.store._resolve_run_id(conn, run_id)
            )
        data = cloudpickle.dumps(obj)
        sha256 = hashlib.sha256(data).hexdigest()
        self._write_artifact(data, sha256)
        now = time.time()
        metrics_json, tags_json = _to_json(metrics), _to_json(tags)

        def write(conn) -> int:
            version = conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name = ?",
                (name,),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO models (name, version, lineage_key, run_id, sha256, "
                "metrics, tags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    lineage_key,
                    run_id,
                    sha256,
                    metrics_json,
                    tags_json,
                    now,
                ),
            )
            conn.execute(
                "INSERT OR IGNORE INTO artifacts (sha256, path, nbytes, created_at) "
                "VALUES (?, ?, ?, ?)",
                (sha256, self._relative_path(sha256), len(data), now),
            )
            if alias is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO aliases (name, alias, version) "
                    "VALUES (?, ?, ?)",
                    (name, alias, version),
                )
            return version

        return self.store._write(write)

    @staticmethod
    def _check_alias(alias: Any) -> None:
        _check_name("alias", alias)
        if alias.isdigit():
            raise ValueError(
                f"an alias cannot be a number (it would read as a version). "
                f"Got {alias!r}."
            )

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` of model ``name`` at ``version``; return the version it
        pointed at before (None if new).

        >>> import tempfile
        >>> from stratumlite.config import Config
        >>> registry = ModelRegistry.from_config(Config(state_dir=tempfile.mkdtemp()))
        >>> registry.register("a", "m", lineage_key="k1", alias="prod")
        1
        >>> registry.register("b", "m", lineage_key="k2")
        2
        >>> registry.set_alias("m", "prod", 2)
        1
        >>> registry.load("m", alias="prod")
        'b'
        """
        self._check_alias(alias)

        def write(conn) -> int | None:
            self._version_row(conn, name, version)
            old = conn.execute(
                "SELECT version FROM aliases WHERE name = ? AND alias = ?",
                (name, alias),
            ).fetchone()
            conn.execute(
                "INSERT OR REPLACE INTO aliases (name, alias, version) "
                "VALUES (?, ?, ?)",
                (name, alias, int(version)),
            )
            return None if old is None else old[0]

        return self.store._write(write)

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove an alias; return the version it pointed at.

        >>> import tempfile
        >>> from stratumlite.config import Config
        >>> registry = ModelRegistry.from_config(Config(state_dir=tempfile.mkdtemp()))
        >>> registry.register("a", "m", lineage_key="k", alias="prod")
        1
        >>> registry.delete_alias("m", "prod")
        1
        >>> registry.resolve("m", alias="prod")
        Traceback (most recent call last):
        ...
        stratumlite.errors.LineageError: model 'm' has no alias 'prod' (aliases: none)
        """

        def write(conn) -> int:
            row = self._alias_row(conn, name, alias)
            conn.execute(
                "DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias)
            )
            return row

        return self.store._write(write)

    # ---------------------------------------------------------------- reading

    @staticmethod
    def _known_models(conn) -> list[str]:
        return [
            r[0] for r in conn.execute("SELECT DISTINCT name FROM models ORDER BY 1")
        ]

    def _versions_of(self, conn, name: str) -> list[int]:
        versions = [
            r[0]
            for r in conn.execute(
                "SELECT version FROM models WHERE name = ? ORDER BY version", (name,)
            )
        ]
        if not versions:
            known = self._known_models(conn)
            raise LineageError(
                f"unknown model {name!r} (models: "
                + (", ".join(repr(k) for k in known[:20]) or "none")
                + ")"
            )
        return versions

    def _version_row(self, conn, name: str, version: int):
        versions = self._versions_of(conn, name)
        try:
            version = int(version)
        except (TypeError, ValueError):
            raise LineageError(
                f"model {name!r} has no version {version!r} "
                f"(versions: {', '.join(map(str, versions))})"
            ) from None
        row = conn.execute(
            "SELECT * FROM models WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        if row is None:
            raise LineageError(
                f"model {name!r} has no version {version} "
                f"(versions: {', '.join(map(str, versions))})"
            )
        return row

    def _alias_row(self, conn, name: str, alias: str) -> int:
        self._versions_of(conn, name)
        row = conn.execute(
            "SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)
        ).fetchone()
        if row is None:
            aliases = [
                r[0]
                for r in conn.execute(
                    "SELECT alias FROM aliases WHERE name = ? ORDER BY 1", (name,)
                )
            ]
            raise LineageError(
                f"model {name!r} has no alias {alias!r} "
                f"(aliases: {', '.join(aliases) or 'none'})"
            )
        return row[0]

    def _aliases_by_version(self, conn, name: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for alias, version in conn.execute(
            "SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,)
        ):
            out.setdefault(version, []).append(alias)
        return out

    def _entry(self, row, aliases: dict[int, list[str]]) -> dict:
        return {
            "name": row["name"],
            "version": row["version"],
            "lineage_key": row["lineage_key"],
            "run_id": row["run_id"],
            "sha256": row["sha256"],
            "path": self.artifact_path(row["sha256"]),
            "metrics": _from_json(row["metrics"]),
            "tags": _from_json(row["tags"]),
            "created_at": row["created_at"],
            "aliases": aliases.get(row["version"], []),
        }

    def resolve(
        self, name: str, version: int | None = None, alias: str | None = None
    ) -> dict:
        """The registry entry of ``name`` at ``version``, at ``alias``, or latest.

        Returns ``{"name", "version", "lineage_key", "run_id", "sha256",
        "path", "metrics", "tags", "created_at", "aliases"}``. Raises
        ``LineageError``: "unknown model 'x'", "model 'x' has no version 3
        (versions: 1, 2)", "model 'x' has no alias 'prod' (aliases: ...)".

        >>> import tempfile
        >>> from stratumlite.config import Config
        >>> registry = ModelRegistry.from_config(Config(state_dir=tempfile.mkdtemp()))
        >>> registry.register("a", "m", lineage_key="k")
        1
        >>> registry.resolve("m", version=3)
        Traceback (most recent call last):
        ...
        stratumlite.errors.LineageError: model 'm' has no version 3 (versions: 1)
        """
        if version is not None and alias is not None:
            raise ValueError("give a version or an alias, not both")

        def read(conn) -> dict:
            if alias is not None:
                row = self._version_row(conn, name, self._alias_row(conn, name, alias))
            elif version is not None:
                row = self._version_row(conn, name, version)
            else:
                row = self._version_row(conn, name, self._versions_of(conn, name)[-1])
            return self._entry(row, self._aliases_by_version(conn, name))

        return self.store._read(read)

    def load(self, name: str, version: int | None = None, alias: str | None = None):
        """Load a registered object (latest version when neither is given).

        The file's sha256 is checked before unpickling; a missing, truncated or
        modified artifact raises :class:`ArtifactIntegrityError` naming the
        model, version and path, and nothing is unpickled.

        >>> import tempfile
        >>> from stratumlite.config import Config
        >>> registry = ModelRegistry.from_config(Config(state_dir=tempfile.mkdtemp()))
        >>> registry.register({"w": 1.5}, "m", lineage_key="k")
        1
        >>> registry.load("m", version=1)
        {'w': 1.5}
        """
        entry = self.resolve(name, version=version, alias=alias)
        path: Path = entry["path"]
        where = f"model {entry['name']!r} version {entry['version']}"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactIntegrityError(
                f"{where}: artifact {str(path)!r} is missing",
                name=entry["name"],
                version=entry["version"],
                path=path,
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry["sha256"]:
            expected_size = self.store._read(
                lambda conn: conn.execute(
                    "SELECT nbytes FROM artifacts WHERE sha256 = ?", (entry["sha256"],)
                ).fetchone()
            )
            size_note = ""
            if expected_size is not None and expected_size[0] is not None:
                if len(data) < expected_size[0]:
                    size_note = f" (truncated: {len(data)} of {expected_size[0]} bytes)"
                elif len(data) != expected_size[0]:
                    size_note = f" ({len(data)} bytes, expected {expected_size[0]})"
            raise ArtifactIntegrityError(
                f"{where}: artifact {str(path)!r} failed its integrity check"
                f"{size_note}: sha256 {actual} != recorded {entry['sha256']}; "
                "refusing to unpickle it",
                name=entry["name"],
                version=entry["version"],
                path=path,
            )
        return cloudpickle.loads(data)

    def versions(self, name: str) -> list[dict]:
        """Every version of a model (entries as :meth:`resolve`), oldest first.

        >>> import tempfile
        >>> from stratumlite.config import Config
        >>> registry = ModelRegistry.from_config(Config(state_dir=tempfile.mkdtemp()))
        >>> registry.register("a", "m", lineage_key="k1")
        1
        >>> [v["version"] for v in registry.versions("m")]
        [1]
        """

        def read(conn) -> list[dict]:
            self._versions_of(conn, name)
            aliases = self._aliases_by_version(conn, name)
            rows = conn.execute(
                "SELECT * FROM models WHERE name = ? ORDER BY version", (name,)
            ).fetchall()
            return [self._entry(row, aliases) for row in rows]

        return self.store._read(read)

    def list_models(self) -> list[dict]:
        """One dict per model: ``name, latest_version, n_versions, aliases``
        (alias -> version), ``created_at`` / ``updated_at``.

        >>> import tempfile
        >>> from stratumlite.config import Config
        >>> registry = ModelRegistry.from_config(Config(state_dir=tempfile.mkdtemp()))
        >>> registry.register("a", "m", lineage_key="k1", alias="prod")
        1
        >>> [(m["name"], m["latest_version"], m["aliases"])
        ...  for m in registry.list_models()]
        [('m', 1, {'prod': 1})]
        """

        def read(conn) -> list[dict]:
            models = conn.execute(
                "SELECT name, MAX(version) AS latest, COUNT(*) AS n, "
                "MIN(created_at) AS created, MAX(created_at) AS updated "
                "FROM models GROUP BY name ORDER BY name"
            ).fetchall()
            aliases: dict[str, dict[str, int]] = {}
            for name, alias, version in conn.execute(
                "SELECT name, alias, version FROM aliases ORDER BY name, alias"
            ):
                aliases.setdefault(name, {})[alias] = version
            return [
                {
                    "name": m["name"],
                    "latest_version": m["latest"],
                    "n_versions": m["n"],
                    "aliases": aliases.get(m["name"], {}),
                    "created_at": m["created"],
                    "updated_at": m["updated"],
                }
                for m in models
            ]

        return self.store._read(read)
