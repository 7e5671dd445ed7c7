"""Small multiples: a page of a model's tensors, each histogram in its own small panel.

One figure, one pair of hidden axes: each panel is a box in data units (column ``c`` spans
``c .. c + 0.9``, row ``r`` from the top one unit of height), its histogram drawn inside on
its own scale as one filled step outline. Plotly's cost grows with axes, shapes and bars
(one SVG path per bar), not with the points of a path; measured in Chromium, this draws a
page several times faster than one figure with an axis pair and 128 bars per panel, which
in turn beats one chart per tensor (``tests/test_browser.py`` times a page; the README has
the numbers). Each panel holds at most :data:`GRID_BARS` steps, runs of bins summed for
drawing only (:func:`decimate`), so 2048 or 8001 bins cost what 128 do. Heights are log
counts, each panel to its own range (just below its smallest count to its largest).

What the page and the tests read back, for ``n`` panels in the order given (the Layers
table's, worst first): trace 0, ``"panels"``, is one pale bar per panel covering it (point
``i`` is panel ``i``; it alone answers the mouse, so a click anywhere in a panel lands on
it, and its hover names the tensor, its flags, clip and max); trace ``i + 1`` is panel
``i``'s outline, named after its layer; then the traces ``"clip"`` (red) and ``"max"``
(grey, dotted), vertical segments separated by ``None`` whose ``customdata`` is the value
in activation units (``-amax`` too on a signed histogram), and ``"labels"``, each panel's
title and range. A panel's colour is its first flag's (:data:`FLAG_COLORS`), clean panels
blue; its title is the layer's name less the start every name on the page shares
(:func:`common_prefix`), which the colour key above the grid names.
:func:`layer_from_selection` maps a click back to its layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from calib.explore import selection_points
from calib.figures.base import (
    CLIP_COLOR,
    FALLBACK_COLOR,
    KEPT_COLOR,
    OTHER_COLOR,
    step_outline,
)
from calib.histogram import Histogram
from calib.models import short_name
from calib.report import NO_FLAG, LayerRow

__all__ = [
    "FLAG_COLORS",
    "GRID_BARS",
    "GRID_COLUMNS",
    "GRID_ROW_HEIGHT",
    "PANEL_WIDTH",
    "bar_heights",
    "common_prefix",
    "decimate",
    "grid_figure",
    "layer_from_selection",
    "panel_color",
    "panel_color_of",
]

GRID_BARS = 128
"""At most this many steps (summed bins) per panel: a panel is 150 to 200 pixels wide."""
GRID_COLUMNS = 6
GRID_ROW_HEIGHT = 150
"""Pixels per row of panels, the title above and the range below included."""
PANEL_WIDTH = 0.9
"""A panel's width in data units; each column is one unit wide, the rest is the gap."""
_TITLE = 20 / GRID_ROW_HEIGHT  # a row's share above its panel, for the title
_RANGE = 18 / GRID_ROW_HEIGHT  # and below it, for the range
_HEIGHT = 1 - _TITLE - _RANGE  # the panel's own height, in rows
_KEY_PX = 26  # above the grid, for the colour key
_FLOOR = 0.3  # decades below the smallest count where bars start: it still shows
_NAME_CHARS = 30  # a longer title keeps its start and end: "layer.1/at…lf/Softmax output"
PANEL_BACKGROUND = "rgba(0, 0, 0, 0.035)"

# A panel is coloured by its first flag (calib.report.FLAGS order), a row without one blue
# like the SQNR chart's; never red, which is the clip. A test holds it to report.FLAGS.
FLAG_COLORS = {
    NO_FLAG: KEPT_COLOR,
    "dead": "#7f7f7f",
    "zero spike": "#9467bd",
    "outliers": "#ff7f0e",
    "clipped": "#e377c2",
    "low SQNR": "#17becf",
    "sparse": "#98df8a",
    "smallest candidate": "#bcbd22",
    "zero amax": "#8c564b",
    "error": "#000000",
}


def panel_color_of(flag: str) -> str:
    """The colour of a panel whose first flag is ``flag`` (:data:`NO_FLAG` for none)."""
    return FLAG_COLORS.get(flag, FALLBACK_COLOR)


def panel_color(row: LayerRow) -> str:
    """The colour of a row's panel: its first flag's, blue without one (an unknown flag:
    dark grey, never the colour of a clean row)."""
    return panel_color_of(row.flags[0] if row.flags else NO_FLAG)


def decimate(hist: Histogram, bars: int = GRID_BARS) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, counts)`` of at most ``bars`` bars: runs of ``ceil(n / bars)`` neighbouring
    bins summed, the last run holding what is left. Drawing only: the total is kept, and
    every bar's edges are edges of the histogram.

    >>> import numpy as np
    >>> e, c = decimate(Histogram(np.arange(10), np.arange(11.0)), bars=4)
    >>> e.tolist(), c.tolist()
    ([0.0, 3.0, 6.0, 9.0, 10.0], [3.0, 12.0, 21.0, 9.0])
    """
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
        raise ValueError(f"bars must be a positive int, got {bars!r}")
    counts = np.asarray(hist.counts, dtype=np.float64)
    step = max(1, math.ceil(counts.size / bars))
    starts = np.arange(0, counts.size, step)
    edges = np.append(hist.edges[starts], hist.edges[-1])
    return edges, np.add.reduceat(counts, starts)


def common_prefix(names: Sequence[str]) -> str:
    """The longest start two or more names share that ends at a separator (``. / : _ -``)
    and leaves each name something: ``"encoder.layer."`` for PyTorch-hook names (ONNX
    paths are titled by :func:`calib.models.short_name` instead).

    >>> common_prefix(["encoder.layer.0.output", "encoder.layer.10.key"])
    'encoder.layer.'
    >>> common_prefix(["conv1"])
    ''
    """
    if len(set(names)) < 2:
        return ""  # one name: its title is the whole of it
    first, last = min(names), max(names)  # their common start is everyone's
    pairs = enumerate(zip(first, last, strict=False))
    same = next((i for i, (a, b) in pairs if a != b), len(first))
    start = first[:same]
    cut = max(start.rfind(sep) for sep in "./:_-") + 1
    if any(len(n) <= cut for n in names):
        return ""
    return start[:cut]


def _short(name: str) -> str:
    """A panel's title: the name as it is when it fits, else its start (the block:
    ``layer.3``) and its end (the tensor) with "…" for the middle."""
    if len(name) <= _NAME_CHARS:
        return name
    head = _NAME_CHARS // 3
    return name[:head] + "…" + name[-(_NAME_CHARS - head - 1) :]


def _title(name: str, prefix: str) -> str:
    """An ONNX path is shown as everywhere else (``calib.models.short_name``); another
    name without the start all the page's names share."""
    return _short(short_name(name) if "/" in name else name[len(prefix) :])


def bar_heights(counts: np.ndarray) -> np.ndarray:
    """Heights in panel units (0 to the panel's height): log counts from just below the
    smallest non-zero count to the largest; 0 where a count is 0.

    >>> bar_heights(np.array([0.0, 1.0, 10.0])).round(3).tolist()
    [0.0, 0.172, 0.747]
    """
    pos = counts > 0
    if not pos.any():
        return np.zeros(counts.shape)
    lo = math.log10(float(counts[pos].min())) - _FLOOR
    span = math.log10(float(counts[pos].max())) - lo
    with np.errstate(divide="ignore"):
        logs = np.log10(np.where(pos, counts, 1.0))
    return np.where(pos, _HEIGHT * (logs - lo) / span, 0.0)


def _key(rows: Sequence[LayerRow], prefix: str) -> str:
    """The colour key above the grid: the first flags on this page, the two lines, and the
    start of every name left out of the titles."""
    firsts = {r.flags[0] if r.flags else NO_FLAG for r in rows}
    seen = [f for f in FLAG_COLORS if f in firsts] + sorted(firsts - set(FLAG_COLORS))
    parts = [f"<span style='color:{panel_color_of(f)}'>■ {f}</span>" for f in seen]
    parts += [
        f"<span style='color:{CLIP_COLOR}'>│ clip</span>",
        f"<span style='color:{OTHER_COLOR}'>┆ max</span>",
        f"<span style='color:{OTHER_COLOR}'>log counts, each panel to its own range</span>",
    ]
    if prefix:
        parts.append(f"<span style='color:{OTHER_COLOR}'>names after {prefix}</span>")
    return "   ".join(parts)


def grid_figure(
    rows: Sequence[LayerRow],
    hists: Mapping[str, Histogram],
    *,
    columns: int = GRID_COLUMNS,
    bars: int = GRID_BARS,
    title: str | None = None,
) -> go.Figure:
    """One panel per row, in the order given: the histogram (log counts, as stored: ``|x|``
    from 0 or signed), its clip and its max, coloured by its first flag.

    Parameters
    ----------
    rows : sequence of LayerRow
        The tensors of this page, in the order to draw them (row by row, left to right).
    hists : mapping of str to Histogram
        Each row's histogram, by ``row.layer``.
    columns : int
        Panels per row of the grid.
    bars : int
        At most this many steps per panel (:func:`decimate`).
    title : str, optional
        A title above the colour key.
    """
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive int, got {columns!r}")
    n_rows = max(1, math.ceil(len(rows) / columns))
    colors = [panel_color(r) for r in rows]
    names = [r.layer for r in rows]
    prefix = "" if any("/" in n for n in names) else common_prefix(names)
    boxes = [(i % columns, n_rows - 1 - i // columns + _RANGE) for i in range(len(rows))]
    panels = {
        "type": "bar", "name": "panels",
        "x": [x0 + PANEL_WIDTH / 2 for x0, _ in boxes], "y": [_HEIGHT] * len(rows),
        "base": [y0 for _, y0 in boxes], "width": PANEL_WIDTH,
        "marker": {"color": PANEL_BACKGROUND, "line": {"width": 0}},
        "hovertext": [_hover(r) for r in rows],
        "hovertemplate": "%{hovertext}<extra></extra>",
    }  # fmt: skip
    # plain dicts, validated once by the Figure: a go.Scatter each would be validated twice
    traces: list[dict] = [panels]
    lines: dict[str, tuple[list, list, list]] = {"clip": ([], [], []), "max": ([], [], [])}
    labels: tuple[list, list, list, list, list, list] = ([], [], [], [], [], [])
    for row, color, (x0, y0) in zip(rows, colors, boxes, strict=True):
        hist = hists[row.layer]
        edges, counts = decimate(hist, bars)
        lo, hi = float(hist.edges[0]), float(hist.edges[-1])
        scale = PANEL_WIDTH / (hi - lo)
        # the outline's steps, closed along the panel's floor: one filled path
        x, y = step_outline(x0 + (edges - lo) * scale, y0 + bar_heights(counts))
        traces.append(
            {
                "type": "scatter", "name": row.layer, "mode": "lines", "fill": "toself",
                "x": np.concatenate([[x[0]], x, [x[-1]]]),
                "y": np.concatenate([[y0], y, [y0]]),
                "line": {"width": 0}, "fillcolor": color, "hoverinfo": "skip",
            }
        )  # fmt: skip
        for name, value in (("max", row.max), ("clip", row.amax)):
            if not (math.isfinite(value) and value > 0):
                continue  # dead, an error, or a zero amax: nothing to draw
            for v in (value, -value) if hist.is_signed else (value,):
                xs, ys, real = lines[name]
                x = x0 + (v - lo) * scale
                xs += [x, x, None]
                ys += [y0, y0 + _HEIGHT, None]
                real += [v, v, None]
        for text, x, y, where, size, c in (
            (_title(row.layer, prefix), x0, y0 + _HEIGHT, "top right", 10, color),
            (f"{lo:.3g}", x0, y0, "bottom right", 9, OTHER_COLOR),
            (f"{hi:.3g}", x0 + PANEL_WIDTH, y0, "bottom left", 9, OTHER_COLOR),
        ):
            for column, value in zip(labels, (text, x, y, where, size, c), strict=True):
                column.append(value)
    for name, color, width, dash in (
        ("clip", CLIP_COLOR, 1.5, "solid"),
        ("max", OTHER_COLOR, 1, "dot"),
    ):
        xs, ys, real = lines[name]
        traces.append(
            {
                "type": "scatter", "name": name, "mode": "lines", "x": xs, "y": ys,
                "customdata": real, "line": {"color": color, "width": width, "dash": dash},
                "hoverinfo": "skip",
            }
        )  # fmt: skip
    text, xs, ys, where, sizes, label_colors = labels
    traces.append(
        {
            "type": "scatter", "name": "labels", "mode": "text", "x": xs, "y": ys,
            "text": text, "textposition": where, "hoverinfo": "skip",
            "textfont": {"size": sizes, "color": label_colors},
        }
    )  # fmt: skip
    top = _KEY_PX + (30 if title else 0)
    key = {
        "text": _key(rows, prefix), "x": 0, "y": 1, "xref": "paper", "yref": "paper",
        "xanchor": "left", "yanchor": "bottom", "showarrow": False, "font": {"size": 11},
    }  # fmt: skip
    layout = {
        "height": top + n_rows * GRID_ROW_HEIGHT + 4,
        "margin": {"l": 10, "r": 10, "t": top, "b": 4},
        "showlegend": False,
        "hovermode": "closest",
        "barmode": "overlay",
        "xaxis": {"range": [-0.01, columns - 1 + PANEL_WIDTH + 0.01], "visible": False,
                  "fixedrange": True},
        "yaxis": {"range": [0, n_rows], "visible": False, "fixedrange": True},
        "annotations": [key],
    }  # fmt: skip
    if title:
        layout["title"] = {"text": title, "x": 0.01, "xanchor": "left"}
    return go.Figure(data=traces, layout=layout)


def _hover(row: LayerRow) -> str:
    """A panel's hover text: the tensor, its flags, clip and max, what a click does."""
    lines = [row.layer, row.flag_text, f"clip {row.amax:.4g}, max {row.max:.4g}"]
    lines.append("click: open in Explore")
    return "<br>".join(line for line in lines if line)


def layer_from_selection(selection: Any, layers: Sequence[str]) -> str | None:
    """The layer of the first clicked panel, or None.

    ``selection`` is what ``st.plotly_chart(on_select="rerun")`` returns (or its
    ``["selection"]`` part, or the ``points`` list); ``layers`` are the page's layers in
    panel order. Only trace 0 answers the mouse: its point ``i`` is panel ``i``.
    """
    for p in selection_points(selection):
        if not isinstance(p, Mapping) or p.get("curve_number") != 0:
            continue
        i = p.get("point_index", p.get("point_number"))
        if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(layers):
            return layers[i]
    return None
