"""Prefix-sum tables over the prepared counts, shared by the level builders and the fast
engine.
"""

from __future__ import annotations

import numpy as np

from calib.policies import Policy

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
    """Per-bin arrays, padded with one empty bin at index N, and prefix sums.

    ``PHI``/``W`` are the prefix sums of p'log p' and p' = h + s over the bins that
    receive a level's value ("assigned": the non-zero bins, or every bin for uniform
    expansions).
    """

    def __init__(self, h: np.ndarray, policy: Policy, s: float) -> None:
        nz = h != 0
        assigned = nz if policy.expand == "nonzero" else np.ones_like(nz)
        self.h = np.append(h, 0.0)
        self.z = np.append(nz, False).astype(np.float64)
        self.H = _prefix(h)
        self.NZ = _prefix(nz)
        self.PHI = _prefix(np.where(assigned, _xlogx(h + s), 0.0))
        self.W = _prefix(np.where(assigned, h + s, 0.0))
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
