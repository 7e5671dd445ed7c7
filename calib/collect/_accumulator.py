"""One tensor's histogram over many batches: range growth, held-back zeros, bounded bins."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from calib.histogram import DEFAULT_BINS, Histogram, _check_bins

DEFAULT_MAX_BINS_FACTOR = 8
"""The bin count of a growing histogram is capped at this many times ``bins``."""

# -- one histogram, many batches --------------------------------------------------------------


class HistogramAccumulator:
    """One tensor's histogram, built batch by batch with the growth rule of the module doc.

    Parameters
    ----------
    bins : int
        Bins of the first histogram (the range the first non-zero batch sets).
    signed : bool
        False: ``|x|`` on ``[0, max|x|]``. True: ``x`` on ``[-m, m]``.
    max_bins : int, optional
        Cap on the bin count while the range grows; default ``8 * bins``. At least ``bins``.
    name : str
        How error messages name the tensor.

    Notes
    -----
    Only the histogram is kept, never the samples. ``histogram`` is ``None`` until a batch
    with at least one value has been added.
    """

    def __init__(
        self,
        bins: int = DEFAULT_BINS,
        signed: bool = False,
        max_bins: int | None = None,
        name: str = "x",
    ) -> None:
        self.bins = _check_bins(bins)
        self.signed = bool(signed)
        if max_bins is None:
            max_bins = DEFAULT_MAX_BINS_FACTOR * self.bins
        self.max_bins = _check_bins(max_bins)
        if self.max_bins < self.bins:
            raise ValueError(f"max_bins must be at least bins={self.bins}, got {self.max_bins}")
        self.name = name
        self._hist: Histogram | None = None
        self._held_zeros = 0

    @property
    def histogram(self) -> Histogram | None:
        """The histogram so far (all-zero data so far: ``[0, 1]`` with every count in the bin
        of 0, as ``Histogram.from_samples`` answers), or None before any value."""
        if self._hist is None and self._held_zeros:
            edges = Histogram.from_samples([0.0], self.bins, self.signed).edges
            return _with_zeros(Histogram(np.zeros(self.bins, np.int64), edges), self._held_zeros)
        return self._hist

    def add(self, x: Any, where: str = "") -> None:
        """Count one batch of samples (any shape; flattened).

        ``where`` is added to error messages (for example ``"samples 32..63"``).
        """
        a = np.asarray(x)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"tensor {self.name!r}: samples must be numeric, got dtype {a.dtype}")
        a = a.astype(np.float64, copy=False).ravel()
        if a.size == 0:
            return
        finite = np.isfinite(a)
        if not finite.all():
            n_bad = int(a.size - np.count_nonzero(finite))
            at = f" in {where}" if where else ""
            raise ValueError(
                f"tensor {self.name!r} holds {n_bad} non-finite values (NaN or inf) out of "
                f"{a.size}{at}; calibration needs finite activations (check the model and inputs)"
            )
        if self._hist is None:
            if not a.any():
                self._held_zeros += a.size
                return
            h = Histogram.from_samples(a, self.bins, self.signed)
            self._hist = _with_zeros(h, self._held_zeros)
            self._held_zeros = 0
            return
        if not self.signed:
            a = np.abs(a)
        lo, hi = float(a.min()), float(a.max())
        if self.signed:
            lo, hi = min(lo, -hi), max(hi, -lo)
        h = self._hist
        grow = _growth(h, lo, hi)
        while h.n_bins + sum(grow) > self.max_bins:
            h = _coarsen(h)
            grow = _growth(h, lo, hi)
        edges = _grown_edges(h, *grow)
        if lo < edges[0] or hi > edges[-1]:
            # Past the last edge by less than 1e-9 of a bin: rounding, counted in the edge bin.
            a = np.clip(a, edges[0], edges[-1])
        counts, _ = np.histogram(a, bins=edges)
        # merge keeps the old counts in their bins; the batch already lies on its grid.
        self._hist = h.merge(Histogram(counts.astype(np.int64), edges))


def _with_zeros(h: Histogram, n: int) -> Histogram:
    """``h`` with ``n`` more exact zeros, in the bin np.histogram puts 0 in."""
    if not n:
        return h
    counts = np.array(h.counts)
    i = int(np.clip(np.searchsorted(h.edges, 0.0, side="right") - 1, 0, counts.size - 1))
    counts[i] += n
    return Histogram(counts, h.edges)


def _growth(h: Histogram, lo: float, hi: float) -> tuple[int, int]:
    """Bins ``Histogram.merge`` appends below and above ``h`` to cover ``[lo, hi]``.

    Same arithmetic as merge (bin width, rounding slack, symmetric growth), so that a batch
    histogrammed on the grown edges is kept bin for bin by merge.
    """
    e, w = h.edges, h.bin_width

    def bins_for(gap: float) -> int:
        r = gap / w  # inf when w is tiny: then more bins than any cap
        if r <= 0:
            return 0
        return math.ceil(r - 1e-9) if r < 2.0**62 else 2**62

    grow_hi, grow_lo = bins_for(float(hi - e[-1])), bins_for(float(e[0] - lo))
    if h.is_signed and math.isclose(e[0], -e[-1], rel_tol=1e-9):
        grow_hi = grow_lo = max(grow_hi, grow_lo)
    return grow_lo, grow_hi


def _grown_edges(h: Histogram, grow_lo: int, grow_hi: int) -> np.ndarray:
    """The edges of ``h`` with ``grow_lo`` and ``grow_hi`` bins of its width appended."""
    e = h.edges
    if not grow_hi and not grow_lo:
        return np.asarray(e)
    n = h.n_bins + grow_lo + grow_hi
    edges = e[0] - grow_lo * h.bin_width + h.bin_width * np.arange(n + 1, dtype=np.float64)
    edges[grow_lo : grow_lo + h.n_bins + 1] = e
    return edges


def _coarsen(h: Histogram) -> Histogram:
    """Sum neighbouring bins in groups of 2 (3 around the middle bin of an odd signed
    histogram), padding with empty bins so that 0 stays an edge (or the middle bin's centre).

    Example, 5 signed bins ``a b [c] d e`` (padding ``.``)::

        . . a | b c d | e . .   ->   3 bins, c still in the middle one
    """
    counts, e = np.asarray(h.counts), np.asarray(h.edges)
    n, w = counts.size, h.bin_width
    if h.is_signed:
        if n % 2 == 0:
            group, pad_lo = 2, (n // 2) % 2  # the centre edge n/2 + pad must be even
        else:
            group, pad_lo = 3, (1 - (n - 1) // 2) % 3  # the middle group starts at 0 mod 3
        pad_hi = pad_lo
    else:
        group, pad_lo, pad_hi = 2, 0, n % 2
    while (n + pad_lo + pad_hi) // group < 2:  # a histogram keeps at least 2 bins
        pad_hi += group
        pad_lo += group if h.is_signed else 0
    counts = np.concatenate(
        [np.zeros(pad_lo, counts.dtype), counts, np.zeros(pad_hi, counts.dtype)]
    )
    edges = np.concatenate(
        [e[0] - w * np.arange(pad_lo, 0, -1), e, e[-1] + w * np.arange(1, pad_hi + 1)]
    )
    return Histogram(counts.reshape(-1, group).sum(axis=1), edges[::group])
