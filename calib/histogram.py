"""The histogram value type every calibrator reads.

A histogram is a pair (counts, edges) with ``len(edges) == len(counts) + 1``.
Two layouts are in use:

- unsigned, ``|x|`` on ``[0, max|x|]`` (TensorRT, ncnn, ModelOpt): ``edges[0] == 0``;
- signed, ``x`` on ``[-m, m]`` symmetric around zero (MXNet, ONNX Runtime).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from calib import limits

__all__ = ["DEFAULT_BINS", "Histogram", "as_histogram"]

DEFAULT_BINS = 2048


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _numeric_array(values: Any, name: str) -> np.ndarray:
    """``values`` as an array of reals (bool, integer or float), or a ValueError naming it."""
    try:
        a = np.asarray(values)
    except (ValueError, TypeError, OverflowError) as exc:  # ragged lists, huge Python ints
        raise ValueError(f"{name} must be a numeric array ({exc})") from None
    if a.dtype == object or not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating) or a.dtype == bool
    ):
        raise ValueError(f"{name} must be a numeric array, got dtype {a.dtype}")
    return a


def _check_counts(counts: Any, name: str = "counts") -> np.ndarray:
    c = _numeric_array(counts, name)
    if c.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {c.shape}")
    if c.size < 2:
        raise ValueError(f"{name} must hold at least 2 bins, got {c.size}")
    if c.size > limits.MAX_BINS:
        raise ValueError(limits.exceeds(f"{name} has", c.size, "MAX_BINS", " bins"))
    if c.dtype == bool or np.issubdtype(c.dtype, np.unsignedinteger):
        c = c.astype(np.int64) if c.dtype == bool or c.max() < 2**63 else c.astype(np.float64)
    if np.issubdtype(c.dtype, np.floating):
        c = c.astype(np.float64)
        bad = ~np.isfinite(c)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be finite, got {float(c[i])} at bin {i}")
    else:
        c = c.astype(np.int64)
    if (c < 0).any():
        i = int(np.flatnonzero(c < 0)[0])
        raise ValueError(f"{name} must be non-negative, got {c[i].item()} at bin {i}")
    _check_count_range(c, name)
    return c


def _check_count_range(c: np.ndarray, name: str) -> None:
    """Counts whose total a sum can hold and whose logarithms stay finite: an int64 total
    within int64 (numpy would wrap it around), a float total of 0 or from MIN_MAGNITUDE to
    MAX_MAGNITUDE (``calib.limits``)."""
    if np.issubdtype(c.dtype, np.integer):
        big = float(c.max(initial=0)) * c.size >= 2.0**62  # else the int64 sum cannot wrap
        if big and sum(int(x) for x in c) > np.iinfo(np.int64).max:
            raise ValueError(
                f"{name} total more than int64 can hold ({np.iinfo(np.int64).max}); an int64 "
                "sum of them wraps around. Give them as float64 counts"
            )
        return
    total = float(np.sum(c / limits.MAX_MAGNITUDE))  # scaled: the sum itself cannot overflow
    if total > 1.0:
        raise ValueError(
            limits.exceeds(f"{name} total", total * limits.MAX_MAGNITUDE, "MAX_MAGNITUDE")
            + "; scale them down"
        )
    total = float(c.sum())  # cannot overflow now
    if 0 < total < limits.MIN_MAGNITUDE:
        raise ValueError(
            f"{name} total {total!r}, less than MIN_MAGNITUDE = {limits.MIN_MAGNITUDE:g} "
            "(and not 0, a dead layer); scale them up"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Histogram:
    """A validated 1-D histogram: ``counts[i]`` values fell in ``[edges[i], edges[i+1])``.

    Parameters
    ----------
    counts : array_like
        Non-negative, finite counts, integer or float, at least 2 bins.
    edges : array_like
        Finite, strictly increasing bin edges, ``len(counts) + 1`` of them.

    Notes
    -----
    Both arrays are copied and made read-only, so a Histogram never changes and
    never shares memory with the caller's arrays. Integer counts stay int64,
    anything else becomes float64.

    Examples
    --------
    >>> import numpy as np, calib
    >>> h = calib.Histogram([3, 1, 0, 2], [0.0, 0.5, 1.0, 1.5, 2.0])
    >>> h
    Histogram(4 bins, unsigned, [0, 2], total=6)
    >>> h.n_bins, h.total, h.counts.dtype
    (4, 6.0, dtype('int64'))
    >>> h.counts[0] = 0
    Traceback (most recent call last):
        ...
    ValueError: assignment destination is read-only
    >>> calib.Histogram([1, 2], [0.0, 1.0, 1.0])
    Traceback (most recent call last):
        ...
    ValueError: edges must be strictly increasing, got edges[1]=1.0 and edges[2]=1.0

    From samples: ``|x|`` into ``bins`` equal bins from 0 to the largest ``|x|``.

    >>> calib.Histogram.from_samples(np.array([-1.0, 0.25, 3.0]), bins=4)
    Histogram(4 bins, unsigned, [0, 3], total=3)
    """

    counts: np.ndarray
    edges: np.ndarray

    def __post_init__(self) -> None:
        c = _check_counts(self.counts)
        e = _numeric_array(self.edges, "edges")
        if e.dtype == bool:
            raise ValueError(f"edges must be a numeric array, got dtype {e.dtype}")
        if e.ndim != 1:
            raise ValueError(f"edges must be 1-D, got shape {e.shape}")
        if e.size != c.size + 1:
            raise ValueError(
                f"edges must have len(counts) + 1 = {c.size + 1} entries, got {e.size}"
            )
        e = e.astype(np.float64)
        if not np.isfinite(e).all():
            raise ValueError("edges must be finite")
        steps = np.diff(e)
        if (steps <= 0).any():
            i = int(np.flatnonzero(steps <= 0)[0])
            raise ValueError(
                f"edges must be strictly increasing, got edges[{i}]={float(e[i])} "
                f"and edges[{i + 1}]={float(e[i + 1])}"
            )
        far = max(-float(e[0]), float(e[-1]))
        if far > limits.MAX_MAGNITUDE:
            raise ValueError(limits.exceeds("edges reach", far, "MAX_MAGNITUDE"))
        if steps.min() < limits.MIN_MAGNITUDE:
            i = int(np.argmin(steps))
            raise ValueError(
                f"bins must be at least MIN_MAGNITUDE = {limits.MIN_MAGNITUDE:g} wide, got "
                f"{float(steps[i])!r} at bin {i}"
            )
        object.__setattr__(self, "counts", _readonly(c))
        object.__setattr__(self, "edges", _readonly(e))

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_counts(cls, counts: Any) -> Histogram:
        """Unit-width bins starting at 0: bin ``i`` is ``[i, i + 1)``."""
        c = _check_counts(counts)
        return cls(c, np.arange(c.size + 1, dtype=np.float64))

    @classmethod
    def from_samples(
        cls,
        x: Any,
        bins: int = DEFAULT_BINS,
        signed: bool = False,
        skip_zeros: bool = False,
    ) -> Histogram:
        """Histogram raw activation samples.

        Parameters
        ----------
        x : array_like
            Samples of any shape; flattened.
        bins : int
            Number of bins, at least 2.
        signed : bool
            False: ``|x|`` on ``[0, max|x|]``. True: ``x`` on ``[-m, m]`` with
            ``m = max|x|``, symmetric around zero.
        skip_zeros : bool
            Leave exact zeros out, as ncnn does when it collects.

        Notes
        -----
        Non-finite samples are refused with a ValueError that counts them: a NaN
        in an activation is a bug upstream, and dropping it silently would hide
        it. Data that are all zero get the range ``[0, 1]`` (or ``[-1, 1]``) so
        the edges stay increasing; with ``skip_zeros`` their histogram is empty
        and reads as a dead layer.
        """
        bins = _check_bins(bins)
        a = np.asarray(x)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"x must be numeric, got dtype {a.dtype}")
        a = a.astype(np.float64, copy=False).ravel()
        if a.size == 0:
            raise ValueError("x is empty: no samples to histogram")
        finite = np.isfinite(a)
        if not finite.all():
            n_bad = int(a.size - finite.sum())
            raise ValueError(
                f"x holds {n_bad} non-finite values (NaN or inf) out of {a.size}; "
                "remove them before calibrating"
            )
        if skip_zeros:
            a = a[a != 0]
        m = float(np.max(np.abs(a))) if a.size else 0.0
        if m == 0.0:
            m = 1.0
        if signed:
            edges = np.linspace(-m, m, bins + 1)
            counts, _ = np.histogram(a, bins=edges)
        else:
            edges = np.linspace(0.0, m, bins + 1)
            counts, _ = np.histogram(np.abs(a), bins=edges)
        return cls(counts.astype(np.int64), edges)

    # -- properties ----------------------------------------------------------------
    @property
    def n_bins(self) -> int:
        return int(self.counts.size)

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    @property
    def is_dead(self) -> bool:
        """True when every count is zero (a layer that never fired)."""
        return not bool(self.counts.any())

    @property
    def is_signed(self) -> bool:
        """True for a histogram of x with negative edges, False for |x| from 0."""
        return bool(self.edges[0] < 0)

    @property
    def is_symmetric(self) -> bool:
        """True when the edges mirror around 0, ``edges == -edges[::-1]`` to 1e-6 of the
        range: x on ``[-m, m]``. ``linspace(-m, m)`` is symmetric only to rounding, and edges
        stored as float32 (ONNX Runtime's) to about 1e-7; at ``MAX_BINS`` bins a bin is
        still 30 times wider than that."""
        e = self.edges
        scale = max(abs(e[0]), abs(e[-1]))
        return bool(np.allclose(e, -e[::-1], rtol=0, atol=1e-6 * scale))

    @property
    def is_uniform(self) -> bool:
        w = np.diff(self.edges)
        return bool(np.allclose(w, w[0], rtol=1e-6, atol=0))

    @property
    def bin_width(self) -> float:
        """Width of the bins (uniform histograms; the mean width otherwise)."""
        return float((self.edges[-1] - self.edges[0]) / self.n_bins)

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    @property
    def max_abs(self) -> float:
        """The largest |edge| that holds a count: where the data end (0 if dead)."""
        nz = np.flatnonzero(self.counts)
        if nz.size == 0:
            return 0.0
        return float(max(abs(self.edges[nz[0]]), abs(self.edges[nz[-1] + 1])))

    def __repr__(self) -> str:
        kind = "signed" if self.is_signed else "unsigned"
        return (
            f"Histogram({self.n_bins} bins, {kind}, "
            f"[{self.edges[0]:.6g}, {self.edges[-1]:.6g}], total={self.total:.6g})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return bool(
            self.counts.shape == other.counts.shape
            and np.array_equal(self.counts, other.counts)
            and np.array_equal(self.edges, other.edges)
        )

    __hash__ = None  # type: ignore[assignment]

    # -- transformations (each returns a new Histogram) -----------------------------
    def rebin(self, bins: int) -> Histogram:
        """Merge down to ``bins`` uniform bins over the same range.

        When ``bins`` divides the number of bins, groups of whole bins are summed
        and integer counts stay integer. Otherwise each old bin is split between
        the new bins it overlaps in proportion to the overlap (the density is
        taken as flat inside a bin) and the counts become float. The total is
        kept either way.
        """
        bins = _check_bins(bins)
        n = self.n_bins
        if bins > n:
            raise ValueError(f"bins must be at most the current {n} bins, got {bins}")
        if bins == n:
            return self
        if n % bins == 0:
            counts = self.counts.reshape(bins, n // bins).sum(axis=1)
            edges = self.edges[:: n // bins]
            return Histogram(counts, edges)
        edges = np.linspace(self.edges[0], self.edges[-1], bins + 1)
        return Histogram(_redistribute(self.counts, self.edges, edges), edges)

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other`` (the same tensor, maybe a wider range) into this one.

        The rule is TensorRT's (pytorch-quantization, ModelOpt; :func:`range_growth`,
        which ``calib.collect`` grows by too): keep this
        histogram's bin width and origin, and append bins of the same width
        until the other's range is covered (on both sides, by the same number of
        bins, when this histogram is symmetric around zero, which keeps the zero
        bin in the middle as ONNX Runtime's signed collector does). This
        histogram's counts stay in the bins they were in; ``other``'s counts go
        to the bins they overlap, split in proportion where edges do not line
        up. No count is lost: the result's total is the sum of the two totals.
        ONNX Runtime's alternative (re-histogram the new data on a range grown
        by whole old strides) needs the raw data; with two histograms this rule
        is the one that keeps both exactly when their edges share a grid.
        """
        if not isinstance(other, Histogram):
            raise ValueError(f"other must be a Histogram, got {type(other).__name__}")
        if not self.is_uniform:
            raise ValueError("merge needs a histogram with uniform bins")
        grow_lo, grow_hi = range_growth(self, float(other.edges[0]), float(other.edges[-1]))
        grown = self.n_bins + grow_lo + grow_hi
        if grown > limits.MAX_BINS:
            raise ValueError(
                limits.exceeds("merging grows the histogram to", grown, "MAX_BINS", " bins")
                + f" (bins of width {self.bin_width:.6g} from {self.edges[0]:.6g} to cover "
                f"[{other.edges[0]:.6g}, {other.edges[-1]:.6g}]); rebin one of them"
            )
        edges = grown_edges(self, grow_lo, grow_hi)
        n = edges.size - 1
        mine = np.zeros(n, dtype=np.result_type(self.counts, np.int64))
        mine[grow_lo : grow_lo + self.n_bins] = self.counts
        theirs = _redistribute(other.counts, other.edges, edges)
        if np.issubdtype(theirs.dtype, np.integer) and np.issubdtype(mine.dtype, np.integer):
            return Histogram(mine + theirs, edges)
        return Histogram(mine.astype(np.float64) + theirs, edges)

    def fold(self) -> Histogram:
        """Fold a symmetric signed histogram into one of |x| from 0.

        Needs edges symmetric around 0 with an even number of bins (0 is an edge),
        so that bin ``N/2 + k`` and its mirror ``N/2 - 1 - k`` make |x| bin ``k``.
        An unsigned histogram is returned as it is.
        """
        if not self.is_signed:
            return self
        n = self.n_bins
        e = self.edges
        if n % 2 or not self.is_symmetric:
            raise ValueError(
                "fold needs edges symmetric around 0 with an even number of bins, "
                f"got {n} bins on [{e[0]:.6g}, {e[-1]:.6g}]"
            )
        h = n // 2
        counts = self.counts[h:] + self.counts[:h][::-1]
        edges = np.abs(e[h:])
        edges[0] = 0.0
        return Histogram(counts, edges)

    def mirror(self) -> Histogram:
        """Mirror a histogram of |x| into a symmetric signed one of 2N bins.

        The result is the histogram of the data together with its negation: each |x| count
        appears at x and at -x, so integer counts stay integers (the integer truncation of
        MXNet and ONNX Runtime then sees counts like its own) and the total doubles, which
        the normalised KL of those variants does not see. A signed histogram is returned
        as it is.
        """
        if self.is_signed:
            return self
        if self.edges[0] != 0:
            raise ValueError(
                f"mirror needs a histogram of |x| from 0, got edges[0]={self.edges[0]!r}"
            )
        if 2 * self.n_bins > limits.MAX_BINS:
            raise ValueError(
                limits.exceeds(
                    f"mirroring {self.n_bins} bins of |x| into x (for a signed variant) gives",
                    2 * self.n_bins, "MAX_BINS", " bins",
                )
                + "; rebin the histogram to at most half that first (Histogram.rebin)"
            )  # fmt: skip
        counts = np.concatenate([self.counts[::-1], self.counts])
        edges = np.concatenate([-self.edges[::-1], self.edges[1:]])
        return Histogram(counts, edges)


def growth_bins(edge: float, reach: float, width: float) -> int:
    """Bins of ``width`` to append past ``edge`` so that they reach ``reach`` (0 if it is
    already within): the arithmetic of :func:`range_growth`, which the collector's
    symmetric grid calls directly. A reach past the edge by less than 1e-9 of a bin is
    rounding, not growth.
    """
    r = (reach - edge) / width  # inf when width is tiny: more bins than any cap
    if not r > 0:
        return 0
    return math.ceil(r - 1e-9) if r < 2.0**62 else 2**62


def range_growth(h: Histogram, lo: float, hi: float) -> tuple[int, int]:
    """Bins of ``h``'s width to append below and above ``h`` so that it covers ``[lo, hi]``.

    TensorRT's rule (pytorch-quantization, ModelOpt), the one :meth:`Histogram.merge` and
    ``calib.collect``'s batch-by-batch histograms both grow by: whole bins of the same width
    from the same origin, as few as cover the range (a range past an edge by less than 1e-9
    of a bin is covered); a histogram symmetric around zero grows by the same number on
    both sides, which keeps the zero bin in the middle. Returns ``(grow_lo, grow_hi)``.
    """
    e, w = h.edges, h.bin_width
    grow_hi = growth_bins(float(e[-1]), float(hi), w)
    grow_lo = growth_bins(-float(e[0]), -float(lo), w)
    if h.is_signed and math.isclose(e[0], -e[-1], rel_tol=1e-9):
        grow_hi = grow_lo = max(grow_hi, grow_lo)
    return grow_lo, grow_hi


def grown_edges(h: Histogram, grow_lo: int, grow_hi: int) -> np.ndarray:
    """The edges of ``h`` with ``grow_lo`` and ``grow_hi`` bins of its width appended
    (:func:`range_growth`); ``h``'s own edges are kept as they are, not recomputed."""
    e = h.edges
    if not grow_hi and not grow_lo:
        return np.asarray(e)
    n = h.n_bins + grow_lo + grow_hi
    edges = e[0] - grow_lo * h.bin_width + h.bin_width * np.arange(n + 1, dtype=np.float64)
    edges[grow_lo : grow_lo + h.n_bins + 1] = e
    return edges


def _check_bins(bins: Any, name: str = "bins", per_bin: int = 1) -> int:
    """A histogram size: an integer of at least 2 whose histogram, ``per_bin`` bins for
    each (the collector's signed histograms hold two), has at most
    :data:`calib.limits.MAX_BINS` bins."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {bins!r}")
    if bins < 2:
        raise ValueError(f"{name} must be at least 2, got {bins}")
    if bins * per_bin > limits.MAX_BINS:
        what = f"{name} is" if per_bin == 1 else f"{name}={int(bins):,} makes histograms of"
        value = int(bins) * per_bin
        raise ValueError(limits.exceeds(what, value, "MAX_BINS", "" if per_bin == 1 else " bins"))
    return int(bins)


def _redistribute(counts: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Move counts from bins ``old`` to bins ``new``, split by overlap.

    Mass outside ``new`` goes to its nearest edge bin, so the total is kept.
    The result is integer when every old bin falls inside one new bin.
    """
    # Cumulative count as a piecewise-linear function of x, read at the new edges.
    cum = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    at = np.interp(new, old, cum)  # flat (0 / total) outside the old range
    out = np.diff(at)
    out[0] += at[0]
    out[-1] += cum[-1] - at[-1]
    if np.issubdtype(counts.dtype, np.integer):
        # Every old bin inside one new bin: move whole counts and stay integer.
        tol = 1e-9 * (new[-1] - new[0])
        lo = np.clip(np.searchsorted(new, old[:-1] + tol, side="right") - 1, 0, new.size - 2)
        hi = np.clip(np.searchsorted(new, old[1:] - tol, side="left") - 1, 0, new.size - 2)
        if np.array_equal(lo, hi):
            whole = np.zeros(new.size - 1, dtype=np.int64)
            np.add.at(whole, lo, counts)
            return whole
    return np.maximum(out, 0.0)


def as_histogram(h: Any) -> Histogram:
    """A Histogram as it is, or a bare counts array as unit-width bins from 0.

    Examples
    --------
    >>> import calib
    >>> h = calib.as_histogram([3, 1, 2])
    >>> h.edges
    array([0., 1., 2., 3.])
    >>> calib.as_histogram(h) is h
    True
    """
    if isinstance(h, Histogram):
        return h
    return Histogram.from_counts(h)
