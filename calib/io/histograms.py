"""Histogram files: the project's multi-layer ``.npz``, single ``.npy`` / ``.csv`` / ``.json``
histograms and raw samples. The formats are documented in :mod:`calib.io`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from calib import limits
from calib.histogram import Histogram
from calib.io._safe import (
    Source,
    _check_layer_count,
    _check_name,
    _decode,
    _histogram,
    _json_doc,
    _label,
    _load_npy,
    _load_npz,
    _number_list,
    _read_bytes,
    _short,
    _write_bytes,
)

NPZ_FORMAT = "calib-histograms"
NPZ_VERSION = 1
_INT = re.compile(r"[+-]?\d+")
_CSV_COLUMNS = ("counts", "edges", "lo", "hi")
_CSV_LAYOUTS = ({"counts"}, {"counts", "edges"}, {"lo", "hi", "counts"})


def _npz_string(arrays: dict[str, np.ndarray], key: str, what: str) -> str:
    a = arrays[key]
    if a.ndim != 0 or a.dtype.kind != "U":
        raise ValueError(f"{what}: {key!r} must be a 0-d unicode array, got {a.dtype} {a.shape}")
    return str(a[()])


def _npz_check_marker(arrays: dict[str, np.ndarray], what: str) -> None:
    fmt = _npz_string(arrays, "format", what)
    if fmt != NPZ_FORMAT:
        raise ValueError(f"{what}: format is {_short(fmt)!r}, expected {NPZ_FORMAT!r}")
    if "version" not in arrays:
        raise ValueError(f"{what}: no 'version' key (this calib reads version {NPZ_VERSION})")
    v = arrays["version"]
    if v.ndim != 0 or v.dtype.kind not in "iu":
        raise ValueError(f"{what}: 'version' must be a 0-d integer array, got {v.dtype} {v.shape}")
    if int(v) != NPZ_VERSION:
        raise ValueError(
            f"{what}: version {int(v)} is not readable (this calib reads {NPZ_VERSION})"
        )


def _npz_names(arrays: dict[str, np.ndarray], what: str) -> list[str]:
    if "names" not in arrays:
        raise ValueError(f"{what}: no 'names' key (the layer names, a 1-D unicode array)")
    a = arrays["names"]
    if a.ndim != 1 or a.dtype.kind != "U":
        raise ValueError(f"{what}: 'names' must be a 1-D unicode array, got {a.dtype} {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what}: 'names' is empty: the file holds no layers")
    _check_layer_count(a.size, what)
    names = [_check_name(str(n), f"{what}: 'names'") for n in a]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: duplicate layer name {name!r} in 'names'")
        seen.add(name)
    return names


def _npz_meta(arrays: dict[str, np.ndarray], what: str) -> dict:
    if "meta" not in arrays:
        return {}
    meta = _json_doc(_npz_string(arrays, "meta", what), f"{what}: 'meta'")
    if not isinstance(meta, dict):
        raise ValueError(f"{what}: 'meta' must hold a JSON object, got {type(meta).__name__}")
    return meta


def _parse_calib_npz(arrays: dict[str, np.ndarray], what: str) -> tuple[dict, dict]:
    _npz_check_marker(arrays, what)
    names = _npz_names(arrays, what)
    n = len(names)
    known = {"format", "version", "names", "meta", "trace_samples", "trace_methods"}
    known |= {f"{kind}_{i}" for kind in ("counts", "edges", "trace") for i in range(n)}
    unknown = [k for k in arrays if k not in known]
    if unknown:
        raise ValueError(
            f"{what}: unexpected keys {unknown[:5]} for {n} layers; a version-1 file holds "
            "format, version, names, counts_<i>, edges_<i> and optionally meta and the "
            "trace keys"
        )
    hists = {}
    for i, name in enumerate(names):
        for key in (f"counts_{i}", f"edges_{i}"):
            if key not in arrays:
                raise ValueError(f"{what}: layer {name!r} (index {i}) has no {key!r} array")
        layer = f"{what}: layer {name!r}"
        hists[name] = _histogram(arrays[f"counts_{i}"], arrays[f"edges_{i}"], layer)
    return hists, _npz_meta(arrays, what)


def _plain_layers(arrays: dict[str, np.ndarray], what: str) -> dict[str, dict[str, Any]]:
    """Group a plain npz's keys by layer: {layer: {"counts": ..., "edges": ..., "bare": ...}}."""
    layers: dict[str, dict[str, Any]] = {}
    for key, a in arrays.items():
        layer, dot, kind = key.rpartition(".")
        if not dot or kind not in ("counts", "edges"):
            layer, kind = key, "bare"
        parts = layers.setdefault(layer, {})
        if parts and ("bare" in parts or kind == "bare"):
            raise ValueError(
                f"{what}: layer {layer!r} is given both as {layer!r} and as "
                f"{layer + '.counts'!r}/.edges; keep one"
            )
        parts[kind] = a
    return layers


def _parse_plain_npz(arrays: dict[str, np.ndarray], what: str) -> dict[str, Histogram]:
    if "names" in arrays or "version" in arrays:
        raise ValueError(
            f"{what} has 'names'/'version' keys but no 'format' key: a calib histogram file "
            f"needs format={NPZ_FORMAT!r}"
        )
    hists = {}
    layers = _plain_layers(arrays, what)
    _check_layer_count(len(layers), what)
    for layer, parts in layers.items():
        _check_name(layer, what)
        if "edges" in parts and "counts" not in parts:
            raise ValueError(f"{what}: {layer + '.edges'!r} has no matching {layer + '.counts'!r}")
        counts = parts.get("bare", parts.get("counts"))
        hists[layer] = _histogram(counts, parts.get("edges"), f"{what}: layer {layer!r}")
    if not hists:
        raise ValueError(f"{what} holds no arrays")
    return hists


def _parse_npz(data: bytes, what: str) -> tuple[dict[str, Histogram], dict]:
    arrays = _load_npz(data, what)
    if "format" in arrays:
        return _parse_calib_npz(arrays, what)
    return _parse_plain_npz(arrays, what), {}


@dataclasses.dataclass(frozen=True)
class Trace:
    """One tensor's thresholds as a collection went, batch by batch.

    Attributes
    ----------
    samples : int array
        Samples seen after each batch (cumulative).
    amax : dict of str to float array
        For each method (``"max"``, ``"percentile"``, ``"entropy:<variant>"``), the amax
        on the histogram collected so far, after each batch (0 while the tensor has held
        only zeros; NaN where the method could not run on it).
    """

    samples: np.ndarray
    amax: dict[str, np.ndarray]


def _trace_arrays(hists: Mapping[str, Histogram], traces: Mapping[str, Trace]) -> dict:
    if not traces:
        return {}
    first = next(iter(traces.values()))
    methods = list(first.amax)
    samples = np.asarray(first.samples, dtype=np.int64)
    out = {"trace_samples": samples, "trace_methods": np.array(methods, dtype=str)}
    for i, name in enumerate(hists):
        t = traces.get(name)
        if t is None:
            continue
        if list(t.amax) != methods or not np.array_equal(t.samples, samples):
            raise ValueError(f"traces: {name!r} has other methods or samples than the rest")
        out[f"trace_{i}"] = np.array([t.amax[m] for m in methods], dtype=np.float64)
    return out


def _parse_traces(arrays: dict[str, np.ndarray], names: list[str], what: str) -> dict:
    if "trace_samples" not in arrays:
        return {}
    samples, methods = arrays["trace_samples"], arrays.get("trace_methods")
    if samples.ndim != 1 or samples.dtype.kind not in "iu" or methods is None:
        raise ValueError(f"{what}: trace_samples must be 1-D integers, with trace_methods")
    if methods.ndim != 1 or methods.dtype.kind != "U":
        raise ValueError(f"{what}: trace_methods must be a 1-D unicode array")
    # sizes first: each method is a loop over every tensor for whoever reads the trace
    if methods.size > limits.MAX_TRACE_METHODS:
        raise ValueError(limits.exceeds(f"{what}: trace_methods names", methods.size,
                                        "MAX_TRACE_METHODS", " methods"))  # fmt: skip
    if samples.size > limits.MAX_BATCHES:
        raise ValueError(limits.exceeds(f"{what}: trace_samples records", samples.size,
                                        "MAX_BATCHES", " batches"))  # fmt: skip
    if methods.size == 0 or samples.size == 0:
        raise ValueError(f"{what}: a trace needs at least one method and one batch")
    named = [_check_name(str(m), f"{what}: trace_methods") for m in methods]
    if len(set(named)) != len(named):
        twice = next(m for m in named if named.count(m) > 1)
        raise ValueError(f"{what}: trace_methods names {_short(twice)!r} twice")
    if np.any(samples < 0) or np.any(np.diff(samples) < 0):
        raise ValueError(f"{what}: trace_samples must be counts that never decrease")
    out = {}
    for i, name in enumerate(names):
        a = arrays.get(f"trace_{i}")
        if a is None:
            continue
        if a.shape != (methods.size, samples.size) or a.dtype.kind != "f":
            raise ValueError(
                f"{what}: trace_{i} ({name!r}) must be float, {methods.size} methods x "
                f"{samples.size} batches, got {a.dtype} {a.shape}"
            )
        out[name] = Trace(samples.copy(), {m: a[j].copy() for j, m in enumerate(named)})
    return out


def _npz_arrays(hists: Mapping[str, Histogram], meta: Mapping | None) -> dict[str, np.ndarray]:
    if not isinstance(hists, Mapping) or not hists:
        raise ValueError(f"hists must be a non-empty dict of name -> Histogram, got {hists!r:.80}")
    arrays = {"format": np.array(NPZ_FORMAT), "version": np.array(NPZ_VERSION, dtype=np.int64)}
    for i, (name, h) in enumerate(hists.items()):
        if not isinstance(name, str):
            raise ValueError(f"hists: layer names must be str, got {name!r}")
        if name.endswith("\0"):
            raise ValueError(
                f"hists: layer name {name!r} ends in a NUL character, which "
                ".npz unicode arrays cannot keep"
            )
        if not isinstance(h, Histogram):
            raise ValueError(f"hists[{name!r}] must be a Histogram, got {type(h).__name__}")
        arrays[f"counts_{i}"] = np.asarray(h.counts)
        arrays[f"edges_{i}"] = np.asarray(h.edges)
    arrays["names"] = np.array(list(hists), dtype=str)
    if meta is not None:
        arrays["meta"] = np.array(_meta_json(meta))
    return arrays


def _meta_json(meta: Any) -> str:
    if not isinstance(meta, Mapping):
        raise ValueError(f"meta must be a dict (a JSON object), got {type(meta).__name__}")
    try:
        text = json.dumps(dict(meta), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta must be JSON-serialisable (no NaN or inf): {exc}") from None
    if len(text) > limits.MAX_META_CHARS:  # never write what no reader takes
        raise ValueError(
            limits.exceeds("meta: the JSON document has", len(text), "MAX_META_CHARS",
                           " characters")
        )  # fmt: skip
    return text


def save_histograms(
    path: str | os.PathLike | IO[bytes],
    hists: Mapping[str, Histogram],
    meta: Mapping[str, Any] | None = None,
    traces: Mapping[str, Trace] | None = None,
) -> None:
    """Write layers of histograms to the project's ``.npz`` format (version 1).

    Parameters
    ----------
    path : str, os.PathLike or binary file
        Where to write. A path is used as given (no ``.npz`` is appended).
    hists : dict of str to Histogram
        The layers, in the order they are to be read back. Any unicode name except one
        ending in ``"\\0"``.
    meta : dict, optional
        Provenance stored as a JSON object (model, data set, tool, ...).
    traces : dict of str to Trace, optional
        The thresholds after each batch of a collection (``collect(..., convergence=True)``),
        for some or all of the layers, all with the same methods and samples.

    Raises
    ------
    ValueError
        Empty ``hists``, a name that is not a str, a value that is not a Histogram, or
        ``meta`` that JSON cannot hold.

    Examples
    --------
    >>> import io, calib
    >>> buf = io.BytesIO()
    >>> relu = calib.as_histogram([4, 0, 1])
    >>> calib.save_histograms(buf, {"relu": relu}, meta={"model": "net.onnx"})
    >>> _ = buf.seek(0)
    >>> calib.load_histograms(buf)
    {'relu': Histogram(3 bins, unsigned, [0, 3], total=5)}
    """
    arrays = _npz_arrays(hists, meta)
    arrays.update(_trace_arrays(hists, traces or {}))
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **arrays)
    _write_bytes(path, buf.getvalue())


def load_histograms(path: Source) -> dict[str, Histogram]:
    """Read a multi-layer histogram ``.npz`` (the project's format or a plain one).

    Parameters
    ----------
    path : str, os.PathLike or binary file
        The ``.npz`` file (see the module docstring for both layouts).

    Returns
    -------
    dict of str to Histogram
        The layers in file order.

    Raises
    ------
    ValueError
        A file that is too large, not an ``.npz``, holds object (pickled) arrays, or breaks
        the format: the message names the key or layer.

    Examples
    --------
    >>> import io, calib
    >>> buf = io.BytesIO()
    >>> relu = calib.as_histogram([4, 0, 1])
    >>> calib.save_histograms(buf, {"relu": relu}, meta={"model": "net.onnx"})
    >>> _ = buf.seek(0)
    >>> calib.load_histograms(buf)
    {'relu': Histogram(3 bins, unsigned, [0, 3], total=5)}
    """
    what = _label(path)
    return _parse_npz(_read_bytes(path, what), what)[0]


def load_histograms_and_meta(path: Source) -> tuple[dict[str, Histogram], dict]:
    """:func:`load_histograms` and :func:`load_histograms_meta` of one reading of the file."""
    what = _label(path)
    return _parse_npz(_read_bytes(path, what), what)


def load_histograms_meta(path: Source) -> dict:
    """The provenance (``meta``) of a histogram ``.npz``; ``{}`` when it has none.

    The whole file is validated, as :func:`load_histograms` does.

    Examples
    --------
    >>> import io, calib
    >>> buf = io.BytesIO()
    >>> relu = calib.as_histogram([4, 0, 1])
    >>> calib.save_histograms(buf, {"relu": relu}, meta={"model": "net.onnx"})
    >>> _ = buf.seek(0)
    >>> calib.load_histograms_meta(buf)
    {'model': 'net.onnx'}
    """
    what = _label(path)
    return _parse_npz(_read_bytes(path, what), what)[1]


def load_convergence(path: Source) -> dict[str, Trace]:
    """The thresholds after each batch that a collection recorded, per tensor (``{}`` when
    the file has none; a plain ``.npz`` has none).

    The whole file is validated, as :func:`load_histograms` does.

    Examples
    --------
    >>> import io, calib
    >>> buf = io.BytesIO()
    >>> relu = calib.as_histogram([4, 0, 1])
    >>> calib.save_histograms(buf, {"relu": relu}, meta={"model": "net.onnx"})
    >>> _ = buf.seek(0)
    >>> calib.load_convergence(buf)  # saved without traces
    {}
    """
    what = _label(path)
    arrays = _load_npz(_read_bytes(path, what), what)
    if "format" not in arrays:
        _parse_plain_npz(arrays, what)
        return {}
    _parse_calib_npz(arrays, what)
    return _parse_traces(arrays, _npz_names(arrays, what), what)


# -- single histograms and samples -------------------------------------------------------------


def _file_name(src: Any, name: str | None) -> str:
    if name is not None:
        if not isinstance(name, str):
            raise ValueError(f"name must be a str, got {type(name).__name__}")
        return name
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    src_name = getattr(src, "name", None)
    if isinstance(src_name, str):
        return src_name
    raise ValueError("name is needed to tell the format of a file object (e.g. 'conv1.npy')")


def _rows_histogram(
    lo: np.ndarray, hi: np.ndarray, counts: np.ndarray, what: str, row: Callable[[int], str]
) -> Histogram:
    """A Histogram from per-bin (lo, hi, count) of contiguous bins; row(i) names row i."""
    lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    gap = np.flatnonzero(hi[:-1] != lo[1:])
    if gap.size:
        i = int(gap[0])
        raise ValueError(
            f"{what}: bins must be contiguous, but hi on {row(i)} ({hi[i]!r}) differs from "
            f"lo on {row(i + 1)} ({lo[i + 1]!r})"
        )
    return _histogram(counts, np.append(lo, hi[-1:]), what)


def _npy_histogram(data: bytes, what: str) -> Histogram:
    a = _load_npy(data, what)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{what}: expected a numeric array, got dtype {a.dtype}")
    if a.ndim == 1:
        return _histogram(a, None, what)
    if a.ndim == 2 and a.shape[1] == 3:
        return _rows_histogram(a[:, 0], a[:, 1], a[:, 2], what, lambda i: f"row {i}")
    raise ValueError(
        f"{what}: expected a 1-D array of counts or an (N, 3) array of (lo, hi, count) rows, "
        f"got shape {a.shape}"
    )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _csv_cells_bound(text: str, what: str) -> None:
    """Refuse a CSV of more than MAX_CSV_CELLS cells, counted as an upper bound (commas and
    line ends) before any row is split into a list of cells."""
    cells = text.count(",") + text.count("\n") + 1
    if cells > limits.MAX_CSV_CELLS:
        raise ValueError(
            limits.exceeds(f"{what} holds up to (counting commas and line ends)", cells,
                           "MAX_CSV_CELLS", " cells")
        )  # fmt: skip


def _csv_rows(text: str, what: str, known: tuple[str, ...]) -> tuple[list | None, list]:
    """(header or None, [(line number, cells)]) of a CSV; comment lines are dropped."""
    _csv_cells_bound(text, what)
    reader = csv.reader(io.StringIO(text), strict=True)
    header, rows = None, []
    try:
        for cells in reader:
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if cells[0].startswith("#"):
                named = [cells[0][1:].strip(), *cells[1:]]
                if not rows and header is None and all(c.lower() in known for c in named):
                    header = named
                continue
            if header is None and not rows and not any(_is_number(c) for c in cells if c):
                header = cells
                continue
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise ValueError(f"{what}: line {reader.line_num}: {exc}") from None
    return header, rows


def _csv_layout(header: list | None, rows: list, what: str) -> list[str]:
    if header is None:
        width = len(rows[0][1])
        if width in (1, 3):
            return ["counts"] if width == 1 else ["lo", "hi", "counts"]
        raise ValueError(
            f"{what}: {width} columns and no header; give one column of counts, three columns "
            "lo,hi,counts, or a header row naming the columns (counts, edges, lo, hi)"
        )
    names = [c.lower() for c in header]
    unknown = [c for c in names if c not in _CSV_COLUMNS]
    if unknown or len(set(names)) != len(names) or set(names) not in _CSV_LAYOUTS:
        raise ValueError(
            f"{what}: header {header} is not one of: counts | counts,edges | lo,hi,counts "
            "(in any order, any case)"
        )
    return names


def _csv_column(cells: list[str], lines: list[int], col: str, what: str) -> np.ndarray:
    values = []
    for line, cell in zip(lines, cells, strict=True):
        if not cell:
            raise ValueError(f"{what}: line {line}: the {col} cell is empty")
        try:
            values.append(float(cell))
        except ValueError:
            raise ValueError(
                f"{what}: line {line}: {col} {_short(cell)!r} is not a number"
            ) from None
    a = np.array(values, dtype=np.float64)
    if all(_INT.fullmatch(c) for c in cells) and np.all(np.abs(a) < 2**53):
        return a.astype(np.int64)
    return a


def _csv_histogram(text: str, what: str) -> Histogram:
    header, rows = _csv_rows(text, what, _CSV_COLUMNS)
    if not rows:
        raise ValueError(f"{what} holds no data rows")
    names = _csv_layout(header, rows, what)
    for line, cells in rows:
        if len(cells) > len(names):
            raise ValueError(f"{what}: line {line} has {len(cells)} cells, expected {len(names)}")
    lines = [line for line, _ in rows]
    cols = {n: [c[i] if i < len(c) else "" for _, c in rows] for i, n in enumerate(names)}
    if "lo" in cols:
        lo, hi, counts = (_csv_column(cols[n], lines, n, what) for n in ("lo", "hi", "counts"))
        return _rows_histogram(lo, hi, counts, what, lambda i: f"line {lines[i]}")
    if "edges" not in cols:
        return _histogram(_csv_column(cols["counts"], lines, "counts", what), None, what)
    if cols["counts"][-1]:
        raise ValueError(
            f"{what}: line {lines[-1]}: with an edges column there is one more edge than "
            "counts; leave the counts cell of the last row empty"
        )
    counts = _csv_column(cols["counts"][:-1], lines[:-1], "counts", what)
    return _histogram(counts, _csv_column(cols["edges"], lines, "edges", what), what)


def _json_layer(entry: Any, what: str) -> Histogram:
    if not isinstance(entry, dict) or "counts" not in entry or set(entry) - {"counts", "edges"}:
        raise ValueError(f"{what}: expected {{'counts': [...], 'edges': [...]}} (edges optional)")
    counts = _number_list(entry["counts"], "counts", what)
    edges = _number_list(entry["edges"], "edges", what) if "edges" in entry else None
    return _histogram(counts, edges, what)


def _json_histograms(text: str, what: str, stem: str) -> dict[str, Histogram]:
    doc = _json_doc(text, what)
    if isinstance(doc, dict) and set(doc) == {"layers"}:
        layers = doc["layers"]
        if not isinstance(layers, dict) or not layers:
            raise ValueError(f"{what}: 'layers' must be a non-empty object of name -> histogram")
        _check_layer_count(len(layers), what)
        return {
            _check_name(name, what): _json_layer(e, f"{what}: layer {name!r}")
            for name, e in layers.items()
        }
    if isinstance(doc, dict) and "counts" in doc:
        return {stem: _json_layer(doc, what)}
    raise ValueError(
        f'{what}: expected {{"counts": [...], "edges": [...]}} or {{"layers": {{name: '
        "{...}}}; for ONNX Runtime's calibration.json use read_ort_calibration_json"
    )


_TEXT_EXTENSIONS = (".csv", ".json")


def _dispatch(src: Any, name: str | None, readers: dict[str, Callable]) -> Any:
    file_name = _file_name(src, name)
    ext = Path(file_name).suffix.lower()
    what = repr(file_name)
    if ext not in readers:
        raise ValueError(
            f"{what}: unsupported extension {ext or '(none)'!r}; expected one of "
            f"{', '.join(readers)}"
        )
    limit = "MAX_TEXT_BYTES" if ext in _TEXT_EXTENSIONS else "MAX_FILE_BYTES"
    return readers[ext](_read_bytes(src, what, limit), what, Path(file_name).stem)


def load_histogram_file(path_or_file: Source, name: str | None = None) -> dict[str, Histogram]:
    """Read histograms from ``.npz``, ``.npy``, ``.csv`` or ``.json``, by extension.

    Parameters
    ----------
    path_or_file : str, os.PathLike or file
        The file.
    name : str, optional
        The file's name, whose extension picks the format (an upload's name). Defaults to the
        path, or the file object's ``name``.

    Returns
    -------
    dict of str to Histogram
        The layers of an ``.npz`` or a ``{"layers": ...}`` JSON; otherwise one entry keyed by
        the file name without its extension. The layouts are in the module docstring.

    Raises
    ------
    ValueError
        Unsupported extension, empty file, non-numeric values, NaN or negative counts, a
        wrong shape or layout: the message says what was expected.

    Examples
    --------
    >>> import io, calib
    >>> calib.load_histogram_file(io.StringIO("lo,hi,counts\\n0,1,1\\n1,2,3\\n"), name="act.csv")
    {'act': Histogram(2 bins, unsigned, [0, 2], total=4)}
    >>> calib.load_histogram_file(io.StringIO("1 2"), name="act.txt")
    Traceback (most recent call last):
        ...
    ValueError: ...
    """
    readers = {
        ".npz": lambda data, what, stem: _parse_npz(data, what)[0],
        ".npy": lambda data, what, stem: {stem: _npy_histogram(data, what)},
        ".csv": lambda data, what, stem: {stem: _csv_histogram(_decode(data, what), what)},
        ".json": lambda data, what, stem: _json_histograms(_decode(data, what), what, stem),
    }
    return _dispatch(path_or_file, name, readers)


_SEPARATORS = re.compile(r"[,\s]+")


def _plain_numbers(text: str) -> np.ndarray | None:
    """Every cell as float64 when the text is numbers, commas and whitespace only (no
    header, comment or quote), parsed by numpy in one pass; None otherwise, for the cell
    by cell reader, which says where a bad cell is. Empty cells are skipped by both."""
    if '"' in text or "#" in text:
        return None
    try:
        return np.array(_SEPARATORS.split(text.strip()), dtype=np.float64)
    except ValueError:
        return None


def _csv_samples(text: str, what: str) -> np.ndarray:
    _csv_cells_bound(text, what)
    fast = _plain_numbers(text)
    if fast is not None:
        return fast
    _, rows = _csv_rows(text, what, ())
    values = []
    for line, cells in rows:
        for cell in cells:
            if not cell:
                continue
            try:
                values.append(float(cell))
            except ValueError:
                raise ValueError(f"{what}: line {line}: {_short(cell)!r} is not a number") from None
    return np.array(values, dtype=np.float64)


def _samples(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{what}: samples must be a numeric array, got dtype {a.dtype}")
    a = a.astype(np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{what} holds no samples")
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise ValueError(f"{what} holds {bad} non-finite values (NaN or inf) of {a.size} samples")
    return a


def load_samples_file(path_or_file: Source, name: str | None = None) -> np.ndarray:
    """Read raw activation samples from ``.npy`` (any shape) or ``.csv`` (numbers).

    Parameters
    ----------
    path_or_file : str, os.PathLike or file
        The file.
    name : str, optional
        The file's name, whose extension picks the format; defaults as in
        :func:`load_histogram_file`.

    Returns
    -------
    numpy.ndarray
        The samples, flattened to 1-D float64.

    Raises
    ------
    ValueError
        Unsupported extension, empty file, no samples, non-numeric values, NaN or inf.

    Examples
    --------
    >>> import io, calib
    >>> calib.load_samples_file(io.StringIO("0.5,-1.5\\n2.0\\n"), name="samples.csv")
    array([ 0.5, -1.5,  2. ])
    """
    readers = {
        ".npy": lambda data, what, stem: _samples(_load_npy(data, what), what),
        ".csv": lambda data, what, stem: _samples(_csv_samples(_decode(data, what), what), what),
    }
    return _dispatch(path_or_file, name, readers)
