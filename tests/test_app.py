"""The Explore page (app.py) under Streamlit's AppTest: runs, reacts to widgets, plots the clip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 60  # seconds per run: the signed variants sweep a 4096-bin histogram densely


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def figure(at: AppTest, index: int) -> dict:
    """The index-th plotly chart on the page, read back as its JSON spec."""
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def test_default_run_shows_metrics_and_figures():
    at = run_app()
    assert not at.error
    values = metric_values(at)
    assert set(values) == {
        "Threshold (bins)",
        "Threshold",
        "Max |x|",
        "Threshold / max",
        "KL at minimum",
    }
    assert int(values["Threshold (bins)"]) >= DEFAULT_TARGET_BINS["seed"]
    assert 0 < float(values["Threshold / max"]) <= 1
    assert len(at.get("plotly_chart")) == 3
    assert at.slider(key="target_bins").value == DEFAULT_TARGET_BINS["seed"]


def test_target_bins_changes_the_answer():
    at = run_app()
    before = metric_values(at)
    at.slider(key="target_bins").set_value(32).run()
    assert not at.exception and not at.error
    after = metric_values(at)
    assert after["Threshold"] != before["Threshold"]
    assert after["KL at minimum"] != before["KL at minimum"]


def test_histogram_size_changes_the_answer():
    at = run_app()
    before = metric_values(at)
    at.select_slider(key="hist_bins").set_value(1024).run()
    assert not at.exception and not at.error
    after = metric_values(at)
    assert after["Threshold (bins)"] != before["Threshold (bins)"]
    assert after["Threshold"] != before["Threshold"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_renders(variant):
    at = run_app()
    at.selectbox(key="variant").set_value(variant).run()
    assert not at.exception and not at.error
    # a new variant starts from its own number of levels
    assert at.slider(key="target_bins").value == DEFAULT_TARGET_BINS[variant]
    assert len(at.metric) == 5
    assert len(at.get("plotly_chart")) == 3


@pytest.mark.parametrize("variant", ["seed", "mxnet"])
def test_clip_line_sits_at_the_reported_threshold(variant):
    at = run_app()
    at.selectbox(key="variant").set_value(variant).run()
    reported = float(metric_values(at)["Threshold"])
    result = app.demo_sweep(variant, DEFAULT_TARGET_BINS[variant], 2048)
    assert reported == pytest.approx(result.amax, rel=1e-3)  # the metric shows 4 digits

    shapes = {s["name"]: s for s in figure(at, 0)["layout"]["shapes"]}
    clip = shapes["clip"]
    assert clip["x0"] == clip["x1"] == pytest.approx(result.amax, rel=1e-12)
    assert shapes["clipped tail"]["x0"] == pytest.approx(result.amax, rel=1e-12)

    minimum = next(t for t in figure(at, 1)["data"] if t.get("name") == "minimum")
    assert minimum["x"] == [pytest.approx(result.amax, rel=1e-12)]
    assert minimum["y"] == [pytest.approx(result.min_kl, rel=1e-12)]


def test_log_y_switches_the_count_axes():
    at = run_app()
    assert figure(at, 0)["layout"]["yaxis"]["type"] == "log"  # on by default
    assert figure(at, 2)["layout"]["yaxis"]["type"] == "log"
    at.checkbox(key="log_y").uncheck().run()
    assert not at.exception
    assert figure(at, 0)["layout"]["yaxis"].get("type") != "log"
    assert figure(at, 2)["layout"]["yaxis"].get("type") != "log"


def test_impossible_settings_give_an_error_not_a_traceback():
    at = run_app()
    at.select_slider(key="hist_bins").set_value(512).run()
    at.slider(key="target_bins").set_value(1024).run()
    assert not at.exception
    assert len(at.error) == 1
    assert "target_bins" in at.error[0].value
    assert not at.metric


def test_summary_and_formatting_helpers():
    hist = app.demo_histogram(512)
    result = app.demo_sweep("seed", 128, 512)
    s = app.summarize(hist, result)
    assert s.best == result.best and s.amax == result.amax
    assert s.ratio == pytest.approx(result.amax / hist.max_abs)
    assert app.fmt(math.inf) == "undefined" and app.fmt(np.nan) == "undefined"
    assert app.fmt(1234.5678) == "1235"


def test_demo_samples_are_reproducible():
    a = app.demo_samples.__wrapped__(0)
    b = app.demo_samples.__wrapped__(0)
    np.testing.assert_array_equal(a, b)
    assert (a == 0).mean() == pytest.approx(0.5, abs=0.01)  # the ReLU zero spike
    assert a.max() > 6  # the outliers
