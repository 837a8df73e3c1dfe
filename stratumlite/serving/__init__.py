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

from .models import ModelRef, UnknownModel
from .predictor import Predictor
from .server import ServerHandle, ServingSettings, create_app, serve, start_server

__all__ = [
    "ModelRef",
    "Predictor",
    "ServerHandle",
    "ServingSettings",
    "UnknownModel",
    "create_app",
    "serve",
    "start_server",
]
