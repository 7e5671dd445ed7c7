"""A calibration cache or table the user brings, read and checked against calib's thresholds."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import statistics
from collections.abc import Sequence

import numpy as np

from calib import io as cio
from calib.report._table import DISAGREE_RATIO, EXTREME_RATIO, FLOAT16_MAX, LayerRow


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
        ort = cio.read_ort_calibration_json(_named(data, name))
        amax = {k: max(abs(lo), abs(hi)) for k, (lo, hi) in ort.ranges.items()}
        keys = {k: repr(a) for k, a in amax.items()}
        method = ort.method or ""
        return CachedThresholds(
            kind="onnxruntime json", name=name, amax=amax, header=method, version=None,
            algorithm=method, problems=ort.problems, scale_keys=keys,
        )  # fmt: skip
    head = data.lstrip()[:4]
    if head == b"TRT-":
        trt = cio.read_trt_cache_full(_named(data, name))
        keys = {k: _f32_hex(s) for k, s in trt.scales.items()}
        return CachedThresholds(
            kind="tensorrt", name=name, amax=dict(trt.amax), header=trt.header,
            version=trt.version, algorithm=trt.algorithm, problems=trt.problems,
            scale_keys=keys,
        )  # fmt: skip
    try:
        values = cio.read_ort_calibration_cache(_named(data, name))
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
        ratio, disagree = math.nan, True
    elif ours == 0 and theirs == 0:
        ratio, disagree = math.nan, False
    else:
        ratio = theirs / ours if ours != 0 else math.copysign(math.inf, theirs)
        ok = math.isfinite(ratio) and ratio > 0
        disagree = not ok or max(ratio, 1 / ratio) > DISAGREE_RATIO
    return CacheMatch(
        layer=layer, calib_amax=ours, cached_amax=theirs, ratio=ratio, disagree=disagree
    )


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
