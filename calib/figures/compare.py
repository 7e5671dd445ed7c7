"""Plotly figures of the Compare page: every clip on one histogram, the KL curves, the gaps.

Pure functions from ``calib.compare`` results to figures; no Streamlit. Shapes and traces that
tests read back carry names: each clip line is the shape named after its row ("seed",
"mxnet", "percentile", ...; on a signed histogram also "<name> -" at ``-amax``), each KL
curve the trace named after its variant and its minimum the trace "<variant> minimum"; the
attribution bars are the traces "seed + group" and "<variant> − group", the gap the shape "gap".
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from calib.compare import Attribution, Comparison
from calib.figures.base import (
    COMPARE_HEIGHT,
    FALLBACK_COLOR,
    KEPT_COLOR,
    METHOD_COLORS,
    PALE_COLOR,
    VARIANT_COLORS,
    base_layout,
    step_outline,
)
from calib.numbers import axis_ticks
from calib.sweep import SweepResult

__all__ = ["attribution_figure", "clips_figure", "kl_curves_figure", "line_style"]


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    return fig.update_layout(
        base_layout(title, x_title, y_title, height=COMPARE_HEIGHT, hovermode="closest")
    )


def line_style(name: str, kind: str) -> dict:
    """The line of one row: variants solid, methods dotted, each in its own colour."""
    if kind == "variant":
        return {"color": VARIANT_COLORS.get(name, FALLBACK_COLOR), "width": 2, "dash": "solid"}
    return {"color": METHOD_COLORS.get(name, FALLBACK_COLOR), "width": 2, "dash": "dot"}


def _coincide(a: float, b: float) -> bool:
    """Two clips a reader cannot tell apart on the chart (a millionth of either)."""
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b))


def clips_figure(comparison: Comparison, log_y: bool = False) -> go.Figure:
    """The histogram with every variant's and method's clip as a vertical line.

    Rows with no clip (NaN, or 0 on a dead histogram) get no line. On a signed histogram
    each clip is drawn at ``-amax`` too.
    """
    hist = comparison.histogram
    x, y = step_outline(hist.edges, hist.counts)
    fig = go.Figure(
        go.Scatter(
            x=x, y=y, name="histogram", mode="lines", fill="tozeroy", showlegend=False,
            line={"color": PALE_COLOR, "width": 1}, fillcolor=PALE_COLOR,
            hovertemplate="x = %{x:.4g}<br>count = %{y:.4g}<extra></extra>",
        )
    )  # fmt: skip
    drawn = [r for r in comparison.rows if math.isfinite(r.amax) and r.amax > 0]
    for row in drawn:
        # clips that coincide (the seed's and ncnn's, often) would hide one another: the
        # first drawn is the widest, each next one narrower and dashed on top of it, and
        # the legend says which coincide
        same = [r for r in drawn if _coincide(r.amax, row.amax)]
        k = same.index(row)
        line = line_style(row.name, row.kind)
        style: dict = {"line": line, "legendgroup": row.name}
        if len(same) > 1:
            line = {**line, "width": 2 + 3 * (len(same) - 1 - k)}
            if k:
                line["dash"] = "dash" if line["dash"] == "solid" else "dashdot"
            group = " = ".join(r.name for r in same)
            style = {
                "line": line, "legendgroup": group,
                "legendgrouptitle": {"text": f"one clip: {group}"},
            }  # fmt: skip
        fig.add_vline(x=row.amax, name=row.name, showlegend=True, **style)
        if hist.is_signed:
            fig.add_vline(x=-row.amax, name=f"{row.name} -", showlegend=False, **style)
    title = "Every clip on one histogram (solid: KL variants, dotted: methods)"
    _layout(fig, title, "activation", "count")
    fig.update_layout(
        legend={"orientation": "v", "x": 1.01, "y": 1, "xanchor": "left", "yanchor": "top"}
    )
    positive = hist.counts[hist.counts > 0]
    lo = float(positive.min()) if positive.size else None
    fig.update_yaxes(axis_ticks("count", log=log_y, lo=lo))  # no "100µ" counts
    return fig


def kl_curves_figure(sweeps: Mapping[str, SweepResult]) -> go.Figure:
    """Each variant's KL curve against the threshold, scaled to its own largest value.

    The variants' KLs are in different units (raw counts for the seed, a normalised
    histogram for ncnn, normalised P and Q for the others), so each curve is divided by
    its largest finite value: the shapes and the minima compare, the heights do not.
    The x axis is the threshold in activation units, common to every layout. Undefined
    (infinite) values are gaps; the y axis is logarithmic when every value is positive.
    """
    fig = go.Figure()
    all_positive = True
    for name, s in sweeps.items():
        kl = np.asarray(s.kl, dtype=np.float64)
        finite = np.isfinite(kl)
        if s.dead or not finite.any():
            continue
        top = kl[finite].max()
        scale = top if top > 0 else 1.0
        y = np.where(finite, kl / scale, np.nan)
        all_positive &= bool((kl[finite] > 0).all())
        color = line_style(name, "variant")["color"]
        fig.add_trace(
            go.Scatter(
                x=s.thresholds, y=y, customdata=kl, name=name, mode="lines", legendgroup=name,
                line={"color": color, "width": 1.5},
                hovertemplate=f"{name}: threshold %{{x:.4g}}<br>KL %{{customdata:.4g}}"
                "<extra></extra>",
            )
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=[s.amax], y=[s.min_kl / scale], name=f"{name} minimum", mode="markers",
                legendgroup=name, showlegend=False,
                marker={"color": color, "size": 10, "symbol": "diamond"},
                hovertemplate=f"{name} minimum: threshold %{{x:.4g}}<extra></extra>",
            )
        )  # fmt: skip
    _layout(fig, "Each variant's KL curve, scaled to its largest value", "threshold "
            "(activation units)", "KL / largest KL")  # fmt: skip
    fig.update_yaxes(axis_ticks("kl", log=bool(fig.data and all_positive)))
    return fig


def attribution_figure(attribution: Attribution) -> go.Figure:
    """How far each group moves the amax: applied alone to the seed, and reverted alone.

    Horizontal bars in activation units, one pair per group in ranking order (the largest
    on top), with the gap to explain as a dashed line: a group that explains the whole gap
    on its own has both bars reaching it.
    """
    effects = attribution.effects
    names = [e.group.name for e in effects][::-1]
    fig = go.Figure()
    for label, attr, color in (
        ("seed + group", "moved_with", KEPT_COLOR),
        (f"{attribution.variant} − group", "moved_back", VARIANT_COLORS.get(
            attribution.variant, FALLBACK_COLOR)),
    ):  # fmt: skip
        moves = [getattr(e, attr) for e in effects][::-1]
        fig.add_trace(
            go.Bar(
                y=names, x=[m if math.isfinite(m) else None for m in moves], name=label,
                orientation="h", marker={"color": color},
                hovertemplate=f"{label}: moves %{{x:.4g}}<extra>%{{y}}</extra>",
            )
        )  # fmt: skip
    gap = attribution.gap
    if math.isfinite(gap):
        fig.add_vline(x=gap, name="gap", line={"color": FALLBACK_COLOR, "dash": "dash", "width": 1})
    fig.add_vline(x=0, name="zero", line={"color": "#999999", "width": 1})
    title = f"{attribution.variant}: what moves the amax (gap {gap:.4g})"
    _layout(fig, title, "how far the amax moves (activation units; dashed: the gap)", "")
    fig.update_layout(barmode="group", height=max(200, 60 + 40 * len(effects)))
    return fig
