"""Plotly figures of a layer table (``calib.report``); no Streamlit here.

The SQNR of every tensor in file order: a model's problem tensors stand out as dips, and
the pattern (every block's FFN output, say) shows at a glance. Flagged tensors are the
trace named ``"flagged"``, the rest ``"clean"``; each point's ``customdata`` is its layer
name, so a test (or a click handler) can map a point back to its row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from calib.report import LayerRow

__all__ = ["sqnr_figure"]

CLEAN_COLOR = "#1f77b4"
FLAGGED_COLOR = "#d62728"
FIGURE_HEIGHT = 320


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
        ("clean", CLEAN_COLOR, lambda r: not r.flags),
        ("flagged", FLAGGED_COLOR, lambda r: bool(r.flags)),
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
                hovertemplate="%{customdata}<br>SQNR %{y:.3g} dB<br>%{text}<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        height=FIGURE_HEIGHT,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
    )
    fig.update_xaxes(title_text="tensor (file order)")
    fig.update_yaxes(title_text="SQNR (dB)")
    return fig
