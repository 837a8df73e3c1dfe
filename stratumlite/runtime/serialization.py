"""Serializing values to files, exactly: shared by the cache and the buffer pool.

Design
------
A value is written in the format its type allows, chosen by :func:`choose_format`:

=====================  ==================  =====================================
value                  format              file
=====================  ==================  =====================================
pandas DataFrame of    ``pandas-npy``      ``<stem>.npy``: one matrix per dtype
numpy numbers, a                           (and the index values) back to back;
numeric or range index                     labels in ``meta`` (a model's
                                           features: 3-5x faster than parquet)
pandas DataFrame       ``pandas``          ``<stem>.parquet`` (pyarrow)
pandas Series          ``pandas-series``   ``<stem>.parquet``, a one-column frame
polars DataFrame       ``polars``          ``<stem>.parquet``
polars Series          ``polars-series``   ``<stem>.parquet``, a one-column frame
numpy ndarray          ``npy``             ``<stem>.npy``
anything else          ``pickle``          ``<stem>.pkl`` (cloudpickle, protocol 5)
=====================  ==================  =====================================

The rule is **exact round trip or pickle**: a columnar format is used only when
every column dtype, the index and the column labels are on a whitelist of
things parquet is known to restore exactly (checked by
``tests/test_runtime_cache.py`` with Hypothesis-generated frames). Everything
else — pandas ``object`` columns (mixed types, or ``str`` values that would come
back as the ``str`` dtype), ``datetime64[s]`` (comes back as ``ms``),
categoricals of non-strings, periods, intervals, pyarrow-backed dtypes, frames
with ``attrs``, a ``MultiIndex``, non-string or duplicate column labels,
numpy object arrays, subclasses — falls back to cloudpickle, which is exact by
construction. A Series keeps its name (``None``, ``str`` or ``int``; other names
fall back to pickle), dtype and index.

Every file is hashed (sha256) *while* it is written (:class:`_HashingWriter`,
no second pass) and can be verified when read back (one read into memory, then
decoded from that buffer without another copy). :func:`write_value` returns a
:class:`Written` record (format, per-file size and sha256, small JSON-able
metadata) that the caller keeps (the cache in its manifest, the buffer pool in
memory) and hands back to :func:`read_value`.

Worked example::

    >>> import tempfile, pathlib, pandas as pd
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> w = write_value(pd.Series([1, 2], name="n"), d)
    >>> w.format, sorted(w.files)
    ('pandas-series', ['value.parquet'])
    >>> read_value(d, w).name
    'n'
    >>> write_value([1, "a"], d, stem="other").format
    'pickle'

:func:`estimate_nbytes` is the size model shared by the buffer pool (budget) and
the cache (cost rule): pandas ``memory_usage(deep=True)``, polars
``estimated_size()``, numpy ``nbytes``, scipy sparse (its arrays), containers
recursively, else the pickled length.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

__all__ = [
    "CorruptFileError",
    "FileInfo",
    "Written",
    "canonical_json",
    "choose_format",
    "dump_pickle",
    "estimate_nbytes",
    "load_pickle",
    "read_value",
    "write_value",
]

_SUFFIX = {"pandas-npy": ".npy", "pandas": ".parquet", "pandas-series": ".parquet",
           "polars": ".parquet", "polars-series": ".parquet", "npy": ".npy", "pickle": ".pkl"}
_SERIES_COLUMN = "values"


class CorruptFileError(OSError):
    """A file does not have the size or sha256 recorded when it was written."""


@dataclass(frozen=True)
class FileInfo:
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Written:
    """What :func:`write_value` wrote: enough to read the value back and check it."""

    format: str
    files: dict[str, FileInfo]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(f.bytes for f in self.files.values())


# --------------------------------------------------------------------------
# choosing a format


def _module(value) -> str:
    return type(value).__module__.split(".", 1)[0]


def choose_format(value) -> str:
    """The format ``value`` is written in (see the module docstring).

    >>> import numpy as np, pandas as pd
    >>> choose_format(np.arange(3)), choose_format(np.array([1, None]))
    ('npy', 'pickle')
    >>> choose_format(pd.DataFrame({"a": [1.5], "b": ["x"]}))
    'pandas'
    >>> choose_format(pd.DataFrame({"a": [1.5]})), choose_format(pd.DataFrame({0: [1]}))
    ('pandas-npy', 'pickle')
    """
    mod = _module(value)
    if mod == "numpy":
        if type(value) is np.ndarray and not value.dtype.hasobject:
            return "npy"
    elif mod == "pandas":
        import pandas as pd

        if type(value) is pd.DataFrame and _pandas_frame_ok(value):
            return "pandas-npy" if _pandas_matrix_ok(value) else "pandas"
        if type(value) is pd.Series and _pandas_series_ok(value):
            return "pandas-series"
    elif mod == "polars":
        import polars as pl

        if type(value) is pl.DataFrame and all(_polars_dtype_ok(t) for t in value.dtypes):
            return "polars"
        if type(value) is pl.Series and _polars_dtype_ok(value.dtype):
            return "polars-series"
    return "pickle"


def _default_str_dtype():
    import pandas as pd

    return pd.Index(["a"]).dtype


def _pandas_dtype_ok(dtype, nrows: int) -> bool:
    import pandas as pd

    if isinstance(dtype, np.dtype):
        if dtype.kind in "biuf":
            return dtype.itemsize >= 4 or dtype.kind in "biu"
        if dtype.kind == "M":
            return np.datetime_data(dtype)[0] in ("ms", "us", "ns")
        if dtype.kind == "m":
            return np.datetime_data(dtype)[0] in ("s", "ms", "us", "ns")
        return False
    if isinstance(dtype, pd.DatetimeTZDtype):
        return dtype.unit in ("ms", "us", "ns")
    if isinstance(dtype, pd.CategoricalDtype):  # without rows, categories are lost
        return nrows > 0 and dtype.categories.dtype == _default_str_dtype()
    if isinstance(dtype, pd.StringDtype):
        return True
    # nullable masked dtypes (Int64, Float64, boolean, ...)
    return isinstance(dtype, (pd.core.arrays.masked.BaseMaskedDtype,))


def _pandas_label_ok(label) -> bool:
    return label is None or (type(label) is str and not label.startswith("__index_level_"))


def _pandas_index_ok(index, column_names=()) -> bool:
    import pandas as pd

    if not _pandas_label_ok(index.name) or (index.name is not None
                                            and index.name in column_names):
        return False
    if type(index) is pd.RangeIndex:
        return True
    if type(index) is not pd.Index:
        return False
    dtype = index.dtype
    return (isinstance(dtype, np.dtype) and dtype.kind in "iuf" and dtype.itemsize >= 4) \
        or dtype == _default_str_dtype()


def _pandas_frame_ok(df) -> bool:
    import pandas as pd

    columns = df.columns
    if df.attrs or not df.flags.allows_duplicate_labels or len(columns) == 0:
        return False  # (parquet drops the rows of a frame without columns)
    if type(columns) is not pd.Index or columns.dtype != _default_str_dtype():
        return False
    if not _pandas_label_ok(columns.name) or not columns.is_unique:
        return False
    if not all(type(c) is str and _pandas_label_ok(c) for c in columns):
        return False
    if not _pandas_index_ok(df.index, set(columns)):
        return False
    return all(_pandas_dtype_ok(t, len(df)) for t in df.dtypes)


def _pandas_matrix_ok(df) -> bool:
    """A frame of numpy numbers with a range or numeric index (after
    :func:`_pandas_frame_ok`): stored as matrices, labels in the metadata."""
    import pandas as pd

    index = df.index
    if type(index) is not pd.RangeIndex and not (
            isinstance(index.dtype, np.dtype) and index.dtype.kind in "iuf"):
        return False
    return all(isinstance(t, np.dtype) and t.kind in "biuf" for t in df.dtypes)


def _json_label_ok(name) -> bool:
    return name is None or type(name) is str or (type(name) is int and abs(name) < 2**53)


def _pandas_series_ok(s) -> bool:
    return (not s.attrs and s.flags.allows_duplicate_labels and _json_label_ok(s.name)
            and _pandas_index_ok(s.index, {_SERIES_COLUMN}) and _pandas_dtype_ok(s.dtype, len(s)))


def _polars_dtype_ok(dtype) -> bool:
    import polars as pl

    if dtype.is_numeric() and not isinstance(dtype, pl.Decimal):
        return True
    if isinstance(dtype, (pl.Boolean, pl.String, pl.Date, pl.Datetime, pl.Duration,
                          pl.Time, pl.Binary)):
        return True
    if isinstance(dtype, (pl.List, pl.Array)):
        return _polars_dtype_ok(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return len(dtype.fields) > 0 and all(_polars_dtype_ok(f.dtype) for f in dtype.fields)
    return False


# --------------------------------------------------------------------------
# writing


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes (and counts) what goes through it."""

    def __init__(self, raw, checksum: bool = True):
        self._raw = raw
        self._hash = hashlib.sha256() if checksum else None
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data)
        if self._hash is not None:
            self._hash.update(view)
        self._raw.write(view)
        self.count += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:  # the caller closes the real file
        pass

    @property
    def closed(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return self._hash.hexdigest() if self._hash is not None else ""


_WRITE_BUFFER = 8 << 20


def _write_file(path: Path, writer, checksum: bool, fsync: bool) -> FileInfo:
    """``writer(f)`` into ``path``, hashed on the way. Small writes are gathered
    into 8 MiB blocks before they are hashed and written: each ``write`` system
    call and each hash update of 2 KiB or more releases the GIL, and taking it
    back beside a busy thread can cost the switch interval (5 ms); a frame
    written column by column made thousands of them."""
    with open(path, "wb", buffering=0) as raw:
        hashing = _HashingWriter(raw, checksum)
        out = io.BufferedWriter(hashing, buffer_size=_WRITE_BUFFER)
        writer(out)
        out.flush()
        if fsync:
            os.fsync(raw.fileno())
    return FileInfo(hashing.count, hashing.hexdigest())


def _parquet_options(frame) -> dict:
    """Parquet for a local cache: speed over size. No compression and no
    statistics; dictionary encoding only for text and categorical columns (on
    numeric columns it costs 10x the write time and saves nothing: a 66,000 x 60
    float frame writes in 0.02 s instead of 0.21 s)."""
    import pandas as pd

    dictionary = [str(name) for name, dtype in frame.dtypes.items()
                  if not (pd.api.types.is_numeric_dtype(dtype)
                          or pd.api.types.is_datetime64_any_dtype(dtype))]
    return {"compression": None, "use_dictionary": dictionary, "write_statistics": False}


def _matrix_layout(frame) -> tuple[dict, list]:
    """``meta`` for a ``pandas-npy`` frame and the arrays to write: the index
    values (unless a range), then one matrix per dtype (in order of first use)."""
    import pandas as pd

    index = frame.index
    meta: dict[str, Any] = {"columns": list(frame.columns),
                            "columns_name": frame.columns.name, "index_name": index.name}
    arrays: list = []
    if type(index) is pd.RangeIndex:
        meta["index"] = [index.start, index.stop, index.step]
    else:
        meta["index"] = None
        arrays.append(index.to_numpy().reshape(-1, 1))
    groups: dict[np.dtype, list[int]] = {}
    for j, dtype in enumerate(frame.dtypes):
        groups.setdefault(dtype, []).append(j)
    meta["groups"] = list(groups.values())
    if len(groups) == 1:  # no copy for a frame of one block
        arrays.append(frame.to_numpy())
    else:  # one copy per dtype (memcpy speed; a Series per column costs 0.1 ms)
        arrays.extend(frame.iloc[:, positions].to_numpy() for positions in groups.values())
    return meta, arrays


def _write_matrices(arrays: list, f) -> None:
    """Each 2-D array as one ``.npy`` matrix, back to back."""
    for array in arrays:
        np.lib.format.write_array(f, array, version=(1, 0), allow_pickle=False)


def _read_matrices(data: bytearray, name: str) -> list[np.ndarray]:
    """The matrices :func:`_write_matrices` wrote (views of ``data``, no copy)."""
    out = []
    view = memoryview(data)
    stream = io.BytesIO(view)
    while stream.tell() < len(data):
        header = _npy_header(stream, name)
        if header is None:
            raise CorruptFileError(f"{name}: bad matrix header (version 3.0)")
        shape, fortran, dtype = header
        start = stream.tell()
        count = int(np.prod(shape, dtype=np.int64))
        end = start + count * dtype.itemsize
        if end > len(data):
            raise CorruptFileError(f"{name}: shorter than its headers say")
        flat = np.frombuffer(view[start:end], dtype=dtype, count=count) if count \
            else np.empty(0, dtype=dtype)
        out.append(flat.reshape(shape, order="F" if fortran else "C"))
        stream.seek(end)
    return out


def _write_pandas_parquet(frame, f) -> None:
    """What ``frame.to_parquet(f, engine="pyarrow")`` writes, converted on one
    thread: pyarrow's default converts the columns of a long frame on a thread
    pool of all the cores, started and joined for each frame, beside the tasks
    that already use them (measured: 1 s of the 3 s a cold flights search spent
    writing 20 frames)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, nthreads=1), f, **_parquet_options(frame))


def write_value(value, directory: Path, stem: str = "value", *, checksum: bool = True,
                fsync: bool = False) -> Written:
    """Write ``value`` into ``directory`` (which must exist); see the module docstring.

    With ``checksum`` each file's sha256 is computed while writing; with
    ``fsync`` each file is flushed to disk before returning.
    """
    fmt = choose_format(value)
    directory = Path(directory)
    name = stem + _SUFFIX[fmt]
    meta: dict[str, Any] = {}
    if fmt == "pandas-npy":
        meta, arrays = _matrix_layout(value)

        def writer(f):
            _write_matrices(arrays, f)
    elif fmt in ("pandas", "pandas-series"):
        if fmt == "pandas-series":
            meta["name"] = value.name
        frame = value if fmt == "pandas" else value.to_frame(name=_SERIES_COLUMN)

        def writer(f):
            _write_pandas_parquet(frame, f)
    elif fmt == "polars":
        def writer(f):
            value.write_parquet(f, compression="uncompressed", statistics=False)
    elif fmt == "polars-series":
        frame = value.to_frame()

        def writer(f):
            frame.write_parquet(f, compression="uncompressed", statistics=False)
    elif fmt == "npy":
        def writer(f):
            np.lib.format.write_array(f, value, allow_pickle=False)
    else:
        def writer(f):
            cloudpickle.dump(value, f, protocol=5)
    info = _write_file(directory / name, writer, checksum, fsync)
    return Written(fmt, {name: info}, meta)


def dump_pickle(obj, path: Path, *, checksum: bool = True, fsync: bool = False) -> FileInfo:
    """cloudpickle ``obj`` into ``path``; returns its size and sha256."""
    return _write_file(Path(path), lambda f: cloudpickle.dump(obj, f, protocol=5),
                       checksum, fsync)


# --------------------------------------------------------------------------
# reading


def _read_checked(path: Path, info: FileInfo | None, verify: bool,
                  writable: bool = False) -> bytes | bytearray:
    """The file's bytes, checked; a ``bytearray`` with ``writable`` (arrays
    viewing it can be written to, like arrays read any other way)."""
    with open(path, "rb") as f:
        if writable:
            data = bytearray(os.fstat(f.fileno()).st_size)
            if f.readinto(data) != len(data):
                raise CorruptFileError(f"{path.name}: short read")
        else:
            data = f.read()
    _check(path, data, info, verify)
    return data


def _check(path: Path, data: bytes, info: FileInfo | None, verify: bool) -> None:
    if info is not None and verify:
        if len(data) != info.bytes:
            raise CorruptFileError(
                f"{path.name}: {len(data)} bytes instead of {info.bytes} (truncated?)")
        if info.sha256 and hashlib.sha256(data).hexdigest() != info.sha256:
            raise CorruptFileError(f"{path.name}: sha256 does not match the manifest")


def _npy_header(f, name: str):
    """``(shape, fortran_order, dtype)`` of the ``.npy`` header at ``f``'s
    position (``f`` is left after it); ``None`` for a version 3.0 header."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            return fmt.read_array_header_1_0(f, max_header_size=2**20)
        if version == (2, 0):
            return fmt.read_array_header_2_0(f, max_header_size=2**20)
    except ValueError as e:
        raise CorruptFileError(f"{name}: bad header ({e})") from None
    return None


def _read_npy(path: Path, info: FileInfo | None, verify: bool) -> np.ndarray:
    """Read an ``.npy`` file into a fresh array (one copy) and check its hash."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if info is not None and verify and size != info.bytes:
            raise CorruptFileError(
                f"{path.name}: {size} bytes instead of {info.bytes} (truncated?)")
        header = _npy_header(f, path.name)
        if header is None:  # 3.0 (utf8 field names): rare, let numpy read it
            f.seek(0)
            data = f.read()
            _check(path, data, info, verify)
            return np.load(io.BytesIO(data), allow_pickle=False)
        shape, fortran, dtype = header
        header_len = f.tell()
        count = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if header_len + count != size:
            raise CorruptFileError(f"{path.name}: size does not match its header")
        flat = np.empty(count, dtype=np.uint8)
        if count and f.readinto(memoryview(flat)) != count:
            raise CorruptFileError(f"{path.name}: short read")
        if info is not None and verify and info.sha256:
            f.seek(0)
            h = hashlib.sha256(f.read(header_len))
            h.update(memoryview(flat))
            if h.hexdigest() != info.sha256:
                raise CorruptFileError(f"{path.name}: sha256 does not match the manifest")
    if dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    return flat.view(dtype).reshape(shape, order="F" if fortran else "C")


def _pandas_from_matrices(matrices: list[np.ndarray], meta: dict):
    import pandas as pd

    try:
        columns = pd.Index(meta["columns"], dtype=_default_str_dtype(),
                           name=meta["columns_name"])
        if meta["index"] is None:
            values, *matrices = matrices
            index = pd.Index(values[:, 0], name=meta["index_name"], copy=False)
        else:
            index = pd.RangeIndex(*meta["index"], name=meta["index_name"])
        groups = meta["groups"]
        if len(groups) != len(matrices):
            raise ValueError(f"{len(matrices)} matrices for {len(groups)} dtypes")
        if len(groups) == 1:  # one block, no copy
            return pd.DataFrame(matrices[0], index=index, columns=columns, copy=False)
        parts = [pd.DataFrame(m, columns=positions, copy=False)
                 for m, positions in zip(matrices, groups, strict=True)]
        frame = pd.concat(parts, axis=1)[list(range(len(columns)))]
        frame.columns, frame.index = columns, index
        return frame
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptFileError(f"a frame's metadata does not match its matrices ({e})") from e


def read_value(directory: Path, written: Written, *, verify: bool = True):
    """Read back what :func:`write_value` wrote (checking sizes and sha256).

    Raises :class:`CorruptFileError` when a file does not match ``written``,
    ``FileNotFoundError`` when it is gone.
    """
    directory = Path(directory)
    ((name, info),) = written.files.items()
    path = directory / name
    fmt = written.format
    if fmt == "npy":
        return _read_npy(path, info, verify)
    data = _read_checked(path, info, verify, writable=fmt == "pandas-npy")
    if fmt == "pandas-npy":
        return _pandas_from_matrices(_read_matrices(data, name), written.meta)
    try:
        if fmt in ("pandas", "pandas-series"):
            import pandas as pd

            frame = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
            if fmt == "pandas":
                return frame
            series = frame[_SERIES_COLUMN]
            series.name = written.meta.get("name")
            return series
        if fmt in ("polars", "polars-series"):
            import polars as pl

            frame = pl.read_parquet(io.BytesIO(data))
            return frame if fmt == "polars" else frame.to_series(0)
        if fmt == "pickle":
            return pickle.loads(data)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
        if isinstance(e, CorruptFileError):
            raise
        raise CorruptFileError(f"{name}: cannot be decoded ({type(e).__name__}: {e})") from e
    raise CorruptFileError(f"{name}: unknown format {fmt!r}")


def load_pickle(path: Path, info: FileInfo | None = None, *, verify: bool = True):
    """Load a file written by :func:`dump_pickle` (checking it against ``info``)."""
    data = _read_checked(Path(path), info, verify)
    try:
        return pickle.loads(data)
    except (ValueError, EOFError, pickle.UnpicklingError) as e:
        raise CorruptFileError(f"{Path(path).name}: cannot be unpickled ({e})") from e


def canonical_json(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


# --------------------------------------------------------------------------
# sizes


def estimate_nbytes(value, _depth: int = 0) -> int:
    """Bytes ``value`` holds in memory (an estimate, cheap for data values).

    >>> import numpy as np
    >>> estimate_nbytes(np.zeros(1000))
    8000
    >>> estimate_nbytes([np.zeros(10), np.zeros(10)]) > 160
    True
    """
    mod = _module(value)
    try:
        if mod == "numpy" and isinstance(value, np.ndarray):
            return int(value.nbytes)
        if mod == "pandas" and hasattr(value, "memory_usage"):
            return _pandas_nbytes(value)
        if mod == "polars" and hasattr(value, "estimated_size"):
            return int(value.estimated_size())
        if mod == "scipy" and hasattr(value, "nnz"):
            arrays = [v for v in vars(value).values() if isinstance(v, np.ndarray)]
            if arrays:
                return int(sum(a.nbytes for a in arrays))
    except Exception:  # noqa: BLE001 - an estimate: fall through
        pass
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes,
                                           bytearray)):
        return sys.getsizeof(value)
    if isinstance(value, (list, tuple, set, frozenset)) and _depth < 3:
        return sys.getsizeof(value) + sum(estimate_nbytes(v, _depth + 1) for v in value)
    if isinstance(value, dict) and _depth < 3:
        return sys.getsizeof(value) + sum(
            estimate_nbytes(k, _depth + 1) + estimate_nbytes(v, _depth + 1)
            for k, v in value.items())
    return _pickled_nbytes(value)


_SAMPLE = 1000


def _pandas_nbytes(value) -> int:
    """``memory_usage(deep=True)`` with object columns sampled: the exact figure
    visits every Python string (0.6 s per search on 100,000-row flights)."""
    import pandas as pd

    usage = value.memory_usage(deep=False, index=True)
    total = int(usage.sum()) if hasattr(usage, "sum") else int(usage)
    columns = value.items() if isinstance(value, pd.DataFrame) else [(None, value)] \
        if isinstance(value, pd.Series) else []
    for _, col in columns:
        if col.dtype == object and len(col):
            sample = col.iloc[:: max(1, len(col) // _SAMPLE)]
            per_item = sum(sys.getsizeof(v) for v in sample) / len(sample)
            total += int(per_item * len(col))
    return total


def _pickled_nbytes(value) -> int:
    sizes: list[int] = []

    def count(buf):
        sizes.append(buf.raw().nbytes)

    for dumps in (pickle.dumps, cloudpickle.dumps):
        try:
            return len(dumps(value, protocol=5, buffer_callback=count)) + sum(sizes)
        except Exception:  # noqa: BLE001 - try the next pickler
            sizes.clear()
    return sys.getsizeof(value)
