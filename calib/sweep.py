"""The KL sweep: every candidate clip's KL(P || Q) in a few numpy passes.

A naive sweep rebuilds P and Q for each candidate, O(N) per candidate and O(N^2) in
all, in Python loops. Here every candidate costs O(target_bins): group masses and
non-zero counts come from prefix sums, and the KL of a group's bins against the
group's single Q value is read off prefix sums too,

    sum_j p_j log(p_j / v) = sum_j p_j log p_j - log(v) * sum_j p_j,

so the whole sweep is a handful of (candidates x target_bins) array operations.
Only a few bins per candidate are "special" and computed one by one: the edge bin(s)
that hold the folded outliers, and (fractional merges) the bins a group boundary
cuts in two. MXNet-style smoothing shifts every non-zero bin by an amount that
depends on the candidate, which no prefix sum can hold; those variants take the
dense path, which builds P and Q for blocks of candidates at once.

Both paths, and the slow loops in ``calib.reference``, are compared in the tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from calib.histogram import Histogram, as_histogram
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS, Policy, resolve_policy

__all__ = ["PQ", "SweepResult", "kl_sweep"]

_ENGINES = ("auto", "fast", "dense")
_DENSE_BLOCK_ELEMENTS = 1 << 19  # about 4 MB per float64 block in the dense path


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PQ:
    """P and Q of one candidate, as a variant builds and compares them.

    ``p_raw``/``q_raw`` are before smoothing and normalisation; ``p``/``q`` are what
    the KL is taken over; ``terms`` is each bin's contribution (summing to ``kl``).
    Bins are those of the candidate's window, ``edges`` their edges in activation
    units. ``group_edges`` are the merge boundaries in bins from the window's start
    (fractional for the seed's merge), ``group_mass`` each quantized level's mass and
    ``group_value`` the Q value each level spreads over its bins.
    """

    candidate: int
    threshold: float
    kl: float
    edges: np.ndarray
    p_raw: np.ndarray
    q_raw: np.ndarray
    p: np.ndarray
    q: np.ndarray
    terms: np.ndarray
    group_edges: np.ndarray
    group_mass: np.ndarray
    group_value: np.ndarray


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Every candidate's KL and the chosen one.

    Attributes
    ----------
    candidates : int array
        Each candidate as the variant's own loop counts it (kept bins for the seed,
        ncnn and ModelOpt; bins on each side of the zero bin for MXNet and ONNX Runtime).
    kl : float array
        KL(P || Q) of each candidate; inf where the variant leaves it undefined.
    thresholds : float array
        Each candidate's clip in activation units.
    best, best_index : int
        The chosen candidate, and its index into ``candidates``.
    amax : float
        The chosen clip in activation units (0 for a dead histogram).
    dead : bool
        True when every count is zero; then ``kl`` is all inf and ``amax`` is 0.
    histogram : Histogram
        The histogram swept: the input, folded to |x| or mirrored to signed when the
        variant's layout asked for it.
    """

    variant: str
    policy: Policy
    target_bins: int
    histogram: Histogram
    candidates: np.ndarray
    kl: np.ndarray
    thresholds: np.ndarray
    best: int
    best_index: int
    amax: float
    dead: bool

    @property
    def min_kl(self) -> float:
        return float(self.kl[self.best_index])

    def index_of(self, candidate: int) -> int:
        """Index into ``candidates`` of one candidate; ValueError if it is not one."""
        i = int(np.searchsorted(self.candidates, candidate))
        if i >= self.candidates.size or self.candidates[i] != candidate:
            lo, hi = int(self.candidates[0]), int(self.candidates[-1])
            raise ValueError(f"candidate must be one of {lo}..{hi}, got {candidate!r}")
        return i

    def distributions(self, candidate: int | None = None) -> PQ:
        """P, Q and the per-bin KL terms of one candidate (the chosen one by default)."""
        c = self.best if candidate is None else candidate
        i = self.index_of(c)
        prep = _prepare(self.histogram, self.target_bins, self.policy)
        rows = np.array([i])
        block = _dense_block(prep, self.policy, rows)
        L = int(prep.b[i] - prep.a[i])
        pp, qq, terms, kl = _dense_kl(block, self.policy, keep=True)
        h = self.histogram
        g = block.groups
        return PQ(
            candidate=int(c),
            threshold=float(self.thresholds[i]),
            kl=float(kl[0]),
            edges=np.array(h.edges[prep.a[i] : prep.b[i] + 1]),
            p_raw=block.P[0, :L].copy(),
            q_raw=block.Q[0, :L].copy(),
            p=pp[0, :L].copy(),
            q=qq[0, :L].copy(),
            terms=terms[0, :L].copy(),
            group_edges=g.edges[0].copy(),
            group_mass=g.mass[0].copy(),
            group_value=g.value[0].copy(),
        )


# --------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------
def kl_sweep(
    hist: Any,
    target_bins: int | None = None,
    variant: str = "seed",
    *,
    engine: str = "auto",
    **policies: Any,
) -> SweepResult:
    """Sweep every candidate clip of a histogram and pick the one with the smallest KL.

    Parameters
    ----------
    hist : Histogram or array_like
        The histogram; a bare counts array means unit-width bins from 0.
    target_bins : int, optional
        Quantized levels T (128 for the seed, ncnn, ONNX Runtime and ModelOpt;
        255 for MXNet). Must be at least 1 and less than the number of bins.
    variant : str
        One of ``calib.VARIANTS``: "seed", "ncnn", "mxnet", "onnxruntime", "modelopt".
    engine : {"auto", "fast", "dense"}
        "auto" takes the prefix-sum path where the policies allow it. "dense" builds
        P and Q for every candidate; it exists to check the fast path and to teach.
    **policies
        Any field of ``calib.Policy`` overrides the variant's preset, for example
        ``kl_sweep(h, variant="onnxruntime", remainder="last_group")``.

    Returns
    -------
    SweepResult

    Notes
    -----
    For each candidate, P is the kept bins with the outliers added to the edge bin(s);
    the kept bins (without the outliers) are merged into T levels and expanded back
    to Q; ``KL = sum p log(p / q)`` over ``p > 0``, with the variant's rule where
    ``q == 0``. A variant whose layout is signed (MXNet, ONNX Runtime) mirrors a
    histogram of |x| into a symmetric one; an unsigned variant folds a symmetric
    signed histogram into |x| (``Histogram.mirror`` / ``Histogram.fold``).

    Examples
    --------
    The seed's own example: a ramp of 2048 bins, 128 levels, answer 2047.

    >>> import numpy as np, calib
    >>> ramp = np.arange(2048.0)
    >>> calib.kl_sweep(ramp / ramp.sum()).best
    2047
    """
    policy = resolve_policy(variant, policies)
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {_ENGINES}, got {engine!r}")
    h = as_histogram(hist)
    h = _to_layout(h, policy)
    T = _check_target_bins(target_bins, variant, h.n_bins)
    if h.is_dead:
        return _dead_result(variant, policy, T, h)
    prep = _prepare(h, T, policy)
    if engine == "fast" and policy.smoothing == "mxnet":
        raise ValueError("engine='fast' cannot take smoothing='mxnet'; use 'auto' or 'dense'")
    if engine == "dense" or (engine == "auto" and policy.smoothing == "mxnet"):
        kl = _kl_dense_all(prep, policy)
    else:
        kl = _kl_fast(prep, policy)
    return _finish(variant, policy, T, h, prep, kl)


# --------------------------------------------------------------------------------------
# validation and preparation
# --------------------------------------------------------------------------------------
def _to_layout(h: Histogram, policy: Policy) -> Histogram:
    if policy.layout == "unsigned" and h.is_signed:
        return h.fold()
    if policy.layout == "signed" and not h.is_signed:
        return h.mirror()
    return h


def _check_target_bins(target_bins: Any, variant: str, n_bins: int) -> int:
    T = DEFAULT_TARGET_BINS.get(variant, 128) if target_bins is None else target_bins
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)):
        raise ValueError(f"target_bins must be an integer, got {target_bins!r}")
    if T < 1:
        raise ValueError(f"target_bins must be at least 1, got {T}")
    if T >= n_bins:
        raise ValueError(
            f"target_bins must be less than the number of bins ({n_bins}), got {T}"
        )
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


def _prepare(h: Histogram, T: int, policy: Policy) -> _Prep:
    n = h.n_bins
    c = h.counts.astype(np.float64)  # a copy: the caller's counts are never touched
    if policy.zero_spike == "copy_next":
        c[0] = c[1]
    if policy.normalize == "histogram" and c.sum() > 0:
        c = c / c.sum()
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
    e = h.edges
    if policy.threshold == "edge":
        thr = e[b]
    else:
        thr = e[b] + 0.5 * (e[b] - e[b - 1])
    return _Prep(c, T, cand, a, b, H[a], H[-1] - H[b], np.asarray(thr, dtype=np.float64))


def _dead_result(variant: str, policy: Policy, T: int, h: Histogram) -> SweepResult:
    prep = _prepare(h, T, policy)
    kl = np.full(prep.cand.size, np.inf)
    return SweepResult(
        variant, policy, T, h, prep.cand, kl, prep.thresholds,
        int(prep.cand[0]), 0, 0.0, True,
    )  # fmt: skip


def _finish(variant, policy, T, h, prep, kl) -> SweepResult:
    kl = np.where(np.isnan(kl), np.inf, kl)
    if policy.ties == "first":
        i = int(np.argmin(kl))
    else:
        i = int(kl.size - 1 - np.argmin(kl[::-1]))
    return SweepResult(
        variant, policy, T, h, prep.cand, kl, prep.thresholds,
        int(prep.cand[i]), i, float(prep.thresholds[i]), False,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# groups: which bins make each quantized level, and the level's mass and Q value
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Groups:
    """Per candidate (rows) and level (columns).

    Fractional merges: level k spans [S, E) in bins; its interior is the whole bins
    [lu, rl); ``ls`` of bin lu-1 and ``rs`` of bin rl also belong to it.
    Whole-bin merges: level k's mass comes from bins [m0, m1) and its Q is written
    to bins [e0, e1); with remainder="orphan" a last extra level [e1[-1], b) has Q = 0.
    All indices are absolute bin indices into the histogram.
    """

    edges: np.ndarray  # (M, T+1) boundaries in bins from the window start (for display)
    mass: np.ndarray  # (M, T)
    count: np.ndarray  # (M, T) the divisor of the mass
    value: np.ndarray  # (M, T) Q's value on an assigned bin of the level
    lu: np.ndarray | None = None
    rl: np.ndarray | None = None
    ls: np.ndarray | None = None
    rs: np.ndarray | None = None
    e0: np.ndarray | None = None
    e1: np.ndarray | None = None
    orphan: bool = False


def _nonzero_p(prep: _Prep, rows: np.ndarray, j: np.ndarray, policy: Policy) -> np.ndarray:
    """Whether bin j (per row, any shape (R, K)) counts as non-zero for the expansion."""
    hz = prep.h[np.clip(j, 0, prep.h.size - 1)] != 0
    if policy.nonzero_from == "hist":
        return hz
    a = prep.a[rows][:, None]
    b = prep.b[rows][:, None]
    lo = (j == a) & (prep.tail_lo[rows][:, None] > 0)
    hi = (j == b - 1) & (prep.tail_hi[rows][:, None] > 0)
    return hz | lo | hi


def _groups(prep: _Prep, policy: Policy, rows: np.ndarray) -> _Groups:
    if policy.merge == "fractional":
        return _groups_fractional(prep, policy, rows)
    return _groups_whole(prep, policy, rows)


def _truncate_value(mass: np.ndarray, count: np.ndarray, policy: Policy) -> np.ndarray:
    if policy.truncate != "none":
        mass = np.trunc(mass)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(count > 0, mass / np.where(count > 0, count, 1), 0.0)
    if policy.truncate == "mass_and_q":
        value = np.trunc(value)
    return value


def _groups_fractional(prep: _Prep, policy: Policy, rows: np.ndarray) -> _Groups:
    T, h = prep.T, prep.h
    n = h.size
    b = prep.b[rows]
    # Boundaries exactly as the seed computes them: start = k * (i / T), end = start + i / T.
    npb = b / T
    S = np.arange(T)[None, :] * npb[:, None]
    E = S + npb[:, None]
    lu = np.ceil(S).astype(np.int64)
    rl = np.floor(E).astype(np.int64)
    ls = np.where(lu > S, lu - S, 0.0)
    # A right edge at or past the threshold is a rounding artefact: dropped.
    rs = np.where((rl < E) & (rl < b[:, None]), E - rl, 0.0)
    H = np.concatenate([[0.0], np.cumsum(h)])
    left = np.maximum(lu - 1, 0)
    right = np.minimum(rl, n - 1)
    mass = ls * h[left] + rs * h[right] + (H[rl] - H[lu])
    if policy.expand == "uniform":
        count = ls + rs + (rl - lu)
    else:
        NZ = np.concatenate([[0], np.cumsum(h != 0)])
        z_left = _nonzero_p(prep, rows, left, policy)
        z_right = _nonzero_p(prep, rows, right, policy)
        count = ls * z_left + rs * z_right + (NZ[rl] - NZ[lu])
        if policy.nonzero_from == "p":
            # bin b-1 holds the tail: non-zero in P even where the histogram is empty
            last = (b - 1)[:, None]
            extra = (h[b - 1] == 0) & (prep.tail_hi[rows] > 0)
            count = count + ((lu <= last) & (last < rl) & extra[:, None])
    value = _truncate_value(mass, count, policy)
    edges = np.concatenate([S, E[:, -1:]], axis=1)
    return _Groups(edges, mass, count, value, lu=lu, rl=rl, ls=ls, rs=rs)


def _groups_whole(prep: _Prep, policy: Policy, rows: np.ndarray) -> _Groups:
    T, h = prep.T, prep.h
    a, b = prep.a[rows], prep.b[rows]
    L = b - a
    if policy.merge == "whole":
        m = L // T
        rel = np.arange(T + 1)[None, :] * m[:, None]
        rel[:, -1] = L  # the remainder's mass joins the last group
        e_rel = rel.copy()
        if policy.remainder == "orphan":
            e_rel[:, -1] = T * m  # ... but its bins get no Q
    else:  # linspace: bin j is in group digitize(j, linspace(0, i, T+1)) - 1
        space = np.linspace(0.0, L.astype(np.float64), T + 1, axis=1)
        rel = np.ceil(space).astype(np.int64)
        e_rel = rel
    m0, m1 = a[:, None] + rel[:, :-1], a[:, None] + rel[:, 1:]
    e0, e1 = a[:, None] + e_rel[:, :-1], a[:, None] + e_rel[:, 1:]
    H = np.concatenate([[0.0], np.cumsum(h)])
    mass = H[m1] - H[m0]
    if policy.expand == "uniform":
        count = (e1 - e0).astype(np.float64)
    else:
        NZ = np.concatenate([[0], np.cumsum(h != 0)])
        count = (NZ[e1] - NZ[e0]).astype(np.float64)
        if policy.nonzero_from == "p":
            for j, tail in ((a, prep.tail_lo[rows]), (b - 1, prep.tail_hi[rows])):
                extra = (h[j] == 0) & (tail > 0)
                inside = (e0 <= j[:, None]) & (j[:, None] < e1)
                count = count + (inside & extra[:, None])
            both = (a == b - 1) & (h[a] == 0) & (prep.tail_lo[rows] > 0) & (prep.tail_hi[rows] > 0)
            count = count - ((e0 <= a[:, None]) & (a[:, None] < e1) & both[:, None])
    value = _truncate_value(mass, count, policy)
    return _Groups(
        rel.astype(np.float64), mass, count, value, e0=e0, e1=e1,
        orphan=policy.remainder == "orphan",
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# the fast path: prefix sums
# --------------------------------------------------------------------------------------
class _Acc:
    """Running sums per candidate: A = sum p'log(p'/q') and W = sum p' over p' > 0,
    q' > 0, and Z = how many bins have p' > 0 but q' == 0."""

    def __init__(self, m: int) -> None:
        self.A = np.zeros(m)
        self.W = np.zeros(m)
        self.Z = np.zeros(m)

    def add_terms(self, P: np.ndarray, Q: np.ndarray, sign: Any = 1.0) -> None:
        """Add (sign=+1) or remove (-1) single bins given p' and q' arrays of shape (M, K)."""
        pos = P > 0
        good = pos & (Q > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(good, P * np.log(np.where(good, P / np.where(good, Q, 1), 1)), 0.0)
        self.A += (sign * t).sum(axis=1)
        self.W += (sign * np.where(good, P, 0.0)).sum(axis=1)
        self.Z += (sign * (pos & ~good)).sum(axis=1)


def _xlogx(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def _kl_fast(prep: _Prep, policy: Policy) -> np.ndarray:
    rows = np.arange(prep.cand.size)
    g = _groups(prep, policy, rows)
    h = prep.h
    s = policy.eps if policy.smoothing == "add_eps" else 0.0
    acc = _Acc(rows.size)
    nz = h != 0
    # Prefix sums over plain bins; "assigned" bins get the level's Q value.
    if policy.expand == "nonzero":
        phi = np.where(nz, _xlogx(h + s), 0.0)
        w = np.where(nz, h + s, 0.0)
    else:
        phi = _xlogx(h + s)
        w = h + s
    PHI = np.concatenate([[0.0], np.cumsum(phi)])
    Wp = np.concatenate([[0.0], np.cumsum(w)])
    NZ = np.concatenate([[0], np.cumsum(nz)])

    def add_ranges(lo: np.ndarray, hi: np.ndarray, value: np.ndarray) -> None:
        q = value + s
        ok = q > 0
        with np.errstate(divide="ignore"):
            logq = np.log(np.where(ok, q, 1.0))
        wr = Wp[hi] - Wp[lo]
        acc.A += np.where(ok, (PHI[hi] - PHI[lo]) - logq * wr, 0.0).sum(axis=1)
        acc.W += np.where(ok, wr, 0.0).sum(axis=1)
        acc.Z += np.where(ok, 0, NZ[hi] - NZ[lo]).sum(axis=1)
        if s > 0 and policy.expand == "nonzero":
            # unassigned (empty) bins: p' = q' = eps, a zero term that still counts in W
            acc.W += (s * ((hi - lo) - (NZ[hi] - NZ[lo]))).sum(axis=1)

    if policy.merge == "fractional":
        add_ranges(g.lu, g.rl, g.value)
    else:
        add_ranges(g.e0, g.e1, g.value)
        if g.orphan:
            lo = g.e1[:, -1:]
            hi = prep.b[rows][:, None]
            add_ranges(lo, hi, np.zeros_like(lo, dtype=np.float64))

    # Special bins: replace what the range sums counted for them with their true term.
    spec = _special_bins(prep, policy, rows, g)
    hj = h[np.clip(spec.j, 0, h.size - 1)]
    assigned_h = (hj != 0) if policy.expand == "nonzero" else np.ones_like(hj, dtype=bool)
    counted = spec.valid & spec.in_range
    acc.add_terms(
        np.where(counted, hj + s, 0.0), np.where(counted, assigned_h * spec.range_value + s, 0.0), -1.0
    )
    acc.add_terms(np.where(spec.valid, spec.p + s, 0.0), np.where(spec.valid, spec.q + s, 0.0))

    return _combine(prep, policy, rows, g, acc, s)


def _combine(prep, policy, rows, g, acc: _Acc, s: float) -> np.ndarray:
    zq = 1.0 if policy.zero_q == "one" else np.inf
    with np.errstate(invalid="ignore"):
        zpart = np.where(acc.Z > 0.5, acc.Z * zq, 0.0)
    if policy.normalize != "pq":
        return acc.A + zpart
    L = (prep.b - prep.a)[rows]
    psum = (prep.h.sum()) + s * L
    if policy.expand == "fill_all":
        qsum = (g.value * (g.e1 - g.e0)).sum(axis=1)
    else:
        qsum = (g.value * g.count).sum(axis=1)
    qsum = qsum + s * L
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = acc.A / psum + (acc.W / psum) * np.log(qsum / psum) + zpart
    return np.where(qsum > 0, kl, np.inf)


@dataclasses.dataclass
class _Special:
    """Bins computed one by one, per candidate (rows) and slot (columns)."""

    j: np.ndarray  # bin index
    valid: np.ndarray  # slot in use
    p: np.ndarray  # true P (with folded tails)
    q: np.ndarray  # true Q
    in_range: np.ndarray  # the range sums counted this bin ...
    range_value: np.ndarray  # ... with this level value


def _special_bins(prep: _Prep, policy: Policy, rows: np.ndarray, g: _Groups) -> _Special:
    if policy.merge == "fractional":
        return _special_fractional(prep, policy, rows, g)
    return _special_whole(prep, policy, rows, g)


def _true_p(prep: _Prep, rows: np.ndarray, j: np.ndarray) -> np.ndarray:
    h = prep.h
    p = h[np.clip(j, 0, h.size - 1)].copy()
    p += np.where(j == prep.a[rows][:, None], prep.tail_lo[rows][:, None], 0.0)
    p += np.where(j == (prep.b[rows] - 1)[:, None], prep.tail_hi[rows][:, None], 0.0)
    return p


def _assign_mask(prep, policy, rows, j) -> np.ndarray:
    if policy.expand == "nonzero":
        return _nonzero_p(prep, rows, j, policy)
    return np.ones(j.shape, dtype=bool)


def _special_whole(prep: _Prep, policy: Policy, rows: np.ndarray, g: _Groups) -> _Special:
    a, b = prep.a[rows], prep.b[rows]
    j = np.stack([a, b - 1], axis=1)
    valid = np.ones_like(j, dtype=bool)
    valid[:, 1] = b - 1 != a  # one bin window: both tails are in slot 0
    # the level whose Q range holds the bin; the orphan range counts as level T
    ends = g.e1 if not g.orphan else np.concatenate([g.e1, b[:, None]], axis=1)
    k = (ends[:, None, :] <= j[:, :, None]).sum(axis=2)
    vals = g.value if not g.orphan else np.concatenate([g.value, np.zeros((rows.size, 1))], 1)
    kk = np.minimum(k, vals.shape[1] - 1)
    v = np.take_along_axis(vals, kk, axis=1)
    in_range = k < vals.shape[1]
    p = _true_p(prep, rows, j)
    q = np.where(_assign_mask(prep, policy, rows, j), v, 0.0) * in_range
    return _Special(j, valid, p, q, in_range, v)


def _special_fractional(prep: _Prep, policy: Policy, rows: np.ndarray, g: _Groups) -> _Special:
    T = prep.T
    lu, rl, ls, rs, v = g.lu, g.rl, g.ls, g.rs, g.value
    b = prep.b[rows]
    M = rows.size
    zeros_col = np.zeros((M, 1))
    # The boundary after level k: level k's right sliver and level k+1's left one.
    lu_n = np.concatenate([lu[:, 1:], np.full((M, 1), -10)], axis=1)
    rl_n = np.concatenate([rl[:, 1:], np.full((M, 1), -10)], axis=1)
    ls_n = np.concatenate([ls[:, 1:], zeros_col], axis=1)
    v_n = np.concatenate([v[:, 1:], zeros_col], axis=1)
    jr, jl = rl, lu_n - 1
    vr, vl = rs > 0, ls_n > 0
    same = vr & vl & (jr == jl)
    r_in_next = (lu_n <= jr) & (jr < rl_n)  # right sliver inside level k+1's interior
    l_in_this = (lu <= jl) & (jl < rl)  # left sliver inside level k's interior
    q_r = rs * v + np.where(same, ls_n * v_n, 0.0) + np.where(r_in_next, v_n, 0.0)
    q_l = ls_n * v_n + np.where(l_in_this, v, 0.0)
    j = np.concatenate([jr, jl], axis=1)
    valid = np.concatenate([vr, vl & ~same], axis=1)
    q_raw = np.concatenate([q_r, q_l], axis=1)
    in_range = np.concatenate([r_in_next & vr, l_in_this & (vl & ~same)], axis=1)
    range_value = np.concatenate([v_n, v], axis=1)
    # bin b-1 holds the tail; unless it is a sliver already, it sits inside a level
    last = (b - 1)[:, None]
    last_is_slot = (valid & (j == last)).any(axis=1)
    inside = (lu <= last) & (last < rl)
    k_last = np.argmax(inside, axis=1)
    has = inside.any(axis=1) & ~last_is_slot
    j = np.concatenate([j, last], axis=1)
    valid = np.concatenate([valid, has[:, None]], axis=1)
    v_last = v[np.arange(M), k_last][:, None]
    q_raw = np.concatenate([q_raw, v_last], axis=1)
    in_range = np.concatenate([in_range, has[:, None]], axis=1)
    range_value = np.concatenate([range_value, v_last], axis=1)
    p = _true_p(prep, rows, j)
    q = np.where(_assign_mask(prep, policy, rows, j), q_raw, 0.0)
    del T
    return _Special(j, valid, p, q, in_range, range_value)


# --------------------------------------------------------------------------------------
# the dense path: P and Q for blocks of candidates
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Block:
    P: np.ndarray  # (R, Lmax) raw P, zero past each row's window
    Q: np.ndarray  # (R, Lmax) raw Q
    valid: np.ndarray  # (R, Lmax) inside the window
    groups: _Groups


def _dense_block(prep: _Prep, policy: Policy, rows: np.ndarray) -> _Block:
    h = prep.h
    a, b = prep.a[rows], prep.b[rows]
    L = b - a
    Lmax = int(L.max())
    col = np.arange(Lmax)[None, :]
    valid = col < L[:, None]
    j = a[:, None] + col
    P = np.where(valid, h[np.minimum(j, h.size - 1)], 0.0)
    R = rows.size
    P[np.arange(R), 0] += prep.tail_lo[rows]
    P[np.arange(R), L - 1] += prep.tail_hi[rows]
    g = _groups(prep, policy, rows)
    Q = np.zeros((R, Lmax + 1))
    rr = np.broadcast_to(np.arange(R)[:, None], (R, prep.T))
    if policy.merge == "fractional":
        # interior: bins [lu, rl) of level k get its value
        k = _row_search(g.lu, col) - 1
        kk = np.clip(k, 0, prep.T - 1)
        interior = (k >= 0) & (col < np.take_along_axis(g.rl, kk, axis=1)) & valid
        Q[:, :Lmax] = np.where(interior, np.take_along_axis(g.value, kk, axis=1), 0.0)
        left = np.where(g.ls > 0, g.lu - 1, Lmax)
        right = np.where(g.rs > 0, g.rl, Lmax)
        Q[rr, left] += g.ls * g.value
        Q[rr, right] += g.rs * g.value
    else:
        rel_end = g.e1 - a[:, None]
        k = _row_search(rel_end, col)  # levels whose Q range ends at or before the bin
        kk = np.clip(k, 0, prep.T - 1)
        Q[:, :Lmax] = np.where((k < prep.T) & valid, np.take_along_axis(g.value, kk, 1), 0.0)
    Q = Q[:, :Lmax]
    if policy.expand == "nonzero":
        Q = np.where(_nonzero_p(prep, rows, j, policy) & valid, Q, 0.0)
    return _Block(P, Q, valid, g)


def _row_search(sorted_rows: np.ndarray, col: np.ndarray) -> np.ndarray:
    """For each row r and column c: how many of sorted_rows[r] are <= c."""
    R, K = sorted_rows.shape
    span = int(max(sorted_rows.max(), col.max())) + 2
    offset = (np.arange(R) * span)[:, None]
    flat = (sorted_rows + offset).ravel()
    queries = (col + offset).ravel()
    pos = np.searchsorted(flat, queries, side="right")
    return pos.reshape(R, -1) - (np.arange(R) * K)[:, None]


def _smooth(x: np.ndarray, valid: np.ndarray, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed rows and a per-row flag: False where the smoothing is undefined."""
    eps = policy.eps
    if policy.smoothing == "none":
        return x, np.ones(x.shape[0], dtype=bool)
    if policy.smoothing == "add_eps":
        return np.where(valid, x + eps, 0.0), np.ones(x.shape[0], dtype=bool)
    nonzero = valid & (x != 0)
    zero = valid & (x == 0)
    n_nz = nonzero.sum(axis=1)
    n_z = zero.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps1 = eps * n_z / n_nz
    out = x + eps * zero - np.where(nonzero, eps1[:, None], 0.0)
    ok = (n_nz > 0) & (eps1 < 1.0) & ~(valid & (out <= 0)).any(axis=1)
    return out, ok


def _dense_kl(block: _Block, policy: Policy, keep: bool = False):
    P, ok_p = _smooth(block.P, block.valid, policy)
    Q, ok_q = _smooth(block.Q, block.valid, policy)
    ok = ok_p & ok_q
    if policy.normalize == "pq":
        qs = Q.sum(axis=1, keepdims=True)
        ok &= qs[:, 0] > 0
        P = P / P.sum(axis=1, keepdims=True)
        Q = Q / np.where(qs > 0, qs, 1.0)
    zq = 1.0 if policy.zero_q == "one" else np.inf
    pos = block.valid & (P > 0)
    good = pos & (Q > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(good, P * np.log(np.where(good, P, 1.0) / np.where(good, Q, 1.0)), 0.0)
    terms = np.where(pos & ~good, zq, terms)
    kl = np.where(ok, terms.sum(axis=1), np.inf)
    if keep:
        return P, Q, terms, kl
    return kl


def _kl_dense_all(prep: _Prep, policy: Policy) -> np.ndarray:
    M = prep.cand.size
    L = prep.b - prep.a
    out = np.empty(M)
    start = 0
    while start < M:
        # rows are in order of growing windows: take as many as fit one block
        stop = start + 1
        while stop < M and (stop - start + 1) * int(L[stop]) <= _DENSE_BLOCK_ELEMENTS:
            stop += 1
        rows = np.arange(start, stop)
        out[start:stop] = _dense_kl(_dense_block(prep, policy, rows), policy)
        start = stop
    return out


assert set(DEFAULT_TARGET_BINS) == set(VARIANTS)
