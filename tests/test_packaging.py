"""The wheel as a user installs it: built from this checkout, installed into a fresh venv that
has nothing but numpy, then imported, swept and run as the ``calib`` command.

Slow (a build and an install, 40 to 90 s on this machine): ``python -m pytest -m slow``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

# the check, word for word: importing calib and sweeping loads no UI library
IMPORT_CHECK = (
    "import calib, sys; calib.kl_sweep([1, 2, 3, 2, 1] * 100); "
    "assert not {'pandas', 'plotly', 'streamlit'} & set(sys.modules), "
    "sorted({'pandas', 'plotly', 'streamlit'} & set(sys.modules)); print(calib.__file__)"
)


def _run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _builds_without_isolation() -> bool:
    """The installed setuptools can build a wheel itself: 70.1 and later carry bdist_wheel,
    older ones need the ``wheel`` package beside them."""
    try:
        major, minor = (int(x) for x in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the checkout (the build writes build/ and *.egg-info
    beside the sources: not in the work tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    shutil.copytree(ROOT / "calib", src / "calib", ignore=junk)
    shutil.copy(ROOT / "pyproject.toml", src)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", src]
    if _builds_without_isolation():
        cmd.insert(-1, "--no-build-isolation")  # else pip fetches setuptools for the build
    done = _run(cmd, tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = (tmp / "dist").glob("calib-*.whl")
    return found


def test_the_wheel_ships_the_package_and_leaves_the_maintainers_tools_out(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "calib").rglob("*.py")}
    dev = {n for n in shipped if n.startswith("calib/dev/")}
    assert dev, "calib/dev/ is where the maintainers' tools live"
    assert not {n for n in names if n.startswith("calib/dev/")}
    assert shipped - dev <= names  # every other module, the oracles (calib/reference.py) too
    assert "calib/reference.py" in names
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "calib = calib.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_the_wheel_in_a_fresh_venv_with_numpy_alone(wheel, tmp_path):
    """No --system-site-packages: the venv holds calib and numpy, nothing else. pip is the
    outer one (``pip --python``), so the venv needs no pip of its own."""
    venv = tmp_path / "venv"
    done = _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    # numpy pinned to the version here: pip finds it in its cache or the local index
    pip = [sys.executable, "-m", "pip", "--python", python]
    done = _run([*pip, "install", "-q", wheel, f"numpy=={np.__version__}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = _run([*pip, "list", "--format", "json"], tmp_path)
    assert {p["name"].lower() for p in json.loads(listed.stdout)} == {"calib", "numpy"}

    done = _run([python, "-c", IMPORT_CHECK], tmp_path)  # cwd outside the checkout
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(venv)), done.stdout  # the installed copy, not ROOT's

    helped = _run([venv / "bin" / "calib", "--help"], tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: calib ")
    for bench in (["bench", "--quick"], ["bench", "evaluate"]):
        done = _run([venv / "bin" / "calib", *bench], tmp_path)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "checkout" in done.stderr, done.stderr
