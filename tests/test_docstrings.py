"""Everything ``depthscope`` exports is documented in Args / Returns / Example form, and every example in the
package's docstrings runs (on the real weights and the NYU sample) and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest
import torch

import depthscope
from depthscope.registry import Registry

EXPORTED = [(n, getattr(depthscope, n)) for n in depthscope.__all__ if not isinstance(getattr(depthscope, n), Registry)]


@pytest.mark.parametrize(("name", "obj"), EXPORTED, ids=[n for n, _ in EXPORTED])
def test_exported_api_is_documented(name, obj):
    doc = inspect.getdoc(obj) or ""
    assert "Example" in doc and ">>>" in doc, f"{name}: no runnable Example"
    if inspect.isclass(obj):
        assert "Args:" in doc or "Attributes:" in doc, f"{name}: no Args/Attributes"
    else:
        assert "Args:" in doc and "Returns:" in doc, f"{name}: no Args/Returns"


def _examples() -> list[doctest.DocTest]:
    finder, seen, tests = doctest.DocTestFinder(), set(), []
    for info in pkgutil.walk_packages(depthscope.__path__, "depthscope."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for t in finder.find(module, info.name, globs={**vars(module), "torch": torch}):
            if t.examples and t.name not in seen:
                seen.add(t.name)
                tests.append(t)
    return tests


EXAMPLES = _examples()


def test_the_exported_examples_are_among_those_run():
    names = {t.name.rsplit(".", 1)[-1] for t in EXAMPLES}
    assert {n for n, _ in EXPORTED} <= names | {"DepthModel", "AssessConfig", "AssessmentMetric", "ModelConfig"}


@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name.removeprefix("depthscope.") for t in EXAMPLES])
def test_docstring_example_runs(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=lambda s: pytest.fail(s, pytrace=False))
    assert result.failed == 0
