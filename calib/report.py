"""A model's layers in one table: each tensor's clip, the numbers it is judged by, and flags.

The Layers page, the command line (``python -m calib FILE``) and the benchmark all build
their tables here, from :func:`calib.methods.calibrate`, so there is one copy of every
calculation. numpy and the standard library only.

Flags
-----
Each row carries the flags that fire on it, in this order:

``dead``
    Every count is zero: the tensor never fired, or the collector never saw it. No amax,
    no scale (a calibration cache leaves it out).
``zero spike``
    The bin(s) touching zero hold at least :data:`ZERO_SPIKE_SHARE` of the mass *and* are
    at least :data:`ZERO_SPIKE_STEP` times as dense as the bins next to them: a spike (a
    ReLU's exact zeros), not merely a peaked body. A big spike drags the seed's
    unnormalised KL towards the smallest candidate.
``outliers``
    ``max / p99.99 >= OUTLIER_RATIO``, where p99.99 is the 99.99th percentile of ``|x|``
    (ModelOpt's rule, :func:`calib.methods.amax_percentile`). A normal body gives a ratio
    of about 1.4 at six million samples and a Laplace body about 1.7; neither reaches 4
    at any sample count an engineer collects, so a ratio of 4 or more means a few values
    far beyond the rest (transformer FFN outputs, a [CLS] token's activations), or a
    tail so long that no clip serves both it and the body. When the percentile is 0 (at
    least 99.99% of the mass in the first bin) the ratio is inf and the flag fires.
``smallest candidate``
    Entropy only: the sweep chose its first candidate (``best_index == 0``). The KL
    minimum may lie below the range searched, so the answer is the search's floor, not a
    minimum.
``zero amax``
    A live tensor whose method answered 0 (ModelOpt's percentile rule on a tensor that is
    mostly zeros): everything would be clipped. No scale is written for it.
``error``
    The method refused this tensor (``ValueError``; for example ``target_bins`` not below
    the tensor's number of bins). The message is in :attr:`LayerRow.error`.

Worst first
-----------
:func:`worst_first` sorts by SQNR, lowest first: the error the chosen clip causes
(rounding and clipping together) relative to the tensor's own signal power, in dB, so
tensors of any scale, and any method, are ranked on one axis. Flags explain a row; they
do not rank it. Rows without an SQNR (dead, error) come first: they need a look before
anything is exported.

Calibration caches
------------------
:func:`read_calibration_file` reads a TensorRT calibration cache, an ONNX Runtime
``calibration.json`` or ``calibration.cache`` into :class:`CachedThresholds` (tensor name
-> amax). :func:`compare_cache` puts each cached amax beside calib's and marks a
disagreement when the ratio ``cached / calib`` is beyond :data:`DISAGREE_RATIO` either way
(or not finite). :func:`check_cache` checks the cache itself: its readers' problems (zero,
negative, NaN, inf scales; an unknown algorithm), identical scales shared by several
tensors, extreme scales, TensorRT's auto-generated "(Unnamed Layer* N)" names, tensors of
the histograms missing from the cache and the reverse, and the header.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from calib import files
from calib.histogram import Histogram
from calib.methods import DEFAULT_NUM_BITS, DEFAULT_PERCENTILE, METHODS, amax_percentile, calibrate

__all__ = [
    "CHECKS",
    "CLI_COLUMNS",
    "COLUMNS",
    "DISAGREE_RATIO",
    "EXTREME_RATIO",
    "FLAGS",
    "FLOAT16_MAX",
    "OUTLIER_RATIO",
    "TAIL_PERCENTILE",
    "ZERO_SPIKE_SHARE",
    "ZERO_SPIKE_STEP",
    "CacheCheck",
    "CacheMatch",
    "CachedThresholds",
    "LayerRow",
    "check_cache",
    "cli_records",
    "compare_cache",
    "exportable_amax",
    "layer_row",
    "layer_table",
    "ort_json_text",
    "read_calibration_file",
    "records",
    "records_csv",
    "records_json",
    "tail_ratio",
    "threshold_rows",
    "trt_cache_text",
    "worst_first",
    "zero_spike",
]

ZERO_SPIKE_SHARE = 0.10
"""Least share of the mass in the bin(s) touching zero for a ``zero spike``."""
ZERO_SPIKE_STEP = 4.0
"""Least density of the zero bin(s) over their neighbours' for a ``zero spike``."""
TAIL_PERCENTILE = DEFAULT_PERCENTILE
"""The high percentile of |x| that ``max`` is compared with (99.99)."""
OUTLIER_RATIO = 4.0
"""``max / p99.99`` at or above which a tensor is flagged ``outliers``."""
DISAGREE_RATIO = 1.5
"""A cached amax further than this factor from calib's, either way, is a disagreement:
log2(1.5) = 0.58, more than half a bit of the 8 spent differently. Implementations that
agree on a layer land within about 15% of each other on this project's real model."""
EXTREME_RATIO = 1000.0
"""A cached amax this many times above or below the cache's median amax is extreme."""
FLOAT16_MAX = 65504.0
"""A cached amax above this does not fit an FP16 tensor: extreme whatever the median."""

FLAGS = ("dead", "zero spike", "outliers", "smallest candidate", "zero amax", "error")
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
    """One tensor's calibration and the numbers it is judged by.

    Attributes
    ----------
    layer : str
        The tensor's name in the file.
    bins : int
        Bins of its histogram.
    max : float
        Largest ``|x|`` the histogram holds (0 when dead).
    amax : float
        The method's clip (0 when dead, nan on error).
    ratio : float
        ``amax / max`` (nan when dead or on error).
    clipped : float
        Share of the mass beyond the clip, 0..1.
    kl : float
        KL(P || Q) at the chosen candidate (entropy only; nan otherwise, inf if undefined).
    sqnr_db : float
        Signal-to-quantization-noise ratio of the clip, dB (nan when dead or on error).
    zero_share : float
        Share of the mass in the bin(s) touching zero.
    tail_ratio : float
        ``max / p99.99`` of ``|x|`` (inf when the percentile is 0, nan when dead).
    flags : tuple of str
        Those of :data:`FLAGS` that fire, in that order.
    error : str
        Why the method refused the tensor ("" when it did not).
    """

    layer: str
    bins: int
    max: float
    amax: float
    ratio: float
    clipped: float
    kl: float
    sqnr_db: float
    zero_share: float
    tail_ratio: float
    flags: tuple[str, ...] = ()
    error: str = ""

    @property
    def dead(self) -> bool:
        return "dead" in self.flags

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
            "flags": ", ".join(self.flags) if not self.error else f"error: {self.error}",
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


def _policies(method: str, target_bins: int | None) -> dict[str, Any]:
    return {"target_bins": int(target_bins)} if method == "entropy" and target_bins else {}


def layer_row(
    name: str,
    hist: Histogram,
    method: str = "entropy",
    variant: str = "seed",
    num_bits: int = DEFAULT_NUM_BITS,
    target_bins: int | None = None,
    *,
    percentile: float = DEFAULT_PERCENTILE,
) -> LayerRow:
    """One tensor's row: :func:`calib.methods.calibrate` and the flags (module docstring).

    A ``ValueError`` from the method (a bad setting for this tensor) becomes a row with the
    ``error`` flag and the message; ``method`` itself must be one of :data:`METHODS`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    share, step = zero_spike(hist)
    tail = tail_ratio(hist)
    mx = hist.max_abs
    common = {"layer": name, "bins": hist.n_bins, "max": mx, "zero_share": share}
    extra = {"percentile": percentile} if method == "percentile" else {}
    try:
        cal = calibrate(
            hist, method, num_bits, variant=variant, **extra, **_policies(method, target_bins)
        )
    except ValueError as exc:
        nan = math.nan
        return LayerRow(
            **common,
            amax=nan,
            ratio=nan,
            clipped=nan,
            kl=nan,
            sqnr_db=nan,
            tail_ratio=tail,
            flags=("error",),
            error=str(exc),
        )
    sweep = cal.detail if method == "entropy" else None
    flags = []
    if cal.dead:
        flags.append("dead")
    else:
        if share >= ZERO_SPIKE_SHARE and step >= ZERO_SPIKE_STEP:
            flags.append("zero spike")
        if tail >= OUTLIER_RATIO:
            flags.append("outliers")
        if sweep is not None and sweep.best_index == 0:
            flags.append("smallest candidate")
        if cal.amax <= 0:
            flags.append("zero amax")
    kl = sweep.min_kl if sweep is not None and not cal.dead else math.nan
    return LayerRow(
        **common,
        amax=cal.amax,
        ratio=cal.amax / mx if mx > 0 else math.nan,
        clipped=cal.metrics.clipped_fraction,
        kl=kl,
        sqnr_db=cal.metrics.sqnr_db,
        tail_ratio=tail,
        flags=tuple(flags),
    )


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
    method : str
        One of :data:`calib.METHODS`.
    variant : str
        The KL sweep's preset (entropy only).
    num_bits : int
        The quantizer's bits (the metrics, and the MSE search, use it).
    target_bins : int or None
        Quantized levels of the KL sweep (entropy only); None keeps the variant's own
        (for int8) or ``2**(num_bits - 1)``, as :func:`calib.calibrate` does.
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
    >>> h = Histogram(np.r_[0, np.ones(2047)], np.linspace(0, 1, 2049))
    >>> [r.flags for r in layer_table({"flat": h, "dead": Histogram(np.zeros(4), np.arange(5.))})]
    [(), ('dead',)]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    rows = []
    total = len(hists)
    for done, (name, hist) in enumerate(hists.items(), start=1):
        rows.append(
            layer_row(name, hist, method, variant, num_bits, target_bins, percentile=percentile)
        )
        if progress is not None:
            progress(done, total)
    return rows


def _badness(row: LayerRow) -> float:
    return -math.inf if math.isnan(row.sqnr_db) else row.sqnr_db


def worst_first(rows: Sequence[LayerRow]) -> list[LayerRow]:
    """Rows by SQNR, lowest first; rows without one (dead, error) before all (stable)."""
    return sorted(rows, key=_badness)


def threshold_rows(
    hists: Mapping[str, Histogram],
    method: str = "entropy",
    variant: str = "seed",
    target_bins: int | None = None,
    num_bits: int = DEFAULT_NUM_BITS,
) -> list[dict]:
    """The command line's table: one dict per tensor keyed by :data:`CLI_COLUMNS`.

    Raises ``ValueError`` when the method refuses any tensor (the command line then exits 2
    with the message).
    """
    return cli_records(layer_table(hists, method, variant, num_bits, target_bins))


def cli_records(rows: Sequence[LayerRow]) -> list[dict]:
    """``rows`` as the command line's table; ValueError when the method refused a tensor."""
    for row in rows:
        if row.error:
            raise ValueError(f"layer {row.layer!r}: {row.error}")
    return [{c: r[c] for c in CLI_COLUMNS} for r in records(rows)]


# -- exports ---------------------------------------------------------------------------------
def records(
    rows: Sequence[LayerRow], matches: Mapping[str, CacheMatch] | None = None
) -> list[dict[str, Any]]:
    """Rows as dicts (:data:`COLUMNS`), with ``cached amax`` and ``cached/calib`` added for
    every row when ``matches`` is given (nan where the cache lacks the tensor)."""
    out = []
    for row in rows:
        rec = row.record()
        if matches is not None:
            m = matches.get(row.layer)
            rec["cached amax"] = m.cached_amax if m else math.nan
            rec["cached/calib"] = m.ratio if m else math.nan
            rec["disagree"] = bool(m and m.disagree)
        out.append(rec)
    return out


def records_csv(recs: Sequence[Mapping[str, Any]]) -> str:
    """CSV with a header row; floats in Python's shortest round-tripping form."""
    if not recs:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(recs[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(recs)
    return buf.getvalue()


def _json_number(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def records_json(recs: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> str:
    """Strict JSON (no NaN): ``{"settings": {...}, "layers": [...]}``; nan becomes null and
    inf the string ``"inf"``."""
    layers = [{k: _json_number(v) for k, v in rec.items()} for rec in recs]
    doc = {"settings": dict(settings), "layers": layers}
    return json.dumps(doc, indent=2, allow_nan=False)


def exportable_amax(rows: Sequence[LayerRow]) -> tuple[dict[str, float], list[str]]:
    """``(amax by name, skipped names)``: a scale can be written for a positive finite amax
    only; dead tensors, zero amaxes and errors are skipped."""
    amax, skipped = {}, []
    for row in rows:
        if math.isfinite(row.amax) and row.amax > 0:
            amax[row.layer] = row.amax
        else:
            skipped.append(row.layer)
    return amax, skipped


def trt_cache_text(
    rows: Sequence[LayerRow], header: str = files.TRT_DEFAULT_HEADER
) -> tuple[str, list[str]]:
    """A TensorRT calibration cache of the rows (scale = amax / 127), and the skipped names."""
    amax, skipped = exportable_amax(rows)
    buf = io.StringIO()
    files.write_trt_cache(buf, amax, header=header)
    return buf.getvalue(), skipped


def ort_json_text(rows: Sequence[LayerRow], method: str = "entropy") -> tuple[str, list[str]]:
    """An ONNX Runtime ``calibration.json`` with ``(lowest, highest) = (-amax, amax)`` (the
    symmetric quantizer's range), and the skipped names."""
    amax, skipped = exportable_amax(rows)
    ort_method = {"entropy": "Entropy", "percentile": "Percentile", "max": "MinMax"}.get(method)
    buf = io.StringIO()
    files.write_ort_calibration_json(buf, {k: (-a, a) for k, a in amax.items()}, method=ort_method)
    return buf.getvalue(), skipped


# -- calibration caches ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CachedThresholds:
    """Thresholds read from a calibration file.

    Attributes
    ----------
    kind : str
        ``"tensorrt"``, ``"onnxruntime json"`` or ``"onnxruntime cache"``.
    name : str
        The file's name.
    amax : dict of str to float
        Tensor name -> amax, in file order (TensorRT: ``scale * 127``, kept as read even
        when zero, negative, NaN or inf; ONNX Runtime json: ``max(|lowest|, |highest|)``;
        ONNX Runtime cache: ``|value|``).
    header : str
        TensorRT's first line; the method named in an ONNX Runtime json; "" otherwise.
    version : int or None
        TensorRT's version number in the header.
    algorithm : str
        TensorRT's calibrator, or ONNX Runtime's method ("" when not named).
    problems : tuple of str
        What the reader reported (zero/NaN/inf scales, unknown algorithm, skipped data).
    scale_keys : dict of str to str
        A key per tensor that is equal exactly when two tensors share a scale (the hex bits
        for TensorRT, ``repr(amax)`` otherwise).
    """

    kind: str
    name: str
    amax: dict[str, float]
    header: str = ""
    version: int | None = None
    algorithm: str = ""
    problems: tuple[str, ...] = ()
    scale_keys: dict[str, str] = dataclasses.field(default_factory=dict)


def read_calibration_file(data: bytes, name: str) -> CachedThresholds:
    """Read a TensorRT cache or an ONNX Runtime ``calibration.json``/``calibration.cache``.

    ``.json`` is ONNX Runtime's table; any other file whose first line starts with ``TRT-``
    is a TensorRT cache; the rest are read as ONNX Runtime's ``<name> <value>`` lines.
    ValueError says what was wrong and what is expected.
    """
    what = repr(name)
    if not data:
        raise ValueError(f"{what} is empty (0 bytes)")
    ext = os.path.splitext(name)[1].lower()
    if ext == ".json":
        ort = files.read_ort_calibration_json(_named(data, name))
        amax = {k: max(abs(lo), abs(hi)) for k, (lo, hi) in ort.ranges.items()}
        keys = {k: repr(a) for k, a in amax.items()}
        method = ort.method or ""
        return CachedThresholds(
            "onnxruntime json", name, amax, method, None, method, ort.problems, keys
        )
    head = data.lstrip()[:4]
    if head == b"TRT-":
        trt = files.read_trt_cache_full(_named(data, name))
        keys = {k: _f32_hex(s) for k, s in trt.scales.items()}
        return CachedThresholds(
            "tensorrt",
            name,
            dict(trt.amax),
            trt.header,
            trt.version,
            trt.algorithm,
            trt.problems,
            keys,
        )
    try:
        values = files.read_ort_calibration_cache(_named(data, name))
    except ValueError as exc:
        raise ValueError(
            f"{what} is neither a TensorRT calibration cache (first line "
            f"TRT-<version>-<Algorithm>) nor an ONNX Runtime calibration.cache "
            f"('<tensor name> <value>' lines) nor a calibration.json: {exc}"
        ) from None
    amax = {k: abs(v) for k, v in values.items()}
    return CachedThresholds(
        "onnxruntime cache", name, amax, scale_keys={k: repr(a) for k, a in amax.items()}
    )


class _NamedBytes(io.BytesIO):
    name: str


def _named(data: bytes, name: str) -> io.BytesIO:
    f = _NamedBytes(data)
    f.name = name  # the readers put it in their messages
    return f


def _f32_hex(scale: float) -> str:
    return np.float32(scale).tobytes().hex() if math.isfinite(scale) else repr(scale)


@dataclasses.dataclass(frozen=True)
class CacheMatch:
    """One tensor's cached amax beside calib's.

    ``ratio = cached_amax / calib_amax`` (nan when both are 0 or either is nan); ``disagree``
    when the ratio is not finite or beyond :data:`DISAGREE_RATIO` either way, except that two
    zeros agree.
    """

    layer: str
    calib_amax: float
    cached_amax: float
    ratio: float
    disagree: bool


def _match(layer: str, ours: float, theirs: float) -> CacheMatch:
    if math.isnan(ours) or math.isnan(theirs):
        return CacheMatch(layer, ours, theirs, math.nan, True)
    if ours == 0 and theirs == 0:
        return CacheMatch(layer, ours, theirs, math.nan, False)
    ratio = theirs / ours if ours != 0 else math.copysign(math.inf, theirs)
    ok = math.isfinite(ratio) and ratio > 0
    disagree = not ok or max(ratio, 1 / ratio) > DISAGREE_RATIO
    return CacheMatch(layer, ours, theirs, ratio, disagree)


def compare_cache(rows: Sequence[LayerRow], cache: CachedThresholds) -> dict[str, CacheMatch]:
    """Layer name -> :class:`CacheMatch`, for the rows whose tensor is in the cache."""
    return {
        r.layer: _match(r.layer, r.amax, cache.amax[r.layer]) for r in rows if r.layer in cache.amax
    }


@dataclasses.dataclass(frozen=True)
class CacheCheck:
    """One finding about a cache: ``check`` is one of :data:`CHECKS`."""

    check: str
    message: str


def _names(names: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def check_cache(
    cache: CachedThresholds, layers: Sequence[str], method: str = "entropy"
) -> list[CacheCheck]:
    """What is wrong or worth a look in a cache, against the histograms' tensor names.

    The checks, in this order (``check`` of each :class:`CacheCheck`): the reader's own
    ``problem`` list; ``header`` (a TensorRT version that is not a number, or a calibrator
    other than an entropy one while the table shows entropy); ``identical`` (each group of
    tensors sharing one scale); ``extreme`` (amax beyond float16, or more than
    :data:`EXTREME_RATIO` times from the cache's median); ``unnamed`` (TensorRT's generated
    "(Unnamed Layer* N)" names); ``missing`` and ``extra`` tensors.
    """
    out = [CacheCheck("problem", p) for p in cache.problems]

    def add(check: str, message: str) -> None:
        out.append(CacheCheck(check, message))

    if cache.kind == "tensorrt":
        if cache.version is None:
            add("header", f"header {cache.header!r}: the version is not a number (TRT-8601-...)")
        if method == "entropy" and not cache.algorithm.startswith("Entropy"):
            add(
                "header",
                f"made by {cache.algorithm}, not an entropy calibrator: "
                "expect it to differ from KL thresholds",
            )
    live = {n: a for n, a in cache.amax.items() if math.isfinite(a) and a > 0}
    groups: dict[str, list[str]] = {}
    for name in live:
        groups.setdefault(cache.scale_keys.get(name, repr(live[name])), []).append(name)
    for g in sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True):
        add(
            "identical",
            f"{len(g)} tensors share amax {live[g[0]]:.6g}: {_names(g)} "
            "(fine for one tensor under several names or a concat's inputs)",
        )
    median = statistics.median(live.values()) if live else math.nan
    for name, a in live.items():
        if a > FLOAT16_MAX:
            add("extreme", f"{name!r}: amax {a:.6g} is beyond float16's {FLOAT16_MAX:g}")
        elif max(a / median, median / a) > EXTREME_RATIO:
            add(
                "extreme",
                f"{name!r}: amax {a:.6g} is more than {EXTREME_RATIO:g}x from "
                f"the cache's median {median:.6g}",
            )
    unnamed = [n for n in cache.amax if n.startswith("(Unnamed Layer")]
    if unnamed:
        add(
            "unnamed",
            f"{len(unnamed)} tensors have TensorRT's generated names, which change "
            f"when the network is rebuilt: {_names(unnamed)}",
        )
    missing = [n for n in layers if n not in cache.amax]
    ours = set(layers)
    extra = [n for n in cache.amax if n not in ours]
    if missing:
        add(
            "missing",
            f"{len(missing)} of {len(layers)} tensors of the histograms are not in "
            f"the cache: {_names(missing)}",
        )
    if extra:
        add(
            "extra", f"{len(extra)} tensors of the cache are not in the histograms: {_names(extra)}"
        )
    return out
