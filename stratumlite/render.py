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


def value_shape(value) -> tuple[int | None, int | None] | None:
    """(rows, cols) of a table/array-like value, without copying it."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and shape:
        rows = shape[0] if isinstance(shape[0], int) else None
        cols = shape[1] if len(shape) > 1 and isinstance(shape[1], int) else None
        return rows, cols
    if isinstance(value, (list, tuple)):
        return len(value), None
    return None


def value_bytes(value) -> int | None:
    """Approximate size in memory (no deep copies)."""
    try:
        if hasattr(value, "estimated_size"):  # polars
            return int(value.estimated_size())
        if hasattr(value, "memory_usage") and hasattr(value, "columns"):  # pandas frame
            return int(value.memory_usage(index=True, deep=False).sum())
        if hasattr(value, "memory_usage"):  # pandas series
            return int(value.memory_usage(index=True, deep=False))
        if hasattr(value, "nbytes"):
            return int(value.nbytes)
        if hasattr(value, "data") and hasattr(value, "indices"):  # scipy sparse
            return int(value.data.nbytes + value.indices.nbytes + value.indptr.nbytes)
    except Exception:
        return None
    return None


class Analysis:
    """Collects per-task measurements for ``explain(analyze=True)``.

    Used as a session ``on_done`` callback: it keeps, per node key, the summed
    wall time, the largest thread budget, the output shape and bytes, and the
    cache statuses seen.
    """

    def __init__(self):
        self.metrics: dict[str, dict] = {}
        self.tasks = 0

    def __call__(self, record, value) -> None:
        self.tasks += 1
        key = record.task.node.key
        m = self.metrics.setdefault(key, {"seconds": 0.0, "threads": 0, "tasks": 0,
                                          "cache_statuses": []})
        m["seconds"] += record.seconds
        m["max_task_seconds"] = max(m.get("max_task_seconds", 0.0), record.seconds)
        m["threads"] = max(m["threads"], record.threads)
        m["tasks"] += 1
        if record.status not in m["cache_statuses"]:
            m["cache_statuses"].append(record.status)
        m["cache"] = "/".join(_CACHE_WORDS.get(s, s) for s in m["cache_statuses"])
        shape = value_shape(value)
        if shape is not None:
            m["shape"] = shape
        nbytes = value_bytes(value)
        if nbytes is not None:
            m["bytes"] = nbytes

    def totals(self, plan: Plan, wall: float, cores: int, peak_rss: int | None,
               spilled: int = 0, memory_waits: int = 0) -> dict:
        nodes = plan.nodes("key")
        secs = {n.key: self.metrics.get(n.key, {}).get("seconds", 0.0) for n in nodes}
        longest = {n.key: self.metrics.get(n.key, {}).get("max_task_seconds", 0.0)
                   for n in nodes}
        # critical path: the longest chain of single-task times through the DAG
        # (tasks of one node on different folds run side by side)
        best: dict[str, tuple[float, list[str]]] = {}
        for n in nodes:
            prev = max((best[i.key] for i in n.inputs), default=(0.0, []),
                       key=lambda t: t[0])
            best[n.key] = (prev[0] + longest[n.key], prev[1] + [n.key])
        crit = max(best.values(), key=lambda t: t[0]) if best else (0.0, [])
        total = sum(secs.values())
        return {
            "wall_seconds": wall,
            "sum_node_seconds": total,
            "tasks": self.tasks,
            "cores": cores,
            "dedup_bound_seconds": total / max(cores, 1),
            "critical_path_seconds": crit[0],
            "critical_path": crit[1],
            "peak_rss_bytes": peak_rss,
            "spilled": spilled,
            "memory_waits": memory_waits,
        }


_CACHE_WORDS = {"computed": "miss", "stored": "miss+stored", "hit": "hit", "failed": "failed"}


def render_totals(t: dict, number: dict[str, int]) -> str:
    path = " -> ".join(f"#{number[k]}" for k in t["critical_path"] if k in number)
    lines = [
        "analyze:",
        f"  wall time {t['wall_seconds'] * 1000:.1f} ms; node time summed "
        f"{t['sum_node_seconds'] * 1000:.1f} ms over {t['tasks']} tasks; "
        f"dedup bound {t['dedup_bound_seconds'] * 1000:.1f} ms on {t['cores']} cores",
        f"  critical path {t['critical_path_seconds'] * 1000:.1f} ms: {path}",
    ]
    if t.get("peak_rss_bytes"):
        lines.append(f"  peak RSS {_human_bytes(t['peak_rss_bytes'])}"
                     + (f"; buffers spilled: {t['spilled']}" if t.get("spilled") else "")
                     + (f"; tasks held back by the memory budget: {t['memory_waits']}"
                        if t.get("memory_waits") else ""))
    return "\n".join(lines)
