"""Recording a session's executions in the lineage store (:class:`LineageHook`).

A :class:`~stratumlite.runtime.session.Session` built with
``Config(lineage=True)`` gets one :class:`LineageHook`. It opens the store at
``Config.lineage_db``, starts a run when the session starts, and for each task
the scheduler finishes records (through one batching
:class:`~stratumlite.lineage.store.Recorder`):

* the task's node and, recursively, the inputs not recorded yet in this run
  (a cache hit or a value computed earlier is not executed again, yet its
  ancestors belong to the run's lineage): lineage key, operator kind, label
  (the node's name, else the operator label), a canonical summary of its
  parameters, a code hash when it runs user functions, input keys in order;
* source nodes (``op.is_source()``): variable name, data fingerprint, how it
  was fingerprinted, rows and schema;
* the execution: mode, fold (the binding's label and short key, plus the key of
  the data the state was fitted on for a predict-like task), duration, output
  shape and size (cheap estimates: no deep inspection), cache status.

Recorded keys pin the data
--------------------------
A plan's source key is a fingerprint of the value the variable was *created*
with (none for ``skrub.var("x")`` without a value, and none in a search, whose
DataOp is cloned without values); the runtime binds the real data separately.
The store must tell two runs on different data apart, so a node is recorded
under the key it would have had if its variables had been created with the
data actually bound: the same :func:`~stratumlite.plan.lineage_key`, with the
fingerprint of the bound value in the variable's token. When the bound value is
the variable's own value (the common case: a script's variables, a learner
fitted on them), that *is* the plan key, as printed by ``explain``.

Cost: per task, a few dictionary look-ups and one tuple appended to the
recorder's batch; per node and run, a bounded walk of its parameters; per
source and run, its fingerprint (usually already computed when the session
bound the environment). Recording never fails the computation: an error
disables it for the rest of the run with a warning.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import types
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

import xxhash

from ..canonical import NON_SEMANTIC_PARAMS, fingerprint, is_unique_token, tokenize
from ..plan import lineage_key

__all__ = ["LineageHook", "fitted_run", "summarize_params"]

_FIT_MODES = ("fit", "fit_transform")
_MAX_ITEMS = 30
_MAX_DEPTH = 5
_MAX_TEXT = 200
_ADDRESS_RE = re.compile(r" at 0x[0-9a-fA-F]+")

# (plan node key, binding key) -> (lineage db, run id, recorded key) of the
# latest fit of that node on that data in this process, so that registering a
# learner links the run that fitted it. Bounded (least recently fitted out).
_FITS: OrderedDict[tuple[str, str], tuple[str, str, str]] = OrderedDict()
_FITS_MAX = 4096
_FITS_LOCK = threading.Lock()


def fitted_run(node_key: str, binding_key: str, lineage_db) -> tuple[str, str] | None:
    """``(run id, recorded key)`` of the latest recorded fit of plan node
    ``node_key`` on the data ``binding_key`` into ``lineage_db`` (this process
    only), or None."""
    with _FITS_LOCK:
        found = _FITS.get((node_key, binding_key))
    if found is None or found[0] != _db_id(lineage_db):
        return None
    return found[1], found[2]


def _db_id(path) -> str:
    return os.path.abspath(os.fspath(path))


class LineageHook:
    """Session hook recording every executed node in the lineage store.

    Parameters
    ----------
    config : Config
        ``lineage_db`` says where the store is.
    store : LineageStore or None
        Use this store instead of opening ``config.lineage_db`` (not closed at
        the end of the run).

    >>> import tempfile, skrub
    >>> from stratumlite.config import Config
    >>> from stratumlite.frontend import to_plan
    >>> from stratumlite.lineage import LineageStore
    >>> from stratumlite.runtime.session import Session
    >>> cfg = Config(state_dir=tempfile.mkdtemp(), lineage=True, executor="sequential")
    >>> plan = to_plan(skrub.var("x", 20) + 1)
    >>> with Session(cfg) as s:
    ...     s.run([s.request(plan.output, "fit_transform", s.bind({"x": 20}))])
    [21]
    >>> store = LineageStore(cfg.lineage_db)
    >>> run = store.run(s.run_id)
    >>> run["status"], run["n_nodes"], run["n_executions"]
    ('finished', 2, 2)
    >>> [n["source"]["name"] for n in store.ancestors(plan.output.key)]
    ['x']
    """

    def __init__(self, config, store=None):
        self.config = config
        self.store = store
        self._own_store = store is None
        self.recorder = None
        self.run_id: str | None = None
        self.session = None
        self._db = ""
        self._recorded: set[str] = set()  # recorded keys already sent this run
        self._rkeys: dict[str, dict[str, str]] = {}  # binding key -> plan -> recorded
        self._fp_memo: dict[int, tuple[Any, str]] = {}
        self._cache_on = False
        self._broken = False

    # --- session protocol ----------------------------------------------------
    def start(self, session) -> None:
        """Open the store and start a run (``session.run_id`` is set)."""
        try:
            from .store import LineageStore

            if self.store is None:
                self.store = LineageStore(self.config.lineage_db)
            script = session.script or _script_path()
            self.run_id = self.store.start_run(
                session.kind, script=script,
                config=self.config.model_dump(mode="json"))
            self.recorder = self.store.recorder(self.run_id)
        except Exception as err:  # never fail the user's computation
            self._disable(err)
            return
        self.session = session
        session.run_id = self.run_id
        self._db = _db_id(self.store.path)
        self._cache_on = getattr(session, "cache", None) is not None
        memo = getattr(session, "_env_memo", None)
        if isinstance(memo, dict):
            self._fp_memo = memo  # fingerprints the session computed when binding

    def task_done(self, record, value) -> None:
        """Record a finished task (its node, missing ancestors, the execution)."""
        if self.recorder is None:
            return
        try:
            self._task_done(record, value)
        except Exception as err:
            self._disable(err)

    def end(self, session, status: str) -> None:
        """Flush the records and end the run with ``status``."""
        if self.run_id is None or self.store is None:
            return
        if status == "failed" and isinstance(sys.exc_info()[1], KeyboardInterrupt):
            status = "interrupted"
        try:
            if self.recorder is not None:
                self.recorder.close()
        except Exception as err:
            warnings.warn(f"stratumlite: lineage records of run {self.run_id} were "
                          f"not all written: {err}", RuntimeWarning, stacklevel=2)
        try:
            self.store.end_run(self.run_id, status)
        except Exception as err:
            warnings.warn(f"stratumlite: could not end lineage run {self.run_id}: {err}",
                          RuntimeWarning, stacklevel=2)
        finally:
            self.recorder = None
            if self._own_store:
                self.store.close()
            self._rkeys.clear()
            self.session = None

    # --- recording -------------------------------------------------------------
    def _disable(self, err: BaseException) -> None:
        if not self._broken:
            warnings.warn(f"stratumlite: lineage recording disabled for this run: "
                          f"{type(err).__name__}: {err}", RuntimeWarning, stacklevel=3)
        self._broken = True
        self.recorder = None

    def _task_done(self, record, value) -> None:
        task = record.task
        binding = task.binding
        node = task.node
        rkey = self.recorded_key(node, binding)
        if rkey not in self._recorded:
            self._record_nodes(node, binding)
        status = record.status
        if status == "hit":
            cache = "hit"
        elif status == "stored":
            cache = "stored"
        else:
            cache = "miss" if self._cache_on else None
        rows, cols, nbytes = describe_output(value)
        fold = _binding_text(binding)
        fit_binding = task.fit_binding
        if fit_binding is not None and not task.fitting:
            fold += f" fit@{fit_binding.key[:8]}"
        self.recorder.execution(rkey, task.mode, fold, record.seconds, rows, cols,
                                nbytes, cache)
        if task.mode in _FIT_MODES:
            entry = (self._db, self.run_id, rkey)
            with _FITS_LOCK:
                _FITS[(node.key, binding.key)] = entry
                _FITS.move_to_end((node.key, binding.key))
                if len(_FITS) > _FITS_MAX:
                    _FITS.popitem(last=False)

    def recorded_key(self, node, binding) -> str:
        """The key ``node`` is recorded under when its sources are bound by
        ``binding`` (see the module docstring)."""
        memo = self._rkeys.get(binding.key)
        if memo is None:
            memo = self._rkeys[binding.key] = {}
        found = memo.get(node.key)
        if found is not None:
            return found
        stack = [node]
        while stack:
            n = stack[-1]
            if n.key in memo:
                stack.pop()
                continue
            missing = [i for i in n.inputs if i.key not in memo]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            if n.op.is_source():
                memo[n.key] = self._source_key(n, binding)
            elif all(memo[i.key] == i.key for i in n.inputs):
                memo[n.key] = n.key
            else:
                memo[n.key] = lineage_key(n.op.kind, n.op.token,
                                          [memo[i.key] for i in n.inputs])
        return memo[node.key]

    def _record_nodes(self, node, binding) -> None:
        """Record ``node`` and those of its ancestors not recorded yet (one batch:
        the order does not matter)."""
        memo = self._rkeys[binding.key]
        rec = self.recorder
        stack = [node]
        seen: set[str] = set()
        order = []
        while stack:
            n = stack.pop()
            rk = memo[n.key]
            if rk in self._recorded or rk in seen:
                continue
            seen.add(rk)
            order.append(n)
            stack.extend(n.inputs)
        for n in reversed(order):
            rk = memo[n.key]
            if rk in self._recorded:
                continue
            self._recorded.add(rk)
            op = n.op
            params, code_hash = node_params(op)
            rec.node(rk, op.kind, node_label(n), params, code_hash,
                     [memo[i.key] for i in n.inputs])
            if op.is_source():
                value, has_value = _source_value(n, binding)
                fp = self._fingerprint(value) if has_value else None
                rec.source(rk, _source_name(n), fp or n.key,
                           _fingerprint_how(value, fp) if has_value else "no value",
                           *_rows_schema(value))

    # --- sources ---------------------------------------------------------------
    def _fingerprint(self, value) -> str:
        hit = self._fp_memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        fp = fingerprint(value)
        self._fp_memo[id(value)] = (value, fp)
        return fp

    def _source_key(self, node, binding) -> str:
        """A source's recorded key: the plan key when the bound value is the one
        the key was made from, else the key made from the bound value."""
        op = node.op
        templates = getattr(op, "templates", None)
        if not templates or op.kind != "Var":
            return node.key
        value, has_value = _source_value(node, binding)
        if not has_value or value is templates.get("value"):
            return node.key
        # The frontend's token of a variable created with ``value`` (see
        # ``_Converter.token``): equal to op.token when the data is the same.
        token = tokenize(("Var", templates.get("name"), templates.get("becomes_default"),
                          self._fingerprint(value)))
        if token == op.token:
            return node.key
        return lineage_key(op.kind, token, ())


# --------------------------------------------------------------------------------
# What is recorded about a node
# --------------------------------------------------------------------------------


def node_label(node) -> str:
    """The node's name, else its operator label (an Apply names its estimator)."""
    if node.name:
        return str(node.name)
    from ..render import display_label

    return display_label(node)


_PARAMS_MEMO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def node_params(op) -> tuple[dict, str | None]:
    """``(params summary, code hash)`` of an operator (memoized per operator).

    The summary is ``op.summary()`` plus a bounded, JSON-able rendering of the
    operator's fields (estimators as class + parameters, functions by name,
    inputs as ``<input i>``, data as type and shape). The code hash digests
    the bytecode of the user functions the operator runs (and of the user
    functions and classes they reach), or None.
    """
    try:
        return _PARAMS_MEMO[op]
    except (KeyError, TypeError):
        pass
    functions: list = []
    params = dict(op.summary() or {})
    templates = getattr(op, "templates", None)
    if isinstance(templates, dict):
        fields = {k: v for k, v in templates.items()
                  if not (op.kind == "Var" and k == "value")}
        params["fields"] = summarize_params(fields, functions)
    elif hasattr(op, "template"):
        params["value"] = summarize_params(op.template, functions)
    elif op.kind == "const" and hasattr(op, "value"):
        params["value"] = summarize_params(op.value, functions)
    result = (params, _code_hash(functions))
    try:
        _PARAMS_MEMO[op] = result
    except TypeError:
        pass
    return result


def summarize_params(value: Any, functions: list | None = None, _depth: int = 0) -> Any:
    """A bounded, JSON-able, deterministic rendering of operator parameters.

    >>> from sklearn.linear_model import Ridge
    >>> summarize_params({"est": Ridge(alpha=2.0, solver="svd"), "n": [1, 2]})
    {'est': {'class': 'sklearn.linear_model._ridge.Ridge', 'params': {'alpha': 2.0, \
'copy_X': True, 'fit_intercept': True, 'max_iter': None, 'positive': False, \
'random_state': None, 'solver': 'svd', 'tol': 0.0001}}, 'n': [1, 2]}
    """
    if value is None or isinstance(value, (bool, int, float)):
        if isinstance(value, float) and value != value:
            return "nan"
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "..."
    t = type(value)
    name = t.__name__
    if name == "InputRef":
        return f"<input {value.index}>"
    if _depth >= _MAX_DEPTH:
        return f"<{name}>"
    if name == "EstimatorTemplate":
        out = summarize_params(value.estimator, functions, _depth)
        if isinstance(out, dict) and isinstance(out.get("params"), dict):
            out["params"].update(
                {str(k): summarize_params(v, functions, _depth + 2)
                 for k, v in value.params.items()})
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if isinstance(value, (set, frozenset)):
            items = sorted(items, key=repr)
        out = [summarize_params(v, functions, _depth + 1) for v in items[:_MAX_ITEMS]]
        if len(items) > _MAX_ITEMS:
            out.append(f"... {len(items) - _MAX_ITEMS} more")
        return out
    if isinstance(value, dict):
        keys = sorted(value, key=repr)
        out = {str(k): summarize_params(value[k], functions, _depth + 1)
               for k in keys[:_MAX_ITEMS]}
        if len(keys) > _MAX_ITEMS:
            out["..."] = f"{len(keys) - _MAX_ITEMS} more"
        return out
    if isinstance(value, slice):
        return {"slice": [summarize_params(x, functions, _depth + 1)
                          for x in (value.start, value.stop, value.step)]}
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType):
        if functions is not None and isinstance(value, types.FunctionType):
            functions.append(value)
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', name)}"
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if callable(getattr(t, "get_params", None)) and not isinstance(value, type):
        try:
            raw = value.get_params(deep=False)
        except Exception:
            raw = None
        if raw is not None:
            if functions is not None:
                functions.append(t)
            return {
                "class": f"{t.__module__}.{t.__qualname__}",
                "params": {str(k): summarize_params(v, functions, _depth + 2)
                           for k, v in sorted(raw.items())
                           if k not in NON_SEMANTIC_PARAMS},
            }
    rows, cols, _ = describe_output(value)
    if rows is not None:
        shape = f"{rows}x{cols}" if cols is not None else f"{rows}"
        return f"<{t.__module__.split('.')[0]}.{name} {shape}>"
    if isinstance(value, types.MethodType):
        return f"<method {getattr(value, '__qualname__', name)}>"
    text = _ADDRESS_RE.sub("", repr(value))
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _code_hash(found: list) -> str | None:
    """Digest of the code of the user functions / classes in ``found`` and of
    the user functions they reach through their globals and closures."""
    try:
        from ..canonical import _code_encoding, _global_names, _is_library
    except ImportError:  # pragma: no cover - canonical reorganised
        return None
    h = xxhash.xxh3_128()
    seen: set[int] = set()
    stack = list(reversed(found))
    n = 0
    while stack and n < 200:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        module = getattr(obj, "__module__", None)
        if not isinstance(module, str) or _is_library(module):
            continue
        if isinstance(obj, type):
            n += 1
            h.update(f"class {obj.__qualname__}".encode())
            for _, member in sorted(vars(obj).items(), key=lambda kv: kv[0]):
                if isinstance(member, staticmethod | classmethod):
                    member = member.__func__
                if isinstance(member, types.FunctionType):
                    stack.append(member)
            continue
        if not isinstance(obj, types.FunctionType):
            continue
        n += 1
        code = obj.__code__
        h.update(f"def {obj.__qualname__}".encode())
        h.update(_code_encoding(code))
        for cell in obj.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:
                continue
            if isinstance(content, types.FunctionType | type):
                stack.append(content)
        namespace = obj.__globals__
        for gname in _global_names(code):
            target = namespace.get(gname)
            if isinstance(target, types.FunctionType | type):
                stack.append(target)
    return h.hexdigest() if n else None


def _source_value(node, binding) -> tuple[Any, bool]:
    """The value bound to a source node (the full data, not a fold's rows)."""
    op = node.op
    templates = getattr(op, "templates", None) or {}
    env = binding.env or {}
    if op.kind == "Var":
        name = templates.get("name")
        if name in env:
            return env[name], True
        value = templates.get("value")
        if value is not None and repr(value) != "NULL":
            return value, True
        return None, False
    if node.name is not None and node.name in env:
        return env[node.name], True
    if "value" in templates:
        return templates["value"], True
    return None, False


def _source_name(node) -> str:
    templates = getattr(node.op, "templates", None) or {}
    return str(templates.get("name") or node.name or node.op.label)


def _fingerprint_how(value, fp: str | None) -> str:
    if fp is not None and is_unique_token(fp):
        return "unique token (cannot be canonicalized: never reused)"
    if isinstance(value, Path):
        return "path+size+mtime"
    if describe_output(value)[0] is not None:
        return "content (xxh3-128)"
    return "canonical token"


def _rows_schema(value) -> tuple[int | None, Any]:
    rows, _, _ = describe_output(value)
    schema = None
    mod = type(value).__module__.split(".")[0]
    try:
        if mod == "pandas" and hasattr(value, "dtypes"):
            dtypes = value.dtypes
            if hasattr(dtypes, "items"):
                schema = {str(k): str(v) for k, v in list(dtypes.items())[:500]}
            else:  # a Series
                schema = {str(value.name): str(dtypes)}
        elif mod == "polars" and hasattr(value, "schema"):
            schema = {str(k): str(v) for k, v in list(value.schema.items())[:500]}
        elif mod == "polars" and hasattr(value, "dtype"):
            schema = {str(value.name): str(value.dtype)}
        elif mod == "numpy" and hasattr(value, "dtype"):
            schema = {"dtype": str(value.dtype), "shape": list(value.shape)}
    except Exception:
        schema = None
    return rows, schema


def describe_output(value) -> tuple[int | None, int | None, int | None]:
    """``(rows, cols, bytes)`` of a value: cheap estimates, None when unknown.

    >>> import numpy as np
    >>> describe_output(np.zeros((4, 3)))
    (4, 3, 96)
    >>> describe_output([1, 2])
    (2, None, None)
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return None, None, None
    t = type(value)
    mod = t.__module__.split(".")[0]
    try:
        if mod == "numpy":
            shape = getattr(value, "shape", None)
            if not shape:
                return None, None, None
            return (int(shape[0]), int(shape[1]) if len(shape) > 1 else 1,
                    int(value.nbytes))
        if mod == "pandas":
            if t.__name__ == "DataFrame":
                rows, cols = value.shape
                nbytes = int(value.memory_usage(index=False, deep=False).sum())
                return int(rows), int(cols), nbytes
            if t.__name__ == "Series":
                return len(value), 1, int(value.array.nbytes)
            return len(value), None, None
        if mod == "polars":
            if t.__name__ == "DataFrame":
                rows, cols = value.shape
                return int(rows), int(cols), int(value.estimated_size())
            if t.__name__ == "Series":
                return len(value), 1, int(value.estimated_size())
            return None, None, None
        if mod == "scipy" and hasattr(value, "nnz"):
            rows, cols = value.shape
            nbytes = sum(int(getattr(value, a).nbytes)
                         for a in ("data", "indices", "indptr") if hasattr(value, a))
            return int(rows), int(cols), nbytes
        if mod == "pyarrow" and hasattr(value, "num_rows"):
            return int(value.num_rows), int(value.num_columns), int(value.nbytes)
    except Exception:
        return None, None, None
    if isinstance(value, (list, tuple)):
        return len(value), None, None
    return None, None, None


def _binding_text(binding) -> str:
    label = binding.label or "data"
    return f"{label}@{binding.key[:8]}"


def _script_path() -> str | None:
    arg0 = sys.argv[0] if sys.argv else ""
    if arg0 and arg0 not in ("-c", "-m") and os.path.isfile(arg0):
        return os.path.abspath(arg0)
    return None
