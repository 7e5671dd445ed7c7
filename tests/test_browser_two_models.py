"""Both shipped real models in Chromium: on each page, switch from all-MiniLM-L6-v2 to
EfficientNet-Lite0 (and back on Explore) and look for errors (issue 18 item 2).

Drives a real `streamlit run app.py` through ``calib.dev.browser`` (Debian's Chromium).
CALIB_SCREENSHOT_DIR=<folder> keeps the screenshots (the Effect page on EfficientNet-Lite0).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from calib.dev import browser
from calib.models import MODELS, with_effect

pytestmark = pytest.mark.browser

NET = "efficientnet_lite0"
UI_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Iterator:
    if not browser.CHROMIUM.exists():
        pytest.skip(f"{browser.CHROMIUM} not found")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with browser.streamlit_server(log) as url, sync_playwright() as pw:
        chrome = browser.chromium(pw)
        try:
            pg = chrome.new_page(viewport={"width": 1440, "height": 1000})
            pg.set_default_timeout(UI_TIMEOUT_MS)
            pg.server = url
            yield pg
        finally:
            chrome.close()


def _settled(page) -> None:
    page.wait_for_timeout(300)  # the rerun a click starts has begun
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')")


def _no_error(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    assert "Traceback" not in page.locator("body").inner_text()


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the sidebar select box labelled ``label``."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(
        has=page.locator("label", has_text=re.compile(f"^{re.escape(label)}$"))
    )
    box.get_by_role("combobox").click()
    page.get_by_role("option", name=option, exact=True).click()
    _settled(page)


def _main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


@pytest.mark.parametrize("path", ["", "Learn", "Layers", "Compare"])
def test_each_page_switches_between_the_two_models(page, path):
    from playwright.sync_api import expect  # waits until the page shows it

    main = page.locator('[data-testid="stMain"]')
    page.goto(f"{page.server}/{path}")
    _settled(page)
    _no_error(page)
    if path == "Learn":  # the lessons come first; a real model is one choice away
        _pick(page, "Lesson histogram", "Real model, demo or upload")
    _pick(page, "Model", MODELS[NET].label)
    if path == "":
        page.wait_for_url(re.compile(f"model={NET}&layer=%2F_blocks"))
        expect(main).to_contain_text(f"{MODELS[NET].label}: _blocks.1/_swish_1/Clip output")
    elif path == "Layers":
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("50")
        grid = main.locator('[data-testid="stSelectbox"]').filter(has_text="Page")
        # the grid's page selector counts the CNN's tensors, not MiniLM's 48
        expect(grid.get_by_role("combobox")).to_have_value(re.compile("of 50$"))
    elif path == "Learn":  # the layer picker shows the CNN's tensor, short
        expect(
            page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]')
            .filter(has=page.locator("label", has_text=re.compile("^Layer$")))
            .get_by_role("combobox")
        ).to_have_value("_blocks.1/_swish_1/Clip output")
    else:
        expect(main).to_contain_text(f"{MODELS[NET].label}: ")
    _settled(page)
    _no_error(page)
    _pick(page, "Model", MODELS["minilm"].label)
    if path == "Layers":
        expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("48")
    elif path != "Learn":
        expect(main).to_contain_text(f"{MODELS['minilm'].label}: ")
    _settled(page)
    _no_error(page)


def test_the_effect_page_switches_to_the_cnn(page):
    if NET not in with_effect():
        pytest.skip("no EfficientNet-Lite0 results in assets/ yet")
    page.goto(f"{page.server}/Effect")
    _settled(page)
    _no_error(page)
    page.locator('[data-testid="stSidebar"] label').filter(
        has_text=f"{MODELS[NET].label} (shipped)"
    ).click()
    _settled(page)
    _no_error(page)
    text = _main_text(page)
    assert "EfficientNet-Lite0 (shipped results)" in text
    folder = os.environ.get("CALIB_SCREENSHOT_DIR")
    if folder:
        height = page.evaluate(
            "document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight ?? 1000"
        )
        page.set_viewport_size({"width": 1440, "height": min(3000, int(height) + 40)})
        page.wait_for_timeout(1500)
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / "effect_efficientnet.png"))
        page.set_viewport_size({"width": 1440, "height": 1000})
