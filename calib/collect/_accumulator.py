"""One tensor's histogram over many batches, kept so that every variant is served exactly.

The state is a symmetric grid: ``2 N`` bins of width ``w`` on ``[-N w, N w]``, with 0 an
edge. ``N`` is ``bins`` when the first batch with a non-zero value sets the range
(``w = max|x| / bins``, or :data:`FINEST_WIDTH` if that is finer), so the signed
histogram has the resolution of a ``bins``-bin histogram of ``|x|``, and folding it
(``Histogram.fold``: bin ``N + k`` plus its mirror ``N - 1 - k``) gives exactly that
``|x|`` histogram. The signed variants (MXNet, ONNX Runtime) read the signed one; the
``|x|`` variants its fold. One pass serves both.

Values go in ``np.histogram``'s left-closed bins, ``[k w, (k + 1) w)``, computed as
``floor(x / w) + N`` (:func:`bin_counts`). Folding turns the negative half's bins into
``(k w, (k + 1) w]`` of ``|x|``: the fold differs from a histogram of ``|x|`` only for a
negative value lying exactly on an edge, which it counts one bin lower. The first batch's
extremes, ``+m`` and ``-m``, stay in the outermost bins (the range is closed).

Growth: a batch past ``N w`` appends the same number of bins of width ``w`` on both
sides (TensorRT's rule of keeping the bin width, with ONNX Runtime's symmetric growth), so
old counts never move. The number of bins per side is capped (``max_bins``); past the cap
neighbouring bins are summed in pairs (0 stays an edge), doubling ``w``.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from calib import limits
from calib.histogram import DEFAULT_BINS, Histogram, _check_bins, growth_bins

FINEST_WIDTH = 2.0 ** math.ceil(math.log2(limits.MIN_MAGNITUDE))
"""The finest bin width a collection starts with: the power of two just above
``calib.limits.MIN_MAGNITUDE`` (2**-332, 1.14e-100). A power of two makes every edge
``k w`` exact, so tensors of tiny values get bins that are all at least
``MIN_MAGNITUDE`` wide, as a Histogram's must be; ``w = MIN_MAGNITUDE`` itself gave steps
of 9.99999999999998e-101 between rounded edges. Any coarser width is at least 14% over
the limit, which rounding (a relative error of about ``2**-52`` times the bin index)
never eats."""

DEFAULT_MAX_BINS_FACTOR = 8
"""The bins per side of a growing histogram are capped at this many times ``bins`` (and at
``calib.limits.MAX_BINS // 2``, so that the signed histogram stays within ``MAX_BINS``)."""

CHUNK = 1 << 22
"""Values counted at a time: what one batch adds to memory (two 8-byte arrays of this many,
64 MB) does not grow with the size of its tensors."""

MASK_MAGNITUDE = 1e30
"""A tensor holding a value this large in magnitude is not an activation to quantize.

Transformers write additive attention masks with float32's minimum (-3.4e38) where a
token must be ignored; such a tensor's range is set by the mask, every real value lands in
the bins next to 0, and any clip is meaningless. 1e30 is far above any activation and far
below float32's limits (3.4e38), so both ``finfo.min`` and ``-1e30`` style masks are caught.
"""


class HistogramAccumulator:
    """One tensor's histogram, built batch by batch (see the module doc).

    Parameters
    ----------
    bins : int
        Bins of the ``|x|`` histogram on the range the first non-zero batch sets; the
        signed histogram has twice as many, of the same width.
    signed : bool
        What :attr:`histogram` returns: True, the signed histogram on ``[-m, m]``;
        False, its fold, ``|x|`` on ``[0, m]``. Both are kept either way.
    max_bins : int, optional
        Cap on the bins per side while the range grows; default ``8 * bins``, at most
        ``MAX_BINS // 2`` (:mod:`calib.limits`: the signed histogram holds twice as many).
    name : str
        How error messages name the tensor.

    Attributes
    ----------
    n_values : int
        Values counted so far (exact zeros included).
    not_activation : str or None
        Why the tensor is not an activation to quantize (it held a value of magnitude
        ``MASK_MAGNITUDE`` or more), or None. Such a tensor stops counting.
    """

    def __init__(
        self,
        bins: int = DEFAULT_BINS,
        signed: bool = True,
        max_bins: int | None = None,
        name: str = "x",
    ) -> None:
        # the signed histogram holds 2 * bins bins, 2 * max_bins at most: within MAX_BINS
        self.bins = _check_bins(bins, "bins", per_bin=2)
        self.signed = bool(signed)
        if max_bins is None:
            max_bins = min(DEFAULT_MAX_BINS_FACTOR * self.bins, limits.MAX_BINS // 2)
        self.max_bins = _check_bins(max_bins, "max_bins", per_bin=2)
        if self.max_bins < self.bins:
            raise ValueError(f"max_bins must be at least bins={self.bins}, got {self.max_bins}")
        self.name = name
        self.n_values = 0
        self.not_activation: str | None = None
        self._n = 0  # bins per side; 0 until the range is set
        self._w = 0.0
        self._counts = np.zeros(0, np.int64)  # 2 * _n bins on [-_n w, _n w]
        self._held_zeros = 0

    # -- what was collected -------------------------------------------------------------
    @property
    def signed_histogram(self) -> Histogram | None:
        """``x`` on ``[-N w, N w]`` in ``2 N`` bins, or None before any value (all-zero
        data so far: ``[-1, 1]`` with every count in the bin of 0)."""
        if self._n == 0:
            if not self._held_zeros:
                return None
            counts = np.zeros(2 * self.bins, np.int64)
            counts[self.bins] = self._held_zeros
            return Histogram(counts, np.linspace(-1.0, 1.0, 2 * self.bins + 1))
        edges = self._w * np.arange(-self._n, self._n + 1, dtype=np.float64)
        return Histogram(self._counts.copy(), edges)

    @property
    def histogram(self) -> Histogram | None:
        """The signed histogram, or its ``|x|`` fold when ``signed`` is False."""
        h = self.signed_histogram
        return h if h is None or self.signed else h.fold()

    # -- counting -------------------------------------------------------------------------
    def add(self, x: Any, where: str = "") -> None:
        """Count one batch of samples (any shape; flattened; any real dtype).

        ``where`` is added to error messages (for example ``"samples 32..63"``).
        """
        if self.not_activation is not None:
            return
        a = np.asarray(x)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"tensor {self.name!r}: samples must be numeric, got dtype {a.dtype}")
        if np.iscomplexobj(a):
            raise ValueError(f"tensor {self.name!r}: samples must be real, got dtype {a.dtype}")
        a = a.reshape(-1)
        if a.size == 0:
            return
        lo, hi = float(a.min()), float(a.max())  # NaN propagates; inf stays inf
        if not (np.isfinite(lo) and np.isfinite(hi)):
            n_bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            at = f" in {where}" if where else ""
            raise ValueError(
                f"tensor {self.name!r} holds {n_bad} non-finite values (NaN or inf) out of "
                f"{a.size}{at}; calibration needs finite activations (check the model and inputs)"
            )
        m = max(hi, -lo)
        if m >= MASK_MAGNITUDE:
            at = f" in {where}" if where else ""
            self.not_activation = (
                f"holds {lo:.3g}{at}: an additive mask (values of magnitude "
                f"{MASK_MAGNITUDE:.0e} or more), not an activation to quantize"
            )
            return
        self.n_values += a.size
        if self._n == 0:
            if m == 0:
                self._held_zeros += a.size
                return
            self._n, self._w = self.bins, max(m / self.bins, FINEST_WIDTH)
            self._counts = np.zeros(2 * self._n, np.int64)
            self._counts[self._n] = self._held_zeros
            self._held_zeros = 0
        elif m > self._n * self._w:
            self._grow(m)
        # in chunks: bin_counts makes two 8-byte arrays the size of its input, and a batch
        # may be one 800 MB tensor (float16, int8 and bools are widened a chunk at a time)
        for start in range(0, a.size, CHUNK):
            part = a[start : start + CHUNK]
            if part.dtype == bool or part.dtype.itemsize < 4:  # count in float32
                part = part.astype(np.float32)
            self._counts += bin_counts(part, self._n, self._w)

    def _grow(self, m: float) -> None:
        """Append bins on both sides to cover ``[-m, m]``; coarsen past the cap."""
        g = growth_bins(self._n * self._w, m, self._w)
        while self._n + g > self.max_bins:
            self._coarsen()
            g = growth_bins(self._n * self._w, m, self._w)
        pad = np.zeros(g, np.int64)
        self._counts = np.concatenate([pad, self._counts, pad])
        self._n += g

    def _coarsen(self) -> None:
        """Sum bins in pairs from 0 outwards (one empty bin added per side if ``N`` is odd),
        doubling the width; 0 stays an edge."""
        c = self._counts
        if self._n % 2:
            c = np.concatenate([[0], c, [0]])
            self._n += 1
        self._counts = c.reshape(-1, 2).sum(axis=1)
        self._n //= 2
        self._w *= 2.0


BLOCK = 1 << 18
"""Values ``bin_counts`` bins at a time, in a 2 MB buffer kept per thread, so no pass
writes a temporary the size of the tensor (which the kernel would map and zero page by
page, every batch). Smaller blocks stay in a faster cache but cost more: each numpy call
hands the GIL over (``np.bincount`` holds it), and with two threads counting every handover
wakes the other one. Measured on all-MiniLM-L6-v2, 6 batches with two threads: 10.9 s
of counting with blocks of 2**16, 8.1 to 8.8 s with 2**17, 6.9 to 7.0 s with 2**18, 7.4 to
7.6 s with 2**19, 9.4 s with 2**20; with whole-array temporaries, 6 ns a value against
about 3 in one thread."""

_TWO_52 = 2.0**52  # adding it to an integer-valued float64 below 2**52 is exact ...
_TWO_52_BITS = np.float64(_TWO_52).view(np.int64)  # ... and leaves the integer in the bits
_buffers = threading.local()


def _block_buffer() -> np.ndarray:
    buf = getattr(_buffers, "quotients", None)
    if buf is None:
        buf = _buffers.quotients = np.empty(BLOCK, np.float64)
    return buf


def bin_counts(x: np.ndarray, n: int, w: float) -> np.ndarray:
    """Counts of ``x`` (1-D, every value in ``[-n w, n w]``) in the ``2 n`` bins of width
    ``w`` on ``[-n w, n w]``: ``x`` in bin ``floor(x / w) + n``, the left-closed bins of
    ``np.histogram``, and ``x = n w`` in the last bin, as ``np.histogram`` closes its last.

    ``x / w + n`` is computed in float64 (a correctly rounded division, so a value exactly
    on an edge, such as a multiple of a power of two, lands in the bin that edge opens) and
    truncated (the floor, as it is not negative but for rounding at the first edge, which
    stays in the first bin); ``np.bincount`` counts, a :data:`BLOCK` of values at a time.
    Against ``np.histogram``'s edge corrections, a value that is not on an edge but within
    about 1e-16 (relative) of one can land in the neighbouring bin.

    The truncation becomes an integer index without numpy's float-to-int64 cast (one value
    at a time on most CPUs): ``trunc(t) + 2**52`` holds the integer in the low bits of its
    float64, read by viewing them as int64 and subtracting the bits of ``2**52``.
    """
    top = 2 * n  # the index of x = n w, folded into the last bin below
    counts = np.zeros(top + 1, np.int64)
    buffer = _block_buffer()
    for start in range(0, x.size, BLOCK):
        part = x[start : start + BLOCK]
        t = buffer[: part.size]
        np.divide(part, w, out=t, dtype=np.float64)
        t += float(n)  # in [0, 2n] but for rounding: the range covers x
        np.trunc(t, out=t)  # the floor, and a hair below 0 (the first edge) to 0
        t += _TWO_52
        idx = t.view(np.int64)
        idx -= _TWO_52_BITS
        c = np.bincount(idx, minlength=top + 1)
        if c.size > top + 1:  # a quotient rounded past n: a hair over the last edge
            c[top] += c[top + 1 :].sum()
        counts += c[: top + 1]
    counts[top - 1] += counts[top]  # x = n w: the last bin is closed
    return counts[:top]
