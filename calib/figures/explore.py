"""Plotly figures of a KL sweep: the histogram with its clip, the KL curve, P against Q.

Pure functions from core results to ``plotly.graph_objects.Figure``; no Streamlit here,
so the figures can be built and checked in a test or a notebook. Shapes and traces that
tests read back carry names: the clip line is the shape named ``"clip"`` (and
``"clip -"`` at ``-amax`` on a signed histogram), the clipped tail the shapes named
``"clipped tail"``, another method's or variant's threshold the shape named by its label
(``"max"``, ``"percentile"``, ``"mse"``, ``"mxnet"``...), a candidate the user picked the
shape named ``"picked"``; on the KL curve the chosen candidate is the trace named
``"minimum"`` and the picked one the trace named ``"picked"``.

Each figure is built in one ``go.Figure(data, layout)`` call, its shapes and annotations
as plain dicts: plotly's ``add_vline`` and ``update_*`` validate again on every call, a
millisecond or more apiece, and the Explore page redraws on every slider move.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from calib.figures.base import (
    CLIP_COLOR,
    KEPT_COLOR,
    OTHER_COLOR,
    PICKED_COLOR,
    Q_COLOR,
    base_layout,
    step_outline,
)
from calib.histogram import Histogram
from calib.sweep import PQ, SweepResult

__all__ = ["histogram_figure", "kl_curve_figure", "pq_figure"]


def _vline(x: float, name: str, color: str, width: float, dash: str, opacity: float = 1.0):
    """A full-height vertical line at ``x`` (data units), as a layout shape dict."""
    return {
        "type": "line", "name": name, "xref": "x", "yref": "paper",
        "x0": x, "x1": x, "y0": 0, "y1": 1, "opacity": opacity,
        "line": {"color": color, "width": width, "dash": dash},
    }  # fmt: skip


def _vrect(x0: float, x1: float, name: str) -> dict:
    return {
        "type": "rect", "name": name, "xref": "x", "yref": "paper",
        "x0": x0, "x1": x1, "y0": 0, "y1": 1, "fillcolor": CLIP_COLOR,
        "opacity": 0.12, "line": {"width": 0}, "layer": "below",
    }  # fmt: skip


def _label(x: float, y: float, text: str, color: str, **kw) -> dict:
    return {
        "x": x, "y": y, "xref": "x", "yref": "paper", "text": text, "showarrow": False,
        "xanchor": "left", "yanchor": "top", "font": {"color": color, "size": 11}, **kw,
    }  # fmt: skip


LABEL_ROW = 0.08  # a label row's height, as a share of the plot's
CHAR_WIDTH = 0.0065  # a label character's width, as a share of a full-width plot's


def place_labels(xs: list[float], lengths: list[int]) -> list[tuple[int, str]]:
    """A (row, xanchor) for each line label at ``xs`` (0..1 across the plot) of ``lengths``
    characters, in order of priority: each takes the highest row where it overlaps no
    label placed before it; near the right edge it hangs to the left of its line."""
    taken: list[list[tuple[float, float]]] = []
    out = []
    for x, n in zip(xs, lengths, strict=True):
        w = (n + 1) * CHAR_WIDTH
        anchor = "right" if x + w > 1.0 else "left"
        span = (x - w, x) if anchor == "right" else (x, x + w)
        row = next(
            (r for r, spans in enumerate(taken)
             if all(span[1] <= a or span[0] >= b for a, b in spans)),
            len(taken),
        )  # fmt: skip
        if row == len(taken):
            taken.append([])
        taken[row].append(span)
        out.append((row, anchor))
    return out


def histogram_figure(
    hist: Histogram,
    result: SweepResult,
    log_y: bool = False,
    *,
    others: Mapping[str, float] | None = None,
    picked: float | None = None,
) -> go.Figure:
    """The histogram as a filled step outline, the clip at ``result.amax`` and the tail past it.

    Parameters
    ----------
    hist : Histogram
        The histogram to draw (as the user sees it; the sweep may have folded or
        mirrored it for its own layout).
    result : SweepResult
        Its sweep; a dead sweep draws no clip.
    log_y : bool
        A logarithmic count axis, one tick per decade.
    others : mapping of str to float, optional
        Other thresholds to draw as faint labelled lines, label -> amax
        (``{"max": 195.8, "percentile": 4.9, "mse": 193.2}``); non-positive or
        non-finite values are skipped.
    picked : float, optional
        A threshold the user picked, drawn as a green dash-dot line named ``"picked"``.

    On a signed histogram the clip is drawn at both ``-amax`` and ``amax``.
    """
    x, y = step_outline(hist.edges, hist.counts)
    trace = go.Scatter(
        x=x,
        y=y,
        name="histogram",
        mode="lines",
        line={"color": KEPT_COLOR, "width": 1},
        fill="tozeroy",
        hovertemplate="x = %{x:.4g}<br>count = %{y:.4g}<extra></extra>",
    )
    lo, hi = float(hist.edges[0]), float(hist.edges[-1])
    shapes = []
    labels: list[tuple[float, str, str]] = []  # (x, text, colour), the clip's first
    if not result.dead:
        amax = float(result.amax)
        clip = (CLIP_COLOR, 2, "dash")
        if amax < hi:
            shapes.append(_vrect(amax, hi, "clipped tail"))
        shapes.append(_vline(amax, "clip", *clip))
        if hist.is_signed:
            if -amax > lo:
                shapes.append(_vrect(lo, -amax, "clipped tail"))
            shapes.append(_vline(-amax, "clip -", *clip))
        labels.append((amax, f"clip {amax:.4g}", CLIP_COLOR))
    for label, value in (others or {}).items():
        value = float(value)
        if not (np.isfinite(value) and value > 0):
            continue
        shapes.append(_vline(value, label, OTHER_COLOR, 1, "dot", opacity=0.6))
        labels.append((value, label, OTHER_COLOR))
    if picked is not None and np.isfinite(picked):
        shapes.append(_vline(float(picked), "picked", PICKED_COLOR, 1.5, "dashdot"))
        labels.append((float(picked), "picked", PICKED_COLOR))
    notes = [
        _label(x, 1 - LABEL_ROW * row, text, color, xanchor=anchor,
               opacity=1 if color != OTHER_COLOR else 0.8)
        for (x, text, color), (row, anchor) in zip(
            labels, place_labels([(x - lo) / (hi - lo or 1) for x, _, _ in labels],
                                 [len(t) for _, t, _ in labels]), strict=True,
        )
    ]  # fmt: skip
    layout = base_layout(
        "Histogram and the chosen clip", "activation", "count", log_y=log_y,
        showlegend=False, shapes=shapes, annotations=notes,
    )  # fmt: skip
    return go.Figure(data=[trace], layout=layout)


def kl_curve_figure(
    result: SweepResult, *, picked: int | None = None, span: tuple[int, int] | None = None
) -> go.Figure:
    """KL(P || Q) of every candidate against its threshold, the chosen one marked.

    Undefined (infinite) KL values are left as gaps. The y axis is logarithmic when every
    defined value is positive, since the curve spans orders of magnitude. Every candidate
    is a small marker (plotly selects markers, not lines, so a click can pick one); its
    candidate number rides along as ``customdata``. ``picked``, a candidate, is marked
    with a green circle (the trace named ``"picked"``).

    ``span``, a (first, last) pair of candidates, draws only those: a 2,000-candidate
    curve is about 8 candidates a pixel wide, too many to pick one by clicking. (Streamlit
    redraws a chart from scratch on every rerun, so plotly's own zoom would not outlast
    the click.) The minimum and the picked candidate are marked only inside it.
    """
    kl = np.asarray(result.kl, dtype=np.float64)
    finite = np.isfinite(kl)
    y = np.where(finite, kl, np.nan)
    lo, hi = 0, result.candidates.size
    if span is not None:
        lo, hi = result.index_of(span[0]), result.index_of(span[1]) + 1
    shown = slice(lo, hi)
    traces = [
        go.Scatter(
            x=result.thresholds[shown],
            y=y[shown],
            customdata=result.candidates[shown],
            name="KL",
            mode="lines+markers",
            line={"color": KEPT_COLOR, "width": 1.5},
            marker={"color": KEPT_COLOR, "size": 3},
            hovertemplate="threshold %{x:.4g} (bin %{customdata})<br>KL %{y:.4g}<extra></extra>",
        )
    ]
    if not result.dead and lo <= result.best_index < hi:
        traces.append(
            go.Scatter(
                x=[result.amax],
                y=[result.min_kl],
                customdata=[result.best],
                name="minimum",
                mode="markers",
                marker={"color": CLIP_COLOR, "size": 11, "symbol": "diamond"},
                hovertemplate="minimum: threshold %{x:.4g} (bin %{customdata})"
                "<br>KL %{y:.4g}<extra></extra>",
            )
        )
    i = None if picked is None or result.dead else result.index_of(picked)
    if i is not None and lo <= i < hi:
        traces.append(
            go.Scatter(
                x=[result.thresholds[i]],
                y=[y[i]],
                customdata=[int(picked)],
                name="picked",
                mode="markers",
                marker={
                    "color": "rgba(0,0,0,0)",
                    "size": 14,
                    "line": {"color": PICKED_COLOR, "width": 2},
                },
                hovertemplate="picked: threshold %{x:.4g} (bin %{customdata})"
                "<br>KL %{y:.4g}<extra></extra>",
            )
        )
    log_y = bool(finite.any() and (kl[finite] > 0).all())
    title = "KL divergence of each candidate"
    if hi - lo < result.candidates.size:
        title += f" ({hi - lo:,} of {result.candidates.size:,})"
    layout = base_layout(title, "threshold (activation units)", "KL(P‖Q)", log_y=log_y)
    return go.Figure(data=traces, layout=layout)


def pq_figure(pq: PQ, log_y: bool = False, *, title: str | None = None) -> go.Figure:
    """P (clipped reference) and Q (quantized, expanded back) of one candidate.

    Both are scaled to sum 1 for display, whatever normalisation the variant uses. P is a
    filled outline and Q a dashed line drawn over it, so that both show where they agree.
    ``title`` replaces the default "P and Q at threshold ... (KL ...)".
    """
    traces = []
    # P filled below, Q a dashed line over it: where they are equal both stay visible
    styles = {
        "P": {"line": {"color": KEPT_COLOR, "width": 1}, "fill": "tozeroy"},
        "Q": {"line": {"color": Q_COLOR, "width": 2, "dash": "dash"}},
    }
    for name, values in (("P", pq.p), ("Q", pq.q)):
        v = np.asarray(values, dtype=np.float64)
        total = v.sum()
        x, y = step_outline(pq.edges, v / total if total > 0 else v)
        traces.append(
            go.Scatter(
                x=x,
                y=y,
                name=name,
                mode="lines",
                hovertemplate=f"{name}: %{{y:.3g}} at %{{x:.4g}}<extra></extra>",
                **styles[name],
            )
        )
    if title is None:
        title = f"P and Q at threshold {pq.threshold:.4g} (KL {pq.kl:.4g})"
    layout = base_layout(title, "activation", "probability", log_y=log_y)
    return go.Figure(data=traces, layout=layout)
