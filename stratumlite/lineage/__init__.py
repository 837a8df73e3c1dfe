"""Lineage: the SQLite lineage store and the model registry built on it.

>>> import tempfile
>>> from stratumlite.config import Config
>>> from stratumlite.lineage import LineageStore, ModelRegistry
>>> cfg = Config(state_dir=tempfile.mkdtemp())
>>> store = LineageStore.from_config(cfg)
>>> registry = ModelRegistry(store, cfg.artifacts_dir)
"""

from stratumlite.errors import LineageError
from stratumlite.lineage.registry import ArtifactIntegrityError, ModelRegistry
from stratumlite.lineage.store import (
    CACHE_STATUSES,
    SCHEMA_VERSION,
    LineageStore,
    Recorder,
)

__all__ = [
    "CACHE_STATUSES",
    "SCHEMA_VERSION",
    "ArtifactIntegrityError",
    "LineageError",
    "LineageStore",
    "ModelRegistry",
    "Recorder",
]
