"""The ``stratumlite`` command line, run as subprocesses (``python -m stratumlite.cli``).

Each test uses its own state directory (``--state-dir``). Independent commands
are started together and then awaited (each process pays the import of
stratumlite), which keeps the module fast.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

from stratumlite.config import Config
from stratumlite.lineage import LineageStore

CLI = [sys.executable, "-m", "stratumlite.cli"]
TIMEOUT = 600

_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import pandas as pd
    import skrub
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    df = pd.DataFrame({{"x": rng.normal(size=40), "z": rng.normal(size=40)}})
    df["y"] = 2 * df["x"] - df["z"]

    SEARCH = dict(cv=3, scoring="r2")


    @skrub.deferred
    def double(d):
        return d * 2


    def make_data_op():
        data = skrub.var("data", df)
        X = data[["x", "z"]].skb.mark_as_X()
        y = data["y"].skb.mark_as_y()
        return double(X).skb.apply(Ridge(alpha={alpha}), y=y)


    if __name__ == "__main__":
        raise SystemExit("the __main__ block must not run")
    """
)


def _script(tmp_path: Path, name: str, alpha: str) -> Path:
    path = tmp_path / name
    path.write_text(_SCRIPT.format(alpha=alpha))
    return path


def _start(state: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "--state-dir", str(state), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(procs: dict[str, subprocess.Popen]) -> dict[str, subprocess.CompletedProcess]:
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return out


def _cli_many(state: Path, commands: dict[str, list]) -> dict:
    """Run several CLI commands at once; ``{name: CompletedProcess}``."""
    return _wait({name: _start(state, *args) for name, args in commands.items()})


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}: {result.stderr}"
    return result.stdout


def _plan_output_key(script: Path) -> str:
    from stratumlite.frontend import to_plan

    namespace = runpy.run_path(str(script), run_name="__stratumlite__")
    return to_plan(namespace["make_data_op"]()).output.key


def _run_ids_by_script(state: Path) -> dict[str, str]:
    with LineageStore(state / "lineage.db") as store:
        return {Path(r["script"]).name: r["id"] for r in store.runs()}


def test_run_then_runs_lineage_diff_explain(tmp_path):
    state = tmp_path / "state"
    a = _script(tmp_path, "pipeline_a.py", "1.0")
    b = _script(tmp_path, "pipeline_b.py", "10.0")
    searched = _script(tmp_path, "pipeline_search.py",
                       'skrub.choose_from([0.1, 1.0, 10.0], name="alpha")')
    first = _cli_many(state, {
        "a": ["run", a, "--search", "none"],
        "b": ["run", b, "--search", "none"],
        "search": ["run", searched, "--cv", "2"],
    })
    for name in ("a", "b"):
        out = _ok(first[name])
        assert "fitted a learner" in out and "(fit, finished" in out
    out = _ok(first["search"])
    assert "grid search: 3 configurations x 2 folds" in out
    assert "best score" in out and "(search, finished" in out
    ids = _run_ids_by_script(state)
    assert set(ids) == {"pipeline_a.py", "pipeline_b.py", "pipeline_search.py"}
    key_a = _plan_output_key(a)

    r = _cli_many(state, {
        "runs": ["runs"],
        "runs_json": ["runs", "--json", "--limit", "2"],
        "lineage": ["lineage", key_a[:10]],
        "lineage_json": ["lineage", key_a, "--json"],
        "diff": ["diff", ids["pipeline_a.py"], ids["pipeline_b.py"][:8]],
        "diff_json": ["diff", ids["pipeline_a.py"], ids["pipeline_b.py"], "--json"],
        "explain": ["explain", a],
        "explain_json": ["explain", searched, "--json", "--optimized"],
    })
    out = _ok(r["runs"])
    for word in ("finished", "search", "fit", "pipeline_a.py", ids["pipeline_b.py"][:8]):
        assert word in out
    runs = json.loads(_ok(r["runs_json"]))
    assert len(runs) == 2 and all(run["status"] == "finished" for run in runs)

    out = _ok(r["lineage"])
    namespace = runpy.run_path(str(a), run_name="__stratumlite__")
    from stratumlite.canonical import fingerprint

    assert "Apply Ridge" in out and "Call 'double'" in out
    assert f"source data: fingerprint {fingerprint(namespace['df'])}" in out
    tree = json.loads(_ok(r["lineage_json"]))
    assert tree["key"] == key_a
    labels = []
    stack = [tree]
    while stack:
        node = stack.pop()
        labels.append(node["label"])
        stack.extend(node.get("inputs", []))
    assert "data" in labels

    out = _ok(r["diff"])
    assert "parameters changed" in out
    assert "alpha: 1.0 -> 10.0" in out
    diff = json.loads(_ok(r["diff_json"]))
    assert [(c["label"], c["reasons"]) for c in diff["changed"]] == [
        ("Apply Ridge", ["parameters changed"])]

    out = _ok(r["explain"])
    assert out.startswith("PLAN (as written)") and "Var 'data'" in out
    plan = json.loads(_ok(r["explain_json"]))
    assert plan["title"] == "PLAN (optimized)" and plan["rewrites"]


def test_models_commands(tmp_path):
    import stratumlite
    from stratumlite.registry_api import register

    state = tmp_path / "state"
    config = Config(state_dir=state, lineage=True, executor="sequential")
    script = _script(tmp_path, "pipeline.py", "1.0")
    data_op = runpy.run_path(str(script), run_name="__stratumlite__")["make_data_op"]()
    learner = stratumlite.make_learner(data_op, fitted=True, config=config)
    assert register(learner, "ridge", metrics={"r2": 0.9}, alias="prod",
                    config=config) == 1
    assert register(learner, "ridge", config=config) == 2

    from stratumlite.registry_api import fitted_key

    r = _cli_many(state, {
        "list": ["models", "list"],
        "list_json": ["models", "list", "--json"],
        "alias": ["models", "alias", "ridge", "staging", "1"],
        "lineage": ["lineage", fitted_key(learner)],
    })
    out = _ok(r["list"])
    assert "ridge" in out and "v2" in out and "prod=v1" in out
    assert [(m["name"], m["latest_version"]) for m in json.loads(_ok(r["list_json"]))] \
        == [("ridge", 2)]
    assert "staging -> v1" in _ok(r["alias"])
    r_lineage = r["lineage"]

    r = _cli_many(state, {"show": ["models", "show", "ridge"],
                          "show_json": ["models", "show", "ridge", "--json"]})
    out = _ok(r["show"])
    assert "v1" in out and "v2" in out and '"r2": 0.9' in out
    shown = json.loads(_ok(r["show_json"]))
    v1 = shown["versions"][0]
    assert sorted(v1["aliases"]) == ["prod", "staging"]
    assert v1["run_id"] is not None and v1["lineage_key"] == fitted_key(learner)
    # the registered model's lineage key is a node: its tree reaches the data
    out = _ok(r_lineage)
    assert out.splitlines()[0].startswith("ridge fitted") and "source data" in out


def test_errors_are_one_line_on_stderr(tmp_path):
    import stratumlite

    state = tmp_path / "state"
    config = Config(state_dir=state, lineage=True, executor="sequential")
    import skrub

    stratumlite.evaluate(skrub.var("a", 1) + 1, config=config)  # creates the store
    no_data_op = tmp_path / "no_data_op.py"
    no_data_op.write_text("x = 1\n")
    not_a_data_op = tmp_path / "not_a_data_op.py"
    not_a_data_op.write_text("data_op = 42\n")
    broken = tmp_path / "broken.py"
    broken.write_text("raise ValueError('bad input file')\n")
    r = _cli_many(state, {
        "key": ["lineage", "deadbeef"],
        "run": ["diff", "nope-a", "nope-b"],
        "model": ["models", "show", "nomodel"],
        "no_data_op": ["explain", no_data_op],
        "not_a_data_op": ["run", not_a_data_op],
        "broken": ["explain", broken],
        "missing": ["run", tmp_path / "missing.py"],
    })
    expected = {
        "key": "unknown node 'deadbeef'",
        "run": "unknown run 'nope-a'",
        "model": "unknown model 'nomodel'",
        "no_data_op": "defines no DataOp",
        "not_a_data_op": "is not a skrub DataOp (got int)",
        "broken": "raised ValueError: bad input file",
        "missing": "script not found",
    }
    for name, text in expected.items():
        result = r[name]
        assert result.returncode != 0, name
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (name, result.stderr)
        assert lines[0].startswith("stratumlite: error: ") and text in lines[0], (
            name, lines[0])
        assert "Traceback" not in result.stderr


def test_empty_state_dir_and_help(tmp_path):
    state = tmp_path / "empty"
    procs = {name: _start(state, *args) for name, args in {
        "runs": ["runs"],
        "lineage": ["lineage", "abc"],
        "help": ["--help"],
    }.items()}
    script = Path(sys.executable).parent / "stratumlite"  # the console script
    runs_json = [str(script)] if script.exists() else CLI
    procs["runs_json"] = subprocess.Popen(
        [*runs_json, "--state-dir", str(state), "runs", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = _wait(procs)
    assert "no runs recorded" in _ok(r["runs"])
    assert json.loads(_ok(r["runs_json"])) == []
    assert r["lineage"].returncode != 0
    assert "no lineage store" in r["lineage"].stderr
    out = _ok(r["help"])
    for command in ("runs", "lineage", "diff", "models", "explain", "run"):
        assert command in out
    assert not state.exists()  # reading never creates the state directory
