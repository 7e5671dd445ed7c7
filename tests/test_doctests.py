"""The examples in the core's docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import calib

# Every core module, and the figures' shared numpy helpers (the app and the other figure
# modules have no examples, and need Streamlit or plotly).
SUBMODULES = sorted(m.name for m in pkgutil.walk_packages(calib.__path__, "calib."))
CORE = ["calib", "calib.figures.base", "calib.figures.sweep"] + [
    m for m in SUBMODULES if not m.startswith(("calib.app", "calib.figures", "calib.__main__"))
]


@pytest.mark.parametrize("name", CORE)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_examples_are_found():
    """A module that moves must not take its examples out of the run above."""
    with_examples = {
        name
        for name in CORE
        if doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS).attempted
    }
    assert {"calib", "calib.sweep._api", "calib.methods", "calib.collect",
            "calib.figures.base"} <= with_examples  # fmt: skip
