"""The sweep's API and its two engines: prefix sums against dense P and Q.

The loop references (tests/test_sweep_oracles.py) pin each variant to its source;
here the fast engine is held to the dense one on policy combinations no variant uses,
and the result object is checked as users and the app meet it.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import calib
from calib import Histogram, kl_sweep
from calib.policies import POLICY_CHOICES, VARIANTS
from calib.sweep import pick_minimum, tie_scale


@st.composite
def histograms(draw, min_bins=12, max_bins=160):
    n = draw(st.integers(min_bins, max_bins))
    kind = draw(st.sampled_from(["int", "float", "sparse", "spike", "one"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "int":
        c = rng.integers(0, 1000, n).astype(float)
    elif kind == "float":
        c = rng.uniform(0, 5, n)
    elif kind == "sparse":
        c = rng.integers(0, 20, n) * (rng.random(n) < 0.25)
    elif kind == "spike":
        c = rng.integers(0, 50, n).astype(float)
        c[0] = 50 * n
        c[n // 2 : n // 2 + n // 5] = 0
    else:
        c = np.zeros(n)
        c[rng.integers(0, n)] = rng.integers(1, 100)
    return c.astype(float)


def _valid(variant, over) -> bool:
    try:
        dataclasses.replace(VARIANTS[variant], **over)
    except ValueError:
        return False
    return True


def _compare(counts, T, variant, **over):
    """Prefix sums against dense P and Q; a policy the prefix sums cannot take exactly must
    be swept densely by engine="auto" (``uses_dense_engine``)."""
    try:
        dense = kl_sweep(counts, T, variant, engine="dense", **over)
    except ValueError as exc:  # truncated fractions, no finite KL: every engine refuses
        assert "no candidate has a finite KL" in str(exc)
        with pytest.raises(ValueError, match="no candidate has a finite KL"):
            kl_sweep(counts, T, variant, **over)
        return
    if calib.sweep.uses_dense_engine(calib.policies.resolve_policy(variant, over)):
        auto = kl_sweep(counts, T, variant, **over)
        np.testing.assert_array_equal(auto.kl, dense.kl)
        return
    fast = kl_sweep(counts, T, variant, engine="fast", **over)
    assert fast.dead == dense.dead
    if dense.dead:
        return
    np.testing.assert_array_equal(fast.candidates, dense.candidates)
    np.testing.assert_array_equal(np.isinf(fast.kl), np.isinf(dense.kl))
    finite = np.isfinite(dense.kl)
    pol = dense.policy
    c = dense.histogram.counts.astype(float)
    if pol.normalize == "histogram":
        c = c / c.sum()
    eps = pol.eps if pol.smoothing != "none" else 0.0
    scale = tie_scale(c, normalized=pol.normalize == "pq", eps=eps)
    # dense sums each bin's term; fast reads them off prefix sums: they round differently
    np.testing.assert_allclose(fast.kl[finite], dense.kl[finite], rtol=1e-9, atol=1e-12 * scale)
    assert fast.best == dense.best


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(
    counts=histograms(),
    variant=st.sampled_from(["seed", "ncnn", "modelopt"]),
    expand=st.sampled_from(["nonzero", "uniform"]),
    smoothing=st.sampled_from(["none", "add_eps"]),
    normalize=st.sampled_from(["none", "histogram", "pq"]),
    zero_q=st.sampled_from(["one", "inf"]),
    data=st.data(),
)
def test_fast_engine_matches_dense_on_unsigned_policy_mixes(
    counts, variant, expand, smoothing, normalize, zero_q, data
):
    T = data.draw(st.integers(2, len(counts) - 1))
    over = dict(expand=expand, smoothing=smoothing, normalize=normalize, zero_q=zero_q)
    if variant == "modelopt":
        over["start_bin"] = data.draw(st.integers(1, len(counts)))
    else:
        over["nonzero_from"] = data.draw(st.sampled_from(["p", "hist"]))
    _compare(counts, T, variant, **over)


@pytest.mark.parametrize("nonzero_from", ["p", "hist"])
def test_fast_engine_sees_an_empty_q_when_all_mass_is_the_folded_tail(nonzero_from):
    """Windows of empty bins with the tail folded into the last: Q has no mass, so with
    P and Q normalised the KL is undefined (inf). Found by a long hypothesis run: the
    fast path once counted the empty last level as a tiny positive Q."""
    counts = np.zeros(12)
    counts[9] = 16.0
    over = dict(normalize="pq", zero_q="one", nonzero_from=nonzero_from)
    fast = kl_sweep(counts, 2, "seed", engine="fast", **over)
    assert np.isinf(fast.kl[:8]).all()
    _compare(counts, 2, "seed", **over)


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(
    counts=histograms(min_bins=20),
    variant=st.sampled_from(["mxnet", "onnxruntime"]),
    remainder=st.sampled_from(["last_group", "orphan"]),
    expand=st.sampled_from(["nonzero", "fill_all", "uniform"]),
    truncate=st.sampled_from(["none", "mass", "mass_and_q"]),
    smoothing=st.sampled_from(["none", "add_eps", "mxnet"]),
    normalize=st.sampled_from(["none", "pq"]),
    data=st.data(),
)
def test_fast_engine_matches_dense_on_signed_policy_mixes(
    counts, variant, remainder, expand, truncate, smoothing, normalize, data
):
    assume(not (smoothing == "mxnet" and expand == "uniform"))
    T = data.draw(st.integers(2, len(counts) - 1))
    over = dict(
        remainder=remainder, expand=expand, truncate=truncate, smoothing=smoothing,
        normalize=normalize, nonzero_from=data.draw(st.sampled_from(["p", "hist"])),
    )  # fmt: skip
    assume(_valid(variant, over))
    # raw counts of at least 1 keep MXNet's smoothing inside its series
    _compare(np.ceil(counts), T, variant, **over)


@st.composite
def ui_overrides(draw):
    """A variant and any overrides the Explore policy panel can set: every field of
    ``Policy`` from its choices, start_bin and stride from 1, eps from the panel's range."""
    variant = draw(st.sampled_from(list(VARIANTS)))
    over = {}
    for name, choices in POLICY_CHOICES.items():
        if draw(st.booleans()):
            over[name] = draw(st.sampled_from(choices))
    if draw(st.booleans()):
        over["stride"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        over["eps"] = draw(st.sampled_from([1e-12, 1e-6, 1e-4, 1e-2, 0.5]))
    return variant, over


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(counts=histograms(max_bins=90), choice=ui_overrides(), data=st.data())
def test_every_combination_the_ui_offers_is_refused_or_matches_the_dense_engine(
    counts, choice, data
):
    """Issue 9: seed and ncnn with ModelOpt's candidates or MXNet's truncation once gave
    negative KLs and clips the dense engine did not. Every combination the Explore panel can
    produce is now one of: refused by ``Policy`` with its reason; swept densely
    (``uses_dense_engine``, and ``engine="fast"`` refuses it); or swept by prefix sums that
    match the dense engine. Normalised histograms (sums of 1) are among the inputs."""
    variant, over = choice
    if data.draw(st.booleans()):
        counts = counts / max(counts.sum(), 1e-300)
    over["start_bin"] = data.draw(st.integers(1, len(counts)))
    T = data.draw(st.integers(2, len(counts) - 1))
    if not _valid(variant, over):
        with pytest.raises(ValueError, match=r"needs|does not fit|must be"):
            kl_sweep(counts, T, variant, **over)
        return
    try:
        dense = kl_sweep(counts, T, variant, engine="dense", **over)
    except ValueError as exc:  # too few bins for these levels or this start, or no finite KL
        said = ("target_bins", "start_bin", "candidates", "no candidate has a finite KL")
        assert any(x in str(exc) for x in said), exc
        return
    finite = dense.kl[np.isfinite(dense.kl)]
    assert (finite >= -1e-9 * max(1.0, np.abs(finite).max(initial=0.0))).all()
    # evenly spaced: Explore's candidate sliders are integer sliders with a step
    assert np.unique(np.diff(dense.candidates)).size <= 1, dense.candidates
    if calib.sweep.uses_dense_engine(dense.policy):
        with pytest.raises(ValueError, match="engine='fast' cannot take"):
            kl_sweep(counts, T, variant, engine="fast", **over)
        auto = kl_sweep(counts, T, variant, **over)
        np.testing.assert_array_equal(auto.kl, dense.kl)
        return
    _compare(counts, T, variant, **over)


@pytest.mark.parametrize("stride", [2, 3, 5])
def test_candidates_a_stride_apart_match_the_dense_engine(stride):
    """The prefix sums' cached level boundaries are indexed by window size: they once
    served windows ``stride`` bins apart as if they were one apart (found by the property
    test above: seed with ModelOpt's candidates, stride 2)."""
    counts = np.array([850, 636, 511, 269, 307, 40, 75, 16, 175, 813, 649, 912], float)
    for T in (2, 3):
        _compare(counts, T, "seed", candidates="modelopt", stride=stride, start_bin=T)
        _compare(counts, T, "modelopt", stride=stride, start_bin=T)


def test_result_fields_and_distributions_agree():
    rng = np.random.default_rng(3)
    h = Histogram.from_samples(rng.laplace(size=50_000), bins=512)
    for variant in calib.VARIANTS:
        r = kl_sweep(h, variant=variant)
        assert r.candidates.shape == r.kl.shape == r.thresholds.shape
        assert r.candidates[r.best_index] == r.best
        assert r.amax == r.thresholds[r.best_index]
        assert np.all(np.diff(r.thresholds) >= 0)  # even signed N: the last two share the edge
        pq = r.distributions()
        assert pq.candidate == r.best
        # distributions() sums P and Q bin by bin (the dense engine), the sweep may read them
        # off prefix sums: they round differently, by about 1e-15 of the size of the terms,
        # and these minimum KLs are not small beside their terms, so rtol 1e-9 (the bound
        # test_sweep_oracles holds every candidate to) has room
        np.testing.assert_allclose(pq.kl, r.min_kl, rtol=1e-9)
        np.testing.assert_allclose(pq.terms.sum(), pq.kl, rtol=1e-12)
        assert pq.p.shape == pq.q.shape == (pq.edges.size - 1,)
        other = r.distributions(int(r.candidates[len(r.candidates) // 2]))
        np.testing.assert_allclose(other.kl, r.kl[len(r.candidates) // 2], rtol=1e-9)
        with pytest.raises(ValueError, match="candidate must be one of"):
            r.distributions(-5)


def test_seed_raw_counts_and_normalised_can_disagree():
    # The seed's "+1 where q == 0" does not scale with the counts (shared/seed/NOTES.md).
    c = np.zeros(400)
    c[:300] = np.linspace(1000, 10, 300)
    c[399] = 3  # one far outlier: an empty last level for most candidates
    raw = kl_sweep(c, 128).best
    norm = kl_sweep(c / c.sum(), 128).best
    assert raw != norm


def test_relu_zero_spike_drags_the_seed_to_the_smallest_candidate():
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(100_000))
    edges = Histogram.from_samples(x, bins=2048).edges
    best = {}
    for zeros in (0.0, 0.3, 0.6, 0.9):
        y = x.copy()
        y[: int(zeros * y.size)] = 0.0
        h = Histogram(np.histogram(y, bins=edges)[0], edges)
        best[zeros] = (kl_sweep(h).best_index, kl_sweep(h, variant="modelopt").best)
    seed = [best[z][0] for z in sorted(best)]
    assert seed == sorted(seed, reverse=True) and seed[0] > 1000
    assert best[0.9][0] <= 2  # about the smallest candidate: T kept bins of 2048
    # ModelOpt's bins[0] = bins[1] is the fix for exactly this
    assert min(b[1] for b in best.values()) > 1500


def test_layouts_are_converted_and_reported():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(20_000)
    signed = Histogram.from_samples(x, bins=1000, signed=True)
    r = kl_sweep(signed, variant="seed")
    assert not r.histogram.is_signed and r.histogram.n_bins == 500
    r2 = kl_sweep(Histogram.from_samples(x, bins=500), variant="onnxruntime")
    assert r2.histogram.is_signed and r2.histogram.n_bins == 1000


def test_every_variant_answers_a_dead_histogram_with_zero():
    for variant in calib.VARIANTS:
        r = kl_sweep(np.zeros(600), variant=variant, start_bin=128)
        assert r.dead and r.amax == 0.0 and np.all(np.isinf(r.kl))


def test_no_function_modifies_its_input():
    c = np.random.default_rng(5).integers(0, 100, 600).astype(float)
    before = c.copy()
    for variant in calib.VARIANTS:
        kl_sweep(c, variant=variant)
        calib.calibrate(c, method="entropy", variant=variant)
    np.testing.assert_array_equal(c, before)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(target_bins=0), "target_bins must be at least 2 .*, got 0"),
        (dict(target_bins=1), "target_bins must be at least 2 .*, got 1"),
        (dict(variant="onnxruntime", normalize="none"), "fill_all' needs normalize='pq'"),
        (dict(variant="mxnet", remainder="orphan", normalize="none"), "orphan' needs normalize"),
        (dict(target_bins=600), r"less than the number of bins \(600\), got 600"),
        (dict(target_bins=12.5), "target_bins must be an integer, got 12.5"),
        (dict(variant="tensorrt"), "variant must be one of .* got 'tensorrt'"),
        (dict(smoothing="laplace"), "smoothing must be one of .* got 'laplace'"),
        (dict(temperature=2), "unknown policy 'temperature'"),
        (dict(engine="gpu"), "engine must be one of"),
        (dict(variant="mxnet", engine="fast", merge="fractional"), "does not fit|needs"),
        (dict(variant="onnxruntime", remainder="orphan", merge="linspace"), "needs merge='whole'"),
        (dict(variant="modelopt", start_bin=601), "start_bin must be at most"),
        (dict(variant="seed", precision="float32"), "precision='float32' follows ONNX"),
        (dict(variant="onnxruntime", precision="float32", engine="fast"), "cannot take"),
        (dict(variant="seed", merge="whole", candidates="modelopt", start_bin=5),
         "needs every candidate to keep at least"),
    ],
)  # fmt: skip
def test_bad_arguments_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kl_sweep(np.ones(600), **kwargs)


@pytest.mark.slow
def test_every_policy_field_is_overridable_alone():
    c = np.random.default_rng(6).integers(0, 100, 700).astype(float)
    for name, choices in POLICY_CHOICES.items():
        for value in choices:
            for variant, policy in VARIANTS.items():
                try:
                    dataclasses.replace(policy, **{name: value})
                except ValueError:
                    continue  # a combination the policy itself refuses, with a message
                r = kl_sweep(c, variant=variant, **{name: value})
                assert getattr(r.policy, name) == value


def test_tie_rule_takes_first_or_last_within_rounding():
    kl = np.array([3.0, 1e-15, 0.0, 2e-15, 5.0])
    assert pick_minimum(kl, "first", 1.0) == 1
    assert pick_minimum(kl, "last", 1.0) == 3
    assert pick_minimum(np.array([np.inf, np.inf]), "last", 1.0) == 1
    assert pick_minimum(np.array([2.0, 1.0, 1.0 + 1e-6]), "last", 1.0) == 1


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_large_sweeps_build_their_level_tables_block_by_block(variant, monkeypatch):
    """Issue 9: the level tables of every candidate were cached whole, 16 bytes a cell (a
    gigabyte at MAX_SEARCH_CELLS); past a small size they are now made block by block, with
    the same answer."""
    from calib.sweep import _fast, _groups

    h = Histogram.from_samples(np.random.default_rng(7).laplace(size=20_000), bins=700)
    want = kl_sweep(h, 16, variant)
    monkeypatch.setattr(_fast, "_CACHED_BOUNDARIES", 0)
    monkeypatch.setattr(_groups, "_CACHED_LEVELS", 0)
    got = kl_sweep(h, 16, variant)
    np.testing.assert_array_equal(got.kl, want.kl)
    assert got.best == want.best


@pytest.mark.parametrize(
    ("variant", "policies", "unit"),
    [
        ("seed", {}, "at 32 target bins"),
        ("mxnet", {}, "at 32 target bins"),
        ("onnxruntime", {"precision": "float32"}, "bin-by-bin"),
        ("seed", {"truncate": "mass"}, "bin-by-bin"),
    ],
)
def test_a_sweep_past_max_search_cells_is_refused_before_it_runs(
    variant, policies, unit, monkeypatch
):
    h = Histogram.from_samples(np.random.default_rng(8).standard_normal(20_000), bins=600)
    kl_sweep(h, 32, variant, **policies)
    monkeypatch.setattr(calib.limits, "MAX_SEARCH_CELLS", 5_000)
    with pytest.raises(ValueError, match=rf"{unit}.* needs [\d,]+ cells, more than MAX_SEARCH"):
        kl_sweep(h, 32, variant, **policies)


@pytest.mark.parametrize("variant", ["mxnet", "onnxruntime"])
def test_a_normalised_histogram_under_integer_truncation_is_refused_not_floored(variant):
    """Issue 9: counts summing to 1 under MXNet's or ONNX Runtime's truncation made every
    level's mass 0, every KL inf, and the first candidate won (69% clipped) silently."""
    x = np.random.default_rng(9).standard_normal(100_000)
    h = Histogram.from_samples(x, bins=1024, signed=True)
    normalised = Histogram(h.counts / h.total, h.edges)
    with pytest.raises(ValueError, match=r"truncate=.* fractions .*total 1.* truncate='none'"):
        kl_sweep(normalised, variant=variant)
    # the raw counts, or the same fractions with truncation off, have an answer
    assert kl_sweep(h, variant=variant).amax > 2.0
    assert kl_sweep(normalised, variant=variant, truncate="none").amax > 2.0
    # fractional counts that truncation does not empty (a rebinned histogram) still sweep
    assert kl_sweep(h.rebin(700), variant=variant).amax > 2.0


@pytest.mark.parametrize("variant", ["mxnet", "onnxruntime"])
def test_a_signed_histogram_not_centred_on_zero_is_refused(variant):
    """Issue 9: np.histogram(x, 2048) of shifted data, and a negative-only histogram (which
    answered amax -5.0), were swept as if 0 were the middle bin."""
    x = np.random.default_rng(10).standard_normal(50_000)
    for data in (x + 3.0, -np.abs(x) - 1.0):
        counts, edges = np.histogram(data, 512)
        with pytest.raises(ValueError, match=r"symmetric around 0.*range=\(-m, m\)"):
            kl_sweep(Histogram(counts, edges), variant=variant)
    m = np.abs(x).max()
    counts, edges = np.histogram(x, 512, range=(-m, m))
    assert kl_sweep(Histogram(counts, edges), variant=variant).amax > 2.0
    # float32 edges (as ONNX Runtime stores them) are symmetric to about 1e-7: accepted
    e32 = edges.astype(np.float32).astype(np.float64)
    assert kl_sweep(Histogram(counts, e32), variant=variant).amax > 2.0


def test_the_seeds_first_candidate_on_huge_raw_counts_is_said_by_calibrate_and_explore():
    """Issue 21: on raw counts totalling ~1e15 the seed answers its first candidate (every
    KL is above its 1e13 start); calibrate's note and Explore's explanation say why."""
    from calib.explore import explain
    from calib.methods import calibrate

    counts = np.random.default_rng(0).integers(0, 2 * 10**15 // 300, 300)
    c = calibrate(counts, "entropy")
    assert c.sweep.best == 128
    assert "min_kl_divergence" in c.note and "start_kl='inf'" in c.note
    why = explain(c.sweep.histogram, c.sweep, c.sweep.distributions(), c.metrics)
    assert "Where the seed's search starts" in why.floor or "min_kl_divergence" in why.floor
