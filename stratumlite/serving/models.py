"""Served models: references, loading from the registry, hot swap.

* :class:`ModelRef` parses ``NAME`` (latest version), ``NAME@ALIAS`` and
  ``NAME:VERSION``.
* :class:`LoadedModel` is one registered version ready to serve: the
  unpickled learner (the registry verifies the artifact's sha256 before
  unpickling), its :class:`~stratumlite.serving.inputs.InputSchema`, its
  :class:`~stratumlite.serving.predictor.Predictor` (persistent runtime
  session) and its *model key*, the artifact's sha256, which keys the
  prediction cache.
* :class:`ModelRoute` is one served name: the version its reference resolves
  to (``current``), its batcher, and versions pinned by requests
  (``"version"``/``"alias"`` in the body), loaded on demand and kept in a
  small LRU.

Hot swap: a route whose reference can move (an alias, or "latest") polls the
registry every ``poll_interval_ms`` (one indexed SQLite read, in a thread).
When the reference resolves to another version, that version is loaded
(and its sha256 verified) off the event loop, then ``route.current`` is replaced by one
assignment. Batches already running keep the model object they started with;
batches formed afterwards use the new one; nothing is dropped or failed. The
old version stays loaded while requests validated against it may still be
queued (it is garbage-collected afterwards).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..errors import LineageError
from .inputs import InputSchema
from .predictor import Predictor

__all__ = ["LoadedModel", "ModelRef", "ModelRoute", "UnknownModel", "load_version"]

log = logging.getLogger("stratumlite.serving")

_VERSION_RE = re.compile(r"^(?P<name>.+):(?P<version>\d+)$")


class UnknownModel(LookupError):
    """No such model, version or alias in the registry (HTTP 404)."""


@dataclass(frozen=True)
class ModelRef:
    """A reference to a registered model: latest, ``@alias`` or ``:version``.

    >>> ModelRef.parse("churn@production")
    ModelRef(name='churn', version=None, alias='production')
    >>> ModelRef.parse("churn:3"), str(ModelRef.parse("churn:3"))
    (ModelRef(name='churn', version=3, alias=None), 'churn:3')
    >>> ModelRef.parse("churn").follows_changes
    True
    """

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str | ModelRef) -> ModelRef:
        if isinstance(text, ModelRef):
            return text
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"a model reference must be NAME, NAME@ALIAS or "
                             f"NAME:VERSION. Got {text!r} instead.")
        text = text.strip()
        if "@" in text:
            name, alias = text.rsplit("@", 1)
            if not name or not alias:
                raise ValueError(f"bad model reference {text!r}: expected NAME@ALIAS")
            return cls(name, alias=alias)
        match = _VERSION_RE.match(text)
        if match:
            return cls(match["name"], version=int(match["version"]))
        return cls(text)

    @property
    def follows_changes(self) -> bool:
        """Whether the version it resolves to can change (alias or latest)."""
        return self.version is None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return self.name


class LoadedModel:
    """One registered version, ready to serve (see the module docstring)."""

    def __init__(self, entry: dict, learner, config=None, executor: str = "sequential"):
        self.entry = entry
        self.name: str = entry["name"]
        self.version: int = entry["version"]
        self.model_key: str = entry["sha256"]
        self.learner = learner
        self.predictor = Predictor(learner, config, executor=executor)
        self.methods = self.predictor.methods
        self.schema = InputSchema.from_learner(learner)
        try:
            classes = learner.classes_
            self.classes = [c.item() if hasattr(c, "item") else c for c in classes]
        except AttributeError:
            self.classes = None

    def __repr__(self) -> str:
        return f"<LoadedModel {self.name}:{self.version} {self.model_key[:12]}>"

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.model_key,
            "lineage_key": self.entry.get("lineage_key"),
            "aliases": list(self.entry.get("aliases") or []),
            "methods": self.methods,
            "input": self.schema.describe(),
            "classes": self.classes,
        }


def resolve(registry, ref: ModelRef) -> dict:
    """The registry entry ``ref`` points at (:class:`UnknownModel` if none)."""
    try:
        return registry.resolve(ref.name, version=ref.version, alias=ref.alias)
    except LineageError as exc:
        raise UnknownModel(str(exc)) from None


def load_version(registry, entry: dict, config=None, executor: str = "sequential"
                 ) -> LoadedModel:
    """Load (sha256-verified) and wrap a registry entry; blocking."""
    from ..learner import Learner

    learner = registry.load(entry["name"], version=entry["version"])
    if not isinstance(learner, Learner):
        raise TypeError(f"model {entry['name']!r} version {entry['version']} is a "
                        f"{type(learner).__name__}, not a stratumlite Learner")
    if learner.config is None and config is not None:
        learner.config = config  # what learner.predict runs with (batching off)
    return LoadedModel(entry, learner, config, executor)


class ModelRoute:
    """One served model name (see the module docstring)."""

    def __init__(self, ref: ModelRef, current: LoadedModel, registry, config, settings,
                 metrics):
        self.ref = ref
        self.name = ref.name
        self.current = current
        self.registry = registry
        self.config = config
        self.settings = settings
        self.metrics = metrics
        self.batcher = None  # set by the server (needs the running loop)
        self.pinned: OrderedDict[int, tuple[LoadedModel, Any]] = OrderedDict()
        self._loading: dict[int, asyncio.Future] = {}
        self._resolved: dict[tuple, tuple[float, dict]] = {}
        self._poller: asyncio.Task | None = None
        self.metrics.model_version.set(current.version, model=self.name)

    def target_for(self, pending) -> LoadedModel:
        """The model a queued request runs on when its batch forms."""
        current = self.current
        if pending.model is current:
            return current
        if not pending.pinned and pending.model.schema == current.schema and \
                pending.method in current.methods:
            return current
        return pending.model

    # ------------------------------------------------------------- hot swap
    def start_polling(self) -> None:
        interval = self.settings.poll_interval_ms
        if self.ref.follows_changes and interval > 0:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(interval / 1000.0), name=f"poll-{self.name}")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
        batchers = [self.batcher] + [b for _, b in self.pinned.values()]
        for b in batchers:
            if b is not None:
                await b.close()

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep serving the current one
                log.warning("model %s: registry poll failed: %s", self.ref, exc)

    async def refresh(self) -> bool:
        """Re-resolve the reference; swap to the version it now points at.
        Returns whether a swap happened."""
        entry = await asyncio.to_thread(resolve, self.registry, self.ref)
        current = self.current
        if entry["version"] == current.version and entry["sha256"] == current.model_key:
            return False
        new = await asyncio.to_thread(load_version, self.registry, entry, self.config,
                                      self.settings.executor)
        self.current = new  # one assignment: batches formed from now on use it
        self.metrics.model_version.set(new.version, model=self.name)
        self.metrics.swaps.inc(model=self.name)
        log.info("model %s: now serving version %s (was %s)", self.ref, new.version,
                 current.version)
        return True

    # ------------------------------------------------------------- pinned versions
    async def resolve_request(self, version: Any, alias: Any) -> dict:
        """The registry entry of a request's ``version``/``alias`` (cached for a
        poll interval); :class:`UnknownModel` when there is none."""
        loop = asyncio.get_running_loop()
        key = (version, alias)
        hit = self._resolved.get(key)
        ttl = max(self.settings.poll_interval_ms, 100) / 1000.0
        if hit is not None and loop.time() - hit[0] < ttl:
            return hit[1]
        ref = ModelRef(self.name, version=version, alias=alias)
        entry = await asyncio.to_thread(resolve, self.registry, ref)
        if len(self._resolved) > 256:
            self._resolved.clear()
        self._resolved[key] = (loop.time(), entry)
        return entry

    async def pinned_model(self, entry: dict, make_batcher) -> tuple[LoadedModel, Any]:
        """The loaded model + batcher of a version requested explicitly."""
        version = entry["version"]
        if version in self.pinned:
            self.pinned.move_to_end(version)
            return self.pinned[version]
        if version in self._loading:
            return await asyncio.shield(self._loading[version])
        fut = asyncio.get_running_loop().create_future()
        self._loading[version] = fut
        try:
            model = await asyncio.to_thread(load_version, self.registry, entry, self.config,
                                            self.settings.executor)
            batcher = make_batcher(f"{self.name}:{version}", lambda pending, m=model: m)
            self.pinned[version] = (model, batcher)
            fut.set_result((model, batcher))
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            del self._loading[version]
        while len(self.pinned) > self.settings.max_loaded_versions:
            _, (_, old_batcher) = self.pinned.popitem(last=False)
            asyncio.get_running_loop().create_task(old_batcher.close())
        return self.pinned[version] if version in self.pinned else (model, batcher)
