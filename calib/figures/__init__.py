"""Figures of calib's results: core results in, ``plotly.graph_objects.Figure`` out.

No Streamlit here, so every figure can be built and read back in a test or a notebook.
``base`` holds the palette, layout and toolbar all of them share; ``sweep`` the drawn ideas
of a KL sweep that several pages show (the histogram with its clip, the KL curve, P and
Q); one module per page for what only that page draws.
"""

from calib.figures.sweep import histogram_figure, kl_curve_figure, pq_figure, scrub_figure

__all__ = ["histogram_figure", "kl_curve_figure", "pq_figure", "scrub_figure"]
