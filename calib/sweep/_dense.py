"""The dense engine: P and Q built bin by bin for blocks of candidates. It checks the fast
engine, serves ``SweepResult.distributions`` and the policies the fast engine cannot do.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calib.policies import Policy
from calib.sweep._groups import _Groups, _groups, _nonzero_p
from calib.sweep._prepare import _Prep

_DENSE_BLOCK_ELEMENTS = 1 << 19  # about 4 MB per float64 block in the dense path


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
    return _Block(P=P, Q=Q, valid=valid, groups=g)


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


@dataclasses.dataclass(frozen=True)
class _Terms:
    """P and Q as the KL is taken over them (smoothed, normalised), each bin's term, and
    the KL of each row (inf where undefined)."""

    p: np.ndarray
    q: np.ndarray
    terms: np.ndarray
    kl: np.ndarray


def _dense_kl(block: _Block, policy: Policy) -> np.ndarray:
    """KL of each row of the block, in the variant's own precision."""
    if policy.precision == "float32":
        return _dense_kl32(block, policy)
    return _dense_terms(block, policy).kl


def _dense_terms(block: _Block, policy: Policy) -> _Terms:
    """P, Q and the KL terms of each row, in float64 whatever the precision."""
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
    return _Terms(p=P, q=Q, terms=terms, kl=kl)


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
