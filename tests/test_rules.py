"""One rule, one home: each rule that several modules apply, checked across all its callers.

A test of one copy says nothing about the next; these check that every caller of a rule
answers as its one home does (and, where copies used to disagree, that they now agree).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib import Histogram, kl_sweep, learn, sweep
from calib.policies import VARIANTS
from calib.sweep._prepare import _prepare


@st.composite
def small_counts(draw):
    """Counts of 8 to 40 bins: integer or float, sparse or with a spike in bin 0."""
    n = draw(st.integers(8, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["int", "sparse", "spike", "float"]))
    if kind == "float":
        return rng.uniform(0, 3, n)
    c = rng.integers(0, 50, n)
    if kind == "sparse":
        c = c * (rng.random(n) < 0.4)
    if kind == "spike":
        c[0] = 60 * n
    c[draw(st.integers(0, n - 1))] += 1  # never dead
    return c


# --------------------------------------------------------------------------------------
# the prepared counts: ModelOpt's zero spike and ncnn's normalisation, applied once
# --------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(counts=small_counts(), variant=st.sampled_from(list(VARIANTS)))
def test_the_prepared_counts_are_one_rule_for_the_sweep_and_the_lesson(counts, variant):
    r = learn.learn_sweep(counts, variant, 4)
    mine = sweep.prepared_counts(r.histogram, r.policy)
    np.testing.assert_array_equal(learn.prepared_counts(r), mine)
    np.testing.assert_array_equal(_prepare(r.histogram, r.target_bins, r.policy).h, mine)
    # the sweep searches exactly these counts: given them with the once-policies off, it
    # finds every candidate's KL again
    once_off = {"zero_spike": "keep"}
    if r.policy.normalize == "histogram":  # "pq" scales P and Q per candidate: not once
        once_off["normalize"] = "none"
    off = dataclasses.replace(r.policy, **once_off)
    again = kl_sweep(
        Histogram(mine, r.histogram.edges), r.target_bins, variant, **dataclasses.asdict(off)
    )
    np.testing.assert_array_equal(again.kl, r.kl)
    assert again.best == r.best


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_prepared_counts_of_a_dead_histogram_stay_zero(variant):
    r = kl_sweep(np.zeros(300), 8, variant, start_bin=8)
    c = sweep.prepared_counts(r.histogram, r.policy)
    assert r.dead and c.dtype == np.float64 and not c.any()
