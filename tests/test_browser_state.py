"""Pages keep their state in a real browser (issue 17, item 5): Layers with another method
and an uploaded file, a row opened in Explore on that method's clip, then back to Layers
through the sidebar, where the upload and the method still are.

A `streamlit run app.py` server and Debian's Chromium, through ``calib.dev.browser``.
CALIB_SCREENSHOT_DIR=<folder> keeps the screenshots (Explore on the row, Layers back).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from calib import io as cio
from calib.dev import browser
from calib.histogram import Histogram

pytestmark = pytest.mark.browser

UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    if not browser.CHROMIUM.exists():
        pytest.skip(f"{browser.CHROMIUM} not found (apt-get install chromium)")
    with browser.streamlit_server(tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as pw:
        chrome = browser.chromium(pw)
        try:
            pg = chrome.new_page(viewport={"width": 1440, "height": 1000})
            pg.set_default_timeout(UI_TIMEOUT_MS)
            yield pg
        finally:
            chrome.close()


def _settled(page) -> None:
    page.wait_for_function(browser.PAGE_READY["Layers"].split(" && ")[-1])


def _query(page) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))


def _shot(page, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


def test_layers_upload_and_method_survive_a_row_opened_in_explore(page, server, tmp_path):
    from playwright.sync_api import expect

    shots = Path(os.environ.get("CALIB_SCREENSHOT_DIR") or tmp_path)
    rng = np.random.default_rng(0)
    npz = tmp_path / "two_layers.npz"
    cio.save_histograms(
        npz,
        {
            "relu one": Histogram.from_samples(np.maximum(rng.standard_normal(20_000), 0)),
            "tail two": Histogram.from_samples(rng.laplace(size=20_000)),
        },
    )
    side = page.locator('[data-testid="stSidebar"]')
    main = page.locator('[data-testid="stMain"]')

    page.goto(f"{server}/Layers")
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    _settled(page)
    # the method: mse
    side.locator('[data-testid="stSelectbox"]').filter(has_text="Method").click()
    page.get_by_role("option", name="mse", exact=True).click()
    page.wait_for_url(re.compile(r"method=mse"))
    _settled(page)
    # an upload
    side.locator("label").filter(has_text="Upload a multi-layer file").click()
    page.wait_for_url(re.compile(r"src=upload"))
    _settled(page)
    uploader = side.locator('[data-testid="stFileUploader"]').filter(has_text="Histogram file")
    uploader.locator("input[type=file]").set_input_files(str(npz))
    expect(main.get_by_text("two_layers.npz: mse, 8 bits.")).to_be_visible()
    _settled(page)

    # the worst row opens Explore on mse's clip
    grid = page.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 18)  # the first row's box
    page.wait_for_url(lambda url: "/Layers" not in url and "method=mse" in url)
    expect(main.get_by_text("Ranked under mse")).to_be_visible()
    page.wait_for_function(browser.PAGE_READY[""])
    assert _query(page)["src"] == "layers" and _query(page)["layer"] in ("relu one", "tail two")
    _shot(page, shots, "state_explore_ranked_under_mse.png")

    # back to Layers through the sidebar: the upload and the method are still there
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Layers").click()
    page.wait_for_url(re.compile(r"/Layers"))
    expect(main.get_by_text("two_layers.npz: mse, 8 bits.")).to_be_visible()
    _settled(page)
    expect(side.get_by_text("uploaded earlier in this session")).to_be_visible()
    method = side.locator('[data-testid="stSelectbox"]').filter(has_text="Method")
    shown = method.evaluate(
        "e => e.innerText + ' ' + [...e.querySelectorAll('input')].map(i => i.value).join(' ')"
    )
    assert "mse" in shown, shown
    page.wait_for_url(re.compile(r"method=mse"))
    q = _query(page)
    assert (q["src"], q["method"]) == ("upload", "mse")
    assert page.locator('[data-testid="stException"]').count() == 0
    _shot(page, shots, "state_layers_back.png")
