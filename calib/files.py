"""Read and write the files users bring: histograms, TensorRT caches, ONNX Runtime tables.

numpy and the standard library only. No pickle, ever: every ``np.load`` passes
``allow_pickle=False``, and object arrays are refused from the ``.npy`` header before numpy
reads any data. No ``eval``. Every input is bounded by :data:`MAX_FILE_BYTES` (and an
``.npz`` by the size it unpacks to). Bad input raises ``ValueError`` naming what was wrong
and what was expected.

Inputs
------
Every reader takes a path (``str`` or ``os.PathLike``) or an open file object: binary (a
Streamlit upload is a ``BytesIO``) or, for the text formats, text. A file object is read
from its current position. Text is UTF-8 (a byte-order mark is skipped); lines end in
``\\n`` or ``\\r\\n``. Writers take a path (the name is used as given: no extension is
added) or a writable file object.

The multi-layer histogram file (``.npz``, version 1)
----------------------------------------------------
A zip of ``.npy`` arrays, as ``np.savez_compressed`` writes it, with exactly these keys:

==============  ===========================================================================
``format``      0-d unicode array, ``"calib-histograms"``
``version``     0-d integer array, ``1``
``names``       1-D unicode array of the L layer names, in order: any unicode, distinct,
                at least one; none may end in ``"\\0"`` (numpy's unicode arrays drop
                trailing NULs)
``counts_<i>``  for ``i`` in ``0 .. L-1``: the counts of layer ``names[i]``, 1-D int64 or
                float64 (finite, non-negative, at least 2 bins)
``edges_<i>``   the edges of layer ``names[i]``, 1-D float64, strictly increasing,
                ``len(counts_<i>) + 1`` of them
``meta``        optional 0-d unicode array holding a JSON object (provenance: model, data
                set, tool, date)
==============  ===========================================================================

Layer names live inside the ``names`` array, never in zip member names, so any name
round-trips. A missing key, any other key, a duplicate name, a newer version or an array of
the wrong kind is refused.

A *plain* ``.npz`` (no ``format`` key), as other tools write it, is read too: keys
``<layer>.counts`` (with an optional ``<layer>.edges``) give a layer with those edges, and
any other key ``<layer>`` gives a layer of counts in unit-width bins from 0, so
``np.savez("h.npz", conv1=counts1, conv2=counts2)`` loads. Layers come in archive order.

Single histograms (:func:`load_histogram_file`, by extension)
-------------------------------------------------------------
``.npz``
    Either form above.
``.npy``
    A 1-D array of counts (unit-width bins from 0), or an ``(N, 3)`` array whose rows are
    ``(lo, hi, count)`` of N contiguous bins. Any other shape is refused.
``.csv``
    Comma-separated. With a header row (a first row with no number in it, or a first
    comment line ``# counts,edges`` as ``np.savetxt(..., header=...)`` writes), the columns
    are named, case-insensitively: ``counts``; or ``counts`` and ``edges``, where there is
    one more edge than counts and the ``counts`` cell of the last row is left empty; or
    ``lo``, ``hi`` and ``counts`` (contiguous bins). Without a header: one column is counts
    in unit-width bins from 0, three columns are ``lo, hi, counts``; anything else needs a
    header. Other lines starting with ``#`` are comments. Counts that are all written as
    integers become int64.
``.json``
    ``{"counts": [...], "edges": [...]}`` (``edges`` optional: unit-width bins from 0), or
    ``{"layers": {"<name>": {"counts": [...], "edges": [...]}, ...}}``.

A single histogram is returned as ``{<file name without extension>: Histogram}``.

Raw samples (:func:`load_samples_file`): ``.npy`` of any shape, or ``.csv`` numbers (any
number per row; a non-numeric first row is a header and skipped; ``#`` lines are comments).

TensorRT calibration cache
--------------------------
The first line is ``TRT-<version>-<Algorithm>`` (``TRT-8601-EntropyCalibration2``), then one
line per tensor, ``<tensor name>: <hex>``, where ``<hex>`` is the big-endian IEEE float32
bit pattern of ``scale = amax / 127``, written by TensorRT as 8 hex digits (shorter forms,
such as ``0``, are read as zero-padded on the left). The name is everything before the last
``": "``, so names may hold spaces, brackets, slashes and ``": "``.

ONNX Runtime calibration tables
-------------------------------
``write_calibration_table`` writes ``calibration.json``: ``json.dumps`` of a ``TensorsData``,
``{"CLS": "TensorsData", "data": {<name>: <TensorData>}, "calibration_method": {...}}``,
where a ``TensorData`` is ``{"lowest": x, "highest": x, ["hist": x, "hist_edges": x],
"CLS": "TensorData"}`` and each ``x`` is ``{"data": ..., "dtype": ..., "CLS":
"numpy.array"}``. The entropy and percentile calibrators store the histogram edges under
``"bins"`` instead of ``"hist_edges"``; both are read. Older versions wrote a plain
``{<name>: [lowest, highest]}``, which is read too. ``calibration.cache`` holds one
``<name> <value>`` line per tensor, where recent versions write ``max(highest, lowest)``
(older ones ``max(|lowest|, |highest|)``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import numbers
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from calib.histogram import Histogram

__all__ = [
    "MAX_FILE_BYTES",
    "NPZ_FORMAT",
    "NPZ_VERSION",
    "OrtCalibration",
    "TrtCache",
    "load_histogram_file",
    "load_histograms",
    "load_histograms_meta",
    "load_samples_file",
    "read_ort_calibration_cache",
    "read_ort_calibration_json",
    "read_trt_cache",
    "read_trt_cache_full",
    "save_histograms",
    "write_ort_calibration_cache",
    "write_ort_calibration_json",
    "write_trt_cache",
]

MAX_FILE_BYTES = 200 * 2**20
"""The largest file (and the largest unpacked ``.npz``) any reader accepts, in bytes."""

NPZ_FORMAT = "calib-histograms"
NPZ_VERSION = 1
TRT_DEFAULT_HEADER = "TRT-8601-EntropyCalibration2"
TRT_ALGORITHMS = (
    "EntropyCalibration",
    "EntropyCalibration2",
    "MinMaxCalibration",
    "LegacyCalibration",
)
ORT_METHODS = ("MinMax", "Entropy", "Percentile", "Distribution")

Source = str | os.PathLike | IO[bytes] | IO[str]

_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError)
_TRT_HEADER = re.compile(r"TRT-([^-\s]+)-([A-Za-z][A-Za-z0-9_]*)")
_HEX = re.compile(r"[0-9a-fA-F]{1,8}")
_INT = re.compile(r"[+-]?\d+")
_CSV_COLUMNS = ("counts", "edges", "lo", "hi")
_CSV_LAYOUTS = ({"counts"}, {"counts", "edges"}, {"lo", "hi", "counts"})
_F32_MAX = float(np.finfo(np.float32).max)


# -- reading sources --------------------------------------------------------------------


def _label(src: Any) -> str:
    """How error messages name a source."""
    if isinstance(src, (str, os.PathLike)):
        return repr(os.fspath(src))
    name = getattr(src, "name", None)
    return repr(name) if isinstance(name, str) else "the file"


def _too_big(what: str, size: int) -> str:
    return f"{what} is {size} bytes, more than the {MAX_FILE_BYTES}-byte limit (MAX_FILE_BYTES)"


def _read_bytes(src: Any, what: str) -> bytes:
    """All bytes of a path or file object, bounded by MAX_FILE_BYTES, refused when empty."""
    limit = MAX_FILE_BYTES
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        size = path.stat().st_size
        if size > limit:
            raise ValueError(_too_big(what, size))
        data = path.read_bytes()
    elif callable(getattr(src, "read", None)):
        data = src.read(limit + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError(f"{what}: read() returned {type(data).__name__}, not bytes or str")
    else:
        raise ValueError(f"expected a path or an open file, got {type(src).__name__}")
    if len(data) > limit:
        raise ValueError(_too_big(what, len(data)))
    if not data:
        raise ValueError(f"{what} is empty (0 bytes; a file object already read to its end?)")
    return bytes(data)


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_text(src: Any, what: str) -> str:
    text = _decode(_read_bytes(src, what), what)
    if not text.strip():
        raise ValueError(f"{what} is empty (only whitespace)")
    return text


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# -- writing ----------------------------------------------------------------------------


def _write_bytes(dest: Any, data: bytes) -> None:
    if isinstance(dest, (str, os.PathLike)):
        Path(dest).write_bytes(data)
    elif callable(getattr(dest, "write", None)):
        dest.write(data.decode("utf-8") if isinstance(dest, io.TextIOBase) else data)
    else:
        raise ValueError(f"path must be a path or a writable file, got {type(dest).__name__}")


def _write_text(dest: Any, text: str) -> None:
    _write_bytes(dest, text.encode("utf-8"))


def _real(value: Any, what: str) -> float:
    """A real number as float; bools, strings and None are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a real number, got {_short(repr(value))}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{what} is too large for a float: {_short(repr(value))}") from None


def _check_line_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: tensor names must be non-empty strings, got {name!r}")
    if "\n" in name or "\r" in name:
        raise ValueError(f"{what}: tensor name {name!r} holds a line break")
    return name


# -- .npy / .npz, never unpickling ----------------------------------------------------------


def _pickle_refused(what: str, key: str) -> str:
    return (
        f"{what}: {key} is an object array; pickled/object arrays are refused (loading them "
        "can run arbitrary code). Save numeric and unicode arrays only"
    )


def _check_npy_header(f: IO[bytes], what: str, key: str, size: int) -> None:
    """Read one .npy header; refuse object dtypes and data larger than the bytes present."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except (ValueError, EOFError) as exc:
        raise ValueError(f"{what}: {key} is not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise ValueError(_pickle_refused(what, key))
    need = math.prod(shape) * dtype.itemsize
    if need > size - f.tell():
        raise ValueError(
            f"{what}: {key} declares shape {shape} ({need} bytes) but holds only "
            f"{size - f.tell()} bytes of data: the file is truncated or corrupt"
        )


def _load_npy(data: bytes, what: str) -> np.ndarray:
    f = io.BytesIO(data)
    _check_npy_header(f, what, "the array", len(data))
    f.seek(0)
    try:
        return np.load(f, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise ValueError(f"{what} is not a readable .npy array ({exc})") from None


def _check_npz_members(zf: zipfile.ZipFile, what: str) -> None:
    infos = zf.infolist()
    total = sum(info.file_size for info in infos)
    if total > MAX_FILE_BYTES:
        raise ValueError(
            f"{what} unpacks to {total} bytes, more than the {MAX_FILE_BYTES}-byte limit "
            "(MAX_FILE_BYTES)"
        )
    for info in infos:
        with zf.open(info) as f:
            _check_npy_header(f, what, repr(info.filename), info.file_size)


def _load_npz(data: bytes, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, in archive order, without unpickling anything."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"{what} is not an .npz archive (a zip of .npy arrays), or is truncated")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            _check_npz_members(zf, what)
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    except _CORRUPT as exc:
        raise ValueError(f"{what} is not a readable .npz archive ({exc})") from None


# -- the project's .npz ---------------------------------------------------------------------


def _histogram(counts: Any, edges: Any, what: str) -> Histogram:
    """A Histogram (unit-width bins from 0 when edges is None), errors prefixed by what."""
    try:
        if edges is None:
            return Histogram.from_counts(counts)
        return Histogram(counts, edges)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


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
    names = [str(n) for n in a]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: duplicate layer name {name!r} in 'names'")
        seen.add(name)
    return names


def _npz_meta(arrays: dict[str, np.ndarray], what: str) -> dict:
    if "meta" not in arrays:
        return {}
    try:
        meta = json.loads(_npz_string(arrays, "meta", what))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what}: 'meta' is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{what}: 'meta' must hold a JSON object, got {type(meta).__name__}")
    return meta


def _parse_calib_npz(arrays: dict[str, np.ndarray], what: str) -> tuple[dict, dict]:
    _npz_check_marker(arrays, what)
    names = _npz_names(arrays, what)
    n = len(names)
    known = {"format", "version", "names", "meta"}
    known |= {f"{kind}_{i}" for kind in ("counts", "edges") for i in range(n)}
    unknown = [k for k in arrays if k not in known]
    if unknown:
        raise ValueError(
            f"{what}: unexpected keys {unknown[:5]} for {n} layers; a version-1 file holds "
            "format, version, names, counts_<i>, edges_<i> and optionally meta"
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
    for layer, parts in _plain_layers(arrays, what).items():
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
        return json.dumps(dict(meta), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta must be JSON-serialisable (no NaN or inf): {exc}") from None


def save_histograms(
    path: str | os.PathLike | IO[bytes],
    hists: Mapping[str, Histogram],
    meta: Mapping[str, Any] | None = None,
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

    Raises
    ------
    ValueError
        Empty ``hists``, a name that is not a str, a value that is not a Histogram, or
        ``meta`` that JSON cannot hold.
    """
    arrays = _npz_arrays(hists, meta)
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
    """
    what = _label(path)
    return _parse_npz(_read_bytes(path, what), what)[0]


def load_histograms_meta(path: Source) -> dict:
    """The provenance (``meta``) of a histogram ``.npz``; ``{}`` when it has none.

    The whole file is validated, as :func:`load_histograms` does.
    """
    what = _label(path)
    return _parse_npz(_read_bytes(path, what), what)[1]


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


def _csv_rows(text: str, what: str, known: tuple[str, ...]) -> tuple[list | None, list]:
    """(header or None, [(line number, cells)]) of a CSV; comment lines are dropped."""
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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _json_doc(text: str, what: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _number_list(value: Any, key: str, what: str) -> np.ndarray:
    if not isinstance(value, list):
        raise ValueError(f"{what}: {key!r} must be a list of numbers, got {type(value).__name__}")
    try:
        a = np.asarray(value)
    except (ValueError, OverflowError):
        a = np.asarray([], dtype=object)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{what}: {key!r} must be a list of numbers, got {_short(repr(value))}")
    return a


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
        return {name: _json_layer(e, f"{what}: layer {name!r}") for name, e in layers.items()}
    if isinstance(doc, dict) and "counts" in doc:
        return {stem: _json_layer(doc, what)}
    raise ValueError(
        f'{what}: expected {{"counts": [...], "edges": [...]}} or {{"layers": {{name: '
        "{...}}}; for ONNX Runtime's calibration.json use read_ort_calibration_json"
    )


def _dispatch(src: Any, name: str | None, readers: dict[str, Callable]) -> Any:
    file_name = _file_name(src, name)
    ext = Path(file_name).suffix.lower()
    what = repr(file_name)
    if ext not in readers:
        raise ValueError(
            f"{what}: unsupported extension {ext or '(none)'!r}; expected one of "
            f"{', '.join(readers)}"
        )
    return readers[ext](_read_bytes(src, what), what, Path(file_name).stem)


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
    """
    readers = {
        ".npz": lambda data, what, stem: _parse_npz(data, what)[0],
        ".npy": lambda data, what, stem: {stem: _npy_histogram(data, what)},
        ".csv": lambda data, what, stem: {stem: _csv_histogram(_decode(data, what), what)},
        ".json": lambda data, what, stem: _json_histograms(_decode(data, what), what, stem),
    }
    return _dispatch(path_or_file, name, readers)


def _csv_samples(text: str, what: str) -> np.ndarray:
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
    """
    readers = {
        ".npy": lambda data, what, stem: _samples(_load_npy(data, what), what),
        ".csv": lambda data, what, stem: _samples(_csv_samples(_decode(data, what), what), what),
    }
    return _dispatch(path_or_file, name, readers)


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
    """
    what = _label(path_or_text_file)
    lines = _read_text(path_or_text_file, what).split("\n")
    header = lines[0].rstrip("\r").strip()
    version, algorithm = _parse_trt_header(header, what)
    problems = [] if algorithm in TRT_ALGORITHMS else [f"header: unknown algorithm {algorithm!r}"]
    scales: dict[str, float] = {}
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        name, scale = _trt_line(line, lineno, what)
        if name in seen:
            raise ValueError(
                f"{what}: line {lineno}: tensor {name!r} is already on line {seen[name]}"
            )
        seen[name] = lineno
        scales[name] = scale
        problem = _scale_problem(scale)
        if problem:
            problems.append(f"line {lineno}: {name!r}: {problem}")
    if not scales:
        problems.append("no tensor lines after the header")
    amax = {name: scale * 127.0 for name, scale in scales.items()}
    return TrtCache(header, version, algorithm, scales, amax, tuple(problems))


def read_trt_cache(path_or_text_file: Source) -> dict[str, float]:
    """Tensor name -> amax (``scale * 127``) from a TensorRT calibration cache.

    See :func:`read_trt_cache_full` for the header and the problems (zero, NaN, inf scales)
    that this function passes through without comment.
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
    """
    _parse_trt_header(header, "header")
    if not isinstance(amax_by_name, Mapping):
        raise ValueError(f"amax_by_name must be a dict, got {type(amax_by_name).__name__}")
    lines = [header]
    for name, amax in amax_by_name.items():
        _check_line_name(name, "amax_by_name")
        lines.append(f"{name}: {_scale_hex(amax, name)}")
    _write_text(path, "\n".join(lines) + "\n")


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


def _ort_hist(entry: dict, where: str) -> tuple[Histogram | None, str | None]:
    if "hist" not in entry:
        return None, None
    edges = entry.get("hist_edges", entry.get("bins"))
    if edges is None or isinstance(_unwrap(edges, "hist_edges", where), (int, float)):
        return None, f"{where}: 'hist' without 'hist_edges'; histogram skipped"
    counts = _number_list(_unwrap(entry["hist"], "hist", where), "hist", where)
    edges = _number_list(_unwrap(edges, "hist_edges", where), "hist_edges", where)
    return _histogram(counts, edges, where), None


def _ort_entry(entry: Any, where: str) -> tuple[tuple[float, float], Histogram | None, str | None]:
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
    hist, problem = _ort_hist(entry, where)
    return (lo, hi), hist, problem


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
    ranges, hists, problems = {}, {}, []
    for name, entry in doc.items():
        ranges[name], hist, problem = _ort_entry(entry, f"{what}: tensor {name!r}")
        if hist is not None:
            hists[name] = hist
        if problem:
            problems.append(problem)
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
    """
    what = _label(path_or_text_file)
    values: dict[str, float] = {}
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(_read_text(path_or_text_file, what).split("\n"), start=1):
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
    return values


def write_ort_calibration_cache(path: str | os.PathLike | IO, values: Mapping[str, float]) -> None:
    """Write a ``calibration.cache``: one ``<tensor name> <value>`` line per tensor, in order.

    Values are written with Python's shortest round-tripping repr.

    Raises
    ------
    ValueError
        An empty name, one with a line break or ending in whitespace (it would not read
        back), or a value that is not a finite real number.
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
