"""The expected quantization error of many clips at once, in time linear in the bins.

:func:`calib.methods.clip_metrics` integrates one clip's error piece by piece, O(N) for N
bins; doing that for every candidate clip of the MSE search costs O(N^2) (a 100,000-bin
upload once held Explore for ten minutes). Here every candidate costs
O(min(N, levels)), as a KL sweep candidate costs O(target bins), and nothing is
approximated: the same flat-in-bin density, integrated in closed form.

The error of a clip ``a`` with quantization step ``s = a / qmax`` splits at ``a``::

    mse(a) = R(a) + C(a)
    C(a)   = integral_a^inf f(t) (t - a)^2 dt                  (clipping)
    R(a)   = sum over cells c = 0..qmax of
             integral over [(c - 1/2) s, (c + 1/2) s] n [0, a] of f(t) (t - c s)^2 dt

with ``f`` the piecewise-constant density of ``|x|`` on the merged intervals of the
histogram's pieces (see ``calib.methods._pieces``).

Clipping, for every candidate in O(1)
    The suffix moments about each interval's left end, ``M_k``, ``D_k``, ``C_k`` (mass,
    first and second moment of ``t - u_k`` over ``t >= u_k``) are built by a doubling scan:
    two adjacent stretches combine as ``C = C_A + C_B + 2 d D_B + d^2 M_B`` (``d`` the
    distance between their left ends), every term non-negative, so nothing cancels however
    far the tail reaches. ``C(a)`` is then the partial interval holding ``a`` plus the
    suffix after it, shifted by the same rule.

Rounding, per candidate in O(min(k, qmax + 1))
    Where a candidate keeps fewer intervals than it has cells (coarse bins), each interval's
    rounding error is the closed form ``s^3 (G(hi / s) - G(lo / s))`` of ``clip_metrics``.
    Otherwise each cell is integrated: its two partial intervals directly, and its whole
    intervals from moments summed within aligned blocks of ``2^l`` intervals (``2^l`` at
    least the cell's intervals, so a cell's whole intervals lie in at most two blocks),
    each block's moments about its own left end. A cell's sums are thus made of numbers of
    the cell's own size, never a difference of running totals from 0 (which would lose
    about ``qmax^3`` ulps at the far cells: 4% of the answer at 16 bits).

Agreement with the piece-by-piece reference (``calib.reference.clip_mse_direct``):
a relative 1e-12 on every clip in the tests, at every bit width.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calib import limits

__all__ = ["Density", "density", "mse_curve", "search_cells"]

_BLOCK_ELEMENTS = 1 << 16  # (candidate, cell) pairs per numpy pass: bounded memory


@dataclasses.dataclass(frozen=True)
class Density:
    """A piecewise-constant density of ``|x| >= 0``: ``d[i]`` on ``[u[i], u[i + 1])``."""

    u: np.ndarray  # J + 1 increasing breakpoints
    d: np.ndarray  # J densities, >= 0

    @property
    def w(self) -> np.ndarray:
        return np.diff(self.u)

    @property
    def m(self) -> np.ndarray:
        return self.d * self.w


def density(lo: np.ndarray, hi: np.ndarray, p: np.ndarray, layer: np.ndarray) -> Density:
    """The sum of ``layer``'s non-overlapping pieces of mass ``p`` spread on ``[lo, hi]``
    (a signed histogram gives two layers, its positive and its mirrored negative side),
    on the merged breakpoints. Each layer's density is looked up, not accumulated, so a
    spike's density does not leave rounding behind it."""
    u = np.unique(np.concatenate([lo, hi]))
    mid = 0.5 * (u[:-1] + u[1:])
    d = np.zeros(mid.size)
    for side in np.unique(layer):
        take = layer == side
        order = np.argsort(lo[take], kind="stable")
        s_lo, s_hi = lo[take][order], hi[take][order]
        s_d = p[take][order] / (s_hi - s_lo)
        j = np.searchsorted(s_lo, mid, side="right") - 1
        inside = (j >= 0) & (mid < s_hi[np.maximum(j, 0)])
        d += np.where(inside, s_d[np.maximum(j, 0)], 0.0)
    return Density(u, d)


# -- clipping -----------------------------------------------------------------------------------
def _combine(a, b, gap):
    """Moments (M, D, C) of two stretches about the left one's start; ``b`` starts ``gap``
    after ``a`` (every term non-negative)."""
    (ma, da, ca), (mb, db, cb) = a, b
    return ma + mb, da + db + gap * mb, ca + cb + 2.0 * gap * db + gap * gap * mb


def suffix_moments(f: Density) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(M, D, C)`` at every breakpoint ``u[k]``, k = 0..J: the mass of ``f`` beyond it and
    the first and second moments of ``t - u[k]`` over it (zeros at ``u[J]``)."""
    J = f.d.size
    w = f.w
    m = f.d * w
    moments = (m, 0.5 * f.d * w * w, f.d * w * w * w / 3.0)  # of each interval, about its start
    M, D, C = (np.append(x, 0.0) for x in moments)
    span = 1
    while span < J:  # stretch k becomes [k, k + 2 span): Hillis-Steele, from the right
        k = np.arange(J + 1 - span)
        gap = f.u[k + span] - f.u[k]
        right = (M[span:], D[span:], C[span:])
        M2, D2, C2 = _combine((M[: J + 1 - span], D[: J + 1 - span], C[: J + 1 - span]), right, gap)
        M, D, C = (np.concatenate([x2, x[J + 1 - span :]]) for x2, x in ((M2, M), (D2, D), (C2, C)))
        span *= 2
    return M, D, C


def clipping_error(f: Density, suffix, a: np.ndarray) -> np.ndarray:
    """``C(a) = integral_a^inf f(t) (t - a)^2 dt`` for each ``a``."""
    M, D, C = suffix
    J = f.d.size
    i = np.searchsorted(f.u, a, side="right") - 1  # the interval holding a (-1: before u[0])
    nxt = np.clip(i + 1, 0, J)
    gap = f.u[nxt] - a  # from a to the next breakpoint (>= 0)
    part = np.where((i >= 0) & (i < J), f.d[np.clip(i, 0, J - 1)], 0.0) * gap**3 / 3.0
    out = part + C[nxt] + 2.0 * gap * D[nxt] + gap * gap * M[nxt]
    return np.where(i >= J, 0.0, out)


# -- rounding -----------------------------------------------------------------------------------
def rounding_integral(u0: np.ndarray, u1: np.ndarray) -> np.ndarray:
    """``integral_{u0}^{u1} (v - round(v))^2 dv`` in units of one quantization step.

    With ``k = floor(u + 1/2)`` and ``r = u - k`` in ``[-1/2, 1/2)``, the antiderivative
    from 0 is ``G(u) = k / 12 + r^3 / 3`` (each whole step contributes 1/12). The
    difference is taken term by term so that narrow pieces lose no precision.
    """
    k0, k1 = np.floor(u0 + 0.5), np.floor(u1 + 0.5)
    r0, r1 = u0 - k0, u1 - k1
    return (k1 - k0) / 12.0 + (r1 * r1 * r1 - r0 * r0 * r0) / 3.0


class _BlockSums:
    """Moments of the whole intervals, summed within aligned blocks of ``2^l`` intervals,
    each about its block's left end: ``table[m, l, i]`` is moment m (M, D, C) of the
    intervals from the start of the block holding interval ``i - 1`` up to ``i``
    (exclusive), for every level l up to the one the widest cell needs."""

    def __init__(self, f: Density, most: int) -> None:
        self.f = f
        J = f.d.size
        self.top = max(0, int(most - 1).bit_length())  # 2^top >= most
        w, d = f.w, f.d
        m = d * w
        j = np.arange(J)
        table = np.zeros((3, self.top + 1, J + 2))  # the last column of each level is 0
        for lvl in range(self.top + 1):
            size = 1 << lvl
            shift = f.u[:-1] - f.u[(j >> lvl) << lvl]  # interval start - its block's start
            mom = np.stack([
                m,
                m * shift + 0.5 * d * w * w,
                m * shift * shift + d * w * w * shift + d * w * w * w / 3.0,
            ])  # fmt: skip
            pad = (-J) % size
            blocks = np.pad(mom, ((0, 0), (0, pad))).reshape(3, -1, size)
            table[:, lvl, 1 : J + 1] = np.cumsum(blocks, axis=2).reshape(3, -1)[:, :J]
        self.flat = table.reshape(3, -1)
        self.stride = J + 2

    def whole(self, i0: np.ndarray, i1: np.ndarray, x0: np.ndarray) -> np.ndarray:
        """``integral f(t) (t - x0)^2`` over the whole intervals ``[i0, i1)``, for ``i0 < i1``
        (at most ``most`` of them); what it gives where ``i0 >= i1`` is to be ignored."""
        u, flat = self.f.u, self.flat
        n = np.maximum(i1 - i0, 1)
        # the level whose blocks hold n intervals: 2^l >= n, so [i0, i1) meets two blocks
        lvl = np.frexp((n - 1).astype(np.float64))[1]  # the bit length of n - 1
        start = (i0 >> lvl) << lvl
        first_end = start + (1 << lvl)
        base = lvl * self.stride
        hi = base + np.minimum(i1, first_end)
        lo = np.where(i0 == start, base + self.stride - 1, base + i0)  # the table's 0 column
        off = u[start] - x0  # the first block's part, from i0 to its end or i1
        out = flat[2, hi] - flat[2, lo]
        out += 2.0 * off * (flat[1, hi] - flat[1, lo])
        out += off * off * (flat[0, hi] - flat[0, lo])
        # the next block's part, from its start to i1, where the range reaches into it
        b = np.where(i1 > first_end, base + i1, base + self.stride - 1)
        off = u[np.minimum(first_end, u.size - 1)] - x0
        out += flat[2, b] + 2.0 * off * flat[1, b] + off * off * flat[0, b]
        return out


def _about(moments: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``integral (t - x0)^2`` from moments (M, D, C) about an origin ``offset`` past x0."""
    M, D, C = moments
    return C + 2.0 * offset * D + offset * offset * M


def _cube_span(x1: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """``(x1^3 - x0^3) / 3``, factored so that a short span keeps its precision."""
    return (x1 - x0) * (x1 * x1 + x1 * x0 + x0 * x0) / 3.0


def _rounding_by_intervals(f: Density, a: np.ndarray, qmax: int, k: np.ndarray) -> np.ndarray:
    """R(a) interval by interval (the first ``k`` intervals lie below each ``a``)."""
    out = np.zeros(a.size)
    width = int(k.max(initial=0))
    if width == 0:
        return out
    step = max(1, _BLOCK_ELEMENTS // width)
    cols = np.arange(width)
    for start in range(0, a.size, step):
        aa = a[start : start + step, None]
        s = aa / qmax
        kept = cols[None, :] < k[start : start + step, None]
        lo = f.u[cols][None, :]
        hi = np.minimum(f.u[cols + 1][None, :], aa)
        r = rounding_integral(lo / s, hi / s) * s**3
        out[start : start + step] = np.where(kept, r * f.d[cols][None, :], 0.0).sum(axis=1)
    return out


def _rounding_by_cells(f: Density, a: np.ndarray, qmax: int) -> np.ndarray:
    """R(a) cell by cell, ``qmax + 1`` cells for each ``a``."""
    J = f.d.size
    u = f.u
    d = np.concatenate([[0.0], f.d, [0.0]])  # d[j + 1]: the density of interval j, 0 outside
    u_next = np.append(u, u[-1])  # u_next[j + 1]: the end of interval j (j = -1 .. J)
    out = np.zeros(a.size)
    # the widest cell's whole intervals: at most those within one step of an interval's start
    s_max = float(a.max()) / qmax
    widest = np.searchsorted(u, u[:-1] + s_max, side="right") - np.arange(J)
    sums = _BlockSums(f, int(widest.max(initial=1)))
    k = np.arange(qmax + 2, dtype=np.float64)[None, :]  # cell boundaries (k - 1/2) s
    step = max(1, _BLOCK_ELEMENTS // (qmax + 1))
    for start in range(0, a.size, step):
        aa = a[start : start + step, None]
        s = aa / qmax
        bounds = np.clip((k - 0.5) * s, 0.0, aa)  # cell c is [bounds[c], bounds[c + 1]]
        j = np.searchsorted(u, bounds, side="right") - 1  # -1 before the data, J past it
        lo, hi = bounds[:, :-1], bounds[:, 1:]
        jl, jh = j[:, :-1], j[:, 1:]
        x0 = k[:, :-1] * s
        same = jl == jh
        # the cell's two partial intervals (one, when the cell lies inside an interval)
        end_l = np.where(same, hi, u_next[jl + 1])
        part = d[jl + 1] * _cube_span(end_l - x0, lo - x0)
        start_h = u_next[np.maximum(jh, 0)]
        part += np.where(same, 0.0, d[jh + 1] * _cube_span(hi - x0, start_h - x0))
        i0 = np.minimum(jl + 1, J)
        i1 = np.clip(jh, 0, J)
        whole = sums.whole(i0, np.maximum(i1, i0), x0)
        out[start : start + step] = (part + np.where(i1 > i0, whole, 0.0)).sum(axis=1)
    return out


def search_cells(f: Density, a: np.ndarray, qmax: int) -> int:
    """What :func:`mse_curve` costs: each clip's cells or intervals, whichever is fewer."""
    return int(np.minimum(_intervals_below(f, a), qmax + 1).sum())


def _intervals_below(f: Density, a: np.ndarray) -> np.ndarray:
    """How many intervals start below each ``a``."""
    return np.minimum(np.searchsorted(f.u, a, side="left"), f.d.size)


def mse_curve(f: Density, a: np.ndarray, qmax: int) -> np.ndarray:
    """``R(a) + C(a)`` for each clip ``a > 0`` (any order), exactly as ``clip_metrics``
    integrates one clip, in O(min(k, qmax + 1)) per clip. Refuses more than
    ``MAX_SEARCH_CELLS`` cells in all (:func:`search_cells`)."""
    cells = search_cells(f, a, qmax)
    if cells > limits.MAX_SEARCH_CELLS:
        raise ValueError(
            limits.exceeds(f"the MSE search over {a.size:,} clips at {qmax} levels needs",
                           cells, "MAX_SEARCH_CELLS", " cells")
            + "; search every stride-th edge (stride), use fewer bits or rebin the histogram"
        )  # fmt: skip
    if f.d.size == 0:
        return np.zeros(a.size)
    clip = clipping_error(f, suffix_moments(f), a)
    k = _intervals_below(f, a)
    coarse = k <= qmax + 1
    rounding = np.zeros(a.size)
    if coarse.any():
        rounding[coarse] = _rounding_by_intervals(f, a[coarse], qmax, k[coarse])
    if (~coarse).any():
        rounding[~coarse] = _rounding_by_cells(f, a[~coarse], qmax)
    return rounding + clip
