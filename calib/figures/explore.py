"""Explore's figures: the histogram with every clip, the KL curve beside the "Picked" P
and Q (one figure, scrubbed in the browser), and the chosen candidate's P and Q.

Each is a drawn idea of ``calib.figures.sweep``, the home every page draws it from; this
module only picks what Explore shows of a :class:`calib.explore.View`. No Streamlit.
"""

from __future__ import annotations

import plotly.graph_objects as go

from calib.explore import View
from calib.figures.sweep import histogram_figure, pq_figure, pq_title, scrub_figure

__all__ = ["chosen_figure", "explore_histogram", "picked_figure"]


def explore_histogram(view: View, log_y: bool, picked: int | None = None) -> go.Figure:
    """The histogram, the chosen clip, the other calibrators' lines and the picked one."""
    r = view.result
    at = None if picked is None or r.dead else float(r.thresholds[r.index_of(picked)])
    return histogram_figure(view.hist, r, log_y, others=view.others(), picked=at)


def chosen_figure(view: View, log_y: bool) -> go.Figure:
    """P and Q at the sweep's chosen candidate."""
    r = view.result
    title = pq_title("Chosen: ", view.chosen, int(r.best), r.kl_scale)
    return pq_figure(view.chosen, log_y, title=title)


def picked_figure(view: View, picked: int, log_y: bool) -> go.Figure:
    """The KL curve and the picked candidate's P and Q, scrubbed in the browser."""
    return scrub_figure(view.result, picked, log_y)
