"""The layering rule: pages -> ui -> figures -> core, never the reverse.

Every module of the package that is not a UI or figure module is core: importing it must
not load streamlit or plotly. New modules are covered without editing this file.
"""

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "calib"
UI_PREFIXES = ("ui", "figures")
CORE = sorted(
    p.stem
    for p in PACKAGE.glob("*.py")
    if not p.stem.startswith(UI_PREFIXES) and p.stem != "__main__"
)


def test_the_core_is_most_of_the_package():
    assert {"histogram", "policies", "sweep", "methods", "files", "collect"} <= set(CORE)


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_streamlit_or_plotly(module):
    name = "calib" if module == "__init__" else f"calib.{module}"
    code = (
        f"import sys, {name}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly')); "
        "assert not bad, bad[:3]"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
