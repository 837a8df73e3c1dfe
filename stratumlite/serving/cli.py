"""The ``serve`` command: ``stratumlite serve NAME[@ALIAS|:VERSION] [options]``.

``serve_command`` is a plain typer command function, mounted on the main
``stratumlite`` app by ``app.command("serve")(serve_command)``; it reads the
main app's ``--state-dir`` from the root context when there is one. ``app``
runs it standalone: ``python -m stratumlite.serving.cli serve churn@prod``.

Heavy imports (starlette, uvicorn, skrub, scikit-learn) happen only when the
command runs. The token may come from ``STRATUMLITE_SERVE_TOKEN`` rather than
the command line (where other users of the machine could read it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

__all__ = ["app", "serve_command"]


def serve_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="NAME (latest), NAME@ALIAS or NAME:VERSION."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    token: str | None = typer.Option(
        None, "--token", envvar="STRATUMLITE_SERVE_TOKEN", show_default=False,
        help="Bearer token required on every endpoint but /health."),
    max_batch_rows: int = typer.Option(256, "--max-batch-rows", help="Rows per batch, at most."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms",
                                      help="Wait for more requests after a batch's first."),
    p99_ms: float = typer.Option(50.0, "--p99-ms", help="p99 latency objective (ms)."),
    queue_capacity: int = typer.Option(1024, "--queue-capacity",
                                       help="Waiting requests before answering 503."),
    cache_size: int = typer.Option(100_000, "--cache-size",
                                   help="Rows in the prediction cache (0: off)."),
    max_payload: str = typer.Option("16MiB", "--max-payload", help="Largest request body."),
    batching: bool = typer.Option(True, "--batching/--no-batching",
                                  help="Dynamic batching (off: one predict per request)."),
    poll_ms: float = typer.Option(500.0, "--poll-ms",
                                  help="Registry polling for alias moves (0: off)."),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", show_default=False,
        help="State directory (default: the main --state-dir, STRATUMLITE_HOME, "
        "./.stratumlite)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve a registered model over HTTP (dynamic batching, cache, metrics)."""
    from ..config import Config
    from ..errors import StratumliteError
    from .models import UnknownModel
    from .server import ServingSettings, create_app, run_app

    if state_dir is None:
        root = ctx.find_root().obj
        state_dir = (root or {}).get("state_dir") if isinstance(root, dict) else None
    config = Config.from_env(**({"state_dir": state_dir} if state_dir is not None else {}))
    try:
        settings = ServingSettings(
            max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms, p99_objective_ms=p99_ms,
            queue_capacity=queue_capacity, cache_enabled=cache_size > 0,
            cache_size=cache_size, max_payload_bytes=max_payload, batching=batching,
            poll_interval_ms=poll_ms, token=token, log_level=log_level)
        app = create_app(model, config, settings)
    except (UnknownModel, StratumliteError, ValueError) as exc:
        # one line and exit status 1, standalone or under the main command line
        sys.stderr.write(f"stratumlite: error: {' '.join(str(exc).split())}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None
    sys.stderr.write(f"stratumlite: serving {model} on http://{host}:{port} "
                     f"(state dir {config.state_dir})\n")
    sys.stderr.flush()
    run_app(app, host, port, settings)


app = typer.Typer(help="Serve registered stratumlite models.", add_completion=False,
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.obj = ctx.obj or {}


app.command("serve")(serve_command)


if __name__ == "__main__":  # pragma: no cover
    app()
