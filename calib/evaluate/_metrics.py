"""How far a run's outputs are from the float model's, and rank correlation. numpy only.

What a classifier is judged by: an output that is class scores (2-D, one row a sample, at
least :data:`MIN_CLASSES` columns) also gets the top-1 agreement and the top-5 overlap with
the float model's scores.

    >>> import numpy as np
    >>> acc = ErrorAccumulator("logits")
    >>> y = np.array([[0.0, 1.0, 2.0], [3.0, 2.0, 1.0]])
    >>> acc.add(y, np.array([[0.0, 2.5, 2.0], [3.0, 2.0, 1.0]]))  # row 0 changes its arg-max
    >>> acc.result().top1_agreement
    0.5
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

TOP_K = 5
"""The k of the top-k overlap (ImageNet's top-5); fewer classes: all of them."""

MIN_CLASSES = 2
"""A 2-D output with fewer columns is not class scores (one score has no arg-max to keep)."""


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
    top1_agreement : float
        For class scores (a 2-D output, one row a sample, at least :data:`MIN_CLASSES`
        columns): the share of samples whose arg-max class is the float model's (ties: the
        first such class, as ``np.argmax``). None for any other output (None, not nan, so
        that two equal results compare equal).
    top5_overlap : float
        For class scores: the mean over samples of ``|top5(y) & top5(y_q)| / 5`` (``k`` =
        the number of classes when fewer than :data:`TOP_K`; ties broken by class index).
        None for any other output.
    """

    output: str
    sqnr_db: float
    cosine: float
    max_abs_error: float
    top1_agreement: float | None = None
    top5_overlap: float | None = None


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

    @property
    def top1_agreement(self) -> float | None:
        """The worst over the outputs that are class scores; None when none is."""
        return _worst(e.top1_agreement for e in self.errors)

    @property
    def top5_overlap(self) -> float | None:
        """The worst over the outputs that are class scores; None when none is."""
        return _worst(e.top5_overlap for e in self.errors)


def _worst(values: Any) -> float | None:
    return min((v for v in values if v is not None), default=None)


def is_class_scores(y: np.ndarray) -> bool:
    """A 2-D output with one row a sample and at least :data:`MIN_CLASSES` columns."""
    return y.ndim == 2 and y.shape[1] >= MIN_CLASSES


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the indices of the ``k`` largest scores, largest first (ties: the lower
    index first, as a stable sort of the negated scores)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def top1_matches(y: np.ndarray, y_q: np.ndarray) -> np.ndarray:
    """Per row (sample), whether the arg-max class of ``y_q`` is that of ``y``."""
    return np.argmax(y, axis=1) == np.argmax(y_q, axis=1)


def topk_overlaps(y: np.ndarray, y_q: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Per row, ``|topk(y) & topk(y_q)| / k`` with ``k`` at most the number of classes."""
    k = min(k, y.shape[1])
    a, b = top_k(y, k), top_k(y_q, k)
    return (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1) / k


class ErrorAccumulator:
    """Sums for :class:`OutputError`, batch by batch (memory: one batch)."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.signal = 0.0
        self.noise = 0.0
        self.max_abs = 0.0
        self.cosines: list[np.ndarray] = []
        self.top1: list[np.ndarray] = []  # per sample, for class scores only
        self.top5: list[np.ndarray] = []
        self.not_scores = False  # a batch that was not class scores

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
        if is_class_scores(y):
            self.top1.append(top1_matches(y, y_q))
            self.top5.append(topk_overlaps(y, y_q))
        else:
            self.not_scores = True

    def result(self) -> OutputError:
        if self.noise == 0:
            sqnr = math.inf
        elif self.signal == 0:
            sqnr = math.nan
        else:
            sqnr = 10.0 * math.log10(self.signal / self.noise)
        cos = np.concatenate(self.cosines) if self.cosines else np.array([math.nan])
        top1 = top5 = None
        if self.top1 and not self.not_scores:
            top1 = float(np.mean(np.concatenate(self.top1)))
            top5 = float(np.mean(np.concatenate(self.top5)))
        return OutputError(self.output, sqnr, float(np.mean(cos)), self.max_abs, top1, top5)


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
