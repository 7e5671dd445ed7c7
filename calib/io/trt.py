"""TensorRT calibration caches (``TRT-<version>-<Algorithm>``, then ``<name>: <hex>``)."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import struct
from collections.abc import Mapping
from typing import IO, Any

from calib.io._safe import (
    Source,
    _check_layer_count,
    _check_line_name,
    _check_name,
    _label,
    _lines,
    _read_text,
    _real,
    _short,
    _write_text,
)

TRT_DEFAULT_HEADER = "TRT-8601-EntropyCalibration2"
TRT_ALGORITHMS = (
    "EntropyCalibration",
    "EntropyCalibration2",
    "MinMaxCalibration",
    "LegacyCalibration",
)
_TRT_HEADER = re.compile(r"TRT-([^-\s]+)-([A-Za-z][A-Za-z0-9_]*)")
_HEX = re.compile(r"[0-9a-fA-F]{1,8}")
# -- TensorRT calibration cache -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrtCache:
    """A parsed TensorRT calibration cache.

    Attributes
    ----------
    header : str
        The first line, e.g. ``"TRT-8601-EntropyCalibration2"``.
    version : int or None
        The TensorRT version number in the header (8601), None when it is not a number.
    algorithm : str
        The calibrator named in the header, e.g. ``"EntropyCalibration2"``.
    scales : dict of str to float
        Tensor name -> scale, in file order.
    amax : dict of str to float
        Tensor name -> ``scale * 127``.
    problems : tuple of str
        Things worth a look that do not stop reading: zero, negative, infinite or NaN
        scales, an unknown algorithm, no tensors.
    """

    header: str
    version: int | None
    algorithm: str
    scales: dict[str, float]
    amax: dict[str, float]
    problems: tuple[str, ...] = ()


def _parse_trt_header(line: str, what: str) -> tuple[int | None, str]:
    if not isinstance(line, str):
        raise ValueError(f"{what} must be a str such as {TRT_DEFAULT_HEADER!r}, got {line!r:.60}")
    m = _TRT_HEADER.fullmatch(line)
    if m is None:
        raise ValueError(
            f"{what}: the first line must be a TensorRT header TRT-<version>-<Algorithm> "
            f"(e.g. {TRT_DEFAULT_HEADER}), got {_short(line)!r}"
        )
    version = int(m.group(1)) if m.group(1).isdigit() else None
    return version, m.group(2)


def _trt_line(line: str, lineno: int, what: str) -> tuple[str, float]:
    name, sep, tail = line.rpartition(": ")
    if not sep:
        raise ValueError(
            f"{what}: line {lineno}: expected '<tensor name>: <8 hex digits>', got {_short(line)!r}"
        )
    digits = tail.strip()
    if not _HEX.fullmatch(digits):
        raise ValueError(
            f"{what}: line {lineno}: {_short(digits)!r} is not a float32 in hex "
            "(up to 8 hex digits, e.g. 3c008912)"
        )
    if not name:
        raise ValueError(f"{what}: line {lineno}: empty tensor name")
    return name, struct.unpack(">f", int(digits, 16).to_bytes(4, "big"))[0]


def _scale_problem(scale: float) -> str | None:
    if math.isnan(scale):
        return "NaN scale"
    if math.isinf(scale):
        return f"infinite scale ({scale})"
    if scale == 0:
        return "zero scale (amax 0: a dead tensor, or one that was never calibrated)"
    if scale < 0:
        return f"negative scale ({scale!r})"
    return None


def read_trt_cache_full(path_or_text_file: Source) -> TrtCache:
    """Read a TensorRT calibration cache with its header and a list of problems.

    Parameters
    ----------
    path_or_text_file : str, os.PathLike or file
        The cache (text or binary file object).

    Returns
    -------
    TrtCache
        Zero, negative, infinite and NaN scales are kept and listed in ``problems``.

    Raises
    ------
    ValueError
        Empty file, a missing or malformed header, a line that is not ``<name>: <hex>``
        (the message gives its line number), or a tensor named twice.

    Examples
    --------
    >>> import io, calib
    >>> buf = io.StringIO()
    >>> calib.write_trt_cache(buf, {"conv1": 2.54, "relu": 0.0})
    >>> cache = calib.read_trt_cache_full(io.StringIO(buf.getvalue()))
    >>> cache.version, cache.algorithm
    (8601, 'EntropyCalibration2')
    >>> cache.problems
    ("line 3: 'relu': zero scale (amax 0: a dead tensor, or one that was never calibrated)",)
    """
    what = _label(path_or_text_file)
    lines = _lines(_read_text(path_or_text_file, what))
    first, header = next(lines)  # _read_text refuses a file of whitespace only
    header = header.rstrip("\r").strip() if first == 1 else ""
    version, algorithm = _parse_trt_header(header, what)
    problems = [] if algorithm in TRT_ALGORITHMS else [f"header: unknown algorithm {algorithm!r}"]
    scales: dict[str, float] = {}
    seen: dict[str, int] = {}
    for lineno, raw in lines:
        line = raw.rstrip("\r")
        name, scale = _trt_line(line, lineno, what)
        if name in seen:
            raise ValueError(
                f"{what}: line {lineno}: tensor {name!r} is already on line {seen[name]}"
            )
        seen[name] = lineno
        scales[name] = scale
        _check_layer_count(len(scales), what)
        _check_name(name, f"{what}: line {lineno}")
        problem = _scale_problem(scale)
        if problem:
            problems.append(f"line {lineno}: {name!r}: {problem}")
    if not scales:
        problems.append("no tensor lines after the header")
    amax = {name: scale * 127.0 for name, scale in scales.items()}
    return TrtCache(
        header=header, version=version, algorithm=algorithm, scales=scales, amax=amax,
        problems=tuple(problems),
    )  # fmt: skip


def read_trt_cache(path_or_text_file: Source) -> dict[str, float]:
    """Tensor name -> amax (``scale * 127``) from a TensorRT calibration cache.

    See :func:`read_trt_cache_full` for the header and the problems (zero, NaN, inf scales)
    that this function passes through without comment.

    Examples
    --------
    >>> import io, calib
    >>> buf = io.StringIO()
    >>> calib.write_trt_cache(buf, {"conv1": 2.54, "relu": 0.0})
    >>> amax = calib.read_trt_cache(io.StringIO(buf.getvalue()))
    >>> round(amax["conv1"], 6), amax["relu"]
    (2.54, 0.0)
    """
    return read_trt_cache_full(path_or_text_file).amax


def _scale_hex(amax: Any, name: str) -> str:
    value = _real(amax, f"amax of {name!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"amax of {name!r} must be finite and non-negative, got {amax!r}")
    try:
        return struct.pack(">f", abs(value) / 127.0).hex()
    except OverflowError:
        raise ValueError(f"amax of {name!r} is too large for a float32 scale: {amax!r}") from None


def write_trt_cache(
    path: str | os.PathLike | IO,
    amax_by_name: Mapping[str, float],
    header: str = TRT_DEFAULT_HEADER,
) -> None:
    """Write a TensorRT calibration cache.

    Parameters
    ----------
    path : str, os.PathLike or file
        Where to write.
    amax_by_name : dict of str to float
        Tensor name -> amax (finite, >= 0), written in this order as
        ``<name>: <8 lowercase hex digits>``, the big-endian float32 bits of ``amax / 127``.
    header : str
        The first line, ``TRT-<version>-<Algorithm>``.

    Raises
    ------
    ValueError
        A malformed header, an empty name or one holding a line break, an amax that is
        negative, NaN, infinite or too large for float32.

    Examples
    --------
    >>> import io, calib
    >>> buf = io.StringIO()
    >>> calib.write_trt_cache(buf, {"conv1": 2.54, "relu": 0.0})
    >>> print(buf.getvalue(), end="")
    TRT-8601-EntropyCalibration2
    conv1: 3ca3d70a
    relu: 00000000
    """
    _parse_trt_header(header, "header")
    if not isinstance(amax_by_name, Mapping):
        raise ValueError(f"amax_by_name must be a dict, got {type(amax_by_name).__name__}")
    lines = [header]
    for name, amax in amax_by_name.items():
        _check_line_name(name, "amax_by_name")
        lines.append(f"{name}: {_scale_hex(amax, name)}")
    _write_text(path, "\n".join(lines) + "\n")
