"""The app's speed targets, measured for ``python -m calib bench``: the pages' server time
under AppTest, and a reader's waits in Chromium (``calib.dev.browser``) when it is there.

Kept apart from calib/dev/bench.py because it runs the pages (Streamlit's AppTest): the
numerical benchmark must not need Streamlit. ``python -m calib.dev.bench_app`` prints the rows
as JSON (the fields of ``calib.dev.bench.BenchRow``); the core's bench runs it as a
separate process.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _apptest(page: str):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / page), default_timeout=120)


def explore_slider_ms(changes: int = 6) -> tuple[float, float]:
    """Median server time (ms) of a rerun after a target-bins change on the default view,
    and of the first run. Each change is to a value not seen before (nothing cached)."""
    at = _apptest("app.py")  # the entry point, which runs Explore
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    slider = at.slider(key="explore_target_bins")
    start = int(slider.value)
    times = []
    for step in range(1, changes + 1):
        slider.set_value(start - step)
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        if at.exception:
            raise RuntimeError(f"Explore raised: {at.exception}")
        slider = at.slider(key="explore_target_bins")
    return 1e3 * statistics.median(times), 1e3 * first


def layers_table_ms(n_layers: int = 50) -> float:
    """``report.layer_table`` on the first ``n_layers`` tensors of the real model (seed)."""
    from calib import report
    from calib.app import sources

    hists = dict(list(sources.model_histograms().items())[:n_layers])
    t0 = time.perf_counter()
    report.layer_table(hists, "entropy", "seed")
    return 1e3 * (time.perf_counter() - t0)


def layers_visit_ms() -> tuple[float, float]:
    """The Layers page's first visit and a repeated visit (a new session, same server)."""
    times = []
    for _ in range(2):
        at = _apptest("pages/2_Layers.py")
        t0 = time.perf_counter()
        at.run()
        times.append(1e3 * (time.perf_counter() - t0))
        if at.exception:
            raise RuntimeError(f"Layers raised: {at.exception}")
    return times[0], times[1]


def browser_rows() -> list[dict]:
    """What a reader waits for in Chromium (``calib.dev.browser.latencies``: medians) on a
    server started for it; no rows without /usr/bin/chromium or Playwright."""
    from calib.dev import browser

    try:
        import playwright  # noqa: F401
    except ImportError:
        return []
    if not browser.CHROMIUM.exists():
        return []
    with tempfile.TemporaryDirectory() as tmp:
        with browser.streamlit_server(Path(tmp) / "server.log") as url:
            got = browser.latencies(url)
    row = {"loop_s": None, "same_answer": None}
    first = f"< {browser.FIRST_LOAD_MS / 1e3:g} s"
    out = [
        {**row, "name": f"browser: {page} first load", "sweep_s": ms / 1e3, "target": first,
         "met": ms < browser.FIRST_LOAD_MS}
        for page, ms in got["first load"].items()
    ]  # fmt: skip
    key, click = got["key press"], got["KL click"]
    out += [
        {**row, "name": "browser: key press to chart", "sweep_s": key / 1e3,
         "target": f"< {browser.KEY_REDRAW_MS:g} ms", "met": key < browser.KEY_REDRAW_MS},
        {**row, "name": "browser: KL click to chart", "sweep_s": click / 1e3,
         "target": f"< {browser.KL_CLICK_MS:g} ms", "met": click < browser.KL_CLICK_MS},
        {**row, "name": "browser: Layers row to URL", "sweep_s": got["Layers row"] / 1e3},
    ]  # fmt: skip
    return out


def rows() -> list[dict]:
    """The app's rows of the bench table: server time of the pages under AppTest, then
    the browser's latencies (when Chromium is there)."""
    logging.getLogger("streamlit").setLevel(logging.ERROR)  # bare-mode chatter
    slider, _ = explore_slider_ms()
    table = layers_table_ms(50)
    first, again = layers_visit_ms()
    row = {"loop_s": None, "same_answer": None}
    return [
        {**row, "name": "app: Explore slider rerun", "sweep_s": slider / 1e3,
         "target": "< 150 ms", "met": slider < 150},
        {**row, "name": "app: Layers table, 50 tensors", "sweep_s": table / 1e3,
         "target": "< 1 s", "met": table < 1e3},
        {**row, "name": "app: Layers first visit", "sweep_s": first / 1e3},
        {**row, "name": "app: Layers repeat visit", "sweep_s": again / 1e3},
        *browser_rows(),
    ]  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(rows()))
