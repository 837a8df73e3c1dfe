"""Configuration: one explicit pydantic object, passed down.

Environment variables are read in exactly one place, :func:`Config.from_env`.
Nothing in stratumlite reads ``os.environ`` elsewhere, and there are no module
level mutable flags: code that needs a setting receives the ``Config``.

>>> from stratumlite.config import Config
>>> cfg = Config(state_dir="/tmp/sl-state", executor="threads")
>>> cfg.cache_dir.name
'cache'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(value: int | str | None) -> int | None:
    """Parse a byte size such as ``2GB`` or ``512MiB`` (``None`` means no limit).

    >>> parse_size("2GB")
    2000000000
    >>> parse_size(1024)
    1024
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"a size must be positive. Got {value} instead.")
        return value
    if isinstance(value, str):
        text = value.strip().upper().replace(" ", "")
        number = text.rstrip("KMGTIB")
        unit = text[len(number):]
        try:
            amount = float(number)
        except ValueError:
            amount = -1.0
        if unit in _SIZE_UNITS and amount > 0:
            return int(amount * _SIZE_UNITS[unit])
    raise ValueError(
        "a size must be a positive int or a size string like '2GB'. "
        f"Got {value!r} instead."
    )


class Config(BaseModel):
    """Settings for stratumlite (executor, memory, cache, lineage, state directory).

    Parameters
    ----------
    state_dir : path
        Where stratumlite keeps everything between runs: ``lineage.db``,
        ``cache/`` and ``artifacts/``. Default ``./.stratumlite``.
    executor : {"sequential", "threads", "processes", "dask"}
        How the runtime runs independent nodes.
    n_workers : int or None
        Number of concurrent workers (default: the number of cores).
    memory_budget : int, str or None
        Bytes the runtime may hold in memory (``"2GB"``): the operator memo
        takes at most a quarter of it, the buffer pool the rest, spilling to disk
        beyond it (see ``memory_split``).
    cache : bool
        Persistent, lineage-keyed cache of node outputs and fitted state.
    cache_max_bytes : int, str or None
        Size cap of the persistent cache.
    lineage : bool
        Record every executed node in the lineage store.
    operator_selection : bool
        Let the optimizer swap in faster, equivalent physical operators.
    operator_memo_bytes : int, str or None
        Memory for results reused *inside* operators (a column transformer fitted
        on the same column by two vectorizers, see ``frontend/column_memo.py``);
        0 or None turns it off. Default 256 MB; with a ``memory_budget``, at
        most a quarter of the budget. With ``executor="processes"`` each worker
        process keeps its own memo with an equal share of it.
    dask_address : str or None
        Address of a running Dask scheduler (executor="dask"); when None a
        LocalCluster is started.
    verbose : int
        0: silent; 1: progress bars on a terminal.

    >>> Config(memory_budget="1GB").memory_budget
    1000000000
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_dir: Path = Field(default_factory=lambda: Path(".stratumlite"))
    executor: Literal["sequential", "threads", "processes", "dask"] = "threads"
    n_workers: int | None = None
    memory_budget: int | None = None
    cache: bool = False
    cache_max_bytes: int | None = None
    lineage: bool = False
    operator_selection: bool = True
    operator_memo_bytes: int = 256_000_000
    dask_address: str | None = None
    verbose: int = 1

    @property
    def memory_split(self) -> tuple[int | None, int]:
        """``(buffer pool bytes, operator memo bytes)``: the memory budget shared
        between them (the memo gets at most a quarter), or no pool limit.

        >>> Config(memory_budget="100MB", operator_memo_bytes="256MB").memory_split
        (75000000, 25000000)
        >>> Config(operator_memo_bytes="10MB").memory_split
        (None, 10000000)
        """
        memo = self.operator_memo_bytes
        if self.memory_budget is None:
            return None, memo
        memo = min(memo, self.memory_budget // 4)
        return self.memory_budget - memo, memo

    @field_validator("memory_budget", "cache_max_bytes", mode="before")
    @classmethod
    def _sizes(cls, value):
        return parse_size(value)

    @field_validator("operator_memo_bytes", mode="before")
    @classmethod
    def _memo_size(cls, value):
        if value is None or value == 0 or value == "0":
            return 0  # off
        return parse_size(value)

    @field_validator("n_workers")
    @classmethod
    def _workers(cls, value):
        if value is not None and value < 1:
            raise ValueError(
                f"The 'n_workers' parameter of Config must be a positive int. "
                f"Got {value} instead."
            )
        return value

    @property
    def cache_dir(self) -> Path:
        return Path(self.state_dir) / "cache"

    @property
    def lineage_db(self) -> Path:
        return Path(self.state_dir) / "lineage.db"

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.state_dir) / "artifacts"

    @property
    def workers(self) -> int:
        return self.n_workers or (os.cpu_count() or 1)

    def replace(self, **changes) -> Config:
        """A copy with some settings changed (validated)."""
        return Config(**{**self.model_dump(), **changes})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Config:
        """The default configuration, with ``STRATUMLITE_*`` variables applied.

        This is the only place stratumlite reads environment variables:
        ``STRATUMLITE_HOME`` (state directory), ``STRATUMLITE_EXECUTOR``,
        ``STRATUMLITE_WORKERS``, ``STRATUMLITE_MEMORY_BUDGET``,
        ``STRATUMLITE_CACHE`` (0/1), ``STRATUMLITE_CACHE_MAX_BYTES``,
        ``STRATUMLITE_LINEAGE`` (0/1), ``STRATUMLITE_DASK_ADDRESS``,
        ``STRATUMLITE_OPERATOR_MEMO_BYTES``.

        >>> Config.from_env({"STRATUMLITE_HOME": "/tmp/x"}).state_dir.as_posix()
        '/tmp/x'
        """
        env = os.environ if environ is None else environ
        values: dict = {}
        mapping = {
            "STRATUMLITE_HOME": "state_dir",
            "STRATUMLITE_EXECUTOR": "executor",
            "STRATUMLITE_WORKERS": "n_workers",
            "STRATUMLITE_MEMORY_BUDGET": "memory_budget",
            "STRATUMLITE_CACHE": "cache",
            "STRATUMLITE_CACHE_MAX_BYTES": "cache_max_bytes",
            "STRATUMLITE_LINEAGE": "lineage",
            "STRATUMLITE_DASK_ADDRESS": "dask_address",
            "STRATUMLITE_OPERATOR_MEMO_BYTES": "operator_memo_bytes",
        }
        for var, field in mapping.items():
            if var in env and env[var] != "":
                values[field] = env[var]
        return cls(**{**values, **overrides})
