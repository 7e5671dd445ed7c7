"""Bounded, pickle-free reading and writing shared by every reader in calib.io.

Every source is read whole, refused past :data:`MAX_FILE_BYTES`; ``.npy`` headers are
checked before numpy reads any data, so object arrays (pickles) never load.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from calib.histogram import Histogram

MAX_FILE_BYTES = 200 * 2**20
"""The largest file (and the largest unpacked ``.npz``) any reader accepts, in bytes."""

Source = str | os.PathLike | IO[bytes] | IO[str]

_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError)
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
