"""Every page of the app draws with one chart library, plotly (issue 19): AppTest walks
each page and finds no other chart element, and every plotly chart carries the app's
toolbar (``calib.figures.base.chart_config``: a PNG named after its layer and view)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["app.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))]
# Streamlit's chart elements other than plotly's, by their element type in AppTest
OTHER_CHARTS = {
    "echarts_chart", "vega_lite_chart", "arrow_vega_lite_chart", "deck_gl_json_chart",
    "graphviz_chart", "bokeh_chart", "pyplot", "map", "imgs",
}  # fmt: skip


def element_types(node) -> list:
    """Every element of the page's tree, depth first: (type, node)."""
    out = [(getattr(node, "type", ""), node)]
    for child in getattr(node, "children", {}).values():
        out += element_types(child)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_chart_on_every_page_is_plotly_with_the_apps_toolbar(page):
    at = AppTest.from_file(str(ROOT / page), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    found = element_types(at._tree)
    types = {t for t, _ in found}
    assert not types & OTHER_CHARTS, types & OTHER_CHARTS
    plots = [n for t, n in found if t == "plotly_chart"]
    assert plots, f"{page} draws no chart"
    for n in plots:
        config = json.loads(n.proto.config or "{}")
        if config.get("displayModeBar") is False:  # Layers' clickable grid: no toolbar
            continue
        name = config["toImageButtonOptions"]["filename"]
        assert name and "/" not in name and ":" not in name, name
        spec = json.loads(n.proto.spec)
        # the toolbar (top right, about 30 px) sits above a legend, never over it
        legend = spec["layout"].get("legend", {})
        if legend.get("orientation") == "h" and legend.get("y", 1) >= 1:
            assert spec["layout"]["margin"]["t"] >= 60, (page, spec["layout"]["title"])
