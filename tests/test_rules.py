"""One rule, one home: each rule that several modules apply, checked across all its callers.

A test of one copy says nothing about the next; these check that every caller of a rule
answers as its one home does (and, where copies used to disagree, that they now agree).
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib import Histogram, kl_sweep, learn, sweep
from calib.app import layers, sources
from calib.collect import HistogramAccumulator
from calib.compare import _sweeper as compare_sweeper
from calib.dev import reference
from calib.histogram import grown_edges, range_growth
from calib.methods import amax_mse
from calib.policies import MODELOPT_START_BIN, POLICY_CHOICES, VARIANTS, Policy
from calib.sweep import _api as sweep_api
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
    if not mine.any():
        return  # bins[0] = bins[1] emptied a one-bin spike: "dead" is judged before, on h
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


# --------------------------------------------------------------------------------------
# range growth: same-width bins appended until the new range is covered (TensorRT's rule)
# --------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    signed=st.booleans(),
    bins=st.integers(2, 40),
    first=st.floats(1e-3, 1e3),
    factor=st.floats(0.01, 50.0),
    offset=st.floats(-0.5, 0.5),
)
def test_range_growth_is_one_rule_for_merge_and_the_collector(
    seed, signed, bins, first, factor, offset
):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-first, first, 50)
    b = rng.uniform(-first * factor, first * factor, 50) + offset * first
    acc = HistogramAccumulator(bins, signed=signed, max_bins=10**6)
    acc.add(a)
    h = acc.histogram
    acc.add(b)
    batch = np.abs(b) if not signed else b
    lo, hi = float(batch.min()), float(batch.max())
    if signed:
        lo, hi = min(lo, -hi), max(hi, -lo)
    rule = grown_edges(h, *range_growth(h, lo, hi))
    merged = h.merge(Histogram.from_samples(b, bins=bins, signed=signed))
    np.testing.assert_array_equal(acc.histogram.edges, rule)
    np.testing.assert_array_equal(merged.edges, rule)
    grow_lo = range_growth(h, lo, hi)[0]
    np.testing.assert_array_equal(rule[grow_lo : grow_lo + h.n_bins + 1], h.edges)
    assert acc.histogram.total == a.size + b.size == pytest.approx(merged.total, rel=1e-12)


# --------------------------------------------------------------------------------------
# which sweeps take the dense engine: the sweep decides, compare asks it
# --------------------------------------------------------------------------------------
def _policies():
    """Every preset, and every valid mix of the choices that decide the engine."""
    seen = []
    for preset in VARIANTS.values():
        for smoothing, merge, expand, precision in itertools.product(
            POLICY_CHOICES["smoothing"], POLICY_CHOICES["merge"], POLICY_CHOICES["expand"],
            POLICY_CHOICES["precision"],
        ):  # fmt: skip
            try:
                p = dataclasses.replace(
                    preset, smoothing=smoothing, merge=merge, expand=expand, precision=precision
                )
            except ValueError:
                continue
            if p not in seen:
                seen.append(p)
    return seen


POLICIES = _policies()


def test_the_policies_cover_both_engines():
    dense = [sweep.uses_dense_engine(p) for p in POLICIES]
    assert any(dense) and not all(dense)
    assert any(p.precision == "float32" for p in POLICIES)


@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_the_dense_engine_is_one_rule_for_the_sweep_and_compare(policy, monkeypatch):
    dense = sweep.uses_dense_engine(policy)
    h = Histogram.from_counts(np.arange(1, 41) % 7)
    kwargs = {**dataclasses.asdict(policy), "start_bin": 8}  # ModelOpt's 128 > 40 bins
    if dense:
        with pytest.raises(ValueError, match="engine='fast' cannot take"):
            kl_sweep(h, 8, "seed", engine="fast", **kwargs)

    def no_prefix_sums(*args, **kw):
        raise AssertionError("engine='auto' took the prefix-sum path")

    monkeypatch.setattr(sweep_api, "_kl_fast", no_prefix_sums)
    if dense:
        kl_sweep(h, 8, "seed", **kwargs)  # auto: the dense path, never the prefix sums
    else:
        with pytest.raises(AssertionError, match="prefix-sum"):
            kl_sweep(h, 8, "seed", **kwargs)
    # compare's thread pool starts the slow sweeps first: the sweep's own dense ones
    assert (compare_sweeper._cost((policy, 8)) >= 2) == dense


# --------------------------------------------------------------------------------------
# the upload size check: one limit, one message, on every page that takes a file
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class FakeUpload:
    name: str
    data: bytes
    file_id: str = ""

    def getvalue(self) -> bytes:
        return self.data


def test_every_upload_is_refused_past_the_one_limit_with_one_message(monkeypatch):
    monkeypatch.setattr(sources, "MAX_UPLOAD_BYTES", 2**20)
    big = bytes(3 * 2**19)  # 1.5 MB
    size = "is 1.5 MB; uploads are limited to 1 MB"
    callers = {
        "big.npy (samples)": lambda: sources.read_upload(FakeUpload("big.npy", big), "samples"),
        "big.npy (histogram)": lambda: sources.read_upload(FakeUpload("big.npy", big), "histogram"),
        "big.npz (Layers)": lambda: layers.load_upload("rules-big", "big.npz", big),
        "the model file": lambda: layers.collect_upload("rules-m", "rules-i", big, b"x"),
        "the inputs file": lambda: layers.collect_upload("rules-m2", "rules-i2", b"x", big),
    }
    for who, call in callers.items():
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == f"{who.split(' (')[0]} {size}", who
    sources.check_upload_size("exactly the limit", bytes(2**20))  # not more: accepted


# --------------------------------------------------------------------------------------
# ModelOpt's first candidate, bin 128
# --------------------------------------------------------------------------------------
def test_modelopt_starts_at_one_bin_everywhere():
    def default(f, name="start_bin"):
        return inspect.signature(f).parameters[name].default

    assert Policy().start_bin == VARIANTS["modelopt"].start_bin == MODELOPT_START_BIN
    assert default(amax_mse) == default(reference.modelopt_loop) == MODELOPT_START_BIN
    h = Histogram.from_counts(np.arange(1.0, 301.0))
    assert kl_sweep(h, variant="modelopt").candidates[0] == MODELOPT_START_BIN
    assert reference.modelopt_loop(h.counts, h.edges)[0][0] == MODELOPT_START_BIN
    # the lesson's histograms are too small for it, and say so
    assert learn.learn_sweep(np.ones(32), "modelopt", 8).candidates[0] == 8
