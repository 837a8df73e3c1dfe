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

A ``TableVectorizer``'s preprocessing steps (cleaning and type conversion,
before the encoders) are reused with keys that cost nothing after the first
step: whole, between vectorizers that differ only in their encoders, and
column by column, between vectorizers over tables that share columns. See
"TableVectorizer's preprocessing, reused column by column" below (agent batch,
sequential: preprocessing 1.94 -> 1.41 task-seconds; the whole-table reuse
alone had taken the bound's vectorizer task-seconds from 8.0 to 6.4).
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
    blind = type(transformer).__module__.startswith(_INDEX_BLIND) \
        or getattr(transformer, "stratumlite_index_blind", False) is True
    return _values_token(column) if blind else tokenize(column)


def _values_token(column) -> str:
    """Token of a column's name, dtype and values, without its pandas index."""
    if getattr(column, "index", None) is not None and hasattr(column, "reset_index"):
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
# TableVectorizer's preprocessing, reused column by column
#
# A ``TableVectorizer`` is one scikit-learn pipeline: preprocessing steps
# (``CheckInputDataFrame``, then ``ApplyToEachCol`` steps wrapping
# ``CleanNullStrings``, ``DropUninformative``, ``ToDatetime``, ``DurationToFloat``,
# ``ToFloat``, ``CleanCategories``, ``ToStr``; their parameters come from the
# vectorizer's ``drop_*``, ``datetime_format``, ``null_strings`` and
# ``specific_transformers``), then the encoders, then a last ``ToFloat``.
# Vectorizers over tables that share columns (the same table with two ratio
# columns added, with its text column lower-cased or dropped, or with another
# encoder) repeat the preprocessing of every shared column. Column by column a
# step costs about a millisecond, as much as fingerprinting the column, so the
# generic column memo above leaves these pieces alone; but over 45 columns and
# seven steps, each rebuilding the table, preprocessing is most of what a
# vectorizer costs on a few thousand rows.
#
# So the preprocessing is run here step by step, column by column, with keys
# that cost nothing to make after the first step: a column entering the
# preprocessing is fingerprinted once (name, dtype, values; not its pandas
# index, as the column memo does for skrub's transformers), and the key of each
# step's output is a hash of (the step's unfitted parameters, the input column's
# key, whether the step's selector picked it, ``y``): a lineage key per column.
# A piece (one step on one column: its output and fitted column transformer) is
# looked up under that key and stored, however cheap it was. The fitted steps
# are this vectorizer's own ``ApplyToEachCol`` objects, filled by skrub's own
# ``_process_fit_transform_results`` from the pieces, so their state is what
# skrub's fit would give; the fitted column transformers in them are the
# objects the first fit produced. A vectorizer fitted this way also transforms
# column by column, each piece keyed by (the key of the fit that produced the
# column's transformer, the column's key). The encoders then run through the
# vectorizer's own pipeline (and the column memo), the preprocessing steps
# marked ``"passthrough"``: the fitted vectorizer holds a plain Pipeline.

_PREPROCESSING_KEY_ATTR = "_stratumlite_memo_preprocessing_key"
_PREPROCESSING = "TableVectorizer preprocessing"
_PREPROCESSING_COLUMN = "TableVectorizer preprocessing, one column"


def _chain(*parts) -> str:
    """A short key from the parts (strings, booleans, tuples of them)."""
    import xxhash

    return xxhash.xxh3_128_hexdigest(repr(parts).encode())


def _column_keys(X) -> dict[str, str] | None:
    """Per column of ``X``: a fingerprint of its name, dtype and values (not its
    pandas index); None if one cannot be fingerprinted."""
    from skrub import _dataframe as sbd

    try:
        return {name: _values_token(sbd.col(X, name)) for name in sbd.column_names(X)}
    except Exception:  # noqa: BLE001 - a column without a fingerprint: no reuse
        return None


def _output_keys(outputs, column, input_key: str, key) -> list:
    """Keys of a piece's outputs: an output that is the input column itself
    keeps its key, the others are derived from the piece's key (None: the
    piece has no key, its outputs must be fingerprinted)."""
    return [input_key if out is column else (None if key is None else _chain(key, j))
            for j, out in enumerate(outputs)]


def _stored(outputs, column) -> tuple:
    """A piece's outputs as stored: an output that is the input column itself
    (passed through) is kept as None, so the memo holds no input column and a
    hit passes the asking column through (same object, same key)."""
    return tuple(None if out is column else out for out in outputs)


def _restored(stored, column) -> list:
    """The outputs of a stored piece for ``column`` (see :func:`_stored`), with
    its pandas index."""
    index = getattr(column, "index", None)
    return [column if out is None else
            (out if index is None or out.index is index else out.set_axis(index))
            for out in stored]


def _is_column_step(step) -> bool:
    return type(step) is _atec.ApplyToEachCol


def _fit_step_by_column(step, step_token: str, X, y, keys: dict, memo):
    """``step.fit_transform(X, y)`` for an ``ApplyToEachCol`` step, column by
    column through the memo. Returns (output table, keys of its columns)."""
    from skrub import _dataframe as sbd
    from skrub import selectors

    selected = selectors.make_selector(step.cols).expand(X)
    selected_set = set(selected)
    y_token = _y_token(y)
    results, piece_keys = [], []
    for name in sbd.column_names(X):
        column = sbd.col(X, name)
        key = ("fit", _PREPROCESSING_COLUMN,
               _chain(step_token, keys[name], name in selected_set, y_token))
        found, value = memo.get(key)
        if found:
            in_name, stored, fitted = value
            outputs = _restored(stored, column)
        else:
            start = time.perf_counter()
            in_name, outputs, fitted = _ORIGINAL_FIT(
                column, y, selected, step.transformer, step.allow_reject, {})
            seconds = time.perf_counter() - start
            if fitted is not None:
                _remember_fit_key(fitted, key)
            if _aligned(outputs, column):
                stored = _stored(outputs, column)
                memo.put(key, (in_name, stored, fitted),
                         _nbytes(o for o in stored if o is not None), seconds, always=True)
        results.append((in_name, list(outputs), fitted))
        piece_keys.append((key, column, outputs, fitted))
    step._columns = selected
    Xt = step._process_fit_transform_results(results, X)
    out_keys = []
    for (key, column, outputs, fitted), (in_name, _, _) in zip(piece_keys, results):
        if fitted is not None and step.keep_original:
            outputs = [column, *outputs]  # as _process_fit_transform_results lists them
        out_keys.extend(_output_keys(outputs, column, keys[in_name], key))
    return Xt, dict(zip(step.all_outputs_, out_keys))


def _transform_step_by_column(step, X, keys: dict, memo):
    """``step.transform(X)`` for a fitted ``ApplyToEachCol`` step, column by
    column through the memo (skrub's ``ApplyToEachCol.transform``, with each
    column's outputs looked up first). Returns (output table, column keys)."""
    from skrub import _dataframe as sbd

    columns, out_keys = [], []
    for name in sbd.column_names(X):
        column = sbd.col(X, name)
        transformer = step.transformers_.get(name)
        fit_key = None if transformer is None else _fit_key_of(transformer)
        if transformer is None:
            outputs, key = [column], None
        elif fit_key is None:  # fitted elsewhere: computed, keyed by its values
            outputs, key = _ORIGINAL_TRANSFORM(column, transformer, {}), None
        else:
            key = ("transform", _PREPROCESSING_COLUMN, _chain(fit_key, keys[name]))
            found, value = memo.get(key)
            if found:
                outputs = _restored(value, column)
            else:
                start = time.perf_counter()
                outputs = _ORIGINAL_TRANSFORM(column, transformer, {})
                seconds = time.perf_counter() - start
                if _aligned(outputs, column):
                    stored = _stored(outputs, column)
                    memo.put(key, stored, _nbytes(o for o in stored if o is not None),
                             seconds, always=True)
        if transformer is not None and step.keep_original:
            outputs = [column, *outputs]
        columns.extend(outputs)
        out_keys.extend(_output_keys(outputs, column, keys[name], key))
    columns = _atec._rename_columns(columns, step.all_outputs_)
    Xt = sbd.copy_index(X, sbd.make_dataframe_like(X, columns))
    keys = dict(zip(step.all_outputs_, out_keys))
    if None in keys.values():
        keys = _column_keys(Xt)
    return Xt, keys


def _index_token(X) -> str:
    index = getattr(X, "index", None)
    return "no index" if index is None else tokenize(index)


def _preprocess(steps, X, y, memo, *, steps_token=None, fit_key=None):
    """The preprocessing ``steps`` on ``X`` through the memo: fitted when
    ``steps_token`` (the unfitted steps' tokens) is given, else transformed by
    the steps of the fit ``fit_key``. Returns ``(fitted steps, output, key)``,
    or None when a column cannot be fingerprinted.

    ``CheckInputDataFrame`` (any leading step that is not an ``ApplyToEachCol``)
    runs on the table; then the whole output is looked up under a key made of
    the columns' keys and the index (the same table again: one lookup), and on
    a miss the steps run column by column (see above)."""
    fitting = steps_token is not None
    i = 0
    while i < len(steps) and not _is_column_step(steps[i]):
        X = steps[i].fit_transform(X, y) if fitting else steps[i].transform(X)
        i += 1
    keys = _column_keys(X)
    if keys is None:
        return None
    table = (tuple(keys.items()), _index_token(X))
    key = ("fit", _PREPROCESSING, _chain(steps_token, table, _y_token(y))) if fitting \
        else ("transform", _PREPROCESSING, _chain(fit_key, table))
    found, value = memo.get(key)
    if found:
        return (*value, key)
    start = time.perf_counter()
    for j in range(i, len(steps)):
        step = steps[j]
        if not _is_column_step(step):
            X = step.fit_transform(X, y) if fitting else step.transform(X)
            keys = _column_keys(X)
            if keys is None:
                return None
        elif fitting:
            X, keys = _fit_step_by_column(step, steps_token[j], X, y, keys, memo)
        else:
            X, keys = _transform_step_by_column(step, X, keys, memo)
    value = (tuple(steps) if fitting else None, X)
    memo.put(key, value, estimate_nbytes(X), time.perf_counter() - start, always=True)
    return (*value, key)


def _vectorizer_fit_transform(owner, pipeline, memo, X, y=None, **params):
    """``pipeline.fit_transform`` of a vectorizer fitted under a memo: the
    preprocessing through the memo (:func:`_preprocess`), the rest through the
    pipeline itself with the preprocessing steps marked ``"passthrough"``."""
    del pipeline.fit_transform  # the instance attribute: Pipeline's own again
    n = len(owner._preprocessors)
    head = list(pipeline.steps[:n])
    steps = [est for _, est in head]
    if params or steps != list(owner._preprocessors):
        return pipeline.fit_transform(X, y=y, **params)
    # the steps' tokens before they are fitted (in place, below)
    steps_token = _steps_token(head)
    done = None if steps_token is None else _preprocess(steps, X, y, memo,
                                                        steps_token=steps_token)
    if done is None:  # a column without a fingerprint: skrub's own fit (refits every step)
        return pipeline.fit_transform(X, y)
    fitted, Xt, key = done
    names = [name for name, _ in head]
    pipeline.steps = [(name, "passthrough") for name in names] + list(pipeline.steps[n:])
    try:
        out = pipeline.fit_transform(Xt, y)
    finally:
        pipeline.steps = list(zip(names, fitted)) + list(pipeline.steps[n:])
    owner._preprocessors = list(fitted)
    object.__setattr__(owner, _PREPROCESSING_KEY_ATTR, key)
    return out


def _steps_token(steps) -> tuple | None:
    """Tokens of the *unfitted* preprocessing steps (None: not reusable)."""
    tokens = []
    for _, est in steps:
        token = _transformer_token(est)
        if token is None:
            return None
        tokens.append(token)
    return tuple(tokens)


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
    """``TableVectorizer.transform``; the preprocessing column by column through
    the memo when this vectorizer was fitted through it."""
    memo = current_memo()
    fit_key = getattr(self, _PREPROCESSING_KEY_ATTR, None)
    if memo is None or fit_key is None or type(self) is not _TableVectorizer:
        return _ORIGINAL_VECTORIZER_TRANSFORM(self, X)
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(self, "transformers_")
    n = len(self._preprocessors)
    head, tail = self._pipeline.steps[:n], self._pipeline.steps[n:]
    done = _preprocess([est for _, est in head], X, None, memo, fit_key=fit_key)
    Xt = Pipeline(head).transform(X) if done is None else done[1]
    # a new Pipeline over the fitted steps: the fitted vectorizer may be
    # transforming in another thread, its own pipeline is not touched
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
