"""The examples in the package's docstrings run and print what they say.

Only modules that hold examples are collected (a module without one would pass vacuously);
every public function and type that ``calib`` exports must have examples of its own.
"""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import calib

FLAGS = doctest.ELLIPSIS
# Every module the wheel ships but the app and the figures (they need Streamlit or plotly),
# and the figures' shared numpy helpers; calib/dev (maintainers' tools) is not shipped.
SUBMODULES = sorted(m.name for m in pkgutil.walk_packages(calib.__path__, "calib."))
SEARCHED = ["calib", "calib.figures.base", "calib.figures.sweep"] + [
    m
    for m in SUBMODULES
    if not m.startswith(("calib.app", "calib.figures", "calib.dev", "calib.__main__"))
]


def _examples(name: str) -> int:
    """How many examples doctest finds in a module (its docstrings and its own objects')."""
    tests = doctest.DocTestFinder().find(importlib.import_module(name))
    return sum(len(t.examples) for t in tests)


WITH_EXAMPLES = [m for m in SEARCHED if _examples(m)]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS)
    assert result.attempted > 0
    assert result.failed == 0


def test_the_examples_are_found():
    """A module that moves must not take its examples out of the run above."""
    assert {"calib", "calib.sweep._api", "calib.methods", "calib.collect", "calib.histogram",
            "calib.io.histograms", "calib.figures.base"} <= set(WITH_EXAMPLES)  # fmt: skip


PUBLIC = sorted(
    name
    for name in calib.__all__
    if inspect.isfunction(getattr(calib, name)) or inspect.isclass(getattr(calib, name))
)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_function_and_type_has_an_example(name):
    """Its own docstring holds examples, and the module run above runs them."""
    obj = getattr(calib, name)
    assert obj.__module__ in WITH_EXAMPLES
    assert doctest.DocTestParser().get_examples(inspect.getdoc(obj) or ""), name
