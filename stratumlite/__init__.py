"""stratumlite: optimizer, parallel runtime and lineage for skrub DataOps.

Public names are imported lazily (PEP 562), so ``import stratumlite`` and the
command line start fast; the first use of a name imports what it needs.

>>> import skrub, stratumlite
>>> stratumlite.evaluate(skrub.var("a", 2) * 21)
42
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "config",
    "EvaluationError": "errors",
    "MissingVariableError": "errors",
    "NotFittedError": "errors",
    "StratumliteError": "errors",
    "evaluate": "_api",
    "explain": "_api",
    "Learner": "learner",
    "make_learner": "learner",
    "ParamSearch": "search",
    "cross_validate": "search",
    "cross_validate_many": "search",
    "make_grid_search": "search",
    "make_randomized_search": "search",
    "patch_skrub": "frontend.patching",
    "patched_skrub": "frontend.patching",
    "unpatch_skrub": "frontend.patching",
    "register": "registry_api",
    "load_model": "registry_api",
    "set_alias": "registry_api",
    "list_models": "registry_api",
}

__all__ = [
    "Config",
    "EvaluationError",
    "Learner",
    "MissingVariableError",
    "NotFittedError",
    "ParamSearch",
    "StratumliteError",
    "cross_validate",
    "cross_validate_many",
    "evaluate",
    "explain",
    "list_models",
    "load_model",
    "make_grid_search",
    "make_learner",
    "make_randomized_search",
    "patch_skrub",
    "patched_skrub",
    "register",
    "set_alias",
    "unpatch_skrub",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stratumlite' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from ._api import evaluate, explain
    from .config import Config
    from .errors import EvaluationError, MissingVariableError, NotFittedError, StratumliteError
    from .frontend.patching import patch_skrub, patched_skrub, unpatch_skrub
    from .learner import Learner, make_learner
    from .registry_api import list_models, load_model, register, set_alias
    from .search import (
        ParamSearch,
        cross_validate,
        cross_validate_many,
        make_grid_search,
        make_randomized_search,
    )
