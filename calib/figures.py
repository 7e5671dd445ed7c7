"""Plotly figures of a KL sweep: the histogram with its clip, the KL curve, P against Q.

Pure functions from core results to ``plotly.graph_objects.Figure``; no Streamlit here,
so the figures can be built and checked in a test or a notebook. Shapes and traces that
tests read back carry names: the clip line is the shape named ``"clip"`` (and
``"clip -"`` at ``-amax`` on a signed histogram), the clipped tail the shapes named
``"clipped tail"``, the chosen candidate on the KL curve the trace named ``"minimum"``.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from calib.histogram import Histogram
from calib.sweep import PQ, SweepResult

__all__ = ["histogram_figure", "kl_curve_figure", "pq_figure"]

KEPT_COLOR = "#1f77b4"
CLIP_COLOR = "#d62728"
Q_COLOR = "#ff7f0e"
FIGURE_HEIGHT = 360
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        height=FIGURE_HEIGHT,
        margin=_MARGIN,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        hovermode="x",
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def _step(x_edges: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points of a step outline: each bin a flat segment from its left to its right edge."""
    x = np.repeat(x_edges, 2)[1:-1]
    return x, np.repeat(np.asarray(y, dtype=np.float64), 2)


def histogram_figure(hist: Histogram, result: SweepResult, log_y: bool = False) -> go.Figure:
    """The histogram as a filled step outline, the clip at ``result.amax`` and the tail past it.

    On a signed histogram the clip is drawn at both ``-amax`` and ``amax``.
    """
    x, y = _step(hist.edges, hist.counts)
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            name="histogram",
            mode="lines",
            line={"color": KEPT_COLOR, "width": 1},
            fill="tozeroy",
            hovertemplate="x = %{x:.4g}<br>count = %{y:.4g}<extra></extra>",
        )
    )
    amax = float(result.amax)
    lo, hi = float(hist.edges[0]), float(hist.edges[-1])
    tail = {"fillcolor": CLIP_COLOR, "opacity": 0.12, "line_width": 0, "layer": "below"}
    clip = {"line": {"color": CLIP_COLOR, "width": 2, "dash": "dash"}}
    if amax < hi:
        fig.add_vrect(x0=amax, x1=hi, name="clipped tail", **tail)
    fig.add_vline(x=amax, name="clip", **clip)
    if hist.is_signed:
        if -amax > lo:
            fig.add_vrect(x0=lo, x1=-amax, name="clipped tail", **tail)
        fig.add_vline(x=-amax, name="clip -", **clip)
    fig.add_annotation(
        x=amax, y=1, yref="paper", text=f"clip {amax:.4g}", showarrow=False,
        xanchor="left", yanchor="top", font={"color": CLIP_COLOR},
    )  # fmt: skip
    _layout(fig, "Histogram and the chosen clip", "activation", "count")
    fig.update_layout(showlegend=False)
    if log_y:
        fig.update_yaxes(type="log", dtick=1)  # a tick per decade, no 2s and 5s between
    return fig


def kl_curve_figure(result: SweepResult) -> go.Figure:
    """KL(P || Q) of every candidate against its threshold, the chosen one marked.

    Undefined (infinite) KL values are left as gaps. The y axis is logarithmic when every
    defined value is positive, since the curve spans orders of magnitude.
    """
    kl = np.asarray(result.kl, dtype=np.float64)
    finite = np.isfinite(kl)
    y = np.where(finite, kl, np.nan)
    fig = go.Figure(
        go.Scatter(
            x=result.thresholds,
            y=y,
            customdata=result.candidates,
            name="KL",
            mode="lines",
            line={"color": KEPT_COLOR, "width": 1.5},
            hovertemplate="threshold %{x:.4g} (bin %{customdata})<br>KL %{y:.4g}<extra></extra>",
        )
    )
    if not result.dead:
        fig.add_trace(
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
    _layout(fig, "KL divergence of each candidate", "threshold (activation units)", "KL(P‖Q)")
    if finite.any() and (kl[finite] > 0).all():
        fig.update_yaxes(type="log")
    return fig


def pq_figure(pq: PQ, log_y: bool = False) -> go.Figure:
    """P (clipped reference) and Q (quantized, expanded back) of one candidate.

    Both are scaled to sum 1 for display, whatever normalisation the variant uses.
    """
    fig = go.Figure()
    for name, values, color in (("P", pq.p, KEPT_COLOR), ("Q", pq.q, Q_COLOR)):
        v = np.asarray(values, dtype=np.float64)
        total = v.sum()
        x, y = _step(pq.edges, v / total if total > 0 else v)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                name=name,
                mode="lines",
                line={"color": color, "width": 1.5},
                hovertemplate=f"{name}: %{{y:.3g}} at %{{x:.4g}}<extra></extra>",
            )
        )
    title = f"P and Q at threshold {pq.threshold:.4g} (KL {pq.kl:.4g})"
    _layout(fig, title, "activation", "probability")
    if log_y:
        fig.update_yaxes(type="log", dtick=1)
    return fig
