"""The README and docs/: every relative link resolves, the README's caps are calib/limits.py's,
and the README stays a five-minute read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from calib import limits

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def relative_links(page: Path) -> list[tuple[str, Path, str]]:
    """(link, target file, anchor) of every link in ``page`` that is not a URL."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    out = []
    for link in LINK.findall(text):
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        out.append((link, (page.parent / path).resolve() if path else page, anchor))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    links = relative_links(page)
    missing = [link for link, target, _ in links if not target.exists()]
    assert not missing, f"{page.name}: links to nothing: {missing}"
    bad = [link for link, target, anchor in links
           if anchor and target.suffix == ".md" and anchor not in _anchors(target)]  # fmt: skip
    assert not bad, f"{page.name}: anchors with no heading: {bad}"


def test_the_link_check_can_fail(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A head\n[x](nowhere.md) [y](#a-head) [z](#no-head)\n", encoding="utf-8")
    links = relative_links(page)
    assert [t.exists() for _, t, _ in links] == [False, True, True]
    assert [a in _anchors(page) for _, _, a in links[1:]] == [True, False]


def _value(text: str) -> float:
    """A cap as the README writes it: 200 MiB, 4 GiB, 65,536, 2**26, 1e100, 120 s."""
    units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "s": 1}
    number, _, unit = text.strip().partition(" ")
    base = (
        float(2 ** int(number[3:])) if number.startswith("2**") else float(number.replace(",", ""))
    )
    return base * units[unit] if unit else base


def readme_caps() -> dict[str, float]:
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", (ROOT / "README.md").read_text(), re.M)
    return {name: _value(value) for name, value in rows}


def test_the_readmes_caps_are_calib_limits():
    caps = readme_caps()
    constants = {n for n in limits.__all__ if n.isupper()}
    assert set(caps) == constants
    for name, value in caps.items():
        assert value == getattr(limits, name), name


def test_the_cap_parser_reads_every_way_a_cap_is_written():
    assert [_value(v) for v in ("200 MiB", "4 GiB", "65,536", "2**26", "1e-100", "120 s")] == [
        200 * 2**20, 4 * 2**30, 65536, 2**26, 1e-100, 120
    ]  # fmt: skip


def test_the_readme_is_a_five_minute_read():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250
