"""The contract shared by every kernel estimator.

A kernel estimator is a *subclass* of the scikit-learn / skrub original: its
``__init__``, ``get_params``, ``clone``, ``repr``, pickling and fitted
attributes are the original's.  It overrides the hot methods only, and each
override starts with the static check ``supports(params, X)``; when it fails
(an option or a dtype the kernel does not reproduce exactly) the original
method runs unchanged.

Methods that scikit-learn's ``set_output`` machinery wraps (``transform``,
``fit_transform``) are wrapped again on the subclass, so a fallback calls the
*unwrapped* original (:func:`unwrapped`) and lets the subclass wrapper build
the pandas/polars container once, exactly as for the original.

``last_path`` records, per method, whether the last call took the kernel
("kernel") or the original ("fallback: <reason>"): explain output and tests
read it.  It is a private attribute (leading underscore), so it is not a
fitted attribute and does not change ``get_params``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def params_of(estimator_or_params: Any) -> dict[str, Any]:
    """``get_params(deep=False)`` of an estimator, or a copy of a params dict."""
    if isinstance(estimator_or_params, Mapping):
        return dict(estimator_or_params)
    return estimator_or_params.get_params(deep=False)


def unwrapped(func: Any) -> Any:
    """Strip scikit-learn's ``set_output`` wrapper(s) from a method."""
    while getattr(func, "__qualname__", "").startswith("_wrap_method_output"):
        func = func.__wrapped__
    return func


class KernelMixin:
    """Bookkeeping shared by the kernel estimators (see module docstring)."""

    def _record_path(self, method: str, ok: bool, reason: str) -> None:
        paths = self.__dict__.setdefault("_kernel_paths", {})
        paths[method] = "kernel" if ok else f"fallback: {reason}"

    @property
    def kernel_paths(self) -> dict[str, str]:
        """Which path each method took on its last call ('kernel' or 'fallback')."""
        return dict(self.__dict__.get("_kernel_paths", {}))

    def __getstate__(self):
        state = super().__getstate__()
        if isinstance(state, dict):
            state = dict(state)
            state.pop("_kernel_paths", None)
        return state
