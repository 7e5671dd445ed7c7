"""Layers: every tensor of a model in one table, worst first; open one in Explore; export.

A top-to-bottom script: the widgets, caches and sections live in ``calib/ui_layers.py``.
The rows come from ``calib.report.layer_table`` (the command line's table too), kept with
``st.cache_resource`` per (file, method, variant, bits, target bins, percentile), so a
repeated visit is a dictionary look-up. Widget keys start with ``layers_``.
"""

from __future__ import annotations

import streamlit as st

from calib.app.navigation import ensure_navigation

ensure_navigation()  # first, before the slow imports: see calib/app/navigation.py

from calib import report
from calib.app import convergence as uc
from calib.app import grid as ug
from calib.app import layers as ul
from calib.app import state

st.set_page_config(page_title="calib: layers", layout="wide")
st.title("Layers")
st.write(
    "Every tensor of a model in one table: the clip each gets, what it costs, and why a "
    "tensor is suspicious. Select a row to open that tensor in Explore."
)
with st.expander("How to read this table"):
    st.markdown(ul.HELP)

state.sync("layers")  # the view in the URL (calib/app/state.py); uploads kept for the session
layers = ul.choose_layers()
settings = ul.choose_settings()
rows = ul.table_rows(layers, settings)
cache = ul.choose_cache()
matches = report.compare_cache(rows, cache) if cache else None
ordered = report.worst_first(rows)
ul.summary(layers, settings, rows, ordered, matches)

recs = report.records(ordered, matches)
layer = ul.show_table(recs)
if layer is not None:
    # st.switch_page resolves the page's path against the entry point, app.py
    st.switch_page(ul.EXPLORE, query_params=ul.explore_params(layers, settings, layer))
ul.flag_notes(rows)
ul.explore_note(layers)

ug.small_multiples(layers, settings, ordered)  # a click on a panel opens Explore too

ul.sqnr_chart(rows)
uc.show_convergence(layers, ordered)

if cache is not None:
    ul.cache_findings(cache, matches, layers, settings)

ul.exports(layers, settings, rows, recs)
state.write("layers")
