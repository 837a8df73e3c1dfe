"""The drop-in: route skrub's entry points through stratumlite.

``patch_skrub()`` replaces exactly these, and nothing else (no library
defaults change): ``.skb.eval``, ``.skb.make_learner``,
``.skb.make_grid_search``, ``.skb.make_randomized_search``,
``.skb.cross_validate`` and ``skrub.cross_validate``. ``unpatch_skrub()``
restores skrub's originals; ``patched_skrub()`` is the context manager.

>>> import skrub, stratumlite
>>> with stratumlite.patched_skrub():
...     learner = (skrub.var("x") * 2).skb.make_learner()
>>> type(learner).__name__
'Learner'
>>> type((skrub.var("x") * 2).skb.make_learner()).__name__
'SkrubLearner'
"""

from __future__ import annotations

import contextlib
import threading

import skrub
from skrub._data_ops import _skrub_namespace

_NS = _skrub_namespace.SkrubNamespace
_METHODS = ("eval", "make_learner", "make_grid_search", "make_randomized_search",
            "cross_validate")
_originals: dict[str, object] = {}
_lock = threading.Lock()


def _eval(self, environment=None, *, keep_subsampling=False):
    from .._api import evaluate

    if keep_subsampling:
        return _originals["eval"](self, environment, keep_subsampling=True)
    return evaluate(self._data_op, environment)


def _make_learner(self, *, fitted=False, keep_subsampling=False, choose="default"):
    from ..learner import make_learner

    learner = make_learner(self._data_op, fitted=fitted, choose=choose,
                           keep_subsampling=keep_subsampling)
    learner.data_op = self.clone()
    return learner


def _make_grid_search(self, *, fitted=False, keep_subsampling=False, **kwargs):
    from ..search import make_grid_search

    return make_grid_search(self._data_op, fitted=fitted,
                            keep_subsampling=keep_subsampling, **kwargs)


def _make_randomized_search(self, *, fitted=False, keep_subsampling=False, **kwargs):
    from ..search import make_randomized_search

    return make_randomized_search(self._data_op, fitted=fitted,
                                  keep_subsampling=keep_subsampling, **kwargs)


def _cross_validate_method(self, environment=None, *, keep_subsampling=False, **kwargs):
    from ..search import cross_validate

    return cross_validate(self._data_op, environment, keep_subsampling=keep_subsampling,
                          **kwargs)


def _cross_validate_function(learner, environment, *, keep_subsampling=False, cv=None,
                             **kwargs):
    from ..learner import Learner
    from ..search import cross_validate

    if isinstance(learner, Learner) and getattr(learner, "data_op", None) is not None:
        return cross_validate(learner.data_op, environment, keep_subsampling=keep_subsampling,
                              cv=cv, **kwargs)
    # skrub learners and searches (nested cross-validation) keep skrub's path
    return _originals["skrub.cross_validate"](learner, environment,
                                              keep_subsampling=keep_subsampling, cv=cv,
                                              **kwargs)


_REPLACEMENTS = {
    "eval": _eval,
    "make_learner": _make_learner,
    "make_grid_search": _make_grid_search,
    "make_randomized_search": _make_randomized_search,
    "cross_validate": _cross_validate_method,
}


def patch_skrub() -> None:
    """Route skrub's evaluation, learner, search and cross-validation entry
    points through stratumlite (idempotent)."""
    with _lock:
        if _originals:
            return
        for name in _METHODS:
            original = _NS.__dict__[name]
            _originals[name] = original
            replacement = _REPLACEMENTS[name]
            replacement.__doc__ = getattr(original, "__doc__", None)
            replacement.__wrapped__ = original
            setattr(_NS, name, replacement)
        _originals["skrub.cross_validate"] = skrub.cross_validate
        skrub.cross_validate = _cross_validate_function


def unpatch_skrub() -> None:
    """Restore skrub's original entry points (idempotent)."""
    with _lock:
        if not _originals:
            return
        for name in _METHODS:
            setattr(_NS, name, _originals[name])
        skrub.cross_validate = _originals["skrub.cross_validate"]
        _originals.clear()


def is_patched() -> bool:
    return bool(_originals)


@contextlib.contextmanager
def patched_skrub():
    """Context manager: skrub patched inside the block, restored after."""
    already = is_patched()
    patch_skrub()
    try:
        yield
    finally:
        if not already:
            unpatch_skrub()
