"""Plotly figures of an evaluation report (``calib.evaluate.read_report``); no Streamlit.

Each point and bar carries its tensor or calibration name in ``customdata``, so a test or a
click handler can map it back to its row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from calib.figures.base import (
    AXIS,
    CLIP_COLOR,
    FALLBACK_COLOR,
    KEPT_COLOR,
    LAYERS_HEIGHT,
    METHOD_COLORS,
    PICKED_COLOR,
    VARIANT_COLORS,
    base_layout,
)
from calib.numbers import DB_DECIMALS, fmt

DB_D3 = f".{DB_DECIMALS}f"  # a dB in a hover, as calib.numbers.fmt_db writes it

__all__ = ["keep_float_figure", "methods_figure", "proxy_figure"]


def _color(method: Mapping[str, Any]) -> str:
    if method["name"] == "entropy":
        return VARIANT_COLORS.get(method["variant"], FALLBACK_COLOR)
    return METHOD_COLORS.get(method["name"], FALLBACK_COLOR)


def methods_figure(methods: Sequence[Mapping[str, Any]], measured: str = "") -> go.Figure:
    """Output SQNR with every tensor quantized, one bar per calibration (entropy variants
    in their own colours); the one whose sensitivity was measured is outlined."""
    shown = [m for m in methods if math.isfinite(m["output_sqnr_db"])]
    fig = go.Figure(
        go.Bar(
            x=[m["label"] for m in shown],
            y=[m["output_sqnr_db"] for m in shown],
            customdata=[m["label"] for m in shown],
            text=[fmt(m["output_sqnr_db"], 1, fixed=True) for m in shown],  # never "-0.0"
            textposition="outside",
            marker={
                "color": [_color(m) for m in shown],
                "line": {
                    "color": [
                        PICKED_COLOR if m["label"] == measured else "rgba(0,0,0,0)" for m in shown
                    ],
                    "width": 3,
                },
            },
            hovertemplate="%{x}<br>output SQNR %{y:" + DB_D3 + "} dB<extra></extra>",
            name="output SQNR",
        ),
        layout=base_layout(
            "Output SQNR with every tensor quantized, by calibration",
            "calibration",
            "output SQNR (dB)",
            height=LAYERS_HEIGHT,
            hovermode="closest",
            showlegend=False,
        ),
    )
    return fig


def keep_float_figure(
    steps: Sequence[Mapping[str, Any]], start_db: float, target_db: float
) -> go.Figure:
    """Output SQNR after each tensor the greedy search returns to float (step 0: all
    quantized), with the target as a dashed line."""
    x = list(range(len(steps) + 1))
    y = [start_db, *(s["output_sqnr_db"] for s in steps)]
    names = ["(all quantized)", *(s["layer"] for s in steps)]
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            customdata=names,
            mode="lines+markers",
            line={"color": KEPT_COLOR},
            hovertemplate="step %{x}: %{customdata}<br>output SQNR %{y:" + DB_D3 + "} dB"
            "<extra></extra>",
            name="output SQNR",
        ),
        layout=base_layout(
            "Keep in float: output SQNR after each step",
            "tensors kept in float",
            "output SQNR (dB)",
            height=LAYERS_HEIGHT,
            hovermode="closest",
            showlegend=False,
            xaxis={**AXIS, "title": {"text": "tensors kept in float"}, "dtick": 1},
        ),
    )
    if math.isfinite(target_db):
        fig.add_hline(
            y=target_db, line={"color": CLIP_COLOR, "dash": "dash"},
            annotation_text=f"target {fmt(target_db, 4, unit=' dB')}",
            annotation_position="bottom right",
        )  # fmt: skip
    return fig


def proxy_figure(rows: Sequence[Mapping[str, Any]], rho: float) -> go.Figure:
    """Each tensor's histogram-level SQNR of its clip (the proxy) against the output SQNR
    with only it quantized (measured); flagged tensors in the clip colour."""
    fig = go.Figure()
    for name, color, pick in (
        ("clean", KEPT_COLOR, lambda r: not r["flags"]),
        ("flagged", CLIP_COLOR, lambda r: bool(r["flags"])),
    ):
        pts = [r for r in rows if pick(r) and math.isfinite(r["hist_sqnr_db"])
               and math.isfinite(r["only_this_sqnr_db"])]  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=[r["hist_sqnr_db"] for r in pts],
                y=[r["only_this_sqnr_db"] for r in pts],
                customdata=[r["layer"] for r in pts],
                text=[", ".join(r["flags"]) for r in pts],
                mode="markers",
                name=name,
                marker={"color": color, "size": 8 if name == "flagged" else 7},
                hovertemplate=(
                    "%{customdata}<br>histogram SQNR %{x:"
                    + DB_D3
                    + "} dB<br>output SQNR %{y:"
                    + DB_D3
                    + "} dB"
                    "<br>%{text}<extra></extra>"
                ),
            )
        )
    title = "Does the histogram predict it?"
    if math.isfinite(rho):
        title += f" Spearman's rho = {rho:.2f}"
    fig.update_layout(
        base_layout(
            title,
            "SQNR of the clip, from the histogram (dB)",
            "output SQNR, only this tensor quantized (dB)",
            height=LAYERS_HEIGHT + 60,
            hovermode="closest",
        )
    )
    return fig
