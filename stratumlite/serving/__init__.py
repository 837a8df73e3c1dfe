"""Serving: registered learners answer predictions over HTTP.

``serve("churn@production")`` (or ``stratumlite serve churn@production``)
starts a Starlette + uvicorn server in front of a fitted
:class:`~stratumlite.Learner` from the model registry. Predictions run the
learner's plan in predict mode through stratumlite's runtime, with dynamic
batching (:mod:`.batching`), a per-row prediction cache (:mod:`.cache`),
Prometheus metrics (:mod:`.metrics`) and hot swap when an alias moves
(:mod:`.models`). See :mod:`.server` for the endpoints and status codes.

Modules: ``server`` (app, ``serve``, ``ServingSettings``), ``batching``
(queue, batcher, AIMD batch size), ``cache``, ``metrics``, ``inputs``
(request validation against the fit-time schema, frames, JSON outputs),
``predictor`` (persistent-session predict path), ``models`` (references,
loading, hot swap), ``cli`` (the ``serve`` command).
"""

from __future__ import annotations

import importlib

# exports are imported on first use, so ``stratumlite.serving.cli`` (mounted on
# the ``stratumlite`` command line) does not import starlette, uvicorn or the
# runtime until the ``serve`` command runs
_EXPORTS = {
    "ModelRef": ".models",
    "UnknownModel": ".models",
    "Predictor": ".predictor",
    "ServerHandle": ".server",
    "ServingSettings": ".server",
    "create_app": ".server",
    "serve": ".server",
    "start_server": ".server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
