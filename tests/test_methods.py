"""Tests of calib.methods: exact clip metrics against slow references, invariants, calibrators."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import calib
import calib._mse
import calib.limits
import calib.methods as methods
from calib import reference
from calib.histogram import Histogram
from calib.methods import (
    METHODS,
    Calibration,
    ClipMetrics,
    amax_max,
    amax_mse,
    amax_percentile,
    calibrate,
    clip_metrics,
    clip_mse_curve,
)
from calib.sweep import kl_sweep


# -- slow, obviously-correct references ------------------------------------------------------
def quantize(x, amax, num_bits=8, unsigned=False):
    """The quantizer exactly as the spec writes it, on signed x."""
    qmax = 2**num_bits - 1 if unsigned else 2 ** (num_bits - 1) - 1
    scale = amax / qmax
    low = 0 if unsigned else -qmax
    return scale * np.clip(np.round(x / scale), low, qmax)


def reference_metrics(h, amax, num_bits=8, unsigned=False, points=4000):
    """Midpoint rule with ``points`` points per bin, on signed x, no folding, no closed form."""
    frac = (np.arange(points) + 0.5) / points
    x = h.edges[:-1, None] + frac * np.diff(h.edges)[:, None]
    w = np.repeat(h.counts.astype(float) / h.total / points, points).reshape(x.shape)
    err = (x - quantize(x, amax, num_bits, unsigned)) ** 2
    outside = (x < 0) | (x > amax) if unsigned else np.abs(x) > amax
    return float((w * err).sum()), float((w * outside).sum()), float((w * x * x).sum())


def gaussian(n=100_000, bins=2048, signed=False, seed=0):
    x = np.random.default_rng(seed).standard_normal(n)
    return x, Histogram.from_samples(x, bins=bins, signed=signed)


def exact_gaussian(bins=2048, sigmas=6.0):
    """|x| for x ~ N(0, 1) on [0, sigmas], counts from the exact cdf: no sampling noise."""
    edges = np.linspace(0.0, sigmas, bins + 1)
    cdf = np.array([math.erf(e / math.sqrt(2)) for e in edges])
    return Histogram(np.diff(cdf), edges)


def random_histogram(rng, signed):
    n = int(rng.integers(8, 40))
    counts = rng.integers(0, 50, n) * (rng.random(n) < 0.8)
    counts[rng.integers(n)] += 1
    widths = rng.uniform(0.2, 1.0, n) * rng.uniform(0.01, 3.0)
    start = -widths.sum() * rng.uniform(0.2, 0.8) if signed else 0.0
    return Histogram(counts, start + np.concatenate([[0.0], np.cumsum(widths)]))


# -- clip_metrics against the references -----------------------------------------------------
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize(("num_bits", "unsigned"), [(8, False), (4, False), (3, True), (8, True)])
def test_clip_metrics_matches_fine_integration(signed, num_bits, unsigned):
    rng = np.random.default_rng(1000 + 7 * num_bits + 3 * signed + unsigned)
    for _ in range(4):
        h = random_histogram(rng, signed)
        top = np.abs(h.edges).max()
        for amax in rng.uniform(0.05, 1.3, 3) * top:
            m = clip_metrics(h, amax, num_bits, unsigned)
            mse, clipped, power = reference_metrics(h, amax, num_bits, unsigned)
            assert m.mse == pytest.approx(mse, rel=1e-4, abs=1e-12)
            assert m.clipped_fraction == pytest.approx(clipped, abs=1e-3)
            assert m.signal_power == pytest.approx(power, rel=1e-6)
            assert m.sqnr_db == pytest.approx(10 * math.log10(power / mse), abs=1e-3)
            # the curve integrates the same density cell by cell (calib._mse)
            curve = clip_mse_curve(h, [amax], num_bits, unsigned)[0]
            assert curve == pytest.approx(m.mse, rel=1e-12)


def test_clip_metrics_matches_monte_carlo_from_samples():
    x, h = gaussian()
    for amax in [1.0, 2.5, 3.5, 4.0, h.edges[-1]]:
        m = clip_metrics(h, amax)
        assert m.mse == pytest.approx(np.mean((x - quantize(x, amax)) ** 2), rel=0.02)
        assert m.clipped_fraction == pytest.approx(np.mean(np.abs(x) > amax), abs=2e-4)
        assert m.signal_power == pytest.approx(np.mean(x * x), rel=1e-3)


def test_uniform_on_the_grid_has_the_textbook_error():
    # |x| uniform on [0, amax] with amax = qmax * scale: every step is whole, mse = scale^2 / 12.
    h = Histogram(np.full(10, 3), np.linspace(0.0, 12.7, 11))
    m = clip_metrics(h, 12.7)
    assert m.scale == pytest.approx(0.1)
    assert m.mse == pytest.approx(0.1**2 / 12, rel=1e-12)
    assert m.clipped_fraction == 0.0
    assert m.signal_power == pytest.approx(12.7**2 / 3, rel=1e-12)


def test_clipping_error_is_closed_form():
    # All mass on [2, 3], amax 1: every value clips to 1, mse = E[(x - 1)^2] = (1 + 2 + 4) / 3.
    h = Histogram([0, 0, 5], [0.0, 1.0, 2.0, 3.0])
    m = clip_metrics(h, 1.0)
    assert m.mse == pytest.approx(7 / 3, rel=1e-12)
    assert m.clipped_fraction == 1.0


def test_bin_straddling_amax_is_split_exactly():
    h = Histogram([4, 4], [0.0, 1.0, 2.0])
    assert clip_metrics(h, 1.25).clipped_fraction == pytest.approx(0.375)


# -- invariants ------------------------------------------------------------------------------
def _fields(m: ClipMetrics) -> np.ndarray:
    return np.array([m.amax, m.clipped_fraction, m.mse, m.signal_power, m.sqnr_db, m.scale])


@pytest.mark.parametrize("num_bits", [4, 8])
def test_mse_falls_then_rises_for_a_gaussian(num_bits):
    h = exact_gaussian()
    amaxes = np.linspace(0.5, 6.0, 56)
    mse = clip_mse_curve(h, amaxes, num_bits)
    best = int(np.argmin(mse))
    assert 0 < best < amaxes.size - 1
    assert (np.diff(mse[: best + 1]) < 0).all()
    assert (np.diff(mse[best:]) > 0).all()


def test_clipped_fraction_is_monotone_and_zero_beyond_max():
    _, h = gaussian(signed=True)
    fractions = [clip_metrics(h, a).clipped_fraction for a in np.linspace(0.1, 6.0, 40)]
    assert (np.diff(fractions) <= 0).all()
    assert fractions[0] > 0.9
    assert clip_metrics(h, amax_max(h)).clipped_fraction == 0.0
    assert clip_metrics(h, 2 * amax_max(h)).clipped_fraction == 0.0


def test_scaling_counts_changes_nothing():
    _, h = gaussian(bins=256)
    for factor in [7, 1e-3, 1e80]:  # the counts' total stays within MAX_MAGNITUDE (1e100)
        scaled = Histogram(h.counts * factor, h.edges)
        want = _fields(clip_metrics(h, 2.0))
        np.testing.assert_allclose(_fields(clip_metrics(scaled, 2.0)), want, rtol=1e-12)
    with pytest.raises(ValueError, match="MAX_MAGNITUDE"):
        Histogram(h.counts * 1e250, h.edges)


def test_scaling_x_and_amax_scales_mse_by_the_square():
    _, h = gaussian(bins=512)
    for k in [0.01, 3.0, 1e4]:
        big = Histogram(h.counts, h.edges * k)
        m, mk = clip_metrics(h, 2.7), clip_metrics(big, 2.7 * k)
        assert mk.mse == pytest.approx(k * k * m.mse, rel=1e-9)
        assert mk.signal_power == pytest.approx(k * k * m.signal_power, rel=1e-12)
        assert mk.clipped_fraction == pytest.approx(m.clipped_fraction, rel=1e-12)
        assert mk.sqnr_db == pytest.approx(m.sqnr_db, abs=1e-9)


def test_signed_histogram_equals_its_fold_and_its_mirror():
    _, signed = gaussian(bins=1024, signed=True)
    folded = signed.fold()
    mirrored = folded.mirror()
    for amax in [0.7, 2.0, 3.9]:
        want = _fields(clip_metrics(folded, amax))
        np.testing.assert_allclose(_fields(clip_metrics(signed, amax)), want, rtol=1e-9)
        np.testing.assert_allclose(_fields(clip_metrics(mirrored, amax)), want, rtol=1e-9)


def test_unsigned_quantizer_clips_negative_values_to_zero():
    h = Histogram([1, 1], [-1.0, 0.0, 1.0])
    m = clip_metrics(h, 1.0, unsigned=True)
    assert m.clipped_fraction == pytest.approx(0.5)
    # Half the mass is x < 0, which becomes 0: it contributes E[x^2] = 1/3 over that half.
    assert m.mse == pytest.approx(0.5 / 3 + 0.5 * (1 / 255) ** 2 / 12, rel=1e-9)


def test_curve_keeps_shape_and_matches_metrics():
    _, h = gaussian(bins=300)
    grid = np.array([[1.0, 2.0], [3.0, 4.0]])
    curve = clip_mse_curve(h, grid, num_bits=6)
    assert curve.shape == (2, 2)
    one_at_a_time = [[clip_metrics(h, a, num_bits=6).mse for a in row] for row in grid]
    # Each MSE is a dot product of 300 non-negative terms; a (4, 300) block and a (1, 300)
    # one may be summed in different orders by BLAS (they differ in the last bit on
    # OpenBLAS 0.3.31). Either order is within 299 * 2**-53 (3.3e-14) of the exact sum,
    # so the two are within 7e-14 of each other: rtol 1e-12 has room for any BLAS.
    np.testing.assert_allclose(curve, one_at_a_time, rtol=1e-12, atol=0)
    assert clip_mse_curve(h, []).shape == (0,)


def test_dead_histogram_has_defined_metrics():
    dead = Histogram.from_counts(np.zeros(16))
    m = clip_metrics(dead, 1.0)
    assert (m.clipped_fraction, m.mse, m.signal_power) == (0.0, 0.0, 0.0)
    assert math.isnan(m.sqnr_db)
    assert m.scale == pytest.approx(1 / 127)
    assert (clip_mse_curve(dead, [1.0, 2.0]) == 0).all()


def test_bare_counts_are_unit_bins_from_zero():
    counts = np.arange(1, 11)
    assert clip_metrics(counts, 5.0) == clip_metrics(Histogram.from_counts(counts), 5.0)


# -- calibrators -----------------------------------------------------------------------------
def test_max_is_the_outer_edge_of_the_data():
    x, h = gaussian()
    assert amax_max(h) == pytest.approx(np.abs(x).max(), rel=1e-12)
    _, hs = gaussian(signed=True)
    assert amax_max(hs) == pytest.approx(np.abs(x).max(), rel=1e-12)
    assert amax_max([0, 3, 1, 0, 0]) == 3.0
    assert amax_max(Histogram([2, 0, 0, 0], [-4.0, -3.0, 0.0, 1.0, 2.0])) == 4.0


@pytest.mark.parametrize("p", [50.0, 99.0, 99.9, 99.99])
def test_percentile_is_within_a_bin_of_the_sorted_samples(p):
    x, h = gaussian()
    need = math.ceil(p * x.size / 100 - 1e-9)  # samples at or below the percentile
    want = np.sort(np.abs(x))[need - 1]
    got = amax_percentile(h, p)
    assert abs(got - want) <= h.bin_width * (1 + 1e-9)
    # The lower edge of the bin where the cdf crosses p: never above the sample percentile.
    assert got <= want


def test_percentile_is_modelopts_formula():
    _, h = gaussian(bins=2048)
    cdf = np.cumsum(h.counts / h.counts.sum())  # ModelOpt's arithmetic, to the bit
    for p in [0.0, 12.5, 99.9, 99.99, 100.0]:
        modelopt = h.edges[np.searchsorted(cdf, p / 100)]
        assert amax_percentile(h, p, float_cdf=True) == modelopt
        assert amax_percentile(h, p) <= modelopt


def test_percentile_does_not_inherit_the_float_cdf_skip():
    # 99990 of 100000 samples: ModelOpt's summed cdf ends an ulp short of 0.9999 in the
    # bin that holds the 99990th sample and skips to the next non-empty bin, 8 bins out.
    x, h = gaussian()
    want = np.sort(np.abs(x))[99_989]
    assert amax_percentile(h) <= want < amax_percentile(h) + h.bin_width
    assert amax_percentile(h, float_cdf=True) > want + 5 * h.bin_width


def test_percentile_edge_values():
    h = Histogram([5, 0, 3, 2, 0], np.arange(6.0))
    assert amax_percentile(h, 0.0) == 0.0
    assert amax_percentile(h, 100.0) == 3.0  # lower edge of the last non-empty bin
    assert amax_percentile(h, 50.0) == 0.0
    assert amax_percentile(h, 50.1) == 2.0


def test_percentile_of_a_signed_histogram_uses_abs_x():
    x, hs = gaussian(signed=True)
    assert hs.fold().n_bins == 1024
    # the same edge, read off |edges| of the signed side or off the fold: linspace(-m, m) is
    # symmetric only to rounding (1e-15 here), so the two may differ in the last bits
    assert amax_percentile(hs, 99.9) == pytest.approx(amax_percentile(hs.fold(), 99.9), rel=1e-12)
    want = np.percentile(np.abs(x), 99.9)
    assert abs(amax_percentile(hs, 99.9) - want) <= 2 * hs.bin_width
    # An odd signed histogram: the zero bin [-w/2, w/2] becomes |x| bin [0, w/2].
    odd = Histogram([1, 8, 1], [-1.5, -0.5, 0.5, 1.5])
    assert amax_percentile(odd, 50.0) == 0.0
    assert amax_percentile(odd, 85.0) == 0.5


def test_percentile_on_a_zero_spike_gives_zero_like_modelopt():
    relu = np.zeros(2048)
    relu[0], relu[1:] = 1e6, 0.01
    assert amax_percentile(relu, 99.99) == 0.0
    cal = calibrate(relu, "percentile")
    assert cal.amax == 0.0 and not cal.dead
    assert cal.metrics.clipped_fraction == 1.0
    assert cal.metrics.mse == cal.metrics.signal_power
    assert cal.metrics.sqnr_db == 0.0


def test_mse_calibrator_is_the_argmin_over_edges():
    _, h = gaussian()
    got = amax_mse(h, start_bin=1000, stride=3)
    candidates = h.edges[1000::3]
    # a choice, scored by the same call on the same candidates: exact
    assert got == candidates[np.argmin(clip_mse_curve(h, candidates))]
    assert 3.0 < amax_mse(h) < amax_max(h)
    # Fewer bits clip harder (about 2.6 sigma for 4 bits).
    assert 2.2 < amax_mse(h, num_bits=4, start_bin=1) < 3.0


@st.composite
def mse_cases(draw):
    """A histogram (uniform or not, |x| or signed and off-centre, with spikes, gaps, float
    counts) and a quantizer of any width the core takes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(2, 300))
    kind = draw(st.sampled_from(["int", "spike", "sparse", "float", "one"]))
    c = rng.integers(0, 1000, n).astype(float)
    if kind == "spike":
        c[draw(st.integers(0, n - 1))] = 1e6
    elif kind == "sparse":
        c *= rng.random(n) < 0.15
    elif kind == "float":
        c = rng.uniform(0, 1, n)
    elif kind == "one":
        c = np.zeros(n)
    c[draw(st.integers(0, n - 1))] += 1
    signed = draw(st.booleans())
    if draw(st.booleans()):
        widths = np.full(n, rng.uniform(0.01, 3))
    else:
        widths = rng.uniform(0.05, 1.0, n) * rng.uniform(0.01, 3)
    start = -widths.sum() * rng.uniform(0.1, 0.9) if signed else 0.0
    h = Histogram(c, start + np.concatenate([[0.0], np.cumsum(widths)]))
    num_bits = draw(st.sampled_from([2, 3, 4, 8, 10, 12, 16]))
    return h, num_bits, draw(st.booleans())


@settings(max_examples=100, deadline=None)
@given(mse_cases())
def test_the_mse_curve_is_clip_metrics_clip_by_clip(case):
    """Issue 9: the search is linear in the bins (calib._mse), the reference quadratic
    (clip_metrics at every clip). They agree to 1e-10, about a thousand times the rounding
    of the reference's own sums."""
    h, num_bits, unsigned = case
    e = np.abs(h.edges)
    amaxes = np.unique(np.concatenate([e[e > 0], np.abs(h.edges).max() * np.array([1.5, 0.3])]))
    got = clip_mse_curve(h, amaxes, num_bits, unsigned)
    want = reference.clip_mse_direct(h, amaxes, num_bits, unsigned)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)
    # the search's choice is a minimum of the reference curve, to the same tolerance
    best = amax_mse(h, num_bits, unsigned, start_bin=1)
    fold = methods._abs_cumulative(h)[0][1:]
    scores = reference.clip_mse_direct(h, fold, num_bits, unsigned)
    chosen = reference.clip_mse_direct(h, [best], num_bits, unsigned)[0]
    assert chosen <= scores.min() * (1 + 1e-9)


@pytest.mark.slow
def test_the_mse_search_costs_cells_not_bins_squared(monkeypatch):
    """At 8 bits every candidate costs at most qmax + 1 = 128 cells, so 65,536 bins search in
    8.4 million cells (the direct search would take 4.3 billion piece integrals); at 16 bits
    that many bins would need 1.6 billion and is refused past MAX_SEARCH_CELLS."""
    h = Histogram.from_samples(np.random.default_rng(0).standard_normal(200_000), 2**16)
    pc = methods._pieces(h)
    f = calib._mse.density(pc.lo, pc.hi, pc.p, pc.neg)
    assert calib._mse.search_cells(f, h.edges[128:], 127) <= (2**16 - 127) * 128
    assert 3.0 < amax_mse(h) < amax_max(h)
    with pytest.raises(ValueError, match=r"MAX_SEARCH_CELLS.*stride"):
        amax_mse(h, num_bits=16)
    assert amax_mse(h, num_bits=16, stride=256) > 3.0  # a coarser search fits
    monkeypatch.setattr(calib.limits, "MAX_SEARCH_CELLS", 10**6)
    with pytest.raises(ValueError, match="MAX_SEARCH_CELLS"):
        amax_mse(h)


def test_mse_calibrator_can_choose_no_clipping():
    h = Histogram([1, 1, 1, 1], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert amax_mse(h, start_bin=1) == 4.0


def test_mse_calibrator_on_a_signed_histogram_matches_its_fold():
    _, hs = gaussian(bins=1024, signed=True)
    # the same edge chosen; its value may differ in the last bits (see the percentile test)
    want = amax_mse(hs.fold(), start_bin=64)
    assert amax_mse(hs, start_bin=64) == pytest.approx(want, rel=1e-12)


# -- calibrate -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["max", "percentile", "mse"])
def test_calibrate_measures_the_clip_it_chose(method):
    _, h = gaussian()
    cal = calibrate(h, method, num_bits=8)
    assert isinstance(cal, Calibration)
    assert cal.method == method and not cal.dead
    assert cal.metrics == clip_metrics(h, cal.amax)
    assert isinstance(cal.note, str) and cal.sweep is None
    direct = {"max": amax_max, "percentile": amax_percentile, "mse": amax_mse}[method]
    assert cal.amax == direct(h)


def test_calibrate_passes_percentile_and_mse_policies():
    _, h = gaussian()
    assert calibrate(h, "percentile", percentile=99.0).amax == amax_percentile(h, 99.0)
    got = calibrate(h, "mse", num_bits=6, unsigned=True, start_bin=10, stride=2).amax
    assert got == amax_mse(h, 6, True, start_bin=10, stride=2)


@pytest.mark.parametrize("method", METHODS)
def test_dead_histogram_answers_zero_for_every_method(method):
    cal = calibrate(np.zeros(2048), method)
    assert cal.dead and cal.amax == 0.0
    assert cal.sweep is None and "dead" in cal.note
    assert cal.metrics.mse == 0.0 and math.isnan(cal.metrics.sqnr_db)
    assert amax_max(np.zeros(8)) == 0.0
    assert amax_percentile(np.zeros(8)) == 0.0
    assert amax_mse(np.zeros(8), start_bin=1) == 0.0


def test_entropy_uses_the_kl_sweep():
    _, h = gaussian()
    cal = calibrate(h, "entropy")
    result = kl_sweep(h, variant="seed")
    assert cal.amax == pytest.approx(result.amax)
    assert cal.sweep.amax == result.amax
    assert cal.metrics == clip_metrics(h, cal.amax)


def test_entropy_passes_variant_policies_and_bit_width():
    _, h = gaussian()
    cal = calibrate(h, "entropy", variant="modelopt")
    assert cal.amax == pytest.approx(kl_sweep(h, variant="modelopt").amax)
    # Not signed int8 and no target_bins: ModelOpt's 2**(num_bits - 1 + unsigned) levels.
    cal4 = calibrate(h, "entropy", num_bits=4)
    assert cal4.amax == pytest.approx(kl_sweep(h, target_bins=8).amax)
    assert cal4.metrics == clip_metrics(h, cal4.amax, num_bits=4)
    cal_t = calibrate(h, "entropy", num_bits=4, target_bins=15)
    assert cal_t.amax == pytest.approx(kl_sweep(h, target_bins=15).amax)


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("amax", [0, -1.0, math.nan, math.inf, "2", True])
def test_bad_amax(amax):
    with pytest.raises(ValueError, match="amax"):
        clip_metrics([1, 2, 3], amax)


def test_bad_amaxes():
    with pytest.raises(ValueError, match=r"amaxes .* -1\.0 at index 2"):
        clip_mse_curve([1, 2, 3], [1.0, 2.0, -1.0])
    with pytest.raises(ValueError, match="amaxes"):
        clip_mse_curve([1, 2, 3], ["a"])


@pytest.mark.parametrize("num_bits", [1, 17, 8.0, True, None])
def test_bad_num_bits(num_bits):
    with pytest.raises(ValueError, match="num_bits"):
        clip_metrics([1, 2, 3], 1.0, num_bits=num_bits)
    with pytest.raises(ValueError, match="num_bits"):
        calibrate([1, 2, 3], "max", num_bits=num_bits)


def test_bad_unsigned():
    with pytest.raises(ValueError, match="unsigned"):
        clip_metrics([1, 2, 3], 1.0, unsigned="yes")


@pytest.mark.parametrize("percentile", [-0.1, 100.5, math.nan, "99"])
def test_bad_percentile(percentile):
    with pytest.raises(ValueError, match="percentile"):
        amax_percentile([1, 2, 3], percentile)
    with pytest.raises(ValueError, match="percentile"):
        calibrate([1, 2, 3], "percentile", percentile=percentile)


def test_bad_method():
    with pytest.raises(ValueError, match=r"method .*'kl'"):
        calibrate([1, 2, 3], "kl")


def test_bad_policies():
    with pytest.raises(ValueError, match="policies"):
        calibrate([1, 2, 3], "max", stride=2)
    with pytest.raises(ValueError, match="policies"):
        calibrate([1, 2, 3], "mse", target_bins=8)


def test_bad_mse_search():
    with pytest.raises(ValueError, match=r"start_bin.*200"):
        amax_mse(np.ones(100), start_bin=200)
    with pytest.raises(ValueError, match="stride"):
        amax_mse(np.ones(100), start_bin=1, stride=0)
    with pytest.raises(ValueError, match="start_bin"):
        amax_mse(np.ones(100), start_bin=0, stride=200)


def test_docstring_examples():
    assert doctest.testmod(methods).failed == 0


def test_core_imports_numpy_only():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(methods))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {name.split(".")[0] for name in names} <= {
        "__future__",
        "calib",
        "dataclasses",
        "math",
        "typing",
        "numpy",
    }
