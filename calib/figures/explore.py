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
    shapes, notes = [], []
    for i, (label, value) in enumerate((others or {}).items()):
        value = float(value)
        if not (np.isfinite(value) and value > 0):
            continue
        shapes.append(_vline(value, label, OTHER_COLOR, 1, "dot", opacity=0.6))
        # stagger the labels down the plot so that close thresholds stay readable
        notes.append(_label(value, 0.92 - 0.07 * (i % 5), label, OTHER_COLOR, opacity=0.8))
    if picked is not None and np.isfinite(picked):
        shapes.append(_vline(float(picked), "picked", PICKED_COLOR, 1.5, "dashdot"))
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
        notes.append(_label(amax, 1, f"clip {amax:.4g}", CLIP_COLOR))
    layout = base_layout(
        "Histogram and the chosen clip", "activation", "count", log_y=log_y,
        showlegend=False, shapes=shapes, annotations=notes,
    )  # fmt: skip
    return go.Figure(data=[trace], layout=layout)


def kl_curve_figure(result: SweepResult, *, picked: int | None = None) -> go.Figure:
    """KL(P || Q) of every candidate against its threshold, the chosen one marked.

    Undefined (infinite) KL values are left as gaps. The y axis is logarithmic when every
    defined value is positive, since the curve spans orders of magnitude. Every candidate
    is a small marker (plotly selects markers, not lines, so a click can pick one); its
    candidate number rides along as ``customdata``. ``picked``, a candidate, is marked
    with a green circle (the trace named ``"picked"``).
    """
    kl = np.asarray(result.kl, dtype=np.float64)
    finite = np.isfinite(kl)
    y = np.where(finite, kl, np.nan)
    traces = [
        go.Scatter(
            x=result.thresholds,
            y=y,
            customdata=result.candidates,
            name="KL",
            mode="lines+markers",
            line={"color": KEPT_COLOR, "width": 1.5},
            marker={"color": KEPT_COLOR, "size": 3},
            hovertemplate="threshold %{x:.4g} (bin %{customdata})<br>KL %{y:.4g}<extra></extra>",
        )
    ]
    if not result.dead:
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
    if picked is not None and not result.dead:
        i = result.index_of(picked)
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
    layout = base_layout(
        "KL divergence of each candidate", "threshold (activation units)", "KL(P‖Q)",
        log_y=log_y,
    )  # fmt: skip
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
