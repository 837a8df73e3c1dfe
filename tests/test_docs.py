"""Docstring examples run as tests (sqlglot's test_docs.py): every rule's
before/after example, the public API examples."""

import doctest
import importlib
import pkgutil

import pytest

import stratumlite

SKIP = ("stratumlite.runtime.kernels", "stratumlite.cli")


def _modules():
    for info in pkgutil.walk_packages(stratumlite.__path__, "stratumlite."):
        if not info.name.startswith(SKIP):
            yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
