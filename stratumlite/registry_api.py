"""Model registry, top-level API: ``register``, ``load_model``, ``set_alias``,
``list_models``.

A registered model is a fitted :class:`~stratumlite.Learner` stored as a
content-addressed file under ``Config.artifacts_dir`` and a row of the lineage
store at ``Config.lineage_db`` (see :mod:`stratumlite.lineage.registry`). Its
lineage key identifies the fit (ARCHITECTURE.md, "fitted state identity")::

    lineage_key("fitted", "", [plan output key, key of the data it was fitted on])

When the fit was recorded in the lineage store by this process (``Config(
lineage=True)``), the registration links that run, and records the model as a
node of kind ``fitted`` (labelled with the model's name) whose input is the
plan's output, so ``stratumlite lineage <model key>`` walks down to the data.

>>> import tempfile, skrub, stratumlite
>>> from sklearn.linear_model import Ridge
>>> import numpy as np
>>> from stratumlite.config import Config
>>> from stratumlite.registry_api import register, load_model, list_models
>>> cfg = Config(state_dir=tempfile.mkdtemp(), lineage=True, executor="sequential")
>>> X, y = skrub.X(np.arange(8.0).reshape(4, 2)), skrub.y(np.arange(4.0))
>>> learner = stratumlite.make_learner(X.skb.apply(Ridge(), y=y), config=cfg)
>>> learner = learner.fit({"X": np.arange(8.0).reshape(4, 2), "y": np.arange(4.0)})
>>> register(learner, "ridge", metrics={"r2": 1.0}, alias="prod", config=cfg)
1
>>> loaded = load_model("ridge", alias="prod", config=cfg)
>>> loaded.predict({"X": np.ones((1, 2))}).round(3).tolist() == learner.predict(
...     {"X": np.ones((1, 2))}).round(3).tolist()
True
>>> [(m["name"], m["latest_version"], m["aliases"]) for m in list_models(config=cfg)]
[('ridge', 1, {'prod': 1})]
"""

from __future__ import annotations

from typing import Any

from .config import Config
from .errors import NotFittedError

__all__ = ["fitted_key", "list_models", "load_model", "register", "set_alias"]


def _config(config: Config | None) -> Config:
    return config if config is not None else Config.from_env()


def _registry(config: Config):
    from .lineage.registry import ModelRegistry
    from .lineage.store import LineageStore

    store = LineageStore(config.lineage_db)
    return ModelRegistry(store, config.artifacts_dir)


def fitted_key(learner) -> str:
    """The lineage key of a fitted learner's state (plan output key + fit data key).

    Raises :class:`~stratumlite.errors.NotFittedError` for an unfitted learner.
    """
    from .plan import lineage_key

    if not getattr(learner, "_is_fitted", False):
        raise NotFittedError(
            "Only a fitted learner can be registered: call fit(environment) first.")
    plan_key = learner.plan.output.key
    fit_key = getattr(learner, "fit_key_", None) or ""
    return lineage_key("fitted", "", [plan_key, fit_key])


def register(learner, name: str, *, metrics: dict | None = None, alias: str | None = None,
             tags: dict | None = None, config: Config | None = None) -> int:
    """Register a fitted learner as the next version of model ``name``.

    Parameters
    ----------
    learner : stratumlite.Learner
        A fitted learner (``make_learner(...).fit(env)``, a search's
        ``best_learner_``).
    name : str
        The model's name.
    metrics, tags : dict or None
        JSON-able values stored with the version.
    alias : str or None
        Point this alias (``"production"``...) at the new version.
    config : Config or None
        Where the registry lives (default ``Config.from_env()``).

    Returns the new version number (1, 2, ...).
    """
    from .learner import Learner

    if not isinstance(learner, Learner):
        raise TypeError(
            f"register() takes a stratumlite Learner. Got {type(learner).__name__} "
            "instead.")
    key = fitted_key(learner)
    config = _config(config)
    registry = _registry(config)
    try:
        run_id = None
        fit_key = getattr(learner, "fit_key_", None)
        if fit_key:
            from .lineage.recording import fitted_run

            found = fitted_run(learner.plan.output.key, fit_key, config.lineage_db)
            if found is not None:
                run_id, output_key = found
                _record_fitted_node(registry.store, run_id, key, name, learner,
                                    output_key)
        return registry.register(learner, name, lineage_key=key, run_id=run_id,
                                 metrics=metrics, alias=alias, tags=tags)
    finally:
        registry.store.close()


def _record_fitted_node(store, run_id: str, key: str, name: str, learner,
                        output_key: str) -> None:
    from .errors import LineageError

    try:
        with store.recorder(run_id) as rec:
            rec.node(key, "fitted", name,
                     {"plan": learner.plan.output.key, "fit": learner.fit_key_}, None,
                     [output_key])
    except LineageError:  # the run vanished (state directory reset): no link
        pass


def load_model(name: str, version: int | None = None, alias: str | None = None,
               config: Config | None = None):
    """Load a registered learner: ``version``, ``alias``, or the latest version.

    The file's sha256 is checked before unpickling
    (:class:`~stratumlite.lineage.ArtifactIntegrityError` otherwise).
    """
    config = _config(config)
    registry = _registry(config)
    try:
        return registry.load(name, version=version, alias=alias)
    finally:
        registry.store.close()


def set_alias(name: str, alias: str, version: int, config: Config | None = None
              ) -> int | None:
    """Point ``alias`` of model ``name`` at ``version``; returns the version it
    pointed at before (None if the alias is new)."""
    config = _config(config)
    registry = _registry(config)
    try:
        return registry.set_alias(name, alias, version)
    finally:
        registry.store.close()


def list_models(config: Config | None = None) -> list[dict[str, Any]]:
    """One dict per model: ``name, latest_version, n_versions, aliases,
    created_at, updated_at``."""
    config = _config(config)
    registry = _registry(config)
    try:
        return registry.list_models()
    finally:
        registry.store.close()

