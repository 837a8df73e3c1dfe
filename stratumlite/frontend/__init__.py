"""Frontend: the only package that reads skrub internals (skrub >=0.11,<0.12)."""

from .search_adapter import X_NAME, Y_NAME
from .skrub_dataops import (
    ASK_APPLY_ANCESTOR,
    ChoiceMatchOp,
    ChoiceOp,
    NumericChoiceOp,
    SkrubOp,
    ValueOp,
    as_data_op,
    check_environment,
    check_grid_search_possible,
    eval_environment,
    find_scoring,
    fit_environment,
    learner_modes,
    to_plan,
    with_choices_set,
)

__all__ = [
    "X_NAME",
    "Y_NAME",
    "ASK_APPLY_ANCESTOR",
    "ChoiceMatchOp",
    "ChoiceOp",
    "NumericChoiceOp",
    "SkrubOp",
    "ValueOp",
    "as_data_op",
    "check_environment",
    "check_grid_search_possible",
    "eval_environment",
    "find_scoring",
    "fit_environment",
    "learner_modes",
    "to_plan",
    "with_choices_set",
]
