"""Plotly figures of the Learn page: one candidate of a KL sweep, step by step.

Bins are drawn on a bin axis where bin j covers [j, j + 1), so the seed's fractional
level boundaries (k * i / T) sit exactly where they cut. Traces that tests read back
carry names: "kept", "clipped", "folded tail" (step 1), "count" (step 2), "P", "Q" (step 4),
"level mass" (step 3), "term" and "+1" (step 5), "KL", "minimum", "candidate" (step 6).
No Streamlit here.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from calib.figures.base import (
    CLIP_COLOR,
    KEPT_COLOR,
    LEARN_HEIGHT,
    PICKED_COLOR,
    Q_COLOR,
    TAIL_COLOR,
    base_layout,
)
from calib.figures.sweep import kl_curve_figure
from calib.learn import (
    Fold,
    LevelTable,
    RawVsNormalised,
    ReluSpike,
    SymmetricDemo,
    Window,
)
from calib.numbers import axis_ticks, fmt, fmt_kl
from calib.sweep import PQ, SweepResult

__all__ = [
    "expand_figure",
    "fold_figure",
    "levels_figure",
    "quantized_figure",
    "raw_vs_normalised_figure",
    "relu_figure",
    "sweep_figure",
    "symmetric_figure",
    "terms_figure",
]


def _layout(
    fig: go.Figure, title: str, x_title: str, y_title: str, labels_above: bool = False
) -> go.Figure:
    """The shared layout; ``labels_above`` leaves a row above the plot for level labels."""
    layout = base_layout(title, x_title, y_title, height=LEARN_HEIGHT, bargap=0.05)
    if labels_above:
        layout["margin"] = {**layout["margin"], "t": 70}
        layout["legend"] = {**layout["legend"], "y": 1.09}
    return fig.update_layout(layout)


def _ranges(edges: np.ndarray) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    return np.stack([e[:-1], e[1:]], axis=1)


def _boundaries(fig: go.Figure, levels: LevelTable) -> None:
    """Dashed lines at the level boundaries, the level's number above its middle."""
    bounds = np.concatenate([levels.start, levels.end[-1:]])
    for x in bounds:
        fig.add_vline(x=float(x), line={"color": "#555", "width": 1, "dash": "dot"}, name="level")
    if levels.level.size <= 40:
        for k, s, e in zip(levels.level, levels.start, levels.end, strict=True):
            fig.add_annotation(
                x=float(s + e) / 2, y=1.0, yref="paper", text=f"L{k}", showarrow=False,
                yanchor="bottom", font={"size": 10, "color": "#555"},
            )  # fmt: skip


def fold_figure(counts: np.ndarray, edges: np.ndarray, f: Fold, log_y: bool = False) -> go.Figure:
    """The histogram as the variant sweeps it: kept bins, clipped bins, and the clipped
    mass stacked on the edge bin(s) it is folded into."""
    c = np.asarray(counts, dtype=np.float64)
    j = np.arange(c.size)
    inside = (j >= f.window.a) & (j < f.window.b)
    folded = np.zeros(c.size)
    folded[f.window.a] += f.tail_lo
    folded[f.window.b - 1] += f.tail_hi
    hover = "bin %{x:.0f}: [%{customdata[0]:.4g}, %{customdata[1]:.4g})<br>%{y:.6g}"
    fig = go.Figure()
    for name, y, color in (
        ("kept", np.where(inside, c, 0.0), KEPT_COLOR),
        ("clipped", np.where(inside, 0.0, c), CLIP_COLOR),
        ("folded tail", folded, TAIL_COLOR),
    ):
        fig.add_trace(
            go.Bar(
                x=j + 0.5, y=y, width=1.0, name=name, marker_color=color,
                customdata=_ranges(edges), hovertemplate=hover + f"<extra>{name}</extra>",
            )
        )  # fmt: skip
    fig.update_layout(barmode="stack")
    title = f"P: bins {f.window.a}..{f.window.b - 1} kept, the clipped mass folded in"
    _layout(fig, title, "bin", "count")
    _count_axis(fig, c, log_y)
    return fig


def _count_axis(fig: go.Figure, counts: np.ndarray, log_y: bool) -> None:
    """The count axis (``calib.numbers.axis_ticks``): SI ticks for counts of 1 or more,
    ``~g`` for fractions; logarithmic with ``log_y``."""
    c = np.asarray(counts, dtype=np.float64)
    lo = float(c[c > 0].min()) if (c > 0).any() else None
    fig.update_yaxes(axis_ticks("count", log=log_y, lo=lo))


def levels_figure(
    counts: np.ndarray, w: Window, levels: LevelTable, log_y: bool = False
) -> go.Figure:
    """The kept bins' counts (without the folded tail, which no level takes) and the
    level boundaries."""
    j = w.a + np.arange(w.size)
    fig = go.Figure(
        go.Bar(
            x=j + 0.5, y=counts, width=1.0, name="count", marker_color=KEPT_COLOR,
            hovertemplate="bin %{x:.0f}: %{y:.6g}<extra></extra>",
        )
    )  # fmt: skip
    _boundaries(fig, levels)
    _layout(fig, f"{levels.level.size} levels over {w.size} bins", "bin", "count", True)
    _count_axis(fig, counts, log_y)
    return fig


def quantized_figure(levels: LevelTable, log_y: bool = False) -> go.Figure:
    """Each level's mass: the quantized histogram."""
    text = [fmt(m) for m in levels.mass]
    fig = go.Figure(
        go.Bar(
            x=levels.level, y=levels.mass, name="level mass", marker_color=Q_COLOR,
            text=text, textposition="outside", customdata=np.array(levels.members)[:, None],
            hovertemplate="level %{x}: mass %{y:.6g}<br>bins %{customdata[0]}<extra></extra>",
        )
    )  # fmt: skip
    _layout(fig, "The quantized histogram: one mass per level", "level", "mass")
    fig.update_xaxes(axis_ticks("index", n=levels.level.size))
    _count_axis(fig, levels.mass, log_y)
    return fig


def expand_figure(pq: PQ, w: Window, levels: LevelTable, log_y: bool = False) -> go.Figure:
    """P against Q before smoothing: each level's mass spread back over its bins."""
    j = w.a + np.arange(pq.p.size) + 0.5
    fig = go.Figure()
    for name, y, color, offset in (
        ("P", pq.p_raw, KEPT_COLOR, -0.2),
        ("Q", pq.q_raw, Q_COLOR, 0.2),
    ):
        fig.add_trace(
            go.Bar(
                x=j + offset, y=y, width=0.4, name=name, marker_color=color,
                hovertemplate=f"bin %{{x:.0f}}: {name} %{{y:.6g}}<extra></extra>",
            )
        )  # fmt: skip
    _boundaries(fig, levels)
    _layout(fig, "Q expanded over the bins, next to P", "bin", "P, Q", True)
    _count_axis(fig, np.concatenate([pq.p_raw, pq.q_raw]), log_y)
    return fig


def terms_figure(pq: PQ, w: Window, plus_one: np.ndarray) -> go.Figure:
    """Each bin's KL term; bins that pay "+1 where q = 0" in their own colour; an infinite
    term (q = 0 where the variant gives inf) marked above the axis."""
    j = w.a + np.arange(pq.p.size) + 0.5
    t = np.asarray(pq.terms, dtype=np.float64)
    finite = np.isfinite(t)
    ordinary = finite & ~plus_one
    fig = go.Figure()
    colors = np.where(t >= 0, KEPT_COLOR, PICKED_COLOR)
    fig.add_trace(
        go.Bar(
            x=j[ordinary], y=t[ordinary], width=1.0, name="term", marker_color=colors[ordinary],
            hovertemplate="bin %{x:.0f}: p log(p/q) = %{y:.6g}<extra></extra>",
        )
    )  # fmt: skip
    if plus_one.any():
        fig.add_trace(
            go.Bar(
                x=j[plus_one], y=t[plus_one], width=1.0, name="+1", marker_color=CLIP_COLOR,
                hovertemplate="bin %{x:.0f}: q = 0, adds 1<extra></extra>",
            )
        )  # fmt: skip
    for x, term in zip(j[~finite], t[~finite], strict=True):
        fig.add_annotation(x=float(x), y=0, text=fmt(term), showarrow=True, arrowhead=2, ay=-30)
    _layout(fig, f"Each bin's term; they sum to KL = {fmt_kl(pq.kl)}", "bin", "p log(p / q)")
    fig.update_yaxes(axis_ticks("kl"))
    return fig


def sweep_figure(
    result: SweepResult, candidate: int | None = None, penalty: np.ndarray | None = None
) -> go.Figure:
    """Every candidate's KL, the minimum marked, the lesson's candidate as a green circle
    (``calib.figures.sweep.kl_curve_figure`` on the candidate axis, the curve's one home).

    With ``penalty`` (``calib.learn.scale_penalty``) the KL is also drawn split into the
    penalty and the rest.
    """
    fig = kl_curve_figure(
        result, picked=candidate, x="candidate", height=LEARN_HEIGHT,
        title="KL of every candidate",
    )  # fmt: skip
    if penalty is not None:
        x = result.candidates
        kl = np.where(np.isfinite(result.kl), result.kl, np.nan)
        hover = "candidate %{x}<br>%{y:.6g}"
        fig.add_trace(
            go.Scatter(
                x=x, y=penalty, name="scale penalty", mode="lines",
                line={"color": CLIP_COLOR, "width": 1.5, "dash": "dash"},
                hovertemplate=hover + "<extra>penalty</extra>",
            )
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=x, y=kl - penalty, name="shape (KL - penalty)", mode="lines",
                line={"color": Q_COLOR, "width": 1.5, "dash": "dot"},
                hovertemplate=hover + "<extra>shape</extra>",
            )
        )  # fmt: skip
        linear = {"type": "linear", "range": None, "dtick": None, **axis_ticks("kl")}
        fig.update_layout(yaxis=linear)
    return fig


def relu_figure(r: ReluSpike) -> go.Figure:
    """The chosen clip against the share of exact zeros."""
    x = [100 * f for f in r.fractions]
    fig = go.Figure()
    # The last two agree to a few thousandths: the one below is a wide pale band and the
    # one above a thin dotted line with its own markers, so that neither hides the other.
    for name, y, line, marker in (
        ("seed", r.seed, {"color": CLIP_COLOR, "width": 2}, {"size": 7}),
        ("seed with bins[0] = bins[1]", r.seed_fixed,
         {"color": PICKED_COLOR, "width": 9}, {"size": 13, "opacity": 0.45}),
        ("ModelOpt", r.modelopt, {"color": KEPT_COLOR, "width": 2, "dash": "dot"},
         {"size": 7, "symbol": "x"}),
    ):  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=x, y=y, name=name, mode="lines+markers", line=line, marker=marker,
                opacity=0.45 if line["width"] > 2 else 1.0,
                hovertemplate="%{x:.0f}% zeros: clip %{y:.4g}<extra>" + name + "</extra>",
            )
        )  # fmt: skip
    _layout(fig, "Clip against the share of exact zeros", "exact zeros (% of values)", "clip")
    fig.update_yaxes(rangemode="tozero")
    return fig


def raw_vs_normalised_figure(r: RawVsNormalised) -> go.Figure:
    """The seed's KL on raw counts (divided by the total to share an axis) and on the
    normalised histogram; each minimum marked."""
    fig = go.Figure()
    runs = (("raw counts, KL / total", r.raw, r.total, CLIP_COLOR),
            ("normalised", r.normalised, 1.0, KEPT_COLOR))  # fmt: skip
    for name, res, scale, color in runs:
        y = np.where(np.isfinite(res.kl), res.kl / scale, np.nan)
        fig.add_trace(
            go.Scatter(
                x=res.candidates, y=y, name=name, mode="lines+markers",
                line={"color": color}, hovertemplate="%{x}: %{y:.5g}<extra>" + name + "</extra>",
            )
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=[res.best], y=[res.min_kl / scale], name=f"minimum ({name})", mode="markers",
                marker={"color": color, "size": 13, "symbol": "diamond"}, showlegend=False,
                hovertemplate="minimum at %{x}<extra></extra>",
            )
        )  # fmt: skip
    _layout(fig, "The same histogram, two scales", "candidate (kept bins)", "KL")
    fig.update_yaxes(axis_ticks("kl", log=True))
    return fig


def symmetric_figure(d: SymmetricDemo) -> go.Figure:
    """The signed histogram, with each symmetric clip drawn at -amax and +amax."""
    h = d.signed_hist
    x = h.centers
    fig = go.Figure(
        go.Bar(
            x=x, y=h.counts, width=float(h.edges[1] - h.edges[0]), name="x",
            marker_color="#999", hovertemplate="x %{x:.3g}: %{y}<extra></extra>",
        )
    )  # fmt: skip
    for name, amax, color in (
        ("seed on |x|", d.amax_abs, CLIP_COLOR),
        ("MXNet window on x", d.amax_signed, KEPT_COLOR),
    ):
        for sign in (-1, 1):
            fig.add_vline(x=sign * amax, line={"color": color, "dash": "dash"}, name=name)
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="lines", name=f"{name}: ±{amax:.3g}",
                       line={"color": color, "dash": "dash"})
        )  # fmt: skip
    _layout(fig, "One clip for both signs", "x", "count")
    positive = h.counts[h.counts > 0]
    fig.update_yaxes(
        axis_ticks("count", log=True, lo=float(positive.min()) if positive.size else None)
    )
    return fig
