"""Text and JSON execution plans (``stratumlite.explain``).

The text form is a tree read from the output down, like polars' and DuckDB's
``explain``. Nodes are numbered in execution order (inputs first, so sources
have the smallest numbers). A node read by several consumers is printed once,
marked ``shared xN``; later references print ``-> #k (shared, see above)``.
Each line shows the operator, a short parameter summary, the short lineage
key, and (after ``analyze``) measured figures. Choices and sources are listed
after the tree.
"""

from __future__ import annotations

import json
from typing import Any

from .plan import Node, Plan, short_key

_BRANCH, _LAST, _PIPE, _SPACE = "├── ", "└── ", "│   ", "    "


def plan_to_dict(plan: Plan, *, dedupe: str = "id", title: str = "",
                 metrics: dict[str, dict] | None = None,
                 rewrites: list[dict] | None = None) -> dict[str, Any]:
    """The plan as plain data (what ``format="json"`` prints)."""
    nodes = plan.nodes(dedupe)
    ident = id if dedupe == "id" else (lambda n: n.key)
    number = {ident(n): i for i, n in enumerate(nodes)}
    consumers: dict[Any, int] = {}
    for n in nodes:
        for inp in dict.fromkeys(ident(i) for i in n.inputs):
            consumers[inp] = consumers.get(inp, 0) + 1
    entries = []
    for n in nodes:
        entry = {
            "id": number[ident(n)],
            "kind": n.op.kind,
            "label": display_label(n),
            "key": n.key,
            "inputs": [number[ident(i)] for i in n.inputs],
            "consumers": consumers.get(ident(n), 0),
            "params": n.op.summary(),
        }
        if n.name:
            entry["name"] = n.name
        if n.op.is_source():
            entry["source"] = _source_info(n)
        if metrics and n.key in metrics:
            entry["metrics"] = metrics[n.key]
        entries.append(entry)
    choices = [
        {"id": number[ident(n)], **n.op.summary()}
        for n in nodes if n.op.kind in ("choice", "numeric_choice")
    ]
    out = {
        "title": title,
        "n_nodes": len(nodes),
        "outputs": [number[ident(o)] for o in plan.outputs],
        "nodes": entries,
        "choices": choices,
    }
    if rewrites is not None:
        out["rewrites"] = rewrites
    return out


def display_label(node: Node) -> str:
    """The operator label, naming the estimator an Apply really runs once its
    choice is expanded (``Apply HistGradientBoostingRegressor``)."""
    op = node.op
    templates = getattr(op, "templates", None)
    if op.kind == "Apply" and templates is not None:
        est = templates.get("estimator")
        index = getattr(est, "index", None)
        if index is not None and index < len(node.inputs):
            source = node.inputs[index].op
            if source.kind in ("const", "value"):
                name = source.label.split(" ", 1)[-1].split("(")[0]
                return f"Apply {name}"
    return op.label


def _source_info(node: Node) -> dict:
    op = node.op
    info: dict[str, Any] = {}
    templates = getattr(op, "templates", {})
    if op.kind == "Var":
        info["variable"] = templates.get("name")
        value = templates.get("value")
        from .canonical import describe_fingerprint

        from_env = "value from the environment"
        if value is not None and repr(value) != "NULL":
            info["fingerprint"] = f"{from_env}; preview: {describe_fingerprint(value)}"
        else:
            info["fingerprint"] = from_env
    elif op.kind == "Value":
        from .canonical import describe_fingerprint

        info["fingerprint"] = describe_fingerprint(templates.get("value"))
    return info


def render_text(data: dict[str, Any]) -> str:
    """Render :func:`plan_to_dict` output as a tree."""
    nodes = data["nodes"]
    lines = []
    header = data.get("title") or "PLAN"
    n_choices = len(data["choices"])
    n_sources = sum(1 for n in nodes if "source" in n)
    lines.append(
        f"{header}: {data['n_nodes']} nodes, {n_choices} choice"
        f"{'s' if n_choices != 1 else ''}, {n_sources} source"
        f"{'s' if n_sources != 1 else ''}"
    )
    printed: set[int] = set()
    for out in data["outputs"]:
        stack: list[tuple[int, str, bool, bool]] = [(out, "", True, True)]
        while stack:
            nid, prefix, last, is_root = stack.pop()
            entry = nodes[nid]
            connector = "" if is_root else (_LAST if last else _BRANCH)
            if nid in printed:
                lines.append(f"{prefix}{connector}-> #{nid} {entry['label']} (shared, see above)")
                continue
            printed.add(nid)
            lines.append(f"{prefix}{connector}{_line(entry)}")
            child_prefix = prefix + ("" if is_root else (_SPACE if last else _PIPE))
            inputs = list(dict.fromkeys(entry["inputs"]))
            for i, child in reversed(list(enumerate(inputs))):
                stack.append((child, child_prefix, i == len(inputs) - 1, False))
    if data["choices"]:
        lines.append("choices:")
        for c in data["choices"]:
            if "outcomes" in c:
                outs = " | ".join(c["outcomes"])
                lines.append(f"  #{c['id']} {c['name']!r} ({c['type']}): {outs}")
            else:
                lines.append(f"  #{c['id']} {c['name']!r}: {c['range']}")
    sources = [n for n in nodes if "source" in n]
    if sources:
        lines.append("sources:")
        for n in sources:
            src = n["source"]
            lines.append(f"  #{n['id']} {n['label']} [{short_key(n['key'])}]: "
                         f"{src.get('fingerprint', '')}")
    if data.get("rewrites"):
        lines.append("rewrites:")
        for r in data["rewrites"]:
            lines.append(f"  {r['rule']}: {r['nodes_before']} -> {r['nodes_after']} nodes"
                         + (f"; {r['detail']}" if r.get("detail") else ""))
    return "\n".join(lines)


def _line(entry: dict) -> str:
    text = f"#{entry['id']} {entry['label']}"
    if entry.get("name") and repr(entry["name"]) not in entry["label"]:
        text += f" name={entry['name']!r}"
    params = entry.get("params", {})
    flags = [f for f in ("is_X", "is_y") if params.get(f)]
    if flags:
        text += " [" + ", ".join("X" if f == "is_X" else "y" for f in flags) + "]"
    text += f"  [{short_key(entry['key'])}]"
    if entry["consumers"] > 1:
        text += f" shared x{entry['consumers']}"
    m = entry.get("metrics")
    if m:
        text += "  " + _metrics_text(m)
    return text


def _metrics_text(m: dict) -> str:
    parts = []
    if "seconds" in m:
        parts.append(f"{m['seconds'] * 1000:.1f} ms")
    if m.get("threads"):
        parts.append(f"threads={m['threads']}")
    if m.get("shape"):
        rows, cols = m["shape"]
        parts.append(f"{rows}x{cols}" if cols is not None else f"{rows} rows")
    if m.get("bytes") is not None:
        parts.append(_human_bytes(m["bytes"]))
    if m.get("cache"):
        parts.append(f"cache={m['cache']}")
    return "(" + ", ".join(parts) + ")"


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def render(plan: Plan, *, format: str = "text", **kwargs) -> str | dict:
    data = plan_to_dict(plan, **kwargs)
    if format == "text":
        return render_text(data)
    if format == "json":
        return data
    raise ValueError(f"format must be 'text' or 'json'. Got {format!r} instead.")


def dumps(data: dict) -> str:
    return json.dumps(data, indent=2, default=str)
