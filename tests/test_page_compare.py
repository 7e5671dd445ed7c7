"""The Compare page (pages/3_Compare.py) under AppTest.

The page's numbers are checked against direct ``kl_sweep`` / ``calibrate`` calls on the same
histogram, and its figures read back as plotly JSON (the figures on their own:
test_figures.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from calib import io as cio
from calib.app.sources import ASSET_PATH, DEFAULT_LAYER
from calib.compare import attribute
from calib.demos import DEMOS, demo_histogram
from calib.histogram import Histogram
from calib.methods import METHODS, calibrate
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS
from calib.sweep import kl_sweep

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "3_Compare.py")
TIMEOUT = 60
EXPLAINED = [v for v in VARIANTS if v != "seed"]


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def figure(at: AppTest, index: int) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def open_tab(at: AppTest, variant: str) -> None:
    """Switch the "why" tabs to a variant (only the open tab is computed) and rerun."""
    at.session_state["compare_why_tab"] = variant
    at.run()
    assert not at.exception, at.exception


def table(at: AppTest):
    return at.dataframe[0].value.set_index("name")


def clip_lines(fig: dict) -> dict[str, float]:
    out = {}
    for shape in fig["layout"].get("shapes", []):
        assert shape["x0"] == shape["x1"]
        out[shape["name"]] = shape["x0"]
    return out


@pytest.fixture(scope="module")
def model_layer() -> Histogram:
    return cio.load_histograms(ASSET_PATH)[DEFAULT_LAYER]


# --------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------
def test_default_view_shows_every_variant_and_method(model_layer):
    at = run_page()
    assert not at.error and not at.warning
    # the real model's layer, at its own size
    assert at.select_slider(key="compare_hist_bins").value == model_layer.n_bins
    t = table(at)
    assert list(t.index) == [*VARIANTS, *METHODS]
    assert list(t["kind"]) == ["variant"] * len(VARIANTS) + ["method"] * len(METHODS)
    assert t["amax"].notna().all() and (t["amax"] > 0).all()
    # one tab per variant but the seed; the open one (the first) is computed and shows a
    # summary, a ranked table and a figure
    assert [tab.label for tab in at.tabs] == EXPLAINED
    assert len(at.dataframe) == 2 and len(at.get("plotly_chart")) == 3
    assert at.markdown[-1].value.startswith(f"{EXPLAINED[0]} clips at")
    assert "activation units" in " ".join(c.value for c in at.caption)
    for v in EXPLAINED[1:]:
        open_tab(at, v)
        assert not at.exception and not at.error
        assert at.markdown[-1].value.startswith(f"{v} clips at")
        assert len(at.dataframe) == 2 and len(at.get("plotly_chart")) == 3


def test_table_is_the_direct_calls(model_layer):
    at = run_page()
    t = table(at)
    for v in VARIANTS:
        s = kl_sweep(model_layer, variant=v)
        assert t.loc[v, "amax"] == s.amax
        assert t.loc[v, "target bins"] == DEFAULT_TARGET_BINS[v]
        assert t.loc[v, "KL (own)"] == s.min_kl
    for m in METHODS:
        c = calibrate(model_layer, m)
        assert t.loc[m, "amax"] == c.amax
        assert t.loc[m, "SQNR dB"] == pytest.approx(c.metrics.sqnr_db, rel=1e-12)
        assert t.loc[m, "clipped mass"] == pytest.approx(c.metrics.clipped_fraction, abs=1e-15)
    # the "why" tables are attribute()'s, row for row
    for v in EXPLAINED:
        open_tab(at, v)
        expected = attribute(model_layer, v)
        shown = at.dataframe[1].value
        assert list(shown["group"]) == [e.group.name for e in expected.effects]
        np.testing.assert_array_equal(
            shown["seed + group: amax"], [e.amax_with for e in expected.effects]
        )
        np.testing.assert_array_equal(
            shown["variant − group: amax"], [e.amax_without for e in expected.effects]
        )


def test_figure_lines_sit_at_the_table_amaxes():
    at = run_page()
    t = table(at)
    lines = clip_lines(figure(at, 0))
    assert set(lines) == set(t.index)
    for name, x in lines.items():
        assert x == t.loc[name, "amax"]
    curves = figure(at, 1)
    minima = {tr["name"]: tr["x"][0] for tr in curves["data"] if tr["name"].endswith("minimum")}
    assert minima == {f"{v} minimum": t.loc[v, "amax"] for v in VARIANTS}


def test_histogram_size_changes_the_numbers(model_layer):
    at = run_page()
    before = table(at)["amax"]
    at.select_slider(key="compare_hist_bins").set_value(1024).run()
    assert not at.exception and not at.error
    after = table(at)["amax"]
    assert after["seed"] != before["seed"]
    assert after["seed"] == kl_sweep(model_layer.rebin(1024)).amax
    assert after["mxnet"] == kl_sweep(model_layer.rebin(1024), variant="mxnet").amax


def test_source_and_levels_change_the_numbers():
    at = run_page()
    before = table(at)["amax"]
    at.session_state["compare_demo"] = "Laplace"  # the demo to open with (skips the first)
    at.radio(key="compare_kind").set_value("demo").run()
    assert at.selectbox(key="compare_demo").value == "Laplace"
    assert not at.exception and not at.error
    assert at.select_slider(key="compare_hist_bins").value == 2048  # samples: 2048 bins
    demo = table(at)["amax"]
    assert demo["seed"] != before["seed"]
    assert demo["onnxruntime"] == kl_sweep(demo_histogram("Laplace"), variant="onnxruntime").amax
    # one number of levels for every variant (on 512 bins, to keep the test fast)
    at.select_slider(key="compare_hist_bins").set_value(512).run()
    at.checkbox(key="compare_same_levels").check().run()
    at.slider(key="compare_target_bins").set_value(64).run()
    assert not at.exception and not at.error
    h = demo_histogram("Laplace", 512)
    t = table(at)
    for v in VARIANTS:
        assert t.loc[v, "target bins"] == 64
        assert t.loc[v, "amax"] == kl_sweep(h, 64, v).amax
    open_tab(at, "mxnet")
    assert "levels" not in set(at.dataframe[1].value["group"])  # MXNet's 255 is gone


def test_dead_layer_demo_has_a_defined_result():
    at = run_page()
    at.session_state["compare_demo"] = "Dead layer"
    at.radio(key="compare_kind").set_value("demo").run()
    assert not at.exception and not at.error
    assert len(at.warning) == 1 and "dead layer" in at.warning[0].value
    t = table(at)
    assert (t["amax"] == 0).all()
    assert t["SQNR dB"].isna().all()
    assert clip_lines(figure(at, 0)) == {}  # nothing to draw
    for v in EXPLAINED:
        open_tab(at, v)
        assert not at.exception and not at.error
        assert at.markdown[-1].value.startswith("dead layer")


def test_every_demo_renders():
    at = run_page()
    at.session_state["compare_hist_bins"] = 512  # every demo offers 512: keeps the test fast
    at.radio(key="compare_kind").set_value("demo").run()
    for name in DEMOS:
        at.selectbox(key="compare_demo").set_value(name).run()
        assert not at.exception and not at.error, name
        assert at.select_slider(key="compare_hist_bins").value == 512
        assert len(table(at)) == len(VARIANTS) + len(METHODS)
