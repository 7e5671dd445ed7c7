"""The floor of the stack, for ``python -m calib.dev.bench_app``: a Streamlit page with
widgets of the kinds Explore's sidebar has (radio, select boxes, sliders, a number box,
checkboxes; not all of Explore's options nor its model picker) and four trivial plotly
charts, one of them titled "Chosen: ..." after the target-bins slider, so that a key
press there is measured exactly as Explore's is (``calib.dev.browser``). Served on its
own (``streamlit run calib/dev/probe.py``) by the bench, with the app's own config.
Not a page of the app, and nothing imports it.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from calib.app.charts import plot
from calib.figures.base import base_layout

st.set_page_config(page_title="probe", layout="wide")
st.title("Probe: the same widgets, four trivial charts")
side = st.sidebar
side.radio("Histogram", ["Real model", "Built-in demo", "Upload a histogram"], key="p_kind")
side.selectbox("Layer", ["layer a", "layer b"], key="p_layer")
side.header("Calibration")
side.selectbox("Variant", ["seed", "ncnn", "mxnet", "onnxruntime", "modelopt"], key="p_var")
side.select_slider("Bit width", list(range(2, 17)), value=8, key="p_bits")
slot, typed = side.columns([3, 1], vertical_alignment="bottom")
t = slot.slider("Target bins (quantized levels)", 2, 1024, 128, key="p_target_bins")
typed.number_input("typed", 2, 1024, t, label_visibility="collapsed", key="p_typed")
side.select_slider("Histogram size (bins)", [128, 256, 512, 1024, 2051], 2051, key="p_hist")
side.checkbox("Log count axis", True, key="p_log")
side.checkbox("Show the other variants' thresholds", key="p_variants")
with side.expander("Policies of seed"):
    st.selectbox("merge", ["fractional", "whole"], key="p_merge")
cols = st.columns(4)
for i, c in enumerate(cols):
    c.metric(f"metric {i}", t + i)


def tiny(title: str) -> go.Figure:
    return go.Figure(
        {
            "data": [{"type": "scatter", "x": [0, 1, 2], "y": [1, t % 7 + 1, 2]}],
            "layout": base_layout(title, "x", "y"),
        }
    )


plot(tiny("Histogram"), "p_hist_chart")
left, right = st.columns(2)
plot(tiny("KL"), "p_kl", where=left)
plot(tiny(f"Chosen: target bins {t}"), "p_chosen", where=right)
plot(tiny("Picked"), "p_picked")
