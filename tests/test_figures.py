"""calib.figures on their own: the named shapes and traces the pages and their tests rely
on, read back as plotly JSON and held to the core's numbers (kl_sweep, compare, attribute,
the amax_* methods)."""

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
# calib.figures.explore
# --------------------------------------------------------------------------------------
def decode(v) -> np.ndarray:
    """A plotly JSON array: a list, or numpy's bytes in base64 (plotly 6)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def spec(fig) -> dict:
    return json.loads(fig.to_json())


def test_histogram_figure_clip_tail_others_and_picked():
    h = model_layer()
    r = kl_sweep(h)
    others = {"max": amax_max(h), "percentile": amax_percentile(h), "mse": 0.0}
    s = spec(histogram_figure(h, r, log_y=True, others=others, picked=50.0))
    shapes = {sh["name"]: sh for sh in s["layout"]["shapes"]}
    assert shapes["clip"]["x0"] == shapes["clip"]["x1"] == r.amax
    assert shapes["clipped tail"]["x0"] == r.amax and shapes["clipped tail"]["x1"] == h.edges[-1]
    assert shapes["max"]["x0"] == amax_max(h) and shapes["percentile"]["x0"] == amax_percentile(h)
    assert "mse" not in shapes  # a zero threshold is not drawn
    assert shapes["picked"]["x0"] == 50.0
    labels = {a["text"] for a in s["layout"]["annotations"]}
    assert {"max", "percentile", f"clip {r.amax:.4g}"} <= labels
    assert s["layout"]["yaxis"]["type"] == "log"
    x = decode(s["data"][0]["x"])
    assert x.size == 2 * h.n_bins and x[0] == h.edges[0] and x[-1] == h.edges[-1]


def test_histogram_figure_signed_and_dead():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(5000), [-30.0, 40.0]])  # outliers to clip
    h = Histogram.from_samples(x, 512, signed=True)
    r = kl_sweep(h, variant="mxnet")
    assert -h.edges[0] > r.amax
    shapes = spec(histogram_figure(h, r))["layout"]["shapes"]
    names = [sh["name"] for sh in shapes]
    assert names.count("clipped tail") == 2
    minus = next(sh for sh in shapes if sh["name"] == "clip -")
    assert minus["x0"] == -r.amax
    dead = Histogram.from_counts(np.zeros(300))
    s = spec(histogram_figure(dead, kl_sweep(dead)))
    assert not s["layout"].get("shapes") and s["layout"].get("yaxis", {}).get("type") != "log"


def test_kl_curve_figure_marks_minimum_and_picked():
    r = kl_sweep(model_layer().rebin(512), variant="ncnn")
    picked = int(r.candidates[-1])
    s = spec(kl_curve_figure(r, picked=picked))
    traces = {t["name"]: t for t in s["data"]}
    assert "markers" in traces["KL"]["mode"]  # plotly selects markers, not lines
    np.testing.assert_array_equal(decode(traces["KL"]["customdata"]), r.candidates)
    assert traces["minimum"]["x"] == [r.amax] and traces["minimum"]["y"] == [r.min_kl]
    assert traces["picked"]["x"] == [r.thresholds[-1]]
    assert traces["picked"]["customdata"] == [picked]
    with pytest.raises(ValueError, match="candidate"):
        kl_curve_figure(r, picked=-3)


def test_pq_figure_title_and_axes():
    r = kl_sweep(model_layer().rebin(512))
    pq = r.distributions()
    s = spec(pq_figure(pq, log_y=True, title="Chosen"))
    assert s["layout"]["title"]["text"] == "Chosen"
    assert s["layout"]["yaxis"]["type"] == "log"
    p = decode(s["data"][0]["y"])
    assert p.sum() == pytest.approx(2.0)  # each bin twice in the step outline, P sums to 1
    assert "KL" in spec(pq_figure(pq))["layout"]["title"]["text"]


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
    from calib.figures.explore import CHAR_WIDTH

    h = model_layer()
    r = kl_sweep(h)
    others = {o.name: o.amax for o in (*every_method(h, 8), *every_variant(h, 8))}
    others.pop("seed")
    fig = histogram_figure(h, r, log_y=True, others=others, picked=float(r.thresholds[-1]))
    notes = fig.to_dict()["layout"]["annotations"]
    assert {n["text"] for n in notes} == {f"clip {r.amax:.4g}", "picked", *others}
    span = float(h.edges[-1] - h.edges[0])
    boxes = []
    for n in notes:
        x, w = (n["x"] - h.edges[0]) / span, (len(n["text"]) + 1) * CHAR_WIDTH
        x0 = x - w if n["xanchor"] == "right" else x
        boxes.append((n["y"], x0, x0 + w, n["text"]))
        assert -1e-9 <= x0 and x0 + w <= 1 + 1e-9, n["text"]  # inside the plot
    for i, (y, a, b, t) in enumerate(boxes):
        for y2, a2, b2, t2 in boxes[i + 1 :]:
            assert y != y2 or b <= a2 or a >= b2, (t, t2)
    clip = next(n for n in notes if n["text"].startswith("clip"))
    assert clip["y"] == 1  # the clip's label keeps the top row
