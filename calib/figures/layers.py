"""Plotly figures of a layer table (``calib.report``); no Streamlit here.

The SQNR of every tensor in file order: a model's problem tensors stand out as dips, and
the pattern (every block's FFN output, say) shows at a glance. Flagged tensors are the
trace named ``"flagged"``, the rest ``"no flag"``; each point's ``customdata`` is its layer
name, so a test (or a click handler) can map a point back to its row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from calib.figures.base import CLIP_COLOR, KEPT_COLOR, LAYERS_HEIGHT, base_layout
from calib.numbers import DB_FORMAT, axis_ticks
from calib.report import LayerRow

__all__ = ["sqnr_figure"]


def sqnr_figure(rows: Sequence[LayerRow], title: str = "SQNR of each tensor") -> go.Figure:
    """SQNR (dB) against the tensor's position in the file; dead and failed rows are left out.

    Parameters
    ----------
    rows : sequence of LayerRow
        In file order (``calib.report.layer_table``'s order).
    title : str
        The figure's title.
    """
    fig = go.Figure()
    for name, color, pick in (
        ("no flag", KEPT_COLOR, lambda r: not r.flags),
        ("flagged", CLIP_COLOR, lambda r: bool(r.flags)),
    ):
        points = [(i, r) for i, r in enumerate(rows) if pick(r) and math.isfinite(r.sqnr_db)]
        fig.add_trace(
            go.Scatter(
                x=[i for i, _ in points],
                y=[r.sqnr_db for _, r in points],
                customdata=[r.layer for _, r in points],
                text=[", ".join(r.flags) for _, r in points],
                name=name,
                mode="markers",
                marker={"color": color, "size": 8 if name == "flagged" else 6},
                hovertemplate="%{customdata}<br>SQNR %{y:"
                + DB_FORMAT.replace("%", "")
                + "} dB<br>%{text}<extra></extra>",
            )
        )
    fig.update_layout(
        base_layout(
            title, "tensor (file order)", "SQNR (dB)", height=LAYERS_HEIGHT, hovermode="closest"
        )
    )
    # whole-number positions (two tensors read 0, 1, not 0, 0.2 ... 1)
    fig.update_xaxes(axis_ticks("index", n=len(rows)))
    fig.update_yaxes(axis_ticks("db"))
    return fig
