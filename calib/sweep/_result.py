"""The sweep's results: every candidate's KL (:class:`SweepResult`) and one candidate's P and Q
(:class:`PQ`).
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from calib.histogram import Histogram
from calib.policies import Policy
from calib.sweep._dense import _dense_block, _dense_terms
from calib.sweep._prepare import _prepare, prepared_counts, tie_scale


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
    (fractional for the seed's merge), ``group_mass`` each quantized level's mass,
    ``group_count`` the (weighted) number of bins it is spread over, as the variant counts
    them, and ``group_value`` the Q value each level spreads over its bins.

    Examples
    --------
    Eight bins, two levels: the chosen candidate keeps 7 bins and adds the outlier bin to
    the last one.

    >>> import calib
    >>> pq = calib.kl_sweep([8, 6, 5, 4, 3, 2, 1, 1], target_bins=2).distributions()
    >>> pq.candidate, pq.threshold
    (7, 7.5)
    >>> pq.p_raw
    array([8., 6., 5., 4., 3., 2., 2.])
    >>> pq.group_edges, pq.group_mass
    (array([0. , 3.5, 7. ]), array([21.,  8.]))
    >>> round(float(pq.terms.sum()), 12) == round(pq.kl, 12)
    True
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
    group_count: np.ndarray
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
    notes : tuple of str
        Where this answer is not simply the smallest KL, or where the tool the variant
        reproduces would not give it, one sentence each saying why (the seed's search
        starting below 1e13; ModelOpt's count check). Empty for an ordinary sweep.

    Examples
    --------
    >>> import calib
    >>> r = calib.kl_sweep([8, 6, 5, 4, 3, 2, 1, 1], target_bins=2)
    >>> r.candidates
    array([2, 3, 4, 5, 6, 7])
    >>> r.best, r.amax, round(r.min_kl, 4)
    (7, 7.5, 1.5312)
    >>> float(r.thresholds[r.best_index]) == r.amax
    True
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
    notes: tuple[str, ...] = ()

    @property
    def min_kl(self) -> float:
        return float(self.kl[self.best_index])

    @property
    def kl_scale(self) -> float:
        """The size of the terms each KL is summed from (``calib.sweep.tie_scale``): a KL
        within ``calib.numbers.KL_ROUNDING`` of it is 0 within rounding
        (``calib.numbers.fmt_kl(kl, result.kl_scale)``)."""
        eps = self.policy.eps if self.policy.smoothing != "none" else 0.0
        counts = prepared_counts(self.histogram, self.policy)
        return tie_scale(counts, self.policy.normalize == "pq", eps)

    def index_of(self, candidate: int) -> int:
        """Index into ``candidates`` of one candidate; ValueError if it is not one."""
        if isinstance(candidate, (bool, np.bool_)) or not isinstance(candidate, numbers.Integral):
            shown = repr(candidate) if len(repr(candidate)) <= 60 else repr(candidate)[:57] + "..."
            raise ValueError(f"candidate must be an integer, one of the sweep's, got {shown}")
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
        t = _dense_terms(block, self.policy)
        h = self.histogram
        g = block.groups
        return PQ(
            candidate=int(c),
            threshold=float(self.thresholds[i]),
            kl=float(t.kl[0]),
            edges=np.array(h.edges[prep.a[i] : prep.b[i] + 1]),
            p_raw=block.P[0, :L].copy(),
            q_raw=block.Q[0, :L].copy(),
            p=t.p[0, :L].copy(),
            q=t.q[0, :L].copy(),
            terms=t.terms[0, :L].copy(),
            group_edges=g.edges[0].copy(),
            group_mass=g.mass[0].copy(),
            group_count=np.asarray(g.count[0], dtype=np.float64).copy(),
            group_value=g.value[0].copy(),
        )
