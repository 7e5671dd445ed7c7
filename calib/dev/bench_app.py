"""The app's speed targets, measured for ``python -m calib bench``: the pages' server time
under AppTest, and a reader's waits in Chromium (``calib.dev.browser``) when it is there,
as ratios to a probe page measured in the same run (``calib/dev/probe.py``: the same
widgets, four trivial plotly charts: the floor of Streamlit + plotly on this machine).
``python -m calib.dev.bench_app --table`` prints a markdown table instead of JSON.

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


RATIO_TARGET = 1.3
"""Explore's key press and every page's first load, at most this many times the probe's."""


def browser_rows() -> list[dict]:
    """What a reader waits for in Chromium (``calib.dev.browser``: medians), in the same
    run on two servers: the app, and the probe page (``calib/dev/probe.py``: the same
    widgets, four trivial plotly charts), the floor of the stack. Key press and first
    loads are reported as ratios to the probe's (target :data:`RATIO_TARGET`), the scrub
    in milliseconds (target ``browser.SCRUB_MS``). No rows without /usr/bin/chromium or
    Playwright."""
    from calib.dev import browser

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return []
    if not browser.CHROMIUM.exists():
        return []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        chromium = browser.chromium(pw)
        try:
            with browser.streamlit_server(Path(tmp) / "probe.log", "calib/dev/probe.py") as url:
                probe = browser.probe_latencies(url, browser=chromium)
            with browser.streamlit_server(Path(tmp) / "server.log") as url:
                got = browser.latencies(url, browser=chromium)
        finally:
            chromium.close()
    row = {"loop_s": None, "same_answer": None}
    ratio = f"<= {RATIO_TARGET:g}x the probe"
    out = [
        {**row, "name": "browser: probe first load", "sweep_s": probe["first load"] / 1e3},
        {**row, "name": "browser: probe key press to chart", "sweep_s": probe["key press"] / 1e3},
    ]  # fmt: skip
    for page, ms in got["first load"].items():
        r = ms / probe["first load"]
        out.append({**row, "name": f"browser: {page} first load", "sweep_s": ms / 1e3,
                    "ratio": r, "target": ratio, "met": r <= RATIO_TARGET})  # fmt: skip
    key, scrub = got["key press"], got["scrub"]
    r = key / probe["key press"]
    out += [
        {**row, "name": "browser: Explore key press to Chosen chart", "sweep_s": key / 1e3,
         "ratio": r, "target": ratio, "met": r <= RATIO_TARGET},
        {**row, "name": "browser: Explore scrub (KL-curve pick) to chart", "sweep_s": scrub / 1e3,
         "ratio": scrub / probe["key press"], "target": f"<= {browser.SCRUB_MS:g} ms",
         "met": scrub <= browser.SCRUB_MS},
        {**row, "name": "browser: Layers row to URL", "sweep_s": got["Layers row"] / 1e3},
    ]  # fmt: skip
    return out


def as_bench_row(row: dict) -> dict:
    """A row with the fields of ``calib.dev.bench.BenchRow``: its ratio to the probe, if
    any, written at the front of its target ("1.12x the probe; <= 1.3x the probe")."""
    out = {k: v for k, v in row.items() if k != "ratio"}
    if row.get("ratio") is not None:
        out["target"] = f"{row['ratio']:.2f}x the probe; {row.get('target', '')}"
    return out


def table(rows: list[dict]) -> str:
    """The rows as a markdown table: name, time, ratio to the probe, target, met."""
    lines = ["| measurement | time | / probe | target | met |", "|:--|--:|--:|:--|:--|"]
    for r in rows:
        ms = "" if r.get("sweep_s") is None else f"{1e3 * r['sweep_s']:.0f} ms"
        ratio = "" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        met = {True: "yes", False: "no"}.get(r.get("met"), "")
        lines.append(f"| {r['name']} | {ms} | {ratio} | {r.get('target', '')} | {met} |")
    return "\n".join(lines)


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
    import os
    import sys

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    got = rows()
    if "--table" in sys.argv:  # for people: a markdown table, with the load average
        print(f"load average before: {load}\n")
        print(table(got))
        print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    else:  # for calib.dev.bench's BenchRow: the ratio goes into the target's text
        print(json.dumps([as_bench_row(r) for r in got]))
