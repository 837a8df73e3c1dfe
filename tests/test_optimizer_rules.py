"""Golden tests of the optimizer rules, one rule at a time.

Each rule has a fixture file ``tests/fixtures/optimizer/<rule>.txt`` of titled
input/expected pairs (the sqlglot way)::

    == two equal additions are one computation
    @ env: x=3
    (x + 1) * (x + 1)
    --
    outputs: #2
    #0 Var 'x'
    #1 BinOp: add <- #0
    #2 BinOp: mul <- #1, #1
    eliminate_common_subexpressions: 4 -> 3 nodes; 1 nodes merged

- ``== title`` starts a case (``#`` lines before the first case are comments);
- ``@ option: value`` lines set the context: ``context`` (``all``: every
  configuration of the grid, ``default``, or a list of assignments), ``mode``
  (what dead-node elimination keeps), ``input: expanded`` (the input plan is
  the output of ``expand_choices``, to test CSE on the plans it is made for);
- then a Python expression building a DataOp, evaluated with the names of
  :func:`scope` (``x``, ``z``, ``data``, ``X``, ``y``, ``skrub``, ``Ridge``...);
- ``--``, then the plan after the rule, rendered by :func:`render`: the
  outputs, one line per node (as written, numbered in topological order, with
  its inputs, its name and X/y marks), ``(dead)`` for nodes the mode does
  not read, and the rule's log line. Lineage keys are not shown: they are hashes, not behaviour.

Every case is also **run** (sqlglot runs both queries and compares results):
evaluating the plan before and after the rule gives the same values, and for
``expand_choices`` each output equals what skrub computes with that
configuration set on the learner.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skrub
from conftest import assert_same_value
from sklearn.dummy import DummyRegressor
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.linear_model import Ridge
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import stratumlite
from stratumlite.frontend import eval_environment, to_plan
from stratumlite.optimizer import (
    OptimizerContext,
    eliminate_common_subexpressions,
    eliminate_dead_nodes,
    expand_choices,
    optimize,
)
from stratumlite.plan import Plan
from stratumlite.render import display_label
from stratumlite.runtime.session import Session

FIXTURES = Path(__file__).parent / "fixtures" / "optimizer"
RULES = {r.__name__: r for r in (expand_choices, eliminate_common_subexpressions,
                                 eliminate_dead_nodes)}

DATA = pd.DataFrame({
    "a": [0.5, 1.5, -2.0, 3.0, 0.0, 1.0, -1.0, 2.5, 4.0, -0.5, 1.2, 2.2],
    "b": [1.0, 0.0, 2.0, -1.0, 3.5, 0.5, 1.5, -2.0, 0.0, 2.0, -0.3, 1.1],
    "c": [1.1, 2.9, -3.5, 7.2, -0.4, 1.8, -2.9, 6.0, 9.1, -1.7, 2.5, 4.3],
})
ENV = {"x": 3.0, "z": 5.0, "data": DATA, "flag": True, "q": "u"}


# --------------------------------------------------------------------------
# names the cases are written with


def sub(u, v):
    """Not symmetric: ``sub(u, v) != sub(v, u)``."""
    return u - v


def scale(df, a=1.0):
    return df * a


def scope() -> dict:
    """Fresh variables for one case (skrub DataOps are not shared across cases)."""
    data = skrub.var("data")
    return {
        "skrub": skrub, "np": np, "Ridge": Ridge, "DummyRegressor": DummyRegressor,
        "StandardScaler": StandardScaler, "MinMaxScaler": MinMaxScaler,
        "SelectKBest": SelectKBest, "f_regression": f_regression,
        "sub": sub, "scale": scale,
        "x": skrub.var("x"), "z": skrub.var("z"), "flag": skrub.var("flag"),
        "q": skrub.var("q"), "data": data,
        "X": data[["a", "b"]].skb.mark_as_X(), "y": data["c"].skb.mark_as_y(),
    }


# --------------------------------------------------------------------------
# fixture files


@dataclass
class Case:
    rule: str
    title: str
    source: str
    expected: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.rule}: {self.title}"


def read_cases(rule: str) -> list[Case]:
    """The titled input/expected pairs of ``fixtures/optimizer/<rule>.txt``."""
    cases = []
    current: dict | None = None
    for line in (FIXTURES / f"{rule}.txt").read_text().splitlines():
        if line.startswith("== "):
            if current is not None:
                cases.append(_case(rule, current))
            current = {"title": line[3:].strip(), "options": {}, "source": [],
                       "expected": [], "part": "source"}
        elif current is None:
            continue  # the file's header comment
        elif line.startswith("@ ") and not current["source"]:
            key, _, value = line[2:].partition(":")
            current["options"][key.strip()] = value.strip()
        elif line == "--":
            current["part"] = "expected"
        else:
            current[current["part"]].append(line)
    if current is not None:
        cases.append(_case(rule, current))
    return cases


def _case(rule: str, raw: dict) -> Case:
    return Case(rule, raw["title"], "\n".join(raw["source"]).strip(),
                "\n".join(raw["expected"]).strip(), raw["options"])


ALL_CASES = [case for rule in RULES for case in read_cases(rule)]


# --------------------------------------------------------------------------
# running one rule


def context_for(case: Case) -> OptimizerContext:
    spec = case.options.get("context", "all")
    mode = case.options.get("mode", "fit_transform")
    if spec == "all":
        return OptimizerContext(all_configurations=True, mode=mode)
    if spec == "default":
        return OptimizerContext(mode=mode)
    return OptimizerContext(assignments=ast.literal_eval(spec), mode=mode)


def build(case: Case):
    """(DataOp, input plan) of a case."""
    op = eval(case.source, scope())  # noqa: S307 - the fixtures are ours
    plan = to_plan(op)
    if case.options.get("input") == "expanded":
        plan = expand_choices(plan, OptimizerContext(all_configurations=True))
    return op, plan


def apply_rule(case: Case, plan: Plan):
    """The plan after ``case.rule`` alone, and its log entry."""
    result = optimize(plan, rules=(RULES[case.rule],), context=context_for(case))
    (entry,) = result.log
    return result.plan, entry


def render(plan: Plan, entry: dict) -> str:
    """A plan as golden text: no keys, numbered in topological order."""
    nodes = plan.nodes("id")
    number = {id(n): i for i, n in enumerate(nodes)}
    live = plan.meta.get("live")
    lines = ["outputs: " + ", ".join(f"#{number[id(o)]}" for o in plan.outputs)]
    if "configurations" in plan.meta:
        lines.append(f"configurations: {plan.meta['configurations']}")
    for n in nodes:
        text = f"#{number[id(n)]} {display_label(n)}"
        summary = n.op.summary()
        if n.name and repr(n.name) not in text:
            text += f" name={n.name!r}"
        flags = [flag for flag in ("X", "y") if summary.get(f"is_{flag}")]
        if flags:
            text += f" [{', '.join(flags)}]"
        if n.inputs:
            text += " <- " + ", ".join(f"#{number[id(i)]}" for i in n.inputs)
        if live is not None and n.key not in live:
            text += "  (dead)"
        lines.append(text)
    detail = f"; {entry['detail']}" if entry["detail"] else ""
    lines.append(f"{entry['rule']}: {entry['nodes_before']} -> {entry['nodes_after']} "
                 f"nodes{detail}")
    return "\n".join(lines)


def test_fixtures_are_well_formed():
    assert set(RULES) == {p.stem for p in FIXTURES.glob("*.txt")}
    for rule in RULES:
        cases = read_cases(rule)
        assert len(cases) >= 5, rule
        titles = [c.title for c in cases]
        assert len(titles) == len(set(titles)), f"{rule}: duplicate titles"
        for c in cases:
            assert c.source and c.expected, c.id
            # no lineage-key hex in golden text
            assert not re.search(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{8,}\b",
                                 c.expected), c.id


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_golden(case: Case):
    _, plan = build(case)
    after, entry = apply_rule(case, plan)
    assert render(after, entry) == case.expected


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_rule_is_pure(case: Case):
    """A rule never mutates its input, and is idempotent."""
    _, plan = build(case)
    before = [(n.key, n.op.label) for n in plan.nodes("id")]
    after, _ = apply_rule(case, plan)
    assert [(n.key, n.op.label) for n in plan.nodes("id")] == before
    if case.rule != "expand_choices":  # a second expansion has nothing left to expand
        again, entry = apply_rule(case, after)
        assert again is after and not entry["changed"]
    else:
        assert not any(n.op.kind in ("choice", "numeric_choice", "choice_match")
                       for n in after.nodes("id"))


# --------------------------------------------------------------------------
# running both plans


def environment(op) -> dict:
    names = set(op.skb.get_vars())
    return eval_environment(op, {k: v for k, v in ENV.items() if k in names})


def run_outputs(plan: Plan, env: dict, mode: str) -> list:
    """Every output of ``plan`` evaluated in ``mode`` (fitting on ``env``
    first for a prediction mode), through a runtime session."""
    with Session() as session:
        binding = session.bind(env)
        if mode in ("fit", "fit_transform"):
            tasks = [session.request(o, "fit_transform", binding) for o in plan.outputs]
            return session.run(tasks)
        session.run([session.request(o, "fit", binding) for o in plan.outputs])
        return session.run([session.request(o, mode, binding, binding)
                            for o in plan.outputs])


def skrub_value(op, assignment: dict, env: dict):
    """skrub's ``fit_transform`` value with ``assignment`` set on the learner."""
    learner = op.skb.make_learner()
    learner.set_params(**{f"data_op__{k}": v for k, v in assignment.items()})
    return learner.fit_transform(env)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_both_plans_compute_the_same(case: Case):
    op, plan = build(case)
    after, _ = apply_rule(case, plan)
    env = environment(op)
    mode = case.options.get("mode", "fit_transform")
    before_values = run_outputs(plan, env, mode)
    after_values = run_outputs(after, env, mode)
    if case.rule == "expand_choices":
        configurations = after.meta.get("configurations", [{}])
        assert len(after_values) == len(configurations)
        for value, assignment in zip(after_values, configurations):
            assert_same_value(value, skrub_value(op, assignment, env),
                              path=f"configuration {assignment}")
        if case.options.get("context") == "default":
            assert_same_value(after_values[0], before_values[0])
        return
    # CSE keeps every output (merged ones become the same node); dead-node
    # elimination drops repeated ones: the same keys, the same values
    by_key = dict(zip((o.key for o in plan.outputs), before_values))
    assert {o.key for o in after.outputs} == set(by_key)
    if case.rule == "eliminate_common_subexpressions":
        assert [o.key for o in after.outputs] == [o.key for o in plan.outputs]
    for out, value in zip(after.outputs, after_values):
        assert_same_value(value, by_key[out.key], path=f"output {out.op.label}")


# --------------------------------------------------------------------------
# the rules together, as explain shows them


def test_explain_optimized_runs_the_same_rules():
    s = scope()
    X, y = s["X"], s["y"]
    op = X.skb.apply(StandardScaler()).skb.apply(
        skrub.choose_from({"ridge": Ridge(), "dummy": DummyRegressor()}, name="m"), y=y)
    data = stratumlite.explain(op, optimized=True, format="json")
    result = optimize(to_plan(op), context=OptimizerContext(all_configurations=True))
    assert data["n_nodes"] == len(result.plan.nodes("key"))
    assert [r["rule"] for r in data["rewrites"]] == [e["rule"] for e in result.log]
    assert len(data["outputs"]) == 2
    labels = sorted(n["label"] for n in data["nodes"])
    assert labels.count("Apply StandardScaler") == 1  # the shared prefix, once
    assert "Apply Ridge" in labels and "Apply DummyRegressor" in labels
