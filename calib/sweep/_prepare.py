"""Validation, the policies that act once on the histogram, each candidate's window, and the
rule that picks the minimum (ties included).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from calib.histogram import Histogram
from calib.policies import DEFAULT_TARGET_BINS, TARGET_BINS_MIN, Policy


# --------------------------------------------------------------------------------------
# validation and preparation
# --------------------------------------------------------------------------------------
def _to_layout(h: Histogram, policy: Policy) -> Histogram:
    """The histogram in the policy's layout: a symmetric signed one folded to |x|, one of
    |x| mirrored to x.

    A signed histogram that is not symmetric around 0 (``np.histogram(x, 2048)`` of data
    whose range is not [-m, m]; a histogram of negative values only) is refused: the half
    window counts bins outwards from the middle bin, which is then not where 0 is, and
    would answer a clip measured from somewhere else (amax -5.0 for negative-only data).
    Re-centring it exactly would need 0 to fall on its grid of edges, which such a
    histogram's edges almost never do, and moving counts to a new grid would invent where
    inside a bin the values were.
    """
    if policy.layout == "unsigned" and h.is_signed:
        return h.fold()
    if policy.layout == "signed" and not h.is_signed:
        return h.mirror()
    if policy.layout == "signed" and not h.is_symmetric:
        raise ValueError(
            f"layout='signed' needs a histogram of x on a range symmetric around 0, [-m, m]; "
            f"this one spans [{h.edges[0]:.6g}, {h.edges[-1]:.6g}]. Histogram the data on "
            "[-m, m] (Histogram.from_samples(x, signed=True), or np.histogram(x, bins, "
            "range=(-m, m)) with m = max|x|)"
        )
    return h


def _check_target_bins(target_bins: Any, variant: str, n_bins: int) -> int:
    T = DEFAULT_TARGET_BINS[variant] if target_bins is None else target_bins
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)):
        raise ValueError(f"target_bins must be an integer, got {target_bins!r}")
    if T < TARGET_BINS_MIN:
        # one level is no quantizer (2 bits give 2), and the seed family's merge would have
        # one level that is both its first and its last, which the sweep does not model
        raise ValueError(
            f"target_bins must be at least {TARGET_BINS_MIN} (the levels of a 2-bit "
            f"quantizer), got {T}"
        )
    if T >= n_bins:
        raise ValueError(f"target_bins must be less than the number of bins ({n_bins}), got {T}")
    return int(T)


@dataclasses.dataclass
class _Prep:
    """Counts after the policies that act once, and each candidate's window [a, b)."""

    h: np.ndarray  # float64 counts, zero spike and histogram normalisation applied
    T: int
    cand: np.ndarray  # candidate numbers
    a: np.ndarray  # window start (bin index), per candidate
    b: np.ndarray  # window end (exclusive)
    tail_lo: np.ndarray  # mass left of the window, folded into bin a
    tail_hi: np.ndarray  # mass right of the window, folded into bin b - 1
    thresholds: np.ndarray
    whole_counts: bool = True  # every count a whole number (prefix sums of them are exact)


def prepared_counts(h: Histogram, policy: Policy) -> np.ndarray:
    """The counts a sweep searches: ``h``'s counts (as float64, a new array) after the
    policies that act once, before any candidate: ModelOpt's ``bins[0] = bins[1]``
    (``zero_spike="copy_next"``), then ncnn's normalisation of the whole histogram to sum 1
    (``normalize="histogram"``; a dead histogram stays all zero).

    ``h`` is the histogram as swept (``SweepResult.histogram``: already folded or mirrored
    to the policy's layout).
    """
    c = h.counts.astype(np.float64)  # a copy: the caller's counts are never touched
    if policy.zero_spike == "copy_next":
        c[0] = c[1]
    if policy.normalize == "histogram" and c.sum() > 0:
        c = c / c.sum()
    return c


def _prepare(h: Histogram, T: int, policy: Policy) -> _Prep:
    n = h.n_bins
    c = prepared_counts(h, policy)
    if policy.candidates == "kept_bins":
        cand = np.arange(T, n)
        a, b = np.zeros_like(cand), cand.copy()
    elif policy.candidates == "modelopt":
        if policy.start_bin > n:
            raise ValueError(
                f"start_bin must be at most the number of bins ({n}), got {policy.start_bin}"
            )
        cand = np.arange(policy.start_bin, n + 1, policy.stride)
        a, b = np.zeros_like(cand), cand.copy()
    else:  # half_window
        z = n // 2
        cand = np.arange(T // 2, z + 1)
        a, b = z - cand, np.minimum(z + cand + 1, n)
    if cand.size == 0:
        raise ValueError(f"no candidates: target_bins={T} leaves none among {n} bins")
    need_whole_levels = policy.merge in ("fractional", "whole")
    if need_whole_levels and (b - a).min() < T:
        raise ValueError(
            f"merge={policy.merge!r} needs every candidate to keep at least target_bins={T} "
            f"bins; the smallest keeps {(b - a).min()} (raise start_bin)"
        )
    H = np.concatenate([[0.0], np.cumsum(c)])
    # the mass right of each window summed from the right: H[-1] - H[b] would lose a tail
    # of tiny counts behind a large prefix (an empty edge bin would then look empty in P)
    S = np.concatenate([np.cumsum(c[::-1])[::-1], [0.0]])
    e = h.edges
    if policy.threshold == "edge":
        thr = e[b]
    else:
        thr = e[b] + 0.5 * (e[b] - e[b - 1])
    return _Prep(
        h=c, T=T, cand=cand, a=a, b=b, tail_lo=H[a], tail_hi=S[b],
        thresholds=np.asarray(thr, dtype=np.float64),
        whole_counts=bool(np.array_equal(c, np.floor(c)) and H[-1] < 2.0**53),
    )  # fmt: skip


TIE_RTOL = 1e-12


def tie_scale(counts: np.ndarray, normalized: bool = False, eps: float = 0.0) -> float:
    """The size of the numbers a candidate's KL is summed from (p log p, p log q).

    ``counts`` as the KL sees them: ``normalized`` when P and Q are scaled to sum 1
    for every candidate, so the total no longer matters; ``eps`` when smoothing adds
    that much to the bins.
    """
    c = np.asarray(counts, dtype=np.float64)
    nz = c[c > 0]
    total = nz.sum() + eps * c.size
    if total == 0:
        return 0.0
    values = np.concatenate([nz, [eps]]) if eps else nz
    if normalized:
        values = values / total
        total = 1.0
    return float(total * (1.0 + max(abs(np.log(values.max())), abs(np.log(values.min())))))


def pick_minimum(kl: np.ndarray, ties: str, scale: float) -> int:
    """Index of the smallest KL; candidates within TIE_RTOL * scale of it are ties.

    Prefix sums and a bin-by-bin loop round differently (about 1e-16 of the sums a
    KL is made from), so two candidates whose KL is equal in exact arithmetic, such
    as several zeros on a one-bin histogram, must compare equal here too; among ties
    the variant takes the first or the last.
    """
    finite = np.isfinite(kl)
    if not finite.any():
        return 0 if ties == "first" else int(kl.size - 1)
    near = finite & (kl <= kl[finite].min() + TIE_RTOL * scale)
    idx = np.flatnonzero(near)
    return int(idx[0] if ties == "first" else idx[-1])
