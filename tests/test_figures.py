"""calib.figures on their own: the named shapes, traces and series the pages and their
tests rely on, read back as plotly JSON and held to the core's numbers
(kl_sweep, compare, attribute, the amax_* methods)."""

from __future__ import annotations

import base64
import functools
import json
import math

import numpy as np
import plotly.graph_objects as go
import pytest

from calib import io as cio
from calib.app.sources import ASSET_PATH, DEFAULT_LAYER
from calib.compare import attribute, compare
from calib.figures import histogram_figure, kl_curve_figure, pq_figure, scrub_figure
from calib.figures.base import DRAWN_DIGITS
from calib.figures.compare import attribution_figure, clips_figure, kl_curves_figure
from calib.histogram import Histogram
from calib.methods import amax_max, amax_percentile
from calib.numbers import fmt
from calib.policies import VARIANTS
from calib.sweep import kl_sweep


@functools.cache
def model_layer() -> Histogram:
    """The real model's layer the pages open on."""
    return cio.load_histograms(ASSET_PATH)[DEFAULT_LAYER]


# --------------------------------------------------------------------------------------
# calib.figures.sweep (every page's histogram, KL curve, P and Q, and Explore's scrub)
# --------------------------------------------------------------------------------------
def decode(v) -> np.ndarray:
    """A plotly JSON array: a list (None for a gap), or numpy's bytes in base64 (plotly 6)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.array([np.nan if a is None else a for a in v], dtype=np.float64)


def spec(fig) -> dict:
    """A figure as the browser gets it (JSON: no NaN or infinity), validated by plotly."""
    go.Figure(fig.to_dict())  # every property is one plotly knows
    return json.loads(json.dumps(json.loads(fig.to_json()), allow_nan=False))


# Drawn points keep DRAWN_DIGITS significant digits (but whole numbers): within half a
# unit of the last one, relatively; positions along an axis within a millionth of its span
DRAWN_REL = 0.5 * 10.0 ** (1 - DRAWN_DIGITS)
ON_AXIS = 1e-6


def traces(o: dict) -> dict[str, dict]:
    return {t["name"]: t for t in o["data"]}


def shapes(o: dict) -> dict[str, dict]:
    return {s["name"]: s for s in o["layout"].get("shapes", []) if s.get("type") == "line"}


def bands(o: dict) -> list[dict]:
    return [s for s in o["layout"].get("shapes", []) if s.get("type") == "rect"]


def test_histogram_figure_clip_tail_others_and_picked():
    h = model_layer()
    r = kl_sweep(h)
    others = {"max": amax_max(h), "percentile": amax_percentile(h), "mse": 0.0}
    o = spec(histogram_figure(h, r, log_y=True, others=others, picked=50.0))
    lines = shapes(o)
    assert lines["clip"]["x0"] == lines["clip"]["x1"] == r.amax
    assert h.is_signed  # collect's histograms are symmetric: the tail past each clip
    right, left = sorted(bands(o), key=lambda b: -b["x0"])
    assert right["name"] == "clipped tail" and right["x0"] == r.amax and right["x1"] == h.edges[-1]
    assert left["x0"] == h.edges[0] and left["x1"] == -r.amax
    assert lines["max"]["x0"] == amax_max(h) and lines["percentile"]["x0"] == amax_percentile(h)
    assert "mse" not in lines  # a zero threshold is not drawn
    assert lines["picked"]["x0"] == 50.0
    labels = {a["text"] for a in o["layout"]["annotations"]}
    assert {"max", "percentile", f"clip {fmt(r.amax)}", "picked"} <= labels
    assert o["layout"]["yaxis"]["type"] == "log" and "Histogram" in o["layout"]["title"]["text"]
    assert o["layout"]["xaxis"]["range"] == [h.edges[0], h.edges[-1]]
    # 4,118 bins drawn as at most MAX_DRAWN_BINS, each the largest of the bins it joins:
    # a step line (shape "hv"), each bin's left edge and value, then the last edge
    from calib.figures.base import MAX_DRAWN_BINS

    t = traces(o)["histogram"]
    x, y = decode(t["x"]), decode(t["y"])
    assert h.n_bins > MAX_DRAWN_BINS >= x.size - 1 >= MAX_DRAWN_BINS // 2
    span = h.edges[-1] - h.edges[0]
    assert t["line"]["shape"] == "hv" and x[0] == pytest.approx(h.edges[0], abs=ON_AXIS * span)
    assert x[-1] == pytest.approx(h.edges[-1], abs=ON_AXIS * span)
    assert np.nanmax(y) == h.counts.max() and y[-1] == h.counts[-1]
    # an empty bin is drawn under the log axis's floor, never at a count it does not have
    lo, hi = o["layout"]["yaxis"]["range"]
    assert (y > 0).all() and math.log10(np.nanmin(y)) < lo <= math.log10(y[y >= 1].min())
    assert math.log10(np.nanmax(y)) <= hi
    # the hover: each point's bin range, [left, right), and its count
    rng = np.array(t["customdata"])
    np.testing.assert_allclose(rng[:-1, 1], x[1:]) and np.testing.assert_allclose(rng[:, 0], x)
    assert "customdata[0]" in t["hovertemplate"] and "count" in t["hovertemplate"]


def test_drawing_at_most_a_bin_a_pixel_keeps_every_spike():
    """A 4,000-point outline costs the browser time and shows nothing more: it is drawn as
    the envelope of at most MAX_DRAWN_BINS bins, the numbers elsewhere stay exact."""
    from calib.figures.base import MAX_DRAWN_BINS, envelope

    rng = np.random.default_rng(2)
    counts = rng.poisson(5, 8001).astype(float)
    counts[4321] = 1e6  # one spike
    edges = np.linspace(-1, 1, 8002)
    e, y = envelope(edges, counts)
    assert y.size <= MAX_DRAWN_BINS and e.size == y.size + 1
    assert e[0] == edges[0] and e[-1] == edges[-1] and np.all(np.diff(e) > 0)
    assert y.max() == 1e6 and np.isin(e, edges).all()
    same = envelope(edges[:101], counts[:100])
    np.testing.assert_array_equal(same[1], counts[:100])  # small ones are drawn as they are


def test_histogram_figure_signed_and_dead():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(5000), [-30.0, 40.0]])  # outliers to clip
    h = Histogram.from_samples(x, 512, signed=True)
    r = kl_sweep(h, variant="mxnet")
    assert -h.edges[0] > r.amax
    o = spec(histogram_figure(h, r))
    assert [b["name"] for b in bands(o)] == ["clipped tail"] * 2
    assert shapes(o)["clip -"]["x0"] == -r.amax and shapes(o)["clip"]["x0"] == r.amax
    dead = Histogram.from_counts(np.zeros(300))
    o = spec(histogram_figure(dead, kl_sweep(dead), log_y=True))
    assert shapes(o) == {} and bands(o) == []
    assert o["layout"]["yaxis"]["type"] == "linear"  # no positive count: no log axis


def test_kl_curve_figure_marks_minimum_and_picked():
    r = kl_sweep(model_layer().rebin(512), variant="ncnn")
    picked = int(r.candidates[-1])
    o = spec(kl_curve_figure(r, picked=picked))
    t = traces(o)
    span = r.thresholds[-1] - r.thresholds[0]
    np.testing.assert_allclose(decode(t["KL"]["x"]), r.thresholds, rtol=0, atol=ON_AXIS * span)
    kl = decode(t["KL"]["y"])
    finite = np.isfinite(r.kl)
    np.testing.assert_allclose(kl[finite], r.kl[finite], rtol=DRAWN_REL)
    assert np.isnan(kl[~finite]).all()  # undefined KL: gaps
    np.testing.assert_array_equal(t["KL"]["customdata"], r.candidates)  # hover: the bin
    assert t["minimum"]["x"] == [r.amax] and t["minimum"]["customdata"] == [r.best]
    assert t["minimum"]["y"][0] == pytest.approx(r.min_kl, rel=DRAWN_REL)
    assert t["picked"]["x"] == [r.thresholds[-1]] and t["picked"]["customdata"] == [picked]
    assert o["layout"]["yaxis"]["type"] == "log"
    with pytest.raises(ValueError, match="candidate"):
        kl_curve_figure(r, picked=-3)
    # Learn's: on the candidate axis
    o = spec(kl_curve_figure(r, picked=picked, x="candidate"))
    np.testing.assert_array_equal(decode(traces(o)["KL"]["x"]), r.candidates)
    assert traces(o)["minimum"]["x"] == [r.best]


def test_a_sweep_with_no_finite_kl_draws_no_minimum():
    """ModelOpt on a histogram whose only counts are in bin 0: every KL is infinite."""
    counts = np.zeros(2048)
    counts[0] = 1000
    r = kl_sweep(Histogram.from_counts(counts), variant="modelopt")
    assert not r.dead and np.isinf(r.kl).all()
    o = spec(kl_curve_figure(r, picked=int(r.candidates[-1])))  # no NaN, no inf
    assert "minimum" not in traces(o) and o["layout"]["yaxis"]["type"] == "linear"


def test_pq_figure_title_and_axes():
    r = kl_sweep(model_layer().rebin(512))
    pq = r.distributions()
    o = spec(pq_figure(pq, log_y=True, title="Chosen"))
    assert o["layout"]["title"]["text"] == "Chosen" and o["layout"]["yaxis"]["type"] == "log"
    p = decode(traces(o)["P"]["y"])
    floor = 10 ** o["layout"]["yaxis"]["range"][0]
    # each bin's value once, then the last again at the last edge: P sums to 1 (empty
    # bins are drawn under the axis's floor)
    assert np.sum(np.where(p < floor, 0, p)[:-1]) == pytest.approx(1.0, rel=1e-5)
    linear = spec(pq_figure(pq))
    assert "KL" in linear["layout"]["title"]["text"]
    assert linear["layout"]["yaxis"]["type"] == "linear"
    assert np.sum(decode(traces(linear)["P"]["y"])[:-1]) == pytest.approx(1.0, rel=1e-5)


def test_the_scrub_figure_embeds_each_steps_p_and_q_as_the_core_computes_them():
    """Each step of the in-figure slider is a frame holding P and Q at its candidate as the
    sweep's own ``distributions`` give them (first edge, width, values: within the drawn
    digits, at most SCRUB_BINS bins, each the largest of those it joins) and the picked
    mark on the curve; the slider starts at the server's pick; payload bounded."""
    from calib.figures.base import envelope
    from calib.figures.sweep import MAX_SCRUB_STEPS, SCRUB_BINS, SCRUB_DIGITS, scrub_candidates

    r = kl_sweep(model_layer())
    picked = int(r.candidates[500])
    fig = scrub_figure(r, picked, log_y=False)
    o = spec(fig)
    assert len(fig.to_json()) < 200_000
    [slider] = o["layout"]["sliders"]
    frames = {f["name"]: f for f in o["frames"]}
    marks = scrub_candidates(r, picked)
    assert len(slider["steps"]) == len(frames) == marks.size <= MAX_SCRUB_STEPS + 2
    assert {r.best, picked} <= set(marks.tolist())
    assert slider["steps"][slider["active"]]["args"][0] == [str(picked)]
    for step in slider["steps"]:
        assert step["method"] == "animate"
        assert step["args"][1]["frame"]["redraw"] is False  # no full redraw
    n = len(o["data"]) - 3
    assert [t["name"] for t in o["data"][n:]] == ["P", "Q", "picked"]
    for c in marks[:: max(1, marks.size // 7)].tolist():
        f = frames[str(c)]
        assert f["traces"] == [n, n + 1, n + 2]
        pq = r.distributions(c)
        for k, values in enumerate((pq.p, pq.q)):
            e, want = envelope(pq.edges, np.asarray(values) / np.sum(values), SCRUB_BINS)
            got = f["data"][k]
            assert got["x0"] == e[0] and got["dx"] == pytest.approx(e[1] - e[0], rel=1e-12)
            y = np.asarray(got["y"], dtype=float)
            np.testing.assert_allclose(y[:-1], want, rtol=0.5 * 10.0 ** (1 - SCRUB_DIGITS))
        i = r.index_of(c)
        assert f["data"][2]["x"] == [r.thresholds[i]] and f["data"][2]["customdata"] == [c]
    # a histogram with uneven bins scrubs nothing (no slider), and says what it shows
    uneven = Histogram(np.ones(300), np.cumsum(np.linspace(1, 2, 301)) - 1)
    o = spec(scrub_figure(kl_sweep(uneven, target_bins=16)))
    assert "sliders" not in o["layout"] and "P and Q at" in o["layout"]["title"]["text"]


def test_every_chart_config_names_its_png_after_the_layer_and_view():
    from calib.figures.base import chart_config, png_name

    name = png_name("encoder.layer.0.output.dense:output", "histogram")
    assert name == "encoder.layer.0.output.dense-output_histogram"
    cfg = chart_config(name)
    assert cfg["toImageButtonOptions"]["filename"] == name
    assert png_name("a/b c", None, "kl") == "a-b-c_kl"


def test_a_long_kl_curve_is_drawn_through_every_runs_extremes_and_gaps():
    """A 2,000-candidate curve on half a page is drawn through at most about
    MAX_DRAWN_BINS // 2 of its points: no spike, dip or gap is lost."""
    from calib.figures.base import MAX_DRAWN_BINS, curve_indices

    rng = np.random.default_rng(9)
    y = rng.lognormal(0, 1, 2003)
    y[[17, 900, 1999]] = [1e6, 1e-6, 5e5]  # a spike, a dip, a spike near the end
    y[400:430] = np.inf  # a gap (undefined KL)
    i = curve_indices(y)
    assert i.size <= MAX_DRAWN_BINS // 2 + 2 * 4 + 2 and np.all(np.diff(i) > 0)
    assert {0, 2002, 17, 900, 1999, 399, 400, 429, 430} <= set(i.tolist())
    # every run of neighbours keeps its smallest and largest
    k = -(-y.size // (MAX_DRAWN_BINS // 4))
    for start in range(0, y.size, k):
        run = np.where(np.isfinite(y[start : start + k]), y[start : start + k], np.nan)
        if np.isfinite(run).any():
            assert start + int(np.nanargmax(run)) in i and start + int(np.nanargmin(run)) in i
    np.testing.assert_array_equal(curve_indices(y[:50]), np.arange(50))


# --------------------------------------------------------------------------------------
# calib.figures.compare
# --------------------------------------------------------------------------------------
def clip_lines(fig: dict) -> dict[str, float]:
    """Each vertical clip line's x, by its name."""
    out = {}
    for shape in fig["layout"].get("shapes", []):
        assert shape["x0"] == shape["x1"]
        out[shape["name"]] = shape["x0"]
    return out


def small(n: int = 256) -> Histogram:
    rng = np.random.default_rng(0)
    return Histogram.from_samples(rng.laplace(size=20_000), bins=n)


def test_clips_figure_draws_both_signs_on_a_signed_histogram():
    rng = np.random.default_rng(1)
    h = Histogram.from_samples(rng.laplace(size=20_000), bins=512, signed=True)
    c = compare(h, explain=False)
    lines = clip_lines(clips_figure(c).to_plotly_json())  # shapes hold plain numbers
    for r in c.rows:
        assert lines[r.name] == r.amax and lines[f"{r.name} -"] == -r.amax
    fig = clips_figure(c, log_y=True).to_plotly_json()
    assert fig["layout"]["yaxis"]["type"] == "log"


def test_kl_curves_are_scaled_to_their_largest_value():
    c = compare(small(), explain=False)
    fig = kl_curves_figure(c.sweeps)
    curves = {t.name: t for t in fig.data if not t.name.endswith("minimum")}
    minima = {t.name: t for t in fig.data if t.name.endswith("minimum")}
    assert set(curves) == set(VARIANTS)
    for v, tr in curves.items():
        s = c.sweeps[v]
        kl = np.where(np.isfinite(s.kl), s.kl, np.nan)
        y = np.array([np.nan if v is None else v for v in tr.y], dtype=float)
        np.testing.assert_allclose(y, kl / np.nanmax(kl), rtol=DRAWN_REL)
        span = s.thresholds[-1] - s.thresholds[0]
        np.testing.assert_allclose(tr.x, s.thresholds, rtol=0, atol=ON_AXIS * span)
        m = minima[f"{v} minimum"]
        assert m.x == (s.amax,) and m.y == (pytest.approx(s.min_kl / np.nanmax(kl), rel=DRAWN_REL),)


def test_attribution_figure_bars_are_the_moves():
    a = attribute(small(), "modelopt")
    fig = attribution_figure(a)
    bars = {t.name: t for t in fig.data}
    names = tuple(e.group.name for e in a.effects)[::-1]
    with_, back = bars["seed + group"], bars["modelopt − group"]
    assert with_.y == names == back.y
    assert with_.x == tuple(e.moved_with for e in a.effects)[::-1]
    assert back.x == tuple(e.moved_back for e in a.effects)[::-1]
    gap = next(s for s in fig.layout.shapes if s.name == "gap")
    assert math.isfinite(a.gap) and gap.x0 == a.gap


def test_line_labels_on_the_histogram_do_not_overlap():
    """Issue 10, problem 11: the labels of close lines (max and mse at 195.8 and 193.2,
    every variant) were drawn over one another."""
    from calib.explore import every_method, every_variant
    from calib.figures.sweep import CHAR_WIDTH, LABEL_ROW

    h = model_layer()
    r = kl_sweep(h)
    others = {o.name: o.amax for o in (*every_method(h, 8), *every_variant(h, 8))}
    others.pop("seed")
    o = spec(histogram_figure(h, r, log_y=True, others=others, picked=float(r.thresholds[-1])))
    notes = o["layout"]["annotations"]
    assert {n["text"] for n in notes} == {f"clip {fmt(r.amax)}", "picked", *others}
    span = float(h.edges[-1] - h.edges[0])
    boxes = []
    for n in notes:
        x, y, text = n["x"], n["y"], n["text"]
        x, w = (x - h.edges[0]) / span, (len(text) + 1) * CHAR_WIDTH
        x0 = x - w if n["xanchor"] == "right" else x
        boxes.append((y, x0, x0 + w, text))
        assert -1e-9 <= x0 and x0 + w <= 1 + 1e-9, text  # inside the plot
    for i, (y, a, b, t) in enumerate(boxes):
        for y2, a2, b2, t2 in boxes[i + 1 :]:
            assert y != y2 or b <= a2 or a >= b2, (t, t2)
    clip = next(n for n in notes if n["text"].startswith("clip"))
    assert clip["y"] == 1  # the clip's label keeps the top row
    assert LABEL_ROW > 0
