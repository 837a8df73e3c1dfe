"""Canonical tokens: the one place that turns Python objects into stable hashes.

Every lineage key is a hash of ``(operator kind, canonical parameters, input keys)``
and every source key is a fingerprint of the data bound to it. This module computes
both pieces: :func:`tokenize` for operator parameters and :func:`fingerprint` for
source data (they are one implementation; ``fingerprint(x) == tokenize(x)``).

Token format
------------
A token is 32 lowercase hex characters (an xxh3-128 digest). The top bit of the first
byte says whether the token is *stable* or *unique*:

* stable (first hex digit ``0``-``7``): derived only from the content of the object,
  so it is equal in every process and every run for equal values;
* unique (first hex digit ``8``-``f``): the object, or something inside it, could not
  be canonicalized, so a random identity (``uuid4``) went into the hash. Such a token
  never matches anything computed in another process: no cache entry is ever shared
  by mistake. :func:`is_unique_token` reads the bit, so it works on tokens loaded
  back from disk too; in-process, ``tokenize`` returns unique tokens as
  :class:`UniqueToken` instances (a ``str`` subclass), and a ``UniqueToken`` nested in
  a tokenized value makes the result unique too.

Unique identities are cached *per object* for the object's lifetime (a process-wide
table keyed by ``id`` and emptied by ``weakref.finalize``): the same generator, or the
same object holding a lock, gets the same unique token on every call in a process, so
common-subexpression elimination still shares it inside a run. Objects that cannot be
weakly referenced (a bare ``threading.Lock``) get a fresh identity on every call.
Limitation: mutating such an uncanonicalizable object in place is not detected.

How values are canonicalized
----------------------------
``_normalize`` is a :func:`functools.singledispatch` function, one registration per
type family, that maps a value to a self-delimiting byte encoding; containers encode
as a tag plus the xxh3-128 digest of their children's encodings. The recursion keeps
a stack of the objects being encoded (cycle protection: a back-reference encodes as
its distance on the stack) and a memo of finished, context-free encodings.

* ``None``, bools, ints, floats, complex, str, bytes: typed (``1``, ``1.0``, ``True``
  and ``"1"`` all differ); every float NaN encodes alike; ``-0.0`` differs from
  ``0.0``. Subclasses (``numpy.str_``, named tuples, ``IntEnum`` members) add their
  type.
* ``list`` and ``tuple`` are order-sensitive and distinct; ``set``/``frozenset`` are
  order-insensitive; ``dict`` is insertion-order-insensitive (keys sorted by their
  encoding: kwargs order never changes a result), while ``OrderedDict`` and its
  subclasses (``polars.Schema``) keep their order, as their equality does.
* types: importable classes of installed libraries (site-packages, stdlib, built-in
  modules) by reference, ``module:qualname`` plus the package ``__version__``;
  classes of user code (``__main__``, notebooks, the project's own modules) *by
  value*: bases plus their methods' code and plain class attributes, so editing a
  class in a notebook changes the token of its instances.
* functions: library functions by reference (as classes); user functions and
  lambdas by value: qualified name, bytecode (``co_code``, exception table,
  constants with nested code objects, names, argument names), defaults, closure cell
  values and the values of the globals their code loads (``LOAD_GLOBAL``, found with
  :mod:`dis`, nested code included), recursively; modules count by name. Line
  numbers are ignored, so an identical lambda re-created elsewhere gets the same
  token. Builtins and ufuncs by reference; ``functools.partial`` as function +
  arguments; bound methods as ``__self__`` + function; ``lru_cache`` & co. as name +
  ``__wrapped__``.
* estimators (anything whose class has ``get_params``): class + ``get_params(deep=
  False)`` tokenized recursively (so nested estimators recurse; equivalent to
  ``deep=True``), minus :data:`NON_SEMANTIC_PARAMS`, plus any instance state beyond
  the parameters: fitted attributes (two differently fitted ``FrozenEstimator``s
  never share a token) and configuration (``set_output``, metadata requests).
* data: numpy arrays, pandas DataFrame/Series/Index/ExtensionArray, polars
  DataFrame/Series, pyarrow Table/RecordBatch/Array/ChunkedArray: content hashes of
  raw buffers (see :func:`fingerprint`). A polars LazyFrame: its serialized plan,
  unless the plan scans files or Python sources (then a fresh unique token).
  ``pathlib.Path``: absolute path + size + mtime.
* ``numpy.random.RandomState``/``Generator``/``BitGenerator``: their state.
* any other object: its pickle reduction (``__reduce_ex__(4)``: constructor,
  arguments, ``__getstate__``), recursively; dataclasses, pydantic models and most
  plain objects go this way. Objects that refuse to pickle (locks, generators, open
  files) fall back to a unique token; when such an object sits inside an estimator,
  function or object, only that member becomes an identity of its owner, so the rest
  of the owner's state is still hashed.
* skrub ``DataOp``: ``TypeError`` (the frontend must substitute them first).

Unseeded randomness (``random_state=None``) tokenizes like any ``None``: the
lineage layer decides whether such keys may be reused across runs.

Known blind spots (a stale token, not a crash): code reached through a module
attribute (``mymodule.helper`` is tokenized as the module's name) or through
``globals()``/``eval``; a user class's attributes other than functions and plain
constants; files a function reads by a path given as a ``str`` (a ``pathlib.Path``
includes size and mtime); in-place mutation of an object that got a unique identity;
bare ``object()`` sentinels (all equal). Cost: content hashing is linear in the data
(about 30 ms for 1,000,000 x 10 pandas columns); a polars LazyFrame holding
in-memory data pays for serializing it (about 15 ms per MB).

Example
-------
>>> from sklearn.linear_model import LogisticRegression
>>> tokenize(LogisticRegression(C=1.0, n_jobs=4)) == tokenize(LogisticRegression())
True
>>> tokenize({"a": 1, "b": 2}) == tokenize({"b": 2, "a": 1})
True
>>> tokenize([1, 2]) == tokenize([2, 1])
False
"""

from __future__ import annotations

import collections
import dis
import enum
import functools
import os
import pathlib
import re
import site
import struct
import sys
import sysconfig
import threading
import types
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import xxhash

__all__ = [
    "NON_SEMANTIC_PARAMS",
    "UniqueToken",
    "describe_fingerprint",
    "fingerprint",
    "is_unique_token",
    "register_tokenizer",
    "tokenize",
]

#: Estimator parameters that never change a result (parallelism, logging, caching).
NON_SEMANTIC_PARAMS = frozenset(
    {
        "n_jobs",
        "verbose",
        "verbosity",
        "memory",
        "num_threads",
        "n_threads",
        "nthread",
        "nthreads",
        "thread_count",
        "pre_dispatch",
        "silent",
    }
)

# Bump when the encoding changes: every token changes with it, so stale on-disk
# entries keyed by old tokens are simply never hit again.
_SALT = b"stratumlite.canonical/1\x00"

_digest = xxhash.xxh3_128_digest
_U64 = struct.Struct("<Q").pack
_F64 = struct.Struct("<d").pack


# ---------------------------------------------------------------------------
# Token format
# ---------------------------------------------------------------------------


class UniqueToken(str):
    """A token that is unique to this process: nothing computed elsewhere matches it.

    ``tokenize`` returns one when it cannot canonicalize (part of) its argument.
    It is a ``str`` of 32 hex characters whose first digit is ``8``-``f``; after a
    round trip through a file it is a plain ``str``, which :func:`is_unique_token`
    still recognizes.

    >>> token = UniqueToken.new()
    >>> is_unique_token(token), len(token), token == UniqueToken.new()
    (True, 32, False)
    """

    __slots__ = ()

    @classmethod
    def new(cls) -> UniqueToken:
        """Return a fresh random unique token (uuid4-based)."""
        return cls(_finish(b"X" + uuid.uuid4().bytes, unique=True))


def _finish(encoding: bytes, unique: bool) -> str:
    raw = bytearray(_digest(_SALT + encoding))
    if unique:
        raw[0] |= 0x80
        return UniqueToken(raw.hex())
    raw[0] &= 0x7F
    return raw.hex()


_TOKEN_RE = re.compile(r"[0-9a-f]{32}")


def is_unique_token(token: str) -> bool:
    """Tell whether ``token`` is a unique (non-shareable) token.

    The answer is carried by the token itself (top bit of its first byte), so it
    holds for tokens read back from the lineage store as well.

    >>> is_unique_token(tokenize(42))
    False
    >>> import threading
    >>> is_unique_token(tokenize(threading.Lock()))
    True
    """
    if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
        raise ValueError(
            "A token is a string of 32 lowercase hex characters, as returned by "
            f"tokenize() or fingerprint(). Got {token!r} instead."
        )
    return token[0] in "89abcdef"


# ---------------------------------------------------------------------------
# Unique identities
# ---------------------------------------------------------------------------


class _Uncanonicalizable(Exception):
    """Raised inside the recursion when a value (that cannot carry an identity of
    its own) cannot be canonicalized; the nearest owner absorbs it."""


class _IdentityRegistry:
    """Random identities for uncanonicalizable objects, one per live object."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: finalizers may run during get()
        self._tokens: dict[int, bytes] = {}

    def get(self, obj: Any) -> bytes | None:
        """The object's identity, or None if it cannot be weakly referenced."""
        key = id(obj)
        with self._lock:
            token = self._tokens.get(key)
            if token is None:
                try:
                    weakref.finalize(obj, self._forget, key)
                except TypeError:
                    return None
                token = self._tokens[key] = uuid.uuid4().bytes
            return token

    def _forget(self, key: int) -> None:
        with self._lock:
            self._tokens.pop(key, None)


_IDENTITIES = _IdentityRegistry()


class _Context:
    """State of one ``tokenize`` call.

    active: ``id -> depth`` of the objects being encoded (cycle detection).
    memo: ``id -> (object, encoding)`` of finished encodings without references to
        objects outside their own subtree (the object is held so its id stays valid).
    lowest: lowest stack depth referenced by a back-reference in the current subtree.
    unique: whether a random identity went into the encoding.
    fresh: per-call identities of objects that cannot be weakly referenced.
    """

    __slots__ = ("active", "memo", "lowest", "unique", "fresh")

    def __init__(self) -> None:
        self.active: dict[int, int] = {}
        self.memo: dict[int, tuple[Any, bytes]] = {}
        self.lowest = sys.maxsize
        self.unique = False
        self.fresh: dict[int, tuple[Any, bytes]] = {}

    def identity(self, obj: Any) -> bytes:
        self.unique = True
        token = _IDENTITIES.get(obj)
        if token is None:
            hit = self.fresh.get(id(obj))
            if hit is None:
                hit = self.fresh[id(obj)] = (obj, uuid.uuid4().bytes)
            token = hit[1]
        return b"X" + token

    def fresh_identity(self) -> bytes:
        self.unique = True
        return b"X" + uuid.uuid4().bytes


# ---------------------------------------------------------------------------
# Encoding core
# ---------------------------------------------------------------------------


def _enc_str(s: str) -> bytes:
    data = s.encode("utf-8", "surrogatepass")
    return b"s%d:" % len(data) + data


def _enc_bytes(b: bytes) -> bytes:
    return b"b%d:" % len(b) + b


def _enc_float(x: float) -> bytes:
    return b"f" + _F64(x) if x == x else b"n"


_ATOMS: dict[type, Callable[[Any], bytes]] = {
    type(None): lambda _: b"N",
    bool: lambda b: b"T" if b else b"F",
    int: lambda i: b"i%d;" % i,
    float: _enc_float,
    complex: lambda z: b"c" + _enc_float(z.real) + _enc_float(z.imag),
    str: _enc_str,
    bytes: _enc_bytes,
    type(Ellipsis): lambda _: b".",
    type(NotImplemented): lambda _: b"!",
}


def _encode(obj: Any, ctx: _Context) -> bytes:
    """Self-delimiting canonical encoding of ``obj`` (atoms inline, else tag+digest)."""
    cls = type(obj)
    atom = _ATOMS.get(cls)
    if atom is not None:
        return atom(obj)
    key = id(obj)
    hit = ctx.memo.get(key)
    if hit is not None:
        return hit[1]
    depth = ctx.active.get(key)
    if depth is not None:  # a cycle: refer to the object by its distance on the stack
        ctx.lowest = min(ctx.lowest, depth)
        return b"R%d;" % (len(ctx.active) - depth)
    depth = len(ctx.active)
    ctx.active[key] = depth
    outer_lowest, ctx.lowest = ctx.lowest, sys.maxsize
    try:
        encoding = _normalize.dispatch(cls)(obj, ctx)
    finally:
        del ctx.active[key]
        inner_lowest = ctx.lowest
        ctx.lowest = min(outer_lowest, inner_lowest)
    if inner_lowest >= depth:
        ctx.memo[key] = (obj, encoding)
    return encoding


def _member(value: Any, ctx: _Context, owner: Any, name: str) -> bytes:
    """Encode ``owner``'s member ``name``; if it cannot be canonicalized, use an
    identity derived from the owner's (the rest of the owner is still hashed)."""
    try:
        return _encode(value, ctx)
    except _Uncanonicalizable:
        return b"X" + _digest(ctx.identity(owner) + _enc_str(name))


def _tagged(tag: bytes, parts: list[bytes]) -> bytes:
    return tag + _digest(b"".join(parts))


def _fallback(obj: Any, ctx: _Context) -> bytes:
    """An object that cannot be canonicalized: its identity if it can carry one."""
    token = _IDENTITIES.get(obj)
    if token is None:
        raise _Uncanonicalizable(type(obj).__qualname__)
    ctx.unique = True
    return b"X" + token


# ---------------------------------------------------------------------------
# Libraries vs user code
# ---------------------------------------------------------------------------


@functools.cache
def _library_prefixes() -> tuple[str, ...]:
    paths = set(site.getsitepackages())
    paths.add(site.getusersitepackages())
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        if path := sysconfig.get_paths().get(name):
            paths.add(path)
    return tuple(os.path.realpath(p) + os.sep for p in paths if p)


@functools.lru_cache(maxsize=4096)
def _is_library(module_name: str) -> bool:
    if module_name == "stratumlite" or module_name.startswith("stratumlite."):
        # stratumlite's own classes (plan templates, operators) are versioned
        # with the package: by reference, like any installed library.
        return True
    return _is_library_module(module_name)


@functools.lru_cache(maxsize=4096)
def _is_library_module(module_name: str) -> bool:
    """Whether a module belongs to an installed library (code that does not change
    while the environment stays the same), as opposed to user code."""
    if module_name == "__main__":
        return False
    module = sys.modules.get(module_name)
    if module is None:
        return False
    filename = getattr(module, "__file__", None)
    if filename is None:
        spec = getattr(module, "__spec__", None)
        return module_name in sys.builtin_module_names or (
            spec is not None and spec.origin in ("built-in", "frozen")
        )
    return os.path.realpath(filename).startswith(_library_prefixes())


@functools.lru_cache(maxsize=1024)
def _version(module_name: str) -> str:
    top = sys.modules.get(module_name.partition(".")[0])
    return str(getattr(top, "__version__", ""))


def _reference(obj: Any) -> bytes | None:
    """``module:qualname@version`` if ``obj`` is importable from a library."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    if not _is_library(module):
        return None
    target = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not obj:
        return None
    return b"G" + _enc_str(f"{module}:{qualname}@{_version(module)}")


# ---------------------------------------------------------------------------
# Dispatch: one registration per type family
# ---------------------------------------------------------------------------


def _normalize_object(obj: Any, ctx: _Context) -> bytes:
    """Default: lazily registered libraries, estimators, then the pickle protocol."""
    cls = type(obj)
    _register_lazy(cls)
    handler = _normalize.dispatch(cls)
    if handler is not _normalize_object:  # registered meanwhile (maybe by a thread)
        return handler(obj, ctx)
    if callable(getattr(cls, "get_params", None)):
        return _normalize_estimator(obj, ctx)
    if callable(obj):
        ref = _reference(obj)  # numpy's array-function dispatchers, ufunc-likes
        if ref is not None:
            return ref
    try:
        reduced = obj.__reduce_ex__(4)
    except Exception:  # refuses to pickle: locks, generators, files, C handles
        return _fallback(obj, ctx)
    if isinstance(reduced, str):  # a module-level singleton pickled by name
        module = getattr(obj, "__module__", None) or cls.__module__
        name = b"G" + _enc_str(f"{module}:{reduced}@{_version(module)}")
        wrapped = getattr(obj, "__wrapped__", None)  # lru_cache & co: the code too
        return name if wrapped is None else _tagged(b"W", [name, _encode(wrapped, ctx)])
    parts = [_member(reduced[0], ctx, obj, "constructor")]
    parts.append(_member(reduced[1], ctx, obj, "args"))
    state = reduced[2] if len(reduced) > 2 else None
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
        parts.append(b"(")  # (dict, slots) state of objects with __slots__
        parts.append(_encode_state(state[0], ctx, obj))
        state = state[1]
    parts.append(_encode_state(state, ctx, obj))
    if len(reduced) > 3 and reduced[3] is not None:
        parts.append(b"l" + _member(list(reduced[3]), ctx, obj, "items"))
    if len(reduced) > 4 and reduced[4] is not None:
        parts.append(b"d" + _member(dict(reduced[4]), ctx, obj, "mapping"))
    return _tagged(b"O", parts)


_normalize = functools.singledispatch(_normalize_object)


def _encode_state(state: Any, ctx: _Context, owner: Any) -> bytes:
    if type(state) is not dict:
        return _member(state, ctx, owner, "state")
    items = sorted(
        (_encode(name, ctx), _member(value, ctx, owner, str(name)))
        for name, value in state.items()
    )
    return _tagged(b"D", [k + v for k, v in items])


def register_tokenizer(cls: type, func: Callable[[Any], Any] | None = None):
    """Teach :func:`tokenize` the canonical form of ``cls``.

    ``func(obj)`` returns plain data that is tokenized in place of ``obj`` (with the
    class of ``obj`` added). Usable as a decorator.

    >>> class Celsius:
    ...     def __init__(self, degrees):
    ...         self.degrees, self._cache = degrees, {}
    >>> _ = register_tokenizer(Celsius, lambda c: c.degrees)
    >>> tokenize(Celsius(20)) == tokenize(Celsius(20)) != tokenize(Celsius(21))
    True
    """

    def register(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def handler(obj: Any, ctx: _Context) -> bytes:
            return _tagged(b"C", [_encode(type(obj), ctx), _encode(func(obj), ctx)])

        _normalize.register(cls, handler)
        return func

    return register if func is None else register(func)


# -- scalars and their subclasses ------------------------------------------------


@_normalize.register(int)
@_normalize.register(float)
@_normalize.register(complex)
@_normalize.register(str)
@_normalize.register(bytes)
def _normalize_scalar_subclass(obj: Any, ctx: _Context) -> bytes:
    # Exact builtin types never get here (see _ATOMS): this is for subclasses.
    if isinstance(obj, enum.Enum):
        return _normalize_enum(obj, ctx)
    for base in (bool, int, float, complex, str, bytes):
        if isinstance(obj, base):
            value = _ATOMS[base](base(obj))
            break
    parts = [_encode(type(obj), ctx), value]
    if getattr(obj, "__dict__", None):
        parts.append(_encode_state(vars(obj), ctx, obj))
    return _tagged(b"y", parts)


@_normalize.register(bytearray)
@_normalize.register(memoryview)
def _normalize_bytearray(obj: Any, ctx: _Context) -> bytes:
    return b"B" + _enc_bytes(bytes(obj))


@_normalize.register(UniqueToken)
def _normalize_unique_token(obj: UniqueToken, ctx: _Context) -> bytes:
    ctx.unique = True
    return b"u" + _enc_str(str(obj))


@_normalize.register(enum.Enum)
def _normalize_enum(obj: enum.Enum, ctx: _Context) -> bytes:
    return _tagged(b"e", [_encode(type(obj), ctx), _encode(obj.value, ctx)])


# -- containers ----------------------------------------------------------------


def _type_prefix(obj: Any, exact: type, ctx: _Context) -> list[bytes]:
    return [] if type(obj) is exact else [_encode(type(obj), ctx)]


@_normalize.register(list)
def _normalize_list(obj: list, ctx: _Context) -> bytes:
    return _tagged(b"L", _type_prefix(obj, list, ctx) + [_encode(x, ctx) for x in obj])


@_normalize.register(tuple)
def _normalize_tuple(obj: tuple, ctx: _Context) -> bytes:
    return _tagged(b"U", _type_prefix(obj, tuple, ctx) + [_encode(x, ctx) for x in obj])


@_normalize.register(set)
@_normalize.register(frozenset)
def _normalize_set(obj: set | frozenset, ctx: _Context) -> bytes:
    tag = b"S" if isinstance(obj, set) else b"Z"
    exact = set if isinstance(obj, set) else frozenset
    items = sorted(_encode(x, ctx) for x in obj)
    return _tagged(tag, _type_prefix(obj, exact, ctx) + items)


@_normalize.register(dict)
@_normalize.register(types.MappingProxyType)
def _normalize_dict(obj: Any, ctx: _Context) -> bytes:
    items = [(_encode(k, ctx), _encode(v, ctx)) for k, v in obj.items()]
    if isinstance(obj, collections.OrderedDict):
        tag = b"o"  # OrderedDict equality is order-sensitive: so is its token
    else:
        tag = b"D"
        items.sort()
    parts = _type_prefix(obj, dict, ctx) + [k + v for k, v in items]
    if callable(getattr(obj, "default_factory", None)):
        parts.append(b"f" + _encode(obj.default_factory, ctx))
    if getattr(obj, "__dict__", None):
        parts.append(_encode_state(vars(obj), ctx, obj))
    return _tagged(tag, parts)


@_normalize.register(slice)
@_normalize.register(range)
def _normalize_slice(obj: Any, ctx: _Context) -> bytes:
    tag = b"r" if isinstance(obj, range) else b":"
    return _tagged(tag, [_encode(x, ctx) for x in (obj.start, obj.stop, obj.step)])


# -- code: types, modules, functions ---------------------------------------------

_SKIPPED_CLASS_ATTRS = frozenset(
    {
        "__dict__",
        "__weakref__",
        "__module__",
        "__qualname__",
        "__doc__",
        "__annotations__",
        "__firstlineno__",
        "__static_attributes__",
        "__orig_bases__",
        "__parameters__",
        "__abstractmethods__",
    }
)


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes created by a class statement


def _is_plain(value: Any) -> bool:
    if type(value) in _ATOMS:
        return True
    return type(value) in (tuple, frozenset) and all(_is_plain(v) for v in value)


@_normalize.register(type)
def _normalize_type(cls: type, ctx: _Context) -> bytes:
    ref = _reference(cls)
    if ref is not None:
        return ref
    if not cls.__flags__ & _HEAPTYPE:  # a static C type (function, mappingproxy...)
        module = cls.__module__
        return b"G" + _enc_str(f"{module}:{cls.__qualname__}@{_version(module)}")
    # User code: by value (methods' code and plain class attributes), so that editing
    # a class in a notebook changes the token of its instances.
    parts = [_enc_str(f"{cls.__module__}:{cls.__qualname__}")]
    parts += [_encode(base, ctx) for base in cls.__bases__]
    namespace = vars(cls)
    for name in sorted(namespace):
        if name in _SKIPPED_CLASS_ATTRS or name.startswith("_abc_"):
            continue
        value = namespace[name]
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        elif isinstance(value, property):
            value = (value.fget, value.fset, value.fdel)
        elif not (isinstance(value, types.FunctionType) or _is_plain(value)):
            continue  # descriptors, caches, framework internals: not hashed
        parts += [_enc_str(name), _member(value, ctx, cls, name)]
    return _tagged(b"V", parts)


@_normalize.register(types.ModuleType)
def _normalize_module(module: types.ModuleType, ctx: _Context) -> bytes:
    return b"M" + _enc_str(module.__name__)


@functools.lru_cache(maxsize=4096)
def _code_encoding(code: types.CodeType) -> bytes:
    """Encoding of a code object: bytecode, constants, names; no line numbers."""
    consts = [
        _code_encoding(c) if isinstance(c, types.CodeType) else _encode(c, _Context())
        for c in code.co_consts
    ]
    fields = (
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
    )
    header = _encode(fields, _Context())
    body = _enc_bytes(code.co_code) + _enc_bytes(code.co_exceptiontable)
    return _tagged(b"K", [header, body, *consts])


_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"})


@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """Names the code (and code nested in it) looks up as globals (``co_names``
    also holds attribute names, which must not pull in unrelated globals)."""
    names = {
        instruction.argval
        for instruction in dis.get_instructions(code)
        if instruction.opname in _GLOBAL_OPS
    }
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(_global_names(const))
    return tuple(sorted(names))


@_normalize.register(types.FunctionType)
def _normalize_function(fn: types.FunctionType, ctx: _Context) -> bytes:
    ref = _reference(fn)
    if ref is not None:
        return ref
    code = fn.__code__
    parts = [
        _enc_str(f"{fn.__module__}:{fn.__qualname__}"),
        _code_encoding(code),
        _member(fn.__defaults__, ctx, fn, "__defaults__"),
        _member(fn.__kwdefaults__, ctx, fn, "__kwdefaults__"),
    ]
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # empty cell
            parts.append(_enc_str(name) + b"-")
            continue
        parts.append(_enc_str(name) + _member(value, ctx, fn, name))
    namespace = fn.__globals__
    for name in _global_names(code):
        if name in namespace:
            parts.append(_enc_str(name) + _member(namespace[name], ctx, fn, name))
    if fn.__dict__:
        parts.append(_encode_state(fn.__dict__, ctx, fn))
    return _tagged(b"F", parts)


@_normalize.register(types.BuiltinFunctionType)
def _normalize_builtin(fn: Any, ctx: _Context) -> bytes:
    owner = fn.__self__
    if owner is None or isinstance(owner, types.ModuleType):
        module = getattr(fn, "__module__", None) or getattr(owner, "__name__", "")
        return b"G" + _enc_str(f"{module}:{fn.__qualname__}@{_version(module)}")
    # A builtin method bound to an object ("abc".upper, [].append, array.sum).
    return _tagged(b"b", [_encode(owner, ctx), _enc_str(fn.__qualname__)])


@_normalize.register(types.MethodType)
def _normalize_method(method: types.MethodType, ctx: _Context) -> bytes:
    return _tagged(b"m", [_encode(method.__self__, ctx), _encode(method.__func__, ctx)])


@_normalize.register(types.MethodWrapperType)
def _normalize_method_wrapper(method: Any, ctx: _Context) -> bytes:
    return _tagged(b"w", [_encode(method.__self__, ctx), _enc_str(method.__name__)])


@_normalize.register(functools.partial)
def _normalize_partial(p: functools.partial, ctx: _Context) -> bytes:
    parts = [_encode(type(p), ctx), _encode(p.func, ctx), _encode(p.args, ctx)]
    parts.append(_encode(p.keywords, ctx))
    if getattr(p, "__dict__", None):
        parts.append(_encode_state(vars(p), ctx, p))
    return _tagged(b"p", parts)


# -- estimators ----------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _param_names(cls: type) -> tuple[str, ...] | None:
    """``cls._get_param_names()``, cached, for classes using scikit-learn's own
    ``get_params``: it inspects the ``__init__`` signature on every call, which is
    most of the cost of tokenizing an estimator. None for other classes."""
    base = sys.modules.get("sklearn.base")
    estimator = getattr(base, "BaseEstimator", None)
    if estimator is None or getattr(cls, "get_params", None) is not getattr(
        estimator, "get_params", None
    ):
        return None
    return tuple(cls._get_param_names())


def _get_params(est: Any) -> dict[str, Any]:
    names = _param_names(type(est))
    if names is not None:
        return {name: getattr(est, name) for name in names}
    try:
        return est.get_params(deep=False)
    except TypeError:  # a get_params without the `deep` argument
        return est.get_params()


def _normalize_estimator(est: Any, ctx: _Context) -> bytes:
    params = _get_params(est)
    parts = [_encode(type(est), ctx)]
    for name in sorted(params):
        if name not in NON_SEMANTIC_PARAMS:
            parts.append(_enc_str(name) + _member(params[name], ctx, est, name))
    # Instance state beyond the parameters: fitted attributes (they matter for
    # FrozenEstimator & co.) and configuration such as set_output() or metadata
    # requests. An unfitted, unconfigured estimator has none.
    try:
        state = est.__getstate__()
    except Exception:  # a broken __getstate__: fall back to the raw state
        state = None
    if not isinstance(state, dict):
        state = getattr(est, "__dict__", {})
    extra = {}
    for key, value in state.items():
        if key in params or key in NON_SEMANTIC_PARAMS or key == "_sklearn_version":
            continue
        if key.startswith("_") and type(value) is dict:  # private copies of params,
            value = {k: v for k, v in value.items() if k not in NON_SEMANTIC_PARAMS}
        extra[key] = value  # e.g. lightgbm's _other_params holds `verbosity`
    if extra:
        parts.append(b"~" + _encode_state(extra, ctx, est))
    return _tagged(b"E", parts)


# -- paths ---------------------------------------------------------------------


@_normalize.register(pathlib.PurePath)
def _normalize_path(path: pathlib.PurePath, ctx: _Context) -> bytes:
    parts = [_encode(type(path), ctx)]
    if isinstance(path, pathlib.Path):
        parts.append(_enc_str(os.path.abspath(path)))
        try:
            st = path.stat()
        except OSError:
            parts.append(b"-")
        else:
            parts.append(b"%d;%d;" % (st.st_size, st.st_mtime_ns))
    else:
        parts.append(_enc_str(str(path)))
    return _tagged(b"P", parts)


# -- numpy ---------------------------------------------------------------------


def _dtype_text(dtype: np.dtype) -> str:
    return f"{dtype.str}|{dtype}"


@_normalize.register(np.dtype)
def _normalize_dtype(dtype: np.dtype, ctx: _Context) -> bytes:
    return b"d" + _enc_str(_dtype_text(dtype))


@_normalize.register(np.generic)
def _normalize_numpy_scalar(x: np.generic, ctx: _Context) -> bytes:
    value = np.asarray(x)
    if value.dtype.kind == "f" and np.isnan(value):
        value = np.array(np.nan, dtype=value.dtype)  # one NaN bit pattern
    elif value.dtype.kind == "c":
        parts = np.array([value.real, value.imag])
        value = np.where(np.isnan(parts), np.nan, parts).astype(parts.dtype)
    return b"g" + _enc_str(_dtype_text(x.dtype)) + _enc_bytes(value.tobytes())


@_normalize.register(np.ufunc)
def _normalize_ufunc(fn: np.ufunc, ctx: _Context) -> bytes:
    return b"G" + _enc_str(f"numpy.ufunc:{fn.__name__}@{np.__version__}")


@_normalize.register(np.random.RandomState)
def _normalize_random_state(rs: np.random.RandomState, ctx: _Context) -> bytes:
    return _tagged(b"Q", [_encode(type(rs), ctx), _encode(rs.get_state(), ctx)])


@_normalize.register(np.random.Generator)
def _normalize_generator(gen: np.random.Generator, ctx: _Context) -> bytes:
    return _tagged(b"Q", [_encode(type(gen), ctx), _encode(gen.bit_generator, ctx)])


@_normalize.register(np.random.BitGenerator)
def _normalize_bit_generator(bg: np.random.BitGenerator, ctx: _Context) -> bytes:
    return _tagged(b"Q", [_encode(type(bg), ctx), _encode(bg.state, ctx)])


def _feed(h: Any, data: Any) -> None:
    """Length-prefixed update, so consecutive pieces can never run together."""
    h.update(_U64(memoryview(data).nbytes))
    h.update(data)


def _feed_numpy(h: Any, array: np.ndarray) -> None:
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    h.update(_U64(raw.nbytes))
    h.update(raw)


def _feed_array_values(h: Any, array: np.ndarray, ctx: _Context) -> None:
    """Values of a numpy array: raw buffer, or element tokens for object data."""
    if array.dtype.hasobject or array.dtype.kind == "T":  # pointers, not values
        _feed(h, _encode(array.ravel().tolist(), ctx))
    else:
        _feed_numpy(h, array)


@_normalize.register(np.ndarray)
def _normalize_ndarray(array: np.ndarray, ctx: _Context) -> bytes:
    h = xxhash.xxh3_128()
    _feed(h, _encode(type(array), ctx))
    _feed(h, _enc_str(_dtype_text(array.dtype)) + _encode(array.shape, ctx))
    if isinstance(array, np.ma.MaskedArray):
        _feed_array_values(h, array.data, ctx)
        _feed_numpy(h, np.ma.getmaskarray(array))
        _feed(h, _encode(array.fill_value, ctx))
    else:
        _feed_array_values(h, array, ctx)
    return b"A" + h.digest()


# ---------------------------------------------------------------------------
# Data frames: pandas, polars, pyarrow (registered when first met)
# ---------------------------------------------------------------------------


_LAZY_LOCK = threading.Lock()


def _register_lazy(cls: type) -> None:
    """Register the handlers of ``cls``'s library if not done yet (thread-safe)."""
    top = cls.__module__.partition(".")[0]
    if top in _LAZY:
        with _LAZY_LOCK:
            register = _LAZY.get(top)
            if register is not None:
                register()
                del _LAZY[top]


def _register_skrub() -> None:
    import skrub

    @_normalize.register(skrub.DataOp)
    def _normalize_data_op(obj: Any, ctx: _Context) -> bytes:
        raise TypeError(
            "tokenize() got a skrub DataOp. DataOps are plan nodes, not parameter "
            "values: the frontend must replace them by their inputs' lineage keys "
            "before tokenizing operator parameters."
        )


# -- pyarrow -------------------------------------------------------------------


def _feed_arrow(h: Any, array: Any, ctx: _Context) -> None:
    """Hash an Arrow array exactly: type, validity, and normalized value buffers
    (slice offsets removed, values under nulls zeroed), so equal data hashes equal
    whatever its chunking or memory layout."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks == 1:
            array = array.chunk(0)
        else:
            array = array.combine_chunks()
    t = array.type
    if pa.types.is_dictionary(t):  # decode: physical codes depend on the run
        _feed(h, _enc_str(f"dictionary ordered={t.ordered}"))
        return _feed_arrow(h, array.dictionary_decode(), ctx)
    if isinstance(t, pa.ExtensionType):
        _feed(h, _enc_str(f"extension {t}"))
        return _feed_arrow(h, array.storage, ctx)
    if pa.types.is_string_view(t):
        array, t = array.cast(pa.large_string()), pa.large_string()
    elif pa.types.is_binary_view(t):
        array, t = array.cast(pa.large_binary()), pa.large_binary()
    _feed(h, _enc_str(str(t)) + b"%d;" % len(array))
    if pa.types.is_null(t) or len(array) == 0:
        return
    mask = None
    if array.null_count:
        mask = array.is_null().to_numpy(zero_copy_only=False)
        _feed_numpy(h, mask)
    if pa.types.is_boolean(t):
        values = array.fill_null(False) if mask is not None else array
        _feed_numpy(h, values.to_numpy(zero_copy_only=False))
        return
    if (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    ):
        if mask is not None:
            empty = "" if pa.types.is_string(t) or pa.types.is_large_string(t) else b""
            array = array.fill_null(pa.scalar(empty, type=t))
        large = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
        buffers = array.buffers()
        offsets = np.frombuffer(buffers[1], dtype=np.int64 if large else np.int32)
        offsets = offsets[array.offset : array.offset + len(array) + 1]
        start, end = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
        _feed_numpy(h, offsets - start if start else offsets)
        data = memoryview(buffers[2])[start:end] if buffers[2] is not None else b""
        _feed(h, data)
        return
    try:
        width = t.bit_width
    except ValueError:
        width = 0
    if width and width % 8 == 0 and len(array.buffers()) == 2:  # fixed-width values
        nbytes = width // 8
        raw = np.frombuffer(array.buffers()[1], dtype=np.uint8)
        raw = raw[array.offset * nbytes : (array.offset + len(array)) * nbytes]
        if mask is not None:  # bytes under nulls are undefined: zero them
            raw = raw.reshape(-1, nbytes).copy()
            raw[mask] = 0
        _feed_numpy(h, raw)
        return
    if pa.types.is_struct(t):  # children with the parent's offset and nulls applied
        for child in array.flatten():
            _feed_arrow(h, child, ctx)
        return
    if _is_list_type(t):  # list, large list, list view, fixed-size list, map
        import pyarrow.compute as pc

        lengths = pc.list_value_length(array).fill_null(0)
        _feed_numpy(h, lengths.to_numpy(zero_copy_only=False))
        _feed_arrow(h, array.flatten(), ctx)  # skips values hidden under nulls
        return
    # Other types (unions, run-end encoded...): Arrow IPC bytes. Deterministic for a
    # given layout; equal data laid out differently may hash differently (a missed
    # reuse, never a false one).
    batch = pa.record_batch([array], names=["values"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    _feed(h, sink.getvalue())


def _is_list_type(t: Any) -> bool:
    import pyarrow as pa

    checks = ("is_list", "is_large_list", "is_fixed_size_list", "is_map")
    checks += ("is_list_view", "is_large_list_view")
    return any(getattr(pa.types, name, lambda _: False)(t) for name in checks)


def _register_pyarrow() -> None:
    import pyarrow as pa

    @_normalize.register(pa.Table)
    @_normalize.register(pa.RecordBatch)
    def _normalize_arrow_table(table: Any, ctx: _Context) -> bytes:
        h = xxhash.xxh3_128()
        _feed(h, _encode(type(table), ctx))
        _feed(h, _enc_str(table.schema.to_string(show_schema_metadata=True)))
        for i in range(table.num_columns):
            _feed_arrow(h, table.column(i), ctx)
        return b"H" + h.digest()

    @_normalize.register(pa.Array)
    @_normalize.register(pa.ChunkedArray)
    def _normalize_arrow_array(array: Any, ctx: _Context) -> bytes:
        h = xxhash.xxh3_128()
        _feed(h, _enc_str("pyarrow.Array"))
        _feed_arrow(h, array, ctx)
        return b"H" + h.digest()

    @_normalize.register(pa.DataType)
    @_normalize.register(pa.Schema)
    @_normalize.register(pa.Field)
    def _normalize_arrow_type(t: Any, ctx: _Context) -> bytes:
        text = t.to_string(show_schema_metadata=True) if isinstance(t, pa.Schema) else t
        return _tagged(b"a", [_encode(type(t), ctx), _enc_str(str(text))])


# -- pandas --------------------------------------------------------------------


def _pandas_dtype_text(dtype: Any) -> str:
    import pandas as pd

    if isinstance(dtype, np.dtype):
        return _dtype_text(dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        return f"category ordered={dtype.ordered}"
    return f"{type(dtype).__qualname__}:{dtype!r}:{getattr(dtype, 'storage', '')}"


def _feed_object_values(h: Any, values: np.ndarray, ctx: _Context) -> None:
    """An object column: vectorized for strings (through Arrow, else pandas'
    ``hash_array``) with the kind of each null; one token per element otherwise."""
    import pandas as pd
    import pyarrow as pa

    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in ("string", "bytes", "empty"):  # mixed objects: exact, slower
        _feed(h, _encode(values.tolist(), ctx))
        return
    _feed(h, b"strings")
    arrow_type = pa.large_binary() if kind == "bytes" else pa.large_string()
    try:
        arrow = pa.array(values, type=arrow_type, from_pandas=True)
    except (pa.ArrowException, ValueError, TypeError):  # lone surrogates, odd nulls
        _feed_numpy(h, pd.util.hash_array(values))
        mask = pd.isna(values)
        _feed_numpy(h, mask)
    else:
        _feed_arrow(h, arrow, ctx)
        mask = arrow.is_null().to_numpy(zero_copy_only=False)
    if mask.any():  # None, NaN, NA and NaT are all "null" above: tell them apart
        nulls = [type(v).__qualname__ for v in values[mask]]
        kinds = {k: i for i, k in enumerate(sorted(set(nulls)))}
        _feed(h, _encode(list(kinds), ctx))
        _feed_numpy(h, np.array([kinds[k] for k in nulls], dtype=np.uint16))


def _feed_pandas_values(h: Any, dtype: Any, values: Any, ctx: _Context) -> None:
    """Values of a Series/Index/ExtensionArray (``values`` is ``.array``)."""
    import pandas as pd

    _feed(h, _enc_str(_pandas_dtype_text(dtype)) + b"%d;" % len(values))
    if isinstance(dtype, np.dtype):
        array = np.asarray(values)
        if array.dtype.kind == "O":
            _feed_object_values(h, array, ctx)
        else:
            _feed_array_values(h, array, ctx)
        return
    if isinstance(dtype, pd.CategoricalDtype):
        _feed_numpy(h, values.codes)
        _feed(h, _pandas_index_digest(values.categories, ctx))
        return
    try:
        import pyarrow as pa

        arrow = pa.array(values)
    except Exception:  # no Arrow conversion (sparse, custom arrays): densify
        array = np.asarray(values)
        if array.dtype.kind == "O":
            _feed_object_values(h, array, ctx)
        else:
            _feed_array_values(h, array, ctx)
    else:
        _feed_arrow(h, arrow, ctx)


def _pandas_index_digest(index: Any, ctx: _Context) -> bytes:
    import pandas as pd

    h = xxhash.xxh3_128()
    _feed(h, _encode(type(index), ctx) + _encode(list(index.names), ctx))
    if isinstance(index, pd.RangeIndex):
        _feed(h, _encode((index.start, index.stop, index.step), ctx))
    elif isinstance(index, pd.MultiIndex):
        for level in range(index.nlevels):
            values = index.get_level_values(level)
            _feed_pandas_values(h, values.dtype, values.array, ctx)
    else:
        _feed_pandas_values(h, index.dtype, index.array, ctx)
        freq = getattr(index, "freq", None)
        if freq is not None:
            _feed(h, _enc_str(str(freq)))
    return h.digest()


def _register_pandas() -> None:
    import pandas as pd

    @_normalize.register(pd.DataFrame)
    def _normalize_pandas_frame(df: pd.DataFrame, ctx: _Context) -> bytes:
        h = xxhash.xxh3_128()
        _feed(h, _encode(type(df), ctx))
        _feed(h, _pandas_index_digest(df.columns, ctx))
        _feed(h, _pandas_index_digest(df.index, ctx))
        for i in range(df.shape[1]):
            column = df.iloc[:, i]
            _feed_pandas_values(h, column.dtype, column.array, ctx)
        if df.attrs:
            _feed(h, _encode(df.attrs, ctx))
        return b"H" + h.digest()

    @_normalize.register(pd.Series)
    def _normalize_pandas_series(s: pd.Series, ctx: _Context) -> bytes:
        h = xxhash.xxh3_128()
        _feed(h, _encode(type(s), ctx) + _encode(s.name, ctx))
        _feed(h, _pandas_index_digest(s.index, ctx))
        _feed_pandas_values(h, s.dtype, s.array, ctx)
        if s.attrs:
            _feed(h, _encode(s.attrs, ctx))
        return b"H" + h.digest()

    @_normalize.register(pd.Index)
    def _normalize_pandas_index(index: pd.Index, ctx: _Context) -> bytes:
        return b"H" + _pandas_index_digest(index, ctx)

    @_normalize.register(pd.api.extensions.ExtensionArray)
    def _normalize_pandas_array(values: Any, ctx: _Context) -> bytes:
        h = xxhash.xxh3_128()
        _feed(h, _encode(type(values), ctx))
        _feed_pandas_values(h, values.dtype, values, ctx)
        return b"H" + h.digest()

    @_normalize.register(pd.api.extensions.ExtensionDtype)
    def _normalize_pandas_dtype(dtype: Any, ctx: _Context) -> bytes:
        parts = [_encode(type(dtype), ctx), _enc_str(_pandas_dtype_text(dtype))]
        if isinstance(dtype, pd.CategoricalDtype) and dtype.categories is not None:
            parts.append(_pandas_index_digest(dtype.categories, ctx))
        return _tagged(b"d", parts)


# -- polars --------------------------------------------------------------------

_SCAN_RE = re.compile(r"\bSCAN\b")


def _feed_polars_series(h: Any, s: Any, ctx: _Context) -> None:
    import polars as pl

    _feed(h, _enc_str(repr(s.dtype)) + b"%d;" % len(s))
    if s.dtype == pl.Object:  # to_arrow would export pointers
        _feed(h, _encode(s.to_list(), ctx))
    else:
        _feed_arrow(h, s.to_arrow(compat_level=pl.CompatLevel.oldest()), ctx)


def _register_polars() -> None:
    import polars as pl

    @_normalize.register(pl.DataFrame)
    def _normalize_polars_frame(df: pl.DataFrame, ctx: _Context) -> bytes:
        h = xxhash.xxh3_128()
        _feed(h, _encode(type(df), ctx) + _encode(df.columns, ctx))
        for column in df.get_columns():
            _feed_polars_series(h, column, ctx)
        return b"H" + h.digest()

    @_normalize.register(pl.Series)
    def _normalize_polars_series(s: pl.Series, ctx: _Context) -> bytes:
        h = xxhash.xxh3_128()
        _feed(h, _encode(type(s), ctx) + _encode(s.name, ctx))
        _feed_polars_series(h, s, ctx)
        return b"H" + h.digest()

    @_normalize.register(pl.LazyFrame)
    def _normalize_polars_lazy(lf: pl.LazyFrame, ctx: _Context) -> bytes:
        try:
            if _SCAN_RE.search(lf.explain(optimized=False)):
                # Reads files or Python sources: the plan does not pin the data.
                return ctx.fresh_identity()
            plan = lf.serialize(format="binary")
        except Exception:
            return _fallback(lf, ctx)  # LazyFrames are immutable: identity is sound
        return _tagged(b"z", [_encode(type(lf), ctx), _enc_bytes(plan)])

    @_normalize.register(pl.Expr)
    def _normalize_polars_expr(expr: pl.Expr, ctx: _Context) -> bytes:
        try:
            plan = expr.meta.serialize(format="binary")
        except Exception:
            return _fallback(expr, ctx)  # expressions are immutable too
        return _tagged(b"x", [_encode(type(expr), ctx), _enc_bytes(plan)])


_LAZY: dict[str, Callable[[], None]] = {
    "pandas": _register_pandas,
    "polars": _register_polars,
    "pyarrow": _register_pyarrow,
    "skrub": _register_skrub,
}


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def tokenize(obj: Any) -> str:
    """Stable hex digest (32 hex chars, xxh3-128) of an operator parameter value.

    Equal values give equal tokens in every process; a value that cannot be
    canonicalized gives a :class:`UniqueToken` (see :func:`is_unique_token`).
    Raises ``TypeError`` for a skrub ``DataOp``.

    >>> tokenize({"alpha": 0.5, "fit_intercept": True}) == tokenize(
    ...     {"fit_intercept": True, "alpha": 0.5})
    True
    >>> tokenize(1) == tokenize(1.0) or tokenize(1) == tokenize(True)
    False
    >>> tokenize(lambda x: x + 1) == tokenize(lambda x: x + 1)
    True
    >>> len(tokenize(None))
    32
    """
    ctx = _Context()
    try:
        encoding = _encode(obj, ctx)
    except (_Uncanonicalizable, RecursionError):
        encoding = ctx.identity(obj)
    return _finish(encoding, ctx.unique)


def fingerprint(data: Any) -> str:
    """Content fingerprint of a source dataset (the same digest format as tokenize).

    Data frames, series, arrays and Arrow tables hash their raw buffers (xxh3-128,
    vectorized, no per-row Python), so a 1,000,000 x 10 frame takes some
    milliseconds; they differ when any value, column name, dtype, column order, row
    order or the index differs. Anything else is tokenized. ``fingerprint(x) ==
    tokenize(x)``: one implementation serves both.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    >>> fingerprint(df) == fingerprint(df.copy())
    True
    >>> fingerprint(df) == fingerprint(df[["b", "a"]])
    False
    """
    return tokenize(data)


def fingerprint_once(data: Any, memo: dict | None) -> str:
    """:func:`fingerprint`, reused when the same object was fingerprinted before.

    ``memo`` maps ``id(obj)`` to ``(obj, digest)``; holding the object keeps its
    id from being reused while the memo lives. Only for objects nothing modifies
    in place while the memo lives (a session's source values).

    >>> import pandas as pd
    >>> memo, df = {}, pd.DataFrame({"a": [1, 2]})
    >>> fingerprint_once(df, memo) == fingerprint(df) and len(memo) == 1
    True
    """
    if memo is None:
        return fingerprint(data)
    hit = memo.get(id(data))
    if hit is not None and hit[0] is data:
        return hit[1]
    digest = fingerprint(data)
    memo[id(data)] = (data, digest)
    return digest


def _is_instance(obj: Any, module: str, name: str) -> bool:
    lib = sys.modules.get(module)
    cls = getattr(lib, name, None) if lib is not None else None
    return isinstance(cls, type) and isinstance(obj, cls)


def describe_fingerprint(data: Any) -> str:
    """Short human text saying how ``data`` is fingerprinted (for explain output).

    >>> import pandas as pd
    >>> describe_fingerprint(pd.DataFrame({"a": range(1000), "b": 0.5}))
    'content hash of pandas DataFrame 1000x2 (xxh3-128 of column names, dtypes, index and values)'
    """  # noqa: E501
    if _is_instance(data, "pandas", "DataFrame"):
        rows, cols = data.shape
        return (
            f"content hash of pandas DataFrame {rows}x{cols} "
            "(xxh3-128 of column names, dtypes, index and values)"
        )
    if _is_instance(data, "pandas", "Series"):
        return (
            f"content hash of pandas Series of length {len(data)}, dtype {data.dtype} "
            "(xxh3-128 of name, dtype, index and values)"
        )
    if _is_instance(data, "pandas", "Index"):
        return f"content hash of pandas {type(data).__name__} of length {len(data)}"
    if _is_instance(data, "polars", "DataFrame"):
        rows, cols = data.shape
        return (
            f"content hash of polars DataFrame {rows}x{cols} "
            "(xxh3-128 of schema and column buffers)"
        )
    if _is_instance(data, "polars", "Series"):
        return (
            f"content hash of polars Series of length {len(data)}, dtype {data.dtype}"
        )
    if _is_instance(data, "polars", "LazyFrame"):
        if is_unique_token(tokenize(data)):
            return (
                "unique token: the polars LazyFrame scans files or Python sources, "
                "so its plan does not determine its data (never reused across runs)"
            )
        return (
            "hash of the serialized plan of a polars LazyFrame (embedded data included)"
        )
    if _is_instance(data, "pyarrow", "Table"):
        return (
            f"content hash of pyarrow Table {data.num_rows}x{data.num_columns} "
            "(xxh3-128 of schema and column buffers)"
        )
    if isinstance(data, np.ndarray):
        return (
            f"content hash of numpy {type(data).__name__} shape {data.shape}, "
            f"dtype {data.dtype}"
        )
    if isinstance(data, pathlib.Path):
        kind = "directory" if data.is_dir() else "file" if data.exists() else "missing"
        return f"path, size and mtime of {kind} {os.path.abspath(data)}"
    name = f"{type(data).__module__}.{type(data).__qualname__}"
    if is_unique_token(tokenize(data)):
        return (
            f"unique token: a {name} (or a value inside it) cannot be canonicalized, "
            "so it is never reused across runs"
        )
    return f"canonical token of {name}"
