"""Slow, plain-loop references: the oracles the vectorised sweep is tested against.

Nothing here is fast or clever on purpose. ``seed_as_published`` is the seed's own loop
exactly as the blog post in shared/seed prints it (= ncnn 2019), the benchmark's baseline;
``seed_loop`` follows it line by line with the project's rule for an overshooting group
edge, and returns every candidate's KL for the tests; the other ``*_loop`` functions follow
each implementation's algorithm as its source describes it, one candidate and one bin at a
time. Every loop answers with a :class:`LoopResult`. ``clip_mse_direct`` is the MSE
curve clip by clip, as ``calib.clip_metrics`` integrates one clip (the definition the
linear-cost ``calib.clip_mse_curve`` is held to). They ship with the package, not in
tests/, so that the tests, the maintainers' bench (``calib.dev.bench``) and a user who wants
to check a result against the plain loop all call one copy.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np

from calib.policies import MODELOPT_START_BIN

__all__ = [
    "LoopResult",
    "clip_mse_direct",
    "modelopt_loop",
    "mxnet_loop",
    "mxnet_smooth",
    "ncnn_loop",
    "normalized_kl",
    "onnxruntime_loop",
    "seed_as_published",
    "seed_kl",
    "seed_loop",
]


@dataclasses.dataclass(frozen=True)
class LoopResult:
    """A loop reference's answer: every candidate's KL and the chosen candidate.

    Attributes
    ----------
    candidates : int array
        Each candidate as the implementation's loop counts it (kept bins, or bins on each
        side of the zero bin), in the order tried.
    kl : float array
        The KL of each candidate (inf where the implementation leaves it undefined).
    best : int
        The chosen candidate.
    amax : float or None
        The chosen clip in activation units; None for ``seed_loop``, which reads counts
        only (the seed answers a number of bins).
    """

    candidates: np.ndarray
    kl: np.ndarray
    best: int
    amax: float | None


def seed_kl(p, q) -> float:
    """The seed's KL: ``sum p log(p/q)`` over ``p != 0``, adding 1 where ``q == 0``."""
    total = 0.0
    for i in range(len(p)):
        if p[i] != 0:
            if q[i] == 0:
                total += 1
            else:
                total += p[i] * np.log(p[i] / q[i])
    return total


def seed_loop(distribution, target_bin: int = 128) -> LoopResult:
    """The seed's ``threshold_distribution``, returning every candidate's KL.

    The candidates are the thresholds (kept bins); ``amax`` is None. One deliberate
    change: where the float group edge ``end`` lands at or past ``threshold`` (threshold
    104, target_bin 100 gives 104.00000000000001), the seed indexes past the clipped array;
    here that right edge is dropped, the project's rule (shared/seed/NOTES.md).
    """
    distribution = np.asarray(distribution, dtype=np.float64)
    length = len(distribution)
    thresholds, kls = [], []
    best, min_kl = target_bin, 10000000000000
    for threshold in range(target_bin, length):
        t_distribution = distribution[0:threshold].copy()
        t_distribution[threshold - 1] += np.sum(distribution[threshold:])
        num_per_bin = threshold / target_bin

        quantize_distribution = np.zeros((target_bin,))
        for i in range(target_bin):
            start = i * num_per_bin
            end = start + num_per_bin
            left_upper = int(np.ceil(start))
            if left_upper > start:
                left_scale = left_upper - start
                quantize_distribution[i] += left_scale * distribution[left_upper - 1]
            right_lower = int(np.floor(end))
            if right_lower < end and right_lower < threshold:
                right_scale = end - right_lower
                quantize_distribution[i] += right_scale * distribution[right_lower]
            for j in range(left_upper, right_lower):
                quantize_distribution[i] += distribution[j]

        expand_distribution = np.zeros_like(t_distribution)
        for i in range(target_bin):
            start = i * num_per_bin
            end = start + num_per_bin
            count = 0
            left_upper = int(np.ceil(start))
            left_scale = 0
            if left_upper > start:
                left_scale = left_upper - start
                if t_distribution[left_upper - 1] != 0:
                    count += left_scale
            right_lower = int(np.floor(end))
            right_scale = 0
            has_right = right_lower < end and right_lower < threshold
            if has_right:
                right_scale = end - right_lower
                if t_distribution[right_lower] != 0:
                    count += right_scale
            for j in range(left_upper, right_lower):
                if t_distribution[j] != 0:
                    count += 1
            if count == 0:
                continue  # every P bin of the group is zero: nothing to expand into
            expand_value = quantize_distribution[i] / count
            if left_upper > start and t_distribution[left_upper - 1] != 0:
                expand_distribution[left_upper - 1] += expand_value * left_scale
            if has_right and t_distribution[right_lower] != 0:
                expand_distribution[right_lower] += expand_value * right_scale
            for j in range(left_upper, right_lower):
                if t_distribution[j] != 0:
                    expand_distribution[j] += expand_value

        kl = seed_kl(t_distribution, expand_distribution)
        thresholds.append(threshold)
        kls.append(kl)
        if kl < min_kl:
            min_kl = kl
            best = threshold
    return LoopResult(candidates=np.array(thresholds), kl=np.array(kls), best=best, amax=None)


def seed_as_published(distribution, target_bin: int = 128) -> int:
    """The seed's ``threshold_distribution`` exactly as published, only re-indented.

    ``python -m calib bench`` times this one: it is "the seed's own loop", including
    the work ``seed_loop`` skips (groups with no non-zero bin still divide 0 by 0 and
    walk their bins). It raises IndexError where the float group edge overshoots the
    threshold (NOTES.md); it never does when ``target_bin`` is a power of two.
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # its 0 / 0 on empty groups
        return _seed_published(np.asarray(distribution, dtype=np.float64), target_bin)


def _seed_published(distribution, target_bin):
    target_threshold = target_bin
    min_kl_divergence = 10000000000000
    length = len(distribution)
    for threshold in range(target_bin, length):
        t_distribution = copy.deepcopy(distribution[0:threshold])
        t_distribution[threshold - 1] += np.sum(distribution[threshold:])
        num_per_bin = threshold / target_bin
        quantize_distribution = np.zeros((target_bin,))
        for i in range(target_bin):
            start = i * num_per_bin
            end = start + num_per_bin
            left_upper = int(np.ceil(start))
            if left_upper > start:
                left_scale = left_upper - start
                quantize_distribution[i] += left_scale * distribution[left_upper - 1]
            right_lower = int(np.floor(end))
            if right_lower < end:
                right_scale = end - right_lower
                quantize_distribution[i] += right_scale * distribution[right_lower]
            for j in range(left_upper, right_lower):
                quantize_distribution[i] += distribution[j]
        expand_distribution = np.zeros_like(t_distribution)
        for i in range(target_bin):
            start = i * num_per_bin
            end = start + num_per_bin
            count = 0
            left_upper = int(np.ceil(start))
            left_scale = 0
            if left_upper > start:
                left_scale = left_upper - start
                if t_distribution[left_upper - 1] != 0:
                    count += left_scale
            right_lower = int(np.floor(end))
            right_scale = 0
            if right_lower < end:
                right_scale = end - right_lower
                if t_distribution[right_lower] != 0:
                    count += right_scale
            for j in range(left_upper, right_lower):
                if t_distribution[j] != 0:
                    count += 1
            expand_value = quantize_distribution[i] / count
            if left_upper > start:
                if t_distribution[left_upper - 1] != 0:
                    expand_distribution[left_upper - 1] += expand_value * left_scale
            if right_lower < end:
                if t_distribution[right_lower] != 0:
                    expand_distribution[right_lower] += expand_value * right_scale
            for j in range(left_upper, right_lower):
                if t_distribution[j] != 0:
                    expand_distribution[j] += expand_value
        kl_divergence = seed_kl(t_distribution, expand_distribution)
        if kl_divergence < min_kl_divergence:
            min_kl_divergence = kl_divergence
            target_threshold = threshold
    return target_threshold


# --------------------------------------------------------------------------------------
# shared pieces of the peers' loops
# --------------------------------------------------------------------------------------
def normalized_kl(p, q) -> float:
    """``scipy.stats.entropy(p, q)`` written out: both scaled to sum 1, then ``sum p log(p/q)``.

    Bins with ``p == 0`` add nothing; a bin with ``p > 0`` and ``q == 0`` makes the KL inf,
    and so does a ``q`` that sums to zero (scipy would give nan; every sweep reads it as
    "undefined"). Computed in float64, one bin at a time.
    """
    p_sum = 0.0
    for v in p:
        p_sum += float(v)
    q_sum = 0.0
    for v in q:
        q_sum += float(v)
    if q_sum <= 0 or p_sum <= 0:
        return math.inf
    total = 0.0
    for pv, qv in zip(p, q, strict=True):
        pn = float(pv) / p_sum
        qn = float(qv) / q_sum
        if pn > 0:
            if qn <= 0:
                return math.inf
            total += pn * math.log(pn / qn)
    return total


def mxnet_smooth(x, eps: float = 1e-4):
    """MXNet's ``_smooth_distribution`` (= ONNX Runtime's ``smooth_distribution``) in float64.

    Zero bins get ``eps``; every non-zero bin gives up ``eps1 = eps * zeros / nonzeros`` so
    the total is kept. Returns None where the source gives up: no non-zero bin, ``eps1 >= 1``,
    or a bin that ends at or below zero (the sources' asserts).
    """
    n_zeros = 0
    for v in x:
        if v == 0:
            n_zeros += 1
    n_nonzeros = len(x) - n_zeros
    if n_nonzeros == 0:
        return None
    eps1 = eps * n_zeros / n_nonzeros
    if eps1 >= 1.0:
        return None
    out = []
    for v in x:
        out.append(eps if v == 0 else float(v) - eps1)
    for v in out:
        if v <= 0:
            return None
    return out


def _as_pair(counts, edges) -> tuple[np.ndarray, np.ndarray]:
    """float64 copies of counts and edges (the caller's arrays are never touched)."""
    c = np.array(counts, dtype=np.float64, copy=True)
    e = np.array(edges, dtype=np.float64, copy=True)
    if c.ndim != 1 or e.ndim != 1 or e.size != c.size + 1:
        raise ValueError(f"edges must have len(counts) + 1 entries, got {e.size} for {c.size}")
    return c, e


def _half_window(hist, i: int) -> tuple[int, list[float], list[float]]:
    """MXNet's and ONNX Runtime's window and P: ``i`` bins each side of the zero bin.

    The window is ``[z - i, min(z + i + 1, n))`` with ``z = n // 2`` (the clamp only bites
    for an even ``n`` at ``i = n // 2``); P is its bins with everything left of it added
    to its first bin and everything right of it to its last. Returns ``(stop, sliced, p)``.
    """
    n = len(hist)
    start, stop = n // 2 - i, min(n // 2 + i + 1, n)
    sliced = [float(v) for v in hist[start:stop]]
    p = list(sliced)
    for j in range(start):
        p[0] += hist[j]
    for j in range(stop, n):
        p[-1] += hist[j]
    return stop, sliced, p


def _whole_group_masses(
    sliced: list[float], T: int, separately: bool = True, truncate: bool = True
) -> list[float]:
    """Groups of ``len // T`` whole bins, masses cast to integers as MXNet / ONNX Runtime do.

    Both write each group's sum into an integer array (truncation), then do
    ``quantized_bins[-1] += sum(remainder)``, which truncates once more:
    ``trunc(trunc(last group) + remainder)`` (``separately=True``, the sources).
    ``separately=False`` truncates the last group's whole mass once,
    ``trunc(last group + remainder)``. The two differ only for non-integer counts.
    ``truncate=False`` keeps the float sums (``calib.kl_sweep``'s ``truncate="none"``).
    """
    m = len(sliced) // T
    quantized = [0] * T
    for k in range(T):
        s = 0.0
        for j in range(k * m, k * m + m):
            s += sliced[j]
        quantized[k] = s
    rest = 0.0
    for j in range(T * m, len(sliced)):
        rest += sliced[j]
    if not truncate:
        quantized[-1] += rest
        return quantized
    if separately:
        for k in range(T):
            quantized[k] = math.trunc(quantized[k])
        quantized[-1] = math.trunc(quantized[-1] + rest)
    else:
        quantized[-1] += rest
        for k in range(T):
            quantized[k] = math.trunc(quantized[k])
    return quantized


# --------------------------------------------------------------------------------------
# ncnn 2021+
# --------------------------------------------------------------------------------------
def ncnn_loop(counts, edges, target_bin: int = 128) -> LoopResult:
    """ncnn's ``QuantNet::quantize_KL`` (tools/quantize/ncnn2table.cpp, 2021+), one bin at a time.

    The histogram is normalised once. For every kept-bin count ``i = T .. N-1``:
    P = normed[:i] + eps on every bin, the tail added to bin i-1; level k covers
    ``[k i/T, (k+1) i/T)`` (float64 boundaries as the seed computes them, a right edge at
    or past ``i`` dropped); its value is its fractional mass over its fractional width
    (a mean over all its bins, zero or not); Q = eps + each level's value spread by
    overlap; ``KL = sum P log(P/Q)`` over every bin. First minimum;
    ``amax = edges[0] + (i + 0.5) * width``.
    """
    hist, e = _as_pair(counts, edges)
    n, T, eps = hist.size, int(target_bin), 1e-4
    total = float(np.sum(hist))
    normed = [float(v) / total for v in hist]
    candidates, kls = [], []
    best, min_kl = T, math.inf
    for i in range(T, n):
        P = [normed[j] + eps for j in range(i)]
        for j in range(i, n):
            P[i - 1] += normed[j]
        Q = [eps] * i
        num_per_bin = i / T
        for k in range(T):
            start = k * num_per_bin
            end = start + num_per_bin
            left_upper = math.ceil(start)
            right_lower = math.floor(end)
            left_scale = left_upper - start if left_upper > start else 0.0
            has_right = right_lower < end and right_lower < i
            right_scale = end - right_lower if has_right else 0.0
            mass, width = 0.0, 0.0
            if left_scale > 0:
                mass += left_scale * normed[left_upper - 1]
                width += left_scale
            if has_right:
                mass += right_scale * normed[right_lower]
                width += right_scale
            for j in range(left_upper, min(right_lower, i)):
                mass += normed[j]
                width += 1
            value = mass / width
            if left_scale > 0:
                Q[left_upper - 1] += left_scale * value
            if has_right:
                Q[right_lower] += right_scale * value
            for j in range(left_upper, min(right_lower, i)):
                Q[j] += value
        kl = 0.0
        for j in range(i):
            kl += P[j] * math.log(P[j] / Q[j])
        candidates.append(i)
        kls.append(kl)
        if kl < min_kl:
            min_kl, best = kl, i
    width = (e[-1] - e[0]) / n
    amax = float(e[0] + (best + 0.5) * width)
    return LoopResult(candidates=np.array(candidates), kl=np.array(kls), best=best, amax=amax)


# --------------------------------------------------------------------------------------
# MXNet / TVM
# --------------------------------------------------------------------------------------
def mxnet_loop(
    counts,
    edges,
    num_quantized_bins: int = 255,
    *,
    truncate_remainder_separately: bool = True,
    truncate: bool = True,
) -> LoopResult:
    """MXNet's Python ``_get_optimal_threshold`` (contrib/quantization.py), one bin at a time.

    Zero bin ``z = N // 2``; for ``i = T//2 .. N//2`` the window is
    ``[z - i, min(z + i + 1, N))`` with the outliers folded into both edge bins (P).
    ``L // T`` whole bins a level, masses truncated to integers, the remainder's mass and
    bins both joining the last level; each level's mass divided by the number of its
    non-zero P bins and written to its bins, then ``q[p == 0] = 0``. P and Q are smoothed
    (``mxnet_smooth``; inf where that fails) and ``KL = scipy.stats.entropy(p, q)``
    (both normalised), in float64. First minimum; ``amax = edges[window end]``.
    ``truncate_remainder_separately``: see ``_whole_group_masses`` (True is the source).
    ``truncate=False`` keeps the masses as floats (``kl_sweep``'s ``truncate="none"``, the
    only sweep of counts that are not whole numbers).
    """
    hist, e = _as_pair(counts, edges)
    n, T = hist.size, int(num_quantized_bins)
    candidates, kls = [], []
    best, best_stop, min_kl = None, None, math.inf
    for i in range(T // 2, n // 2 + 1):
        stop, sliced, p = _half_window(hist, i)
        L = len(sliced)
        m = L // T
        quantized = _whole_group_masses(sliced, T, truncate_remainder_separately, truncate)
        q = [0.0] * L
        for k in range(T):
            s = k * m
            t = L if k == T - 1 else s + m
            norm = 0
            for j in range(s, t):
                if p[j] != 0:
                    norm += 1
            if norm != 0:
                for j in range(s, t):
                    q[j] = quantized[k] / norm
        for j in range(L):
            if p[j] == 0:
                q[j] = 0.0
        ps, qs = mxnet_smooth(p), mxnet_smooth(q)
        kl = math.inf if ps is None or qs is None else normalized_kl(ps, qs)
        candidates.append(i)
        kls.append(kl)
        if best is None or kl < min_kl:
            best, best_stop, min_kl = i, stop, kl
    amax = float(e[best_stop])
    return LoopResult(candidates=np.array(candidates), kl=np.array(kls), best=best, amax=amax)


# --------------------------------------------------------------------------------------
# ONNX Runtime as shipped
# --------------------------------------------------------------------------------------
def onnxruntime_loop(
    counts,
    edges,
    num_quantized_bins: int = 128,
    *,
    truncate_remainder_separately: bool = True,
    truncate: bool = True,
) -> LoopResult:
    """ONNX Runtime's ``HistogramCollector.get_entropy_threshold``, one bin at a time.

    The window and P as MXNet's. Level masses are int64 (truncated) with the remainder's
    mass added to the last level, but Q is written to ``start .. start + L // T`` of every
    level only, so the remainder bins keep ``q = 0``; ``q`` is int64 too (the level mass
    over the number of non-zero P bins of the level, truncated) and is written to every bin
    of the level, zero in P or not. Both smoothed, ``KL`` normalised (float64 here; ORT
    computes it in float32). First minimum; ``amax`` = the upper window edge, not clamped
    to the data's max as ORT does afterwards. ``truncate_remainder_separately``: see
    ``_whole_group_masses`` (True is the source). ``truncate=False`` keeps the masses and Q
    as floats (``kl_sweep``'s ``truncate="none"``).
    """
    hist, e = _as_pair(counts, edges)
    n, T = hist.size, int(num_quantized_bins)
    candidates, kls = [], []
    best, best_stop, min_kl = None, None, math.inf
    for i in range(T // 2, n // 2 + 1):
        stop, sliced, p = _half_window(hist, i)
        L = len(sliced)
        m = L // T
        quantized = _whole_group_masses(sliced, T, truncate_remainder_separately, truncate)
        q = [0] * L
        for k in range(T):
            s = k * m
            norm = 0
            for j in range(s, s + m):
                if p[j] != 0:
                    norm += 1
            if norm != 0:
                for j in range(s, s + m):
                    q[j] = math.trunc(quantized[k] / norm) if truncate else quantized[k] / norm
        ps, qs = mxnet_smooth(p), mxnet_smooth(q)
        kl = math.inf if ps is None or qs is None else normalized_kl(ps, qs)
        candidates.append(i)
        kls.append(kl)
        if best is None or kl < min_kl:
            best, best_stop, min_kl = i, stop, kl
    amax = float(e[best_stop])
    return LoopResult(candidates=np.array(candidates), kl=np.array(kls), best=best, amax=amax)


# --------------------------------------------------------------------------------------
# ModelOpt / pytorch-quantization
# --------------------------------------------------------------------------------------
def modelopt_loop(
    counts,
    edges,
    num_bits: int = 8,
    unsigned: bool = False,
    stride: int = 1,
    start_bin: int = MODELOPT_START_BIN,
    *,
    num_levels: int | None = None,
) -> LoopResult:
    """ModelOpt's ``_compute_amax_entropy`` (calib/histogram.py), one bin at a time.

    On a copy (the caller's counts are never touched): ``bins[0] = bins[1]``;
    ``nbins = 2 ** (num_bits - 1 + unsigned)`` levels (``num_levels`` overrides it, for
    level counts that are not a power of two). For ``i = start_bin .. N`` inclusive, every
    ``stride``-th: bin j is in level ``digitize(j, linspace(0, i, nbins + 1)) - 1``, bins
    with ``bins[j] == 0`` left out; Q on a non-zero bin is its level's mean over the level's
    non-zero bins; P = bins[:i] with the tail added to the last; ``KL =
    scipy.stats.entropy(P, Q)`` (inf where P > 0 and Q = 0). LAST minimum;
    ``amax = edges[i]``.
    """
    bins, e = _as_pair(counts, edges)
    bins[0] = bins[1]
    nbins = int(num_levels) if num_levels is not None else 1 << (num_bits - 1 + int(unsigned))
    n = bins.size
    candidates, kls = [], []
    best, min_kl = None, math.inf
    for i in range(start_bin, n + 1, stride):
        space = np.linspace(0, i, num=nbins + 1)
        level = np.digitize(range(i), space) - 1
        sums = [0.0] * nbins
        nonzero = [0] * nbins
        for j in range(i):
            if bins[j] != 0:
                sums[level[j]] += bins[j]
                nonzero[level[j]] += 1
        Q = [0.0] * i
        for j in range(i):
            if bins[j] != 0:
                Q[j] = sums[level[j]] / nonzero[level[j]]
        P = [float(v) for v in bins[:i]]
        for j in range(i, n):
            P[-1] += bins[j]
        kl = normalized_kl(P, Q)
        candidates.append(i)
        kls.append(kl)
        if best is None or kl <= min_kl:
            best, min_kl = i, kl
    return LoopResult(
        candidates=np.array(candidates), kl=np.array(kls), best=best, amax=float(e[best])
    )


def clip_mse_direct(hist, amaxes, num_bits: int = 8, unsigned: bool = False) -> np.ndarray:
    """The expected squared error of each clip, one :func:`calib.clip_metrics` at a time:
    O(n_bins) per clip, O(n_bins^2) for a search over every edge. The reference for
    ``calib.clip_mse_curve`` and ``calib.amax_mse``, and the benchmark's baseline."""
    from calib.methods import clip_metrics  # the definition, piece by piece

    a = np.asarray(amaxes, dtype=np.float64)
    return np.array([clip_metrics(hist, float(x), num_bits, unsigned).mse for x in a.ravel()])
