"""The Explore page (pages/0_Explore.py, app.py's default page) under Streamlit's AppTest:
it opens on the real model's layer, reacts to every control, plots the clip where it
reports it, takes uploads of every format, survives bad ones, and keeps its state in the
query string.

Expected answers come from the core called directly on the same histogram (kl_sweep,
clip_metrics, the amax_* methods), not from the page's own helpers.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from calib import io as cio
from calib.app import links, sources
from calib.demos import DEMOS
from calib.figures.base import DRAWN_DIGITS
from calib.histogram import DEFAULT_BINS, Histogram
from calib.methods import amax_max, amax_mse, amax_percentile, clip_metrics
from calib.models import short_name
from calib.numbers import fmt_db, fmt_pct
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS
from calib.sweep import kl_sweep

APP = str(Path(__file__).resolve().parents[1] / "app.py")  # the entry point: Explore first
EXPLORE = "0_Explore.py"
TIMEOUT = 60
LAYER = sources.DEFAULT_LAYER
METRICS = [
    "Threshold (bins)",
    "Threshold",
    "Max |x|",
    "Threshold / max",
    "Clipped mass",
    "KL at minimum",
    "SQNR",
]


def model_hist(layer: str = LAYER) -> Histogram:
    return cio.load_histograms(sources.ASSET_PATH)[layer]  # straight from the file


def run_app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


FIGURES = {"kl_curve": "picked", "pq_picked": "picked"}  # the scrub figure holds both


def chart(at: AppTest, name: str) -> dict:
    """The plotly chart keyed ``explore_<name>``, read back as its figure's JSON."""
    key = f"explore_{FIGURES.get(name, name)}"
    for c in at.get("plotly_chart"):
        if c.proto.id.endswith(key):
            return json.loads(c.proto.spec)
    raise KeyError(name)


# Explore's charts draw each point to DRAWN_DIGITS significant digits: within half a unit of
# the last one of the number, relatively
DRAWN_REL = 0.5 * 10.0 ** (1 - DRAWN_DIGITS)
# and each position along an axis to under a millionth of the axis's span (calib.figures.
# base.on_axis): within that of the exact value
ON_AXIS = 1e-6


def assert_on_the_curve(line: dict, r) -> None:
    """Each point drawn on the KL curve is a candidate's (threshold, KL), in order from the
    first candidate to the last (candidates can share a threshold: any of them)."""
    kl = np.where(np.isinf(r.kl), np.nan, r.kl)
    last = 0
    for x, y in zip(line["x"], line["y"], strict=True):
        near = np.flatnonzero(np.isclose(r.thresholds, x, rtol=0, atol=line["x_tol"]))
        same = [
            j
            for j in near
            if j >= last
            and ((np.isnan(y) and np.isnan(kl[j])) or np.isclose(kl[j], y, rtol=DRAWN_REL))
        ]
        assert same, (x, y)
        last = same[0]
    assert line["x"][0] == pytest.approx(r.thresholds[0], abs=line["x_tol"])
    assert line["x"][-1] == pytest.approx(r.thresholds[-1], abs=line["x_tol"])


def charts(at: AppTest) -> int:
    """How many charts the page drew (every one a plotly chart: tests/test_pages_charts.py)."""
    return len(at.get("plotly_chart"))


def values(v) -> np.ndarray:
    """A plotly JSON array (None for a gap) as floats (NaN for a gap)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.array([np.nan if a is None else a for a in v], dtype=np.float64)


def shapes(at: AppTest) -> dict[str, dict]:
    """The histogram's lines by name (their "x0")."""
    lay = chart(at, "histogram")["layout"]
    return {sh["name"]: sh for sh in lay.get("shapes", []) if sh.get("type") == "line"}


def tails(at: AppTest) -> list[tuple[float, float]]:
    """The histogram's clipped tails, (from, to)."""
    lay = chart(at, "histogram")["layout"]
    return [(sh["x0"], sh["x1"]) for sh in lay.get("shapes", []) if sh.get("type") == "rect"]


def trace(at: AppTest, name: str, figure: str = "kl_curve") -> dict:
    """A trace of a chart, its "x" and "y" as floats, with "x_tol" (a millionth of its x
    axis's span: positions are rounded to it) and "customdata" (the candidate) as ints."""
    fig = chart(at, figure)
    t = dict(next(t for t in fig["data"] if t.get("name") == name))
    t["x"], t["y"] = values(t.get("x", [])), values(t.get("y", []))
    xs = t["x"][np.isfinite(t["x"])] if t["x"].size else np.zeros(1)
    lo, hi = fig["layout"].get("xaxis", {}).get("range") or [xs.min(), xs.max()]
    t["x_tol"] = ON_AXIS * (hi - lo or 1.0)
    if "customdata" in t and t["customdata"] and not isinstance(t["customdata"][0], list):
        t["customdata"] = [int(c) for c in t["customdata"]]
    return t


def y_type(at: AppTest, name: str) -> str:
    lay = chart(at, name)["layout"]
    axis = lay["yaxis2"] if name == "pq_picked" else lay["yaxis"]
    return axis.get("type", "linear")


def assert_clip_at(at: AppTest, amax: float, min_kl: float) -> None:
    """The reported threshold, the clip line, the tail and the KL minimum all at amax."""
    assert float(metrics(at)["Threshold"]) == pytest.approx(amax, rel=1e-3)  # 4 digits shown
    s = shapes(at)
    assert s["clip"]["x0"] == pytest.approx(amax, rel=1e-12)
    assert tails(at)[0][0] == pytest.approx(amax, rel=1e-12)  # [amax, top]; then [-top, -amax]
    minimum = trace(at, "minimum")
    assert minimum["x"].tolist() == [pytest.approx(amax, abs=minimum["x_tol"])]
    assert minimum["y"].tolist() == [pytest.approx(min_kl, rel=DRAWN_REL)]


def upload(at: AppTest, kind: str, name: str, data: bytes) -> AppTest:
    if at.radio(key="explore_kind").value != kind:
        at.radio(key="explore_kind").set_value(kind).run()
    at.file_uploader(key=f"explore_{kind}_file").set_value((name, data, "application/x-test"))
    at.run()
    assert not at.exception, at.exception
    return at


def npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# the default view
# --------------------------------------------------------------------------------------
def test_default_view_is_the_real_model_layer():
    at = run_app()
    assert not at.error and not at.warning
    assert at.radio(key="explore_kind").value == "model"
    assert at.selectbox(key="explore_model_layer").value == LAYER
    assert short_name(LAYER) in at.caption[0].value  # shown short
    assert list(metrics(at)) == METRICS
    assert charts(at) == 3
    h = model_hist()
    r = kl_sweep(h, target_bins=128, variant="seed")
    assert at.slider(key="explore_target_bins").value == DEFAULT_TARGET_BINS["seed"]
    assert at.select_slider(key="explore_hist_bins").value == h.n_bins  # as given
    assert metrics(at)["Threshold (bins)"] == str(r.best)
    assert_clip_at(at, r.amax, r.min_kl)
    m = clip_metrics(h, r.amax, num_bits=8)
    assert metrics(at)["SQNR"] == fmt_db(m.sqnr_db)
    assert metrics(at)["Clipped mass"] == fmt_pct(m.clipped_fraction)
    assert float(metrics(at)["Max |x|"]) == pytest.approx(h.max_abs, rel=1e-3)
    # the other methods' thresholds as faint lines where the core puts them
    s = shapes(at)
    assert s["max"]["x0"] == amax_max(h)
    assert s["percentile"]["x0"] == amax_percentile(h)
    assert s["mse"]["x0"] == amax_mse(h, num_bits=8)
    assert at.query_params == {
        "src": "model", "model": "minilm", "layer": LAYER, "variant": "seed", "target_bins": "128",
        "hist_bins": str(h.n_bins), "num_bits": "8", "log_y": "true",
        "candidate": str(r.candidates[-1]),
    }  # fmt: skip


def test_the_default_view_says_why_its_numbers_are_what_they_are():
    """Issue 10, problem 7: nothing said why the default layer's SQNR is what it is. The
    page says which error dominates, clipping or rounding, measured here from the
    histogram alone (the clip's error is the 16-bit quantizer's: rounding there is nil)."""
    at = run_app()
    h = model_hist()
    r = kl_sweep(h)
    m = clip_metrics(h, r.amax, 8)
    share = clip_metrics(h, r.amax, 16).mse / m.mse
    cause, part = ("clipping", share) if share >= 0.5 else ("rounding", 1 - share)
    text = " ".join(x.value for x in at.markdown)
    assert f"SQNR {fmt_db(m.sqnr_db)}: {cause} causes {part:.0%} of the error" in text
    assert fmt_pct(m.clipped_fraction) in text
    # P is filled, Q dashed over it
    chosen = chart(at, "pq_chosen")["data"]
    assert chosen[0]["name"] == "P" and chosen[0]["fill"] == "tozeroy"
    assert chosen[1]["name"] == "Q" and chosen[1]["line"]["dash"] == "dash"


@pytest.mark.slow
def test_infinite_kl_candidates_are_counted():
    at = run_app(variant="modelopt")
    r = kl_sweep(model_hist(), variant="modelopt")
    n_inf = int(np.isinf(r.kl).sum())
    assert 0 < n_inf < r.kl.size  # ModelOpt's KL is infinite where Q is 0 and P is not
    notes = [c.value for c in at.caption if "infinite KL" in c.value]
    assert notes and notes[0].startswith(f"{n_inf:,} of {r.kl.size:,} candidates")


@pytest.mark.slow
def test_target_bins_changes_the_answer_and_the_plots():
    at = run_app()
    before_kl = trace(at, "KL")["y"]
    at.slider(key="explore_target_bins").set_value(64).run()
    assert not at.exception and not at.error
    r = kl_sweep(model_hist(), target_bins=64)
    assert metrics(at)["Threshold (bins)"] == str(r.best) != "128"
    assert_clip_at(at, r.amax, r.min_kl)
    after = trace(at, "KL")
    assert not np.array_equal(after["y"], before_kl)  # candidates start at T: 64.. not 128..
    assert_on_the_curve(after, r)
    assert at.query_params["target_bins"] == "64"


@pytest.mark.slow
def test_histogram_size_changes_the_answer_and_the_plots():
    at = run_app()
    at.select_slider(key="explore_hist_bins").set_value(1024).run()
    assert not at.exception and not at.error
    h = model_hist().rebin(1024)
    r = kl_sweep(h)
    assert metrics(at)["Threshold (bins)"] == str(r.best)
    assert_clip_at(at, r.amax, r.min_kl)
    assert trace(at, "histogram", "histogram")["x"].size == 1024 + 1  # left edges, last edge
    assert at.query_params["hist_bins"] == "1024"


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_renders_with_its_own_levels(variant):
    at = run_app()
    at.selectbox(key="explore_variant").set_value(variant).run()
    assert not at.exception and not at.error
    assert at.slider(key="explore_target_bins").value == DEFAULT_TARGET_BINS[variant]
    assert charts(at) == 3
    r = kl_sweep(model_hist(), variant=variant)
    assert_clip_at(at, r.amax, r.min_kl)
    assert at.query_params["variant"] == variant


@pytest.mark.slow
@pytest.mark.parametrize("demo", list(DEMOS))
def test_every_demo_renders(demo):
    at = run_app(src="demo", demo=demo)
    assert not at.error
    assert at.selectbox(key="explore_demo").value == demo
    if demo == "Dead layer":
        assert at.warning and "dead layer" in at.warning[0].value
        assert charts(at) == 1 and "clip" not in shapes(at)
        assert metrics(at)["Threshold"] == "0"
        return
    assert charts(at) == 3
    h = sources._demo(demo, DEFAULT_BINS)
    if demo == "Seed ramp":  # the seed's own example: 2048 bins, 128 levels, answer 2047
        assert metrics(at)["Threshold (bins)"] == "2047"
        r = kl_sweep(h)
    else:  # the samples, histogrammed at the default size
        r = kl_sweep(Histogram.from_samples(sources._demo_samples(demo), bins=DEFAULT_BINS))
    assert_clip_at(at, r.amax, r.min_kl)


@pytest.mark.slow
def test_log_y_switches_the_count_axes():
    at = run_app()
    for name in ("histogram", "pq_chosen", "pq_picked"):
        assert y_type(at, name) == "log"
    at.checkbox(key="explore_log_y").uncheck().run()
    for name in ("histogram", "pq_chosen", "pq_picked"):
        assert y_type(at, name) != "log"
    assert at.query_params["log_y"] == "false"


@pytest.mark.slow
def test_bit_width_sets_levels_sqnr_and_mse_line():
    at = run_app()
    at.select_slider(key="explore_num_bits").set_value(4).run()
    assert not at.exception and not at.error
    assert at.slider(key="explore_target_bins").value == 8  # 2**(4 - 1) levels
    h = model_hist()
    r = kl_sweep(h, target_bins=8)
    assert metrics(at)["SQNR"] == fmt_db(clip_metrics(h, r.amax, num_bits=4).sqnr_db)
    assert shapes(at)["mse"]["x0"] == amax_mse(h, num_bits=4)
    assert at.query_params["num_bits"] == "4"


@pytest.mark.slow
def test_other_variants_lines_on_request():
    at = run_app()
    assert not set(VARIANTS) & set(shapes(at))
    at.checkbox(key="explore_show_variants").check().run()
    s = shapes(at)
    h = model_hist()
    for v in VARIANTS:
        if v != "seed":
            assert s[v]["x0"] == kl_sweep(h, variant=v).amax
    assert "seed" not in s  # the seed is the red clip line itself


# --------------------------------------------------------------------------------------
# policies
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_overriding_a_policy_reruns_and_shows_the_override():
    at = run_app()
    expander = at.expander[0]
    assert expander.label == "Policies of seed"
    assert at.selectbox(key="explore_policy_merge").value == "fractional"  # the preset
    at.selectbox(key="explore_policy_zero_q").set_value("inf").run()
    assert not at.exception and not at.error
    r = kl_sweep(model_hist(), zero_q="inf")
    assert_clip_at(at, r.amax, r.min_kl)
    assert at.expander[0].label == "Policies of seed (1 overridden)"
    assert any("`zero_q` = 'inf'" in md.value for md in at.markdown)
    assert at.query_params["zero_q"] == "inf"
    at.button(key="explore_policy_reset").click().run()
    assert at.selectbox(key="explore_policy_zero_q").value == "one"
    assert "zero_q" not in at.query_params


@pytest.mark.slow
def test_a_new_variant_resets_the_policies():
    at = run_app()
    at.selectbox(key="explore_policy_ties").set_value("last").run()
    at.selectbox(key="explore_variant").set_value("mxnet").run()
    assert at.selectbox(key="explore_policy_ties").value == "first"
    assert at.selectbox(key="explore_policy_layout").value == "signed"
    assert at.number_input(key="explore_policy_eps").value == pytest.approx(1e-4)


@pytest.mark.slow
def test_an_impossible_combination_is_an_error_not_a_traceback():
    at = run_app()
    at.selectbox(key="explore_policy_layout").set_value("signed").run()
    assert not at.exception
    assert len(at.error) == 1
    assert "Impossible policy combination" in at.error[0].value
    assert "half_window" in at.error[0].value and "layout" in at.error[0].value
    assert not at.metric and not charts(at)
    assert at.query_params["layout"] == "signed"  # the link reproduces this too
    # fixing the companion policy makes it possible again
    at.selectbox(key="explore_policy_candidates").set_value("half_window").run()
    at.selectbox(key="explore_policy_merge").set_value("whole").run()
    assert not at.error and len(at.metric) == 7


@pytest.mark.slow
@pytest.mark.parametrize("bins", [16, 32, 64])
def test_histograms_under_128_bins_open_with_target_bins_that_fit(bins):
    """Issue 10, problem 3: 16/32/64 bins replaced the whole view with "start_bin must be
    in 0..N, got 128" (the MSE line's first candidate); now that line is left out with a
    note, and target bins follow the histogram's size."""
    at = run_app()
    at.select_slider(key="explore_hist_bins").set_value(bins).run()
    assert not at.exception and not at.error
    h = model_hist().rebin(bins)
    # the most levels that fit: the bins less one, of |x| (a signed histogram is folded
    # to half its bins by the seed's unsigned sweep)
    fit = (bins // 2 if h.is_signed else bins) - 1
    assert at.slider(key="explore_target_bins").value == fit
    r = kl_sweep(h, target_bins=fit)
    assert_clip_at(at, r.amax, r.min_kl)
    assert "mse" not in shapes(at) and "max" in shapes(at)
    notes = [c.value for c in at.caption if c.value.startswith("Left out")]
    assert len(notes) == 1 and "mse" in notes[0] and "start_bin" in notes[0]
    assert any("follow the histogram" in c.value for c in at.caption)
    assert at.query_params["target_bins"] == str(fit)
    # a larger histogram brings back the levels asked for
    at.select_slider(key="explore_hist_bins").set_value(1024).run()
    assert at.slider(key="explore_target_bins").value == 128
    assert "mse" in shapes(at)


@pytest.mark.slow
def test_a_100_bin_upload_opens():
    counts = np.r_[np.arange(100, 0, -1), 0].astype(np.int64)[:100]
    at = upload(run_app(), "histogram", "h100.npy", npy(counts))
    assert not at.exception and not at.error
    assert at.slider(key="explore_target_bins").value == 99
    r = kl_sweep(Histogram.from_counts(counts), target_bins=99)
    assert_clip_at(at, r.amax, r.min_kl)


@pytest.mark.slow
def test_a_sweep_of_one_candidate_opens():
    counts = np.r_[np.arange(129, 0, -1)].astype(np.int64)  # 129 bins, 128 levels: bin 128 only
    at = upload(run_app(), "histogram", "h129.npy", npy(counts))
    assert not at.exception and not at.error
    assert metrics(at)["Threshold (bins)"] == "128"


def test_target_bins_can_be_typed():
    """Issue 10, problem 11: 2..2048 on a 210-pixel slider; 127 cannot be set by mouse."""
    at = run_app()
    at.number_input(key="explore_target_bins_typed").set_value(127).run()
    assert not at.exception and not at.error
    assert at.slider(key="explore_target_bins").value == 127
    r = kl_sweep(model_hist(), target_bins=127)
    assert metrics(at)["Threshold (bins)"] == str(r.best)
    at.slider(key="explore_target_bins").set_value(100).run()
    assert at.number_input(key="explore_target_bins_typed").value == 100


# --------------------------------------------------------------------------------------
# picking a candidate: the threshold slider and a click on the KL curve
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_threshold_slider_picks_a_candidate():
    at = run_app()
    r = kl_sweep(model_hist())
    picker = at.slider(key="explore_candidate")
    assert picker.value == r.candidates[-1]  # starts at the widest candidate
    picker.set_value(500).run()
    pq = r.distributions(500)
    # the server's pick: the histogram's line, the picked mark, where the figure's own
    # slider starts (its P and Q are the sweep's at 500: tests/test_figures.py)
    fig = chart(at, "picked")
    [slider] = fig["layout"]["sliders"]
    step = slider["steps"][slider["active"]]
    assert step["args"][0] == ["500"] and step["label"].startswith("bin 500:")
    assert shapes(at)["picked"]["x0"] == pytest.approx(pq.threshold, rel=1e-12)
    assert trace(at, "picked")["customdata"] == [500]
    assert "Chosen" in chart(at, "pq_chosen")["layout"]["title"]["text"]
    # and the link keeps it
    assert at.query_params["candidate"] == "500"


def test_coming_back_from_another_page_keeps_the_pick():
    at = run_app()
    at.slider(key="explore_candidate").set_value(300).run()
    at.switch_page("pages/1_Learn.py").run()
    at.switch_page("pages/0_Explore.py").run()
    assert not at.exception
    assert at.slider(key="explore_candidate").value == 300
    assert at.query_params["candidate"] == "300"


# --------------------------------------------------------------------------------------
# uploads
# --------------------------------------------------------------------------------------
def two_layers() -> dict[str, Histogram]:
    rng = np.random.default_rng(7)
    return {
        "conv1": Histogram.from_samples(rng.standard_normal(20_000), 600),
        "block/relu": Histogram.from_samples(
            np.concatenate([np.maximum(rng.laplace(size=20_000), 0), [40.0]]), 700
        ),
    }


@pytest.mark.slow
def test_multi_layer_npz_upload_with_layer_picker():
    hists = two_layers()
    buf = io.BytesIO()
    cio.save_histograms(buf, hists)
    at = run_app()
    at.radio(key="explore_kind").set_value("histogram").run()
    assert at.info and ".npz" in at.info[0].value  # asks for a file
    assert at.query_params["src"] == "histogram"
    upload(at, "histogram", "model.npz", buf.getvalue())
    assert not at.error
    assert at.selectbox(key="explore_upload_layer").options == list(hists)
    r = kl_sweep(hists["conv1"])
    assert_clip_at(at, r.amax, r.min_kl)
    at.selectbox(key="explore_upload_layer").set_value("block/relu").run()
    r = kl_sweep(hists["block/relu"])
    assert_clip_at(at, r.amax, r.min_kl)
    assert "model.npz: block/relu" in at.caption[0].value
    assert at.query_params["layer"] == "block/relu"


def single_histogram_files() -> list[tuple[str, bytes, Histogram]]:
    counts = np.concatenate([np.arange(300, 0, -1), [0, 0, 5]]).astype(np.int64)
    edges = np.linspace(0.0, 3.03, counts.size + 1)
    h = Histogram(counts, edges)
    csv_text = "counts,edges\n" + "".join(
        f"{c},{float(e)!r}\n" for c, e in zip([*counts, ""], edges, strict=True)
    )
    json_text = json.dumps({"counts": counts.tolist(), "edges": edges.tolist()})
    return [
        ("h.npy", npy(counts), Histogram.from_counts(counts)),
        ("h.csv", csv_text.encode(), h),
        ("h.json", json_text.encode(), h),
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "data", "hist"), single_histogram_files(), ids=["npy", "csv", "json"]
)
def test_single_histogram_uploads(name, data, hist):
    at = upload(run_app(), "histogram", name, data)
    assert not at.error
    r = kl_sweep(hist)
    assert_clip_at(at, r.amax, r.min_kl)
    assert at.caption[0].value.startswith(f"**{name}**")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_raw_sample_uploads_are_histogrammed_at_the_chosen_size(fmt):
    x = np.random.default_rng(8).laplace(size=(50, 40))
    data = npy(x) if fmt == "npy" else "\n".join(map(repr, x.ravel().tolist())).encode()
    at = upload(run_app(), "samples", f"acts.{fmt}", data)
    assert not at.error
    assert at.select_slider(key="explore_hist_bins").options == [
        str(b) for b in sources.SAMPLE_BIN_CHOICES
    ]
    r = kl_sweep(Histogram.from_samples(x, bins=DEFAULT_BINS))
    assert_clip_at(at, r.amax, r.min_kl)
    at.select_slider(key="explore_hist_bins").set_value(512).run()
    r = kl_sweep(Histogram.from_samples(x, bins=512))
    assert_clip_at(at, r.amax, r.min_kl)
    # a signed variant sees the samples histogrammed signed
    at.selectbox(key="explore_variant").set_value("onnxruntime").run()
    r = kl_sweep(Histogram.from_samples(x, bins=512, signed=True), variant="onnxruntime")
    assert_clip_at(at, r.amax, r.min_kl)
    assert shapes(at)["clip -"]["x0"] == pytest.approx(-r.amax)


BAD_FILES = [
    ("malformed", "histogram", "h.npz", b"PK\x03\x04 not a zip", "not an .npz"),
    ("empty", "histogram", "h.csv", b"", "empty"),
    ("all-NaN", "histogram", "h.npy", npy(np.full(10, np.nan)), "finite"),
    ("all-NaN samples", "samples", "x.csv", b"nan\nnan\n", "non-finite"),
    (
        "pickled",
        "samples",
        "x.npy",
        npy(np.array([{"rm -rf": 1}], dtype=object), allow_pickle=True),
        "object array",
    ),
    ("wrong shape", "histogram", "h.npy", npy(np.ones((4, 5))), r"shape (4, 5)"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("what", "kind", "name", "data", "match"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_bad_uploads_show_an_error_and_keep_the_previous_view(what, kind, name, data, match):
    at = run_app()
    before = metrics(at)
    upload(at, kind, name, data)
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("Could not use that file:") and match in message
    assert f"Still showing the previous view: {sources.MODEL_NAME}: {short_name(LAYER)}" in message
    assert metrics(at) == before and charts(at) == 3


@pytest.mark.slow
def test_oversize_upload_is_refused(monkeypatch):
    # the server refuses files over maxUploadSize itself; the page checks again
    monkeypatch.setattr(sources, "MAX_UPLOAD_BYTES", 2000)
    at = upload(run_app(), "samples", "big.npy", npy(np.ones(1000)))
    assert len(at.error) == 1 and "uploads are limited to" in at.error[0].value


@pytest.mark.slow
def test_a_bad_file_after_a_good_one_keeps_the_good_one():
    hist = single_histogram_files()[1][2]
    at = upload(run_app(), "histogram", "good.csv", single_histogram_files()[1][1])
    good = metrics(at)
    at.file_uploader(key="explore_histogram_file").set_value(("bad.json", b"{", "text/json"))
    at.run()
    assert not at.exception
    assert "Still showing the previous view: good.csv" in at.error[0].value
    assert metrics(at) == good
    r = kl_sweep(hist)
    assert_clip_at(at, r.amax, r.min_kl)


# --------------------------------------------------------------------------------------
# the query string
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_query_params_set_before_the_run_are_honoured():
    layer = "/bert/encoder/layer.3/intermediate/intermediate_act_fn/Mul_1_output_0"
    at = run_app(
        src="model", layer=layer, variant="mxnet", target_bins="200", hist_bins="1024",
        num_bits="7", log_y="false", truncate="none",
    )  # fmt: skip
    assert not at.error and not at.warning
    assert at.selectbox(key="explore_model_layer").value == layer
    assert at.selectbox(key="explore_variant").value == "mxnet"
    assert at.slider(key="explore_target_bins").value == 200
    assert at.select_slider(key="explore_hist_bins").value == 1024
    assert at.select_slider(key="explore_num_bits").value == 7
    assert at.checkbox(key="explore_log_y").value is False
    assert at.selectbox(key="explore_policy_truncate").value == "none"
    r = kl_sweep(model_hist(layer).rebin(1024), target_bins=200, variant="mxnet", truncate="none")
    assert_clip_at(at, r.amax, r.min_kl)
    assert at.query_params["layer"] == layer and at.query_params["truncate"] == "none"


@pytest.mark.slow
def test_the_link_keeps_the_picked_candidate_and_the_other_variants():
    """Issue 10, problem 11: the URL left out the picked candidate and "show other
    variants"."""
    at = run_app()
    at.slider(key="explore_candidate").set_value(500).run()
    at.checkbox(key="explore_show_variants").check().run()
    q = dict(at.query_params)
    assert q["candidate"] == "500" and q["show_variants"] == "true"
    again = run_app(**q)
    assert again.slider(key="explore_candidate").value == 500
    assert again.checkbox(key="explore_show_variants").value is True
    [slider] = chart(again, "picked")["layout"]["sliders"]
    assert slider["steps"][slider["active"]]["label"].startswith("bin 500:")
    # a candidate the sweep does not have falls back to the widest one
    other = run_app(candidate="5")
    assert other.slider(key="explore_candidate").value == kl_sweep(model_hist()).candidates[-1]


@pytest.mark.slow
def test_the_layers_page_link_opens_that_layer():
    layer = "/bert/encoder/layer.2/intermediate/intermediate_act_fn/Mul_1_output_0"
    link = links.explore_query("model", layer=layer, variant="ncnn")
    at = run_app(**link)
    assert at.selectbox(key="explore_model_layer").value == layer
    r = kl_sweep(model_hist(layer), variant="ncnn")
    assert_clip_at(at, r.amax, r.min_kl)


@pytest.mark.slow
def test_bad_query_values_are_ignored_with_a_warning():
    at = run_app(layer="no.such.layer", target_bins="lots", variant="mxnet")
    assert not at.error
    # the warning's markdown escapes every punctuation character (calib.app.text.plain);
    # what the reader sees is the text with the escapes removed
    warnings = re.sub(r"\\(.)", r"\1", " ".join(w.value for w in at.warning))
    assert "layer='no.such.layer'" in warnings and "target_bins='lots'" in warnings
    assert at.selectbox(key="explore_model_layer").value == LAYER
    assert at.selectbox(key="explore_variant").value == "mxnet"
    assert at.slider(key="explore_target_bins").value == 255
    assert at.query_params["layer"] == LAYER  # the URL now says what is shown
    at.run()
    assert not at.warning  # said once


@pytest.mark.slow
def test_widget_changes_write_the_query_string_back():
    at = run_app()
    layer = "/bert/encoder/layer.4/intermediate/intermediate_act_fn/Mul_1_output_0"
    at.selectbox(key="explore_model_layer").set_value(layer).run()
    assert at.query_params["layer"] == layer
    assert at.query_params["hist_bins"] == str(model_hist(layer).n_bins)  # the new layer's own
    at.radio(key="explore_kind").set_value("demo").run()
    assert at.query_params["src"] == "demo" and "layer" not in at.query_params
    at.selectbox(key="explore_demo").set_value("GELU").run()
    at.selectbox(key="explore_variant").set_value("onnxruntime").run()
    q = dict(at.query_params)
    assert q["demo"] == "GELU" and q["variant"] == "onnxruntime" and q["hist_bins"] == "2048"
    # and the written link reproduces the view in a new session
    again = run_app(**q)
    assert metrics(again) == metrics(at)
    # back on the model, the histogram is the layer's own size again, not the demo's
    at.radio(key="explore_kind").set_value("model").run()
    assert at.select_slider(key="explore_hist_bins").value == model_hist(layer).n_bins
    assert at.query_params["layer"] == layer


@pytest.mark.slow
def test_the_view_survives_a_visit_to_another_page():
    pages = [p for p in sorted((Path(APP).parent / "pages").glob("*.py")) if p.name != EXPLORE]
    layer = "/bert/encoder/layer.3/intermediate/intermediate_act_fn/Mul_1_output_0"
    at = run_app(layer=layer)
    at.selectbox(key="explore_variant").set_value("mxnet").run()
    at.slider(key="explore_target_bins").set_value(200).run()
    view = metrics(at)
    at.switch_page(str(pages[0].relative_to(Path(APP).parent))).run()
    for cleared in (False, True):  # whether or not the navigation kept the query string
        if cleared:
            at.query_params.clear()
        at.switch_page(f"pages/{EXPLORE}").run()
        assert not at.exception
        assert at.selectbox(key="explore_variant").value == "mxnet"
        assert at.slider(key="explore_target_bins").value == 200
        assert at.selectbox(key="explore_model_layer").value == layer
        assert metrics(at) == view
        at.switch_page(str(pages[0].relative_to(Path(APP).parent))).run()


@pytest.mark.slow
def test_thirteen_bits_sweep_at_their_own_levels_and_say_so():
    """At 13 bits the seed uses 4096 levels, past the slider's usual 2048: the page sweeps
    at 4096 and says so (main clamped the slider, and the sweep, to 2048: a threshold of
    3.01 on this demo against calibrate's 5.98). Where the histogram cannot take them it
    says that too, never computing with fewer in silence."""
    from calib import calibrate
    from calib.demos import demo_histogram

    name = "ReLU with zero spike"
    at = run_app(src="demo", demo=name, hist_bins="8192", num_bits="13")
    assert not at.error
    assert at.slider(key="explore_target_bins").value == 4096
    want = calibrate(demo_histogram(name, 8192), num_bits=13).amax
    assert float(metrics(at)["Threshold"]) == pytest.approx(want, rel=1e-3)
    said = " ".join(c.value for c in at.sidebar.caption)
    assert "13 bits seed uses 4,096 levels" in said
    # the real model's signed 4,118 bins, folded to 2,059, take at most 2,058: lowered, said
    at = run_app(num_bits="13")
    h = model_hist()
    assert h.is_signed and at.slider(key="explore_target_bins").value == h.n_bins // 2 - 1
    assert "(4096 asked" in " ".join(c.value for c in at.sidebar.caption)
