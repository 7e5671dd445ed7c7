"""The table as CSV and JSON records, and as TensorRT / ONNX Runtime calibration files."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from calib import io as cio
from calib.report._table import CLI_COLUMNS, LayerRow, table_spec

if TYPE_CHECKING:
    from calib.report._caches import CacheMatch


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


def json_value(x: Any) -> Any:
    """A value as the exports' strict JSON holds it (strict parsers refuse NaN and
    Infinity): nan becomes null, inf the string ``"inf"`` (``"-inf"``); the rest as it is.
    The Layers page's JSON and the command line's ``--format json`` both write by it."""
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def records_json(recs: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> str:
    """Strict JSON (no NaN): ``{"settings": {...}, "layers": [...]}``; nan becomes null and
    inf the string ``"inf"`` (:func:`json_value`)."""
    layers = [{k: json_value(v) for k, v in rec.items()} for rec in recs]
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
    rows: Sequence[LayerRow], header: str = cio.TRT_DEFAULT_HEADER
) -> tuple[str, list[str]]:
    """A TensorRT calibration cache of the rows (scale = amax / 127), and the skipped names:
    those without a scale (:func:`exportable_amax`), and names a line of the cache cannot
    hold (empty, or holding a line break)."""
    amax, skipped = exportable_amax(rows)
    for name in [n for n in amax if not n or "\n" in n or "\r" in n]:
        del amax[name]
        skipped.append(name)
    buf = io.StringIO()
    cio.write_trt_cache(buf, amax, header=header)
    return buf.getvalue(), skipped


def ort_json_text(rows: Sequence[LayerRow], method: Any = "entropy") -> tuple[str, list[str]]:
    """An ONNX Runtime ``calibration.json`` with ``(lowest, highest) = (-amax, amax)`` (the
    symmetric quantizer's range), and the skipped names. ``method``: a method name, a
    :class:`calib.Spec` or its text."""
    amax, skipped = exportable_amax(rows)
    name = table_spec(method).method
    ort_method = {"entropy": "Entropy", "percentile": "Percentile", "max": "MinMax"}.get(name)
    buf = io.StringIO()
    cio.write_ort_calibration_json(buf, {k: (-a, a) for k, a in amax.items()}, method=ort_method)
    return buf.getvalue(), skipped


def cli_records(rows: Sequence[LayerRow]) -> list[dict]:
    """``rows`` as the command line's table; ValueError when the method refused a tensor."""
    for row in rows:
        if row.error:
            raise ValueError(f"layer {row.layer!r}: {row.error}")
    return [{c: r[c] for c in CLI_COLUMNS} for r in records(rows)]
