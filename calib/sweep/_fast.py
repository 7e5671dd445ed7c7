"""The prefix-sum engine: every candidate's KL in O(target_bins)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from calib.policies import Policy
from calib.sweep._groups import _groups_whole, _seed_levels, _truncate_value
from calib.sweep._prepare import _Prep
from calib.sweep._tables import _FAST_BLOCK_ELEMENTS, _TINY, _prefix, _Sums, _Tables


def uses_dense_engine(policy: Policy) -> bool:
    """True when ``kl_sweep(engine="auto")`` builds P and Q bin by bin for every candidate
    under ``policy``, because the prefix-sum engine cannot take it exactly: ONNX Runtime's
    float32 arithmetic (``precision="float32"``, one candidate at a time); MXNet's
    smoothing with a fractional merge or a uniform expansion; and, with any other
    smoothing, integer truncation (``truncate`` other than "none") or ONNX Runtime's
    orphaned remainder bins (``remainder="orphan"``), which the prefix sums handle only
    on the path MXNet's smoothing takes (the presets' own). Such sweeps cost O(N) per
    candidate, not O(target_bins); anyone who orders or warns by cost asks here.

    (On the prefix-sum path a few candidates may still take the dense one, where the
    smoothing's series would converge slowly; that does not change the sweep's cost.)
    """
    if policy.precision == "float32":
        return True
    if policy.smoothing != "mxnet":
        orphan = policy.merge == "whole" and policy.remainder == "orphan"
        return policy.truncate != "none" or orphan
    return policy.merge == "fractional" or policy.expand == "uniform"


def sweep_cells(prep: _Prep, policy: Policy, dense: bool) -> int:
    """What a sweep costs, in the unit ``calib.limits.MAX_SEARCH_CELLS`` bounds: the dense
    engine's window bins summed over candidates; the prefix sums' (candidate, level
    boundary) cells, plus, under MXNet's smoothing, a cell for each candidate and each
    small non-zero bin that its series cannot take (summed one by one)."""
    if dense:
        return int((prep.b - prep.a).sum())
    cells = prep.cand.size * (prep.T + 1)
    if policy.smoothing == "mxnet":
        cells += prep.cand.size * _smooth_tables(prep, policy)[1].small_at.size
    return int(cells)


def _smooth_tables(prep: _Prep, policy: Policy) -> tuple[_Tables, _SmoothTables]:
    tab = _Tables(prep.h, policy, 0.0)
    c = _mxnet_shift(prep, policy, np.arange(prep.cand.size), tab.h, tab.NZ).c
    return tab, _SmoothTables(prep.h, float(np.max(c, initial=0.0)))


def _kl_fast(prep: _Prep, policy: Policy) -> np.ndarray:
    s = policy.eps if policy.smoothing == "add_eps" else 0.0
    M, T = prep.cand.size, prep.T
    if policy.smoothing == "mxnet":
        tab, st = _smooth_tables(prep, policy)
        # a block's small-bin terms are (rows x small bins): they count against its size too
        step = max(1, _FAST_BLOCK_ELEMENTS // (T + 1 + st.small_at.size))
        blocks = [np.arange(i, min(M, i + step)) for i in range(0, M, step)]
        return np.concatenate([_fast_mxnet(prep, policy, rows, tab, st) for rows in blocks])
    tab = _Tables(prep.h, policy, s)
    step = max(1, _FAST_BLOCK_ELEMENTS // (T + 1))
    blocks = [np.arange(i, min(M, i + step)) for i in range(0, M, step)]
    out = _RowSums(M)
    if policy.merge == "fractional":
        last = _seed_last_level(prep, policy, np.arange(M))
        with np.errstate(divide="ignore", invalid="ignore"):  # once: it costs microseconds
            for rows in blocks:
                _fast_fractional(prep, policy, rows, tab, s, out, last)
    else:
        for rows in blocks:
            _fast_whole(prep, policy, rows, tab, s, out)
    # The edge bins that hold the tails, for all candidates at once.
    a, b = prep.a, prep.b
    one = a == b - 1  # a one-bin window holds both tails in that bin
    if policy.merge != "fractional":  # (the seed family's window starts at bin 0)
        tail_a = prep.tail_lo + np.where(one, prep.tail_hi, 0.0)
        _edge_bin(policy, tab, out, a, tail_a, out.v_lo, False, s)
    A, W, Z = out.A.copy(), out.W.copy(), out.Z.copy()
    _edge_bin(policy, tab, out, b - 1, prep.tail_hi, out.v_hi, out.orphan_hi, s)
    # a one-bin window keeps its sums from before this swap (``one`` above)
    out.A, out.W, out.Z = np.where(one, A, out.A), np.where(one, W, out.W), np.where(one, Z, out.Z)
    return _finish_sums(prep, policy, out, s)


class _RowSums(_Sums):
    """_Sums plus what the edge bins and the normalisation need, per candidate."""

    def __init__(self, m: int) -> None:
        super().__init__(m)
        self.qsum = np.zeros(m)  # sum of Q before smoothing
        self.v_lo = np.zeros(m)  # Q value of the level holding bin a
        self.v_hi = np.zeros(m)  # ... and bin b - 1
        self.orphan_hi = np.zeros(m, dtype=bool)  # bin b - 1 is a remainder bin with Q = 0


def _edge_bin(policy, tab, sums, j, tail, v, in_orphan, s) -> None:
    """Swap bin j's table term (p' = h + s) for its true one (p' = h + tail + s)."""
    hj = tab.h[j]
    if policy.expand == "nonzero":
        z_hist = hj != 0
        z_true = z_hist | (tail > 0) if policy.nonzero_from == "p" else z_hist
    else:
        z_hist = z_true = np.ones(j.shape, dtype=bool)
    v = np.where(in_orphan, 0.0, v)
    # What the level sums counted for this bin (nothing, for an empty unassigned bin).
    if policy.expand == "nonzero" and s > 0:
        sums.W -= np.where(z_hist, 0.0, s)
    sums.bin(np.where(z_hist, hj + s, 0.0), np.where(z_hist, v, 0.0) + s, -1.0)
    sums.bin(hj + tail + s, np.where(z_true, v, 0.0) + s, +1.0)


_CACHED_BOUNDARIES = 1 << 20  # (candidate, boundary) cells a cached table may hold: 16 MB


@functools.lru_cache(maxsize=8)  # at most 16 MB each (_CACHED_BOUNDARIES)
def _level_boundaries(first: int, last: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """B_k = k * i / T for i = first..last and k = 0..T: integer part and fraction.

    They depend on the sizes only, not on the counts, so sweeping many tensors of one
    size (a model's layers, a slider's reruns) computes them once.
    """
    fi, fr = _boundaries_of(np.arange(first, last + 1), T)
    fi.setflags(write=False)
    fr.setflags(write=False)
    return fi, fr


def _boundaries_of(b: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """B_k = k * b / T for each window size b and k = 0..T: integer part and fraction."""
    kb = np.arange(T + 1)[None, :] * b[:, None]  # intp: take() is 3x slower on int32
    fi = kb // T
    fr = (kb - fi * T) * (1.0 / T)
    return fi, fr


def _block_boundaries(prep: _Prep, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat (len(rows) * (T + 1)) boundaries of a run of candidates: sliced from the
    cached table of all candidates when it is small, else computed for these rows (a sweep
    of tens of millions of cells would otherwise hold a gigabyte of them). The table is
    indexed by window size, so it serves only windows one bin apart (``stride=1``)."""
    T, K = prep.T, prep.T + 1
    first, last = int(prep.b[0]), int(prep.b[-1])
    consecutive = last - first + 1 == prep.b.size
    if consecutive and (last - first + 1) * K <= _CACHED_BOUNDARIES:
        fi, fr = _level_boundaries(first, last, T)
        span = slice(int(rows[0]) * K, (int(rows[-1]) + 1) * K)  # rows are a run
        return fi.ravel()[span], fr.ravel()[span]
    fi, fr = _boundaries_of(prep.b[rows], T)
    return fi.ravel(), fr.ravel()


def _fast_fractional(
    prep, policy, rows, tab: _Tables, s: float, out: _RowSums, last: _LastLevel
) -> None:
    """Seed-family merge. Level k is [B_k, B_(k+1)) with B_k = k * i / T exactly
    (integer part f, fraction fr); a bin cut at B_k is "split": level k-1 owns fr of it.

        bins   |  f_k - 1  |  f_k  |  f_k + 1  |
                       B_k ^  (fr of bin f_k belongs to level k-1)

    Each level is summed over its whole bins [f_k, f_(k+1)) as if bin f_k were all its
    own, then each split bin's term is corrected to its true Q:
    q = fr * v_(k-1) + (1 - fr) * v_k.

    The block is laid out flat, T + 1 slots per candidate (slot k holds boundary k, or
    level k for the per-level arrays, whose slot T is unused and kept harmless), so every
    numpy pass runs over one contiguous array.
    """
    T = prep.T
    K = T + 1
    n = rows.size
    b = prep.b[rows]
    f, w = _block_boundaries(prep, rows)
    last_level, unused = slice(T - 1, None, K), slice(T, None, K)
    # Cumulative mass and non-zero count at each level boundary, then per level.
    # (With no smoothing and non-zero expansion, W, the assigned mass, is H itself;
    # a uniform expansion divides by the level's width, i / T, and needs no counts.)
    uniform = policy.expand != "nonzero"
    plain = s == 0 and not uniform
    H_f, h_f = tab.H[f], tab.h[f]
    mass = _level_diff(_interpolate(H_f, w, h_f))
    if uniform:
        count = np.repeat(b / T, K)
        W_f = tab.W[f]
    else:
        count = _level_diff(_interpolate(tab.NZ[f], w, tab.z[f]))
        W_f = H_f if plain else tab.W[f]
    # The last level as the seed's floats give it: where its exact mass is 0, a
    # rounding sliver of the bin before can make it a tiny non-zero; keep that.
    last_mass, last_count = last.mass[rows], last.count[rows]
    # With no smoothing and no truncation, an empty level (no non-zero bin, no mass) may
    # take any positive value: none of its bins has p > 0. mass / count is nan there and
    # fmax makes it the smallest normal number, so no log below meets a zero.
    positive = plain and policy.truncate == "none"
    if positive:
        value = np.fmax(mass / count, _TINY)  # (0 / 0 warnings are off: see _kl_fast)
        value[last_level] = (last_mass + _TINY) / (last_count + _TINY)
    elif policy.truncate == "none":
        value = mass / (count + _TINY)
        value[last_level] = last_mass / (last_count + _TINY)
    else:
        mass[last_level] = last_mass
        count[last_level] = last_count
        value = _truncate_value(mass, count, policy)
    value[unused] = 1.0

    # Whole levels. A level with q' = v + s = 0 has no non-zero bin here (its split
    # bin, if any, gave it mass), so its p'log p' is 0 and nothing lands in Z; the
    # p'log p' of all levels together telescopes to the window's.
    q = value + s if s else value
    # log q' is finite everywhere: where q' = 0 the level is empty (dw = 0 there)
    logq = np.log(q) if positive else np.log(np.maximum(q, _TINY))
    dw = _level_diff(W_f)
    dw[unused] = 0.0
    # bin i-1, which holds the tail, is in the last level: its Q is the level's true value
    # (where the positive-value trick made an empty last level tiny, that is 0 again)
    v_last = np.where(last_mass > 0, value[last_level], last_mass / (last_count + _TINY))
    out.v_hi[rows] = v_last
    A = (tab.PHI[b] - tab.PHI[0]) - np.vecdot(logq.reshape(n, K), dw.reshape(n, K))
    if policy.normalize == "pq":
        out.W[rows] = tab.W[b]
        if policy.expand == "nonzero" and s > 0:  # empty bins: p' = q' = eps
            out.W[rows] += s * (b - tab.NZ[b])
        count[last_level] = 0.0  # the last level's own term, with its true value
        count[unused] = 0.0
        qsum = np.vecdot(value.reshape(n, K), count.reshape(n, K))
        out.qsum[rows] = qsum + v_last * last_count

    # Split bins: level k counted bin f_k with q' = v_k + s; its true q' mixes in v_(k-1):
    # add p' (log(v_k + s) - log(q' + s)). Where fr = 0 (slots 0 and T among them) the
    # two logs are equal and the term is 0.
    qs = value[:-1] - value[1:]
    qs *= w[1:]
    qs += q[1:]
    p = h_f + s if s else h_f
    if policy.expand == "nonzero" and s:
        p = p * tab.z[f]  # an empty bin gets no Q: p' = q' = eps, no correction
    logqs = np.log(qs) if positive else np.log(np.maximum(qs, _TINY))
    gap = np.empty_like(logq)
    gap[0] = 0.0
    np.subtract(logq[1:], logqs, out=gap[1:])
    out.A[rows] = A + np.vecdot(p.reshape(n, K), gap.reshape(n, K))


def _interpolate(at_floor: np.ndarray, frac: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """at_floor + frac * slope, with one temporary."""
    out = frac * slope
    out += at_floor
    return out


def _level_diff(at_bounds: np.ndarray) -> np.ndarray:
    """Per-level differences of a flat (candidates x (T + 1)) boundary array; each
    candidate's last slot (past its level T - 1) gets whatever lies across the row end."""
    d = np.empty_like(at_bounds)
    np.subtract(at_bounds[1:], at_bounds[:-1], out=d[:-1])
    d[-1] = 0.0
    return d


@dataclasses.dataclass(frozen=True)
class _LastLevel:
    """The last level's mass and count per candidate, with the seed's float boundaries."""

    mass: np.ndarray
    count: np.ndarray


def _seed_last_level(prep, policy, rows) -> _LastLevel:
    """The last level's mass and count with the seed's float boundaries (see
    _fast_fractional: only there can a rounding sliver turn a zero into a non-zero)."""
    lv = _seed_levels(prep, policy, rows, np.array([prep.T - 1]))
    return _LastLevel(mass=lv.mass[:, 0], count=lv.count[:, 0])


def _fast_whole(prep, policy, rows, tab: _Tables, s: float, out: _RowSums) -> None:
    """Whole-bin merges (MXNet / ONNX Runtime "whole", ModelOpt "linspace")."""
    g = _groups_whole(prep, policy, rows, tab)
    b = prep.b[rows]
    sums = _Sums(rows.size)
    nonzero_eps = policy.expand == "nonzero" and s > 0
    e = np.concatenate([g.e0, g.e1[:, -1:]], axis=1)
    sums.levels(tab.PHI[e], g.dw, g.dnz, g.value, s, (g.e1 - g.e0) if nonzero_eps else None)
    if g.orphan:
        lo, hi = g.e1[:, -1:], b[:, None]
        sums.levels(
            tab.PHI[np.concatenate([lo, hi], axis=1)], tab.W[hi] - tab.W[lo],
            tab.NZ[hi] - tab.NZ[lo], np.zeros(lo.shape), s, (hi - lo) if nonzero_eps else None,
        )  # fmt: skip
        out.orphan_hi[rows] = g.orphan_hi
    out.A[rows], out.W[rows], out.Z[rows] = sums.A, sums.W, sums.Z
    idx = np.arange(rows.size)
    out.v_lo[rows] = g.value[idx, g.k_a]
    out.v_hi[rows] = g.value[idx, g.k_b]
    if policy.normalize == "pq":
        width = (g.e1 - g.e0) if policy.expand == "fill_all" else g.count
        out.qsum[rows] = (g.value * width).sum(axis=1)


_TAYLOR_TERMS = 6  # powers of c / p kept in the smoothing series
_TAYLOR_MAX_RATIO = 1e-2  # c / p at most this: the dropped terms are below 1e-16 of p


class _SmoothTables:
    """MXNet smoothing's p log p, split by the size of the counts.

    Bins with ``h >= c_max / 1e-2`` ("large") go into prefix sums of h log h, log h and
    h^-1 .. h^-(K-1), the Taylor series' terms. The few non-zero bins below that
    ("small": sparse tails, fractional counts) are kept as a list and summed exactly.
    """

    def __init__(self, h: np.ndarray, c_max: float) -> None:
        self.tau = max(c_max / _TAYLOR_MAX_RATIO, np.finfo(np.float64).tiny)
        large = h >= self.tau
        hn = np.where(large, h, 1.0)
        self.PLP = _prefix(np.where(large, hn * np.log(hn), 0.0))
        self.LP = _prefix(np.where(large, np.log(hn), 0.0))
        self.NZ = _prefix(large)
        if c_max > 0:
            self.INV = [_prefix(np.where(large, hn ** (-k), 0.0)) for k in range(1, _TAYLOR_TERMS)]
        else:  # no candidate shifts P: the series has no terms (and 1e-67 ** -5 overflows)
            self.INV = [np.zeros(h.size + 1)] * (_TAYLOR_TERMS - 1)
        self.small_at = np.flatnonzero((h > 0) & ~large)
        self.small_h = h[self.small_at]


@dataclasses.dataclass(frozen=True)
class _MxnetShift:
    """MXNet smoothing's shift of each candidate's P, and the pieces it is made of."""

    c: np.ndarray  # eps * zeros / non-zeros: what every non-zero bin of P gives up
    nnz_p: np.ndarray  # P's non-zero bins
    tail_a: np.ndarray  # the mass folded into the window's first bin
    tail_b: np.ndarray  # ... and into its last bin (0 for a one-bin window: it is bin a)
    one: np.ndarray  # a one-bin window
    fix_a: np.ndarray  # the first bin is empty in the histogram but not in P
    fix_b: np.ndarray  # ... the last bin


def _mxnet_shift(
    prep: _Prep, policy: Policy, rows: np.ndarray, h: np.ndarray, NZ: np.ndarray
) -> _MxnetShift:
    """MXNet smoothing's c = eps * zeros / non-zeros of each candidate's P."""
    a, b = prep.a[rows], prep.b[rows]
    one = a == b - 1
    tail_a = prep.tail_lo[rows] + np.where(one, prep.tail_hi[rows], 0.0)
    tail_b = np.where(one, 0.0, prep.tail_hi[rows])
    # P's non-zero count: the histogram's, plus edge bins made non-zero by a tail
    fix_a = (h[a] == 0) & (tail_a > 0)
    fix_b = (h[b - 1] == 0) & (tail_b > 0) & ~one
    nnz_p = NZ[b] - NZ[a] + fix_a + fix_b
    c = policy.eps * ((b - a) - nnz_p) / nnz_p
    return _MxnetShift(
        c=c, nnz_p=nnz_p, tail_a=tail_a, tail_b=tail_b, one=one, fix_a=fix_a, fix_b=fix_b
    )


def _shifted_xlogx(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(x - c) log(x - c) where x > 0, 0 where x == 0."""
    y = x - c
    ok = (x > 0) & (y > 0)  # y <= 0 only where the row is left to the dense path anyway
    return np.where(ok, y * np.log(np.where(ok, y, 1.0)), np.where(x > 0, np.nan, 0.0))


def _fast_mxnet(prep: _Prep, policy: Policy, rows: np.ndarray, tab: _Tables, st: _SmoothTables):
    """Whole-bin merges with MXNet's smoothing, which takes c = eps * zeros / non-zeros
    off every non-zero bin of a candidate's P (and its own c' off Q).

    Q is constant on a level, so its part is a per-level sum. P's part needs
    sum (p - c) log(p - c) over the window, which prefix sums cannot hold since c
    changes with the candidate; its Taylor series in c can:

        (p - c) log(p - c) = p log p - c (log p + 1) + sum_k>=2 c^k / (k (k-1) p^(k-1))

    The series is used for the bins where c / p <= 1e-2 for every candidate; the other
    non-zero bins (few: sparse tails, fractional counts) are summed exactly per candidate.
    """
    eps = policy.eps
    g = _groups_whole(prep, policy, rows, tab)
    a, b = prep.a[rows], prep.b[rows]
    L = (b - a).astype(np.float64)
    h = tab.h
    last = b - 1
    sh = _mxnet_shift(prep, policy, rows, h, tab.NZ)
    c, nnz_p, tail_a, tail_b, one = sh.c, sh.nnz_p, sh.tail_a, sh.tail_b, sh.one

    # sum over non-zero P of (p - c) log(p - c): the series over the window's large bins,
    # the small ones one by one, then the two edge bins swapped for their true values
    spp = (st.PLP[b] - st.PLP[a]) - c * ((st.LP[b] - st.LP[a]) + (st.NZ[b] - st.NZ[a]))
    ck = c.copy()
    for k in range(2, _TAYLOR_TERMS + 1):
        ck = ck * c
        spp += ck / (k * (k - 1)) * (st.INV[k - 2][b] - st.INV[k - 2][a])
    valid = np.ones(rows.size, dtype=bool)
    if st.small_at.size:  # small bins strictly inside the window (the edges come below)
        at = st.small_at[None, :]
        inside = (at > a[:, None]) & (at < last[:, None])
        terms = np.where(inside, _shifted_xlogx(st.small_h[None, :], c[:, None]), 0.0)
        valid = ~np.isnan(terms).any(axis=1)  # p - c <= 0: the smoothing fails (ORT asserts)
        spp += np.where(valid[:, None], terms, 0.0).sum(axis=1)
    # the edge bins: their true p (tail folded in), less what the series counted for them
    series_a = np.where(h[a] >= st.tau, _shifted_xlogx(h[a], c), 0.0)
    series_b = np.where(h[last] >= st.tau, _shifted_xlogx(h[last], c), 0.0)
    spp += _shifted_xlogx(h[a] + tail_a, c) - series_a
    spp += np.where(one, 0.0, _shifted_xlogx(h[last] + tail_b, c) - series_b)
    spp += (L - nnz_p) * eps * np.log(eps)
    valid &= ~np.isnan(spp)

    # Q per level: value v on its assigned bins (non-zero P, or all bins for fill_all)
    v = g.value
    width = (g.e1 - g.e0).astype(np.float64)
    dpsum = tab.H[g.e1] - tab.H[g.e0]
    idx = np.arange(rows.size)
    # an edge bin's tail joins its level's assigned bins unless the bin is not assigned
    # (expand="nonzero" with nonzero_from="hist": a bin empty in the histogram gets no Q)
    hist_only = policy.expand == "nonzero" and policy.nonzero_from == "hist"
    dpsum[idx, g.k_a] += np.where(hist_only & (h[a] == 0), 0.0, tail_a)
    in_b = ~one & ~g.orphan_hi & ~(hist_only & (h[last] == 0))
    dpsum[idx, g.k_b] += np.where(in_b, tail_b, 0.0)
    if policy.expand == "fill_all":
        # every bin of the level gets Q; P' is p - c on its non-zero bins, eps elsewhere
        nz_p = g.dnz.copy()
        nz_p[idx, g.k_a] += sh.fix_a
        nz_p[idx, g.k_b] += np.where(g.orphan_hi, False, sh.fix_b)
        s_level = dpsum - c[:, None] * nz_p + eps * (width - nz_p)
        q_bins = np.where(v > 0, width, 0.0)
    else:  # Q on the assigned (non-zero) bins only, whose P' is p - c
        s_level = dpsum - c[:, None] * g.count
        q_bins = np.where(v > 0, g.count, 0.0)
    qsum = (v * q_bins).sum(axis=1)
    nnz_q = q_bins.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cq = eps * (L - nnz_q) / nnz_q
        vmin = np.where(v > 0, v, np.inf).min(axis=1)
        ok_q = (nnz_q > 0) & (cq < 1.0) & (vmin > cq)
        logq = np.log(np.where(v > 0, v - cq[:, None], 1.0)) - np.log(eps)
    spq = (np.where(v > 0, logq, 0.0) * s_level).sum(axis=1) + np.log(eps) * prep.h.sum()
    psum = prep.h.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        if policy.normalize == "pq":
            kl = (spp - spq) / psum + np.log(qsum / psum)
        else:
            kl = spp - spq
    return np.where(ok_q & valid & (c < 1.0), kl, np.inf)


def _finish_sums(prep: _Prep, policy: Policy, out: _RowSums, s: float) -> np.ndarray:
    zq = 1.0 if policy.zero_q == "one" else np.inf
    with np.errstate(invalid="ignore"):
        zpart = np.where(out.Z > 0.5, out.Z * zq, 0.0)
    if policy.normalize != "pq":
        return out.A + zpart
    L = prep.b - prep.a
    psum = prep.h.sum() + s * L
    qsum = out.qsum + s * L
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = out.A / psum + (out.W / psum) * np.log(qsum / psum) + zpart
    return np.where(qsum > 0, kl, np.inf)
