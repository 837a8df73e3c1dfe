"""Column-level reuse inside skrub's column-wise transformers.

``TableVectorizer`` and ``Cleaner`` are pipelines of ``ApplyToEachCol`` steps, and
``ApplyToEachCol`` fits a fresh clone of its transformer on each column alone
(``_fit_transform_column``) and transforms each column alone
(``_transform_column``). Each such call is a pure function of (transformer
parameters, the column's content, ``y``), so when two plan nodes vectorize tables
that share columns -- the same loans table with and without two ratio columns,
with ``emp_title`` lower-cased or dropped, or a ``MinHashEncoder`` instead of a
``StringEncoder`` for the one text column -- every shared column's work is done
once per fold instead of once per node.

The two functions are wrapped once, when this module is imported. The wrappers
look up the memo of the task running in their thread
(:func:`stratumlite.runtime.memo.current_memo`): outside a stratumlite task, or
with the memo off (``Config(operator_memo_bytes=0)``), they call skrub's function
and nothing else. Inside, a call is answered from the memo when the same
transformer parameters met the same column (name, dtype and values; for skrub's
and scikit-learn's transformers, and classes that set
``stratumlite_index_blind = True``, the pandas index is not part of the key and
the outputs get the asking column's index, see ``_column_token``) and the same
``y``. Transformers with unseeded randomness, parameters that cannot be
tokenized, or extra keyword arguments are never reused. Only pieces that cost
at least the memo's ``min_seconds`` are stored, and a kind of piece (a
transformer class on a column) is only looked up once one of its pieces was
that costly: fingerprinting a cheap column costs as much as computing it, and
its lookup could only miss. The fitted column
transformers a memo hit returns are the very objects the first fit produced (they
are only read afterwards; in another worker process, a copy read from the
directory the workers share, see :mod:`stratumlite.runtime.memo`). Each carries
the key of its fit, pickled with it, so its transforms are found wherever it is
shipped. Results are identical to skrub's: the tests compare vectorizer outputs
and search scores with and without the memo.
"""

from __future__ import annotations

import threading
import time
import weakref

from skrub import _apply_to_each_col as _atec

from ..canonical import is_unique_token, tokenize
from ..runtime.memo import current_memo
from ..runtime.serialization import estimate_nbytes

__all__ = ["install"]

_ORIGINAL_FIT = _atec._fit_transform_column
_ORIGINAL_TRANSFORM = _atec._transform_column

# fitted column transformer -> the memo key of the fit that produced it. The key
# also travels with the object (an attribute, pickled with it): a fitted
# vectorizer shipped to another worker process for its predictions finds its
# columns' transforms in the memo there too
_FIT_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FIT_KEYS_LOCK = threading.Lock()
_FIT_KEY_ATTR = "_stratumlite_memo_fit_key"


def _remember_fit_key(fitted, key) -> None:
    try:
        object.__setattr__(fitted, _FIT_KEY_ATTR, key)
    except (AttributeError, TypeError):  # no __dict__: this process only
        with _FIT_KEYS_LOCK:
            _FIT_KEYS[fitted] = key


def _fit_key_of(transformer):
    key = getattr(transformer, _FIT_KEY_ATTR, None)
    if key is None:
        with _FIT_KEYS_LOCK:
            key = _FIT_KEYS.get(transformer)
    return key
# the last ``y`` fingerprinted, per thread: one step passes one y to every column
_LOCAL = threading.local()


def _transformer_token(transformer) -> str | None:
    from .skrub_dataops import _estimator_unseeded

    try:
        if _estimator_unseeded(transformer):
            return None
        token = tokenize(transformer)
    except Exception:
        return None
    return None if is_unique_token(token) else token


def _y_token(y) -> str:
    if y is None:
        return "none"
    last = getattr(_LOCAL, "y", None)
    if last is not None and last[0]() is y:
        return last[1]
    token = tokenize(y)
    try:
        _LOCAL.y = (weakref.ref(y), token)
    except TypeError:
        pass
    return token


def _nbytes(columns) -> int:
    return sum(estimate_nbytes(col) for col in columns)


# transformers from these packages never read a column's pandas index
_INDEX_BLIND = ("skrub.", "sklearn.", "stratumlite.")


def _column_token(column, transformer) -> str:
    """Token of a column's name, dtype and values, and of its pandas index
    unless ``transformer`` is known not to read it.

    Tables that share a column often differ in their index alone: a ``merge``
    numbers its rows afresh, so the joined fold's columns carry ``0..n-1``
    where the same fold of the table before the join carries its row labels.
    skrub's and scikit-learn's transformers ignore the index (outputs are
    aligned by position), so for them the memo keys on the values and gives
    the outputs the asking column's index back (:func:`_reindexed`). A user's
    transformer might read the index: its key keeps it, unless its class sets
    ``stratumlite_index_blind = True``.
    """
    index = getattr(column, "index", None)
    blind = type(transformer).__module__.startswith(_INDEX_BLIND) \
        or getattr(transformer, "stratumlite_index_blind", False) is True
    if blind and index is not None and hasattr(column, "reset_index"):
        return tokenize(("pandas-values", column.reset_index(drop=True)))
    return tokenize(column)


def _kind(phase: str, transformer, column) -> tuple:
    """What :meth:`OperatorMemo.worth_looking_up` learns costs for: one
    transformer class on one column (name and dtype), fitting or transforming."""
    from skrub import _dataframe as sbd

    return (phase, type(transformer).__name__, sbd.name(column), str(sbd.dtype(column)))


def _aligned(outputs, column) -> bool:
    """Whether every output is row-aligned with ``column`` (same length and,
    for pandas, the same index): only those can be re-indexed on a hit."""
    index = getattr(column, "index", None)
    n = len(column)
    for out in outputs:
        try:
            if len(out) != n:
                return False
        except TypeError:
            return False
        if index is not None:
            out_index = getattr(out, "index", None)
            if out_index is None or not (out_index is index or out_index.equals(index)):
                return False
    return True


def _reindexed(outputs, column) -> list:
    """``outputs`` with ``column``'s pandas index (the same objects if it is
    already theirs; no data is copied)."""
    index = getattr(column, "index", None)
    if index is None:
        return list(outputs)
    return [out if out.index is index else out.set_axis(index) for out in outputs]


def _memo_fit_transform_column(column, y, columns_to_handle, transformer, allow_reject,
                               kwargs):
    memo = current_memo()
    if memo is None or kwargs:
        return _ORIGINAL_FIT(column, y, columns_to_handle, transformer, allow_reject, kwargs)
    from skrub import _dataframe as sbd

    if sbd.name(column) not in columns_to_handle:
        return sbd.name(column), [column], None
    kind = _kind("fit", transformer, column)
    key = None
    if memo.worth_looking_up(kind):  # a piece of this kind was costly before
        key = _fit_key(transformer, allow_reject, column, y)
        if key is None:
            return _ORIGINAL_FIT(column, y, columns_to_handle, transformer, allow_reject,
                                 kwargs)
        found, value = memo.get(key)
        if found:
            name, outputs, fitted = value
            return name, _reindexed(outputs, column), fitted
    start = time.perf_counter()
    name, outputs, fitted = _ORIGINAL_FIT(column, y, columns_to_handle, transformer,
                                          allow_reject, kwargs)
    seconds = time.perf_counter() - start
    memo.observe(kind, seconds)
    # keys and sizes only for pieces worth storing: fingerprinting every cheap
    # column cost more than the memo saved (house_prices: +52% vectorizer time)
    if seconds < memo.min_seconds or not _aligned(outputs, column):
        return name, outputs, fitted
    if key is None:  # the first costly piece of its kind: nothing to look up before
        key = _fit_key(transformer, allow_reject, column, y)
        if key is None:
            return name, outputs, fitted
    if fitted is not None:
        _remember_fit_key(fitted, key)
    memo.put(key, (name, tuple(outputs), fitted), _nbytes(outputs), seconds)
    return name, outputs, fitted


def _fit_key(transformer, allow_reject, column, y) -> tuple | None:
    """The memo key of fitting ``transformer`` on ``column`` (None: not reusable)."""
    ttoken = _transformer_token(transformer)
    if ttoken is None:
        return None
    return ("fit", ttoken, bool(allow_reject), _column_token(column, transformer),
            _y_token(y))


def _memo_transform_column(column, transformer, kwargs):
    memo = current_memo()
    if memo is None or kwargs or transformer is None:
        return _ORIGINAL_TRANSFORM(column, transformer, kwargs)
    fit_key = _fit_key_of(transformer)
    if fit_key is None:  # not fitted through the memo: no content key for it
        return _ORIGINAL_TRANSFORM(column, transformer, kwargs)
    kind = _kind("transform", transformer, column)
    key = None
    if memo.worth_looking_up(kind):
        key = ("transform", fit_key, _column_token(column, transformer))
        found, value = memo.get(key)
        if found:
            return _reindexed(value, column)
    start = time.perf_counter()
    outputs = _ORIGINAL_TRANSFORM(column, transformer, kwargs)
    seconds = time.perf_counter() - start
    memo.observe(kind, seconds)
    if seconds >= memo.min_seconds and _aligned(outputs, column):
        if key is None:
            key = ("transform", fit_key, _column_token(column, transformer))
        memo.put(key, tuple(outputs), _nbytes(outputs), seconds)
    return outputs


def install() -> None:
    """Route skrub's per-column fit and transform through the memo (idempotent)."""
    _atec._fit_transform_column = _memo_fit_transform_column
    _atec._transform_column = _memo_transform_column


install()
