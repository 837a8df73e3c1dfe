"""Exceptions. Every error stratumlite raises derives from :class:`StratumliteError`."""

from __future__ import annotations


class StratumliteError(Exception):
    """Root of every stratumlite exception."""


class UnsupportedVersionError(StratumliteError, ImportError):
    """An installed library is outside the version range stratumlite supports."""


class PlanError(StratumliteError, ValueError):
    """The DataOp cannot be turned into a plan (unsupported construct, bad input)."""


class MissingVariableError(StratumliteError, KeyError):
    """A variable needed for evaluation has no value in the environment."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class EvaluationError(StratumliteError, RuntimeError):
    """Evaluating a node failed; ``__cause__`` is the original exception.

    ``node`` holds a one-line description of the failing node (number, operator,
    name) and ``original`` the exception the estimator or function raised.
    """

    def __init__(self, message: str, *, node: str = "", original: BaseException | None = None):
        super().__init__(message)
        self.node = node
        self.original = original


class NotFittedError(StratumliteError, AttributeError):
    """A learner was asked to predict/transform before ``fit``."""


class LineageError(StratumliteError, LookupError):
    """Unknown run, node key or model in the lineage store."""
