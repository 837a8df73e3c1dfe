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

One level up, a ``TableVectorizer``'s preprocessing steps (cleaning and type
conversion, before the encoders) are reused whole between vectorizers that
differ only in their encoders: see "TableVectorizer's preprocessing, reused
whole" below (agent batch: the dedup bound's vectorizer task-seconds 8.0 -> 6.4).
"""

from __future__ import annotations

import threading
import time
import weakref

from skrub import _apply_to_each_col as _atec
from skrub._table_vectorizer import TableVectorizer as _TableVectorizer

from ..canonical import is_unique_token, tokenize
from ..runtime.memo import current_memo
from ..runtime.serialization import estimate_nbytes

__all__ = ["install"]

_ORIGINAL_FIT = _atec._fit_transform_column
_ORIGINAL_TRANSFORM = _atec._transform_column
_ORIGINAL_MAKE_PIPELINE = _TableVectorizer._make_pipeline
# the method without its ``set_output`` wrapper (install wraps the memo's own)
_ORIGINAL_VECTORIZER_TRANSFORM = _TableVectorizer.transform.__wrapped__

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


# --------------------------------------------------------------------------
# TableVectorizer's preprocessing, reused whole
#
# A ``TableVectorizer`` is one scikit-learn pipeline: preprocessing steps
# (``CheckInputDataFrame``, ``CleanNullStrings``, ``DropUninformative``,
# ``ToDatetime``, ``ToFloat``, ``CleanCategories``, ``ToStr``; their parameters
# come from the vectorizer's ``drop_*``, ``datetime_format``, ``null_strings``
# and ``specific_transformers``), then the encoders, then a last ``ToFloat``.
# Vectorizers that differ in their encoders only (a ``MinHashEncoder`` instead of
# a ``StringEncoder``, another ``cardinality_threshold``) run the same
# preprocessing on the same table. Column by column it is cheap (about a
# millisecond a column, below what the column memo stores), but over 45 columns
# and seven steps, each rebuilding the table, it is most of what such a
# vectorizer costs on a few thousand rows. So the memo also keeps the
# preprocessing's output table and fitted steps whole, keyed by the tokens of the
# unfitted steps, the input table (values and index) and ``y``; and, for a
# vectorizer fitted that way, its preprocessing's output on a table it
# transforms. The encoders still run (through the column memo), and the fitted
# vectorizer holds a plain scikit-learn pipeline whose preprocessing steps are
# the very objects the first fit produced.

_PREPROCESSING_KEY_ATTR = "_stratumlite_memo_preprocessing_key"
_PREPROCESSING = "TableVectorizer preprocessing"


def _steps_token(steps) -> tuple | None:
    """Tokens of the *unfitted* preprocessing steps (None: not reusable)."""
    tokens = []
    for _, est in steps:
        token = _transformer_token(est)
        if token is None:
            return None
        tokens.append(token)
    return tuple(tokens)


def _table_token(X) -> str | None:
    """Fingerprint of a whole table (values and index); None if it has none."""
    try:
        return tokenize(X)
    except Exception:  # noqa: BLE001 - a table that cannot be fingerprinted: not reused
        return None


def _through_memo(memo, kind, key_of, compute, nbytes_of):
    """``compute()``, or its value from ``memo``: looked up only once a piece of
    ``kind`` proved costly, stored when it cost at least ``min_seconds``; the
    key (``key_of()``, None: not reusable) is made only when needed. Returns
    ``(value, key or None)``."""
    key = None
    if memo.worth_looking_up(kind):
        key = key_of()
        if key is not None:
            found, value = memo.get(key)
            if found:
                return value, key
    start = time.perf_counter()
    value = compute()
    seconds = time.perf_counter() - start
    memo.observe(kind, seconds)
    if seconds >= memo.min_seconds:
        key = key or key_of()
        if key is not None:
            memo.put(key, value, nbytes_of(value), seconds)
    return value, key


def _vectorizer_fit_transform(owner, pipeline, memo, X, y=None, **params):
    """``pipeline.fit_transform`` of a vectorizer fitted under a memo: the
    preprocessing from the memo (or computed and stored), the rest through the
    pipeline itself with the preprocessing steps marked ``"passthrough"``."""
    del pipeline.fit_transform  # the instance attribute: Pipeline's own again
    n = len(owner._preprocessors)
    head = list(pipeline.steps[:n])
    if params or [est for _, est in head] != list(owner._preprocessors):
        return pipeline.fit_transform(X, y=y, **params)
    from sklearn.pipeline import Pipeline

    # the steps' tokens before they are fitted (in place, below)
    steps_token = _steps_token(head)

    def key_of():
        table = _table_token(X) if steps_token is not None else None
        return None if table is None else (
            "fit", _PREPROCESSING, steps_token, table, _y_token(y))

    def compute():
        # a plain pipeline of the same steps: fitted in place (no memory: not
        # cloned), exactly as the vectorizer's pipeline fits them
        return tuple(est for _, est in head), Pipeline(head).fit_transform(X, y)

    (fitted, Xt), key = _through_memo(memo, ("fit", _PREPROCESSING), key_of, compute,
                                      lambda value: estimate_nbytes(value[1]))
    names = [name for name, _ in head]
    pipeline.steps = [(name, "passthrough") for name in names] + list(pipeline.steps[n:])
    try:
        out = pipeline.fit_transform(Xt, y)
    finally:
        pipeline.steps = list(zip(names, fitted)) + list(pipeline.steps[n:])
    owner._preprocessors = list(fitted)
    if key is not None:
        object.__setattr__(owner, _PREPROCESSING_KEY_ATTR, key)
    return out


def _memo_make_pipeline(self):
    # a new fit: the key of an earlier fit through the memo no longer describes
    # this vectorizer, whether or not this fit goes through the memo
    vars(self).pop(_PREPROCESSING_KEY_ATTR, None)
    _ORIGINAL_MAKE_PIPELINE(self)
    memo = current_memo()
    # the vectorizer's own class only: a subclass may fit differently
    if memo is not None and type(self) is _TableVectorizer:
        import functools

        # an instance attribute shadowing Pipeline.fit_transform for this one
        # call (it deletes itself): the fitted pipeline stays a plain Pipeline
        self._pipeline.fit_transform = functools.partial(
            _vectorizer_fit_transform, self, self._pipeline, memo)


def _memo_vectorizer_transform(self, X):
    """``TableVectorizer.transform``; the preprocessing's output from the memo
    when this vectorizer was fitted through it."""
    memo = current_memo()
    fit_key = getattr(self, _PREPROCESSING_KEY_ATTR, None)
    if memo is None or fit_key is None or type(self) is not _TableVectorizer:
        return _ORIGINAL_VECTORIZER_TRANSFORM(self, X)
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(self, "transformers_")
    n = len(self._preprocessors)
    head, tail = self._pipeline.steps[:n], self._pipeline.steps[n:]

    def key_of():
        table = _table_token(X)
        return None if table is None else ("transform", _PREPROCESSING, fit_key, table)

    # new Pipeline objects over the fitted steps: the fitted vectorizer may be
    # transforming in another thread, its own pipeline is not touched
    Xt, _ = _through_memo(memo, ("transform", _PREPROCESSING), key_of,
                          lambda: Pipeline(head).transform(X), estimate_nbytes)
    return Pipeline(tail).transform(Xt)


def install() -> None:
    """Route skrub's per-column fit and transform, and the vectorizer's
    preprocessing, through the memo (idempotent)."""
    from sklearn.utils._set_output import _wrap_method_output

    _atec._fit_transform_column = _memo_fit_transform_column
    _atec._transform_column = _memo_transform_column
    _TableVectorizer._make_pipeline = _memo_make_pipeline
    # wrapped for ``set_output`` as the class's own method is
    _TableVectorizer.transform = _wrap_method_output(_memo_vectorizer_transform, "transform")


install()
