"""HTTP model server: registered learners behind Starlette + uvicorn.

::

    from stratumlite.serving import serve
    serve("churn@production", port=8000, max_batch_rows=256, token="s3cret")

    stratumlite serve churn@production --port 8000 --token s3cret

Endpoints (JSON in, JSON out; a bearer token, when set, guards all but
``/health``):

* ``POST /v1/models/{name}/predict`` with ``{"records": [{col: value, ...}]}``
  or ``{"columns": {col: [values...]}}``, optional ``"method"``
  (``predict`` (default), ``predict_proba``, ``decision_function``...),
  optional ``"version"`` or ``"alias"`` to pin another registered version.
  Answers ``{"model", "version", "method", "predictions": [one per row]}``
  (plus ``"classes"`` for ``predict_proba``/``decision_function``).
* ``GET /v1/models``: served models, versions, input schemas, batch state.
* ``GET /health``: liveness (``{"status": "ok"}``; 503 while draining).
* ``GET /metrics``: Prometheus text format (:mod:`.metrics`).

Request path::

    body (<= max_payload_bytes, else 413) -> json.loads (400) -> InputSchema.parse
    against the fit-time dtypes (422 naming the column) -> prediction cache
    (rows already answered by this model version) -> Batcher queue (503 +
    Retry-After when full) -> one predict per batch in the batcher's worker
    thread, through a persistent runtime session (:mod:`.predictor`) -> rows
    split back, cached, answered.

Status codes: 400 malformed JSON, 401 missing/wrong token, 404 unknown
model/version/alias, 413 payload too large, 422 invalid input, 500 predict
failed, 503 queue full (``Retry-After``) or draining.

With ``batching=False`` every request runs its own ``learner.<method>(env)``
(a new runtime session per call, as a user would call it) in a pool of
``per_request_workers`` threads: the per-request baseline the benchmark
compares against.

Only JSON is parsed from requests; the only things ever unpickled are the
registry's artifacts, whose sha256 is verified first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..config import Config, parse_size
from .batching import Batcher, BatchError, Pending, QueueFull
from .cache import MISSING, PredictionCache, row_fingerprints
from .inputs import InputError, to_json_rows
from .metrics import Metrics
from .models import LoadedModel, ModelRef, ModelRoute, UnknownModel, load_version, resolve

__all__ = ["ServerHandle", "ServingSettings", "create_app", "run_app", "serve", "start_server"]

log = logging.getLogger("stratumlite.serving")

_BIG_BODY = 256 * 1024  # bodies larger than this are parsed in a worker thread


class ServingSettings(BaseModel):
    """Settings of the model server.

    Parameters
    ----------
    batching : bool
        Dynamic batching (default). False: one ``learner.predict`` per request.
    max_batch_rows : int
        Most rows in one batch (the adaptive limit's ceiling).
    max_wait_ms : float
        How long a batch waits for more requests after its first one.
    p99_objective_ms : float
        Latency objective the adaptive batch size aims to keep p99 under.
    adaptive_batching : bool
        AIMD control of the batch size (else always ``max_batch_rows``).
    queue_capacity : int
        Requests that may wait for a batch (per model); more get 503.
    cache_enabled : bool
        LRU prediction cache keyed by (model version, method, row).
    cache_size : int
        Rows the prediction cache holds.
    max_payload_bytes : int or str
        Largest request body (``"10MB"``); larger ones get 413.
    token : str or None
        Bearer token required on every endpoint but ``/health``.
    poll_interval_ms : float
        How often a moving reference (alias, latest) is re-resolved in the
        registry for hot swap; 0 disables.
    per_request_workers : int or None
        Threads running predicts when ``batching=False`` (default: cores).
    executor : {"sequential", "threads"}
        Runtime executor of the persistent predict session.
    max_loaded_versions : int
        Versions pinned by requests kept loaded per model (LRU).
    log_level : str
        uvicorn's log level.

    >>> ServingSettings(max_payload_bytes="1MB").max_payload_bytes
    1000000
    >>> ServingSettings(token="s3cret")
    ServingSettings(..., token=SecretStr('**********'), ...)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    batching: bool = True
    max_batch_rows: int = Field(256, ge=1)
    max_wait_ms: float = Field(5.0, ge=0)
    p99_objective_ms: float = Field(50.0, gt=0)
    adaptive_batching: bool = True
    queue_capacity: int = Field(1024, ge=1)
    cache_enabled: bool = True
    cache_size: int = Field(100_000, ge=0)
    max_payload_bytes: int = 16 * 2**20
    token: SecretStr | None = None
    poll_interval_ms: float = Field(500.0, ge=0)
    per_request_workers: int | None = Field(None, ge=1)
    executor: Literal["sequential", "threads"] = "sequential"
    max_loaded_versions: int = Field(4, ge=1)
    log_level: str = "warning"

    @field_validator("max_payload_bytes", mode="before")
    @classmethod
    def _size(cls, value):
        return parse_size(value)


class HTTPError(Exception):
    def __init__(self, status: int, reason: str, detail: str, column: str | None = None,
                 headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.column = column
        self.headers = headers or {}


def _json(data: Any, status: int = 200, headers: dict | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return Response(body.encode(), status_code=status, headers=headers,
                    media_type="application/json")


def _error_response(err: HTTPError) -> Response:
    data = {"error": err.reason, "detail": err.detail}
    if err.column is not None:
        data["column"] = err.column
    return _json(data, err.status, err.headers)


# --------------------------------------------------------------------------- state
class _Server:
    """Everything the endpoints share: routes, cache, metrics, settings."""

    def __init__(self, refs: Sequence[ModelRef], config: Config, settings: ServingSettings,
                 registry=None):
        from ..lineage.registry import ModelRegistry

        self.config = config
        self.settings = settings
        self.metrics = Metrics()
        self.cache = PredictionCache(settings.cache_size if settings.cache_enabled else 0)
        self.registry = registry or ModelRegistry.from_config(config)
        self.routes: dict[str, ModelRoute] = {}
        self.draining = False
        self._direct_pool: ThreadPoolExecutor | None = None
        self._direct_waiting = 0
        for ref in refs:
            if ref.name in self.routes:
                raise ValueError(f"model {ref.name!r} is served twice")
            entry = resolve(self.registry, ref)  # UnknownModel: fail before serving
            model = load_version(self.registry, entry, config, settings.executor)
            self.routes[ref.name] = ModelRoute(ref, model, self.registry, config, settings,
                                               self.metrics)

    def make_batcher(self, label: str, target) -> Batcher:
        batcher = Batcher(label, target, self.settings, self.metrics)
        batcher.start()
        return batcher

    async def startup(self) -> None:
        for route in self.routes.values():
            route.batcher = self.make_batcher(route.name, route.target_for)
            route.start_polling()
        if not self.settings.batching:
            workers = self.settings.per_request_workers or os.cpu_count() or 1
            self._direct_pool = ThreadPoolExecutor(workers, thread_name_prefix="serve-direct")

    async def shutdown(self) -> None:
        self.draining = True
        for route in self.routes.values():
            await route.stop()
        if self._direct_pool is not None:
            self._direct_pool.shutdown(wait=True)

    # ----------------------------------------------------------- predictions
    async def pick_model(self, route: ModelRoute, payload: dict
                         ) -> tuple[LoadedModel, Batcher, bool]:
        version, alias = payload.get("version"), payload.get("alias")
        if version is None and alias is None:
            return route.current, route.batcher, False
        if version is not None and alias is not None:
            raise HTTPError(422, "invalid_body", "give 'version' or 'alias', not both")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise HTTPError(422, "invalid_body", "'version' must be an integer")
        if alias is not None and not isinstance(alias, str):
            raise HTTPError(422, "invalid_body", "'alias' must be a string")
        try:
            entry = await route.resolve_request(version, alias)
        except UnknownModel as exc:
            raise HTTPError(404, "unknown_version", str(exc)) from None
        current = route.current
        if entry["version"] == current.version and entry["sha256"] == current.model_key:
            return current, route.batcher, True
        try:
            model, batcher = await route.pinned_model(entry, self.make_batcher)
        except Exception as exc:  # noqa: BLE001 - e.g. ArtifactIntegrityError
            log.exception("loading %s version %s failed", route.name, entry["version"])
            raise HTTPError(500, "model_load_failed",
                            f"loading model {route.name!r} version {entry['version']} "
                            f"failed: {type(exc).__name__}: {exc}") from None
        return model, batcher, True

    async def answer(self, route: ModelRoute, model: LoadedModel, batcher: Batcher,
                     pinned: bool, method: str, columns: dict, n_rows: int
                     ) -> tuple[LoadedModel, list]:
        """The rows' predictions (cache + batch), and the model that made them."""
        if n_rows == 0:
            return model, []
        keys = hits = None
        missing = list(range(n_rows))
        if self.cache.enabled:
            keys = row_fingerprints(columns, model.schema.order, n_rows)
            hits = self.cache.get_many(model.model_key, method, keys)
            missing = [i for i, v in enumerate(hits) if v is MISSING]
            self.metrics.cache_hits.inc(n_rows - len(missing), model=route.name)
            self.metrics.cache_misses.inc(len(missing), model=route.name)
            if not missing:
                return model, hits
            if len(missing) < n_rows:
                columns = {c: [v[i] for i in missing] for c, v in columns.items()}
                pinned = True  # the cached rows are this version's answers
        if not self.settings.batching:
            used, rows = model, await self._direct(model, method, columns, len(missing))
        else:
            loop = asyncio.get_running_loop()
            pending = Pending(model, method, columns, len(missing), loop.create_future(),
                              pinned=pinned)
            try:
                batcher.submit(pending)
            except QueueFull as exc:
                raise HTTPError(503, "overloaded", "the prediction queue is full; retry "
                                f"in {exc.retry_after} s",
                                headers={"Retry-After": str(exc.retry_after)}) from None
            try:
                used, rows = await pending.future
            except BatchError as exc:
                raise HTTPError(500, "prediction_failed", str(exc)) from None
        if keys is not None:
            self.cache.put_many(used.model_key, method, [keys[i] for i in missing], rows)
            if len(missing) < n_rows:
                for i, row in zip(missing, rows):
                    hits[i] = row
                rows = hits
        return used, rows

    async def _direct(self, model: LoadedModel, method: str, columns: dict, n_rows: int
                      ) -> list:
        """Batching off: this request's own ``learner.<method>`` call."""
        workers = self._direct_pool._max_workers
        if self._direct_waiting >= self.settings.queue_capacity + workers:
            raise HTTPError(503, "overloaded", "the prediction queue is full; retry in 1 s",
                            headers={"Retry-After": "1"})
        self._direct_waiting += 1
        self.metrics.queue_depth.set(max(0, self._direct_waiting - workers), model=model.name)
        start = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._direct_pool, _direct_predict, model, method, columns, n_rows)
        except Exception as exc:  # noqa: BLE001
            raise HTTPError(500, "prediction_failed", f"{type(exc).__name__}: {exc}") from None
        finally:
            self._direct_waiting -= 1
            self.metrics.queue_depth.set(max(0, self._direct_waiting - workers),
                                         model=model.name)
            self.metrics.batch_rows.observe(n_rows, model=model.name)
            self.metrics.batch_seconds.observe(time.perf_counter() - start, model=model.name)


def _direct_predict(model: LoadedModel, method: str, columns: dict, n_rows: int) -> list:
    frame = model.schema.build_frame(columns)
    result = getattr(model.learner, method)({model.schema.variable: frame})
    return to_json_rows(result, n_rows)


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise HTTPError(400, "bad_request", "invalid Content-Length") from None
        if declared > limit:
            await _drain(request, declared)
            raise HTTPError(413, "payload_too_large",
                            f"the body has {declared} bytes; the limit is {limit}",
                            headers={"Connection": "close"})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await _drain(request, size)
            raise HTTPError(413, "payload_too_large",
                            f"the body is over the limit of {limit} bytes",
                            headers={"Connection": "close"})
        chunks.append(chunk)
    return b"".join(chunks)


_DRAIN_CAP = 64 * 2**20


async def _drain(request: Request, size: int) -> None:
    """Read (and drop) the rest of an oversized body before answering 413: a
    server that closes with unread bytes gets its connection reset (TCP RST)
    and the client never sees the 413. Bodies over 64 MiB are not read."""
    if size > _DRAIN_CAP:
        return
    read = 0
    try:
        async for chunk in request.stream():
            read += len(chunk)
            if read > _DRAIN_CAP:
                return
    except Exception:  # noqa: BLE001 - the stream was consumed or the client left
        return


# --------------------------------------------------------------------------- endpoints
def _endpoints(server: _Server):
    metrics = server.metrics
    settings = server.settings

    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        name = request.path_params["name"]
        route = server.routes.get(name)
        label = name if route is not None else "_unknown"
        method = "predict"
        try:
            if server.draining:
                raise HTTPError(503, "draining", "the server is shutting down",
                                headers={"Retry-After": "1"})
            if route is None:
                raise HTTPError(404, "unknown_model",
                                f"model {name!r} is not served here (served: "
                                f"{', '.join(sorted(server.routes))})")
            body = await _read_body(request, settings.max_payload_bytes)
            big = len(body) > _BIG_BODY  # parse and validate off the event loop
            try:
                payload = await asyncio.to_thread(json.loads, body) if big else \
                    json.loads(body)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise HTTPError(400, "malformed_json", f"the body is not valid JSON: {exc}"
                                ) from None
            if not isinstance(payload, dict):
                raise HTTPError(422, "invalid_body", "the body must be a JSON object with "
                                "'records' or 'columns'")
            method = payload.get("method", "predict")
            if not isinstance(method, str):
                raise HTTPError(422, "invalid_body", "'method' must be a string")
            model, batcher, pinned = await server.pick_model(route, payload)
            if method not in model.methods:
                bad, method = method, "_invalid"
                raise HTTPError(422, "unsupported_method",
                                f"model {name!r} version {model.version} has no method "
                                f"{bad!r} (methods: {', '.join(model.methods)})")
            try:
                columns, n_rows = await asyncio.to_thread(model.schema.parse, payload) \
                    if big else model.schema.parse(payload)
            except InputError as exc:
                raise HTTPError(422, exc.reason, str(exc), column=exc.column) from None
            used, rows = await server.answer(route, model, batcher, pinned, method, columns,
                                             n_rows)
            data = {"model": name, "version": used.version, "method": method,
                    "predictions": rows}
            if used.classes is not None and method in ("predict_proba", "decision_function",
                                                       "predict_log_proba"):
                data["classes"] = used.classes
            response = _json(data)
        except HTTPError as err:
            metrics.errors.inc(model=label, reason=err.reason)
            response = _error_response(err)
        except Exception as exc:  # noqa: BLE001 - a bug: still answer in JSON
            log.exception("internal error answering %s", request.url.path)
            metrics.errors.inc(model=label, reason="internal_error")
            response = _error_response(HTTPError(500, "internal_error",
                                                 f"{type(exc).__name__}: {exc}"))
        metrics.requests.inc(model=label, method=method, code=str(response.status_code))
        metrics.latency.observe(time.perf_counter() - start, model=label)
        return response

    async def list_models(request: Request) -> Response:
        out = []
        for route in server.routes.values():
            info = route.current.describe()
            try:
                versions = await asyncio.to_thread(server.registry.versions, route.name)
                info["registry_versions"] = [
                    {"version": v["version"], "aliases": v["aliases"],
                     "created_at": v["created_at"], "metrics": v["metrics"]}
                    for v in versions]
            except Exception as exc:  # noqa: BLE001 - the registry may be busy
                info["registry_error"] = str(exc)
            info["ref"] = str(route.ref)
            info["pinned_versions"] = sorted(route.pinned)
            info["batch_limit_rows"] = route.batcher.controller.limit
            info["latency_objective_feasible"] = route.batcher.controller.feasible
            info["queue_depth"] = route.batcher.depth
            out.append(info)
        return _json({"models": out})

    async def health(request: Request) -> Response:
        if server.draining:
            return _json({"status": "draining"}, 503)
        return _json({"status": "ok"})

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return [
        Route("/v1/models/{name}/predict", predict, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]


class _BearerAuth:
    """ASGI middleware: every path but ``/health`` needs ``Authorization: Bearer <token>``
    (constant-time comparison)."""

    def __init__(self, app, token: str, metrics: Metrics):
        self.app = app
        self.token = token.encode()
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path") != "/health":
            given = b""
            for key, value in scope.get("headers", ()):
                if key == b"authorization":
                    given = value
                    break
            scheme, _, credentials = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(
                    credentials.strip(), self.token):
                self.metrics.errors.inc(model="_auth", reason="unauthorized")
                response = _json(
                    {"error": "unauthorized", "detail": "a valid bearer token is required"},
                    401, {"WWW-Authenticate": 'Bearer realm="stratumlite"'})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --------------------------------------------------------------------------- public API
def _settings(settings: ServingSettings | None, overrides: dict) -> ServingSettings:
    base = settings.model_dump() if settings is not None else {}
    if settings is not None and settings.token is not None:
        base["token"] = settings.token.get_secret_value()
    return ServingSettings(**{**base, **overrides})


def create_app(model_ref: str | ModelRef | Sequence[str | ModelRef],
               config: Config | None = None, settings: ServingSettings | None = None,
               **overrides):
    """The ASGI app serving ``model_ref`` (one reference or a list of them).

    The models are resolved and loaded here (an unknown model raises
    :class:`~stratumlite.serving.models.UnknownModel` before anything is
    served); batchers and registry polling start with the app's lifespan.
    """
    config = config if config is not None else Config.from_env()
    settings = _settings(settings, overrides)
    refs = [model_ref] if isinstance(model_ref, (str, ModelRef)) else list(model_ref)
    server = _Server([ModelRef.parse(r) for r in refs], config, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await server.startup()
        try:
            yield
        finally:
            await server.shutdown()

    app = Starlette(routes=_endpoints(server), lifespan=lifespan)
    app.state.server = server
    if settings.token is not None:
        return _BearerAuth(app, settings.token.get_secret_value(), server.metrics)
    return app


def _uvicorn_config(app, host: str, port: int, settings: ServingSettings):
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=settings.log_level,
                          access_log=False, lifespan="on", timeout_graceful_shutdown=30)


def serve(model_ref: str | ModelRef | Sequence[str | ModelRef], host: str = "127.0.0.1",
          port: int = 8000, config: Config | None = None,
          settings: ServingSettings | None = None, **overrides) -> None:
    """Serve registered model(s) over HTTP until interrupted (blocking).

    ``model_ref`` is ``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION`` (or a list);
    ``overrides`` are :class:`ServingSettings` fields (``max_batch_rows=...``,
    ``token=...``).
    """
    settings = _settings(settings, overrides)
    run_app(create_app(model_ref, config, settings), host, port, settings)


def run_app(app, host: str, port: int, settings: ServingSettings) -> None:
    """Run an app made by :func:`create_app` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.Server(_uvicorn_config(app, host, port, settings)).run()


class ServerHandle:
    """A server running in a background thread (tests, benchmarks, notebooks).

    ``url`` is its base URL; ``stop()`` shuts it down gracefully (queued
    requests are answered first). Also a context manager.
    """

    def __init__(self, app, host: str, port: int, settings: ServingSettings):
        import uvicorn

        self.app = app
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port = self._sock.getsockname()[1]
        self.server = uvicorn.Server(_uvicorn_config(app, host, self.port, settings))
        self._thread = threading.Thread(target=self.server.run,
                                        kwargs={"sockets": [self._sock]},
                                        name=f"stratumlite-serve-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerHandle:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server failed to start (see the log)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("the server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(model_ref, host: str = "127.0.0.1", port: int = 0,
                 config: Config | None = None, settings: ServingSettings | None = None,
                 **overrides) -> ServerHandle:
    """Start a server in a background thread (``port=0``: a free port); returns a
    :class:`ServerHandle` once it accepts connections."""
    settings = _settings(settings, overrides)
    app = create_app(model_ref, config, settings)
    return ServerHandle(app, host, port, settings).start()
