"""The app in a real browser: a `streamlit run app.py` server and Debian's headless Chromium
(``/usr/bin/chromium`` through Playwright; Playwright's own browser downloads are never
used), and the latencies a reader meets there.

One home for both users: ``tests/test_browser.py`` drives the pages with these, and
``python -m calib.dev.bench_app`` (so ``python -m calib bench``) reports :func:`latencies`.

Every latency is measured from the action in the browser (a navigation, a key press, a
click) to the moment the browser shows its result, read off the page itself: a chart's
title (in its drawn plotly layout, then two animation frames, so it has painted), the URL,
the script's status widget gone. The scrub (:func:`scrub_ms`) is timed inside the page,
from the mouse-down on the "Picked" figure's own slider to its P path and title changed,
then two animation frames.
"""

from __future__ import annotations

import contextlib
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
    "PAGE_READY",
    "PROBE_READY",
    "SCRUB_MS",
    "chromium",
    "first_load_ms",
    "keypress_redraw_ms",
    "latencies",
    "layers_row_to_explore_ms",
    "probe_latencies",
    "scrub_ms",
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
SCRUB_MS = 100.0  # a step of the "Picked" figure's own slider to it painted (issue 19)
FIRST_LOAD_MS = 2500.0  # a new browser session's visit to a page, to the page drawn

_DONE = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"
_PLOTS = "document.querySelectorAll('.js-plotly-plot .main-svg').length"
PAGE_READY = {  # url path -> a JS condition: the page's content is drawn, its script done
    "": f"{_PLOTS} >= 3 && {_DONE}",  # Explore: histogram, KL curve + picked, chosen P/Q
    "Learn": f"{_PLOTS} >= 6 && {_DONE}",  # the six steps
    "Layers": "document.querySelector('[data-testid=\"stDataFrame\"] canvas') && "
    f"{_PLOTS} >= 1 && {_DONE}",
    "Compare": f"{_PLOTS} >= 3 && {_DONE}",
    # Effect: the methods, keep-in-float and proxy charts beside the sensitivity table
    "Effect": "document.querySelector('[data-testid=\"stDataFrame\"] canvas') && "
    f"{_PLOTS} >= 3 && {_DONE}",
}
# the title of the drawn chart whose title contains `text` ('' until it is drawn), from its
# drawn plotly layout
_TITLE = """(text) => [...document.querySelectorAll('.js-plotly-plot')]
    .map(d => d._fullLayout?.title?.text).find(t => (t ?? '').includes(text)) ?? ''"""
_PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


# -- the server and the browser ----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(log: Path, script: str = "app.py") -> Iterator[str]:
    """A fresh `streamlit run <script>` (the app by default; the bench's probe page,
    ``calib/dev/probe.py``) on a free local port (its URL), always stopped after.

    RuntimeError, with the server's log, if it exits or does not answer its health check
    within START_TIMEOUT seconds.
    """
    port = _free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", script,
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
def first_load_ms(browser: Any, url: str, path: str = "", ready: str | None = None) -> float:
    """A new browser session (empty cache) opens ``url/path``: milliseconds to the page's
    content drawn (:data:`PAGE_READY`) and its script finished."""
    page = _new_page(browser)
    try:
        t0 = time.perf_counter()
        page.goto(f"{url}/{path}", wait_until="commit")
        page.wait_for_function(ready or PAGE_READY[path], polling="raf", timeout=TIMEOUT_MS)
        return 1e3 * (time.perf_counter() - t0)
    finally:
        page.context.close()


def _explore(browser: Any, url: str, ready: str | None = None) -> Any:
    page = _new_page(browser)
    page.goto(url)
    page.wait_for_function(ready or PAGE_READY[""], timeout=TIMEOUT_MS)
    return page


PROBE_READY = f"{_PLOTS} >= 4 && {_DONE}"
"""The bench's probe page (``calib/dev/probe.py``) drawn: its four charts, its script done."""


def keypress_redraw_ms(
    browser: Any, url: str, presses: int = 7, ready: str | None = None
) -> list[float]:
    """Explore's default view; the target-bins slider focused, one ArrowLeft at a time:
    milliseconds from each key press to the "Chosen: P and Q" chart drawn anew (on the
    default layer the seed keeps its first candidate, T bins, so every press moves it)."""
    page = _explore(browser, url, ready)
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


# Arms a one-shot timer in the page: the next mouse-down anywhere starts it; it stops two
# animation frames after the scrub figure's P path (its second subplot's first trace) has
# a new shape. window.__scrub then holds the milliseconds.
_ARM_SCRUB = """() => {
    const fig = [...document.querySelectorAll('.js-plotly-plot')]
        .find(d => d.querySelector('.slider-rail-rect'));
    const path = () => fig.querySelector('.subplot.x2y2 .scatterlayer .trace path.js-line');
    const before = path()?.getAttribute('d');
    window.__scrub = null;
    document.addEventListener('mousedown', () => {
        const t0 = performance.now();
        const check = () => {
            if (path()?.getAttribute('d') !== before) {
                requestAnimationFrame(() => requestAnimationFrame(() => {
                    window.__scrub = performance.now() - t0;
                }));
            } else {
                requestAnimationFrame(check);
            }
        };
        check();
    }, {capture: true, once: true});
}"""
# the centre of each step's tick on the "Picked" figure's slider, in page pixels
_TICKS = """() => {
    const fig = [...document.querySelectorAll('.js-plotly-plot')]
        .find(d => d.querySelector('.slider-rail-rect'));
    const rail = fig.querySelector('.slider-rail-rect').getBoundingClientRect();
    return [...fig.querySelectorAll('.slider-tick-rect')].map(t => {
        const r = t.getBoundingClientRect();
        return [r.left + r.width / 2, rail.top + rail.height / 2];
    });
}"""


def scrub_ms(browser: Any, url: str, steps: int = 9) -> list[float]:
    """Explore's default view; one click at a time on another step of the "Picked"
    figure's own slider: milliseconds, timed in the page, from the mouse-down to the
    picked P and the title redrawn and painted (two animation frames later).

    RuntimeError if a step redraws nothing in 10 s, or if the browser sent the server
    anything meanwhile (the scrub is the browser's alone)."""
    page = _new_page(browser)
    sent: list[int] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda _: sent.append(1)))
    try:
        page.goto(url)
        page.wait_for_function(PAGE_READY[""], timeout=TIMEOUT_MS)
        page.locator(".slider-rail-rect").first.scroll_into_view_if_needed()
        _settled(page)
        ticks = page.evaluate(_TICKS)
        if len(ticks) < 2:
            raise RuntimeError("the Picked figure has no slider steps")
        out = []
        before = len(sent)
        for k in range(steps):
            x, y = ticks[(3 + 4 * k) % len(ticks)]
            page.evaluate(_ARM_SCRUB)
            page.mouse.click(x, y)
            page.wait_for_function("() => window.__scrub !== null", timeout=10_000)
            out.append(float(page.evaluate("() => window.__scrub")))
        page.wait_for_timeout(300)  # a rerun's request would be sent by now
        if len(sent) != before:
            raise RuntimeError(f"the scrub sent the server {len(sent) - before} messages")
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


def _in_own_browser(measure: Any, url: str, repeats: int) -> dict[str, Any]:
    """``measure(url, repeats, browser)`` in a Chromium started and closed for it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        own = chromium(pw)
        try:
            return measure(url, repeats, own)
        finally:
            own.close()


def latencies(url: str, repeats: int = 3, browser: Any = None) -> dict[str, Any]:
    """Every latency above against a running server at ``url``: medians in ms, and each
    run's, as ``{"first load": {"Explore": ..}, "key press": .., "scrub": ..,
    "Layers row": .., "runs": {...}}``. Each page is visited once before its first loads
    are timed: a new visitor meets a running server, whose caches are filled.

    ``browser``, a Playwright browser, is used if given (Playwright's sync API runs one
    instance a thread); otherwise Chromium is started and closed here.
    """
    if browser is None:
        return _in_own_browser(latencies, url, repeats)
    loads: dict[str, list[float]] = {}
    for path in PAGE_READY:
        first_load_ms(browser, url, path)  # the server's own first run of the page
        loads[path or "Explore"] = [first_load_ms(browser, url, path) for _ in range(repeats)]
    keys = keypress_redraw_ms(browser, url)
    scrubs = scrub_ms(browser, url)
    row = layers_row_to_explore_ms(browser, url)
    med = statistics.median
    return {
        "first load": {p: med(v) for p, v in loads.items()},
        "key press": med(keys),
        "scrub": med(scrubs),
        "Layers row": row,
        "runs": {"first load": loads, "key press": keys, "scrub": scrubs},
    }


def probe_latencies(url: str, repeats: int = 3, browser: Any = None) -> dict[str, Any]:
    """The probe page's (``calib/dev/probe.py`` served at ``url``) first load and key press,
    measured as :func:`latencies` measures Explore's: medians in ms, and each run's."""
    if browser is None:
        return _in_own_browser(probe_latencies, url, repeats)
    first_load_ms(browser, url, ready=PROBE_READY)  # the server's own first run
    loads = [first_load_ms(browser, url, ready=PROBE_READY) for _ in range(repeats)]
    keys = keypress_redraw_ms(browser, url, ready=PROBE_READY)
    med = statistics.median
    return {"first load": med(loads), "key press": med(keys),
            "runs": {"first load": loads, "key press": keys}}  # fmt: skip
