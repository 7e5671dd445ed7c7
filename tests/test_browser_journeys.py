"""The road in Chromium, on the realistic generated graphs (issue 17, item 7).

On both graphs of ``tests/graphs.py`` (an exporter-shaped transformer, a MobileNet-like
CNN), as a new user walks it: Layers' "Collect from an ONNX model" upload (the model and
an inputs .npz) -> the table -> its worst row -> Explore on that tensor -> the Effect page
with an upload of the same model and evaluation inputs -> Evaluate -> a sensitivity row ->
Explore on that tensor -> back to Layers through the sidebar, its collected table still
there. A screenshot is taken at each step (CALIB_SCREENSHOT_DIR keeps them).

Uses Debian's /usr/bin/chromium through Playwright (``calib.dev.browser``); skipped
without it unless CALIB_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("playwright")
from graphs import cnn_inputs, cnn_model, save_inputs, transformer_inputs, transformer_model

from calib import report
from calib.collect import collect_histograms
from calib.dev import browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

UI_TIMEOUT_MS = 120_000  # a collection or an evaluation under a progress bar, on a busy machine
SCREENSHOT_ENV = "CALIB_SCREENSHOT_DIR"
SIDE = '[data-testid="stSidebar"]'
MAIN = '[data-testid="stMain"]'
GRID = '[data-testid="stDataFrame"]'
ROW_PX = 35  # st.dataframe's header and row height (the grid draws on a canvas)
# tiny models and inputs: each journey is a few seconds of work for onnxruntime
MODELS = {
    "transformer": (lambda: transformer_model(layers=2), transformer_inputs),
    "cnn": (cnn_model, cnn_inputs),
}


def _require_browser() -> None:
    if browser.CHROMIUM.exists():
        return
    message = f"{browser.CHROMIUM} not found (apt-get install chromium)"
    if os.environ.get("CALIB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CALIB_REQUIRE_BROWSER=1 but {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    _require_browser()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    try:
        with browser.streamlit_server(log) as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as pw:
        chrome = browser.chromium(pw)
        try:
            yield chrome
        finally:
            chrome.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get(SCREENSHOT_ENV)
    return Path(folder) if folder else tmp_path_factory.mktemp("journey-shots")


def _settled(page) -> None:
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=UI_TIMEOUT_MS
    )


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.locator("body").inner_text()


def _shot(page, path: Path) -> None:
    """The whole page (Streamlit scrolls its own container: the window grows to fit it)."""
    height = page.evaluate(f"document.querySelector('{MAIN}')?.scrollHeight ?? 1000")
    page.set_viewport_size({"width": 1440, "height": min(3000, max(1000, int(height) + 40))})
    page.wait_for_timeout(500)  # plotly redraws to the new size
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 1000})


def _upload(page, label: str, path: Path) -> None:
    """Set the sidebar's file uploader labelled ``label``."""
    box = page.locator(f'{SIDE} [data-testid="stFileUploader"]').filter(
        has=page.locator("label", has_text=re.compile(f"^{re.escape(label)}"))
    )
    box.locator("input[type=file]").set_input_files(str(path))
    # the file's name listed under the uploader: the browser has sent it
    box.get_by_text(path.name).first.wait_for()
    _settled(page)


def _click_first_row(page, grid) -> None:
    """Select the first row of an st.dataframe: its selection box, left of the row."""
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + ROW_PX + ROW_PX / 2)


def _query(page) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))


def _explore_drawn(page) -> None:
    """Explore's URL and its four charts drawn, the script done."""
    page.wait_for_url(lambda u: "layer=" in u and "/Layers" not in u and "/Effect" not in u)
    page.wait_for_function(browser.PAGE_READY[""], timeout=UI_TIMEOUT_MS)


@dataclasses.dataclass
class Journey:
    kind: str
    page: object
    label: str  # the Layers page's caption of the collection ("model.onnx on inputs.npz")
    tensors: frozenset[str]
    worst: str  # the collection's worst row (report.worst_first, the page's defaults)
    from_layers: dict[str, str]  # Explore's query after the Layers row
    from_effect: dict[str, str]  # after the sensitivity row
    shots: Path


@pytest.fixture(scope="module", params=list(MODELS))
def journey(request, server, chromium, shots, tmp_path_factory) -> Iterator[Journey]:
    """The journey, Layers -> Explore -> Effect -> Explore, with its checks on the way;
    the page is left on Explore for the last step."""
    from playwright.sync_api import expect

    kind = request.param
    build, inputs = MODELS[kind]
    d = tmp_path_factory.mktemp(kind)
    model = d / "model.onnx"  # short names: the uploaders elide long ones
    model.write_bytes(build().SerializeToString())
    calib_npz = save_inputs(d / "calib.npz", inputs(n=8, seed=1))
    eval_npz = save_inputs(d / "eval.npz", inputs(n=4, seed=2))
    hists = collect_histograms(str(model), str(calib_npz)).histograms  # what the app collects
    worst = report.worst_first(report.layer_table(hists))[0].layer
    out = shots / kind
    out.mkdir(exist_ok=True)

    page = chromium.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        # 1. Layers: collect from the uploaded model
        page.goto(f"{server}/Layers")
        page.wait_for_function(browser.PAGE_READY["Layers"], timeout=UI_TIMEOUT_MS)
        page.locator(f"{SIDE} label").filter(has_text="Collect from an ONNX model").click()
        _settled(page)
        _upload(page, "ONNX model", model)
        _upload(page, "Calibration inputs", calib_npz)
        label = f"{model.name} on {calib_npz.name}, {len(hists)} tensors"
        caption = page.locator(f"{MAIN} [data-testid='stCaptionContainer']")
        expect(caption.filter(has_text=label).first).to_be_visible()
        page.wait_for_function(browser.PAGE_READY["Layers"], timeout=UI_TIMEOUT_MS)
        _no_exception(page)
        _shot(page, out / "1_layers_collected.png")

        # 2. its worst row opens Explore on that tensor
        _click_first_row(page, page.locator(GRID).first)
        _explore_drawn(page)
        from_layers = _query(page)
        _no_exception(page)
        _shot(page, out / "2_explore_from_layers.png")

        # 3. the Effect page, through the sidebar, with an upload of the same model
        page.locator(f'{SIDE} [data-testid="stSidebarNav"] a').filter(
            has_text="Effect on the model"
        ).click()
        page.wait_for_url(re.compile(r"/Effect"))
        _settled(page)
        page.locator(f"{SIDE} label").filter(has_text="Your model").click()
        _settled(page)
        _upload(page, "ONNX model", model)
        _upload(page, "Calibration inputs", calib_npz)
        _upload(page, "Evaluation inputs", eval_npz)
        _settled(page)
        page.locator(SIDE).get_by_role("button", name="Evaluate").click()
        expect(page.get_by_text(f"{model.name} on {calib_npz.name}").first).to_be_visible()
        page.wait_for_function(browser.PAGE_READY["Effect"], timeout=UI_TIMEOUT_MS)
        _no_exception(page)
        _shot(page, out / "3_effect_evaluated.png")

        # 4. a sensitivity row (the first: the tensor that hurts most) opens Explore on it
        hurts = page.locator('[data-testid="stHeading"]').filter(has_text="Which tensors hurt")
        grid = page.locator(f".st-key-effect_sensitivity {GRID}")
        if not grid.count():  # (older Streamlit: no key class) the table after the heading
            grid = hurts.locator("xpath=following::*[@data-testid='stDataFrame'][1]")
        _click_first_row(page, grid.first)
        _explore_drawn(page)
        from_effect = _query(page)
        _no_exception(page)
        _shot(page, out / "4_explore_from_effect.png")
        yield Journey(kind, page, label, frozenset(hists), worst, from_layers, from_effect, out)
    except Exception:
        page.screenshot(path=str(out / "failed.png"))  # where it stopped
        raise
    finally:
        page.close()


def test_layers_and_effect_rows_open_explore_on_their_tensor(journey):
    """Layers' worst row opens Explore on the collection's worst tensor, from the session's
    histograms; the Effect page's first sensitivity row opens a tensor of the upload."""
    q = journey.from_layers
    assert q["src"] == "layers" and q["layer"] == journey.worst, q
    q = journey.from_effect
    assert q["src"] == "layers" and q["layer"] in journey.tensors, q


def test_layers_keeps_its_collection_after_the_journey(journey):
    """Back to Layers through the sidebar: the ONNX source still chosen, the collected
    table still shown (not the shipped model's)."""
    from playwright.sync_api import expect

    page = journey.page
    page.locator(f'{SIDE} [data-testid="stSidebarNav"] a').filter(has_text="Layers").click()
    page.wait_for_url(re.compile(r"/Layers"))
    page.wait_for_function(browser.PAGE_READY["Layers"], timeout=UI_TIMEOUT_MS)
    _no_exception(page)
    _shot(page, journey.shots / "5_layers_again.png")
    onnx = page.locator(f"{SIDE} [data-testid='stRadio'] label").filter(
        has_text="Collect from an ONNX model"
    )
    assert onnx.locator("input").is_checked()
    caption = page.locator(f"{MAIN} [data-testid='stCaptionContainer']")
    expect(caption.filter(has_text=journey.label).first).to_be_visible(timeout=5_000)
