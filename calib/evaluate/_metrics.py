"""How far a run's outputs are from the float model's, and rank correlation. numpy only."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class OutputError:
    """One model output of a quantized run against the float run, over the evaluation set.

    Attributes
    ----------
    output : str
        The output's name.
    sqnr_db : float
        ``10 log10(sum(y^2) / sum((y - y_q)^2))`` over every element of every sample, dB
        (inf when the outputs are equal; nan when the float output is all zeros and the
        quantized one is not).
    cosine : float
        The mean over samples of ``<y, y_q> / (|y| |y_q|)``, each sample's output flattened
        (a sample whose two outputs are both zero counts 1, one of them zero counts 0).
    max_abs_error : float
        ``max |y - y_q|``.
    """

    output: str
    sqnr_db: float
    cosine: float
    max_abs_error: float


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A run's error on every float output; ``sqnr_db``, ``cosine`` the worst of them."""

    errors: tuple[OutputError, ...]

    @property
    def sqnr_db(self) -> float:
        return min((e.sqnr_db for e in self.errors), default=math.nan)

    @property
    def cosine(self) -> float:
        return min((e.cosine for e in self.errors), default=math.nan)

    @property
    def max_abs_error(self) -> float:
        return max((e.max_abs_error for e in self.errors), default=math.nan)


class ErrorAccumulator:
    """Sums for :class:`OutputError`, batch by batch (memory: one batch)."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.signal = 0.0
        self.noise = 0.0
        self.max_abs = 0.0
        self.cosines: list[np.ndarray] = []

    def add(self, y: np.ndarray, y_q: np.ndarray) -> None:
        y = np.asarray(y, dtype=np.float64)
        y_q = np.asarray(y_q, dtype=np.float64)
        if y.shape != y_q.shape:
            raise ValueError(f"output {self.output!r}: shapes {y.shape} and {y_q.shape} differ")
        d = y - y_q
        # einsum, not vdot: numpy's BLAS dot starts threads that a busy machine stalls
        self.signal += float(np.einsum("i,i->", y.ravel(), y.ravel()))
        self.noise += float(np.einsum("i,i->", d.ravel(), d.ravel()))
        if d.size:
            self.max_abs = max(self.max_abs, float(np.abs(d).max()))
        a = y.reshape(y.shape[0], -1) if y.ndim else y.reshape(1, 1)
        b = y_q.reshape(a.shape)
        self.cosines.append(cosines(a, b))

    def result(self) -> OutputError:
        if self.noise == 0:
            sqnr = math.inf
        elif self.signal == 0:
            sqnr = math.nan
        else:
            sqnr = 10.0 * math.log10(self.signal / self.noise)
        cos = np.concatenate(self.cosines) if self.cosines else np.array([math.nan])
        return OutputError(self.output, sqnr, float(np.mean(cos)), self.max_abs)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two 2-D arrays; 1 where both rows are zero, 0 where
    only one is."""
    dot = np.einsum("ij,ij->i", a, b)
    na = np.sqrt(np.einsum("ij,ij->i", a, a))
    nb = np.sqrt(np.einsum("ij,ij->i", b, b))
    den = na * nb
    out = np.where(den > 0, dot / np.where(den > 0, den, 1.0), 0.0)
    return np.where((na == 0) & (nb == 0), 1.0, out)


def rank(x: Any) -> np.ndarray:
    """Ranks from 1, ties given the mean of the ranks they span (scipy's ``rankdata``
    default, "average")."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # start of each run of equal values, and the run each sorted element belongs to
    new = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
    run = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.concatenate([starts[1:], [x.size]])
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    out = np.empty(x.size)
    out[order] = mean_rank[run]
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences.

    The Pearson correlation of their ranks (ties averaged, :func:`rank`), over the pairs
    where neither value is NaN (infinities rank as the largest or smallest values). nan
    when fewer than 3 pairs remain or either side has no spread.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40]), spearman([1, 2, 3, 4], [4, 3, 2, 1])
    (1.0, -1.0)
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman: lengths {a.size} and {b.size} differ")
    keep = ~(np.isnan(a) | np.isnan(b))
    if keep.sum() < 3:
        return math.nan
    ra, rb = rank(a[keep]), rank(b[keep])
    ra -= ra.mean()
    rb -= rb.mean()
    den = math.sqrt(float(np.sum(ra * ra)) * float(np.sum(rb * rb)))
    return float(np.sum(ra * rb)) / den if den > 0 else math.nan
