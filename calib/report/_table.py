"""One row per tensor: the clip, its metrics and the flags read off the histogram."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from calib.histogram import Histogram
from calib.methods import (
    DEFAULT_NUM_BITS,
    DEFAULT_PERCENTILE,
    METHODS,
    Calibration,
    amax_percentile,
    try_calibrate,
)
from calib.spec import Spec

ZERO_SPIKE_SHARE = 0.10
"""Least share of the mass in the bin(s) touching zero for a ``zero spike``."""
ZERO_SPIKE_STEP = 4.0
"""Least density of the zero bin(s) over their neighbours' for a ``zero spike``."""
TAIL_PERCENTILE = DEFAULT_PERCENTILE
"""The high percentile of |x| that ``max`` is compared with (99.99)."""
OUTLIER_RATIO = 4.0
"""``max / p99.99`` at or above which a tensor is flagged ``outliers``."""
CLIPPED_SHARE = 0.01
"""Share of the values beyond the clip at or above which a tensor is flagged ``clipped``."""
LOW_SQNR_DB = 10.0
"""SQNR (dB) below which a tensor is flagged ``low SQNR``: the error's power is then more
than a tenth of the signal's. A clean 8-bit tensor gets 20 to 45 dB (every bit fewer costs
about 6 dB, so at few bits more tensors fall below)."""
SPARSE_PER_BIN = 10.0
"""Integer counts below this many per occupied bin flag a tensor ``sparse``."""
OUTLIER_MIN_COUNT = 10_000
"""Fewer integer counts than this flag a tensor ``sparse`` too: p99.99 is then the largest
value itself (the top 0.01% is less than one value), so ``outliers`` cannot fire."""
DISAGREE_RATIO = 1.5
"""A cached amax further than this factor from calib's, either way, is a disagreement:
log2(1.5) = 0.58, more than half a bit of the 8 spent differently. Implementations that
agree on a layer land within about 15% of each other on this project's real model."""
EXTREME_RATIO = 1000.0
"""A cached amax this many times above or below the cache's median amax is extreme."""
FLOAT16_MAX = 65504.0
"""A cached amax above this does not fit an FP16 tensor: extreme whatever the median."""

FLAGS = (
    "dead",
    "zero spike",
    "outliers",
    "clipped",
    "low SQNR",
    "sparse",
    "smallest candidate",
    "zero amax",
    "error",
)
NO_FLAG = "no flag"
"""What a row with no flag says in its flags column."""
FLAG_HELP = {
    "dead": "Every count is zero: no amax and no scale (the exports leave it out).",
    "zero spike": f"The bin(s) touching zero hold at least {ZERO_SPIKE_SHARE:.0%} of the "
    f"values and are {ZERO_SPIKE_STEP:g}x as dense as their neighbours (a ReLU's zeros); it "
    "drags the seed's KL towards small clips.",
    "outliers": f"max / p99.99 of |x| is at least {OUTLIER_RATIO:g}: a few values far beyond "
    "the rest (a normal body gives about 1.5), so one clip cannot serve both.",
    "clipped": f"At least {CLIPPED_SHARE:.0%} of the values lie beyond the clip and are "
    "stored as the clip itself.",
    "low SQNR": f"SQNR below {LOW_SQNR_DB:g} dB: the rounding and clipping error carries more "
    "than a tenth of the signal's power.",
    "sparse": f"Fewer than {SPARSE_PER_BIN:g} values per occupied bin, or fewer than "
    f"{OUTLIER_MIN_COUNT:,} in all: the histogram is noise at this size, and the outlier "
    "test cannot fire (integer counts only).",
    "smallest candidate": "Entropy only: the KL sweep chose its first candidate, the floor "
    "of its search rather than a minimum.",
    "zero amax": "A live tensor whose method answered 0: everything would be clipped.",
    "error": "The method refused the tensor; the message follows.",
}
"""One sentence per flag, for the pages and the command line's help."""
CHECKS = (
    "problem",  # what the cache's reader reported: zero/NaN/inf scales, unknown algorithm
    "identical",  # several tensors share one scale
    "extreme",  # amax far from the cache's median, or beyond float16
    "unnamed",  # TensorRT's "(Unnamed Layer* N)" names
    "missing",  # tensors of the histograms that the cache lacks
    "extra",  # tensors of the cache that the histograms lack
    "header",  # the header or version is odd, or names a non-entropy calibrator
)

# column -> what a record holds; the page and the exports share these names
COLUMNS = (
    "layer",
    "bins",
    "max",
    "amax",
    "amax/max",
    "clipped %",
    "KL",
    "SQNR dB",
    "zero %",
    "max/p99.99",
    "flags",
)
CLI_COLUMNS = ("layer", "bins", "max", "amax", "amax/max", "clipped %", "KL", "SQNR dB", "flags")

Progress = Callable[[int, int], None]


# -- one row ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One tensor: its name, its :class:`calib.Calibration` (the one record of a clip and
    its metrics), what its histogram says, and the flags.

    Attributes
    ----------
    layer : str
        The tensor's name in the file.
    calibration : Calibration
        The clip and its metrics (:func:`calib.methods.try_calibrate`: a refusal is a
        record with amax nan and its message).
    bins : int
        Bins of its histogram.
    max : float
        Largest ``|x|`` the histogram holds (0 when dead).
    zero_share : float
        Share of the mass in the bin(s) touching zero.
    tail_ratio : float
        ``max / p99.99`` of ``|x|`` (inf when the percentile is 0, nan when dead).
    flags : tuple of str
        Those of :data:`FLAGS` that fire, in that order.

    ``amax`` (0 when dead, nan on error), ``ratio`` (``amax / max``), ``clipped`` (share of
    the mass beyond the clip), ``kl`` (entropy only; nan otherwise, inf if undefined),
    ``sqnr_db`` and ``error`` are read off the calibration.
    """

    layer: str
    calibration: Calibration
    bins: int
    max: float
    zero_share: float
    tail_ratio: float
    flags: tuple[str, ...] = ()

    @property
    def spec(self) -> Spec:
        return self.calibration.spec

    @property
    def amax(self) -> float:
        return self.calibration.amax

    @property
    def ratio(self) -> float:
        """``amax / max`` (nan when dead or on error): :meth:`Calibration.ratio_to`."""
        return self.calibration.ratio_to(self.max)

    @property
    def clipped(self) -> float:
        return self.calibration.clipped

    @property
    def kl(self) -> float:
        return self.calibration.kl

    @property
    def sqnr_db(self) -> float:
        return self.calibration.sqnr_db

    @property
    def error(self) -> str:
        """Why the method refused the tensor ("" when it did not)."""
        return self.calibration.error

    @property
    def dead(self) -> bool:
        return "dead" in self.flags

    @property
    def flag_text(self) -> str:
        """The flags as one string: "outliers, clipped", :data:`NO_FLAG` when none fired,
        "error: <message>" when the method refused the tensor."""
        if self.error:
            return f"error: {self.error}"
        return ", ".join(self.flags) or NO_FLAG

    def record(self) -> dict[str, Any]:
        """The row as a dict keyed by :data:`COLUMNS` (percentages in %, flags one string)."""
        return {
            "layer": self.layer,
            "bins": self.bins,
            "max": self.max,
            "amax": self.amax,
            "amax/max": self.ratio,
            "clipped %": 100.0 * self.clipped,
            "KL": self.kl,
            "SQNR dB": self.sqnr_db,
            "zero %": 100.0 * self.zero_share,
            "max/p99.99": self.tail_ratio,
            "flags": self.flag_text,
        }


def zero_spike(hist: Histogram) -> tuple[float, float]:
    """``(share, step)`` of the bin(s) touching zero: their share of the mass, and their
    density over that of the bins next to them (inf when the neighbours are empty).

    The bins touching zero are those with ``edges[i] <= 0 <= edges[i + 1]``: bin 0 of a
    histogram of ``|x|``, the one or two central bins of a signed one. ``(0, 0)`` when no
    bin touches zero or the histogram is dead.
    """
    e, c = hist.edges, hist.counts.astype(np.float64)
    total = c.sum()
    at_zero = np.flatnonzero((e[:-1] <= 0) & (e[1:] >= 0))
    if total == 0 or at_zero.size == 0:
        return 0.0, 0.0
    first, last = int(at_zero[0]), int(at_zero[-1])
    mass = float(c[first : last + 1].sum())
    density = mass / (e[last + 1] - e[first])
    beside = [i for i in (first - 1, last + 1) if 0 <= i < c.size]
    beside_mass = float(sum(c[i] for i in beside))
    beside_width = float(sum(e[i + 1] - e[i] for i in beside))
    if mass == 0:
        step = 0.0
    elif beside_mass == 0:
        step = math.inf
    else:
        step = density / (beside_mass / beside_width)
    return mass / total, step


def tail_ratio(hist: Histogram, percentile: float = TAIL_PERCENTILE) -> float:
    """``max|x| / p``, p the ``percentile`` of ``|x|`` by ModelOpt's rule; inf when p is 0,
    nan for a dead histogram."""
    if hist.is_dead:
        return math.nan
    p = amax_percentile(hist, percentile)
    return hist.max_abs / p if p > 0 else math.inf


def sparse(hist: Histogram) -> bool:
    """Whether a histogram of integer counts holds fewer than :data:`SPARSE_PER_BIN` values
    per occupied bin, or fewer than :data:`OUTLIER_MIN_COUNT` in all. Float counts (a
    normalised histogram) do not say how many values they hold: never sparse."""
    c = hist.counts
    if hist.is_dead or not np.all(c == np.round(c)):
        return False
    total = float(c.sum())
    return total < OUTLIER_MIN_COUNT or total < SPARSE_PER_BIN * np.count_nonzero(c)


def table_spec(
    method: Any = "entropy",
    variant: str = "seed",
    num_bits: int = DEFAULT_NUM_BITS,
    target_bins: int | None = None,
    percentile: float = DEFAULT_PERCENTILE,
) -> Spec:
    """The :class:`calib.Spec` of a table: ``method`` itself when it is a spec (or a
    calibrator's text, ``"entropy:mxnet@4"``), else the loose settings of a page or the
    command line (:meth:`calib.Spec.build`: the variant and ``target_bins`` count for
    entropy only, the percentile for percentile)."""
    if isinstance(method, Spec):
        return method
    if not isinstance(method, str):
        raise ValueError(f"method must be one of {METHODS}, got {method!r:.60}")
    if method not in METHODS:
        try:
            return Spec.parse(method)
        except ValueError as exc:
            raise ValueError(f"method must be one of {METHODS} or a calibrator: {exc}") from None
    if target_bins is not None and (
        isinstance(target_bins, bool) or not isinstance(target_bins, (int, np.integer))
    ):
        raise ValueError(f"target_bins must be an integer or None, got {target_bins!r:.60}")
    return Spec.build(method, variant, num_bits, target_bins, percentile)


def layer_row(
    name: str,
    hist: Histogram,
    method: Any = "entropy",
    variant: str = "seed",
    num_bits: int = DEFAULT_NUM_BITS,
    target_bins: int | None = None,
    *,
    percentile: float = DEFAULT_PERCENTILE,
) -> LayerRow:
    """One tensor's row: :func:`calib.methods.try_calibrate` and the flags (module
    docstring). ``method`` is a :class:`calib.Spec`, its text, or a method name with the
    loose settings after it (:func:`table_spec`).

    A ``ValueError`` from the method (a bad setting for this tensor) becomes a row with the
    ``error`` flag and the message; the spec itself must be valid.
    """
    spec = table_spec(method, variant, num_bits, target_bins, percentile)
    share, step = zero_spike(hist)
    tail = tail_ratio(hist)
    mx = hist.max_abs
    common = {"layer": name, "bins": hist.n_bins, "max": mx, "zero_share": share}
    cal = try_calibrate(hist, spec)
    if cal.error:
        return LayerRow(**common, calibration=cal, tail_ratio=tail, flags=("error",))
    sweep = cal.sweep
    flags = []
    if cal.dead:
        flags.append("dead")
    else:
        if share >= ZERO_SPIKE_SHARE and step >= ZERO_SPIKE_STEP:
            flags.append("zero spike")
        if tail >= OUTLIER_RATIO:
            flags.append("outliers")
        if cal.metrics.clipped_fraction >= CLIPPED_SHARE:
            flags.append("clipped")
        if cal.metrics.sqnr_db < LOW_SQNR_DB:
            flags.append("low SQNR")
        if sparse(hist):
            flags.append("sparse")
        if sweep is not None and sweep.best_index == 0:
            flags.append("smallest candidate")
        if cal.amax <= 0:
            flags.append("zero amax")
    return LayerRow(**common, calibration=cal, tail_ratio=tail, flags=tuple(flags))


def layer_table(
    hists: Mapping[str, Histogram],
    method: str = "entropy",
    variant: str = "seed",
    num_bits: int = DEFAULT_NUM_BITS,
    target_bins: int | None = None,
    progress: Progress | None = None,
    *,
    percentile: float = DEFAULT_PERCENTILE,
) -> list[LayerRow]:
    """A row per tensor, in the file's order.

    Parameters
    ----------
    hists : dict of str to Histogram
        The tensors, as :func:`calib.load_histograms` returns them.
    method : Spec or str
        A :class:`calib.Spec` or its text (``"entropy:mxnet@4"``), or one of
        :data:`calib.METHODS` with the settings below (:func:`table_spec`).
    variant : str
        The KL sweep's preset (entropy only).
    num_bits : int
        The quantizer's bits (the metrics, and the MSE search, use it).
    target_bins : int or None
        Quantized levels of the KL sweep (entropy only); None keeps the variant's own for
        ``num_bits`` (:func:`calib.policies.levels_for`), as :func:`calib.calibrate` does.
    progress : callable, optional
        Called as ``progress(done, total)`` after each tensor.
    percentile : float
        The percentile method's percentile.

    Returns
    -------
    list of LayerRow
        A tensor the method refuses gets a row flagged ``error``; the others are unaffected.

    Examples
    --------
    >>> import numpy as np
    >>> h = Histogram(np.r_[0, np.full(2047, 100)], np.linspace(0, 1, 2049))  # not sparse
    >>> [r.flags for r in layer_table({"flat": h, "dead": Histogram(np.zeros(4), np.arange(5.))})]
    [(), ('dead',)]
    """
    spec = table_spec(method, variant, num_bits, target_bins, percentile)
    if not isinstance(hists, Mapping):
        raise ValueError(f"hists must be a dict of name -> Histogram, got {type(hists).__name__}")
    for name, hist in hists.items():
        if not isinstance(hist, Histogram):
            raise ValueError(f"hists[{name!r:.60}] must be a Histogram, got {type(hist).__name__}")
    rows = []
    total = len(hists)
    for done, (name, hist) in enumerate(hists.items(), start=1):
        rows.append(layer_row(name, hist, spec))
        if progress is not None:
            progress(done, total)
    return rows


def _badness(row: LayerRow) -> float:
    return -math.inf if math.isnan(row.sqnr_db) else row.sqnr_db


def worst_first(rows: Sequence[LayerRow]) -> list[LayerRow]:
    """Rows by SQNR, lowest first; rows without one (dead, error) before all (stable)."""
    return sorted(rows, key=_badness)
