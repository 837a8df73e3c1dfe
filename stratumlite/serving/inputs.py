"""Request bodies -> validated columns -> the input DataFrame; results -> JSON.

The served learner's predict reads exactly one dataframe variable (the ``X``
side; the ``y`` branch is dead in predict mode). Its columns and their dtypes
at fit time are ``learner.input_schema_[var]``; :class:`InputSchema` checks a
request against them **before** it is queued, so a bad request is answered
422 naming the column and never reaches (or breaks) a batch:

* a column of the schema missing from the request -> ``missing_column``;
* a value of the wrong JSON type -> ``invalid_value`` (a string in a float
  column, a float with a fraction or a null in a non-nullable int column, a
  list or object anywhere, an unparsable datetime);
* columns the schema does not know are dropped (the fit-time frame did not
  have them either) and the frame's columns follow the schema's order.

Validated requests are kept *column-wise* (one Python list per column); a
batch concatenates the lists of its requests and builds ONE pandas frame with
the fit-time dtypes (:meth:`InputSchema.build_frame`), so the frame the
learner sees equals the one a user would pass to ``learner.predict``.

Only JSON is ever parsed: nothing a client sends is unpickled.

>>> schema = InputSchema("X", {"x": "float64", "city": "object", "n": "int64"})
>>> cols, n = schema.parse({"records": [{"x": 1, "city": "Paris", "n": 2}]})
>>> schema.build_frame(cols).dtypes.astype(str).to_dict()
{'x': 'float64', 'city': 'object', 'n': 'int64'}
>>> try:
...     schema.parse({"records": [{"x": "high", "city": "Paris", "n": 2}]})
... except InputError as e:
...     print(e.column, "|", e)
x | column 'x' expects float64 values; record 0 has the str 'high'
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["InputError", "InputSchema", "to_json_rows"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class InputError(ValueError):
    """A request body that is valid JSON but not a valid input (HTTP 422).

    ``reason`` is a short machine-readable code (``missing_column``,
    ``invalid_value``, ``invalid_body``), ``column`` the offending column.
    """

    def __init__(self, message: str, *, reason: str = "invalid_value",
                 column: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.column = column


def _kind(dtype_text: str) -> tuple[str, Any, bool]:
    """(kind, pandas dtype or None, nullable) for a fit-time dtype text."""
    try:
        dtype = pd.api.types.pandas_dtype(dtype_text)
    except (TypeError, ValueError):
        return "object", None, True  # e.g. a polars dtype name: pass values through
    extension = isinstance(dtype, pd.api.extensions.ExtensionDtype)
    if pd.api.types.is_bool_dtype(dtype):
        return "bool", dtype, extension
    if pd.api.types.is_integer_dtype(dtype):
        return "int", dtype, extension
    if pd.api.types.is_float_dtype(dtype):
        return "float", dtype, True
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime", dtype, True
    if isinstance(dtype, pd.CategoricalDtype) or (
            pd.api.types.is_string_dtype(dtype) and dtype != np.dtype(object)):
        return "string", dtype, True
    return "object", np.dtype(object), True


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"the {type(value).__name__} {text}" if value is not None else "null"


class InputSchema:
    """The input contract of a served learner: one dataframe variable.

    Parameters
    ----------
    variable : str
        Name of the variable the frame is bound to (``learner.variables()``).
    columns : dict
        Column name -> dtype text at fit time (``learner.input_schema_[variable]``).
    """

    def __init__(self, variable: str, columns: dict[str, str]):
        self.variable = variable
        self.columns = dict(columns)
        self.order = list(self.columns)
        self._specs = {c: _kind(t) for c, t in self.columns.items()}

    @classmethod
    def from_learner(cls, learner, methods: Sequence[str] = ("predict",)) -> InputSchema:
        """The schema of ``learner``'s single dataframe input (ValueError otherwise)."""
        schemas = getattr(learner, "input_schema_", None) or {}
        names: list[str] = []
        for method in methods:
            for name in learner.variables(method):
                if name not in names:
                    names.append(name)
        frames = [n for n in names if n in schemas]
        others = [n for n in names if n not in schemas]
        if len(frames) != 1 or others:
            raise ValueError(
                "serving needs a learner whose predict reads exactly one dataframe "
                f"variable; this one reads {names} (dataframes at fit time: "
                f"{sorted(schemas)})")
        return cls(frames[0], schemas[frames[0]])

    def __eq__(self, other) -> bool:
        return (isinstance(other, InputSchema) and self.variable == other.variable
                and self.columns == other.columns)

    def __hash__(self) -> int:
        return hash((self.variable, tuple(self.columns.items())))

    def describe(self) -> dict:
        return {"variable": self.variable, "columns": dict(self.columns)}

    # ---------------------------------------------------------------- parsing
    def parse(self, body: Any) -> tuple[dict[str, list], int]:
        """Validate a decoded JSON body; return (column -> values, number of rows).

        ``body`` is ``{"records": [{col: value, ...}, ...]}`` or
        ``{"columns": {col: [values...], ...}}``.
        """
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object with 'records' or "
                             "'columns'", reason="invalid_body")
        if "records" in body and "columns" in body:
            raise InputError("give 'records' or 'columns', not both", reason="invalid_body")
        if "records" in body:
            columns, n = self._from_records(body["records"])
        elif "columns" in body:
            columns, n = self._from_columns(body["columns"])
        else:
            raise InputError("the request body needs 'records' (a list of objects) or "
                             "'columns' (an object of lists)", reason="invalid_body")
        for name in self.order:
            columns[name] = self._check(name, columns[name])
        return columns, n

    def _from_records(self, records: Any) -> tuple[dict[str, list], int]:
        if not isinstance(records, list):
            raise InputError("'records' must be a list of objects", reason="invalid_body")
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise InputError(f"record {i} is not a JSON object", reason="invalid_body")
        columns = {}
        for name in self.order:
            try:
                columns[name] = [r[name] for r in records]
            except KeyError:
                first = next(i for i, r in enumerate(records) if name not in r)
                raise InputError(
                    f"column {name!r} ({self.columns[name]}) is missing from record {first}",
                    reason="missing_column", column=name) from None
        return columns, len(records)

    def _from_columns(self, given: Any) -> tuple[dict[str, list], int]:
        if not isinstance(given, dict):
            raise InputError("'columns' must be an object mapping column names to lists",
                             reason="invalid_body")
        columns = {}
        n = None
        for name in self.order:
            if name not in given:
                raise InputError(f"column {name!r} ({self.columns[name]}) is missing",
                                 reason="missing_column", column=name)
            values = given[name]
            if not isinstance(values, list):
                raise InputError(f"column {name!r} must be a list of values",
                                 reason="invalid_value", column=name)
            if n is None:
                n = len(values)
            elif len(values) != n:
                raise InputError(
                    f"column {name!r} has {len(values)} values, the previous columns {n}",
                    reason="invalid_value", column=name)
            columns[name] = values
        return columns, n or 0

    def _check(self, name: str, values: list) -> list:
        kind, dtype, nullable = self._specs[name]
        dtype_text = self.columns[name]

        def fail(i: int, value: Any):
            raise InputError(
                f"column {name!r} expects {dtype_text} values; record {i} has "
                f"{_describe(value)}", reason="invalid_value", column=name)

        if kind == "float":
            for i, v in enumerate(values):
                t = type(v)
                if t is not float and t is not int and v is not None:
                    fail(i, v)
            return values
        if kind == "int":
            out = values
            for i, v in enumerate(values):
                t = type(v)
                if t is int:
                    if not _INT64_MIN <= v <= _INT64_MAX:
                        fail(i, v)
                elif t is float and math.isfinite(v) and v.is_integer():
                    if out is values:
                        out = list(values)
                    out[i] = int(v)
                elif not (v is None and nullable):
                    fail(i, v)
            return out
        if kind == "bool":
            for i, v in enumerate(values):
                if type(v) is not bool and not (v is None and nullable):
                    fail(i, v)
            return values
        if kind == "string":
            for i, v in enumerate(values):
                if type(v) is not str and v is not None:
                    fail(i, v)
            return values
        if kind == "datetime":
            for i, v in enumerate(values):
                if type(v) is not str and v is not None:
                    fail(i, v)
            out = []
            for i, v in enumerate(values):
                if v is None:
                    out.append(None)
                    continue
                try:
                    out.append(_to_timestamp(v, dtype))
                except (ValueError, TypeError, OverflowError):
                    fail(i, v)
            return out
        for i, v in enumerate(values):  # object: any JSON scalar
            if isinstance(v, (list, dict)):
                fail(i, v)
        return values

    # ---------------------------------------------------------------- frames
    def build_frame(self, columns: dict[str, list]) -> pd.DataFrame:
        """The pandas frame of validated ``columns``, with the fit-time dtypes."""
        data = {}
        for name in self.order:
            kind, dtype, _ = self._specs[name]
            values = columns[name]
            if dtype is None:
                data[name] = pd.Series(values, dtype=object)
            elif kind == "float" and isinstance(dtype, np.dtype):
                data[name] = pd.Series(np.array(values, dtype=dtype))
            elif kind == "int" and isinstance(dtype, np.dtype):
                data[name] = pd.Series(np.array(values, dtype=dtype))
            elif kind == "datetime":
                data[name] = pd.Series(pd.DatetimeIndex(values)).astype(dtype)
            else:
                data[name] = pd.Series(values, dtype=dtype)
        return pd.DataFrame(data, columns=self.order)


def _to_timestamp(text: str, dtype) -> pd.Timestamp:
    ts = pd.Timestamp(text)
    if ts is pd.NaT:
        return ts
    tz = getattr(dtype, "tz", None)
    if tz is not None:
        ts = ts.tz_localize(tz) if ts.tzinfo is None else ts.tz_convert(tz)
    elif ts.tzinfo is not None:
        raise ValueError("a time zone in a naive datetime column")
    return ts


# -------------------------------------------------------------------- outputs
def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, np.generic):
        return _scalar(v.item())
    if isinstance(v, (list, tuple)):
        return [_scalar(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _scalar(x) for k, x in v.items()}
    if isinstance(v, (pd.Timestamp, _dt.datetime, _dt.date)):
        return None if v is pd.NaT else v.isoformat()
    if v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, pd.Timedelta):
        return v.isoformat()
    if isinstance(v, np.ndarray):
        return [_scalar(x) for x in v.tolist()]
    return str(v)


def to_json_rows(result: Any, n_rows: int) -> list:
    """One JSON-ready value per input row of a predict result.

    A 1-d result gives scalars, a 2-d array (``predict_proba``) lists, a data
    frame ``{column: value}`` objects. NaN and missing values become ``null``.
    Raises ValueError when the result does not have one entry per input row.

    >>> to_json_rows(np.array([0.5, np.nan]), 2)
    [0.5, None]
    >>> to_json_rows(np.array([[0.25, 0.75]]), 1)
    [[0.25, 0.75]]
    >>> to_json_rows(pd.DataFrame({"a": [1], "b": ["x"]}), 1)
    [{'a': 1, 'b': 'x'}]
    """
    if hasattr(result, "to_pandas") and not isinstance(result, (pd.DataFrame, pd.Series)):
        result = result.to_pandas()  # polars
    if isinstance(result, pd.DataFrame):
        names = [str(c) for c in result.columns]
        rows = [dict(zip(names, (_scalar(v) for v in row)))
                for row in result.itertuples(index=False, name=None)]
    elif isinstance(result, pd.Series):
        rows = [_scalar(v) for v in result.tolist()]
    elif isinstance(result, np.ndarray):
        if result.ndim == 0:
            raise ValueError("the learner returned a scalar, not one value per row")
        if result.dtype.kind in "iub" or (
                result.dtype.kind == "f" and np.isfinite(result).all()):
            rows = result.tolist()  # fast path: plain numbers
        else:
            rows = [_scalar(v) for v in result.tolist()]
    elif hasattr(result, "toarray"):  # scipy sparse
        rows = [_scalar(v) for v in result.toarray().tolist()]
    elif isinstance(result, (list, tuple)):
        rows = [_scalar(v) for v in result]
    else:
        raise ValueError(f"cannot serve a result of type {type(result).__name__}")
    if len(rows) != n_rows:
        raise ValueError(
            f"the learner returned {len(rows)} rows for {n_rows} input rows: it is not "
            "row-wise, so it cannot be batched")
    return rows
