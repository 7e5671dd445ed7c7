"""Plotly figures of the Compare page: every clip on one histogram, the KL curves, the gaps.

Pure functions from ``calib.compare`` results to figures; no Streamlit. The histogram with
its clips and the KL curves are drawn by ``calib.figures.sweep`` (their one home, which
Explore and Learn draw from too). Shapes and traces that tests read back carry names: each
clip line is the shape named after its row ("seed", "mxnet", "percentile", ...; on a signed
histogram also "<name> -" at ``-amax``), each KL curve the trace named after its variant and
its minimum the trace "<variant> minimum"; the attribution bars are the traces
"seed + group" and "<variant> − group", the gap the shape "gap".
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import plotly.graph_objects as go

from calib.compare import Attribution, Comparison
from calib.figures.base import (
    COMPARE_HEIGHT,
    FALLBACK_COLOR,
    KEPT_COLOR,
    METHOD_COLORS,
    VARIANT_COLORS,
    base_layout,
)
from calib.figures.sweep import Line, histogram_figure, kl_curve_figure
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
    """The histogram (pale) with every variant's and method's clip as a vertical line in
    the legend (``calib.figures.sweep.histogram_figure``, the one home of the drawing).

    Rows with no clip (NaN, or 0 on a dead histogram) get no line. On a signed histogram
    each clip is drawn at ``-amax`` too.
    """
    drawn = [r for r in comparison.rows if math.isfinite(r.amax) and r.amax > 0]
    lines = []
    for row in drawn:
        # clips that coincide (the seed's and ncnn's, often) would hide one another: the
        # first drawn is the widest, each next one narrower and dashed on top of it, and
        # the legend says which coincide
        style = line_style(row.name, row.kind)
        same = [r for r in drawn if _coincide(r.amax, row.amax)]
        k, width, dash, group = same.index(row), style["width"], style["dash"], ""
        if len(same) > 1:
            width = 2 + 3 * (len(same) - 1 - k)
            if k:
                dash = "dash" if dash == "solid" else "dashdot"
            group = " = ".join(r.name for r in same)
        lines.append(
            Line(row.name, float(row.amax), style["color"], dash, width, legend=True, group=group)
        )
    return histogram_figure(
        comparison.histogram, None, log_y, lines=lines, pale=True, height=COMPARE_HEIGHT,
        title="Every clip on one histogram (solid: KL variants, dotted: methods)",
    )  # fmt: skip


def kl_curves_figure(sweeps: Mapping[str, SweepResult]) -> go.Figure:
    """Each variant's KL curve against the threshold, scaled to its own largest value
    (``calib.figures.sweep.kl_curve_figure``, the one home of the drawing).

    The variants' KLs are in different units (raw counts for the seed, a normalised
    histogram for ncnn, normalised P and Q for the others), so each curve is divided by
    its largest finite value: the shapes and the minima compare, the heights do not.
    The x axis is the threshold in activation units, common to every layout. Undefined
    (infinite) values are gaps; the y axis is logarithmic when every value is positive.
    """
    colors = {name: line_style(name, "variant")["color"] for name in sweeps}
    return kl_curve_figure(
        sweeps, scaled=True, colors=colors, height=COMPARE_HEIGHT,
        title="Each variant's KL curve, scaled to its largest value",
    )  # fmt: skip


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
