"""Calibration inputs for a model: one ``.npz`` of named arrays, whole or in batches.

Two layouts, told apart by the keys:

``<input>`` (the whole set)
    One array per model input, named after it; axis 0 is the sample axis and every
    array has the same number of samples. The collector cuts them into batches of
    ``batch_size``. ``np.savez("x.npz", input_ids=ids, attention_mask=mask)``.
``<input>__b<k>`` (batches of any shape)
    Batch ``k`` (0, 1, 2, ... with no gap, below ``calib.limits.MAX_BATCHES``, which also
    bounds the archive's arrays) of input ``<input>``: every input has the same
    batches, and within a batch its arrays have the same number of samples; shapes may
    differ from batch to batch (sentences grouped by length, each batch padded only to its
    own longest). Each batch is one run of the model, as given.
    ``np.savez("x.npz", input_ids__b0=a0, attention_mask__b0=m0, input_ids__b1=a1, ...)``.

No pickle: object arrays are refused, and so are two archive members of one name. In
Python, :func:`calib.collect.collect_histograms` also takes a dict of arrays or any iterable
of ``{input: array}`` batches directly.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from calib import limits
from calib.io._safe import _short

__all__ = ["BATCH_KEY", "load_inputs"]

BATCH_KEY = re.compile(r"(?P<input>.+)__b(?P<k>0|[1-9][0-9]*)")
"""A key of the batched layout: ``<input>__b<k>``."""

Batch = dict[str, np.ndarray]


def load_inputs(src: Any, max_bytes: int | None = None) -> dict[str, np.ndarray] | list[Batch]:
    """Read calibration inputs from an ``.npz`` path or binary file.

    Parameters
    ----------
    src : str, os.PathLike or binary file
        The ``.npz``.
    max_bytes : int, optional
        Refuse an archive whose arrays, widened to 8 bytes an element (the model may take
        int64 or float64 whatever they are stored as), would take more than this many bytes,
        read from the ``.npy`` headers before anything is unpacked. None: no limit (a
        user's own file on the command line); the app passes
        ``calib.limits.MAX_UNPACKED_BYTES``.

    Returns
    -------
    dict of str to array, or list of dicts
        The whole set (one array per input, samples on axis 0), or the batches in order.
    """
    what = repr(os.fspath(src)) if isinstance(src, (str, os.PathLike)) else "inputs"
    if hasattr(src, "seek"):
        start = src.tell()
    try:
        if not zipfile.is_zipfile(src):  # an .npy (one unnamed array), or not numpy at all
            raise ValueError(
                f"inputs: {what} is not an .npz of named arrays (an .npy holds one unnamed "
                "array: save it with np.savez(path, <input name>=array))"
            )
        if hasattr(src, "seek"):
            src.seek(start)
        _check_members(src, what)
        if hasattr(src, "seek"):
            src.seek(start)
        _check_unpacked_inputs(src, what, max_bytes)
        if hasattr(src, "seek"):
            src.seek(start)
        with np.load(src, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"inputs: {what} holds object arrays (refused: no pickle)") from None
        if str(exc).startswith("inputs:"):
            raise
        raise ValueError(f"inputs: {what} is not a readable .npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"inputs: {what} is not a readable .npz ({exc})") from None
    batched = [BATCH_KEY.fullmatch(k) for k in arrays]
    if arrays and all(batched):
        return _batches(arrays, what)
    if any(batched):
        mixed = [k for k, m in zip(arrays, batched, strict=True) if not m][:3]
        raise ValueError(
            f"inputs: {what} mixes batched keys (<input>__b<k>) with plain ones "
            f"({', '.join(map(repr, mixed))}); use one layout"
        )
    return check_arrays(arrays, what)


def _check_unpacked_inputs(src: Any, what: str, max_bytes: int | None) -> None:
    """Refuse, from the zip directory and the ``.npy`` headers alone, an archive that holds
    object arrays, an array declaring more bytes than its member holds (or than deflate can
    expand its compressed bytes to: numpy allocates what the header declares before reading
    a byte), or, with ``max_bytes``, arrays that take more than that once widened to 8 bytes
    an element (the model may take its inputs as int64 or float64, whatever they are stored
    as: a 5.8 MB archive of bytes once became 6 GB)."""
    from calib.io._safe import _check_npy_header, _member_size  # the one header check

    total = 0
    with zipfile.ZipFile(src) as zf:
        infos = zf.infolist()
        for info in infos:
            size = _member_size(info)
            with zf.open(info) as f:
                total += _check_npy_header(f, f"inputs: {what}", repr(info.filename), size)
            if max_bytes is not None and total > max_bytes:
                raise ValueError(
                    f"inputs: {what} unpacks (widened to 8 bytes an element) to more than "
                    f"the limit of {max_bytes:,} bytes"
                )


def _check_members(src: Any, what: str) -> None:
    """Refuse, from the zip directory alone, more than MAX_BATCHES arrays (a batch's arrays
    are one member each) and two members numpy would load under one key."""
    from calib.io._safe import _unique_npz_keys

    with zipfile.ZipFile(src) as zf:
        names = zf.namelist()
    if len(names) > limits.MAX_BATCHES:
        raise ValueError(
            limits.exceeds(f"inputs: {what} holds", len(names), "MAX_BATCHES", " arrays")
        )
    _unique_npz_keys(names, f"inputs: {what}")


def check_arrays(arrays: Mapping[str, Any], what: str = "inputs") -> dict[str, np.ndarray]:
    """A whole set of inputs checked: non-empty, numeric, samples on axis 0, one count."""
    out = {str(k): np.asarray(v) for k, v in arrays.items()}
    if not out:
        raise ValueError(f"inputs: {what} holds no arrays")
    for k, a in out.items():
        if a.dtype == object:
            raise ValueError(f"inputs[{k!r}] is an object array (refused: no pickle)")
        if a.ndim == 0:
            raise ValueError(f"inputs[{k!r}] is a scalar; axis 0 must be the sample axis")
    sizes = {k: a.shape[0] for k, a in out.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs: arrays hold different numbers of samples (axis 0): {sizes}")
    if not next(iter(sizes.values())):
        raise ValueError("inputs are empty: 0 samples along axis 0")
    return out


def _batches(arrays: dict[str, np.ndarray], what: str) -> list[Batch]:
    by_k: dict[int, Batch] = {}
    digits = len(str(limits.MAX_BATCHES))
    for key, a in arrays.items():
        name, k = key.rsplit("__b", 1)  # every key matched BATCH_KEY (the caller checked)
        if len(k) > digits or int(k) >= limits.MAX_BATCHES:  # before int() sizes anything
            raise ValueError(
                f"inputs: {what}: key {_short(key)!r} names batch {_short(k, 24)}; batches "
                f"run 0, 1, 2, ... below MAX_BATCHES = {limits.MAX_BATCHES:,}"
            )
        by_k.setdefault(int(k), {})[name] = a
    ks = sorted(by_k)
    gap = next((j for j, k in enumerate(ks) if k != j), None)  # the first batch missing
    if gap is not None:
        raise ValueError(f"inputs: {what} has no batch {gap} (batches run 0, 1, 2, ...)")
    names = set(by_k[0])
    batches = []
    for k in ks:
        if set(by_k[k]) != names:
            raise ValueError(
                f"inputs: batch {k} of {what} holds {sorted(by_k[k])}, batch 0 holds "
                f"{sorted(names)}: every batch needs every input"
            )
        batches.append(check_arrays(by_k[k], f"batch {k} of {what}"))
    return batches
