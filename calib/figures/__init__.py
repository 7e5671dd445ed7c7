"""Figures of calib's results: core results in, ``plotly.graph_objects.Figure`` out, or
for Explore (``explore``), whose figures redraw on every key press, an ECharts option.

No Streamlit here, so every figure can be built and read back in a test or a notebook.
``base`` holds the palette and layout all of them share; one module per page's figures.
"""

from calib.figures.explore import histogram_figure, kl_curve_figure, pq_figure

__all__ = ["histogram_figure", "kl_curve_figure", "pq_figure"]
