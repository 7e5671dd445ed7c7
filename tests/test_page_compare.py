"""The Compare page (pages/3_Compare.py) under AppTest.

The page's numbers are checked against direct ``kl_sweep`` / ``calibrate`` calls on the same
histogram, and its figures read back as plotly JSON (the figures on their own:
test_figures.py).
"""

from __future__ import annotations

import io
import json
import math
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
from calib.numbers import fmt
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
    """The comparison table as shown (text through calib.numbers.fmt), by name."""
    return at.dataframe[0].value.set_index("name")


def amaxes(at: AppTest) -> dict[str, float]:
    return {name: float(a) for name, a in table(at)["amax"].items()}


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
@pytest.mark.slow
def test_default_view_shows_every_variant_and_method(model_layer):
    at = run_page()
    assert not at.error and not at.warning
    # the real model's layer, at its own size
    assert at.select_slider(key="compare_hist_bins").value == model_layer.n_bins
    t = table(at)
    assert list(t.index) == [*VARIANTS, *METHODS]
    assert list(t["kind"]) == ["variant"] * len(VARIANTS) + ["method"] * len(METHODS)
    assert all(float(a) > 0 for a in t["amax"])
    # nothing shows a raw None: a method without levels or KL says "—"
    assert not t.isin(["None", "nan"]).any().any()
    assert t.loc["max", "target bins"] == t.loc["max", "KL (own)"] == "—"
    # one tab per variant but the seed; the open one (the variant furthest from the seed:
    # ncnn, the first, clips where the seed does here) is computed and shows a summary, a
    # ranked table and a figure
    assert [tab.label for tab in at.tabs] == EXPLAINED
    assert len(at.dataframe) == 2 and len(at.get("plotly_chart")) == 3
    seed = float(t.loc["seed", "amax"])
    furthest = max(EXPLAINED, key=lambda v: abs(float(t.loc[v, "amax"]) - seed))
    assert at.markdown[-1].value.startswith(f"{furthest} clips at")
    assert "activation units" in " ".join(c.value for c in at.caption)
    for v in EXPLAINED[1:]:
        open_tab(at, v)
        assert not at.exception and not at.error
        assert at.markdown[-1].value.startswith(f"{v} clips at")
        assert len(at.dataframe) == 2 and len(at.get("plotly_chart")) == 3


@pytest.mark.slow
def test_table_is_the_direct_calls(model_layer):
    at = run_page()
    t = table(at)
    for v in VARIANTS:
        s = kl_sweep(model_layer, variant=v)
        assert t.loc[v, "amax"] == fmt(s.amax, 6)
        assert t.loc[v, "target bins"] == str(DEFAULT_TARGET_BINS[v])
        assert t.loc[v, "KL (own)"] == fmt(s.min_kl, 4)
    for m in METHODS:
        c = calibrate(model_layer, m)
        assert t.loc[m, "amax"] == fmt(c.amax, 6)
        assert t.loc[m, "SQNR dB"] == fmt(c.metrics.sqnr_db, 2, fixed=True)
        # a percentage, as on every other page
        assert t.loc[m, "clipped %"] == fmt(100 * c.metrics.clipped_fraction, 3)
    # the "why" tables are attribute()'s, row for row
    for v in EXPLAINED:
        open_tab(at, v)
        expected = attribute(model_layer, v)
        shown = at.dataframe[1].value
        assert list(shown["group"]) == [e.group.name for e in expected.effects]
        assert list(shown["seed + group: amax"]) == [fmt(e.amax_with, 6) for e in expected.effects]
        assert list(shown["variant − group: amax"]) == [
            fmt(e.amax_without, 6) for e in expected.effects
        ]
        assert not shown.isin(["None", "nan"]).any().any()


def test_figure_lines_sit_at_the_table_amaxes():
    at = run_page()
    t = table(at)
    drawn = clip_lines(figure(at, 0))
    lines = {k: x for k, x in drawn.items() if not k.endswith(" -")}
    assert set(lines) == set(t.index)
    assert {k.removesuffix(" -"): -x for k, x in drawn.items() if k.endswith(" -")} == lines
    for name, x in lines.items():
        assert fmt(x, 6) == t.loc[name, "amax"]
    curves = figure(at, 1)
    minima = {tr["name"]: tr["x"][0] for tr in curves["data"] if tr["name"].endswith("minimum")}
    assert {k: fmt(x, 6) for k, x in minima.items()} == {
        f"{v} minimum": t.loc[v, "amax"] for v in VARIANTS
    }


@pytest.mark.slow
def test_histogram_size_changes_the_numbers(model_layer):
    at = run_page()
    before = amaxes(at)
    at.select_slider(key="compare_hist_bins").set_value(1024).run()
    assert not at.exception and not at.error
    after = amaxes(at)
    assert after["seed"] != before["seed"]
    assert after["seed"] == pytest.approx(kl_sweep(model_layer.rebin(1024)).amax, rel=1e-5)
    mxnet = kl_sweep(model_layer.rebin(1024), variant="mxnet").amax
    assert after["mxnet"] == pytest.approx(mxnet, rel=1e-5)


@pytest.mark.slow
def test_source_and_levels_change_the_numbers():
    at = run_page()
    before = amaxes(at)
    at.session_state["compare_demo"] = "Laplace"  # the demo to open with (skips the first)
    at.radio(key="compare_kind").set_value("demo").run()
    assert at.selectbox(key="compare_demo").value == "Laplace"
    assert not at.exception and not at.error
    assert at.select_slider(key="compare_hist_bins").value == 2048  # samples: 2048 bins
    demo = amaxes(at)
    assert demo["seed"] != before["seed"]
    ort = kl_sweep(demo_histogram("Laplace"), variant="onnxruntime").amax
    assert demo["onnxruntime"] == pytest.approx(ort, rel=1e-5)
    # one number of levels for every variant (on 512 bins, to keep the test fast)
    at.select_slider(key="compare_hist_bins").set_value(512).run()
    at.checkbox(key="compare_same_levels").check().run()
    at.slider(key="compare_target_bins").set_value(64).run()
    assert not at.exception and not at.error
    h = demo_histogram("Laplace", 512)
    t = table(at)
    for v in VARIANTS:
        assert t.loc[v, "target bins"] == "64"
        assert t.loc[v, "amax"] == fmt(kl_sweep(h, 64, v).amax, 6)
    open_tab(at, "mxnet")
    assert "levels" not in set(at.dataframe[1].value["group"])  # MXNet's 255 is gone


@pytest.mark.slow
def test_dead_layer_demo_has_a_defined_result():
    at = run_page()
    at.session_state["compare_demo"] = "Dead layer"
    at.radio(key="compare_kind").set_value("demo").run()
    assert not at.exception and not at.error
    assert len(at.warning) == 1 and "dead layer" in at.warning[0].value
    t = table(at)
    assert (t["amax"] == "0").all()
    assert (t["SQNR dB"] == "n/a").all()
    assert clip_lines(figure(at, 0)) == {}  # nothing to draw
    for v in EXPLAINED:
        open_tab(at, v)
        assert not at.exception and not at.error
        assert at.markdown[-1].value.startswith("dead layer")


@pytest.mark.slow
def test_every_demo_renders():
    at = run_page()
    at.session_state["compare_hist_bins"] = 512  # every demo offers 512: keeps the test fast
    at.radio(key="compare_kind").set_value("demo").run()
    for name in DEMOS:
        at.selectbox(key="compare_demo").set_value(name).run()
        assert not at.exception and not at.error, name
        assert at.select_slider(key="compare_hist_bins").value == 512
        assert len(table(at)) == len(VARIANTS) + len(METHODS)


@pytest.mark.slow
def test_failed_variants_are_counted_not_shown_as_a_range():
    """Issue 10, problem 9: "Variants clip between 65 and 65" when 4 of 5 failed."""
    counts = np.r_[np.arange(100, 0, -1)].astype(np.int64)
    buf = io.BytesIO()
    np.save(buf, counts)
    at = run_page()
    at.radio(key="compare_kind").set_value("histogram").run()
    at.file_uploader(key="compare_histogram_file").set_value(("h100.npy", buf.getvalue(), "x"))
    at.run()
    assert not at.exception and not at.error
    ran = [v for v in VARIANTS if math.isfinite(_try(Histogram.from_counts(counts), v))]
    assert len(ran) == 1  # 100 bins: only ONNX Runtime's 128 levels fit (mirrored, 200 bins)
    metrics = {m.label: m.value for m in at.metric}
    assert "Variants clip between" not in metrics
    amax = kl_sweep(Histogram.from_counts(counts), variant=ran[0]).amax
    assert metrics["Variants clip at"] == f"{ran[0]} only: {fmt(amax)}"
    assert any("4 of 5 variants cannot run" in w.value for w in at.warning)


def _try(h: Histogram, variant: str) -> float:
    try:
        return kl_sweep(h, variant=variant).amax
    except ValueError:
        return math.nan


@pytest.mark.slow
def test_a_share_over_100_percent_is_explained(model_layer):
    """Issue 10, problem 9: "121% of the way back" needed a sentence."""
    at = run_page()
    open_tab(at, "mxnet")
    summary = at.markdown[-1].value
    assert "% of the way back" in summary
    assert "More than 100% means the group alone moves the clip further than the gap" in summary
