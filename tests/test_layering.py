"""The layering rule, checked by folder: pages -> calib.app -> calib.figures -> the core.

Every module of the package outside ``calib/app/``, ``calib/figures/`` and ``calib/dev/`` is
core: it must neither import streamlit or plotly nor, once imported, have loaded them. Figures
must not import streamlit. ``calib/dev/`` holds the maintainers' tools (benchmarks, the browser
driver), which the wheel leaves out: no module outside it imports it by name (``calib bench``
loads it by name at run time and says it needs a checkout when it is not there). New modules
are covered without editing this file.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "calib"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(_module(p) for p in PACKAGE.rglob("*.py"))
CORE = [m for m in MODULES if not m.startswith(("calib.app", "calib.figures", "calib.dev"))]
DEV = [m for m in MODULES if m.startswith("calib.dev")]
IMPORTABLE = [m for m in CORE if m != "calib.__main__"]  # that one runs the CLI
FIGURES = [m for m in MODULES if m.startswith("calib.figures")]


def _imports(module: str) -> set[str]:
    """Every top-level package a module's source imports, at any depth of its code."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_the_folders_hold_what_the_layout_says():
    assert {"calib.histogram", "calib.policies", "calib.sweep", "calib.methods", "calib.io"} <= set(
        CORE
    )
    assert {"calib.reference", "calib.collect"} <= set(CORE)
    assert {"calib.dev.bench", "calib.dev.browser", "calib.dev.bench_app"} <= set(DEV)
    assert "calib.figures.base" in FIGURES


@pytest.mark.parametrize("module", sorted(set(MODULES) - set(DEV)))
def test_nothing_the_wheel_ships_imports_the_maintainers_tools(module):
    assert not {m for m in _imports(module) if m.startswith("calib.dev")}


@pytest.mark.parametrize("module", CORE)
def test_core_source_imports_no_ui(module):
    """Not even lazily, inside a function: the core must work where the UI is not installed."""
    bad = {
        m
        for m in _imports(module)
        if m.split(".")[0] in ("streamlit", "plotly")
        or m.startswith(("calib.app", "calib.figures"))
    }
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", FIGURES)
def test_figures_import_no_streamlit(module):
    assert not {m for m in _imports(module) if m.split(".")[0] == "streamlit"}


def test_importing_the_whole_core_loads_neither_streamlit_nor_plotly():
    """One fresh interpreter imports every core module (catches imports made indirectly)."""
    code = (
        f"import importlib, sys\nfor m in {IMPORTABLE!r}:\n    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly'))\n"
        "assert not bad, bad[:3]"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_import_calib_and_a_sweep_load_no_pandas_plotly_or_streamlit():
    """The check a user of ``pip install calib`` (numpy alone) relies on, here where all of
    them are installed: tests/test_packaging.py runs it in a venv that has only numpy."""
    code = (
        "import calib, sys; calib.kl_sweep([1, 2, 3, 2, 1] * 100); "
        "bad = {'pandas', 'plotly', 'streamlit'} & set(sys.modules); assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
