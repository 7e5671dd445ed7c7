"""The app in a real browser: a `streamlit run app.py` server and Debian's headless Chromium
(``/usr/bin/chromium`` through Playwright; Playwright's own browser downloads are never
used), and the latencies a reader meets there.

One home for both users: ``tests/test_browser.py`` drives the pages with these, and
``python -m calib.dev.bench_app`` (so ``python -m calib bench``) reports :func:`latencies`.

Every latency is measured from the action in the browser (a navigation, a key press, a
click) to the moment the browser shows its result, read off the page itself: a chart's
title (in its drawn plotly layout; on Explore's ECharts figures, the chart's accessible
name, then two animation frames, so the canvas has painted), the URL, the script's status
widget gone.
"""

from __future__ import annotations

import contextlib
import math
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "FIRST_LOAD_MS",
    "KEY_REDRAW_MS",
    "KL_CLICK_MS",
    "PAGE_READY",
    "chromium",
    "first_load_ms",
    "keypress_redraw_ms",
    "kl_click_ms",
    "latencies",
    "layers_row_to_explore_ms",
    "marker_pixel",
    "streamlit_server",
]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 1000}
START_TIMEOUT = 60.0  # seconds for the server to answer its health check
TIMEOUT_MS = 60_000

# The targets (issue 10): medians, milliseconds.
KEY_REDRAW_MS = 250.0  # a target-bins key press to the redrawn P/Q chart
KL_CLICK_MS = 400.0  # a click on the KL curve to the redrawn "Picked" chart
FIRST_LOAD_MS = 2500.0  # a new browser session's visit to a page, to the page drawn

_DONE = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"
_PLOTS = "document.querySelectorAll('.js-plotly-plot .main-svg').length"
_ECHARTS = "document.querySelectorAll('[data-testid=\"stEChartsChart\"] canvas').length"
PAGE_READY = {  # url path -> a JS condition: the page's content is drawn, its script done
    "": f"{_ECHARTS} >= 4 && {_DONE}",  # Explore: histogram, KL curve, two P/Q charts
    "Learn": f"{_PLOTS} >= 6 && {_DONE}",  # the six steps
    "Layers": "document.querySelector('[data-testid=\"stDataFrame\"] canvas') && "
    f"{_PLOTS} >= 1 && {_DONE}",
    "Compare": f"{_PLOTS} >= 3 && {_DONE}",
    # Effect: the methods, keep-in-float and proxy charts beside the sensitivity table
    "Effect": "document.querySelector('[data-testid=\"stDataFrame\"] canvas') && "
    f"{_PLOTS} >= 3 && {_DONE}",
}
# the title of the drawn chart whose title contains `text` ('' until it is drawn): a plotly
# chart's drawn layout, or an ECharts chart's accessible name (Explore passes its title)
_TITLE = """(text) => [
    ...[...document.querySelectorAll('.js-plotly-plot')].map(d => d._fullLayout?.title?.text),
    ...[...document.querySelectorAll('[data-testid="stEChartsChart"]')]
        .map(d => d.getAttribute('aria-label')),
].find(t => (t ?? '').includes(text)) ?? ''"""
_PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


# -- the server and the browser ----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(log: Path) -> Iterator[str]:
    """A fresh `streamlit run app.py` on a free local port (its URL), always stopped after.

    RuntimeError, with the server's log, if it exits or does not answer its health check
    within START_TIMEOUT seconds.
    """
    port = _free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"streamlit did not answer within {START_TIMEOUT} s:\n{log.read_text()}")


def chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, through Playwright."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def _new_page(browser: Any) -> Any:
    page = browser.new_page(viewport=VIEWPORT)  # a new context: empty cache, new session
    page.set_default_timeout(TIMEOUT_MS)
    return page


def _settled(page: Any) -> None:
    page.wait_for_function(_DONE, timeout=TIMEOUT_MS)


def _title(page: Any, text: str) -> str:
    return page.evaluate(_TITLE, text)


def _wait_title(page: Any, text: str, not_: str) -> str:
    """Wait (polling every animation frame) until the chart titled ``text`` is drawn with
    another title than ``not_``; return it."""
    page.wait_for_function(
        f"(a) => {{ const t = ({_TITLE})(a[0]); return t && t !== a[1]; }}",
        arg=[text, not_],
        polling="raf",
        timeout=TIMEOUT_MS,
    )
    page.evaluate(_PAINTED)  # a canvas paints in the frame after its chart takes the option
    return _title(page, text)


# -- the measurements ------------------------------------------------------------------------
def first_load_ms(browser: Any, url: str, path: str = "") -> float:
    """A new browser session (empty cache) opens ``url/path``: milliseconds to the page's
    content drawn (:data:`PAGE_READY`) and its script finished."""
    page = _new_page(browser)
    try:
        t0 = time.perf_counter()
        page.goto(f"{url}/{path}", wait_until="commit")
        page.wait_for_function(PAGE_READY[path], polling="raf", timeout=TIMEOUT_MS)
        return 1e3 * (time.perf_counter() - t0)
    finally:
        page.context.close()


def _explore(browser: Any, url: str) -> Any:
    page = _new_page(browser)
    page.goto(url)
    page.wait_for_function(PAGE_READY[""], timeout=TIMEOUT_MS)
    return page


def keypress_redraw_ms(browser: Any, url: str, presses: int = 7) -> list[float]:
    """Explore's default view; the target-bins slider focused, one ArrowLeft at a time:
    milliseconds from each key press to the "Chosen: P and Q" chart drawn anew (on the
    default layer the seed keeps its first candidate, T bins, so every press moves it)."""
    page = _explore(browser, url)
    try:
        thumb = page.locator('[data-testid="stSlider"]').filter(has_text="Target bins")
        thumb = thumb.get_by_role("slider")
        thumb.focus()
        out = []
        for _ in range(presses):
            _settled(page)
            before = _title(page, "Chosen")
            t0 = time.perf_counter()
            thumb.press("ArrowLeft")
            _wait_title(page, "Chosen", before)
            out.append(1e3 * (time.perf_counter() - t0))
        return out
    finally:
        page.context.close()


_RECT = """(text) => {
    const d = [...document.querySelectorAll('[data-testid="stEChartsChart"]')]
        .find(d => (d.getAttribute('aria-label') ?? '').includes(text));
    const r = d.getBoundingClientRect();
    return [r.left, r.top, r.width, r.height];
}"""


def _default_kl_markers() -> tuple[dict, list[list]]:
    """Explore's default KL curve as the page draws it (the shipped model's default
    layer, the seed at its default levels): its option and its clickable markers."""
    from calib.app.sources import model_histograms
    from calib.explore import DEFAULT_LAYER, build_view
    from calib.figures import kl_curve_figure

    view = build_view(model_histograms()[DEFAULT_LAYER], "seed")
    option = kl_curve_figure(view.result)
    marks = next(s for s in option["series"] if s["name"] == "candidates")["data"]
    return option, marks


def marker_pixel(option: dict, point: list, rect: list[float]) -> tuple[float, float]:
    """Where an ECharts chart of ``option`` (drawn in ``rect``: left, top, width, height)
    draws ``point`` (x, y): its plot area is the option's grid, its axes' ranges are
    explicit (calib.figures.base), and a log axis is linear in log10."""
    left, top, width, height = rect
    g = option["grid"]
    ax, ay = option["xAxis"], option["yAxis"]

    def share(axis: dict, v: float) -> float:
        lo, hi = axis["min"], axis["max"]
        if axis["type"] == "log":
            v, lo, hi = math.log10(v), math.log10(lo), math.log10(hi)
        return (v - lo) / (hi - lo)

    x = left + g["left"] + share(ax, point[0]) * (width - g["left"] - g["right"])
    y = top + g["top"] + (1 - share(ay, point[1])) * (height - g["top"] - g["bottom"])
    return x, y


def kl_click_ms(browser: Any, url: str, clicks: int = 7) -> list[float]:
    """Explore's default view; one click at a time on a marker of the KL curve: milliseconds
    from each click to the "Picked: P and Q" chart drawn at that candidate."""
    option, marks = _default_kl_markers()
    page = _explore(browser, url)
    try:
        curve = page.locator('[data-testid="stEChartsChart"]').nth(1)
        curve.scroll_into_view_if_needed()
        out = []
        for k in range(clicks):
            _settled(page)
            before = _title(page, "Picked")
            point = marks[min(20 + 30 * k, len(marks) - 1)]
            candidate = point[2]
            x, y = marker_pixel(option, point, page.evaluate(_RECT, "KL divergence"))
            page.mouse.move(x, y)
            t0 = time.perf_counter()
            page.mouse.click(x, y)
            after = _wait_title(page, "Picked", before)
            out.append(1e3 * (time.perf_counter() - t0))
            # the markers are a pixel or two apart: a neighbour of the one aimed at counts
            shown = int(after.split("(bin ")[1].split(",")[0])
            if abs(shown - candidate) > 3 * (candidate // 100 + 1):
                raise RuntimeError(f"clicked candidate {candidate}, the chart shows {after!r}")
        return out
    finally:
        page.context.close()


def layers_row_to_explore_ms(browser: Any, url: str) -> float:
    """The Layers page; a click on the second row's box: milliseconds until the URL is
    Explore's (it read /Layers for about 2 s, issue 10)."""
    page = _new_page(browser)
    try:
        page.goto(f"{url}/Layers")
        page.wait_for_function(PAGE_READY["Layers"], timeout=TIMEOUT_MS)
        grid = page.locator('[data-testid="stDataFrame"]').first
        box = grid.bounding_box()
        t0 = time.perf_counter()
        page.mouse.click(box["x"] + 15, box["y"] + 35 * 2 + 18)
        page.wait_for_url(lambda u: "/Layers" not in u and "layer=" in u, timeout=TIMEOUT_MS)
        return 1e3 * (time.perf_counter() - t0)
    finally:
        page.context.close()


def latencies(url: str, repeats: int = 3, browser: Any = None) -> dict[str, Any]:
    """Every latency above against a running server at ``url``: medians in ms, and each
    run's, as ``{"first load": {"Explore": ..}, "key press": .., "KL click": ..,
    "Layers row": .., "runs": {...}}``. Each page is visited once before its first loads
    are timed: a new visitor meets a running server, whose caches are filled.

    ``browser``, a Playwright browser, is used if given (Playwright's sync API runs one
    instance a thread); otherwise Chromium is started and closed here.
    """
    if browser is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            own = chromium(pw)
            try:
                return latencies(url, repeats, own)
            finally:
                own.close()
    loads: dict[str, list[float]] = {}
    for path in PAGE_READY:
        first_load_ms(browser, url, path)  # the server's own first run of the page
        loads[path or "Explore"] = [first_load_ms(browser, url, path) for _ in range(repeats)]
    keys = keypress_redraw_ms(browser, url)
    clicks = kl_click_ms(browser, url)
    row = layers_row_to_explore_ms(browser, url)
    med = statistics.median
    return {
        "first load": {p: med(v) for p, v in loads.items()},
        "key press": med(keys),
        "KL click": med(clicks),
        "Layers row": row,
        "runs": {"first load": loads, "key press": keys, "KL click": clicks},
    }
