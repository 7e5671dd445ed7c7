"""Plotly figures of convergence while collecting (``calib.convergence``); no Streamlit.

Two questions, one figure each. For one tensor: how its amax moved as batches came in,
one line per traced method (:func:`amax_figure`). For the whole file: the share of tensors
whose amax already sits within the tolerance of its final value, against samples seen
(:func:`settled_share_figure`). A method that reaches 100% only at the last batch was still
moving when the data ran out.

What tests read back: each method's line is the trace named after the method
(``"max"``, ``"percentile"``, ``"entropy:seed"``...), its points at the samples seen after
each batch; on the amax figure the trace ``"<method> settled"`` marks the batch from which
the method stayed within the tolerance; on the share figure the line at 95% is the shape
named ``"95%"``. Colours follow Compare's: KL variants solid, other methods dotted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from calib.convergence import Settling
from calib.figures.base import LAYERS_HEIGHT, OTHER_COLOR, base_layout
from calib.figures.compare import line_style
from calib.io import Trace
from calib.spec import Spec

__all__ = ["amax_figure", "log_ticks", "method_line", "settled_share_figure"]


def method_line(method: str) -> dict:
    """A traced method's line: ``entropy:<variant>`` as that variant's, others as methods'
    (read by :meth:`calib.Spec.parse`; a name it does not read is drawn as a method's)."""
    try:
        spec = Spec.parse(method)
    except ValueError:
        return line_style(method, "method")
    if spec.method == "entropy":
        return line_style(spec.variant, "variant")
    return line_style(spec.method, "method")


def amax_figure(
    layer: str,
    trace: Trace,
    settled: Mapping[str, int | None],
    *,
    tol: float,
) -> go.Figure:
    """Each method's amax after each batch of one tensor, against the samples seen so far.

    Parameters
    ----------
    layer : str
        The tensor's name (the title).
    trace : Trace
        Its trace (``calib.load_convergence(path)[layer]``).
    settled : mapping of str to int or None
        Per method, the batch index from which it stayed within ``tol`` of its final value
        (``calib.convergence.settled_at``); None draws no mark.
    tol : float
        The tolerance ``settled`` used, for the hover text.

    The amax axis is logarithmic, so every method moves on the same relative scale (1% is
    the same height at 12 as at 196). Zeros (nothing but zeros seen yet) and NaNs (the
    method could not run) are gaps.
    """
    samples = np.asarray(trace.samples)
    traces, drawn = [], []
    for method, amax in trace.amax.items():
        a = np.asarray(amax, dtype=np.float64)
        y = np.where(np.isfinite(a) & (a > 0), a, np.nan)
        drawn.append(y)
        line = method_line(method)
        traces.append(
            go.Scatter(
                x=samples, y=y, name=method, mode="lines+markers", line=line,
                marker={"size": 5, "color": line["color"]}, legendgroup=method,
                hovertemplate=f"{method}<br>%{{x}} samples: amax %{{y:.5g}}<extra></extra>",
            )
        )  # fmt: skip
        j = settled.get(method)
        if j is not None:
            traces.append(
                go.Scatter(
                    x=[samples[j]], y=[y[j]], name=f"{method} settled", mode="markers",
                    legendgroup=method, showlegend=False,
                    marker={"size": 12, "color": "rgba(0,0,0,0)",
                            "line": {"color": line["color"], "width": 2}},
                    hovertemplate=f"{method}: within {tol:.0%} of its final amax from "
                    "%{x} samples on<extra></extra>",
                )
            )  # fmt: skip
    layout = base_layout(
        f"amax after each batch: {layer}", "samples seen", "amax", log_y=True,
        height=LAYERS_HEIGHT, hovermode="closest",
    )  # fmt: skip
    ticks = log_ticks(np.concatenate(drawn) if drawn else np.array([]))
    if ticks:  # else plotly's own; over decades it writes 200 as a bare "2"
        layout["yaxis"].update(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return go.Figure(data=traces, layout=layout)


def log_ticks(values: np.ndarray) -> list[float]:
    """Ticks 1, 2, 5 per decade that fall within the positive finite ``values``' range
    (empty when fewer than two do: then the range is narrow and plotly's ticks read well).

    >>> log_ticks(np.array([4.6, 12.3, 195.8]))
    [5.0, 10.0, 20.0, 50.0, 100.0]
    """
    v = values[np.isfinite(values) & (values > 0)]
    if v.size == 0:
        return []
    lo, hi = float(v.min()), float(v.max())
    ticks = [
        m * 10.0**e
        for e in range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1)
        for m in (1, 2, 5)
        if lo <= m * 10.0**e <= hi
    ]
    return ticks if len(ticks) >= 2 else []


def settled_share_figure(
    shares: Mapping[str, tuple[np.ndarray, np.ndarray]],
    table: Sequence[Settling],
    *,
    tol: float,
) -> go.Figure:
    """Per method, the share of tensors settled after each batch (in %), against samples.

    Parameters
    ----------
    shares : mapping of str to (samples, share)
        ``calib.convergence.settled_share(traces, method, tol)`` per method.
    table : sequence of Settling
        ``calib.convergence.settling_table(traces, tol)``: each method's samples until
        95% and all settled, in the hover text and the legend.
    tol : float
        The tolerance both used (the y axis title says it).
    """
    until = {row.method: row for row in table}
    traces = []
    for method, (samples, share) in shares.items():
        row = until.get(method)
        note = f" (95% at {_n(row.samples_95)}, all at {_n(row.samples_all)})" if row else ""
        traces.append(
            go.Scatter(
                x=np.asarray(samples), y=100.0 * np.asarray(share, dtype=np.float64),
                name=method, mode="lines+markers", line=method_line(method), marker={"size": 5},
                hovertemplate=f"{method}{note}<br>%{{x}} samples: %{{y:.1f}}%<extra></extra>",
            )
        )  # fmt: skip
    shapes = [
        {
            "type": "line", "name": "95%", "xref": "paper", "yref": "y", "x0": 0, "x1": 1,
            "y0": 95, "y1": 95, "line": {"color": OTHER_COLOR, "width": 1, "dash": "dash"},
        }
    ]  # fmt: skip
    layout = base_layout(
        "Tensors settled after each batch",
        "samples seen",
        f"within {tol:.0%} of the final amax (%)",
        height=LAYERS_HEIGHT,
        hovermode="closest",
        shapes=shapes,
    )
    layout["yaxis"]["range"] = [0, 102]
    # below the plot: the share figure sits in half the page's width, beside its table
    layout["legend"] = {"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0}
    return go.Figure(data=traces, layout=layout)


def _n(samples: int | None) -> str:
    return "never" if samples is None else str(samples)
