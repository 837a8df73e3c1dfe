"""Argument templates: a node's fields with every DataOp and choice replaced by
an :class:`InputRef` to one of the node's inputs.

Templates keep the shape of what the user wrote (lists, dicts, slices,
estimators whose parameters hold choices), so skrub's own node logic can walk
them exactly as it walks the original fields. :func:`resolve` turns a template
back into a value, asking the runtime for each input it meets (lazily: only the
parts of a template that are actually resolved request their inputs).

This module knows nothing about skrub; it is shared by the frontend operators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.base import clone as skl_clone

from ..plan import Need

_SEQ = (list, tuple, set, frozenset)


@dataclass(frozen=True)
class InputRef:
    """Placeholder for the value of input ``index`` of the node."""

    index: int


@dataclass(frozen=True, eq=False)
class EstimatorTemplate:
    """An estimator some of whose parameters are dynamic (choices, DataOps).

    Resolving clones ``estimator`` and sets the resolved ``params`` on the
    clone: the user's estimator is never modified or fitted.
    """

    estimator: Any
    params: dict


def is_static(template: Any) -> bool:
    """True when resolving ``template`` needs no input and builds nothing."""
    t = type(template)
    if t is InputRef or t is EstimatorTemplate:
        return False
    if t in _SEQ:
        return all(is_static(x) for x in template)
    if t is dict:
        return all(is_static(v) for v in template.values())
    if t is slice:
        return all(is_static(x) for x in (template.start, template.stop, template.step))
    if isinstance(template, BaseEstimator):
        return False  # cloned on every resolution, as skrub does
    return True


def resolve(template: Any):
    """Generator: resolve ``template``, yielding :class:`Need` for each input."""
    t = type(template)
    if t is InputRef:
        return (yield Need(template.index))
    if t in _SEQ:
        items = []
        for item in template:
            items.append((yield from resolve(item)))
        return t(items)
    if t is dict:
        out = {}
        for k, v in template.items():
            out[k] = yield from resolve(v)
        return out
    if t is slice:
        start = yield from resolve(template.start)
        stop = yield from resolve(template.stop)
        step = yield from resolve(template.step)
        return slice(start, stop, step)
    if t is EstimatorTemplate:
        params = yield from resolve(template.params)
        est = skl_clone(template.estimator)
        est.set_params(**params)
        return est
    if isinstance(template, BaseEstimator):
        return skl_clone(template)
    return template


def token_form(template: Any) -> Any:
    """A plain structure equivalent to ``template`` for :func:`canonical.tokenize`.

    Estimator templates become a clone of the estimator whose dynamic
    parameters are set to their ``InputRef`` placeholders, so the canonical form
    of an estimator (class path + params, minus non-semantic ones) is reused.
    """
    t = type(template)
    if t is EstimatorTemplate:
        est = skl_clone(template.estimator, safe=False)
        est.set_params(**{k: token_form(v) for k, v in template.params.items()})
        return est
    if t in _SEQ:
        return t(token_form(x) for x in template) if t in (list, tuple) else template
    if t is dict:
        return {k: token_form(v) for k, v in template.items()}
    if t is slice:
        return ("slice", token_form(template.start), token_form(template.stop),
                token_form(template.step))
    return template


def input_refs(template: Any) -> frozenset[int]:
    """Indices of the inputs a template refers to."""
    t = type(template)
    if t is InputRef:
        return frozenset((template.index,))
    if t is EstimatorTemplate:
        return input_refs(template.params)
    if t in _SEQ:
        return frozenset().union(*(input_refs(x) for x in template)) if template else frozenset()
    if t is dict:
        vals = list(template.values())
        return frozenset().union(*(input_refs(x) for x in vals)) if vals else frozenset()
    if t is slice:
        return input_refs((template.start, template.stop, template.step))
    return frozenset()


def _register_tokens() -> None:
    from ..canonical import register_tokenizer

    register_tokenizer(InputRef, lambda ref: ref.index)


_register_tokens()


def resolve_with(template: Any, values: dict[int, Any]) -> Any:
    """Resolve ``template`` given the values of the inputs it refers to."""
    gen = resolve(template)
    value = None
    while True:
        try:
            need = gen.send(value)
        except StopIteration as stop:
            return stop.value
        value = values[need.index]
