"""The ``stratumlite`` command line: runs, lineage, diffs, models, explain, run.

::

    stratumlite [--state-dir DIR] runs [--limit N] [--json]
    stratumlite lineage KEY [--json]              # KEY: a key or a unique prefix
    stratumlite diff RUN_A RUN_B [--json]         # run ids or unique prefixes
    stratumlite models list [--json]
    stratumlite models show NAME [--json]
    stratumlite models alias NAME ALIAS VERSION [--json]
    stratumlite explain SCRIPT [--json] [--optimized]
    stratumlite run SCRIPT [--search grid|random|none] [--cv N]

A script exposes its DataOp as a module-level ``data_op`` or a function
``make_data_op()`` returning one, and optionally ``SEARCH = dict(cv=...,
scoring=...)`` (keyword arguments of the search). It is imported with
``runpy.run_path(path, run_name="__stratumlite__")``: its ``if __name__ ==
"__main__":`` block does not run. See ``docs/cli.md``.

Output is made for a terminal (rich tables and trees); ``--json`` prints JSON
for machines. An error is one line on stderr and a non-zero exit status.
Heavy modules (skrub, scikit-learn) are imported only by the commands that
need them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="stratumlite",
    help="Lineage, model registry and runs of stratumlite (skrub DataOps).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Registered models: list, show, alias.",
                         no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(models_app, name="models")
from .serving.cli import serve_command  # noqa: E402 - imports typer only

app.command("serve")(serve_command)

_JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")


class CLIError(Exception):
    """An error reported as one line on stderr (exit status 1)."""


# --------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------


@app.callback()
def _main(
    ctx: typer.Context,
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="State directory (overrides STRATUMLITE_HOME; "
        "default ./.stratumlite).", show_default=False),
) -> None:
    ctx.obj = {"state_dir": state_dir}


def _config(ctx: typer.Context, **overrides):
    from .config import Config

    state_dir = (ctx.find_root().obj or {}).get("state_dir")
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    return Config.from_env(**overrides)


def _store(config, *, required: bool = True):
    """The lineage store of ``config`` (None when absent and not ``required``)."""
    from .lineage.store import LineageStore

    if not config.lineage_db.exists():
        if not required:
            return None
        raise CLIError(
            f"no lineage store at {config.lineage_db} (nothing recorded yet: run with "
            "Config(lineage=True) or `stratumlite run SCRIPT`)")
    return LineageStore(config.lineage_db, heartbeat_interval=None)


def _console(stderr: bool = False):
    from rich.console import Console

    file = sys.stderr if stderr else sys.stdout
    # off a terminal, wide enough that keys and reasons are never cut
    width = None if file.isatty() else 160
    return Console(file=file, width=width, soft_wrap=False, highlight=False)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(s: float | None) -> str:
    if s is None:
        return ""
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min"


_STATUS_STYLE = {"finished": "green", "failed": "red", "interrupted": "yellow",
                 "running": "cyan"}


def _fail(message: str) -> None:
    message = " ".join(str(message).split())  # one line
    sys.stderr.write(f"stratumlite: error: {message}\n")
    sys.stderr.flush()


def _error_text(err: BaseException) -> str:
    from .errors import StratumliteError

    if isinstance(err, (CLIError, StratumliteError)):
        text = str(err)
        if isinstance(err, KeyError) and text.startswith(("'", '"')):
            text = text[1:-1]
        return text
    if isinstance(err, FileNotFoundError) and err.filename:
        return f"file not found: {err.filename}"
    return f"{type(err).__name__}: {err}"


# --------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------


@app.command()
def runs(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit", "-n", help="Show the N newest runs."),
    as_json: bool = _JSON,
) -> None:
    """Recorded runs, newest first (a killed run shows as interrupted)."""
    config = _config(ctx)
    store = _store(config, required=False)
    rows = [] if store is None else store.runs(limit=limit)
    if store is not None:
        store.close()
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    console = _console()
    if not rows:
        console.print(f"no runs recorded in {config.state_dir}")
        return
    table = Table(title=f"runs in {config.state_dir}", title_justify="left")
    for col in ("run", "kind", "status", "started", "duration", "executions",
                "script", "commit"):
        table.add_column(col, justify="right" if col == "executions" else "left",
                         no_wrap=col in ("run", "started"))
    for r in rows:
        status = r["status"]
        style = _STATUS_STYLE.get(status, "")
        table.add_row(
            r["id"][:8], r["kind"], f"[{style}]{status}[/]" if style else status,
            _when(r["started_at"]), _seconds(r["duration"]), str(r["n_executions"]),
            Path(r["script"]).name if r["script"] else "",
            (r["git_commit"] or "")[:7],
        )
    console.print(table)


# --------------------------------------------------------------------------------
# lineage
# --------------------------------------------------------------------------------


def _params_text(params: Any, limit: int = 90) -> str:
    """A short one-line rendering of a node's parameter summary."""
    if not isinstance(params, dict):
        return "" if params is None else str(params)[:limit]
    fields = params.get("fields") if isinstance(params.get("fields"), dict) else {}
    parts = []
    est = fields.get("estimator")
    if isinstance(est, dict) and "class" in est:
        inner = ", ".join(f"{k}={_compact(v)}" for k, v in est.get("params", {}).items())
        parts.append(f"{est['class'].rsplit('.', 1)[-1]}({inner})")
    func = fields.get("func")
    if isinstance(func, str):
        parts.append(f"func={func}")
    if "value" in params and not fields:
        parts.append(f"value={_compact(params['value'])}")
    for flag in ("is_X", "is_y"):
        if params.get(flag):
            parts.append(flag)
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compact(v: Any) -> str:
    if isinstance(v, dict) and "class" in v:
        return v["class"].rsplit(".", 1)[-1] + "(...)"
    if isinstance(v, (dict, list)):
        text = json.dumps(v, default=str)
        return text if len(text) <= 30 else text[:27] + "..."
    return repr(v) if isinstance(v, str) else str(v)


def _node_line(node: dict) -> str:
    from rich.markup import escape

    label = escape(str(node.get("label") or node.get("kind") or "?"))
    key = node["key"]
    if node.get("repeated"):
        return f"[dim]↑ {label} {key[:12]} (shared, see above)[/]"
    text = f"[bold]{label}[/] [dim]{escape(str(node.get('kind')))}[/] [cyan]{key[:12]}[/]"
    params = _params_text(node.get("params"))
    if params and node.get("source") is None:
        text += f"  {escape(params)}"
    if node.get("code_hash"):
        text += f"  [magenta]code {node['code_hash'][:8]}[/]"
    src = node.get("source")
    if src is not None:
        rows = f", {src['rows']} rows" if src.get("rows") is not None else ""
        cols = ""
        if isinstance(src.get("schema"), dict) and "dtype" not in src["schema"]:
            cols = f" x {len(src['schema'])} columns"
        text += (f"\n[green]source {escape(str(src.get('name')))}: fingerprint "
                 f"{src.get('fingerprint')}[/] [dim]({escape(str(src.get('how') or ''))}"
                 f"{rows}{cols})[/]")
    return text


@app.command()
def lineage(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="A node's lineage key or a unique prefix."),
    as_json: bool = _JSON,
) -> None:
    """The lineage tree of a node, down to the fingerprints of its sources."""
    config = _config(ctx)
    store = _store(config)
    try:
        tree = store.lineage_tree(key)
    finally:
        store.close()
    if as_json:
        _print_json(tree)
        return
    from rich.tree import Tree

    root = Tree(_node_line(tree))
    stack = [(root, child) for child in reversed(tree.get("inputs", []))]
    while stack:  # iterative: lineage may be thousands of nodes deep
        parent, node = stack.pop()
        branch = parent.add(_node_line(node))
        stack.extend((branch, child) for child in reversed(node.get("inputs", []) or []))
    _console().print(root)


# --------------------------------------------------------------------------------
# diff
# --------------------------------------------------------------------------------


def _details_text(details: dict) -> str:
    parts = []
    params = details.get("parameters")
    if isinstance(params, dict):
        changed = params.get("changed", {})
        for k, (a, b) in changed.items():
            parts.extend(_leaf_changes(a, b, k))
        if params.get("added"):
            parts.append("added " + ", ".join(params["added"]))
        if params.get("removed"):
            parts.append("removed " + ", ".join(params["removed"]))
    if "fingerprint" in details:
        a, b = details["fingerprint"]
        parts.append(f"fingerprint {str(a)[:12]} -> {str(b)[:12]}")
    if "kind" in details:
        a, b = details["kind"]
        parts.append(f"operator {a} -> {b}")
    if details.get("inputs"):
        parts.append("inputs " + ", ".join(map(str, details["inputs"])))
    return "; ".join(parts)


def _leaf_changes(a: Any, b: Any, path: str, limit: int = 6) -> list[str]:
    """``path.to.leaf: a -> b`` for the values that differ in two nested dicts."""
    out: list[str] = []
    stack = [(path, a, b)]
    while stack and len(out) < limit:
        where, x, y = stack.pop(0)
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                if x.get(k) != y.get(k):
                    stack.append((f"{where}.{k}", x.get(k), y.get(k)))
        elif x != y:
            out.append(f"{where}: {_compact(x)} -> {_compact(y)}")
    return out


@app.command()
def diff(
    ctx: typer.Context,
    run_a: str = typer.Argument(..., help="First run id (or a unique prefix)."),
    run_b: str = typer.Argument(..., help="Second run id (or a unique prefix)."),
    as_json: bool = _JSON,
) -> None:
    """What changed between the graphs of two runs, and why."""
    config = _config(ctx)
    store = _store(config)
    try:
        result = store.diff(run_a, run_b)
        info_a, info_b = store.run(result["run_a"]), store.run(result["run_b"])
    finally:
        store.close()
    if as_json:
        _print_json(result)
        return
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    s = result["summary"]
    console.print(
        f"diff [bold]{info_a['id'][:8]}[/] ({info_a['kind']}, {_when(info_a['started_at'])})"
        f" -> [bold]{info_b['id'][:8]}[/] ({info_b['kind']}, "
        f"{_when(info_b['started_at'])})")
    console.print(f"unchanged {s['unchanged']}, changed {s['changed']}, "
                  f"only in A {s['only_in_a']}, only in B {s['only_in_b']}")
    if not (s["changed"] or s["only_in_a"] or s["only_in_b"]):
        console.print("[green]no differences: the runs computed the same graph[/]")
        return
    if result["root_causes"]:
        console.print("root causes: " + ", ".join(escape(c) for c in result["root_causes"]))
    if result["changed"]:
        table = Table(title="changed", title_justify="left")
        table.add_column("node")
        table.add_column("key A -> key B", no_wrap=True)
        table.add_column("reasons")
        table.add_column("details", overflow="fold")
        for c in result["changed"]:
            reasons = ", ".join(c["reasons"])
            style = "dim" if c["reasons"] == ["input changed"] else "bold"
            table.add_row(escape(c["label"]), f"{c['key_a'][:8]} -> {c['key_b'][:8]}",
                          f"[{style}]{reasons}[/]", escape(_details_text(c["details"])))
        console.print(table)
    for title, nodes in (("only in A", result["only_in_a"]),
                         ("only in B", result["only_in_b"])):
        if nodes:
            console.print(f"{title}:")
            for n in nodes:
                console.print(f"  {escape(str(n['label']))} [dim]{n['kind']}[/] "
                              f"[cyan]{n['key'][:12]}[/]")


# --------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------


def _registry(config, required: bool = True):
    from .lineage.registry import ModelRegistry

    store = _store(config, required=required)
    if store is None:
        return None
    return ModelRegistry(store, config.artifacts_dir)


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Registered models with their latest version and aliases."""
    config = _config(ctx)
    registry = _registry(config, required=False)
    models = [] if registry is None else registry.list_models()
    if registry is not None:
        registry.store.close()
    if as_json:
        _print_json(models)
        return
    from rich.table import Table

    console = _console()
    if not models:
        console.print(f"no models registered in {config.state_dir}")
        return
    table = Table(title=f"models in {config.state_dir}", title_justify="left")
    for col in ("name", "latest", "versions", "aliases", "updated"):
        table.add_column(col)
    for m in models:
        aliases = ", ".join(f"{a}=v{v}" for a, v in m["aliases"].items())
        table.add_row(m["name"], f"v{m['latest_version']}", str(m["n_versions"]),
                      aliases, _when(m["updated_at"]))
    console.print(table)


@models_app.command("show")
def models_show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model's name."),
    as_json: bool = _JSON,
) -> None:
    """Every version of a model: lineage key, run, metrics, tags, aliases."""
    config = _config(ctx)
    registry = _registry(config)
    try:
        versions = registry.versions(name)
    finally:
        registry.store.close()
    for v in versions:
        v["path"] = str(v["path"])
    if as_json:
        _print_json({"name": name, "versions": versions})
        return
    from rich.table import Table

    table = Table(title=f"model {name}", title_justify="left")
    for col in ("version", "aliases", "created", "lineage key", "run", "metrics", "tags"):
        table.add_column(col, overflow="fold")
    for v in versions:
        table.add_row(
            f"v{v['version']}", ", ".join(v["aliases"]), _when(v["created_at"]),
            v["lineage_key"] or "", (v["run_id"] or "")[:8],
            json.dumps(v["metrics"], default=str) if v["metrics"] else "",
            json.dumps(v["tags"], default=str) if v["tags"] else "",
        )
    _console().print(table)


@models_app.command("alias")
def models_alias(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model's name."),
    alias: str = typer.Argument(..., help="The alias (production, staging...)."),
    version: int = typer.Argument(..., help="The version the alias points at."),
    as_json: bool = _JSON,
) -> None:
    """Point an alias of a model at a version."""
    config = _config(ctx)
    registry = _registry(config)
    try:
        before = registry.set_alias(name, alias, version)
    finally:
        registry.store.close()
    if as_json:
        _print_json({"name": name, "alias": alias, "version": version,
                     "previous_version": before})
        return
    was = "new alias" if before is None else f"was v{before}"
    _console().print(f"model {name}: alias {alias} -> v{version} ({was})")


# --------------------------------------------------------------------------------
# scripts: explain, run
# --------------------------------------------------------------------------------


class _ScriptArgv:
    """``sys.argv`` / ``sys.path`` as if ``python SCRIPT`` ran (restored after)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self._argv, self._path = sys.argv, list(sys.path)
        sys.argv = [str(self.path)]
        sys.path.insert(0, str(self.path.parent))
        return self

    def __exit__(self, *exc):
        sys.argv = self._argv
        sys.path[:] = self._path


def load_script(script: Path) -> tuple[Any, dict | None]:
    """``(data_op, SEARCH or None)`` defined by a script (see the module doc)."""
    import runpy

    path = Path(script).expanduser()
    if not path.is_file():
        raise CLIError(f"script not found: {script}")
    path = path.resolve()
    try:
        namespace = runpy.run_path(str(path), run_name="__stratumlite__")
    except SystemExit as exc:
        raise CLIError(f"script {script} called sys.exit({exc.code}) while being "
                       "imported") from None
    except Exception as exc:
        raise CLIError(f"script {script} raised {type(exc).__name__}: {exc}") from None
    import skrub

    if "data_op" in namespace:
        data_op = namespace["data_op"]
        where = "data_op"
    elif callable(namespace.get("make_data_op")):
        try:
            data_op = namespace["make_data_op"]()
        except Exception as exc:
            raise CLIError(f"make_data_op() in {script} raised {type(exc).__name__}: "
                           f"{exc}") from None
        where = "make_data_op()"
    else:
        raise CLIError(
            f"script {script} defines no DataOp: define a module-level `data_op` or a "
            "function `make_data_op()` returning one")
    if not isinstance(data_op, skrub.DataOp):
        raise CLIError(f"{where} in {script} is not a skrub DataOp (got "
                       f"{type(data_op).__name__})")
    search = namespace.get("SEARCH")
    if search is not None and not isinstance(search, dict):
        raise CLIError(f"SEARCH in {script} must be a dict of search arguments "
                       f"(cv=..., scoring=...), not a {type(search).__name__}")
    return data_op, search


@app.command()
def explain(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="A Python script defining a DataOp."),
    as_json: bool = _JSON,
    optimized: bool = typer.Option(False, "--optimized",
                                   help="Show the optimized plan (every configuration)."),
) -> None:
    """The plan of a script's DataOp, as a tree (or JSON)."""
    with _ScriptArgv(Path(script).expanduser().resolve()):
        data_op, _ = load_script(script)
    from ._api import explain as explain_plan
    from .render import dumps

    result = explain_plan(data_op, format="json" if as_json else "text",
                          optimized=optimized)
    if as_json:
        sys.stdout.write(dumps(result) + "\n")
    else:
        sys.stdout.write(str(result) + "\n")


def _search_kwargs(cls, search: dict | None, cv: int | None) -> dict:
    import inspect

    allowed = set(inspect.signature(cls).parameters) - {"estimator", "param_grid",
                                                         "param_distributions"}
    kwargs = {k: v for k, v in (search or {}).items() if k in allowed}
    if cv is not None:
        kwargs["cv"] = cv
    return kwargs


@app.command()
def run(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="A Python script defining a DataOp."),
    search: str | None = typer.Option(
        None, "--search", help="grid, random or none (default: grid when the DataOp "
        "has choices, else none: fit a learner).", show_default=False),
    cv: int | None = typer.Option(None, "--cv", help="Number of cross-validation "
                                  "folds (overrides SEARCH['cv']).", show_default=False),
) -> None:
    """Run a script's DataOp (a search, or a fit) with lineage recording on."""
    import os
    import time

    if search is not None and search not in ("grid", "random", "none"):
        raise CLIError(f"--search must be grid, random or none, not {search!r}")
    if cv is not None and cv < 2:
        raise CLIError(f"--cv must be at least 2, not {cv}")
    config = _config(ctx, lineage=True)
    path = Path(script).expanduser()
    console = _console()
    started = time.time()
    with _ScriptArgv(path.resolve()):
        data_op, search_args = load_script(script)
        import stratumlite
        from stratumlite.frontend import to_plan

        if search is None:
            search = "grid" if to_plan(data_op).meta.get("choices") else "none"
        t0 = time.perf_counter()
        if search == "none":
            stratumlite.make_learner(data_op, fitted=True, config=config)
            what = "fitted a learner"
            result = None
        else:
            from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

            if search == "grid":
                kwargs = _search_kwargs(GridSearchCV, search_args, cv)
                result = stratumlite.make_grid_search(data_op, fitted=True, config=config,
                                                      **kwargs)
            else:
                kwargs = _search_kwargs(RandomizedSearchCV, search_args, cv)
                kwargs.setdefault("n_iter", 10)
                kwargs.setdefault("random_state", 0)
                result = stratumlite.make_randomized_search(
                    data_op, fitted=True, config=config, **kwargs)
            stats = getattr(result, "stats_", {})
            what = (f"{search} search: {stats.get('configurations', '?')} configurations x "
                    f"{stats.get('folds', '?')} folds")
        seconds = time.perf_counter() - t0
    store = _store(config)
    try:
        mine = [r for r in store.runs(limit=50)
                if r["pid"] == os.getpid() and r["started_at"] >= started - 1]
    finally:
        store.close()
    mine.reverse()
    if result is not None:
        _print_search(console, result)
    console.print(f"{what} in {_seconds(seconds)}")
    for r in mine:
        console.print(f"run [bold]{r['id']}[/] ({r['kind']}, {r['status']}, "
                      f"{r['n_executions']} executions) recorded in {config.lineage_db}")


def _print_search(console, search) -> None:
    from rich.table import Table

    results = search.results_
    table = Table(title="results (best first)", title_justify="left")
    columns = [str(c) for c in results.columns]
    for c in columns:
        table.add_column(c, overflow="fold")
    for _, row in results.head(10).iterrows():
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    if len(results) > 10:
        console.print(f"... {len(results) - 10} more configurations")
    best = getattr(search, "best_score_", None)
    if best is not None:
        console.print(f"best score: {best:.4g}")


# --------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stratumlite`` script: returns the exit status."""
    import click

    try:
        # with standalone_mode=False click returns the code of typer.Exit(n)
        status = app(args=argv, prog_name="stratumlite", standalone_mode=False)
        return status if isinstance(status, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        _fail("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as exc:  # one clear line, no traceback
        _fail(_error_text(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
