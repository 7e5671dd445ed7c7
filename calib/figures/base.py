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
# Room for the axes' tick labels and titles from the start (plotly's automargin, on in
# Streamlit's theme, still widens it for longer labels). Each time automargin widens a
# margin plotly draws the whole figure again: with 10 px every figure was drawn twice.
MARGIN = {"l": 80, "r": 10, "t": 40, "b": 65}


LOG_AXIS = {"type": "log", "dtick": 1}
"""Every logarithmic axis: a tick per decade, no bare "2" and "5" labels between them."""

AXIS = {"ticklabeloverflow": "allow"}
"""Every axis: plotly otherwise measures each tick label in the page (a forced layout
apiece) on every draw to hide one past the figure's edge; automargin keeps them inside."""


def base_layout(title: str, x_title: str, y_title: str, *, log_y: bool = False, **more) -> dict:
    """The layout every figure shares, as one dict: a figure is built in one constructor
    call, since each plotly ``update_*`` call validates again (milliseconds apiece)."""
    yaxis: dict = {**AXIS, "title": {"text": y_title}}
    if log_y:
        yaxis.update(LOG_AXIS)
    return {
        "title": {"text": title, "x": 0.01, "xanchor": "left"},
        "height": FIGURE_HEIGHT,
        "margin": MARGIN,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        "hovermode": "x",
        "xaxis": {**AXIS, "title": {"text": x_title}},
        "yaxis": yaxis,
        **more,
    }


# The most bins a step outline draws: about a pixel each across a full-width figure (1440
# pixels less the sidebar). More only cost the browser time; the numbers stay exact.
MAX_DRAWN_BINS = 1100
MAX_MARKERS = 300  # clickable markers on a curve (a narrower range draws every one)


def envelope(
    x_edges: np.ndarray, y: np.ndarray, max_bins: int = MAX_DRAWN_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_bins`` bins to draw: runs of ``ceil(n / max_bins)`` neighbours merged,
    each drawn at the largest of its values, so a spike never disappears.

    >>> e, y = envelope(np.arange(5.0), np.array([1, 5, 2, 0]), max_bins=2)
    >>> e.tolist(), y.tolist()
    ([0.0, 2.0, 4.0], [5.0, 2.0])
    """
    y = np.asarray(y, dtype=np.float64)
    k = -(-y.size // max_bins)
    if k <= 1:
        return np.asarray(x_edges, dtype=np.float64), y
    starts = np.arange(0, y.size, k)
    return np.append(np.asarray(x_edges)[starts], x_edges[-1]), np.fmax.reduceat(y, starts)


def step_outline(
    x_edges: np.ndarray, y: np.ndarray, max_bins: int = MAX_DRAWN_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Points of a step outline: each bin a flat segment from its left to its right edge
    (at most ``max_bins`` of them: :func:`envelope`)."""
    x_edges, y = envelope(x_edges, y, max_bins)
    x = np.repeat(x_edges, 2)[1:-1]
    return x, np.repeat(y, 2)


def spread_indices(n: int, most: int = MAX_MARKERS, keep: tuple[int, ...] = ()) -> np.ndarray:
    """At most about ``most`` indices of ``n``, evenly spread, the first, the last and
    ``keep`` among them.

    >>> spread_indices(10, 4).tolist(), spread_indices(10, 4, keep=(5,)).tolist()
    ([0, 3, 6, 9], [0, 3, 5, 6, 9])
    """
    if n <= most:
        return np.arange(n)
    idx = np.unique(np.round(np.linspace(0, n - 1, most)).astype(np.int64))
    extra = [i for i in keep if 0 <= i < n]
    return np.union1d(idx, np.asarray(extra, dtype=np.int64))
