"""ONNX Runtime calibration tables: ``calibration.json`` and ``calibration.cache``."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from calib.histogram import Histogram
from calib.io._safe import (
    Source,
    _check_layer_count,
    _check_line_name,
    _check_name,
    _histogram,
    _json_doc,
    _label,
    _lines,
    _number_list,
    _read_text,
    _real,
    _short,
    _write_text,
)

ORT_METHODS = ("MinMax", "Entropy", "Percentile", "Distribution")
_F32_MAX = float(np.finfo(np.float32).max)
# -- ONNX Runtime calibration tables ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OrtCalibration:
    """A parsed ONNX Runtime ``calibration.json``.

    Attributes
    ----------
    ranges : dict of str to (float, float)
        Tensor name -> (lowest, highest), in file order.
    histograms : dict of str to Histogram
        The tensors that carry a histogram (entropy, percentile, distribution methods).
    method : str or None
        The calibration method named in the file (``"Entropy"``), if any.
    problems : tuple of str
        Things skipped, e.g. a histogram without edges.
    """

    ranges: dict[str, tuple[float, float]]
    histograms: dict[str, Histogram]
    method: str | None = None
    problems: tuple[str, ...] = ()


def _unwrap(value: Any, key: str, where: str) -> Any:
    """The payload of a ``{"CLS": "numpy.array", "data": ...}`` wrapper, or value itself."""
    if not isinstance(value, dict):
        return value
    if value.get("CLS") != "numpy.array" or "data" not in value:
        raise ValueError(
            f"{where}: {key!r} must be a number, a list or {{'CLS': 'numpy.array', 'data': ...}}"
        )
    return value["data"]


def _ort_float(value: Any, key: str, where: str) -> float:
    v = _unwrap(value, key, where)
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    if isinstance(v, list):
        raise ValueError(
            f"{where}: {key!r} holds {len(v)} values; per-channel ranges are "
            "not supported, expected one number"
        )
    x = _real(v, f"{where}: {key!r}")
    if not math.isfinite(x):
        raise ValueError(f"{where}: {key!r} must be finite, got {x}")
    return x


@dataclasses.dataclass(frozen=True)
class _OrtEntry:
    """One tensor of a ``calibration.json``: its range, and its histogram if it has one."""

    lowest: float
    highest: float
    histogram: Histogram | None = None
    problem: str | None = None  # why the entry's histogram was skipped


def _ort_entry(entry: Any, where: str) -> _OrtEntry:
    if isinstance(entry, list) and len(entry) == 2:
        entry = {"lowest": entry[0], "highest": entry[1]}
    if not isinstance(entry, dict) or entry.get("CLS", "TensorData") != "TensorData":
        raise ValueError(
            f"{where}: expected a TensorData object or [lowest, highest], got {_short(repr(entry))}"
        )
    for key in ("lowest", "highest"):
        if key not in entry:
            raise ValueError(f"{where}: no {key!r} (a TensorData needs lowest and highest)")
    lo = _ort_float(entry["lowest"], "lowest", where)
    hi = _ort_float(entry["highest"], "highest", where)
    if lo > hi:
        raise ValueError(f"{where}: lowest {lo!r} is above highest {hi!r}")
    if "hist" not in entry:
        return _OrtEntry(lo, hi)
    edges = entry.get("hist_edges", entry.get("bins"))
    if edges is None or isinstance(_unwrap(edges, "hist_edges", where), (int, float)):
        return _OrtEntry(lo, hi, problem=f"{where}: 'hist' without 'hist_edges'; histogram skipped")
    counts = _number_list(_unwrap(entry["hist"], "hist", where), "hist", where)
    edges = _number_list(_unwrap(edges, "hist_edges", where), "hist_edges", where)
    return _OrtEntry(lo, hi, histogram=_histogram(counts, edges, where))


def _ort_method(raw: Any) -> str | None:
    """ "CalibrationMethod.Entropy" (maybe wrapped in {"CLS": ..., "value": ...}) -> "Entropy"."""
    if isinstance(raw, dict):
        raw = raw.get("value")
    if not isinstance(raw, str):
        return None
    return raw.rpartition(".")[2] or None


def read_ort_calibration_json(path_or_text_file: Source) -> OrtCalibration:
    """Read ONNX Runtime's ``calibration.json`` (``write_calibration_table``).

    Parameters
    ----------
    path_or_text_file : str, os.PathLike or file
        The JSON file: a ``TensorsData`` object, or a plain ``{name: TensorData}`` or
        ``{name: [lowest, highest]}`` (see the module docstring).

    Returns
    -------
    OrtCalibration
        Ranges of every tensor and the histograms of those that have one.

    Raises
    ------
    ValueError
        Invalid JSON, no tensors, a tensor without lowest/highest, per-channel (list)
        ranges, lowest above highest, non-finite values, a malformed histogram.

    Examples
    --------
    >>> import io, calib
    >>> h = calib.Histogram([1, 2, 1], [-1.0, -0.5, 0.5, 1.0])
    >>> buf = io.StringIO()
    >>> calib.write_ort_calibration_json(
    ...     buf, {"x": (-1.0, 1.0), "y": (0.0, 6.0)}, {"x": h}, method="Entropy"
    ... )
    >>> got = calib.read_ort_calibration_json(io.StringIO(buf.getvalue()))
    >>> got.ranges, got.method
    ({'x': (-1.0, 1.0), 'y': (0.0, 6.0)}, 'Entropy')
    >>> got.histograms["x"] == h
    True
    """
    what = _label(path_or_text_file)
    doc = _json_doc(_read_text(path_or_text_file, what), what)
    if not isinstance(doc, dict):
        raise ValueError(f"{what}: expected a JSON object of tensor name -> TensorData")
    method = None
    if doc.get("CLS") == "TensorsData":
        method, doc = _ort_method(doc.get("calibration_method")), doc.get("data")
    if not isinstance(doc, dict) or not doc:
        raise ValueError(f"{what}: no tensors (expected an object of tensor name -> TensorData)")
    _check_layer_count(len(doc), what)
    ranges, hists, problems = {}, {}, []
    for name, raw in doc.items():
        _check_name(name, what)
        entry = _ort_entry(raw, f"{what}: tensor {name!r}")
        ranges[name] = (entry.lowest, entry.highest)
        if entry.histogram is not None:
            hists[name] = entry.histogram
        if entry.problem:
            problems.append(entry.problem)
    return OrtCalibration(ranges, hists, method, tuple(problems))


def _f32(x: float, what: str) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        raise ValueError(f"{what} is too large for float32: {x!r}") from None


def _np_json(data: Any, dtype: str) -> dict:
    return {"data": data, "dtype": dtype, "CLS": "numpy.array"}


def _ort_range(name: str, rng: Any) -> tuple[float, float]:
    try:
        lo, hi = rng
    except (TypeError, ValueError):
        raise ValueError(
            f"ranges[{name!r}] must be a pair (lowest, highest), got {rng!r}"
        ) from None
    lo = _f32(_real(lo, f"lowest of {name!r}"), f"lowest of {name!r}")
    hi = _f32(_real(hi, f"highest of {name!r}"), f"highest of {name!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"ranges[{name!r}] must be finite with lowest <= highest, got {rng!r}")
    return lo, hi


def _ort_hist_json(name: str, h: Any) -> dict:
    if not isinstance(h, Histogram):
        raise ValueError(f"histograms[{name!r}] must be a Histogram, got {type(h).__name__}")
    if np.abs(h.edges).max() > _F32_MAX:
        raise ValueError(f"histograms[{name!r}]: edges are too large for float32")
    edges = h.edges.astype(np.float32)
    if not np.all(np.diff(edges) > 0):
        raise ValueError(f"histograms[{name!r}]: edges are not distinct in float32")
    return {
        "hist": _np_json(h.counts.tolist(), str(h.counts.dtype)),
        "hist_edges": _np_json(edges.tolist(), "float32"),
    }


def write_ort_calibration_json(
    path: str | os.PathLike | IO,
    ranges: Mapping[str, tuple[float, float]],
    histograms: Mapping[str, Histogram] | None = None,
    method: str | None = None,
) -> None:
    """Write a ``calibration.json`` as ONNX Runtime's ``write_calibration_table`` does.

    Parameters
    ----------
    path : str, os.PathLike or file
        Where to write.
    ranges : dict of str to (float, float)
        Tensor name -> (lowest, highest). Stored as float32, as ONNX Runtime holds them.
    histograms : dict of str to Histogram, optional
        Histograms of some of those tensors (counts as they are, edges as float32).
    method : str, optional
        One of ``"MinMax"``, ``"Entropy"``, ``"Percentile"``, ``"Distribution"``.

    Raises
    ------
    ValueError
        A histogram for a tensor without a range, a range that is not a finite
        ``lowest <= highest`` pair, edges that float32 cannot keep apart, an unknown method.

    Examples
    --------
    >>> import io, calib
    >>> h = calib.Histogram([1, 2, 1], [-1.0, -0.5, 0.5, 1.0])
    >>> buf = io.StringIO()
    >>> calib.write_ort_calibration_json(
    ...     buf, {"x": (-1.0, 1.0), "y": (0.0, 6.0)}, {"x": h}, method="Entropy"
    ... )
    >>> got = calib.read_ort_calibration_json(io.StringIO(buf.getvalue()))
    >>> got.ranges, got.method
    ({'x': (-1.0, 1.0), 'y': (0.0, 6.0)}, 'Entropy')
    >>> got.histograms["x"] == h
    True
    """
    histograms = {} if histograms is None else histograms
    if not isinstance(ranges, Mapping) or not isinstance(histograms, Mapping):
        raise ValueError("ranges and histograms must be dicts keyed by tensor name")
    extra = [name for name in histograms if name not in ranges]
    if extra:
        raise ValueError(f"histograms has tensors with no range: {extra[:5]}")
    if method is not None and method not in ORT_METHODS:
        raise ValueError(f"method must be one of {ORT_METHODS} or None, got {method!r}")
    data = {}
    for name, rng in ranges.items():
        if not isinstance(name, str):
            raise ValueError(f"ranges: tensor names must be str, got {name!r}")
        lo, hi = _ort_range(name, rng)
        entry = {"lowest": _np_json(lo, "float32"), "highest": _np_json(hi, "float32")}
        if name in histograms:
            entry |= _ort_hist_json(name, histograms[name])
        data[name] = entry | {"CLS": "TensorData"}
    doc: dict[str, Any] = {"CLS": "TensorsData", "data": data}
    if method is not None:
        doc["calibration_method"] = {
            "CLS": "CalibrationMethod",
            "value": f"CalibrationMethod.{method}",
        }
    _write_text(path, json.dumps(doc, allow_nan=False))


def read_ort_calibration_cache(path_or_text_file: Source) -> dict[str, float]:
    """Read ONNX Runtime's ``calibration.cache``: ``<tensor name> <value>`` lines.

    The name is everything before the last run of whitespace, so names may hold spaces.
    Recent ONNX Runtime writes ``max(highest, lowest)``; older versions wrote
    ``max(|lowest|, |highest|)``, the amax.

    Raises
    ------
    ValueError
        Empty file, a line without a value, a value that is not a finite number (the
        message gives the line number), a tensor named twice.

    Examples
    --------
    >>> import io, calib
    >>> buf = io.StringIO()
    >>> calib.write_ort_calibration_cache(buf, {"conv1": 2.5, "my tensor": 0.75})
    >>> calib.read_ort_calibration_cache(io.StringIO(buf.getvalue()))
    {'conv1': 2.5, 'my tensor': 0.75}
    """
    what = _label(path_or_text_file)
    values: dict[str, float] = {}
    seen: dict[str, int] = {}
    for lineno, raw in _lines(_read_text(path_or_text_file, what)):
        line = raw.rstrip()
        if not line.strip():
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise ValueError(
                f"{what}: line {lineno}: expected '<tensor name> <value>', got {_short(line)!r}"
            )
        name, token = parts
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"{what}: line {lineno}: {_short(token)!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{what}: line {lineno}: value of {name!r} is {token}, not finite")
        if name in seen:
            raise ValueError(
                f"{what}: line {lineno}: tensor {name!r} is already on line {seen[name]}"
            )
        seen[name] = lineno
        values[name] = value
        _check_layer_count(len(values), what)
        _check_name(name, f"{what}: line {lineno}")
    return values


def write_ort_calibration_cache(path: str | os.PathLike | IO, values: Mapping[str, float]) -> None:
    """Write a ``calibration.cache``: one ``<tensor name> <value>`` line per tensor, in order.

    Values are written with Python's shortest round-tripping repr.

    Raises
    ------
    ValueError
        An empty name, one with a line break or ending in whitespace (it would not read
        back), or a value that is not a finite real number.

    Examples
    --------
    >>> import io, calib
    >>> buf = io.StringIO()
    >>> calib.write_ort_calibration_cache(buf, {"conv1": 2.5, "my tensor": 0.75})
    >>> print(buf.getvalue(), end="")
    conv1 2.5
    my tensor 0.75
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"values must be a dict, got {type(values).__name__}")
    lines = []
    for name, value in values.items():
        _check_line_name(name, "values")
        if name != name.rstrip():
            raise ValueError(f"values: tensor name {name!r} ends in whitespace")
        x = _real(value, f"value of {name!r}")
        if not math.isfinite(x):
            raise ValueError(f"value of {name!r} must be finite, got {value!r}")
        lines.append(f"{name} {x!r}")
    _write_text(path, "".join(line + "\n" for line in lines))
