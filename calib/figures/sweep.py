"""The drawn ideas of a KL sweep, one function each, used by every page that draws them:
the histogram with its clip (and other calibrators' lines), the KL curve with its minimum
and a picked candidate, and P against Q. ``scrub_figure`` puts the KL curve and P/Q side
by side with a slider inside the figure: the browser redraws another candidate's P and Q
from steps computed with the sweep, with no server round trip.

Plotly figures (``plotly.graph_objects.Figure``), no Streamlit. Payloads stay small: a
step line is a point a bin (``line.shape = "hv"``), at most ``MAX_DRAWN_BINS`` bins (each
the largest of the ones it joins: :func:`calib.figures.base.envelope`), a long KL curve
is drawn through each run's extremes (:func:`calib.figures.base.curve_indices`), and
points are rounded (:func:`calib.figures.base.drawn`, :func:`calib.figures.base.on_axis`)
and sent as plain JSON lists.

What tests read back carries a name. On the histogram: the trace ``"histogram"``, the
clip the shape ``"clip"`` (and ``"clip -"`` at ``-amax`` on a signed histogram), the
clipped tail the shapes ``"clipped tail"``, every other line the shape named by its label
(``"max"``, ``"mxnet"``, ``"picked"``...). On a KL curve: the trace named by its variant
(``"KL"`` for a single curve), ``"<name> minimum"`` (``"minimum"``), and ``"picked"``.
On P and Q: the traces ``"P"`` and ``"Q"``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from calib.figures.base import (
    CLIP_COLOR,
    FIGURE_HEIGHT,
    KEPT_COLOR,
    LOG_AXIS,
    MAX_DRAWN_BINS,
    OTHER_COLOR,
    PICKED_COLOR,
    Q_COLOR,
    base_layout,
    curve_indices,
    decades,
    drawn,
    on_axis,
    spread_indices,
    step_points,
)
from calib.histogram import Histogram
from calib.numbers import axis_ticks, fmt, fmt_kl
from calib.sweep import PQ, SweepResult

__all__ = [
    "MAX_SCRUB_STEPS",
    "SCRUB_BINS",
    "Line",
    "histogram_figure",
    "kl_curve_figure",
    "pq_figure",
    "scrub_candidates",
    "scrub_figure",
]

MAX_SCRUB_STEPS = 41
"""Candidates a scrub figure embeds (its slider's steps), evenly spread over the sweep, the
chosen and the server's picked candidate among them: about 3 kB of JSON each."""
SCRUB_BINS = 160
"""Bins of P and Q drawn at each embedded candidate (a third of a page wide)."""

DASH = {"dash": "dash", "dot": "dot", "dashdot": "dashdot", "solid": "solid"}


def figure(data: list[dict], layout: dict, frames: list[dict] | None = None) -> go.Figure:
    """A plotly figure of plain dicts, built without plotly's per-property validation
    (about a second for a scrub figure's steps); the tests validate every figure once
    (``go.Figure(fig.to_dict())``)."""
    sliders = layout.pop("sliders", None)
    if sliders is None and not frames:
        return go.Figure({"data": data, "layout": layout}, _validate=False)
    fig = SliderFigure({"data": data, "layout": layout}, _validate=False)
    fig.steps_json = tuple(sliders or ())
    fig.frames_json = tuple(frames or ())
    return fig


class SliderFigure(go.Figure):
    """A figure whose ``layout.sliders`` (thousands of numbers in their steps) are kept
    aside as plain JSON and added by :meth:`to_dict` (so by ``to_json`` and Streamlit),
    uncopied: plotly deep-copies a layout on every construction and ``to_dict``, 0.3 s
    for a scrub figure's steps. Nothing mutates them."""

    steps_json: tuple[dict, ...] = ()
    frames_json: tuple[dict, ...] = ()

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.steps_json:
            out["layout"]["sliders"] = list(self.steps_json)
        if self.frames_json:
            out["frames"] = list(self.frames_json)
        return out


@dataclasses.dataclass(frozen=True)
class Line:
    """A vertical line on the histogram: a clip, another calibrator's, a picked candidate.

    ``label``: written above the plot beside the line; ``legend``: listed in the legend
    instead (Compare's ten lines).
    """

    name: str
    x: float
    color: str = OTHER_COLOR
    dash: str = "dot"
    width: float = 1.0
    opacity: float = 1.0
    label: str | None = None
    legend: bool = False
    group: str = ""  # lines at one place: "seed = ncnn", titled "one clip: ..." in the legend


def _vline(line: Line, x: float, name: str, showlegend: bool) -> dict:
    shape = {
        "type": "line", "name": name, "xref": "x", "yref": "paper", "x0": x, "x1": x,
        "y0": 0, "y1": 1, "opacity": line.opacity,
        "line": {"color": line.color, "width": line.width, "dash": DASH[line.dash]},
    }  # fmt: skip
    if line.legend:
        shape.update(showlegend=showlegend, legendgroup=line.group or line.name)
        if line.group:
            shape["legendgrouptitle"] = {"text": f"one clip: {line.group}"}
    return shape


LABEL_ROW = 0.075  # a label row's height, as a share of the plot's
CHAR_WIDTH = 0.0065  # a label character's width, as a share of a full-width plot's


def place_labels(xs: list[float], lengths: list[int]) -> list[tuple[int, str]]:
    """A (row, side) for each line label at ``xs`` (0..1 across the plot) of ``lengths``
    characters, in order of priority: each takes the highest row where it overlaps no
    label placed before it; near the right edge it hangs to the left of its line.

    >>> place_labels([0.5, 0.501, 0.9999], [4, 4, 3])
    [(0, 'right'), (1, 'right'), (0, 'left')]
    """
    taken: list[list[tuple[float, float]]] = []
    out = []
    for x, n in zip(xs, lengths, strict=True):
        w = (n + 1) * CHAR_WIDTH
        side = "left" if x + w > 1.0 else "right"
        span = (x - w, x) if side == "left" else (x, x + w)
        row = next(
            (r for r, spans in enumerate(taken)
             if all(span[1] <= a or span[0] >= b for a, b in spans)),
            len(taken),
        )  # fmt: skip
        if row == len(taken):
            taken.append([])
        taken[row].append(span)
        out.append((row, side))
    return out


def _gaps(values: np.ndarray, log: bool) -> list:
    """``values`` as a JSON list (:func:`drawn`): None (a gap) where not finite; on a log
    axis an empty bin (not positive) is drawn under the axis's floor (:func:`_floor`), so
    a step line drops out of sight there and its fill stays under it (a gap would let
    plotly's fill bridge it)."""
    v = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(v)
    empty = (v <= 0) & ~bad if log else np.zeros(v.shape, dtype=bool)
    out: list = drawn(np.where(bad | empty, 0.0, v)).tolist()
    floor = _floor(v) if empty.any() else 0.0
    for i in np.flatnonzero(empty).tolist():
        out[i] = floor
    for i in np.flatnonzero(bad).tolist():
        out[i] = None
    return out


def _floor(values: np.ndarray) -> float:
    """Under a log axis's floor (:func:`calib.figures.base.decades`): a decade below it."""
    span = decades(values)
    return span[0] / 10 if span else 1e-300


def _step_trace(edges: np.ndarray, values: np.ndarray, log: bool, max_bins: int,
                x_range: tuple[float, float] | None = None) -> dict:  # fmt: skip
    """A step line's x, y and hover data: a point a bin (its left edge, its value, its
    range for the hover) and the last edge again (at most ``max_bins`` bins)."""
    x, y = step_points(edges, values, max_bins)
    lo, hi = x_range or (float(x[0]), float(x[-1]))
    xs = on_axis(x, lo, hi)
    rng = np.stack([xs, np.append(xs[1:], xs[-1])], axis=1)
    return {"x": xs.tolist(), "y": _gaps(y, log), "customdata": rng.tolist()}


def _y_range(values: np.ndarray, log: bool, quantity: str = "count") -> tuple[dict, bool]:
    """A count (or probability) axis: log (a tick a decade, its range the decades around
    the values) when asked and any value is positive, else linear from 0; its ticks as
    :func:`calib.numbers.axis_ticks` writes them (``1M``, never ``100µ`` counts)."""
    values = np.asarray(values, dtype=np.float64)
    positive = values[values > 0]
    lo = float(positive.min()) if positive.size else None
    span = decades(values) if log else None
    if span is None:
        return {"type": "linear", "rangemode": "tozero", **axis_ticks(quantity, lo=lo)}, False
    ticks = axis_ticks(quantity, log=True, lo=lo)
    return {**LOG_AXIS, **ticks, "range": [math.log10(span[0]), math.log10(span[1])]}, True


HIST_HOVER = "[%{customdata[0]:.4g}, %{customdata[1]:.4g})<br>count %{y:,.6~g}<extra></extra>"


def histogram_figure(
    hist: Histogram,
    result: SweepResult | None = None,
    log_y: bool = False,
    *,
    others: Mapping[str, float] | None = None,
    picked: float | None = None,
    lines: Sequence[Line] = (),
    title: str = "Histogram and the chosen clip",
    pale: bool = False,
    height: int = FIGURE_HEIGHT,
) -> go.Figure:
    """The histogram as a filled step outline, the clip at ``result.amax`` and the tail past it.

    Parameters
    ----------
    hist : Histogram
        The histogram to draw (as the user sees it; the sweep may fold or mirror it).
    result : SweepResult, optional
        Its sweep: its clip is the red dashed line ``"clip"`` and the tail past it a band;
        a dead sweep (or none) draws no clip.
    log_y : bool
        A logarithmic count axis, one tick per decade (empty bins are gaps).
    others : mapping of str to float, optional
        Other thresholds as faint labelled lines, label -> amax; non-positive or
        non-finite values are skipped.
    picked : float, optional
        A threshold the user picked: the green dash-dot line ``"picked"``.
    lines : sequence of Line
        More lines as they are (Compare's, each in the legend).
    pale : bool
        A pale histogram, behind lines that must stand out.

    On a signed histogram every line is drawn at ``-x`` too (named ``"<name> -"``).
    """
    from calib.figures.base import PALE_COLOR

    lo, hi = float(hist.edges[0]), float(hist.edges[-1])
    counts = np.asarray(hist.counts, dtype=np.float64)
    y_axis, log = _y_range(counts, log_y)
    trace = _step_trace(hist.edges, counts, log, MAX_DRAWN_BINS, (lo, hi))
    color = PALE_COLOR if pale else KEPT_COLOR
    data = [{
        "type": "scatter", "name": "histogram", "mode": "lines", "line": {
            "shape": "hv", "width": 1, "color": color}, "fill": "tozeroy",
        "fillcolor": PALE_COLOR if pale else "rgba(31, 119, 180, 0.35)", "showlegend": False,
        "hovertemplate": HIST_HOVER, **trace,
    }]  # fmt: skip
    drawn_lines: list[Line] = []
    shapes: list[dict] = []
    if result is not None and not result.dead:
        amax = float(result.amax)
        drawn_lines.append(Line("clip", amax, CLIP_COLOR, "dash", 2, label=f"clip {fmt(amax)}"))
        for a, b in ((amax, hi), (lo, -amax)) if hist.is_signed else ((amax, hi),):
            if a < b:
                shapes.append({
                    "type": "rect", "name": "clipped tail", "xref": "x", "yref": "paper",
                    "x0": a, "x1": b, "y0": 0, "y1": 1, "fillcolor": CLIP_COLOR,
                    "opacity": 0.12, "line": {"width": 0}, "layer": "below",
                })  # fmt: skip
    for label, value in (others or {}).items():
        value = float(value)
        if np.isfinite(value) and value > 0:
            drawn_lines.append(Line(label, value, OTHER_COLOR, "dot", 1, 0.6, label=label))
    if picked is not None and np.isfinite(picked):
        drawn_lines.append(
            Line("picked", float(picked), PICKED_COLOR, "dashdot", 1.5, label="picked")
        )
    drawn_lines += [ln for ln in lines if np.isfinite(ln.x) and ln.x > 0]
    for ln in drawn_lines:
        shapes.append(_vline(ln, ln.x, ln.name, True))
        if hist.is_signed:
            shapes.append(_vline(ln, -ln.x, f"{ln.name} -", False))
    labelled = [ln for ln in drawn_lines if ln.label]
    places = place_labels(
        [(ln.x - lo) / (hi - lo or 1) for ln in labelled], [len(ln.label) for ln in labelled]
    )
    notes = [
        {
            "x": ln.x, "y": 1 - LABEL_ROW * row, "xref": "x", "yref": "paper",
            "text": ln.label, "showarrow": False, "yanchor": "top",
            "xanchor": "right" if side == "left" else "left",
            "font": {"size": 11, "color": ln.color},
            "opacity": 0.8 if ln.color == OTHER_COLOR else 1,
            "name": ln.name,
        }
        for ln, (row, side) in zip(labelled, places, strict=True)
    ]  # fmt: skip
    layout = base_layout(title, "activation", "count", height=height, hovermode="closest")
    layout["xaxis"].update(range=[lo, hi])
    layout["yaxis"].update(y_axis)
    layout.update(shapes=shapes, annotations=notes)
    if any(ln.legend for ln in drawn_lines):
        layout["legend"] = {"orientation": "v", "x": 1.01, "y": 1, "xanchor": "left",
                            "yanchor": "top"}  # fmt: skip
    return figure(data, layout)


def _kl_axis(shown: np.ndarray) -> tuple[dict, bool]:
    """The KL axis: log when every defined value shown is positive (the curve spans orders
    of magnitude), else linear from the values (a KL within rounding of 0 can dip below)."""
    span = decades(shown) if shown.size and (shown > 0).all() else None
    if span is not None:
        ticks = axis_ticks("kl", log=True)
        return {**LOG_AXIS, **ticks, "range": [math.log10(span[0]), math.log10(span[1])]}, True
    return {"type": "linear", **axis_ticks("kl")}, False


def kl_curve_figure(
    curves: SweepResult | Mapping[str, SweepResult],
    *,
    picked: int | None = None,
    x: str = "threshold",
    scaled: bool = False,
    colors: Mapping[str, str] | None = None,
    title: str | None = None,
    height: int = FIGURE_HEIGHT,
) -> go.Figure:
    """KL(P || Q) of every candidate, each curve's minimum marked (a diamond).

    Parameters
    ----------
    curves : SweepResult or mapping of str to SweepResult
        One sweep (its curve is the trace ``"KL"``) or several by name (Compare's).
    picked : int, optional
        A candidate of a single sweep, marked with a green circle (the trace ``"picked"``).
    x : {"threshold", "candidate"}
        The x axis: thresholds in activation units (common to every layout) or the
        candidates as the variant's loop counts them (Learn).
    scaled : bool
        Each curve divided by its largest finite value: variants' KLs are in different
        units (raw counts, a normalised histogram...), so only their shapes compare.

    Undefined (infinite) values are gaps; the KL axis is logarithmic when every defined
    value is positive. A long curve is drawn through each run's extremes.
    ValueError if ``picked`` is not a candidate.
    """
    single = isinstance(curves, SweepResult)
    sweeps = {"KL": curves} if single else dict(curves)
    data: list[dict] = []
    shown: list[np.ndarray] = []
    unit = "threshold %{x:.4g} (bin %{customdata})" if x == "threshold" else "candidate %{x}"
    for name, s in sweeps.items():
        kl = np.asarray(s.kl, dtype=np.float64)
        finite = np.isfinite(kl)
        if s.dead or not finite.any():
            continue
        top = kl[finite].max() if scaled else 1.0
        scale = top if top > 0 else 1.0
        y = kl / scale
        shown.append(y[finite])
        xs = s.thresholds if x == "threshold" else s.candidates.astype(np.float64)
        i = curve_indices(y)
        color = (colors or {}).get(name, KEPT_COLOR)
        xv = on_axis(xs, float(xs[0]), float(xs[-1])) if x == "threshold" else xs
        data.append({
            "type": "scatter", "name": name, "mode": "lines",
            **({} if single else {"legendgroup": name}),
            "x": xv[i].tolist(), "y": _gaps(y[i], False),
            "customdata": s.candidates[i].tolist(), "line": {"color": color, "width": 1.5},
            "hovertemplate": f"{unit}<br>KL %{{y:.4g}}<extra>{name}</extra>",
            "showlegend": not single,
        })  # fmt: skip
        if math.isfinite(s.min_kl):
            b = s.best_index
            data.append({
                "type": "scatter", "name": "minimum" if single else f"{name} minimum",
                "mode": "markers", "showlegend": False,
                **({} if single else {"legendgroup": name}),
                "x": [float(xs[b])], "y": [float(drawn(np.array([y[b]]))[0])],
                "customdata": [int(s.best)],
                "marker": {"color": CLIP_COLOR if single else color, "size": 11,
                           "symbol": "diamond"},
                "hovertemplate": f"minimum: {unit}<br>KL %{{y:.4g}}<extra>{name}</extra>",
            })  # fmt: skip
    if picked is not None:
        if not single:
            raise ValueError("picked: only on a single sweep's curve")
        s = sweeps["KL"]
        i = s.index_of(picked)
        xs = s.thresholds if x == "threshold" else s.candidates.astype(np.float64)
        data.append({
            "type": "scatter", "name": "picked", "mode": "markers", "showlegend": False,
            "x": [float(xs[i])], "y": [float(s.kl[i]) if np.isfinite(s.kl[i]) else None],
            "customdata": [int(picked)],
            "marker": {"color": PICKED_COLOR, "size": 14, "symbol": "circle-open",
                       "line": {"width": 2}},
            "hovertemplate": f"picked: {unit}<br>KL %{{y:.4g}}<extra></extra>",
        })  # fmt: skip
    y_axis, _ = _kl_axis(np.concatenate(shown) if shown else np.zeros(0))
    if title is None:
        title = "KL divergence of each candidate" if single else "Each variant's KL curve"
    x_title = "threshold (activation units)" if x == "threshold" else (
        "candidate (as the variant's loop counts it)")  # fmt: skip
    y_title = "KL / largest KL" if scaled else "KL(P‖Q)"
    layout = base_layout(title, x_title, y_title, height=height, hovermode="closest")
    layout["yaxis"].update(y_axis)
    return figure(data, layout)


def _pq_traces(pq: PQ, log: bool, max_bins: int) -> tuple[dict, dict]:
    """P and Q of one candidate, each scaled to sum 1, as step lines on one x."""
    out = []
    edges = np.asarray(pq.edges, dtype=np.float64)
    for values in (pq.p, pq.q):
        v = np.asarray(values, dtype=np.float64)
        total = v.sum()
        out.append(_step_trace(edges, v / total if total > 0 else v, log, max_bins))
    return out[0], out[1]


PQ_HOVER = (
    "[%{customdata[0]:.4g}, %{customdata[1]:.4g})<br>%{fullData.name} %{y:.4g}<extra></extra>"
)


def _pq_data(p: dict, q: dict, axes: dict | None = None) -> list[dict]:
    axes = axes or {}
    return [
        {"type": "scatter", "name": "P", "mode": "lines", "fill": "tozeroy",
         "line": {"shape": "hv", "width": 1, "color": KEPT_COLOR},
         "fillcolor": "rgba(31, 119, 180, 0.35)", "hovertemplate": PQ_HOVER, **p, **axes},
        {"type": "scatter", "name": "Q", "mode": "lines",
         "line": {"shape": "hv", "width": 2, "color": Q_COLOR, "dash": "dash"},
         "hovertemplate": PQ_HOVER, **q, **axes},
    ]  # fmt: skip


def pq_title(prefix: str, pq: PQ, candidate: int | None = None, kl_scale: float = 1.0) -> str:
    """ "<prefix>P and Q at <threshold> (bin <c>, KL <kl>)": the one wording of the title;
    the KL as :func:`calib.numbers.fmt_kl` writes it (``kl_scale``: the sweep's)."""
    where = f"bin {candidate}, " if candidate is not None else ""
    return f"{prefix}P and Q at {fmt(pq.threshold)} ({where}KL {fmt_kl(pq.kl, kl_scale)})"


def pq_figure(pq: PQ, log_y: bool = False, *, title: str | None = None,
              height: int = FIGURE_HEIGHT) -> go.Figure:  # fmt: skip
    """P (clipped reference) and Q (quantized, expanded back) of one candidate.

    Both are scaled to sum 1 for display, whatever normalisation the variant uses. P is a
    filled outline and Q a dashed line drawn over it, so that both show where they agree.
    ``title`` replaces the default "P and Q at threshold ... (KL ...)".
    """
    p, q = _pq_traces(pq, False, MAX_DRAWN_BINS // 2)  # half a page wide
    values = np.array([v for v in (*p["y"], *q["y"]) if v is not None], dtype=np.float64)
    y_axis, log = _y_range(values, log_y, "probability")
    if log:  # empty bins are gaps on a log axis
        p, q = _pq_traces(pq, True, MAX_DRAWN_BINS // 2)
    layout = base_layout(title or pq_title("", pq), "activation", "probability",
                         height=height, hovermode="closest")  # fmt: skip
    layout["yaxis"].update(y_axis)
    return figure(_pq_data(p, q), layout)


def scrub_candidates(result: SweepResult, picked: int | None = None,
                     most: int = MAX_SCRUB_STEPS) -> np.ndarray:  # fmt: skip
    """The candidates a scrub figure embeds: at most about ``most``, evenly spread, the
    first, the last, the chosen and ``picked`` among them.

    >>> from calib.sweep import kl_sweep
    >>> r = kl_sweep(np.arange(1.0, 1001.0), target_bins=8)
    >>> c = scrub_candidates(r, picked=501, most=5)
    >>> c.tolist()
    [8, 256, 501, 504, 751, 999]
    """
    keep = (result.best_index,) + (() if picked is None else (result.index_of(picked),))
    return result.candidates[spread_indices(result.candidates.size, most, keep)]


def _uniform_step(pq: PQ, log: bool, max_bins: int) -> dict | None:
    """P and Q of one candidate as two step lines on evenly spaced bins: the first edge
    ``x0``, the width ``dx`` and the values (each scaled to sum 1, :data:`SCRUB_DIGITS`
    significant digits), or None when the bins are not evenly spaced."""
    edges = np.asarray(pq.edges, dtype=np.float64)
    ys = []
    for values in (pq.p, pq.q):
        v = np.asarray(values, dtype=np.float64)
        total = v.sum()
        e, y = step_points(edges, v / total if total > 0 else v, max_bins)
        ys.append(y)
    # the last drawn bin may join fewer bins than the others: it is drawn as wide as
    # they are (at most one drawn bin, a SCRUB_BINS-th of the axis, past P's last edge)
    width = np.diff(e)
    if not np.allclose(width[:-1], width[0], rtol=1e-9, atol=0) or width[-1] > width[0] * (
        1 + 1e-9
    ):
        return None
    out: dict[str, Any] = {"x0": float(e[0]), "dx": float(width[0])}
    # 2% past the last edge: the folded tail's bin there stays in sight
    end = float(e[0] + width[0] * (e.size - 1))
    out["x_range"] = [float(e[0]), end + 0.02 * (end - float(e[0]))]
    every = np.concatenate(ys)
    floor = _floor(every) if log else 0.0
    span = decades(every) if log else None
    top = float(np.nanmax(np.where(np.isfinite(every), every, 0.0))) or 1.0
    out["y_range"] = [math.log10(span[0]), math.log10(span[1])] if span else [0.0, 1.05 * top]
    for name, y in zip("pq", ys, strict=True):
        empty = ~np.isfinite(y) | (y <= 0)
        out[name] = _round(np.where(empty, floor, y), SCRUB_DIGITS).tolist()
    return out


SCRUB_DIGITS = 4
"""Significant digits of a scrub step's P and Q: a ten-thousandth of a 300-pixel chart."""


def _round(v: np.ndarray, digits: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(v)))
    scale = 10.0 ** (digits - 1 - np.where(np.isfinite(mag), mag, 0.0))
    return np.round(v * scale) / scale


def _scrub_hover(name: str, dx: float) -> str:
    return f"bin [%{{x:.4g}}, %{{x:.4g}} + {fmt(dx)})<br>{name} %{{y:.4g}}<extra></extra>"


SCRUB_TITLE = "KL curve, and P and Q at the candidate you pick (the slider under it)"


def _pick_label(result: SweepResult, pq: PQ, c: int) -> str:
    """A step's label, shown by the slider as it moves: "bin 2050, 195.7, KL 5.976e+06"."""
    return f"bin {c}: threshold {fmt(pq.threshold)}, KL {fmt_kl(pq.kl, result.kl_scale)}"


def scrub_figure(
    result: SweepResult,
    picked: int | None = None,
    log_y: bool = False,
    *,
    most: int = MAX_SCRUB_STEPS,
    height: int = FIGURE_HEIGHT + 90,
) -> go.Figure:
    """The KL curve (left) and the picked candidate's P and Q (right), with a slider
    inside the figure over :func:`scrub_candidates`: each step restyles P, Q and the
    picked mark in the browser (plotly's ``"restyle"`` method), with no server round trip.

    The slider starts at ``picked`` (the server's pick, which a link keeps; the widest
    candidate by default) and shows the step's candidate, threshold and KL as it moves.
    Each step's data are P and Q at its candidate (``result.distributions``), at most
    :data:`SCRUB_BINS` evenly spaced bins each, sent as a first edge, a width and the
    values (:data:`SCRUB_DIGITS` significant digits), and the picked mark's point on the
    curve (the trace ``"picked"``). A histogram whose bins are not evenly spaced embeds
    only the picked candidate (no slider). ValueError if ``picked`` is not a candidate.
    """
    if result.dead:
        raise ValueError("result: a dead sweep has no candidates to scrub")
    picked = int(result.candidates[-1]) if picked is None else int(picked)
    result.index_of(picked)  # ValueError if it is not a candidate
    curve = kl_curve_figure(result, picked=picked).to_dict()
    data = [dict(t) for t in curve["data"] if t["name"] != "picked"]
    mark = next(t for t in curve["data"] if t["name"] == "picked")
    n = len(data)
    marks = scrub_candidates(result, picked, most)
    pqs = {int(c): result.distributions(int(c)) for c in marks}
    log = log_y and any((np.asarray(pq.p) > 0).any() for pq in pqs.values())
    steps: list[dict] = []
    frames: list[dict] = []
    first = None
    for c, pq in pqs.items():
        u = _uniform_step(pq, log, SCRUB_BINS)
        if u is None:
            steps, frames, first = [], [], None
            break
        if c == picked:
            first = u
        i = result.index_of(c)
        kl = float(result.kl[i])
        name = str(c)
        frames.append(
            {
                "name": name,
                "data": [
                    {
                        "x0": u["x0"],
                        "dx": u["dx"],
                        "y": u["p"],
                        "hovertemplate": _scrub_hover("P", u["dx"]),
                    },
                    {
                        "x0": u["x0"],
                        "dx": u["dx"],
                        "y": u["q"],
                        "hovertemplate": _scrub_hover("Q", u["dx"]),
                    },
                    {
                        "x": [float(result.thresholds[i])],
                        "y": [kl if math.isfinite(kl) else None],
                        "customdata": [c],
                    },
                ],
                "traces": [n, n + 1, n + 2],
                "layout": {"xaxis2": {"range": u["x_range"]}, "yaxis2": {"range": u["y_range"]}},
            }
        )
        steps.append({
            "method": "animate", "label": _pick_label(result, pq, c),
            "args": [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": False},
                              "transition": {"duration": 0}}],
        })  # fmt: skip
    pq = pqs.get(picked) or result.distributions(picked)
    if first is not None:
        x_range, y_range = first["x_range"], first["y_range"]
        p = {"x0": first["x0"], "dx": first["dx"], "y": first["p"],
             "hovertemplate": _scrub_hover("P", first["dx"])}  # fmt: skip
        q = {"x0": first["x0"], "dx": first["dx"], "y": first["q"],
             "hovertemplate": _scrub_hover("Q", first["dx"])}  # fmt: skip
    else:
        p, q = _pq_traces(pq, log, SCRUB_BINS)
    pq_data = _pq_data(p, q, axes={"xaxis": "x2", "yaxis": "y2"})
    for tr, hover in zip(pq_data, (p, q), strict=True):
        tr["hovertemplate"] = hover.get("hovertemplate", PQ_HOVER)
    data += [*pq_data, mark]
    layout = base_layout(SCRUB_TITLE, "threshold (activation units)", "KL(P‖Q)",
                         height=height, hovermode="closest")  # fmt: skip
    t0, t1 = float(result.thresholds[0]), float(result.thresholds[-1])
    pad = 0.02 * (t1 - t0 or 1.0)  # the axis stays put as the picked mark moves
    layout["xaxis"].update(domain=[0, 0.45], range=[t0 - pad, t1 + pad])
    layout["yaxis"] = {**curve["layout"]["yaxis"]}
    layout["xaxis2"] = {
        "domain": [0.55, 1],
        "anchor": "y2",
        "ticklabeloverflow": "allow",
        "title": {"text": "activation (P and Q at the picked candidate)"},
        **({"range": x_range} if first is not None else {}),
    }
    layout["yaxis2"] = {
        "anchor": "x2",
        "ticklabeloverflow": "allow",
        "title": {"text": "probability"},
        **(LOG_AXIS if log else {}),
        **axis_ticks("probability", log=log),
        **({"range": y_range} if first is not None else {}),
    }
    if steps:
        layout["margin"] = {**layout["margin"], "b": 150}
        layout["sliders"] = [{
            "name": "candidate", "active": int(np.flatnonzero(marks == picked)[0]),
            "steps": steps,
            "currentvalue": {"prefix": "Picked: ", "font": {"size": 13, "color": "#31333f"}},
            "pad": {"t": 58, "b": 0}, "len": 1.0, "x": 0, "y": 0, "yanchor": "top",
            "transition": {"duration": 0}, "ticklen": 3, "minorticklen": 0,
            # the steps' labels are long: the current one is shown above the rail
            "font": {"size": 9, "color": "rgba(0, 0, 0, 0)"},
        }]  # fmt: skip
    else:
        layout["height"] = height - 90
        layout["title"]["text"] = f"KL curve, and {pq_title('', pq, picked, result.kl_scale)}"
    return figure(data, layout, frames)
