"""Which bins make each quantized level, and the level's mass and Q value, per merge policy."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from calib.policies import Policy
from calib.sweep._prepare import _Prep
from calib.sweep._tables import _TINY, _prefix, _Tables


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


@dataclasses.dataclass(frozen=True)
class _SeedLevels:
    """Levels of each candidate with the boundaries exactly as the seed's floats give them,
    each field (rows, levels): level k is whole bins [lu, rl), plus ls of bin lu - 1 and rs
    of bin rl."""

    start: np.ndarray  # k * (i / T)
    end: np.ndarray  # start + i / T
    lu: np.ndarray  # ceil(start): the first whole bin
    rl: np.ndarray  # floor(end): one past the last whole bin
    ls: np.ndarray  # the share of bin lu - 1 the level takes
    rs: np.ndarray  # the share of bin rl the level takes (0 past the threshold)
    mass: np.ndarray
    count: np.ndarray  # the divisor of the mass


def _seed_levels(prep: _Prep, policy: Policy, rows: np.ndarray, k: np.ndarray) -> _SeedLevels:
    """Levels ``k`` of each candidate with the boundaries exactly as the seed's floats give
    them: start = k * (i / T), end = start + i / T."""
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
    return _SeedLevels(start=S, end=E, lu=lu, rl=rl, ls=ls, rs=rs, mass=mass, count=count)


def _groups_fractional(prep: _Prep, policy: Policy, rows: np.ndarray) -> _Groups:
    lv = _seed_levels(prep, policy, rows, np.arange(prep.T))
    value = _truncate_value(lv.mass, lv.count, policy)
    edges = np.concatenate([lv.start, lv.end[:, -1:]], axis=1)
    return _Groups(
        edges=edges, mass=lv.mass, count=lv.count, value=value,
        lu=lv.lu, rl=lv.rl, ls=lv.ls, rs=lv.rs,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _WholeLevels:
    """Whole-bin level boundaries per candidate, which depend on the window sizes only."""

    edges: np.ndarray  # (M, T+1) boundaries in bins from the window start
    k_a: np.ndarray  # (M,) the level holding the window's first bin
    k_b: np.ndarray  # (M,) ... and its last bin

    def take(self, rows: np.ndarray) -> _WholeLevels:
        """The candidates ``rows`` (ascending): views when they are a run, else copies."""
        if rows.size == self.k_a.size or rows[-1] - rows[0] + 1 == rows.size:
            sl = slice(int(rows[0]), int(rows[-1]) + 1)
            return _WholeLevels(self.edges[sl], self.k_a[sl], self.k_b[sl])
        return _WholeLevels(self.edges[rows], self.k_a[rows], self.k_b[rows])


_CACHED_LEVELS = 1 << 20  # (candidate, boundary) cells a cached table may hold: 8 MB


def _whole_levels_of(L_all: np.ndarray, rows: np.ndarray, policy: Policy, T: int) -> _WholeLevels:
    """The whole-bin levels of the candidates ``rows`` (window lengths ``L_all`` of every
    candidate): from the cached table of all candidates when it is small (the levels depend
    on the sizes only, so a slider's reruns and a model's layers share it), else computed
    for these rows alone (a large sweep would hold hundreds of megabytes of them)."""
    if L_all.size * (T + 1) <= _CACHED_LEVELS:
        key = L_all.astype(np.intp).tobytes()
        return _whole_levels_cached(key, T, policy.merge, policy.remainder).take(rows)
    return _compute_whole_levels(L_all[rows].astype(np.intp), T, policy.merge, policy.remainder)


@functools.lru_cache(maxsize=16)  # at most 8 MB each (_CACHED_LEVELS)
def _whole_levels_cached(key: bytes, T: int, merge: str, remainder: str) -> _WholeLevels:
    return _compute_whole_levels(np.frombuffer(key, dtype=np.intp), T, merge, remainder)


def _compute_whole_levels(L: np.ndarray, T: int, merge: str, remainder: str) -> _WholeLevels:
    """Level boundaries (relative to the window) for window lengths L, and the levels
    holding the window's first and last bins."""
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
    return _WholeLevels(e_rel, k_a, k_b)


_CANCELLED = 2.0**-26  # a level mass below this share of the prefix before it is re-summed


def _resum_cancelled(
    h: np.ndarray, H: np.ndarray, e: np.ndarray, mass: np.ndarray, nz: np.ndarray
) -> np.ndarray:
    """Level masses ``H[e1] - H[e0]``, with those the subtraction cannot hold summed bin by bin.

    A prefix sum keeps about 16 digits of the total before a level, so the mass of a level
    of 1e-83 counts after 1e-25 of them reads as 0 (or as rounding noise): its Q would be 0
    where P is not, and the KL inf, which the tools' own bin-by-bin sums never give
    (ModelOpt's on counts spanning 1e-57, every candidate). Where a level with a non-zero bin
    has a mass below 2**-26 of the prefix at its end (its relative error could pass 3e-9),
    its bins are summed directly. Integer counts below 2**53 never need it.
    """
    suspect = (nz > 0) & (mass < _CANCELLED * H[e[:, 1:]])
    if not suspect.any():
        return mass
    r, k = np.nonzero(suspect)
    lo, hi = e[r, k], e[r, k + 1]
    # reduceat over [lo, hi) pairs, interleaved; h has one empty bin of padding at the end
    idx = np.empty(2 * lo.size, dtype=np.intp)
    idx[0::2], idx[1::2] = lo, np.minimum(hi, h.size - 1)
    sums = np.add.reduceat(h, idx)[0::2]
    out = mass.copy()
    out[r, k] = sums
    return out


def _sequential_level_sums(
    h: np.ndarray, a: np.ndarray, L: np.ndarray, T: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's T whole-bin level sums and its remainder's sum, added left to right
    in float64 as ONNX Runtime's ``sum(sliced[start:end])`` and the loop references do.

    Truncating a float sum to an integer depends on its last bit (0.1 + 0.2 + 0.7 is
    0.9999999999999999, cut to 0, where a prefix-sum difference may give 1.0), so the
    truncating variants sum fractional counts this way rather than off prefix sums: O(L)
    per candidate, the dense engine's cost. (``np.cumsum`` adds in order; ``np.sum``
    and ``np.add.reduceat`` add pairwise.)
    """
    R = a.size
    sums = np.zeros((R, T))
    rest = np.zeros(R)
    for r in range(R):
        m = int(L[r]) // T
        window = h[a[r] : a[r] + L[r]]
        if m:
            sums[r] = np.cumsum(window[: T * m].reshape(T, m), axis=1)[:, -1]
        if L[r] > T * m:
            rest[r] = np.cumsum(window[T * m :])[-1]
    return sums, rest


def _groups_whole(prep: _Prep, policy: Policy, rows: np.ndarray, tab=None) -> _Groups:
    T = prep.T
    a, b = prep.a[rows], prep.b[rows]
    L = b - a
    R = rows.size
    lv = _whole_levels_of(prep.b - prep.a, rows, policy, T)
    e_rel, k_a, k_b = lv.edges, lv.k_a, lv.k_b
    s = policy.eps if policy.smoothing == "add_eps" else 0.0
    if tab is None:
        tab = _Tables(prep.h, policy, s)
    e = a[:, None] + e_rel
    # Prefix sums at each level boundary; with no smoothing W (the mass of the bins a
    # level's Q covers) is H itself.
    G = np.take(tab.stacked_hnz if s == 0 else tab.stacked_hnzw, e, axis=1)
    D = G[:, :, 1:] - G[:, :, :-1]
    mass, nz = D[0], D[1]
    if s == 0:
        mass = _resum_cancelled(tab.h, tab.H, e, mass, nz)
    dw = mass if s == 0 else D[2]
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
        mass = mass.copy()
        if prep.whole_counts:  # integer prefix sums are exact
            group = tab.H[group_end] - tab.H[e[:, -2]]
            rest = tab.H[b] - tab.H[group_end]
        else:  # where a truncation falls hangs on the last bit: sum as the sources do
            sums, rest = _sequential_level_sums(prep.h, a, L, T)
            mass[:, :-1] = sums[:, :-1]
            group = sums[:, -1]
        mass[:, -1] = np.trunc(np.trunc(group) + rest)
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
        edges=e_rel.astype(np.float64), mass=mass, count=count, value=value,
        e0=e[:, :-1], e1=e[:, 1:], orphan=orphan, dw=dw, dnz=nz, k_a=k_a, k_b=k_b,
        orphan_hi=orphan_hi,
    )  # fmt: skip
