"""Learn: how a KL (entropy) calibrator picks its clip, one candidate at a time.

A top-to-bottom script: the widgets, cached computations and sections are in
``calib.app.learn``, the numbers from ``calib.learn`` (built on the sweep's own
``SweepResult`` and ``PQ``), the figures from ``calib.figures.learn``.
"""

from __future__ import annotations

import streamlit as st

from calib.app.navigation import ensure_navigation

ensure_navigation()  # first, before the slow imports: see calib/app/navigation.py

from calib.app import learn as ul
from calib.app import state

st.set_page_config(page_title="calib: learn the KL calibrator", layout="wide")
st.title("Learn: how a KL calibrator picks its clip")
st.write(
    "An entropy calibrator tries every candidate clip of an activation histogram. For each "
    "one it builds P (the kept bins, with the clipped tail folded in), quantizes the kept "
    "bins into a few levels, expands them back into Q, and scores the candidate by "
    "KL(P‖Q). The smallest KL wins. Below, one histogram and one candidate, step by step; "
    "every number is the sweep's own (`calib.kl_sweep(...).distributions(candidate)`)."
)

# ---- controls: a histogram (sidebar), a variant, the number of levels, a candidate -------
state.sync("learn")  # the view in the URL (calib/app/state.py)
label, hist = ul.choose_histogram()
sweep = ul.sweep_controls(label, hist)  # None: an error or a warning says why

if sweep is not None:
    candidate = ul.pick_candidate(sweep)
    ul.step_clip(candidate)  # 1. Clip, and fold the tail into P
    ul.step_levels(candidate)  # 2. Split the kept bins into T levels
    ul.step_quantized(candidate)  # 3. The quantized histogram
    ul.step_expand(candidate)  # 4. Expand Q over the bins
    ul.step_terms(candidate)  # 5. Each bin's KL term
    ul.step_sweep(candidate)  # 6. The whole sweep

# ---- the seed's own example ----------------------------------------------------------
st.divider()
ul.seed_example_section()

# ---- what learners ask ---------------------------------------------------------------
st.divider()
st.header("What learners ask")
ul.questions()  # one tab each; only the open one is drawn
state.write("learn")
