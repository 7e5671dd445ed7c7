"""Small multiples: a page of a model's tensors, each histogram in its own small panel.

One figure for the whole page (a panel is an x/y axis pair laid out by hand), so the
browser draws one plot, not two dozen; measured in Chromium, see ``tests/test_browser.py``.
Each panel is one bar trace, in the order of the rows given (the Layers table's, worst
first), holding the histogram summed into at most :data:`GRID_BARS` coarser bins: for
drawing only, so 2048 or 8001 bins cost the same as 128. Counts are on a log axis.

What tests and the page read back: trace ``i`` is panel ``i`` and is named after its layer
(a click's ``curve_number`` is that index, see :func:`layer_from_selection`); the chosen
clip is the shape named ``"clip"`` (``"clip -"`` at ``-amax`` on a signed histogram) and the
largest value the shape named ``"max"`` (``"max -"``), each on its panel's axes
(``xref`` ``"x"``, ``"x2"``, ... for panels 0, 1, ...). A panel's colour is its first flag's
(:data:`FLAG_COLORS`), clean panels blue; its title is the layer's name less the start
every name on the page shares (:func:`common_prefix`), which the colour key names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from calib.figures.base import CLIP_COLOR, KEPT_COLOR, OTHER_COLOR
from calib.histogram import Histogram
from calib.report import LayerRow

__all__ = [
    "FLAG_COLORS",
    "GRID_BARS",
    "GRID_COLUMNS",
    "GRID_ROW_HEIGHT",
    "common_prefix",
    "decimate",
    "grid_figure",
    "layer_from_selection",
    "panel_color",
]

GRID_BARS = 128
"""At most this many bars per panel: a panel is about 200 pixels wide."""
GRID_COLUMNS = 6
GRID_ROW_HEIGHT = 150  # pixels per row of panels, its title included
_TOP = 24  # pixels above the first row, for the colour key
_TITLE = 20  # pixels above each panel, for its name
_TICKS = 22  # pixels below each panel, for its x tick labels
_GAP_X = 0.025  # share of the width between two panels
_NAME_CHARS = 30  # a longer title keeps its end: "…0.attention.output.dense:input"

# A panel is coloured by its first flag (calib.report.FLAGS order); not red, which is the clip.
FLAG_COLORS = {
    "clean": KEPT_COLOR,
    "dead": "#7f7f7f",
    "zero spike": "#9467bd",
    "outliers": "#ff7f0e",
    "smallest candidate": "#bcbd22",
    "zero amax": "#8c564b",
    "error": "#000000",
}


def panel_color(row: LayerRow) -> str:
    """The colour of a row's panel: its first flag's, or clean blue."""
    return FLAG_COLORS.get(row.flags[0] if row.flags else "clean", FLAG_COLORS["clean"])


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
    """The longest start every name shares that ends at a separator (``. / : _ -``) and
    leaves each name something: ``"encoder.layer."`` for MiniLM's tensors.

    >>> common_prefix(["encoder.layer.0.output", "encoder.layer.10.key"])
    'encoder.layer.'
    >>> common_prefix(["conv1"])
    ''
    """
    if not names:
        return ""
    first, last = min(names), max(names)  # their common start is everyone's
    pairs = enumerate(zip(first, last, strict=False))
    same = next((i for i, (a, b) in pairs if a != b), len(first))
    start = first[:same]
    cut = max(start.rfind(sep) for sep in "./:_-") + 1
    if any(len(n) <= cut for n in names):
        return ""
    return start[:cut]


def _short(name: str) -> str:
    return name if len(name) <= _NAME_CHARS else "…" + name[-(_NAME_CHARS - 1) :]


def _n(k: int) -> str:
    """Panel ``k``'s axis number as plotly spells it: ``x``, ``x2``, ``x3``..."""
    return "" if k == 1 else str(k)


def _vline(k: int, x: float, name: str, color: str, dash: str) -> dict:
    """A full-height line at ``x`` on panel ``k``'s axes (k counts from 1)."""
    return {
        "type": "line", "name": name, "xref": f"x{_n(k)}", "yref": f"y{_n(k)} domain",
        "x0": x, "x1": x, "y0": 0, "y1": 1,
        "line": {"color": color, "width": 1.5 if name.startswith("clip") else 1, "dash": dash},
    }  # fmt: skip


def _panel_lines(k: int, row: LayerRow, signed: bool) -> list[dict]:
    """The clip (red) and the max (grey, dotted), mirrored at ``-x`` on a signed histogram."""
    lines = []
    for name, x, color, dash in (
        ("max", row.max, OTHER_COLOR, "dot"),
        ("clip", row.amax, CLIP_COLOR, "solid"),
    ):
        if not (math.isfinite(x) and x > 0):
            continue  # dead, an error, or a zero amax: nothing to draw
        lines.append(_vline(k, x, name, color, dash))
        if signed:
            lines.append(_vline(k, -x, f"{name} -", color, dash))
    return lines


def _note(text: str, x: float, y: float, size: int, color: str | None, **kw) -> dict:
    """A text at paper (x, y), its bottom-left corner there unless ``kw`` says otherwise."""
    font = {"size": size} | ({"color": color} if color else {})
    return {
        "text": text, "x": x, "y": y, "xref": "paper", "yref": "paper", "xanchor": "left",
        "yanchor": "bottom", "showarrow": False, "font": font, **kw,
    }  # fmt: skip


def _key(colors: Sequence[str], prefix: str) -> str:
    """The colour key above the grid: the colours on this page, the two lines, and the
    start of every name left out of the panels' titles."""
    seen = [c for c in FLAG_COLORS if FLAG_COLORS[c] in set(colors)]
    parts = [f"<span style='color:{FLAG_COLORS[c]}'>■ {c}</span>" for c in seen]
    parts += [
        f"<span style='color:{CLIP_COLOR}'>│ clip</span>",
        f"<span style='color:{OTHER_COLOR}'>┆ max</span>",
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
        At most this many bars per panel (:func:`decimate`).
    title : str, optional
        A title above the colour key.
    """
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive int, got {columns!r}")
    n_rows = max(1, math.ceil(len(rows) / columns))
    plot_px = _TOP + n_rows * GRID_ROW_HEIGHT  # the paper's height in pixels
    margin_t = 40 if title else 8
    width = (1 - _GAP_X * (columns - 1)) / columns

    def paper_y(px: float) -> float:  # pixels down from the paper's top -> paper y
        return 1 - px / plot_px

    traces, shapes, notes, layout = [], [], [], {}
    colors = [panel_color(r) for r in rows]
    prefix = common_prefix([r.layer for r in rows])
    for i, (row, color) in enumerate(zip(rows, colors, strict=True)):
        k = i + 1
        hist = hists[row.layer]
        edges, counts = decimate(hist, bars)
        # plain dicts, validated once by the Figure: a go.Bar each is validated twice
        traces.append(
            {
                "type": "bar",
                "x": 0.5 * (edges[:-1] + edges[1:]),
                "y": np.where(counts > 0, counts, np.nan),  # log axes: an empty bar is a gap
                "width": np.diff(edges),
                "name": row.layer,
                "marker": {"color": color, "line": {"width": 0}},
                "xaxis": f"x{_n(k)}",
                "yaxis": f"y{_n(k)}",
                "hovertemplate": "%{fullData.name}<br>"
                + ("x" if hist.is_signed else "|x|")
                + " near %{x:.4g}: %{y:.4g}<extra></extra>",
            }
        )
        c, r = i % columns, i // columns
        x0 = c * (width + _GAP_X)
        row_top = _TOP + r * GRID_ROW_HEIGHT
        y1 = paper_y(row_top + _TITLE)  # the name above, the tick labels below
        y0 = paper_y(row_top + GRID_ROW_HEIGHT - _TICKS)
        lo, hi = float(hist.edges[0]), float(hist.edges[-1])
        layout[f"xaxis{_n(k)}"] = {
            "domain": [x0, x0 + width], "anchor": f"y{_n(k)}", "range": [lo, hi],
            "nticks": 4, "tickfont": {"size": 9}, "showgrid": False, "zeroline": False,
            "fixedrange": True,
        }  # fmt: skip
        layout[f"yaxis{_n(k)}"] = {
            "domain": [y0, y1], "anchor": f"x{_n(k)}", "type": "log",
            "showticklabels": False, "showgrid": False, "fixedrange": True,
        }  # fmt: skip
        shapes += _panel_lines(k, row, hist.is_signed)
        about = ", ".join(row.flags) if not row.error else f"error: {row.error}"
        hover = row.layer + (f"<br>{about}" if about else "")
        notes.append(_note(_short(row.layer[len(prefix) :]), x0, y1, 10, color, hovertext=hover))
    notes.append(_note(_key(colors, prefix), 0, 1, 11, None, yanchor="top"))
    layout.update(
        {
            "height": margin_t + plot_px + 8,
            "margin": {"l": 10, "r": 10, "t": margin_t, "b": 8},
            "showlegend": False,
            # a click anywhere above a bar picks it (and so the panel), however short it is
            "hovermode": "x",
            "bargap": 0,
            "shapes": shapes,
            "annotations": notes,
        }
    )
    if title:
        layout["title"] = {"text": title, "x": 0.01, "xanchor": "left", "y": 1, "yanchor": "top"}
    return go.Figure(data=traces, layout=layout)


def layer_from_selection(selection: Any, layers: Sequence[str]) -> str | None:
    """The layer of the first clicked panel, or None.

    ``selection`` is what ``st.plotly_chart(on_select="rerun")`` returns (or its
    ``["selection"]`` part, or the ``points`` list); a point's ``curve_number`` is its
    panel, and ``layers`` the page's layers in panel order.
    """
    points = selection
    if isinstance(points, Mapping):
        points = points.get("selection", points)
    if isinstance(points, Mapping):
        points = points.get("points", [])
    for p in points or []:
        k = p.get("curve_number") if isinstance(p, Mapping) else None
        if isinstance(k, int) and not isinstance(k, bool) and 0 <= k < len(layers):
            return layers[k]
    return None
