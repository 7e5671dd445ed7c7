"""What every figure shares: the palette, the heights, the base layout, the toolbar's
configuration, and the helpers that keep a figure's payload small.

Every chart of the app is a plotly figure (no Streamlit here). Each colour has one meaning
on every page: blue is what is kept (P), red the clip and what it cuts, orange Q, green a
candidate the user picked. Every chart gets the same toolbar (:func:`chart_config`: box
zoom, pan, a PNG named after its layer and view), above the legend, never over it.
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
# The top margin holds the title (top left), plotly's toolbar (top right, about 30 px
# high) and under it a horizontal legend: the toolbar never covers the legend.
MARGIN = {"l": 80, "r": 10, "t": 64, "b": 65}
LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1}


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
        "title": {
            "text": title,
            "x": 0.01,
            "xanchor": "left",
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": 8},
            "font": {"size": 14},
        },
        "height": FIGURE_HEIGHT,
        "margin": MARGIN,
        "legend": LEGEND,
        "hovermode": "x",
        "dragmode": "zoom",
        "xaxis": {**AXIS, "title": {"text": x_title}},
        "yaxis": yaxis,
        **more,
    }


def png_name(*parts: object) -> str:
    """A file name for a chart's PNG from its layer and view: the parts joined by "_",
    each kept to letters, digits, "-" and "." (a layer's "/" or ":" would make a path).

    >>> png_name("/bert/encoder/layer.0/attention/self/Softmax_output_0", "histogram")
    'bert-encoder-layer.0-attention-self-Softmax-output-0_histogram'
    """
    words = []
    for part in parts:
        if part is None or part == "":
            continue
        text = "".join(c if c.isalnum() or c in "-." else "-" for c in str(part))
        words.append(text.strip("-")[:80] or "-")
    return "_".join(words) or "calib"


def chart_config(name: str) -> dict:
    """Plotly's config for every chart of the app: the toolbar's box zoom, pan and reset,
    no logo, and the PNG export named ``name`` (:func:`png_name`) at twice the size."""
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2},
        "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    }


# The most bins a step outline draws: about a pixel each across a full-width figure (1440
# pixels less the sidebar). More only cost the browser time; the numbers stay exact.
MAX_DRAWN_BINS = 1100
MAX_MARKERS = 300  # the most points spread_indices picks by default


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


def step_points(
    x_edges: np.ndarray, y: np.ndarray, max_bins: int = MAX_DRAWN_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Points of a step line drawn flat to the right of each (plotly's ``line.shape =
    "hv"``): a bin's left edge and its value, then the last edge at the last value (half
    the points of :func:`step_outline`; at most ``max_bins`` bins, :func:`envelope`).

    >>> x, y = step_points(np.arange(4.0), np.array([1.0, 5.0, 2.0]))
    >>> x.tolist(), y.tolist()
    ([0.0, 1.0, 2.0, 3.0], [1.0, 5.0, 2.0, 2.0])
    """
    x_edges, y = envelope(x_edges, y, max_bins)
    return np.asarray(x_edges, dtype=np.float64), np.append(y, y[-1])


def curve_indices(y: np.ndarray, most: int = MAX_DRAWN_BINS // 2) -> np.ndarray:
    """The indices of ``y`` to draw a curve through with about ``most`` points: all of
    them if there are no more; else, in runs of neighbours, the smallest and the largest
    of each (so no spike or dip is lost), the first and last, and both sides of every gap
    (a non-finite value), so gaps stay where they are.

    >>> curve_indices(np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]), 4).tolist()
    [0, 1, 2, 5, 6, 7]
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n <= most:
        return np.arange(n)
    k = -(-n // max(most // 2, 1))
    finite = np.isfinite(y)
    padded = np.full(-(-n // k) * k, np.nan)
    padded[:n] = np.where(finite, y, np.nan)
    runs = padded.reshape(-1, k)
    some = ~np.isnan(runs).all(axis=1)
    starts = np.arange(runs.shape[0]) * k
    lows = starts[some] + np.nanargmin(runs[some], axis=1)
    highs = starts[some] + np.nanargmax(runs[some], axis=1)
    change = np.flatnonzero(finite[1:] != finite[:-1])
    return np.unique(np.concatenate([[0, n - 1], lows, highs, change, change + 1]))


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


DRAWN_DIGITS = 6
"""Significant digits of a value drawn on Explore's charts (a probability, a KL; whole
numbers, the counts, are kept whole): each JSON number is then about 8 characters, not 18.
Positions along an axis are rounded to its span instead (:func:`on_axis`). The lines and
bands at a clip, and the axes' ranges, keep every digit."""


def drawn(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to :data:`DRAWN_DIGITS` significant digits, but whole numbers
    and non-finite ones, which are kept.

    >>> drawn(np.array([12.264242049306631, 0.0, -1234567.0, 0.1234567, np.inf])).tolist()
    [12.2642, 0.0, -1234567.0, 0.123457, inf]
    """
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(v)))
    scale = 10.0 ** (DRAWN_DIGITS - 1 - np.where(np.isfinite(mag), mag, 0.0))
    with np.errstate(invalid="ignore", over="ignore"):
        keep = ~np.isfinite(v) | (v == np.round(v))
        return np.where(keep, v, np.round(v * scale) / scale)


def axis_range(lo: float, hi: float) -> tuple[float, float]:
    """An axis's range for data from ``lo`` to ``hi``: that, or 5% either side of a
    single value (1 either side of 0)."""
    if hi <= lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    return float(lo), float(hi)


def on_axis(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Positions ``x`` on an axis from ``lo`` to ``hi``, rounded to a millionth of its span
    (under a pixel; monotonic, so a line never turns back, and an end point stays on the
    axis's end, where a chart would otherwise leave a marker a hair outside undrawn).

    >>> on_axis(np.array([12.264242049306631, 195.75066492706537]), 0.0, 195.75).tolist()
    [12.2642, 195.7507]
    """
    lo, hi = axis_range(lo, hi)
    step = (hi - lo) / 1e6
    return np.round(np.asarray(x, dtype=np.float64), max(0, int(np.ceil(-np.log10(step)))))


def decades(values: np.ndarray) -> tuple[float, float] | None:
    """The powers of ten just around the positive finite ``values`` (a log axis's range:
    set explicitly, a point's pixel is a function of the data alone), or None."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return None
    # half a decade under the smallest: a value on the axis's floor is not drawn, and no
    # decade's tick below the data is labelled (a count axis read "100m" under its 1)
    lo, hi = np.log10(v.min()) - 0.5, np.ceil(np.log10(v.max()))
    return float(10.0**lo), float(10.0 ** max(hi, lo + 1))
