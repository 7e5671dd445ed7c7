"""Bounded, pickle-free reading and writing shared by every reader in calib.io.

Every source is read whole, refused past ``MAX_FILE_BYTES`` (binary) or ``MAX_TEXT_BYTES``
(text); an ``.npz``'s zip directory is walked, and every ``.npy`` header read, before numpy
unpacks any data, so object arrays (pickles), archives of too many members and arrays that
would widen past ``MAX_UNPACKED_BYTES`` are refused first. JSON deeper than
``MAX_JSON_DEPTH`` and CSV of more than ``MAX_CSV_CELLS`` cells are refused too. Every cap
is a constant of :mod:`calib.limits`, read when a file is read.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from calib import limits
from calib.histogram import Histogram

Source = str | os.PathLike | IO[bytes] | IO[str]

NPZ_ARRAYS_PER_LAYER = 3  # counts_<i>, edges_<i>, trace_<i>
NPZ_OTHER_ARRAYS = 6  # format, version, names, meta, trace_samples, trace_methods
DOCUMENT_MEMBERS = ("meta.npy",)  # documents (MAX_META_CHARS), not names (MAX_NAME_CHARS)
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError)
# -- reading sources --------------------------------------------------------------------


def _label(src: Any) -> str:
    """How error messages name a source."""
    if isinstance(src, (str, os.PathLike)):
        return repr(os.fspath(src))
    name = getattr(src, "name", None)
    return repr(name) if isinstance(name, str) else "the file"


def _read_bytes(src: Any, what: str, limit: str = "MAX_FILE_BYTES") -> bytes:
    """All bytes of a path or file object, bounded by the cap ``limit`` names (a constant
    of :mod:`calib.limits`), refused when empty."""
    most = getattr(limits, limit)
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        size = path.stat().st_size
        if size > most:
            raise ValueError(limits.exceeds(f"{what} is", size, limit, " bytes"))
        with path.open("rb") as f:
            data = _read_at_most(f, most + 1, what)  # the file may have grown since stat
    elif callable(getattr(src, "read", None)):
        data = _read_at_most(src, most + 1, what)
    else:
        raise ValueError(f"expected a path or an open file, got {type(src).__name__}")
    if len(data) > most:
        raise ValueError(limits.exceeds(f"{what} is more than", most, limit, " bytes"))
    if not data:
        raise ValueError(f"{what} is empty (0 bytes; a file object already read to its end?)")
    return bytes(data)


def _read_at_most(src: Any, n: int, what: str) -> bytes:
    """Up to ``n`` bytes (or characters) of a file object, a megabyte at a time: one
    ``read(n)`` makes some file objects allocate ``n`` bytes whatever the file holds."""
    parts: list = []
    got = 0
    while got < n:
        chunk = src.read(min(1 << 20, n - got))
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8", "surrogatepass")
        if not isinstance(chunk, (bytes, bytearray)):
            raise ValueError(f"{what}: read() returned {type(chunk).__name__}, not bytes or str")
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _decode(data: bytes, what: str) -> str:
    """UTF-8 text (a byte-order mark skipped), bounded by MAX_TEXT_BYTES."""
    if len(data) > limits.MAX_TEXT_BYTES:
        raise ValueError(limits.exceeds(f"{what} is", len(data), "MAX_TEXT_BYTES", " bytes"))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_text(src: Any, what: str) -> str:
    text = _decode(_read_bytes(src, what, "MAX_TEXT_BYTES"), what)
    if not text.strip():
        raise ValueError(f"{what} is empty (only whitespace)")
    return text


_NONBLANK_LINE = re.compile(r"^[^\S\n]*\S[^\n]*", re.MULTILINE)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of each line of ``text`` holding more than whitespace (a
    ``\r`` before the ``\n`` is kept), found by the regex engine: a file of thirty million
    empty lines costs no Python loop, and never becomes a list of lines."""
    lineno, at = 1, 0
    for m in _NONBLANK_LINE.finditer(text):
        lineno += text.count("\n", at, m.start())
        at = m.start()
        yield lineno, m.group()


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _check_name(name: Any, what: str) -> str:
    """A tensor name read from a file: a str of at most MAX_NAME_CHARS characters that
    UTF-8 can hold (no lone surrogates, which no export, page or terminal can write)."""
    if not isinstance(name, str):
        raise ValueError(f"{what}: tensor names must be strings, got {_short(repr(name))}")
    if len(name) > limits.MAX_NAME_CHARS:
        shown = _short(repr(name))
        raise ValueError(limits.exceeds(f"{what}: name {shown} has", len(name), "MAX_NAME_CHARS",
                                        " characters"))  # fmt: skip
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what}: name {_short(repr(name))} holds a lone surrogate "
            f"(U+{ord(name[exc.start]):04X} at {exc.start}), which UTF-8 cannot write"
        ) from None
    return name


def _check_layer_count(n: int, what: str) -> None:
    if n > limits.MAX_LAYERS:
        raise ValueError(limits.exceeds(f"{what} holds", n, "MAX_LAYERS", " tensors"))


# -- writing ----------------------------------------------------------------------------


def _write_bytes(dest: Any, data: bytes) -> None:
    """Write to a path atomically (a temporary file beside it, then a rename: an interrupted
    write leaves the old file or nothing, never half a file), or to a file object."""
    if isinstance(dest, (str, os.PathLike)):
        path = Path(dest)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    elif callable(getattr(dest, "write", None)):
        dest.write(data.decode("utf-8") if isinstance(dest, io.TextIOBase) else data)
    else:
        raise ValueError(f"path must be a path or a writable file, got {type(dest).__name__}")


def _write_text(dest: Any, text: str) -> None:
    _write_bytes(dest, text.encode("utf-8"))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text to ``path`` whole or not at all: a temporary file beside it, then a
    rename, so an interrupted write leaves the old file (or none), never half of one."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a path, got {type(path).__name__}")
    _write_text(path, text)


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


def widened_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """The bytes an array of ``shape`` and ``dtype`` takes once calib has converted it
    (``MAX_UNPACKED_BYTES``): 8 a numeric element (int64 or float64), its own size for
    anything else (unicode names, which then also become Python strings: counted twice)."""
    n = math.prod(shape)
    if dtype.kind in "biuf":
        return n * max(dtype.itemsize, 8)
    if dtype.kind == "U":
        return 2 * n * dtype.itemsize
    return n * dtype.itemsize


def _npy_header(f: IO[bytes], what: str, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an .npy header declares (nothing after it is read)."""
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
    return shape, dtype


def _check_npy_header(
    f: IO[bytes], what: str, key: str, size: int, text_limit: str = "MAX_NAME_CHARS"
) -> int:
    """Read one .npy header; refuse object dtypes, strings longer than the cap
    ``text_limit`` names (a name: MAX_NAME_CHARS; a document: MAX_META_CHARS) and data
    larger than the bytes present. Returns the array's :func:`widened_bytes`."""
    shape, dtype = _npy_header(f, what, key)
    if dtype.hasobject:
        raise ValueError(_pickle_refused(what, key))
    if dtype.kind == "U" and dtype.itemsize // 4 > getattr(limits, text_limit):
        raise ValueError(
            limits.exceeds(f"{what}: {key} holds strings of", dtype.itemsize // 4,
                           text_limit, " characters")
        )  # fmt: skip
    need = math.prod(shape) * dtype.itemsize
    if need > size - f.tell():
        raise ValueError(
            f"{what}: {key} declares shape {shape} ({need} bytes) but holds only "
            f"{size - f.tell()} bytes of data: the file is truncated or corrupt"
        )
    return widened_bytes(shape, dtype)


def _check_unpacked(total: int, what: str) -> None:
    if total > limits.MAX_UNPACKED_BYTES:
        raise ValueError(
            limits.exceeds(f"{what} unpacks (widened to int64/float64) to", total,
                           "MAX_UNPACKED_BYTES", " bytes")
        )  # fmt: skip


def _load_npy(data: bytes, what: str) -> np.ndarray:
    f = io.BytesIO(data)
    _check_unpacked(_check_npy_header(f, what, "the array", len(data)), what)
    f.seek(0)
    try:
        return np.load(f, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise ValueError(f"{what} is not a readable .npy array ({exc})") from None


def _zip_member_count(data: bytes, what: str, most: int) -> None:
    """Walk the zip's central directory from its end record, counting members, and refuse
    more than ``most`` before ``zipfile`` builds an object for each: the directory of a
    200 MB file can list four million members. A directory that cannot be walked is refused
    as corrupt (``zipfile`` reads by the directory's size, not by its declared count)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if end < 0:
        raise ValueError(f"{what} is not an .npz archive (a zip of .npy arrays), or is truncated")
    (size_cd,) = struct.unpack_from("<I", data, end + 12)
    where = end
    locator = end - 20
    if locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":  # zip64
        (z64,) = struct.unpack_from("<Q", data, locator + 8)
        if data[z64 : z64 + 4] != b"PK\x06\x06":
            raise ValueError(f"{what} is not a readable .npz archive (bad zip64 directory)")
        (size_cd,) = struct.unpack_from("<Q", data, z64 + 40)
        where = z64
    start = where - size_cd  # the directory ends where the end records start
    if start < 0:
        raise ValueError(f"{what} is not a readable .npz archive (bad zip directory)")
    pos, n = start, 0
    while pos < where:
        if data[pos : pos + 4] != b"PK\x01\x02" or pos + 46 > where:
            raise ValueError(f"{what} is not a readable .npz archive (bad zip directory entry)")
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        pos += 46 + name_len + extra_len + comment_len
        n += 1
        if n > most:
            raise ValueError(
                f"{what} holds more than {most:,} arrays ({NPZ_ARRAYS_PER_LAYER} a layer and "
                f"{NPZ_OTHER_ARRAYS} more, MAX_LAYERS = {limits.MAX_LAYERS:,})"
            )


def _unique_npz_keys(members: list[str], what: str) -> None:
    """Refuse an archive with two members numpy would load under one key (``x.npy`` twice,
    or ``x`` beside ``x.npy``): ``np.load`` would silently keep the last."""
    seen: set[str] = set()
    for member in members:
        key = member[:-4] if member.endswith(".npy") else member
        if key in seen:
            raise ValueError(
                f"{what} holds two arrays named {_short(key)!r} (duplicate archive members); "
                "numpy would keep only the last"
            )
        seen.add(key)


DEFLATE_MAX_RATIO = 1032  # deflate expands a byte to at most 1032 (258 bytes per 2 bits)


def _member_size(info: zipfile.ZipInfo) -> int:
    """The most bytes a zip member can hold once unpacked: what its directory entry says,
    but no more than its compressed bytes can give (stored: as many; deflate: at most
    ``DEFLATE_MAX_RATIO`` times as many). A directory that lies (claims 4 GB for 100 bytes)
    cannot make the size an ``.npy`` header declares look present, and numpy allocates that
    size before it reads a byte."""
    if info.compress_type == zipfile.ZIP_STORED:
        return min(info.file_size, info.compress_size)
    if info.compress_type == zipfile.ZIP_DEFLATED:
        return min(info.file_size, DEFLATE_MAX_RATIO * info.compress_size + 64)
    return info.file_size


def _check_npz_members(zf: zipfile.ZipFile, what: str) -> None:
    _unique_npz_keys(zf.namelist(), what)
    if "names.npy" in zf.namelist():  # the project's format: count its layers first
        with zf.open("names.npy") as f:
            shape, _ = _npy_header(f, what, "'names.npy'")
        if shape and math.prod(shape) > limits.MAX_LAYERS:
            raise ValueError(
                limits.exceeds(f"{what}: 'names' holds", math.prod(shape), "MAX_LAYERS",
                               " layers")
            )  # fmt: skip
    total = 0
    for info in zf.infolist():
        limit = "MAX_META_CHARS" if info.filename in DOCUMENT_MEMBERS else "MAX_NAME_CHARS"
        size = _member_size(info)
        with zf.open(info) as f:
            total += _check_npy_header(f, what, repr(info.filename), size, limit)
        _check_unpacked(total, what)


def _load_npz(data: bytes, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, in archive order, without unpickling anything: at
    most ``3 * MAX_LAYERS + 6`` members, ``MAX_UNPACKED_BYTES`` once widened."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"{what} is not an .npz archive (a zip of .npy arrays), or is truncated")
    _zip_member_count(data, what, NPZ_ARRAYS_PER_LAYER * limits.MAX_LAYERS + NPZ_OTHER_ARRAYS)
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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _json_depth(doc: Any, most: int) -> int:
    """The nesting depth of a parsed JSON value (a number is 0, ``[]`` is 1), counted
    without recursion; stops once past ``most``."""
    deepest = 0
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > most:
                return deepest
            children = value.values() if isinstance(value, dict) else value
            nested = (c for c in children if isinstance(c, (dict, list)))
            stack.extend((child, depth + 1) for child in nested)
    return deepest


def _json_doc(text: str, what: str) -> Any:
    """Parse JSON: duplicate keys refused, nesting at most MAX_JSON_DEPTH (Python's parser
    recurses once a level and gives up near 1,000 with RecursionError; anything shallower
    is measured once parsed)."""
    too_deep = (
        f"{what} nests arrays and objects more than MAX_JSON_DEPTH = {limits.MAX_JSON_DEPTH} deep"
    )
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise ValueError(too_deep) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if _json_depth(doc, limits.MAX_JSON_DEPTH) > limits.MAX_JSON_DEPTH:
        raise ValueError(too_deep)
    return doc


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
