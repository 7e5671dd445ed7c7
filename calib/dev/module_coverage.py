"""``python -m calib.dev.module_coverage``: does the default test run exercise every module the
wheel ships?

Runs the default set (``python -m pytest``, which leaves out the slow and browser tests) under
coverage.py, in this process's tests' own interpreter, then lists each module of ``calib/``
but ``calib/dev/`` with the share of its functions' bodies that ran. A module is exercised when
a line inside one of its functions ran (a module without functions, such as a table of
constants, when it was imported). Any module that is not prints ``NOT EXERCISED`` and the
command exits 1. Only the test process is traced: code that runs only in a child process
(the sandbox's, ``calib evaluate``'s workers) counts for nothing here, so the check errs on the
strict side. Needs ``coverage`` (``pip install coverage``); ``--data FILE`` reads a coverage
file made before instead of running the tests.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "calib"


def shipped_modules() -> list[Path]:
    """Every ``.py`` of the package but the maintainers' folder."""
    return sorted(p for p in PACKAGE.rglob("*.py") if "dev" not in p.relative_to(PACKAGE).parts)


def body_lines(path: Path) -> set[int]:
    """The lines of every function's body (its docstring left out)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                body = body[1:]
            for stmt in body:
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def report(data_file: Path) -> list[tuple[str, float | None, bool]]:
    """(module path, share of function-body lines run or None without functions, exercised)."""
    from coverage import CoverageData

    data = CoverageData(basename=str(data_file))
    data.read()
    measured = {str(Path(f).resolve()): set(data.lines(f) or ()) for f in data.measured_files()}
    rows = []
    for path in shipped_modules():
        ran = measured.get(str(path.resolve()), set())
        bodies = body_lines(path)
        if bodies:
            share = len(ran & bodies) / len(bodies)
            rows.append((str(path.relative_to(ROOT)), share, share > 0))
        else:
            rows.append((str(path.relative_to(ROOT)), None, bool(ran)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m calib.dev.module_coverage", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, help="a .coverage file made before")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest")
    ns = parser.parse_args(argv)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        data_file = ns.data
        if data_file is None:
            data_file = Path(tmp) / ".coverage"
            cmd = [sys.executable, "-m", "coverage", "run", f"--data-file={data_file}",
                   f"--source={PACKAGE}", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   *ns.pytest_args]  # fmt: skip
            failed = subprocess.run(cmd, cwd=ROOT).returncode
            if failed:  # what ran still counts; say so, and exit non-zero below
                print(f"note: the tests failed (exit {failed})", file=sys.stderr)
        rows = report(data_file)
    missed = 0
    for name, share, exercised in rows:
        shown = "imported" if share is None else f"{share:6.1%} of function bodies"
        print(f"{name:<40} {shown:>26}  {'' if exercised else 'NOT EXERCISED'}")
        missed += not exercised
    print(f"{len(rows) - missed} of {len(rows)} modules exercised")
    return 1 if missed else (2 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
