"""calib.figures.grid (small multiples) and calib.figures.convergence on their own: the
panels, lines and traces read back as plotly JSON and held to the core's numbers
(calib.report's rows, calib.convergence's settling)."""

from __future__ import annotations

import doctest
import functools
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_figures import decode, spec

from calib import convergence, report
from calib import io as cio
from calib.app.sources import ASSET_PATH, DEFAULT_LAYER
from calib.figures import convergence as fconv
from calib.figures import grid as fgrid
from calib.figures.base import CLIP_COLOR, KEPT_COLOR
from calib.figures.convergence import amax_figure, log_ticks, settled_share_figure
from calib.figures.grid import (
    FLAG_COLORS,
    GRID_BARS,
    PANEL_WIDTH,
    bar_heights,
    common_prefix,
    decimate,
    grid_figure,
    layer_from_selection,
    panel_color,
    panel_color_of,
)
from calib.histogram import Histogram
from calib.io import Trace
from calib.models import short_name


@functools.cache
def model() -> dict[str, Histogram]:
    return cio.load_histograms(ASSET_PATH)


@functools.cache
def model_rows() -> tuple[report.LayerRow, ...]:
    return tuple(report.worst_first(report.layer_table(model())))


@functools.cache
def model_traces() -> dict[str, Trace]:
    return cio.load_convergence(ASSET_PATH)


def lines_by_panel(s: dict) -> dict[tuple[str, str], float]:
    """(xref, name) -> x of every vertical line."""
    out = {}
    for sh in s["layout"].get("shapes", []):
        assert sh["x0"] == sh["x1"]
        out[sh["xref"], sh["name"]] = sh["x0"]
    return out


def axis(k: int) -> str:
    return "" if k == 1 else str(k)


def test_the_docstring_examples_run():
    for module in (fgrid, fconv):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed


# -- decimate ---------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 3000),
    bars=st.integers(1, 300),
    seed=st.integers(0, 2**16),
    signed=st.booleans(),
)
def test_decimate_sums_runs_of_whole_bins(n, bars, seed, signed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 50, n) * (rng.random(n) < 0.7)
    lo = -3.0 if signed else 0.0
    h = Histogram(counts, np.linspace(lo, 3.0, n + 1))
    edges, summed = decimate(h, bars)
    assert summed.size == edges.size - 1 <= max(bars, 1)
    assert summed.sum() == counts.sum()
    assert edges[0] == h.edges[0] and edges[-1] == h.edges[-1]
    assert np.isin(edges, h.edges).all() and np.all(np.diff(edges) > 0)
    # each bar is the sum of the bins between its edges, exactly
    idx = np.searchsorted(h.edges, edges)
    want = [counts[a:b].sum() for a, b in itertools.pairwise(idx)]
    np.testing.assert_array_equal(summed, want)


def test_decimate_leaves_small_histograms_alone_and_refuses_bad_bars():
    h = Histogram(np.arange(100), np.arange(101.0))
    edges, counts = decimate(h)
    np.testing.assert_array_equal(edges, h.edges)
    np.testing.assert_array_equal(counts, h.counts)
    for bad in (0, -1, 2.5, True, "128"):
        with pytest.raises(ValueError, match="bars must be a positive int"):
            decimate(h, bad)


# -- grid_figure ------------------------------------------------------------------------------
def traces_by_name(s: dict) -> dict[str, dict]:
    return {t["name"]: t for t in s["data"]}


def segments(trace: dict) -> list[tuple[float, float]]:
    """(x in panel units, value in activation units) of each vertical segment."""
    x, real = trace["x"], trace["customdata"]
    out = []
    for i in range(0, len(x), 3):
        assert x[i] == x[i + 1] and x[i + 2] is None and real[i] == real[i + 1]
        out.append((x[i], real[i]))
    return out


def at(x0: float, hist: Histogram, value: float) -> float:
    """Where ``value`` sits on a panel whose left edge is ``x0``."""
    lo, hi = hist.edges[0], hist.edges[-1]
    return x0 + (value - lo) * PANEL_WIDTH / (hi - lo)


def test_the_grid_draws_each_row_in_order_with_its_clip_and_max():
    rows, hists = model_rows()[:24], model()
    s = spec(grid_figure(rows, hists))
    data = s["data"]
    assert data[0]["name"] == "panels" and len(decode(data[0]["x"])) == 24
    assert [t["name"] for t in data[1:25]] == [r.layer for r in rows]
    assert [t["name"] for t in data[25:]] == ["clip", "max", "labels"]
    clip, mx = segments(data[25]), segments(data[26])
    assert len(clip) == len(mx) == 48  # every shipped histogram is signed: a line each side
    for i, (row, tr) in enumerate(zip(rows, data[1:25], strict=True)):
        hist = hists[row.layer]
        x0 = i % 6
        assert tr["type"] == "scatter" and tr["fill"] == "toself"
        assert tr["fillcolor"] == panel_color(row) and tr["hoverinfo"] == "skip"
        x, y = decode(tr["x"]), decode(tr["y"]).astype(float)
        edges, counts = decimate(hist)
        base = decode(data[0]["base"])[i]
        # closed along the floor; each step a flat top from one summed bin's edge to the next
        assert x[0] == x[1] == pytest.approx(x0) and y[0] == y[-1] == base
        assert x[-1] == pytest.approx(x0 + PANEL_WIDTH)
        np.testing.assert_allclose(x[1:-1:2], at(x0, hist, edges[:-1]))
        np.testing.assert_allclose(y[1:-1:2], base + bar_heights(counts))
        assert np.argmax(y) == 1 + 2 * np.argmax(counts)  # the highest step, the most counts
        for k, sign in enumerate((1, -1)):
            amax, top = sign * row.amax, sign * row.max
            assert clip[2 * i + k] == (pytest.approx(at(x0, hist, amax)), amax)
            assert mx[2 * i + k] == (pytest.approx(at(x0, hist, top)), top)
    # the worst tensors of MiniLM are attention probabilities (Softmax outputs: nearly all
    # mass near 0) that the seed's entropy clips far inside, coloured by their first flag
    assert rows[0].layer.endswith("/Softmax_output_0") and rows[0].flags[0] == "zero spike"
    assert data[1]["fillcolor"] == FLAG_COLORS["zero spike"]
    assert any(not r.flags for r in rows)
    # titles: the name as every page shows it (its block first), its middle cut when long,
    # so that the six Softmax panels read apart (they read "…tention/self/Softmax_output_0"
    # alike); then each panel's range
    labels = traces_by_name(s)["labels"]["text"]
    titles = labels[0::3]
    for label, row in zip(titles, rows, strict=True):
        name = short_name(row.layer)
        head, _, tail = label.rpartition("…")
        assert label == name or (name.startswith(head) and name.endswith(tail) and tail)
        assert label.startswith(name.split("/")[0])  # layer.3, or the block
    assert len(set(titles)) == len(titles)
    lo, hi = hists[rows[0].layer].edges[[0, -1]]
    assert labels[1] == f"{lo:.3g}" and labels[2] == f"{hi:.3g}"
    # four rows of six, the first at the top
    assert decode(data[0]["base"])[0] > decode(data[0]["base"])[6] > decode(data[0]["base"])[23]


def test_every_flag_has_its_own_colour_and_none_is_the_clips():
    assert set(FLAG_COLORS) == {*report.FLAGS, report.NO_FLAG}
    assert len(set(FLAG_COLORS.values())) == len(FLAG_COLORS)
    assert CLIP_COLOR not in FLAG_COLORS.values()
    assert FLAG_COLORS[report.NO_FLAG] == KEPT_COLOR  # as the SQNR chart's rows without one
    assert panel_color_of("a flag added later") not in FLAG_COLORS.values()


def test_signed_dead_and_failed_panels():
    rng = np.random.default_rng(3)
    hists = {
        "signed": Histogram.from_samples(rng.laplace(size=20_000), 1024, signed=True),
        "dead": Histogram(np.zeros(300), np.linspace(0, 1, 301)),
        "small": Histogram.from_samples(rng.normal(size=1000), 64),  # fewer bins than 128
    }
    rows = report.layer_table(hists, variant="mxnet")
    by = {r.layer: r for r in rows}
    assert by["small"].error and by["dead"].dead
    s = spec(grid_figure(rows, hists, columns=2))
    t = traces_by_name(s)
    signed = by["signed"]
    h = hists["signed"]
    # the signed panel has both lines at both signs; dead: none; failed: its max, no clip
    assert [v for _, v in segments(t["clip"])] == [signed.amax, -signed.amax]
    assert [v for _, v in segments(t["max"])] == [signed.max, -signed.max, by["small"].max]
    assert segments(t["clip"])[1][0] == pytest.approx(at(0, h, -signed.amax))
    assert segments(t["max"])[2][0] == pytest.approx(at(0, hists["small"], by["small"].max))
    dead_y = decode(t["dead"]["y"]).astype(float)
    assert (dead_y == dead_y[0]).all()  # flat on the floor
    colors = [t[r.layer]["fillcolor"] for r in rows]
    assert colors == [panel_color(signed), FLAG_COLORS["dead"], FLAG_COLORS["error"]]
    hover = s["data"][0]["hovertext"]
    assert "error:" in hover[2] and "dead" in hover[1]
    assert f"clip {signed.amax:.4g}, max {signed.max:.4g}" in hover[0]
    x = decode(s["data"][0]["x"])
    assert x[2] == x[0] != x[1]  # two columns: the third panel starts the second row
    with pytest.raises(ValueError, match="columns"):
        grid_figure(rows, hists, columns=0)


def test_heights_are_log_counts_from_just_below_the_smallest():
    y = bar_heights(np.array([0.0, 1, 10, 100]))
    assert y[0] == 0 and 0 < y[1] < y[2] < y[3]
    assert (y[3] - y[2]) == pytest.approx(y[2] - y[1])  # equal steps per decade
    np.testing.assert_allclose(bar_heights(np.array([0, 1, 10, 100]) / 111), y)  # normalised
    assert (bar_heights(np.zeros(4)) == 0).all()
    assert bar_heights(np.array([5.0, 5.0])).tolist() == [y[3], y[3]]  # one count: full height


def test_a_page_of_8001_bin_histograms_stays_small():
    """Decimation keeps a page's figure small whatever the histograms' size."""
    rng = np.random.default_rng(0)
    hists = {
        f"block{i // 8}/t{i}": Histogram.from_samples(rng.laplace(size=2000), 8001)
        for i in range(24)
    }
    rows = report.layer_table(hists, method="max")
    s = spec(grid_figure(rows, hists))
    assert all(decode(t["y"]).size <= 2 * GRID_BARS + 2 for t in s["data"][1:25])
    assert len(json.dumps(s)) < 300_000


def test_layer_from_selection_maps_clicks_to_the_page():
    names = ["a", "b", "c"]
    # a panel's background is point i of trace 0, the one trace that answers the mouse
    assert (
        layer_from_selection(
            {"selection": {"points": [{"curve_number": 0, "point_index": 2}]}}, names
        )
        == "c"
    )
    assert layer_from_selection({"points": [{"curve_number": 0, "point_index": 0}]}, names) == "a"
    assert layer_from_selection([{"curve_number": 0, "point_number": 1}], names) == "b"
    for nothing in (
        None,
        {},
        {"selection": {"points": []}},
        [{"curve_number": 1, "point_index": 0}],  # an outline, a line or the labels
        [{"curve_number": 0}],
        [{"curve_number": 0, "point_index": 3}],
        [{"curve_number": 0, "point_index": True}],
        [{"x": 1}],
        ["a"],
    ):
        assert layer_from_selection(nothing, names) is None
    # the first point that maps wins
    points = [{"curve_number": 2, "point_index": 0}, {"curve_number": 0, "point_index": 1}]
    assert layer_from_selection(points, names) == "b"


@pytest.mark.parametrize(
    ("names", "prefix"),
    [
        (["encoder.layer.0.output", "encoder.layer.10.key"], "encoder.layer."),
        (["conv1/relu", "conv2/relu"], ""),
        (["a/b", "a/b/c"], "a/"),
        (["x"], ""),
        (["a/b"], ""),
        (["a/b", "a/b"], ""),
        (["block/", "block/x"], ""),  # "block/" would leave nothing of the first
        ([], ""),
    ],
)
def test_common_prefix_stops_at_a_separator(names, prefix):
    assert common_prefix(names) == prefix


# -- convergence figures ----------------------------------------------------------------------
def test_the_amax_figure_draws_every_method_batch_by_batch():
    traces = model_traces()
    name = DEFAULT_LAYER
    t = traces[name]
    tol = convergence.DEFAULT_TOL
    at = {m: convergence.settled_at(t, m, tol) for m in t.amax}
    s = spec(amax_figure(name, t, at, tol=tol))
    lines = {tr["name"]: tr for tr in s["data"]}
    assert set(convergence.CONVERGENCE_METHODS) <= set(lines)
    for m, amax in t.amax.items():
        np.testing.assert_array_equal(decode(lines[m]["x"]), t.samples)
        np.testing.assert_array_equal(decode(lines[m]["y"]), amax)
        mark = lines[f"{m} settled"]
        assert mark["x"] == [int(t.samples[at[m]])] and mark["y"] == [amax[at[m]]]
    assert s["layout"]["yaxis"]["type"] == "log"
    assert name in s["layout"]["title"]["text"]


def test_the_amax_figure_leaves_zeros_and_nans_as_gaps():
    t = Trace(
        np.array([8, 16, 24]),
        {"max": np.array([0.0, 2.0, 2.0]), "entropy:seed": np.array([np.nan, 1.0, 1.5])},
    )
    s = spec(amax_figure("t", t, {"max": 1, "entropy:seed": None}, tol=0.01))
    lines = {tr["name"]: tr for tr in s["data"]}
    assert "entropy:seed settled" not in lines
    y = decode(lines["max"]["y"]).astype(float)
    assert math.isnan(y[0]) and y[1] == 2.0
    assert math.isnan(decode(lines["entropy:seed"]["y"]).astype(float)[0])


def test_the_share_figure_is_calib_convergence():
    traces = model_traces()
    tol = convergence.DEFAULT_TOL
    table = convergence.settling_table(traces, tol)
    shares = {r.method: convergence.settled_share(traces, r.method, tol) for r in table}
    s = spec(settled_share_figure(shares, table, tol=tol))
    lines = {tr["name"]: tr for tr in s["data"]}
    assert list(lines) == list(convergence.CONVERGENCE_METHODS)
    for m, (samples, share) in shares.items():
        np.testing.assert_array_equal(decode(lines[m]["x"]), samples)
        np.testing.assert_allclose(decode(lines[m]["y"]), 100 * share)
    # MiniLM on 512 sentences: the entropy thresholds settle only with the last batch
    seed = decode(lines["entropy:seed"]["y"])
    assert seed[-1] == 100 and seed[-2] < 95
    row = next(r for r in table if r.method == "percentile")
    assert (
        f"95% at {row.samples_95}, all at {row.samples_all}" in lines["percentile"]["hovertemplate"]
    )
    assert next(sh for sh in s["layout"]["shapes"] if sh["name"] == "95%")["y0"] == 95


def test_log_ticks():
    assert log_ticks(np.array([12.0, 12.5])) == []  # too narrow: plotly's own ticks
    assert log_ticks(np.array([np.nan, 0.0, -1.0])) == []
    assert log_ticks(np.array([0.3, 0.0, 3.0])) == [0.5, 1.0, 2.0]
