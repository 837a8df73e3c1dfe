"""stratumlite: optimizer, parallel runtime and lineage for skrub DataOps.

>>> import skrub, stratumlite
>>> stratumlite.evaluate(skrub.var("a", 2) * 21)
42
"""

from ._api import evaluate, explain
from .config import Config
from .errors import (
    EvaluationError,
    MissingVariableError,
    NotFittedError,
    StratumliteError,
)
from .frontend.patching import patch_skrub, patched_skrub, unpatch_skrub
from .learner import Learner, make_learner
from .search import (
    ParamSearch,
    cross_validate,
    cross_validate_many,
    make_grid_search,
    make_randomized_search,
)

__version__ = "0.1.0"

__all__ = [
    "Config",
    "EvaluationError",
    "Learner",
    "MissingVariableError",
    "NotFittedError",
    "StratumliteError",
    "evaluate",
    "explain",
    "make_learner",
    "patch_skrub",
    "patched_skrub",
    "unpatch_skrub",
    "ParamSearch",
    "cross_validate",
    "cross_validate_many",
    "make_grid_search",
    "make_randomized_search",
]
