"""Every chart of the app goes through :func:`plot`: plotly's element with the one toolbar
(``calib.figures.base.chart_config``: box zoom, pan, a PNG named after the layer and the
view). No other chart element is used (tests/test_pages_charts.py walks every page)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from calib.figures.base import chart_config, png_name

__all__ = ["plot"]


def plot(fig: Any, key: str, *name: object, where: Any = None, **kw: Any) -> Any:
    """``st.plotly_chart(fig)`` keyed ``key``, its PNG named from ``name`` (the layer, the
    view: :func:`calib.figures.base.png_name`), in ``where`` (a container; the page by
    default). ``kw`` goes to ``plotly_chart`` (``on_select``, ``selection_mode``...)."""
    box = st if where is None else where
    title = getattr(getattr(getattr(fig, "layout", None), "title", None), "text", None)
    return box.plotly_chart(
        fig, key=key, config=chart_config(png_name(*name) if name else key), alt=title, **kw
    )
