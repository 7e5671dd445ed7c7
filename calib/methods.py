"""Calibration methods other than the KL sweep, and the clip metrics they are ranked by.

Every method here reads a :class:`~calib.histogram.Histogram` and answers with ``amax``, the
clipping threshold in activation units. The quantizer they are judged against is symmetric
and uniform::

    scale = amax / qmax,   qmax = 2**(num_bits - 1) - 1   (127 for int8)
                           qmax = 2**num_bits - 1         (255 for uint8, unsigned=True)
    q(x)  = scale * clip(round(x / scale), -qmax, qmax)   (unsigned: clip to [0, qmax])

The histogram is read as a density that is flat inside each bin, and every expectation
(clipped mass, mean squared error, signal power) is integrated exactly under that model, in
closed form, rather than evaluated at bin centres. The histogram may be of ``|x|`` (edges
from 0) or of signed ``x``: each bin is split at 0 and its negative part mirrored, which is
exact for the symmetric quantizer because ``|x - q(x)| = ||x| - q(|x|)|``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from calib import _mse, limits
from calib.histogram import Histogram, as_histogram
from calib.policies import MODELOPT_START_BIN, check_num_bits

if TYPE_CHECKING:
    from calib.spec import Spec
    from calib.sweep import SweepResult

__all__ = [
    "DEFAULT_NUM_BITS",
    "DEFAULT_PERCENTILE",
    "METHODS",
    "MSE_TIE_RTOL",
    "Calibration",
    "ClipMetrics",
    "amax_max",
    "amax_mse",
    "amax_of",
    "amax_percentile",
    "calibrate",
    "clip_metrics",
    "clip_mse_curve",
    "max_code",
    "try_calibrate",
]

METHODS = ("max", "percentile", "mse", "entropy")
DEFAULT_NUM_BITS = 8
DEFAULT_PERCENTILE = 99.99
MSE_TIE_RTOL = 1e-10
"""Clips whose expected errors are this close (relative) are ties in :func:`amax_mse`: a
hundred times the curve's rounding against the piece-by-piece reference."""


# -- results ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ClipMetrics:
    """What a clip at ``amax`` does to a histogram under the uniform quantizer.

    Attributes
    ----------
    amax : float
        The clipping threshold, activation units.
    clipped_fraction : float
        Share of the mass outside the representable range: ``|x| > amax`` (unsigned
        quantizer: ``x > amax`` or ``x < 0``).
    mse : float
        ``E[(x - q(x))^2]``, rounding plus clipping error, activation units squared.
    signal_power : float
        ``E[x^2]`` under the same flat-in-bin model.
    sqnr_db : float
        ``10 log10(signal_power / mse)``; inf when ``mse == 0``, nan for a dead histogram.
    scale : float
        ``amax / qmax``, the quantization step.

    Examples
    --------
    Two of the ten counts lie above a clip at 3.0:

    >>> import numpy as np, calib
    >>> m = calib.clip_metrics(calib.Histogram([0, 5, 3, 1, 0, 1], np.arange(7.0)), amax=3.0)
    >>> m.clipped_fraction, m.scale == 3.0 / 127, round(m.sqnr_db, 2)
    (0.2, True, 10.41)
    """

    amax: float
    clipped_fraction: float
    mse: float
    signal_power: float
    sqnr_db: float
    scale: float


@dataclasses.dataclass(frozen=True)
class Calibration:
    """One calibrator's answer for one histogram: the one record of a clip and its metrics.

    Attributes
    ----------
    spec : Spec
        The calibration asked for (:class:`calib.Spec`: method, variant, bits, levels...).
    amax : float
        The chosen clip, activation units (0.0 for a dead histogram, nan when refused).
    metrics : ClipMetrics or None
        :func:`clip_metrics` at ``amax``; None when the calibrator refused the histogram.
    note : str
        A one-line explanation of the clip.
    sweep : SweepResult or None
        The KL sweep that chose the clip (``"entropy"`` on a live histogram), else None.
        Left out of ``==`` (its arrays have no single truth value): two records are equal
        when their spec, clip, metrics, note and flags are.
    dead : bool
        True when every count is zero; ``amax`` is then 0.0 whatever the method.
    error : str
        Why the calibrator refused the histogram ("" when it did not):
        :func:`try_calibrate`'s record of a ``ValueError``.

    Examples
    --------
    >>> import numpy as np, calib
    >>> c = calib.calibrate(calib.Histogram([0, 5, 3, 1, 0, 1], np.arange(7.0)), "max")
    >>> c.amax, c.dead, c.sweep is None, c.metrics.clipped_fraction
    (6.0, False, True, 0.0)
    >>> calib.calibrate(np.zeros(8), "entropy").note
    'dead layer: every count is zero'
    """

    spec: Spec
    amax: float
    metrics: ClipMetrics | None
    note: str = ""
    sweep: SweepResult | None = dataclasses.field(default=None, compare=False)
    dead: bool = False
    error: str = ""

    @property
    def method(self) -> str:
        """The spec's method: one of :data:`METHODS`."""
        return self.spec.method

    @property
    def name(self) -> str:
        """The spec's canonical text (``"entropy:mxnet@4"``)."""
        return str(self.spec)

    @property
    def kl(self) -> float:
        """KL(P || Q) at the chosen candidate (entropy on a live histogram; inf where
        undefined); nan for the other methods, a dead histogram or a refusal."""
        if self.sweep is None or self.dead:
            return math.nan
        return float(self.sweep.min_kl)

    @property
    def clipped(self) -> float:
        """Share of the mass beyond the clip (nan when refused)."""
        return math.nan if self.metrics is None else self.metrics.clipped_fraction

    @property
    def sqnr_db(self) -> float:
        """SQNR of the clip in dB (nan when dead or refused)."""
        return math.nan if self.metrics is None else self.metrics.sqnr_db

    def ratio_to(self, max_abs: float) -> float:
        """Where the clip sits in the data, ``amax / max_abs`` (1: at the largest value);
        nan when ``max_abs`` is not positive or the clip is undefined.

        >>> import calib
        >>> calib.calibrate(calib.Histogram([4, 2, 1, 1], [0, 1, 2, 3, 4]), "max").ratio_to(4.0)
        1.0
        """
        a = self.amax
        return a / max_abs if max_abs > 0 and math.isfinite(a) else math.nan

    @classmethod
    def refused(cls, spec: Spec, error: str) -> Calibration:
        """The record of a calibrator that refused the histogram: amax nan, the reason."""
        return cls(spec=spec, amax=math.nan, metrics=None, error=str(error))


# -- input checks ----------------------------------------------------------------------------
def _show(value: Any) -> str:
    """A value for an error message: numpy scalars shown as plain Python numbers."""
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    return repr(value)


def _check_unsigned(unsigned: Any) -> bool:
    if not isinstance(unsigned, (bool, np.bool_)):
        raise ValueError(f"unsigned must be True or False, got {_show(unsigned)}")
    return bool(unsigned)


def max_code(num_bits: Any, unsigned: Any = False) -> int:
    """The quantizer's largest code, ``qmax``: ``2**(num_bits - 1) - 1`` (127 for int8), or
    ``2**num_bits - 1`` unsigned (255 for uint8). Every method here and the lessons use it."""
    bits = check_num_bits(num_bits)
    return 2**bits - 1 if _check_unsigned(unsigned) else 2 ** (bits - 1) - 1


def _check_amax(amax: Any) -> float:
    """A clip: a real number in (0, MAX_MAGNITUDE] (``calib.limits``)."""
    shown = f"amax must be a finite positive number up to {limits.MAX_MAGNITUDE:g}"
    if isinstance(amax, bool) or not isinstance(amax, (int, float, np.integer, np.floating)):
        raise ValueError(f"{shown}, got {_show(amax)}")
    try:
        value = float(amax)
    except OverflowError:  # a Python int past float64's range
        raise ValueError(f"{shown}, got an integer of {len(str(abs(amax)))} digits") from None
    if not (math.isfinite(value) and 0 < value <= limits.MAX_MAGNITUDE):
        raise ValueError(f"{shown}, got {_show(amax)}")
    return value


def _check_amaxes(amaxes: Any) -> np.ndarray:
    a = np.asarray(amaxes)
    if a.dtype == object or a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"amaxes must be a numeric array, got dtype {a.dtype}")
    a = a.astype(np.float64)
    bad = ~(np.isfinite(a) & (a > 0) & (a <= limits.MAX_MAGNITUDE))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"amaxes must be finite and positive, up to MAX_MAGNITUDE = "
            f"{limits.MAX_MAGNITUDE:g}, got {_show(a.ravel()[i])} at index {i}"
        )
    return a


def _check_percentile(percentile: Any) -> float:
    ok = not isinstance(percentile, bool) and isinstance(
        percentile, (int, float, np.integer, np.floating)
    )
    if not ok or not 0 <= percentile <= 100:  # NaN fails the range test too
        raise ValueError(f"percentile must be a number in [0, 100], got {_show(percentile)}")
    return float(percentile)


def _check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {_show(value)}")
    if value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {span}, got {value}")
    return int(value)


# -- the flat-in-bin model, folded to |x| ----------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Pieces:
    """The histogram as uniform pieces of ``|x|``: mass ``p`` spread flat on ``[lo, hi]``.

    ``p`` is normalised to sum to 1 over all pieces; ``neg`` marks pieces mirrored from
    ``x < 0``. Pieces may overlap (a signed histogram gives two layers); every quantity
    below is a sum over pieces, so overlap is harmless.
    """

    lo: np.ndarray
    hi: np.ndarray
    p: np.ndarray
    neg: np.ndarray


def _pieces(h: Histogram) -> _Pieces | None:
    """Split every bin at 0 and mirror its negative part; None for a dead histogram."""
    if h.is_dead:
        return None
    a, b = h.edges[:-1], h.edges[1:]
    c = h.counts.astype(np.float64) / h.total  # normalise first: huge counts stay finite
    w = b - a
    pos_lo, pos_hi = np.maximum(a, 0.0), np.maximum(b, 0.0)
    neg_lo, neg_hi = np.maximum(-b, 0.0), np.maximum(-a, 0.0)
    lo = np.concatenate([pos_lo, neg_lo])
    hi = np.concatenate([pos_hi, neg_hi])
    # A bin wholly on one side keeps exactly c: (b - a) / (b - a) == 1.
    p = np.concatenate([c * (pos_hi - pos_lo) / w, c * (neg_hi - neg_lo) / w])
    neg = np.concatenate([np.zeros(a.size, bool), np.ones(a.size, bool)])
    keep = (hi > lo) & (p > 0)
    return _Pieces(lo[keep], hi[keep], p[keep], neg[keep])


def _second_moment(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of ``t^2`` for t uniform on ``[lo, hi]``: ``(lo^2 + lo hi + hi^2) / 3``."""
    return (lo * lo + lo * hi + hi * hi) / 3.0


def _error_integrals(lo: np.ndarray, hi: np.ndarray, amax: np.ndarray, qmax: int) -> np.ndarray:
    """``integral_lo^hi (t - q(t))^2 dt`` for ``t >= 0``; amax broadcasts against lo, hi.

    Below amax the error is pure rounding, ``scale^3 * (G(b / scale) - G(a / scale))``;
    above it the value is clipped to amax and the error is ``(t - amax)^2``, whose integral
    is ``(d1 - d0)(d1^2 + d1 d0 + d0^2) / 3`` with ``d = t - amax``. The two meet
    continuously (in the half step past amax rounding already returns qmax).
    """
    scale = amax / qmax
    inv = qmax / amax
    u0, u1 = np.minimum(lo, amax) * inv, np.minimum(hi, amax) * inv
    rounding = scale**3 * _mse.rounding_integral(u0, u1)
    d0, d1 = np.maximum(lo, amax) - amax, np.maximum(hi, amax) - amax
    clipping = (d1 - d0) * (d1 * d1 + d1 * d0 + d0 * d0) / 3.0
    return rounding + clipping


def _quantized(pieces: _Pieces, unsigned: bool) -> tuple[_Pieces, float]:
    """The pieces the quantizer rounds, and the error of the rest: an unsigned quantizer
    makes x < 0 zero, an error of x^2 whatever amax is."""
    q = ~pieces.neg if unsigned else np.ones(pieces.p.size, bool)
    rest = float(np.sum(pieces.p[~q] * _second_moment(pieces.lo[~q], pieces.hi[~q])))
    kept = _Pieces(pieces.lo[q], pieces.hi[q], pieces.p[q], pieces.neg[q])
    return kept, rest


def _mse_at(pieces: _Pieces, amax: float, qmax: int, unsigned: bool) -> float:
    """Expected squared error at one amax, piece by piece (the definition)."""
    kept, rest = _quantized(pieces, unsigned)
    density = kept.p / (kept.hi - kept.lo)
    return float(_error_integrals(kept.lo, kept.hi, np.float64(amax), qmax) @ density) + rest


def _mse_curve(pieces: _Pieces, amaxes: np.ndarray, qmax: int, unsigned: bool) -> np.ndarray:
    """Expected squared error for each amax (1-D): :mod:`calib._mse`, linear in the bins."""
    kept, rest = _quantized(pieces, unsigned)
    f = _mse.density(kept.lo, kept.hi, kept.p, kept.neg)
    return _mse.mse_curve(f, amaxes, qmax) + rest


def _clipped(pieces: _Pieces, amax: float, unsigned: bool) -> float:
    """Mass outside the range: the share of each piece beyond amax (and x < 0 if unsigned)."""
    lo, hi, p = pieces.lo, pieces.hi, pieces.p
    beyond = p * (np.maximum(hi, amax) - np.maximum(lo, amax)) / (hi - lo)
    if unsigned:
        beyond = np.where(pieces.neg, p, beyond)
    return float(min(1.0, beyond.sum()))


def _sqnr_db(signal_power: float, mse: float) -> float:
    if signal_power == 0 and mse == 0:
        return math.nan
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(signal_power / mse)


# -- metrics ---------------------------------------------------------------------------------
def clip_metrics(
    hist: Any, amax: float, num_bits: int = DEFAULT_NUM_BITS, unsigned: bool = False
) -> ClipMetrics:
    """Clipped mass, MSE and SQNR of quantizing a histogram with clip ``amax``.

    Parameters
    ----------
    hist : Histogram or array_like
        Of ``|x|`` or of signed ``x``; a bare counts array is unit-width bins from 0.
    amax : float
        The clip, finite and positive, activation units.
    num_bits : int
        2..16.
    unsigned : bool
        Quantize to ``[0, qmax]`` with ``qmax = 2**num_bits - 1`` (negative x become 0).

    Returns
    -------
    ClipMetrics

    Notes
    -----
    Values are taken as spread uniformly inside each bin, and with ``f`` that density::

        scale        = amax / qmax
        mse          = integral f(x) (x - q(x))^2 dx / integral f(x) dx
        signal_power = integral f(x) x^2 dx / integral f(x) dx
        sqnr_db      = 10 log10(signal_power / mse)

    all integrated in closed form (see ``_error_integrals``), so the answer does not depend
    on where inside a bin the clip falls. A dead (all-zero) histogram has nothing to clip:
    ``clipped_fraction = mse = signal_power = 0`` and ``sqnr_db = nan``.

    Examples
    --------
    >>> import numpy as np
    >>> m = clip_metrics(Histogram(np.ones(4), np.linspace(0, 127, 5)), amax=127.0)
    >>> bool(np.isclose(m.mse, 1 / 12)), m.clipped_fraction, m.scale
    (True, 0.0, 1.0)
    """
    h = as_histogram(hist)
    amax = _check_amax(amax)
    qmax = max_code(num_bits, unsigned)
    pieces = _pieces(h)
    if pieces is None:
        return ClipMetrics(
            amax=amax, clipped_fraction=0.0, mse=0.0, signal_power=0.0, sqnr_db=math.nan,
            scale=amax / qmax,
        )  # fmt: skip
    mse = _mse_at(pieces, amax, qmax, bool(unsigned))
    power = float(pieces.p @ _second_moment(pieces.lo, pieces.hi))
    clipped = _clipped(pieces, amax, bool(unsigned))
    return ClipMetrics(
        amax=amax, clipped_fraction=clipped, mse=mse, signal_power=power,
        sqnr_db=_sqnr_db(power, mse), scale=amax / qmax,
    )  # fmt: skip


def clip_mse_curve(
    hist: Any, amaxes: Any, num_bits: int = DEFAULT_NUM_BITS, unsigned: bool = False
) -> np.ndarray:
    """:func:`clip_metrics`' ``mse`` for many clips at once.

    Parameters
    ----------
    hist : Histogram or array_like
        As in :func:`clip_metrics`.
    amaxes : array_like
        Clips, each finite and positive; any shape.
    num_bits, unsigned
        As in :func:`clip_metrics`.

    Returns
    -------
    numpy.ndarray
        ``mse`` for each clip, the shape of ``amaxes`` (zeros for a dead histogram).

    Notes
    -----
    The same closed-form integrals as :func:`clip_metrics`, reorganised so that each clip
    costs O(min(n_bins, qmax)), not O(n_bins) (:mod:`calib._mse`: suffix moments for the
    clipping error, cell by cell sums for the rounding error); it agrees with calling
    ``clip_metrics`` clip by clip (``calib.reference.clip_mse_direct``) to a relative
    1e-10. A search of more than ``calib.limits.MAX_SEARCH_CELLS`` (clip, cell) pairs is
    refused.

    Examples
    --------
    >>> import numpy as np, calib
    >>> ramp = calib.Histogram(np.ones(4), np.linspace(0, 127, 5))
    >>> curve = calib.clip_mse_curve(ramp, [127.0, 63.5])
    >>> [round(float(v), 4) for v in curve]
    [0.0833, 672.0521]
    >>> bool(np.allclose(curve, [calib.clip_metrics(ramp, a).mse for a in (127.0, 63.5)]))
    True
    """
    h = as_histogram(hist)
    a = _check_amaxes(amaxes)
    qmax = max_code(num_bits, unsigned)
    pieces = _pieces(h)
    if pieces is None:
        return np.zeros(a.shape)
    return _mse_curve(pieces, a.ravel(), qmax, bool(unsigned)).reshape(a.shape)


def _metrics_at_zero(h: Histogram) -> ClipMetrics:
    """The limit amax -> 0 of a live histogram: everything becomes 0, nothing survives."""
    pieces = _pieces(h)
    assert pieces is not None
    power = float(pieces.p @ _second_moment(pieces.lo, pieces.hi))
    return ClipMetrics(
        amax=0.0, clipped_fraction=1.0, mse=power, signal_power=power, sqnr_db=0.0, scale=0.0
    )


# -- calibrators -----------------------------------------------------------------------------
def _abs_cumulative(h: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, cum)`` of ``|x|``: ``cum[i]`` is the count with ``|x| < edges[i]``.

    A histogram of ``|x|`` (``edges[0] >= 0``) keeps its edges. For a signed one the new
    edges are the distinct ``|edges|`` and 0 (values a relative 1e-9 apart are one edge:
    ``linspace(-m, m)`` is symmetric only to rounding), and ``cum(t) = F(t) - F(-t)`` with
    ``F`` the piecewise-linear cumulative count of x (flat in each bin). For a symmetric
    histogram with an even number of bins this is :meth:`Histogram.fold`; with an odd
    number the zero bin becomes the first ``|x|`` bin ``[0, w/2]``.
    """
    e = h.edges
    cum_x = np.concatenate([[0.0], np.cumsum(h.counts, dtype=np.float64)])
    if e[0] >= 0:
        return e, cum_x
    t = np.unique(np.concatenate([np.abs(e), [0.0]]))
    t = t[t <= max(-e[0], e[-1])]
    keep = np.concatenate([[True], np.diff(t) > 1e-9 * t[-1]])
    top = t[-1]
    t = t[keep]
    t[-1] = top
    cum = np.interp(t, e, cum_x) - np.interp(-t, e, cum_x)
    cum[-1] = cum_x[-1]
    return t, np.maximum.accumulate(cum)


def amax_max(hist: Any) -> float:
    """The largest ``|x|`` the histogram can hold: the outer edge of its outermost count.

    Parameters
    ----------
    hist : Histogram or array_like

    Returns
    -------
    float
        ``max(|edges[first non-zero]|, |edges[last non-zero + 1]|)``; 0.0 for a dead histogram.

    Examples
    --------
    >>> import numpy as np, calib
    >>> calib.amax_max(calib.Histogram([0, 5, 3, 1, 0, 1], np.arange(7.0)))
    6.0
    >>> calib.amax_max(calib.Histogram([0, 5, 3, 1, 0, 0], np.arange(7.0)))
    4.0
    """
    return as_histogram(hist).max_abs


def amax_percentile(
    hist: Any, percentile: float = DEFAULT_PERCENTILE, *, float_cdf: bool = False
) -> float:
    """ModelOpt's percentile clip of ``|x|``.

    Parameters
    ----------
    hist : Histogram or array_like
        Of ``|x|``, or of signed x (then folded to ``|x|`` first, see Notes).
    percentile : float
        In [0, 100].
    float_cdf : bool
        Build the cdf exactly as ModelOpt's code does, ``cumsum(counts / total)``, to
        reproduce its answer to the bit (see Notes).

    Returns
    -------
    float
        The clip in activation units; 0.0 for a dead histogram.

    Notes
    -----
    ModelOpt's ``_compute_amax_percentile``::

        cdf  = cumsum(counts) / total
        amax = edges[searchsorted(cdf, percentile / 100)]   (side="left")

    ``edges[i]`` is the LOWER edge of the first bin in which the cdf reaches the
    percentile, so the clip lands up to one bin below the sample percentile and clips that
    bin whole. Consequences kept on purpose: when the first bin already holds the
    percentile (a ReLU layer that is mostly exact zeros, or ``percentile=0``) the answer is
    ``edges[0]``, 0.0 for a histogram of ``|x|``; ``percentile=100`` is the lower edge of the
    last non-empty bin, not the max.

    One float artefact is not kept by default. ModelOpt sums ``counts / total`` bin by
    bin, so where the cdf reaches the percentile exactly at a bin (99990 of 100000 samples
    for 99.99) the sum can fall an ulp short and the search skips to the next non-empty bin,
    which in a sparse tail can be many bins further out. Here the cdf is divided once,
    after an exact cumulative count, and compared with a 1e-12 allowance;
    ``float_cdf=True`` restores ModelOpt's arithmetic.

    ModelOpt histograms ``|x|`` only. A signed histogram is folded to ``|x|`` first (its
    edges become the distinct ``|edges|``), which asks the symmetric quantizer's question:
    how much mass lies outside ``[-a, a]``.

    Examples
    --------
    The cdf reaches 90% in the bin [3, 4): its lower edge is the clip.

    >>> import numpy as np, calib
    >>> h = calib.Histogram([0, 5, 3, 1, 0, 1], np.arange(7.0))
    >>> calib.amax_percentile(h, 90.0), calib.amax_percentile(h, 100.0)
    (3.0, 5.0)
    """
    h = as_histogram(hist)
    p = _check_percentile(percentile)
    if h.is_dead:
        return 0.0
    edges, cum = _abs_cumulative(h)
    if float_cdf:
        counts = np.diff(cum)
        cdf = np.cumsum(counts / counts.sum())
        return float(edges[np.searchsorted(cdf, p / 100)])
    cdf = cum[1:] / cum[-1]
    return float(edges[np.searchsorted(cdf, p / 100 - 1e-12)])


def amax_mse(
    hist: Any,
    num_bits: int = DEFAULT_NUM_BITS,
    unsigned: bool = False,
    start_bin: int = MODELOPT_START_BIN,
    stride: int = 1,
) -> float:
    """The clip with the smallest expected quantization error, searched at bin edges.

    Parameters
    ----------
    hist : Histogram or array_like
    num_bits, unsigned
        As in :func:`clip_metrics`.
    start_bin : int
        First candidate: edge index ``start_bin`` of the ``|x|`` histogram, 0..n_bins.
    stride : int
        Candidate spacing in edges, at least 1.

    Returns
    -------
    float
        ``argmin over a in edges[start_bin::stride] of clip_mse_curve(hist, a)``, the first
        minimum on ties; 0.0 for a dead histogram.

    Notes
    -----
    ModelOpt's ``_compute_amax_mse`` tries bin CENTRES ``i = start_bin .. n - 1`` and scores
    each by quantizing the centres themselves. Here the candidates are bin EDGES and the score
    is the exact flat-in-bin MSE: the top edge (no clipping) is then a candidate, the clip
    lines up with the entropy and percentile rules (both answer ``edges[i]``), and the score
    no longer depends on where a clip falls inside a bin. A signed histogram's candidates
    are the edges of its ``|x|`` fold (``_abs_cumulative``).

    The curve is :func:`clip_mse_curve`'s: each candidate costs O(min(n_bins, qmax)), so
    the search is linear in the bins at a given bit width (about 5 ms at 2048 bins and 8
    bits, 0.2 s at 65,536). Clips within ``MSE_TIE_RTOL`` of the least error are ties; the
    first wins.

    Examples
    --------
    A normal distribution: fewer levels clip closer in.

    >>> import numpy as np, calib
    >>> h = calib.Histogram.from_samples(np.random.default_rng(0).standard_normal(100_000))
    >>> round(calib.amax_mse(h), 2), round(calib.amax_mse(h, num_bits=4), 2)
    (3.89, 2.48)
    """
    h = as_histogram(hist)
    qmax = max_code(num_bits, unsigned)
    edges, _ = _abs_cumulative(h)
    n = edges.size - 1
    start_bin = _check_int(start_bin, "start_bin", 0, n)
    stride = _check_int(stride, "stride", 1)
    if h.is_dead:
        return 0.0
    candidates = edges[start_bin::stride]
    candidates = candidates[candidates > 0]
    if candidates.size == 0:
        raise ValueError(f"start_bin={start_bin} leaves no positive edge to clip at")
    mse = _mse_curve(_pieces(h), candidates, qmax, bool(unsigned))
    # the first of the clips within MSE_TIE_RTOL of the least error: equal in exact
    # arithmetic, they may differ in the last bits however the sums are ordered
    near = np.flatnonzero(mse <= mse.min() * (1.0 + MSE_TIE_RTOL))
    return float(candidates[int(near[0])])


# -- one entry point -------------------------------------------------------------------------
def _spec_of_call(
    method: Any, num_bits: Any, unsigned: Any, variant: Any, percentile: Any, policies: dict
) -> Spec:
    """The :class:`Spec` a call of :func:`calibrate` names: ``method`` (a spec, its text, or
    a method name) with the keyword arguments that differ from their defaults applied."""
    from calib.spec import Spec  # lazy: calib.spec builds on this module

    if not isinstance(method, (str, Spec)):
        raise ValueError(f"method must be one of {METHODS} or a calib.Spec, got {_show(method)}")
    spec = Spec.parse(method)
    m = spec.method
    if m in ("max", "percentile") and policies:
        raise ValueError(f"method {m!r} takes no policies, got {sorted(policies)}")
    if m == "mse":
        unknown = sorted(set(policies) - {"start_bin", "stride"})
        if unknown:
            raise ValueError(f"method 'mse' takes policies start_bin and stride, got {unknown}")
    changes: dict[str, Any] = {}
    if not (type(num_bits) is int and num_bits == DEFAULT_NUM_BITS):
        changes["num_bits"] = num_bits
    if unsigned is not False:
        changes["unsigned"] = unsigned
    if not (type(percentile) is float and percentile == DEFAULT_PERCENTILE):
        percentile = _check_percentile(percentile)  # checked whatever the method, as always
        if m == "percentile":
            changes["percentile"] = percentile
    if variant != "seed" and m == "entropy":
        changes["variant"] = variant
    if m == "entropy":
        policies = dict(policies)
        if "target_bins" in policies:
            changes["levels"] = policies.pop("target_bins")
    if policies:
        changes["overrides"] = {**spec.options, **policies}
    default = Spec.build(m)
    for k, v in changes.items():
        mine = getattr(spec, k)
        if k != "overrides" and mine != getattr(default, k) and mine != v:
            raise ValueError(f"{k}={_show(v)} contradicts the spec {str(spec)!r}")
    return dataclasses.replace(spec, **changes) if changes else spec


def calibrate(
    hist: Any,
    method: str | Spec = "entropy",
    num_bits: int = DEFAULT_NUM_BITS,
    unsigned: bool = False,
    *,
    variant: str = "seed",
    percentile: float = DEFAULT_PERCENTILE,
    **policies: Any,
) -> Calibration:
    """Calibrate one histogram with one calibrator and measure the clip it chose.

    Parameters
    ----------
    hist : Histogram or array_like
        A bare counts array is unit-width bins from 0.
    method : Spec or str
        A :class:`calib.Spec`, or its text (``"entropy:mxnet@4"``, ``"percentile:99.9"``,
        ``"mse"``; see :mod:`calib.spec`). A bare method name, ``"max"``, ``"percentile"``,
        ``"mse"`` or ``"entropy"``, takes the rest from the keyword arguments.
    num_bits : int
        2..16; sets the quantizer the metrics (and ``"mse"``) use.
    unsigned : bool
        Quantize to ``[0, 2**num_bits - 1]``.
    variant : str
        ``"entropy"`` only: the KL sweep preset (``calib.sweep.kl_sweep``).
    percentile : float
        ``"percentile"`` only: in [0, 100].
    **policies
        ``"entropy"``: the spec's policy overrides, and ``target_bins`` its levels.
        ``"mse"``: ``start_bin`` and ``stride`` of :func:`amax_mse`. ``"max"`` and
        ``"percentile"`` take none.

    The keyword arguments are the old way to say what a spec says: each one left at its
    default leaves the spec's value alone, and one that contradicts the spec's bits is an
    error.

    Returns
    -------
    Calibration
        ``spec`` the calibration run, ``metrics = clip_metrics(hist, amax, num_bits,
        unsigned)``.

    Notes
    -----
    A dead (all-zero) histogram answers ``amax = 0.0`` and ``dead=True`` for every method
    without running it; its metrics are all 0 with ``sqnr_db = nan``. A live histogram whose
    method answers 0.0 (ModelOpt's percentile rule on a layer that is mostly zeros) gets the
    metrics of the limit amax -> 0: everything clipped, ``mse = signal_power``, 0 dB.

    ``"entropy"`` sweeps at the spec's levels, :attr:`calib.Spec.target_bins`: unless set,
    the variant's own for the quantizer, :func:`calib.policies.levels_for` (signed int8:
    128, MXNet's 255; 4 bits: 8, MXNet's 15).

    Examples
    --------
    >>> import numpy as np
    >>> h = Histogram(np.exp(-np.linspace(0, 8, 2048)), np.linspace(0, 8, 2049))
    >>> c = calibrate(h, "entropy:mxnet@4")
    >>> c.name, c.sweep.target_bins, c.spec == calibrate(h, "entropy", 4, variant="mxnet").spec
    ('entropy:mxnet@4', 15, True)

    >>> import numpy as np, calib
    >>> h = calib.Histogram.from_samples(np.random.default_rng(0).standard_normal(100_000))
    >>> for method in calib.METHODS:
    ...     c = calib.calibrate(h, method)
    ...     print(f"{method:<10} amax {c.amax:.3f}  SQNR {c.metrics.sqnr_db:.1f} dB")
    max        amax 4.732  SQNR 39.3 dB
    percentile amax 3.900  SQNR 40.4 dB
    mse        amax 3.891  SQNR 40.4 dB
    entropy    amax 3.814  SQNR 40.4 dB
    """
    h = as_histogram(hist)
    spec = _spec_of_call(method, num_bits, unsigned, variant, percentile, policies)
    num_bits, unsigned = spec.num_bits, spec.unsigned
    if h.is_dead:
        metrics = ClipMetrics(
            amax=0.0, clipped_fraction=0.0, mse=0.0, signal_power=0.0, sqnr_db=math.nan, scale=0.0
        )
        return Calibration(
            spec=spec, amax=0.0, metrics=metrics, note="dead layer: every count is zero",
            dead=True,
        )  # fmt: skip
    amax, note, sweep = _choose(h, spec)
    if amax > 0:
        metrics = clip_metrics(h, amax, num_bits, unsigned)
    else:
        metrics = _metrics_at_zero(h)
    return Calibration(spec=spec, amax=float(amax), metrics=metrics, note=note, sweep=sweep)


def _choose(h: Histogram, spec: Spec) -> tuple[float, str, SweepResult | None]:
    """The clip ``spec`` chooses on a live histogram, a note on it, and the KL sweep."""
    sweep = None
    if spec.method == "max":
        amax = amax_max(h)
        note = f"max |x| = {amax:.6g}"
    elif spec.method == "percentile":
        amax = amax_percentile(h, spec.percentile)
        note = f"{spec.percentile:g}th percentile of |x| (ModelOpt's rule) = {amax:.6g}"
    elif spec.method == "mse":
        amax = amax_mse(h, spec.num_bits, spec.unsigned, **spec.options)
        note = f"minimum expected MSE over bin edges at amax = {amax:.6g}"
    else:
        from calib import sweep as _sweep  # lazy: the sweep engine is its own module

        sweep = _sweep.kl_sweep(
            h, target_bins=spec.target_bins, variant=spec.variant, **spec.options
        )
        amax = float(sweep.amax)
        note = (
            f"smallest KL of the {sweep.variant} sweep at {sweep.target_bins} levels: "
            f"amax = {amax:.6g}"
        )
        if sweep.notes:  # the answer is not simply the smallest KL, or the tool would refuse
            note = f"{sweep.variant} sweep at {sweep.target_bins} levels: amax = {amax:.6g}. "
            note += ". ".join(sweep.notes)
    return float(amax), note, sweep


def amax_of(hist: Any, spec: Any) -> float:
    """:func:`calibrate`'s ``amax`` alone, without measuring the clip (what a trace after
    every batch needs): 0.0 for a dead histogram; a ValueError when the calibrator
    refuses."""
    from calib.spec import Spec

    h, spec = as_histogram(hist), Spec.parse(spec)
    return 0.0 if h.is_dead else _choose(h, spec)[0]


def try_calibrate(hist: Any, spec: Any) -> Calibration:
    """:func:`calibrate` with a spec (or its text), a refusal kept as a record: a
    ``ValueError`` of the calibrator becomes :meth:`Calibration.refused` with its message
    (a bad spec still raises). What a table of many tensors or calibrators calls, so that
    one refusal leaves one row out, not the table."""
    from calib.spec import Spec

    spec = Spec.parse(spec)
    try:
        return calibrate(hist, spec)
    except ValueError as exc:
        return Calibration.refused(spec, str(exc))
