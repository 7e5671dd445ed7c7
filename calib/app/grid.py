"""Layers' small multiples: every tensor's histogram in a grid, a page at a time.

The UI layer (``pages/2_Layers.py`` places it under the table). The panels follow the
table's order (``calib.report.worst_first``), :data:`GRID_PAGE` to a page, drawn as one
plotly figure (``calib.figures.grid``) kept with ``st.cache_resource`` per (file, settings,
page), so a page seen before is a look-up. The section is a fragment: turning a page reruns
the grid alone, not the table above it. A click on a panel opens that tensor in Explore,
as selecting a table row does. Widget keys start with ``layers_grid``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import streamlit as st

from calib import report
from calib.app import state
from calib.app.layers import EXPLORE, Layers, Settings, explore_params
from calib.figures.grid import grid_figure, layer_from_selection
from calib.histogram import Histogram

__all__ = ["GRID_PAGE", "page_count", "page_label", "page_rows", "small_multiples"]

GRID_PAGE = 24
"""Panels on one page of the grid: four rows of six."""
PAGE_KEY = "layers_grid_page"
CHART_KEY = "layers_grid"


def page_count(n: int, per_page: int = GRID_PAGE) -> int:
    """Pages for ``n`` tensors (one, empty, when there are none)."""
    return max(1, math.ceil(n / per_page))


def page_rows(
    ordered: Sequence[report.LayerRow], page: int, per_page: int = GRID_PAGE
) -> Sequence[report.LayerRow]:
    """The rows on page ``page`` (from 0) of the table's order."""
    return ordered[page * per_page : (page + 1) * per_page]


def page_label(page: int, n: int, per_page: int = GRID_PAGE) -> str:
    """What the page selector shows: ``"25–48 of 48"``."""
    first = page * per_page + 1
    return f"{first}–{min(n, first + per_page - 1)} of {n}"


@st.cache_resource(show_spinner=False, max_entries=32)
def _page_figure(
    file_key: str,
    settings_key: tuple,
    page: int,
    _rows: Sequence[report.LayerRow],
    _hists: Mapping[str, Histogram],
) -> go.Figure:
    # keyed by the file's and the settings' keys (which fix the order), never by hashing
    return grid_figure(_rows, _hists)


def _choose_page(n: int) -> int:
    pages = page_count(n)
    if pages == 1:
        st.session_state.pop(PAGE_KEY, None)
        return 0
    # the labels are the options: another file's count makes other values, which the
    # browser draws afresh (with the same indices it kept showing the old file's labels)
    labels = [page_label(p, n) for p in range(pages)]
    if st.session_state.get(PAGE_KEY) not in labels:  # another file: its first page
        st.session_state[PAGE_KEY] = labels[0]
    picked = st.selectbox(
        "Page", labels, key=PAGE_KEY, persist_state=state.KEEP,
        help=f"{GRID_PAGE} to a page, in the table's order (worst first).",
    )  # fmt: skip
    return labels.index(picked)


@st.fragment
def small_multiples(layers: Layers, s: Settings, ordered: Sequence[report.LayerRow]) -> None:
    """The grid section: a page selector, the page's panels; a click opens Explore."""
    st.subheader("Every tensor at a glance")
    st.caption(
        "Each tensor's histogram (log counts; |x|, or signed as collected) with its clip "
        "and its max, in the table's order, coloured by its first flag. Click a panel to "
        "open that tensor in Explore."
    )
    page = _choose_page(len(ordered))
    rows = page_rows(ordered, page)
    if not rows:
        st.info("No tensors to draw.")
        return
    fig = _page_figure(layers.key, s.key, page, rows, layers.hists)
    event = st.plotly_chart(
        fig,
        key=CHART_KEY,
        on_select="rerun",
        selection_mode="points",
        config={"displayModeBar": False},
    )
    layer = layer_from_selection(event, [r.layer for r in rows])
    if layer is not None:
        st.switch_page(EXPLORE, query_params=explore_params(layers, s, layer))
