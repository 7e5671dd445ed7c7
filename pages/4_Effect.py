"""Effect on the model: what each calibration, and each tensor, does to the model's outputs.

A top-to-bottom script over ``calib/app/effect.py`` (and ``calib/app/effect_models.py``:
which shipped model, which calibration's ranking). It opens on the shipped results of a
real model (``calib.models``: all-MiniLM-L6-v2, EfficientNet-Lite0; built by
``assets/build_effect.py``); an uploaded ONNX model and inputs are evaluated with
``calib.evaluate`` under a progress bar. Selecting a ranked tensor opens its histogram in
Explore at the clip it was ranked under. Widget keys start with ``effect_``.
"""

from __future__ import annotations

import streamlit as st

from calib.app.navigation import ensure_navigation

ensure_navigation()  # first, before the slow imports: see calib/app/navigation.py

from calib.app import effect, state
from calib.app import effect_models as em
from calib.app.text import plain

st.set_page_config(page_title="calib: effect on the model", layout="wide")
st.title("Effect on the model")
st.write(
    "What a clip does to the model, not only to its histogram: a fake-quantized copy of "
    "the model runs against the float one on held-out inputs. Which calibrator is best, "
    "which tensors hurt, what to keep in float, and whether the histogram saw it coming."
)
with st.expander("How to read this page"):
    st.markdown(effect.HELP)

state.sync("effect")  # the view in the URL (calib/app/state.py); uploads kept
shown = effect.choose_report()
doc = shown.doc
effect.summary(doc, shown.label)
effect.methods_section(doc)
shown = em.ranking(shown)  # which calibration's sensitivity ranking the sections show
doc = shown.doc

layer = effect.sensitivity_table(doc)
if layer is not None:
    params = effect.explore_params(shown, layer)
    if params is not None:
        # st.switch_page resolves the page's path against the entry point, app.py
        st.switch_page(effect.EXPLORE, query_params=params)
    st.caption(
        f"Explore has no histogram of {plain(layer)}: the shipped histogram file does not hold it."
    )
else:
    st.caption("Select a row to open that tensor's histogram in Explore.")

effect.keep_float_section(doc)
effect.proxy_section(doc)
effect.report_download(doc, raw=shown.model if shown.hists is None else False)
state.write("effect")
