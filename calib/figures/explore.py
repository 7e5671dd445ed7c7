"""Explore's figures, as ECharts options: the histogram with its clip, the KL curve, P
against Q.

Pure functions from core results to an option dict (JSON: what ``st.echarts_chart``
sends as it is), so each figure can be built and read back in a test or a notebook. On
every page but this one the figures are plotly's; Explore redraws all four on each key
press and click, which Streamlit's ECharts element does in place and several times faster
(``calib.figures.base`` says why).

What tests read back carries a name. On the histogram: the clip line is the ``markLine``
entry named ``"clip"`` (and ``"clip -"`` at ``-amax`` on a signed histogram), the clipped
tail the ``markArea`` entries named ``"clipped tail"``, another method's or variant's
threshold the line named by its label (``"max"``, ``"percentile"``, ``"mse"``,
``"mxnet"``...), a candidate the user picked the line named ``"picked"``; their labels are
the series ``"labels"``. On the KL curve: the series ``"KL"`` (every candidate),
``"candidates"`` (the clickable markers, ``[threshold, KL, candidate]`` each),
``"minimum"`` and ``"picked"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from calib.figures.base import (
    CLIP_COLOR,
    EMPTY,
    KEPT_COLOR,
    MAX_DRAWN_BINS,
    OTHER_COLOR,
    PICKED_COLOR,
    Q_COLOR,
    curve_indices,
    decades,
    drawn,
    echarts_axis,
    echarts_base,
    finite_or_gap,
    on_axis,
    points,
    spread_indices,
    step_points,
)
from calib.histogram import Histogram
from calib.sweep import PQ, SweepResult

__all__ = [
    "candidate_clicked",
    "histogram_figure",
    "kl_curve_figure",
    "kl_markers",
    "pq_figure",
]

Y_NAME_GAP = 64  # the y axis's title, left of tick labels as wide as "10,000,000"
DASH = {"dash": "dashed", "dot": "dotted", "dashdot": [8, 3, 2, 3], "solid": "solid"}


def _vline(x: float, name: str, color: str, width: float, dash: str, opacity: float = 1.0):
    """A full-height vertical line at ``x`` (data units), as a ``markLine`` entry."""
    return {
        "name": name, "xAxis": float(x),
        "lineStyle": {"color": color, "width": width, "type": DASH[dash], "opacity": opacity},
    }  # fmt: skip


def _vrect(x0: float, x1: float, name: str) -> list[dict]:
    """A full-height band from ``x0`` to ``x1``, as a ``markArea`` entry."""
    return [
        {"name": name, "xAxis": float(x0), "itemStyle": {"color": CLIP_COLOR, "opacity": 0.12}},
        {"xAxis": float(x1)},
    ]


LABEL_ROW = 0.08  # a label row's height, as a share of the plot's
CHAR_WIDTH = 0.0065  # a label character's width, as a share of a full-width plot's


def place_labels(xs: list[float], lengths: list[int]) -> list[tuple[int, str]]:
    """A (row, side) for each line label at ``xs`` (0..1 across the plot) of ``lengths``
    characters, in order of priority: each takes the highest row where it overlaps no
    label placed before it; near the right edge it hangs to the left of its line."""
    taken: list[list[tuple[float, float]]] = []
    out = []
    for x, n in zip(xs, lengths, strict=True):
        w = (n + 1) * CHAR_WIDTH
        side = "left" if x + w > 1.0 else "right"
        span = (x - w, x) if side == "left" else (x, x + w)
        row = next(
            (r for r, spans in enumerate(taken)
             if all(span[1] <= a or span[0] >= b for a, b in spans)),
            len(taken),
        )  # fmt: skip
        if row == len(taken):
            taken.append([])
        taken[row].append(span)
        out.append((row, side))
    return out


def _y_axis(values: np.ndarray, name: str, log: bool) -> tuple[dict, bool]:
    """The y axis of values drawn from 0 up: log (by decades) if asked and any value is
    positive, else linear from 0."""
    span = decades(values) if log else None
    if span is not None:
        return echarts_axis(name, *span, log=True, gap=Y_NAME_GAP), True
    return echarts_axis(name, gap=Y_NAME_GAP), False


def histogram_figure(
    hist: Histogram,
    result: SweepResult,
    log_y: bool = False,
    *,
    others: Mapping[str, float] | None = None,
    picked: float | None = None,
) -> dict[str, Any]:
    """The histogram as a filled step outline, the clip at ``result.amax`` and the tail past it.

    Parameters
    ----------
    hist : Histogram
        The histogram to draw (as the user sees it; the sweep may have folded or
        mirrored it for its own layout).
    result : SweepResult
        Its sweep; a dead sweep draws no clip.
    log_y : bool
        A logarithmic count axis, one tick per decade (empty bins are gaps).
    others : mapping of str to float, optional
        Other thresholds to draw as faint labelled lines, label -> amax
        (``{"max": 195.8, "percentile": 4.9, "mse": 193.2}``); non-positive or
        non-finite values are skipped.
    picked : float, optional
        A threshold the user picked, drawn as a green dash-dot line named ``"picked"``.

    On a signed histogram the clip is drawn at both ``-amax`` and ``amax``.
    """
    x, y = step_points(hist.edges, hist.counts)
    y_axis, log = _y_axis(y, "count", log_y)
    lo, hi = float(hist.edges[0]), float(hist.edges[-1])
    lines: list[dict] = []
    bands: list[list[dict]] = []
    labels: list[tuple[float, str, str]] = []  # (x, text, colour), the clip's first
    if not result.dead:
        amax = float(result.amax)
        clip = (CLIP_COLOR, 2, "dash")
        if amax < hi:
            bands.append(_vrect(amax, hi, "clipped tail"))
        lines.append(_vline(amax, "clip", *clip))
        if hist.is_signed:
            if -amax > lo:
                bands.append(_vrect(lo, -amax, "clipped tail"))
            lines.append(_vline(-amax, "clip -", *clip))
        labels.append((amax, f"clip {amax:.4g}", CLIP_COLOR))
    for label, value in (others or {}).items():
        value = float(value)
        if not (np.isfinite(value) and value > 0):
            continue
        lines.append(_vline(value, label, OTHER_COLOR, 1, "dot", opacity=0.6))
        labels.append((value, label, OTHER_COLOR))
    if picked is not None and np.isfinite(picked):
        lines.append(_vline(float(picked), "picked", PICKED_COLOR, 1.5, "dashdot"))
        labels.append((float(picked), "picked", PICKED_COLOR))
    places = place_labels(
        [(at - lo) / (hi - lo or 1) for at, _, _ in labels], [len(t) for _, t, _ in labels]
    )
    notes = [
        {
            "name": text,
            "value": [at, 1 - LABEL_ROW * (row + 0.5)],
            "label": {
                "show": True,
                "formatter": "{b}",
                "position": side,
                "color": color,
                "fontSize": 11,
                "opacity": 1 if color != OTHER_COLOR else 0.8,
            },
        }
        for (at, text, color), (row, side) in zip(labels, places, strict=True)
    ]
    series = [
        {
            "name": "histogram", "type": "line",
            "data": points(on_axis(x, lo, hi).tolist(), finite_or_gap(y, log)),
            "step": "end", "showSymbol": False, "color": KEPT_COLOR, "lineStyle": {"width": 1},
            "areaStyle": {"opacity": 0.35},
            "markLine": {"silent": True, "symbol": "none", "label": {"show": False},
                         "data": lines},
            "markArea": {"silent": True, "label": {"show": False}, "data": bands},
        },
        {
            # the lines' labels, on a hidden 0..1 axis: a row each where they would overlap
            "name": "labels", "type": "scatter", "yAxisIndex": 1, "symbolSize": 0,
            "silent": True, "tooltip": {"show": False}, "data": notes,
        },
    ]  # fmt: skip
    hidden = {"type": "value", "min": 0, "max": 1, "show": False}
    option = echarts_base(
        "Histogram and the chosen clip", echarts_axis("activation", lo, hi),
        [y_axis, hidden], legend=False,
    )  # fmt: skip
    option["series"] = series
    return option


def _shown(result: SweepResult, span: tuple[int, int] | None) -> tuple[int, int]:
    """The indices of ``span``'s first and one past its last candidate (all by default)."""
    if span is None:
        return 0, result.candidates.size
    return result.index_of(span[0]), result.index_of(span[1]) + 1


def _marker_indices(result: SweepResult, span: tuple[int, int] | None) -> np.ndarray:
    lo, hi = _shown(result, span)
    return lo + spread_indices(hi - lo, keep=(result.best_index - lo,))


def kl_markers(result: SweepResult, span: tuple[int, int] | None = None) -> np.ndarray:
    """The candidates the KL curve marks (what a click can pick), in order: every one of
    ``span`` (first, last candidate; all by default) up to ``MAX_MARKERS``, evenly spread
    beyond, the chosen one among them."""
    return result.candidates[_marker_indices(result, span)]


def candidate_clicked(selection: Any, result: SweepResult,
                      span: tuple[int, int] | None = None) -> int | None:  # fmt: skip
    """The candidate of the marker selected on :func:`kl_curve_figure` (``result``,
    ``span``), from a chart state ``{"selection": {"selected": [{"series_name":
    "candidates", "data_indices": [i]}, ...]}}`` (or its ``"selection"``), else None."""
    if isinstance(selection, Mapping) and "selection" in selection:
        selection = selection["selection"]
    groups = selection.get("selected") if isinstance(selection, Mapping) else None
    marks = None
    for g in groups or []:
        if not isinstance(g, Mapping) or g.get("series_name") != "candidates":
            continue
        for i in g.get("data_indices") or []:
            marks = kl_markers(result, span) if marks is None else marks
            if isinstance(i, int) and 0 <= i < marks.size:
                return int(marks[i])
    return None


def kl_curve_figure(
    result: SweepResult, *, picked: int | None = None, span: tuple[int, int] | None = None
) -> dict[str, Any]:
    """KL(P || Q) of every candidate against its threshold, the chosen one marked.

    Undefined (infinite) KL values are gaps. The y axis is logarithmic when every
    defined value is positive, since the curve spans orders of magnitude. The curve (the
    series ``"KL"``) is drawn through every candidate; the markers of :func:`kl_markers`
    (the series ``"candidates"``, ``[threshold, KL, candidate]`` each) are what a click
    selects. ``picked``, a candidate, is marked with a green circle (the series
    ``"picked"``).

    ``span``, a (first, last) pair of candidates, draws only those: a 2,000-candidate
    curve is about 8 candidates a pixel wide, too many to pick one by clicking. The
    minimum and the picked candidate are marked only inside it.
    """
    kl = np.asarray(result.kl, dtype=np.float64)
    lo, hi = _shown(result, span)
    t = result.thresholds
    shown = kl[lo:hi][np.isfinite(kl[lo:hi])]
    # a log axis when every defined value shown is positive (a zoom may show none)
    span_y = decades(shown) if shown.size and (shown > 0).all() else None
    log_y = span_y is not None
    y = finite_or_gap(kl, log_y)
    x = on_axis(t, float(t[lo]), float(t[hi - 1]))
    x0, x1 = float(x[lo]), float(x[hi - 1])  # the axis's ends: the first and last as drawn
    marks = _marker_indices(result, span)
    line = curve_indices(kl[lo:hi])
    hover = "threshold {@[0]} (bin {@[2]})<br/>KL {@[1]}"
    series: list[dict] = [
        {
            # through every candidate's local extremes: at most MAX_DRAWN_BINS // 2 points
            "name": "KL", "type": "line",
            "data": points(x[lo + line].tolist(), [y[lo + i] for i in line.tolist()]),
            "showSymbol": False, "color": KEPT_COLOR, "lineStyle": {"width": 1.5},
            "silent": True, "tooltip": {"show": False},  # hover and clicks: the markers
        },
        {
            "name": "candidates", "type": "scatter", "symbolSize": 5, "color": KEPT_COLOR,
            "data": [[float(x[i]), y[i], int(result.candidates[i])] for i in marks.tolist()],
            "label": {"show": False},
            # a click toggles its marker in or out of the selection, unseen: the page
            # reads which one changed (calib.app.explore.pick_candidate) and marks it
            "selectedMode": "multiple", "tooltip": {"formatter": hover},
            "select": {"itemStyle": {"color": KEPT_COLOR}},
        },
    ]  # fmt: skip
    b = result.best_index
    if not result.dead and lo <= b < hi and y[b] != EMPTY:  # no finite KL: no minimum
        series.append({
            "name": "minimum", "type": "scatter", "symbol": "diamond", "symbolSize": 12,
            "color": CLIP_COLOR, "z": 3, "silent": True,  # clicks go to the marker under it
            "data": [[float(x[b]), y[b], int(result.best)]],
        })  # fmt: skip
    i = None if picked is None or result.dead else result.index_of(picked)
    if i is not None and lo <= i < hi:
        series.append({
            "name": "picked", "type": "scatter", "symbol": "emptyCircle", "symbolSize": 14,
            "color": PICKED_COLOR, "itemStyle": {"borderWidth": 2}, "z": 4, "silent": True,
            "data": [[float(x[i]), y[i], int(picked)]],
        })  # fmt: skip
    if log_y:
        y_axis = echarts_axis("KL(P‖Q)", *span_y, log=True, gap=Y_NAME_GAP)
    else:  # linear, from the values as drawn, so that none falls outside
        v = drawn(shown) if shown.size else np.zeros(1)
        bottom, top = min(0.0, float(v.min())), max(0.0, float(v.max()))
        y_axis = echarts_axis("KL(P‖Q)", bottom, top + 0.05 * (top - bottom) or 1.0,
                              gap=Y_NAME_GAP)  # fmt: skip
    title = "KL divergence of each candidate"
    if hi - lo < result.candidates.size:
        title += f" ({hi - lo:,} of {result.candidates.size:,})"
    option = echarts_base(
        title, echarts_axis("threshold (activation units)", x0, x1), y_axis, tooltip="item"
    )
    option["series"] = series
    return option


def pq_figure(pq: PQ, log_y: bool = False, *, title: str | None = None) -> dict[str, Any]:
    """P (clipped reference) and Q (quantized, expanded back) of one candidate.

    Both are scaled to sum 1 for display, whatever normalisation the variant uses. P is a
    filled outline and Q a dashed line drawn over it, so that both show where they agree.
    ``title`` replaces the default "P and Q at threshold ... (KL ...)".
    """
    outlines = []
    for values in (pq.p, pq.q):
        v = np.asarray(values, dtype=np.float64)
        total = v.sum()
        # half a page wide: half the bins a full-width figure draws
        outlines.append(step_points(pq.edges, v / total if total > 0 else v, MAX_DRAWN_BINS // 2))
    y_axis, log = _y_axis(np.concatenate([y for _, y in outlines]), "probability", log_y)
    (px, py), (qx, qy) = outlines
    edges = np.asarray(pq.edges, dtype=np.float64)
    x0, x1 = float(edges[0]), float(edges[-1])
    px, qx = on_axis(px, x0, x1).tolist(), on_axis(qx, x0, x1).tolist()
    series = [
        {
            "name": "P", "type": "line", "data": points(px, finite_or_gap(py, log)),
            "step": "end", "showSymbol": False, "color": KEPT_COLOR, "lineStyle": {"width": 1},
            "areaStyle": {"opacity": 0.35},
        },
        {
            "name": "Q", "type": "line", "data": points(qx, finite_or_gap(qy, log)),
            "step": "end", "showSymbol": False, "color": Q_COLOR, "z": 3,
            "lineStyle": {"width": 2, "type": "dashed"},
        },
    ]  # fmt: skip
    if title is None:
        title = f"P and Q at threshold {pq.threshold:.4g} (KL {pq.kl:.4g})"
    option = echarts_base(title, echarts_axis("activation", x0, x1), y_axis)
    option["series"] = series
    return option
