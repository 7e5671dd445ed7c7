"""The KL sweep: every candidate clip's KL(P || Q) in a few numpy passes.

A naive sweep rebuilds P and Q for each candidate, O(N) per candidate and O(N^2) in
all, in Python loops. Here every candidate costs O(target_bins): level masses and
non-zero counts come from prefix sums, and the KL of a level's bins against the
level's single Q value is read off prefix sums too,

    sum_j p_j log(p_j / v) = sum_j p_j log p_j - log(v) * sum_j p_j,

so the whole sweep is a handful of (candidates x target_bins) array operations.
Only a few bins per candidate are computed one by one: the edge bin(s) that hold the
folded outliers, and (fractional merges) the bins a level boundary cuts in two.
MXNet-style smoothing shifts every non-zero bin by an amount that depends on the
candidate; its p log p is read off prefix sums of a Taylor series in that shift, and
the rare candidates where the series would not converge fast take the dense path,
which builds P and Q bin by bin for blocks of candidates (and also serves
``SweepResult.distributions`` and the tests).

Both paths, and the slow loops in ``calib.reference``, are compared in the tests.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from calib.histogram import Histogram, as_histogram
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS, Policy, resolve_policy

__all__ = ["PQ", "SweepResult", "kl_sweep", "pick_minimum", "tie_scale"]

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
    if engine == "fast" and not _fast_supported(policy):
        raise ValueError(
            "engine='fast' cannot take precision='float32', nor smoothing='mxnet' with a "
            "fractional or uniform merge; use engine='auto' or 'dense'"
        )
    if engine == "dense" or (engine == "auto" and not _fast_supported(policy)):
        kl = _kl_dense_rows(prep, policy, np.arange(prep.cand.size))
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
    eps = policy.eps if policy.smoothing != "none" else 0.0
    i = pick_minimum(kl, policy.ties, tie_scale(prep.h, policy.normalize == "pq", eps))
    return SweepResult(
        variant, policy, T, h, prep.cand, kl, prep.thresholds,
        int(prep.cand[i]), i, float(prep.thresholds[i]), False,
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
    # whole-bin merges: per-level sums from the tables, and the levels of the edge bins
    dw: np.ndarray | None = None
    dnz: np.ndarray | None = None
    k_a: np.ndarray | None = None
    k_b: np.ndarray | None = None
    orphan_hi: np.ndarray | None = None


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
    # a level with no non-zero bin gets no Q, whatever mass a remainder gave it
    with np.errstate(over="ignore"):
        value = np.where(count > 0, mass / np.maximum(count, _TINY), 0.0)
    if policy.truncate == "mass_and_q":
        value = np.trunc(value)
    return value


def _seed_levels(prep: _Prep, policy: Policy, rows: np.ndarray, k: np.ndarray):
    """Levels ``k`` of each candidate with the boundaries exactly as the seed's floats give
    them: start = k * (i / T), end = start + i / T. Returns (S, E, lu, rl, ls, rs, mass,
    count), each (rows, len(k)): level k is whole bins [lu, rl), plus ls of bin lu - 1 and
    rs of bin rl."""
    h = prep.h
    b = prep.b[rows]
    npb = b / prep.T
    S = k[None, :] * npb[:, None]
    E = S + npb[:, None]
    lu = np.ceil(S).astype(np.intp)
    rl = np.floor(E).astype(np.intp)
    ls = lu - S
    # A right edge at or past the threshold is a rounding artefact: dropped.
    rs = np.where((rl < E) & (rl < b[:, None]), E - rl, 0.0)
    H = _prefix(h)
    left = np.maximum(lu - 1, 0)
    right = np.minimum(rl, h.size - 1)
    mass = ls * h[left] + rs * h[right] + (H[rl] - H[lu])
    if policy.expand == "uniform":
        count = ls + rs + (rl - lu)
    else:
        NZ = _prefix(h != 0)
        z_left = _nonzero_p(prep, rows, left, policy)
        z_right = _nonzero_p(prep, rows, right, policy)
        count = ls * z_left + rs * z_right + (NZ[rl] - NZ[lu])
        if policy.nonzero_from == "p":
            # bin i-1 holds the tail: non-zero in P even where the histogram is empty
            last = (b - 1)[:, None]
            extra = (h[b - 1] == 0) & (prep.tail_hi[rows] > 0)
            count = count + ((lu <= last) & (last < rl) & extra[:, None])
    return S, E, lu, rl, ls, rs, mass, count


def _groups_fractional(prep: _Prep, policy: Policy, rows: np.ndarray) -> _Groups:
    S, E, lu, rl, ls, rs, mass, count = _seed_levels(prep, policy, rows, np.arange(prep.T))
    value = _truncate_value(mass, count, policy)
    edges = np.concatenate([S, E[:, -1:]], axis=1)
    return _Groups(edges, mass, count, value, lu=lu, rl=rl, ls=ls, rs=rs)


@functools.lru_cache(maxsize=16)
def _whole_levels(key: bytes, T: int, merge: str, remainder: str):
    """Level boundaries (relative to the window) for window lengths L, and the levels
    holding the window's first and last bins. They depend on the sizes only."""
    L = np.frombuffer(key, dtype=np.intp)
    if merge == "whole":
        m = L // T
        e_rel = np.arange(T + 1)[None, :] * m[:, None]
        if remainder == "last_group":
            e_rel[:, -1] = L  # the remainder bins join the last level
        k_a = np.zeros(L.size, dtype=np.intp)
        k_b = np.full(L.size, T - 1)
    else:  # linspace: bin j is in level digitize(j, linspace(0, i, T+1)) - 1
        # np.linspace's own arithmetic: k * (i / T), the last point set to i exactly
        space = np.arange(T + 1)[None, :] * (L / T)[:, None]
        space[:, -1] = L
        e_rel = np.ceil(space).astype(np.intp)
        k_a = (e_rel[:, 1:] <= 0).sum(axis=1)  # levels are empty where i < T
        k_b = (e_rel[:, 1:] <= (L - 1)[:, None]).sum(axis=1)
    for x in (e_rel, k_a, k_b):
        x.setflags(write=False)
    return e_rel, k_a, k_b


def _groups_whole(prep: _Prep, policy: Policy, rows: np.ndarray, tab=None) -> _Groups:
    T = prep.T
    a, b = prep.a[rows], prep.b[rows]
    L = b - a
    R = rows.size
    L_all = (prep.b - prep.a).astype(np.intp)
    e_rel, k_a, k_b = _whole_levels(L_all.tobytes(), T, policy.merge, policy.remainder)
    if rows.size == L_all.size or rows[-1] - rows[0] + 1 == rows.size:
        sl = slice(int(rows[0]), int(rows[-1]) + 1)  # a run of rows: views, no copies
        e_rel, k_a, k_b = e_rel[sl], k_a[sl], k_b[sl]
    else:
        e_rel, k_a, k_b = e_rel[rows], k_a[rows], k_b[rows]
    s = policy.eps if policy.smoothing == "add_eps" else 0.0
    if tab is None:
        tab = _Tables(prep.h, policy, s)
    e = a[:, None] + e_rel
    # Prefix sums at each level boundary; with no smoothing W (the mass of the bins a
    # level's Q covers) is H itself.
    G = np.take(tab.stacked_hnz if s == 0 else tab.stacked_hnzw, e, axis=1)
    D = G[:, :, 1:] - G[:, :, :-1]
    mass, nz = D[0], D[1]
    dw = D[0] if s == 0 else D[2]
    orphan = policy.remainder == "orphan"
    if orphan:  # remainder bins [a + T m, b): their mass joins the last level, their Q is 0
        mass = mass.copy()
        mass[:, -1] += tab.H[b] - tab.H[e[:, -1]]
        orphan_hi = b - 1 >= e[:, -1]
    else:
        orphan_hi = np.zeros(R, dtype=bool)
    if policy.merge == "whole" and policy.truncate != "none":
        # MXNet and ONNX Runtime store the last group in an integer array, then add the
        # remainder to it: trunc(trunc(group) + remainder)
        group_end = a + T * (L // T)
        group = tab.H[group_end] - tab.H[e[:, -2]]
        mass = mass.copy()
        mass[:, -1] = np.trunc(np.trunc(group) + (tab.H[b] - tab.H[group_end]))
    if policy.expand == "uniform":
        count = (e_rel[:, 1:] - e_rel[:, :-1]).astype(np.float64)
    else:
        count = nz
        if policy.nonzero_from == "p":  # edge bins made non-zero by a folded tail
            count = nz.copy()
            one = a == b - 1
            h = tab.h
            tail_a = prep.tail_lo[rows] + np.where(one, prep.tail_hi[rows], 0.0)
            idx = np.arange(R)
            count[idx, k_a] += (h[a] == 0) & (tail_a > 0)
            extra_b = (h[b - 1] == 0) & (prep.tail_hi[rows] > 0) & ~one & ~orphan_hi
            count[idx, k_b] += extra_b
    if policy.truncate == "none" and not orphan:
        value = mass / (count + _TINY)  # no non-zero bin means no mass: 0 / tiny = 0
    else:
        value = _truncate_value(mass, count, policy)
    return _Groups(
        e_rel.astype(np.float64), mass, count, value, e0=e[:, :-1], e1=e[:, 1:],
        orphan=orphan, dw=dw, dnz=nz, k_a=k_a, k_b=k_b, orphan_hi=orphan_hi,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# the fast path: prefix sums
# --------------------------------------------------------------------------------------
_TINY = np.finfo(np.float64).tiny
_FAST_BLOCK_ELEMENTS = 1 << 13  # rows per block * levels: keeps the temporaries in cache


def _xlogx(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def _prefix(x: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])


class _Tables:
    """Per-bin arrays and their prefix sums, padded with one empty bin at index N.

    ``phi``/``w`` are p'log p' and p' = h + s over the bins that receive a level's
    value ("assigned": the non-zero bins, or every bin for uniform expansions).
    """

    def __init__(self, h: np.ndarray, policy: Policy, s: float) -> None:
        nz = h != 0
        assigned = nz if policy.expand == "nonzero" else np.ones_like(nz)
        self.h = np.append(h, 0.0)
        self.z = np.append(nz, False).astype(np.float64)
        self.phi = np.append(np.where(assigned, _xlogx(h + s), 0.0), 0.0)
        self.w = np.append(np.where(assigned, h + s, 0.0), 0.0)
        self.H = _prefix(h)
        self.NZ = _prefix(nz)
        self.PHI = _prefix(self.phi[:-1])
        self.W = _prefix(self.w[:-1])
        # for the whole-bin merges: one gather fetches H and NZ (and W) at a set of bins
        self.stacked_hnz = np.stack([self.H, self.NZ])
        self.stacked_hnzw = np.stack([self.H, self.NZ, self.W])


class _Sums:
    """Per candidate: A = sum p'log(p'/q') and W = sum p' over bins with p' > 0 and
    q' > 0; Z = the number of bins with p' > 0 and q' == 0."""

    def __init__(self, m: int) -> None:
        self.A = np.zeros(m)
        self.W = np.zeros(m)
        self.Z = np.zeros(m)

    def bin(self, p: np.ndarray, q: np.ndarray, sign: float) -> None:
        """Add (+1) or take away (-1) one bin per candidate, given its p' and q'."""
        pos = p > 0
        good = pos & (q > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = p * np.log(np.where(good, p, 1.0) / np.where(good, q, 1.0))
        self.A += sign * np.where(good, t, 0.0)
        self.W += sign * np.where(good, p, 0.0)
        self.Z += sign * (pos & ~good)

    def levels(self, phi_at, dw, dnz, value, s: float, width=None) -> None:
        """Add whole levels: bins whose p' comes from the tables and whose q' = value + s.

        ``phi_at`` is the prefix sum of p'log p' at the level boundaries (rows, T+1).
        """
        q = value + s
        ok = q > 0
        logq = np.log(np.maximum(q, _TINY))  # finite where q' = 0: those levels are empty
        self.A += (phi_at[:, -1] - phi_at[:, 0]) - np.vecdot(logq, dw)
        if ok.all() or not dnz[~ok].any():  # the usual case: q' = 0 only on empty levels
            self.W += dw.sum(axis=1)
        else:  # a truncated Q, or remainder bins: p' > 0 against q' = 0
            dphi = phi_at[:, 1:] - phi_at[:, :-1]
            self.A -= np.where(ok, 0.0, dphi).sum(axis=1)
            self.W += (dw * ok).sum(axis=1)
            self.Z += (dnz * ~ok).sum(axis=1)
        if width is not None:  # empty bins of a "nonzero" expansion: p' = q' = eps
            self.W += (s * (width - dnz)).sum(axis=1)


def _fast_supported(policy: Policy) -> bool:
    if policy.precision == "float32":
        return False
    if policy.smoothing != "mxnet":
        return True
    return policy.merge != "fractional" and policy.expand != "uniform"


def _kl_fast(prep: _Prep, policy: Policy) -> np.ndarray:
    s = policy.eps if policy.smoothing == "add_eps" else 0.0
    tab = _Tables(prep.h, policy, s)
    M, T = prep.cand.size, prep.T
    step = max(1, _FAST_BLOCK_ELEMENTS // (T + 1))
    blocks = [np.arange(i, min(M, i + step)) for i in range(0, M, step)]
    if policy.smoothing == "mxnet":
        c = _mxnet_shift(prep, policy, np.arange(M), tab.h, tab.NZ)[0]
        st = _SmoothTables(prep.h, float(np.max(c, initial=0.0)))
        return np.concatenate([_fast_mxnet(prep, policy, rows, tab, st) for rows in blocks])
    out = _RowSums(M)
    if policy.merge == "fractional":
        last = _seed_last_level(prep, policy, np.arange(M), tab)
        with np.errstate(divide="ignore", invalid="ignore"):  # once: it costs microseconds
            for rows in blocks:
                _fast_fractional(prep, policy, rows, tab, s, out, last)
    else:
        for rows in blocks:
            _fast_whole(prep, policy, rows, tab, s, out)
    # The edge bins that hold the tails, for all candidates at once.
    everyone = np.arange(M)
    a, b = prep.a, prep.b
    one = a == b - 1  # a one-bin window holds both tails in that bin
    if policy.merge != "fractional":  # (the seed family's window starts at bin 0)
        tail_a = prep.tail_lo + np.where(one, prep.tail_hi, 0.0)
        _edge_bin(prep, policy, tab, out, everyone, a, tail_a, out.v_lo, False, s)
    keep = (out.A.copy(), out.W.copy(), out.Z.copy())
    _edge_bin(prep, policy, tab, out, everyone, b - 1, prep.tail_hi, out.v_hi, out.orphan_hi, s)
    out.A, out.W, out.Z = (
        np.where(one, k, x) for k, x in zip(keep, (out.A, out.W, out.Z), strict=True)
    )
    return _finish_sums(prep, policy, out, s)


class _RowSums(_Sums):
    """_Sums plus what the edge bins and the normalisation need, per candidate."""

    def __init__(self, m: int) -> None:
        super().__init__(m)
        self.qsum = np.zeros(m)  # sum of Q before smoothing
        self.v_lo = np.zeros(m)  # Q value of the level holding bin a
        self.v_hi = np.zeros(m)  # ... and bin b - 1
        self.orphan_hi = np.zeros(m, dtype=bool)  # bin b - 1 is a remainder bin with Q = 0


def _edge_bin(prep, policy, tab, sums, rows, j, tail, v, in_orphan, s) -> None:
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


@functools.lru_cache(maxsize=8)  # about 4 MB each at 2048 bins and 128 levels
def _level_boundaries(first: int, last: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """B_k = k * i / T for i = first..last and k = 0..T: integer part and fraction.

    They depend on the sizes only, not on the counts, so sweeping many tensors of one
    size (a model's layers, a slider's reruns) computes them once.
    """
    b = np.arange(first, last + 1)
    kb = np.arange(T + 1)[None, :] * b[:, None]  # intp: take() is 3x slower on int32
    fi = kb // T
    fr = (kb - fi * T) * (1.0 / T)
    fi.setflags(write=False)
    fr.setflags(write=False)
    return fi, fr


def _fast_fractional(prep, policy, rows, tab: _Tables, s: float, out: _RowSums, last) -> None:
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
    fi, fr = _level_boundaries(int(prep.b[0]), int(prep.b[-1]), T)
    span = slice(int(rows[0]) * K, (int(rows[-1]) + 1) * K)  # rows are a run
    f, w = fi.ravel()[span], fr.ravel()[span]
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
    last_mass, last_count = last[0][rows], last[1][rows]
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


def _seed_last_level(prep, policy, rows, tab: _Tables):
    """The last level's mass and count with the seed's float boundaries (see
    _fast_fractional: only there can a rounding sliver turn a zero into a non-zero)."""
    *_, mass, count = _seed_levels(prep, policy, rows, np.array([prep.T - 1]))
    return mass[:, 0], count[:, 0]


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
        self.INV = [_prefix(np.where(large, hn ** (-k), 0.0)) for k in range(1, _TAYLOR_TERMS)]
        self.small_at = np.flatnonzero((h > 0) & ~large)
        self.small_h = h[self.small_at]


def _mxnet_shift(prep: _Prep, policy: Policy, rows: np.ndarray, h: np.ndarray, NZ) -> tuple:
    """MXNet smoothing's c = eps * zeros / non-zeros of each candidate's P, and the pieces
    it is made of: (c, nnz_p, tail_a, tail_b, one, fix_a, fix_b)."""
    a, b = prep.a[rows], prep.b[rows]
    one = a == b - 1
    tail_a = prep.tail_lo[rows] + np.where(one, prep.tail_hi[rows], 0.0)
    tail_b = np.where(one, 0.0, prep.tail_hi[rows])
    # P's non-zero count: the histogram's, plus edge bins made non-zero by a tail
    fix_a = (h[a] == 0) & (tail_a > 0)
    fix_b = (h[b - 1] == 0) & (tail_b > 0) & ~one
    nnz_p = NZ[b] - NZ[a] + fix_a + fix_b
    c = policy.eps * ((b - a) - nnz_p) / nnz_p
    return c, nnz_p, tail_a, tail_b, one, fix_a, fix_b


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
    c, nnz_p, tail_a, tail_b, one, fix_a, fix_b = _mxnet_shift(prep, policy, rows, h, tab.NZ)

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
        nz_p[idx, g.k_a] += fix_a
        nz_p[idx, g.k_b] += np.where(g.orphan_hi, False, fix_b)
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


def _smooth32(p: np.ndarray, eps: float) -> np.ndarray | None:
    """ONNX Runtime's quant_utils.smooth_distribution, op for op (float32)."""
    is_zeros = (p == 0).astype(np.float32)
    is_nonzeros = (p != 0).astype(np.float32)
    n_zeros = is_zeros.sum()
    n_nonzeros = p.size - n_zeros
    if not n_nonzeros:
        return None
    eps1 = eps * float(n_zeros) / float(n_nonzeros)
    if eps1 >= 1.0:
        return None  # ONNX Runtime fails an assertion here
    hist = p.astype(np.float32)
    hist += eps * is_zeros + (-eps1) * is_nonzeros
    return hist if (hist > 0).all() else None  # ... and here


def _entropy32(pk: np.ndarray, qk: np.ndarray) -> float:
    """ONNX Runtime's calibrate.entropy (scipy's, in float32) on smoothed, positive P, Q."""
    pk = 1.0 * pk / np.sum(pk, axis=0, keepdims=True)
    qk = 1.0 * qk / np.sum(qk, axis=0, keepdims=True)
    return float(np.sum(pk * np.log(pk / qk), axis=0))


def _dense_kl32(block: _Block, policy: Policy) -> np.ndarray:
    """One candidate at a time, each window as its own 1-D array: float32 sums round
    by length, so padding rows to one width would change the last bits."""
    L = block.valid.sum(axis=1)
    kl = np.full(L.size, np.inf)
    for r, n in enumerate(L):
        p = _smooth32(block.P[r, :n], policy.eps)
        q = _smooth32(block.Q[r, :n], policy.eps)
        if p is not None and q is not None:
            kl[r] = _entropy32(p, q)
    return kl


def _dense_kl(block: _Block, policy: Policy, keep: bool = False):
    if policy.precision == "float32" and not keep:
        return _dense_kl32(block, policy)
    P, ok_p = _smooth(block.P, block.valid, policy)
    Q, ok_q = _smooth(block.Q, block.valid, policy)
    ok = ok_p & ok_q
    if policy.normalize == "pq":
        qs = Q.sum(axis=1, keepdims=True)
        ps = P.sum(axis=1, keepdims=True)
        ok &= (qs[:, 0] > 0) & (ps[:, 0] > 0)
        P = P / np.where(ps > 0, ps, 1.0)
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


def _kl_dense_rows(prep: _Prep, policy: Policy, rows: np.ndarray) -> np.ndarray:
    """KL of the given candidates (ascending), built densely in blocks of rows."""
    L = prep.b - prep.a
    out = np.empty(rows.size)
    start = 0
    while start < rows.size:
        # rows come in order of growing windows: take as many as fit one block
        stop = start + 1
        while stop < rows.size and (stop - start + 1) * int(L[rows[stop]]) <= _DENSE_BLOCK_ELEMENTS:
            stop += 1
        out[start:stop] = _dense_kl(_dense_block(prep, policy, rows[start:stop]), policy)
        start = stop
    return out


assert set(DEFAULT_TARGET_BINS) == set(VARIANTS)
