"""What every figure shares: the palette, the heights and the base layout.

Plotly only (no Streamlit). Each colour has one meaning on every page: blue is what is
kept (P), red the clip and what it cuts, orange Q, green a candidate the user picked.
"""

from __future__ import annotations

import numpy as np

KEPT_COLOR = "#1f77b4"
CLIP_COLOR = "#d62728"
Q_COLOR = "#ff7f0e"
PICKED_COLOR = "#2ca02c"
OTHER_COLOR = "#555555"
TAIL_COLOR = "#9467bd"
PALE_COLOR = "#c6d4e1"  # a pale histogram behind lines that must stand out
# one colour per variant (solid lines) and per method (dotted lines)
VARIANT_COLORS = {
    "seed": "#d62728",
    "ncnn": "#9467bd",
    "mxnet": "#2ca02c",
    "onnxruntime": "#ff7f0e",
    "modelopt": "#17becf",
}
METHOD_COLORS = {
    "max": "#7f7f7f",
    "percentile": "#8c564b",
    "mse": "#e377c2",
    "entropy": "#bcbd22",
}
FALLBACK_COLOR = "#333333"

# Heights in pixels: Explore's figures, Compare's (a legend of ten lines), Layers' SQNR
# scatter, Learn's step charts (several on one screen).
FIGURE_HEIGHT = 360
COMPARE_HEIGHT = 380
LAYERS_HEIGHT = 320
LEARN_HEIGHT = 330
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


LOG_AXIS = {"type": "log", "dtick": 1}
"""Every logarithmic axis: a tick per decade, no bare "2" and "5" labels between them."""


def base_layout(title: str, x_title: str, y_title: str, *, log_y: bool = False, **more) -> dict:
    """The layout every figure shares, as one dict: a figure is built in one constructor
    call, since each plotly ``update_*`` call validates again (milliseconds apiece)."""
    yaxis: dict = {"title": {"text": y_title}}
    if log_y:
        yaxis.update(LOG_AXIS)
    return {
        "title": {"text": title, "x": 0.01, "xanchor": "left"},
        "height": FIGURE_HEIGHT,
        "margin": MARGIN,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        "hovermode": "x",
        "xaxis": {"title": {"text": x_title}},
        "yaxis": yaxis,
        **more,
    }


def step_outline(x_edges: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points of a step outline: each bin a flat segment from its left to its right edge."""
    x = np.repeat(x_edges, 2)[1:-1]
    return x, np.repeat(np.asarray(y, dtype=np.float64), 2)
