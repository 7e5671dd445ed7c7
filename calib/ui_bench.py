"""The app's speed targets, measured for ``python -m calib bench``.

Kept apart from calib/bench.py because it runs the pages (Streamlit's AppTest): the
numerical benchmark must not need Streamlit.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    from calib import report, ui

    hists = dict(list(ui.model_histograms().items())[:n_layers])
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
