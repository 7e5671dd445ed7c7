"""calib.learn: the lesson's step data, held to plain loops and to the sweep's own numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from calib import Histogram, kl_sweep, learn
from calib.policies import VARIANTS
from calib.reference import seed_loop

LESSONS = list(learn.LESSONS)


def every_candidate(result):
    for c in result.candidates:
        yield int(c), result.distributions(int(c))


def sweeps(hist, target_bins=8):
    for variant in VARIANTS:
        yield variant, learn.learn_sweep(hist, variant, target_bins)


@st.composite
def small_histograms(draw):
    n = draw(st.integers(10, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["int", "sparse", "spike", "float"]))
    if kind == "int":
        c = rng.integers(0, 200, n).astype(float)
    elif kind == "sparse":
        c = rng.integers(0, 30, n) * (rng.random(n) < 0.4)
    elif kind == "spike":
        c = rng.integers(0, 40, n).astype(float)
        c[0] = 40 * n
        c[n // 2 : n // 2 + n // 4] = 0
    else:
        c = rng.uniform(0, 3, n)
    c = np.asarray(c, dtype=float)
    c[draw(st.integers(0, n - 1))] += 1  # never dead
    return c, draw(st.integers(2, min(12, n - 1)))


# --------------------------------------------------------------------------------------
# slow references
# --------------------------------------------------------------------------------------
def seed_shares_loop(L: int, T: int) -> np.ndarray:
    """The seed's own boundary arithmetic, one level at a time (calib.reference.seed_loop)."""
    W = np.zeros((L, T))
    num_per_bin = L / T
    for i in range(T):
        start = i * num_per_bin
        end = start + num_per_bin
        left_upper = int(np.ceil(start))
        if left_upper > start:
            W[left_upper - 1, i] += left_upper - start
        right_lower = int(np.floor(end))
        if right_lower < end and right_lower < L:
            W[right_lower, i] += end - right_lower
        for j in range(left_upper, right_lower):
            W[j, i] += 1
    return W


def plain_sum(values) -> float:
    total = 0.0
    for v in values:
        total += float(v)
    return total


# --------------------------------------------------------------------------------------
# step 1: the fold
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("lesson", LESSONS)
def test_fold_moves_exactly_the_clipped_counts(lesson):
    hist = learn.lesson_histogram(lesson)
    for variant, result in sweeps(hist):
        counts = learn.prepared_counts(result)
        for c, pq in every_candidate(result):
            f = learn.fold(result, pq)
            a, b = f.window.a, f.window.b
            right = plain_sum(counts[j] for j in range(counts.size) if j >= b)
            left = plain_sum(counts[j] for j in range(counts.size) if j < a)
            assert f.tail_hi == pytest.approx(right, rel=1e-12, abs=1e-12), (variant, c)
            assert f.tail_lo == pytest.approx(left, rel=1e-12, abs=1e-12), (variant, c)
            if b - a > 1:
                assert pq.p_raw[-1] == pytest.approx(counts[b - 1] + right, rel=1e-12)
                assert pq.p_raw[0] == pytest.approx(counts[a] + left, rel=1e-12)
            assert f.last_after - f.last_before == pytest.approx(right, rel=1e-9, abs=1e-12)
            assert f.kept + f.tail_lo + f.tail_hi == pytest.approx(f.total, rel=1e-12)


def test_seed_fold_on_raw_counts_is_the_sum_past_the_clip():
    counts = learn.LESSONS["Bulk, gap, one outlier"].counts
    result = learn.learn_sweep(learn.lesson_histogram("Bulk, gap, one outlier"), "seed", 8)
    for c, pq in every_candidate(result):
        tail = 0
        for j in range(c, len(counts)):
            tail += counts[j]
        assert learn.fold(result, pq).tail_hi == tail  # integer counts: both sums exact
        assert learn.window(result, pq) == learn.Window(0, c)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_prepared_counts_are_the_interior_of_every_p(variant):
    hist = learn.lesson_histogram("ReLU zero spike")
    result = learn.learn_sweep(hist, variant, 8)
    counts = learn.prepared_counts(result)
    for _, pq in every_candidate(result):
        w = learn.window(result, pq)
        np.testing.assert_allclose(pq.p_raw[1:-1], counts[w.a + 1 : w.b - 1], rtol=1e-12)
    if variant == "modelopt":
        assert counts[0] == counts[1] != hist.counts[0]  # bins[0] = bins[1], a copy
        assert hist.counts[0] == 2400
    if variant == "ncnn":
        assert counts.sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------------------
# steps 2-4: levels and Q
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [3, 5, 8, 13])
def test_fractional_shares_are_the_seeds_own(T):
    hist = learn.lesson_histogram("Bulk, gap, one outlier")
    result = learn.learn_sweep(hist, "seed", T)
    for c, pq in every_candidate(result):
        np.testing.assert_allclose(learn.level_shares(pq), seed_shares_loop(c, T), atol=1e-12)


def test_shares_cover_each_bin_once_and_each_level_by_its_width():
    hist = learn.lesson_histogram("ReLU zero spike")
    for variant, result in sweeps(hist):
        for _, pq in every_candidate(result):
            W = learn.level_shares(pq)
            g = pq.group_edges
            np.testing.assert_allclose(W.sum(axis=0), np.diff(g), atol=1e-9)
            covered = W.sum(axis=1)
            inside = np.arange(pq.p.size) < g[-1] - 1e-9
            np.testing.assert_allclose(covered[inside], 1.0, atol=1e-9, err_msg=variant)
            np.testing.assert_array_equal(covered[~inside], 0.0)  # ORT's remainder only
            if result.policy.merge != "fractional":
                assert set(np.unique(W)) <= {0.0, 1.0}


@pytest.mark.parametrize("lesson", LESSONS)
def test_level_masses_sum_to_the_kept_mass(lesson):
    hist = learn.lesson_histogram(lesson)
    for variant, result in sweeps(hist):
        if result.policy.truncate != "none":
            continue
        counts = learn.prepared_counts(result)
        for c, pq in every_candidate(result):
            w = learn.window(result, pq)
            kept = plain_sum(counts[j] for j in range(w.a, w.b))
            levels = learn.level_table(result, pq)
            assert plain_sum(levels.mass) == pytest.approx(kept, rel=1e-9), (variant, c)


def check_levels_rebuild_q(result, pq):
    """Q from the lesson's shares and divisors equals the sweep's Q, bin by bin."""
    levels = learn.level_table(result, pq)
    W = learn.level_shares(pq)
    nz = learn.nonzero_weights(result, pq)
    policy = result.policy
    mass, count = levels.mass, levels.nonzero
    # the shares explain the sweep's divisor, up to the seed's rounding slivers (1e-15)
    np.testing.assert_allclose(W.T @ nz, count, rtol=0, atol=1e-9)
    safe = np.where(count > 0, count, 1.0)
    if policy.truncate == "none":
        expect = np.where(count > 0, mass / safe, 0.0)
    elif policy.truncate == "mass":
        expect = np.where(count > 0, np.trunc(mass) / safe, 0.0)
    else:
        expect = np.where(count > 0, np.trunc(np.trunc(mass) / safe), 0.0)
    np.testing.assert_allclose(levels.value, expect, rtol=1e-9, atol=1e-12)
    lands = np.ones_like(nz) if policy.expand == "fill_all" else nz
    q = np.zeros(pq.p.size)
    for j in range(pq.p.size):
        for k in range(levels.level.size):
            q[j] += lands[j] * W[j, k] * levels.value[k]
    np.testing.assert_allclose(q, pq.q_raw, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("lesson", LESSONS)
def test_shares_and_divisors_rebuild_the_sweeps_q(lesson):
    hist = learn.lesson_histogram(lesson)
    for _, result in sweeps(hist):
        for _, pq in every_candidate(result):
            check_levels_rebuild_q(result, pq)


@settings(max_examples=25, deadline=None)
@given(small_histograms())
# the seed's float boundaries give level 5 a 1.8e-15 sliver of bin 14 (count 21): value 21
@example(
    (
        np.r_[1, 26, 0, 8, 0, 18, np.zeros(8), 21, 27, 0, 0, 0, 13, 22, 14, 0, 1, 20, 0, 0, 0, 8.0],
        12,
    )
)
def test_shares_and_divisors_rebuild_q_on_random_histograms(case):
    counts, T = case
    hist = Histogram.from_counts(counts)
    for _, result in sweeps(hist, T):
        for c in (result.candidates[0], result.best, result.candidates[-1]):
            check_levels_rebuild_q(result, result.distributions(int(c)))


def test_level_table_rows_and_members():
    result = learn.learn_sweep(learn.lesson_histogram("Ramp"), "seed", 8)
    pq = result.distributions(19)
    levels = learn.level_table(result, pq)
    assert levels.members[0] == "0, 1, 2 x 0.375"  # 19 / 8 = 2.375 bins per level
    assert levels.members[1] == "2 x 0.625, 3, 4 x 0.75"
    np.testing.assert_allclose(levels.start, np.arange(8) * 19 / 8)
    assert list(levels.rows()) == list(range(8))
    assert list(levels.rows(2)) == [0, 1, 6, 7]
    assert list(levels.rows(4)) == list(range(8))


def test_merge_summary_for_each_merge():
    hist = learn.lesson_histogram("Bulk, gap, one outlier")
    seed = learn.learn_sweep(hist, "seed", 8)
    m = learn.merge_summary(seed, seed.distributions(19))
    assert (m.kind, m.window_bins, m.bins_per_level, m.remainder) == ("fractional", 19, 2.375, 0)
    ort = learn.learn_sweep(hist, "onnxruntime", 8)
    pq = ort.distributions(16)  # 33 bins: 4 whole bins a level, 1 left over
    m = learn.merge_summary(ort, pq)
    assert (m.kind, m.window_bins, m.bins_per_level, m.remainder) == ("whole", 33, 4.0, 1)
    assert m.remainder_policy == "orphan"
    assert pq.q_raw[-1] == 0 and pq.p_raw[-1] > 0  # the orphan bin keeps Q = 0
    mo = learn.learn_sweep(hist, "modelopt", 8)
    m = learn.merge_summary(mo, mo.distributions(13))
    np.testing.assert_allclose(m.linspace, np.linspace(0, 13, 9))
    np.testing.assert_array_equal(mo.distributions(13).group_edges, np.ceil(m.linspace))


# --------------------------------------------------------------------------------------
# step 5: the per-bin table
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bin_table_terms_sum_to_the_kl_and_notes_say_why(variant):
    hist = learn.lesson_histogram("Bulk, gap, one outlier")
    result = learn.learn_sweep(hist, variant, 8)
    for c, pq in every_candidate(result):
        rows = learn.bin_table(result, pq)
        assert len(rows["bin"]) == pq.p.size
        if math.isfinite(pq.kl):
            assert plain_sum(rows["term"]) == pytest.approx(pq.kl, rel=1e-9, abs=1e-12)
        zero_q = [j for j in range(pq.p.size) if pq.p[j] > 0 and pq.q[j] == 0]
        tag = "adds 1" if result.policy.zero_q == "one" else "KL is inf"
        assert [j for j, n in enumerate(rows["note"]) if tag in n] == zero_q, (variant, c)
        f = learn.fold(result, pq)
        assert ("folded in" in rows["note"][-1]) == (f.tail_hi > 0)


def test_the_seed_pays_plus_one_for_the_outlier_in_the_gap():
    hist = learn.lesson_histogram("Bulk, gap, one outlier")
    result = learn.learn_sweep(hist, "seed", 8)
    # 19: what the seed's own loop, transcribed line by line, answers on these counts
    assert result.best == seed_loop(np.asarray(hist.counts, dtype=float), 8).best == 19
    pq = result.distributions(19)
    # bins 16-28 are empty: the tail past bin 18 (the lesson's 20 counts in bin 29) folds
    # into bin 18, whose level's own bins (16.6 to 19) hold nothing, so q = 0 there and the
    # seed's rule adds exactly 1
    assert pq.terms[-1] == 1.0 and pq.q[-1] == 0 and pq.p[-1] == 20


def test_smoothing_summary():
    result = learn.learn_sweep(learn.lesson_histogram("Bulk, gap, one outlier"), "mxnet", 8)
    x = np.array([0.0, 2.0, 0.0, 5.0, 1.0])
    s = learn.smoothing_summary(result, x)
    assert (s.rule, s.zeros, s.nonzeros) == ("mxnet", 2, 3)
    assert s.taken == pytest.approx(1e-4 * 2 / 3)
    seed = learn.learn_sweep(learn.lesson_histogram("Ramp"), "seed", 8)
    assert learn.smoothing_summary(seed, x).eps == 0.0


# --------------------------------------------------------------------------------------
# the seed's example
# --------------------------------------------------------------------------------------
def test_seed_example_is_2047_and_the_kl_falls_all_the_way():
    ex = learn.seed_example()
    r = ex.result
    assert r.best == 2047
    assert r.candidates[0] == 128 and r.candidates[-1] == 2047  # 2048 is never tried
    assert np.all(np.diff(r.kl) < 0)
    assert np.all(np.diff(ex.penalty) < 0)
    assert ex.tail_at_first == pytest.approx(1 - 128 * 127 / (2048 * 2047), rel=1e-12)


def test_scale_penalty_splits_the_unnormalised_kl():
    ex = learn.seed_example()
    counts = ex.result.histogram.counts
    total = plain_sum(counts)
    for c in (128, 700, 1500, 2047):
        kept = plain_sum(counts[:c])
        i = ex.result.index_of(c)
        assert ex.penalty[i] == pytest.approx(total * math.log(total / kept), rel=1e-9)
        pq = ex.result.distributions(c)
        sp, sq = plain_sum(pq.p), plain_sum(pq.q)
        shape = 0.0
        for p, q in zip(pq.p, pq.q, strict=True):
            if p > 0:
                shape += (p / sp) * math.log((p / sp) / (q / sq))
        assert ex.result.kl[i] == pytest.approx(ex.penalty[i] + sp * shape, rel=1e-9)
    signed = learn.learn_sweep(learn.lesson_histogram("Ramp"), "mxnet", 8)
    with pytest.raises(ValueError, match="unsigned"):
        learn.scale_penalty(signed)


# --------------------------------------------------------------------------------------
# learner questions
# --------------------------------------------------------------------------------------
def test_quantizer_codes():
    assert learn.quantizer_codes(8, unsigned=False) == (255, 128)
    assert learn.quantizer_codes(8, unsigned=True) == (256, 256)
    assert learn.quantizer_codes(4, unsigned=False) == (15, 8)


def test_levels_demo_is_the_sweep_and_the_metrics():
    from calib.demos import demo_histogram
    from calib.methods import clip_metrics

    d = learn.levels_demo()
    h = demo_histogram(d.demo)
    for T, best, amax, sqnr in zip(d.levels, d.best, d.amax, d.sqnr_int8_db, strict=True):
        r = kl_sweep(h, T, "seed")
        assert (r.best, r.amax) == (best, amax)
        assert sqnr == clip_metrics(h, amax, 8, False).sqnr_db
    # what the page says about this demo: 128 levels suit the int8 quantizer better
    assert d.sqnr_int8_db[d.levels.index(128)] > d.sqnr_int8_db[d.levels.index(256)]


def test_symmetric_demo():
    d = learn.symmetric_demo()
    assert d.x_min < 0 < d.x_max and -d.x_min < d.x_max / 10  # GELU: a small negative lobe
    assert d.signed_hist.is_signed and not d.abs_hist.is_signed
    assert d.amax_abs == kl_sweep(d.abs_hist, 128, "seed").amax
    for amax, code in ((d.amax_abs, d.lowest_code_abs), (d.amax_signed, d.lowest_code_signed)):
        assert code == round(d.x_min / (amax / 127))
        assert -127 < code < 0


def test_relu_threshold_falls_with_the_zero_fraction_and_the_fix_holds_it():
    r = learn.relu_spike()
    assert r.fractions[0] == 0.0
    seed = np.array(r.seed)
    assert np.all(np.diff(seed) <= 0)
    moving = np.array(r.seed_best) > r.smallest  # strictly, until the smallest candidate
    assert np.all(np.diff(seed[moving]) < 0)
    assert r.seed_best[-1] == r.smallest  # a big enough spike drags it to the first candidate
    assert seed[-1] < seed[0] / 5
    # exact: the same candidate on the same edges is the same threshold, bit for bit
    assert len(set(r.seed_fixed)) == 1 and r.seed_fixed[0] == r.seed[0]
    assert len(set(r.modelopt)) == 1
    assert r.modelopt[0] == pytest.approx(r.seed[0], rel=0.01)


def test_relu_histogram_puts_the_zeros_in_bin_0():
    h0, h = learn.relu_histogram(0.0), learn.relu_histogram(0.5)
    assert h.counts[0] - h0.counts[0] == pytest.approx(h.total / 2, abs=1)
    np.testing.assert_array_equal(h.counts[1:], h0.counts[1:])
    with pytest.raises(ValueError, match="zero_fraction"):
        learn.relu_histogram(1.0)


def test_spike_terms_grow_with_the_kept_range():
    s = learn.spike_terms(0.5, (128, 400, 1407))
    assert s.bin0[0] == 0.0  # bin 0 is a level of its own at 128 kept bins
    assert s.bin0[0] < s.bin0[1] < s.bin0[2]
    np.testing.assert_allclose(s.level0_bins, np.array(s.candidates) / 128)
    r = kl_sweep(learn.relu_histogram(0.5), 128, "seed")
    for c, b0, rest in zip(s.candidates, s.bin0, s.rest, strict=True):
        assert b0 + rest == pytest.approx(r.kl[r.index_of(c)], rel=1e-9)


def test_raw_counts_and_normalised_choose_differently_because_of_plus_one():
    counts = learn.LESSONS["Bulk, gap, one outlier"].counts
    r = learn.raw_vs_normalised(counts, 8)
    assert r.raw.best != r.normalised.best
    # 19 and 15: the seed's own loop (transcribed line by line) on raw and normalised counts
    c = np.asarray(counts, dtype=float)
    assert (seed_loop(c, 8).best, seed_loop(c / c.sum(), 8).best) == (19, 15)
    assert (r.raw.best, r.normalised.best) == (19, 15)
    assert r.plus_ones[r.raw.index_of(r.raw.best)] == 1
    assert r.plus_ones[r.normalised.index_of(r.normalised.best)] == 0
    # every p log(p/q) term scales with the counts; only the +1s do not
    diff = r.normalised.kl - r.raw.kl / r.total
    np.testing.assert_allclose(diff, r.plus_ones * (1 - 1 / r.total), atol=1e-12)


def test_learn_sweep_starts_modelopt_at_target_bins():
    hist = learn.lesson_histogram("Ramp")
    r = learn.learn_sweep(hist, "modelopt", 6)
    assert r.candidates[0] == 6 and r.candidates[-1] == 32
    assert learn.learn_sweep(hist, "modelopt", 6, start_bin=10).candidates[0] == 10


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="lesson must be one of"):
        learn.lesson_histogram("nope")
    with pytest.raises(ValueError, match="no samples"):
        learn.symmetric_demo("Seed ramp")
