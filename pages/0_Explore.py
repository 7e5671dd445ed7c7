"""Explore: where a KL (entropy) calibrator clips one activation histogram, and why.

The app's default page (``streamlit run app.py``). Opens on a real model's tensor (the GELU
output of all-MiniLM-L6-v2's first block, ``calib.models``); the sidebar switches to the
other shipped model, any other tensor, a built-in demo, or an upload. The view's state
lives in the query string (``calib.app.links``), so a link reproduces it. The widgets,
state and layout are ``calib.app.explore``, the figures ``calib.figures.explore``, the
numbers ``calib.explore``.
"""

from __future__ import annotations

import streamlit as st

from calib.app.navigation import ensure_navigation

ensure_navigation()  # first, before the slow imports: see calib/app/navigation.py

from calib.app import explore

st.set_page_config(page_title="calib: explore a KL calibration", layout="wide")
st.title("KL calibration explorer")
explore.page("explore")
