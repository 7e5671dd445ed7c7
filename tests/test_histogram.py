"""The Histogram value type: validation, construction, rebinning, merging, layouts."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from calib import Histogram
from calib.histogram import as_histogram


def test_counts_and_edges_are_copied_and_read_only():
    counts = np.array([1, 2, 3])
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    h = Histogram(counts, edges)
    counts[0] = 99
    assert h.counts[0] == 1
    with pytest.raises(ValueError):
        h.counts[0] = 5


def test_integer_counts_stay_integer_float_counts_become_float64():
    assert Histogram.from_counts([1, 2]).counts.dtype == np.int64
    assert Histogram.from_counts(np.array([1, 2], dtype=np.uint8)).counts.dtype == np.int64
    assert Histogram.from_counts([0.5, 2]).counts.dtype == np.float64


@pytest.mark.parametrize(
    ("counts", "edges", "match"),
    [
        ([1, -1, 2], [0, 1, 2, 3], "non-negative.*-1"),
        ([1, np.nan, 2], [0, 1, 2, 3], "finite.*nan"),
        ([1, np.inf, 2], [0, 1, 2, 3], "finite.*inf"),
        ([[1, 2], [3, 4]], [0, 1, 2], "1-D"),
        ([5], [0, 1], "at least 2 bins"),
        ([], [0], "at least 2 bins"),
        ([1, 2, 3], [0, 1, 2], r"len\(counts\) \+ 1 = 4"),
        ([1, 2, 3], [0, 1, 1, 2], "strictly increasing.*edges\\[1\\]"),
        ([1, 2, 3], [0, 1, np.inf, 3], "edges must be finite"),
        (["a", "b"], [0, 1, 2], "numeric"),
    ],
)
def test_bad_histograms_name_the_problem(counts, edges, match):
    with pytest.raises(ValueError, match=match):
        Histogram(np.array(counts), np.array(edges, dtype=float))


def test_from_samples_unsigned_and_signed():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    h = Histogram.from_samples(x, bins=6)
    assert h.edges[0] == 0 and h.edges[-1] == 3.0
    assert h.total == 5
    np.testing.assert_array_equal(h.counts, np.histogram(np.abs(x), bins=6, range=(0, 3))[0])
    s = Histogram.from_samples(x, bins=6, signed=True)
    assert s.edges[0] == -3.0 and s.edges[-1] == 3.0 and s.is_signed
    assert s.total == 5


def test_from_samples_refuses_non_finite_and_counts_them():
    x = np.array([1.0, np.nan, 2.0, np.inf])
    with pytest.raises(ValueError, match=r"2 non-finite values .* out of 4"):
        Histogram.from_samples(x)
    with pytest.raises(ValueError, match="empty"):
        Histogram.from_samples([])
    with pytest.raises(ValueError, match="bins must be at least 2"):
        Histogram.from_samples([1.0], bins=1)


def test_all_zero_samples_have_a_range_and_skip_zeros_makes_them_dead():
    h = Histogram.from_samples(np.zeros(10), bins=4)
    assert h.edges[-1] == 1.0 and h.counts[0] == 10 and not h.is_dead
    assert Histogram.from_samples(np.zeros(10), bins=4, skip_zeros=True).is_dead


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 1000), min_size=4, max_size=60),
    factor=st.sampled_from([1, 2, 3, 4]),
)
def test_rebin_keeps_the_total_and_sums_whole_groups(counts, factor):
    n = len(counts) - len(counts) % factor
    assume(n >= 2 * factor)
    h = Histogram.from_counts(counts[:n])
    r = h.rebin(n // factor)
    assert r.total == h.total
    assert r.counts.dtype == np.int64
    np.testing.assert_array_equal(r.counts, np.add.reduceat(h.counts, np.arange(0, n, factor)))
    np.testing.assert_allclose(r.edges, np.linspace(0, n, n // factor + 1))


def test_rebin_to_a_size_that_does_not_divide_splits_by_overlap():
    h = Histogram.from_counts([3, 3, 3])
    r = h.rebin(2)  # new bins [0, 1.5), [1.5, 3)
    np.testing.assert_allclose(r.counts, [4.5, 4.5])
    with pytest.raises(ValueError, match="at most the current 3 bins"):
        h.rebin(4)


def test_merge_keeps_every_count_and_the_bin_width():
    rng = np.random.default_rng(0)
    a = Histogram.from_samples(rng.standard_normal(1000), bins=64)
    b_samples = rng.standard_normal(1000) * 3
    # b on a's grid, extended: the merge must equal histogramming all the data on that grid
    w = a.bin_width
    grow = int(np.ceil((np.abs(b_samples).max() - a.edges[-1]) / w))
    grid = a.edges[0] + w * np.arange(a.n_bins + grow + 1)
    b = Histogram(np.histogram(np.abs(b_samples), bins=grid)[0], grid)
    m = a.merge(b)
    assert m.total == a.total + b.total
    assert m.counts.dtype == np.int64
    np.testing.assert_allclose(m.bin_width, w)
    np.testing.assert_array_equal(m.counts[: a.n_bins] - b.counts[: a.n_bins], a.counts)


def test_merge_symmetric_signed_grows_both_sides():
    rng = np.random.default_rng(1)
    a = Histogram.from_samples(rng.standard_normal(500), bins=40, signed=True)
    b = Histogram.from_samples(rng.standard_normal(500) * 4, bins=40, signed=True)
    m = a.merge(b)
    assert np.isclose(m.edges[0], -m.edges[-1])
    assert m.edges[-1] >= b.edges[-1] - 1e-9
    assert np.isclose(m.total, a.total + b.total)


def test_fold_and_mirror():
    s = Histogram([1, 2, 3, 4], [-2.0, -1.0, 0.0, 1.0, 2.0])
    f = s.fold()
    np.testing.assert_array_equal(f.counts, [2 + 3, 1 + 4])
    np.testing.assert_array_equal(f.edges, [0.0, 1.0, 2.0])
    m = f.mirror()  # the data together with its negation: every count on both sides
    assert m.total == 2 * f.total and m.is_signed and m.n_bins == 4
    assert m.counts.dtype == np.int64
    g = Histogram([1, 2], [0.0, 1.0, 2.0]).mirror()
    np.testing.assert_array_equal(g.counts, [2, 1, 1, 2])
    np.testing.assert_array_equal(g.edges, [-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(g.fold().counts, [2, 4])
    with pytest.raises(ValueError, match="symmetric"):
        Histogram([1, 2, 3], [-1.0, 0.0, 1.0, 2.0]).fold()


def test_as_histogram_and_max_abs():
    h = as_histogram([0, 3, 0, 1, 0])
    assert h.edges[-1] == 5 and h.max_abs == 4.0
    assert as_histogram(h) is h
    assert Histogram.from_counts([0, 0]).max_abs == 0.0
