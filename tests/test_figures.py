"""calib.figures on their own: the named shapes, traces and series the pages and their
tests rely on, read back as plotly JSON or ECharts options and held to the core's numbers
(kl_sweep, compare, attribute, the amax_* methods)."""

from __future__ import annotations

import base64
import functools
import json
import math

import numpy as np
import pytest

from calib import io as cio
from calib.app.sources import ASSET_PATH, DEFAULT_LAYER
from calib.compare import attribute, compare
from calib.figures import histogram_figure, kl_curve_figure, pq_figure
from calib.figures.base import DRAWN_DIGITS
from calib.figures.compare import attribution_figure, clips_figure, kl_curves_figure
from calib.histogram import Histogram
from calib.methods import amax_max, amax_percentile
from calib.policies import VARIANTS
from calib.sweep import kl_sweep


@functools.cache
def model_layer() -> Histogram:
    """The real model's layer the pages open on."""
    return cio.load_histograms(ASSET_PATH)[DEFAULT_LAYER]


# --------------------------------------------------------------------------------------
# calib.figures.explore (ECharts options)
# --------------------------------------------------------------------------------------
def decode(v) -> np.ndarray:
    """A plotly JSON array: a list, or numpy's bytes in base64 (plotly 6)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def spec(fig) -> dict:
    return json.loads(fig.to_json())


# Explore's charts draw each point to DRAWN_DIGITS significant digits (but whole numbers):
# within half a unit of the last one of the number, relatively
DRAWN_REL = 0.5 * 10.0 ** (1 - DRAWN_DIGITS)
# and each position along an axis to under a millionth of the axis's span (on_axis)
ON_AXIS = 1e-6


def x_tol(o: dict) -> float:
    return ON_AXIS * (o["xAxis"]["max"] - o["xAxis"]["min"])


def option(o: dict) -> dict:
    """An ECharts option as the browser gets it: JSON, with no NaN or infinity in it."""
    return json.loads(json.dumps(o, allow_nan=False))


def series(o: dict) -> dict[str, dict]:
    return {s["name"]: s for s in o["series"]}


def column(data: list, k: int) -> np.ndarray:
    """Column ``k`` of a series' ``[[x, y, ...], ...]``, ECharts' gaps ("-") as NaN."""
    return np.array([np.nan if p[k] == "-" else p[k] for p in data], dtype=np.float64)


def marks(o: dict) -> tuple[dict[str, dict], list[dict]]:
    """The histogram's lines by name, and its bands (the clipped tails)."""
    h = series(o)["histogram"]
    return {m["name"]: m for m in h["markLine"]["data"]}, [b[0] for b in h["markArea"]["data"]]


def test_histogram_figure_clip_tail_others_and_picked():
    h = model_layer()
    r = kl_sweep(h)
    others = {"max": amax_max(h), "percentile": amax_percentile(h), "mse": 0.0}
    o = option(histogram_figure(h, r, log_y=True, others=others, picked=50.0))
    lines, bands = marks(o)
    assert lines["clip"]["xAxis"] == r.amax
    [tail] = bands
    assert tail["name"] == "clipped tail" and tail["xAxis"] == r.amax
    assert series(o)["histogram"]["markArea"]["data"][0][1]["xAxis"] == h.edges[-1]
    assert lines["max"]["xAxis"] == amax_max(h) and lines["percentile"]["xAxis"] == amax_percentile(
        h
    )
    assert "mse" not in lines  # a zero threshold is not drawn
    assert lines["picked"]["xAxis"] == 50.0
    labels = {d["name"] for d in series(o)["labels"]["data"]}
    assert {"max", "percentile", f"clip {r.amax:.4g}"} <= labels
    assert o["yAxis"][0]["type"] == "log" and o["title"]["text"].startswith("Histogram")
    assert o["xAxis"]["min"] == h.edges[0] and o["xAxis"]["max"] == h.edges[-1]
    # 2051 bins are drawn as at most MAX_DRAWN_BINS, each the largest of the bins it joins;
    # an empty bin is a gap on the log axis, never a zero
    data = series(o)["histogram"]["data"]
    x, y = column(data, 0), column(data, 1)
    # (a step line: each bin's left edge and value, then the last edge)
    assert o["series"][0]["step"] == "end"
    assert x.size == 1026 + 1 and x[0] == h.edges[0]
    assert x[-1] == pytest.approx(h.edges[-1], abs=x_tol(o))  # drawn to a millionth
    assert np.nanmax(y) == h.counts.max() and y[-1] == h.counts[-1]  # 2051 = 1025 x 2 + 1
    assert np.isnan(y).any() and (y[~np.isnan(y)] > 0).all()
    lo, hi = o["yAxis"][0]["min"], o["yAxis"][0]["max"]
    assert lo <= np.nanmin(y) and np.nanmax(y) <= hi and math.log10(lo).is_integer()


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
    lines, bands = marks(option(histogram_figure(h, r)))
    assert [b["name"] for b in bands] == ["clipped tail"] * 2
    assert lines["clip -"]["xAxis"] == -r.amax and lines["clip"]["xAxis"] == r.amax
    dead = Histogram.from_counts(np.zeros(300))
    o = option(histogram_figure(dead, kl_sweep(dead), log_y=True))
    assert marks(o) == ({}, [])
    assert o["yAxis"][0]["type"] == "value"  # no positive count: no log axis


def test_kl_curve_figure_marks_minimum_and_picked():
    from calib.figures.explore import candidate_clicked, kl_markers

    r = kl_sweep(model_layer().rebin(512), variant="ncnn")
    picked = int(r.candidates[-1])
    o = option(kl_curve_figure(r, picked=picked))
    s = series(o)
    np.testing.assert_allclose(column(s["KL"]["data"], 0), r.thresholds, rtol=0, atol=x_tol(o))
    kl = column(s["KL"]["data"], 1)
    finite = np.isfinite(r.kl)
    np.testing.assert_allclose(kl[finite], r.kl[finite], rtol=DRAWN_REL)
    assert np.isnan(kl[~finite]).all()  # undefined KL: gaps
    # the clickable markers: at most MAX_MARKERS, the minimum among them, [x, KL, candidate]
    dots = column(s["candidates"]["data"], 2).astype(int)
    assert s["candidates"]["selectedMode"] == "multiple" and 250 <= dots.size <= 301
    assert dots[0] == r.candidates[0] and dots[-1] == r.candidates[-1] and r.best in dots
    np.testing.assert_array_equal(dots, kl_markers(r))
    np.testing.assert_allclose(
        column(s["candidates"]["data"], 0),
        r.thresholds[r.candidates.searchsorted(dots)],
        rtol=0,
        atol=x_tol(o),
    )
    assert s["minimum"]["data"] == [
        [pytest.approx(r.amax, abs=x_tol(o)), pytest.approx(r.min_kl, rel=DRAWN_REL), r.best]
    ]
    assert s["picked"]["data"][0][0] == pytest.approx(r.thresholds[-1], abs=x_tol(o))
    assert s["picked"]["data"][0][2] == picked
    # a click on marker i picks the candidate drawn there
    for i in (0, 7, dots.size - 1):
        state = {"selection": {"selected": [{"series_name": "candidates", "data_indices": [i]}]}}
        assert candidate_clicked(state, r) == dots[i]
    for empty in ({}, {"selection": {"selected": []}}, {"selection": {"selected": [
        {"series_name": "KL", "data_indices": [3]}]}}, {"selection": {"selected": [
        {"series_name": "candidates", "data_indices": [dots.size]}]}}):  # fmt: skip
        assert candidate_clicked(empty, r) is None
    with pytest.raises(ValueError, match="candidate"):
        kl_curve_figure(r, picked=-3)


def test_kl_curve_figure_zoomed_marks_every_candidate_of_its_span():
    from calib.figures.explore import candidate_clicked

    r = kl_sweep(model_layer().rebin(512), variant="ncnn")
    span = (int(r.candidates[10]), int(r.candidates[60]))
    s = series(option(kl_curve_figure(r, span=span)))
    dots = column(s["candidates"]["data"], 2).astype(int)
    np.testing.assert_array_equal(dots, r.candidates[10:61])
    state = {"selection": {"selected": [{"series_name": "candidates", "data_indices": [5]}]}}
    assert candidate_clicked(state, r, span) == r.candidates[15]


def test_a_sweep_with_no_finite_kl_draws_no_minimum():
    """ModelOpt on a histogram whose only counts are in bin 0: every KL is infinite, and
    the minimum's inf made the option invalid JSON (Streamlit refused it)."""
    counts = np.zeros(2048)
    counts[0] = 1000
    r = kl_sweep(Histogram.from_counts(counts), variant="modelopt")
    assert not r.dead and np.isinf(r.kl).all()
    o = option(kl_curve_figure(r, picked=int(r.candidates[-1])))  # no NaN, no inf
    assert "minimum" not in series(o) and o["yAxis"]["type"] == "value"


def test_every_marker_lies_on_its_axis_at_any_zoom():
    """ECharts leaves out a marker more than 0.1 px outside the plot: the drawn points are
    rounded on the axis's own scale, so the first and last markers of a 2-candidate zoom
    sit on its ends, not a hair outside (with 6 significant digits, 221 of 481 spans lost
    one)."""
    r = kl_sweep(model_layer())
    for k in range(0, r.candidates.size - 1, 7):
        for w in (1, 4, 9):
            j = min(k + w, r.candidates.size - 1)
            o = option(kl_curve_figure(r, span=(int(r.candidates[k]), int(r.candidates[j]))))
            lo, hi = o["xAxis"]["min"], o["xAxis"]["max"]
            for s in o["series"]:
                x = column(s["data"], 0)
                assert (lo <= x).all() and (x <= hi).all(), (k, w, s["name"])
            y = column(series(o)["candidates"]["data"], 1)
            y = y[np.isfinite(y)]
            ya = o["yAxis"]
            assert ((ya["min"] <= y) & (y <= ya["max"])).all(), (k, w)


def test_pq_figure_title_and_axes():
    r = kl_sweep(model_layer().rebin(512))
    pq = r.distributions()
    o = option(pq_figure(pq, log_y=True, title="Chosen"))
    assert o["title"]["text"] == "Chosen"
    assert o["yAxis"]["type"] == "log"
    p = column(series(o)["P"]["data"], 1)
    # each bin's value once, then the last again at the last edge: P sums to 1
    assert np.nansum(p[:-1]) == pytest.approx(1.0) and p[-1] == p[-2]
    linear = option(pq_figure(pq))
    assert "KL" in linear["title"]["text"] and linear["yAxis"]["type"] == "value"
    assert np.sum(column(series(linear)["P"]["data"], 1)[:-1]) == pytest.approx(1.0)


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
        np.testing.assert_allclose(np.asarray(tr.y, dtype=float), kl / np.nanmax(kl))
        np.testing.assert_array_equal(tr.x, s.thresholds)
        m = minima[f"{v} minimum"]
        assert m.x == (s.amax,) and m.y == (pytest.approx(s.min_kl / np.nanmax(kl)),)


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
    from calib.figures.explore import CHAR_WIDTH, LABEL_ROW

    h = model_layer()
    r = kl_sweep(h)
    others = {o.name: o.amax for o in (*every_method(h, 8), *every_variant(h, 8))}
    others.pop("seed")
    o = option(histogram_figure(h, r, log_y=True, others=others, picked=float(r.thresholds[-1])))
    notes = series(o)["labels"]["data"]
    assert {n["name"] for n in notes} == {f"clip {r.amax:.4g}", "picked", *others}
    span = float(h.edges[-1] - h.edges[0])
    boxes = []
    for n in notes:
        (x, y), text = n["value"], n["name"]
        x, w = (x - h.edges[0]) / span, (len(text) + 1) * CHAR_WIDTH
        x0 = x - w if n["label"]["position"] == "left" else x
        boxes.append((y, x0, x0 + w, text))
        assert -1e-9 <= x0 and x0 + w <= 1 + 1e-9, text  # inside the plot
    for i, (y, a, b, t) in enumerate(boxes):
        for y2, a2, b2, t2 in boxes[i + 1 :]:
            assert y != y2 or b <= a2 or a >= b2, (t, t2)
    clip = next(n for n in notes if n["name"].startswith("clip"))
    assert clip["value"][1] == 1 - LABEL_ROW / 2  # the clip's label keeps the top row
