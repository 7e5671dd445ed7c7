"""Streamlit widgets the pages share: where a histogram comes from, and its size.

The UI layer: pages import this, this imports the core, never the reverse. The Explore
page's own controls, computation and query-string state are in ``calib.app.explore``.
Cached values are immutable (frozen Histograms with read-only arrays, frozen dataclasses)
and kept with ``st.cache_resource``, which stores the objects themselves: nothing is
pickled. Caches are keyed by primitives (a source's ``key``, ints, names), never by
hashing arrays or uploaded bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import streamlit as st

from calib import io as cio
from calib import limits
from calib.app import state, text
from calib.app.text import plain
from calib.demos import DEMOS, demo_histogram, demo_samples
from calib.explore import DEFAULT_LAYER, MODEL_NAME, SOURCE_KINDS
from calib.histogram import DEFAULT_BINS, Histogram
from calib.models import DEFAULT_MODEL, MODELS, shipped_models, short_name

__all__ = [
    "ASSET_PATH",
    "DEFAULT_LAYER",
    "MAX_UPLOAD_BYTES",
    "MODEL_NAME",
    "SAMPLE_BIN_CHOICES",
    "SHARED",
    "SOURCE_KINDS",
    "HistogramSet",
    "Source",
    "check_upload_size",
    "hist_bin_choices",
    "histogram_source",
    "model_histograms",
    "model_id",
    "model_picker",
    "native_bins",
    "read_upload",
    "share_histograms",
    "shared_histograms",
    "sized_histogram",
    "snap_hist_bins",
]

ASSET_PATH = MODELS[DEFAULT_MODEL].histograms  # the default shipped model's (calib.models)
MAX_UPLOAD_BYTES = limits.MAX_UPLOAD_BYTES  # also .streamlit/config.toml's maxUploadSize
HISTOGRAM_TYPES = ["npz", "npy", "csv", "json"]
SAMPLE_TYPES = ["npy", "csv"]

# Histogram sizes offered: powers of two, and MXNet's 8001 for raw samples. A binned
# histogram is offered the powers of two below its own size, and its own size.
_POW2_BINS = tuple(2**k for k in range(4, 15))
SAMPLE_BIN_CHOICES = tuple(sorted({*(b for b in _POW2_BINS if b >= 64), 8001}))


@dataclasses.dataclass(frozen=True)
class Source:
    """One histogram to look at, and where it came from."""

    kind: str  # a key of SOURCE_KINDS
    label: str  # what the page can print: "all-MiniLM-L6-v2: layer.0/…/Mul_1 output"
    hist: Histogram  # at its own size
    samples: np.ndarray | None = None  # raw samples, when the user gave them
    layer: str | None = None
    # A short string naming this exact data ("model:<layer>", "demo:<name>",
    # "histogram:<upload id>:<layer>", "samples:<upload id>"): what caches are keyed by.
    key: str = ""


# --------------------------------------------------------------------------------------
# cached loading (no widgets)
# --------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def model_histograms(model: str = DEFAULT_MODEL) -> dict[str, Histogram]:
    """A shipped model's per-layer histograms (``model``: a key of ``calib.models.MODELS``)."""
    return cio.load_histograms(MODELS[model].histograms)


@st.cache_resource(show_spinner=False, max_entries=32)
def _demo(name: str, bins: int) -> Histogram:
    return demo_histogram(name, bins)


@st.cache_resource(show_spinner=False, max_entries=16)
def _demo_samples(name: str) -> np.ndarray | None:
    x = demo_samples(name)
    if x is not None:
        x.setflags(write=False)
    return x


@st.cache_resource(show_spinner=False, max_entries=8)
def _parse_histograms(upload_id: str, name: str, _data: bytes) -> dict[str, Histogram]:
    # keyed by the upload's id (and name), not by hashing up to 200 MB on every rerun
    return cio.load_histogram_file(io.BytesIO(_data), name)


@st.cache_resource(show_spinner=False, max_entries=8)
def _parse_samples(upload_id: str, name: str, _data: bytes) -> np.ndarray:
    x = cio.load_samples_file(io.BytesIO(_data), name)
    x.setflags(write=False)
    return x


@st.cache_resource(show_spinner=False, max_entries=64)
def _from_samples(samples_key: str, bins: int, signed: bool, _samples: np.ndarray) -> Histogram:
    # keyed by the source's key (its samples are cached objects), not by hashing them
    return Histogram.from_samples(_samples, bins=bins, signed=signed)


def sized_histogram(source: Source, bins: int, *, signed: bool = False) -> Histogram:
    """The source at ``bins`` bins: raw samples are histogrammed again, a histogram is
    merged down (``Histogram.rebin``); a histogram is never split into more bins.

    ``signed`` histograms raw samples as x on [-m, m] instead of |x| (for the signed
    variants, MXNet and ONNX Runtime); a binned histogram keeps its own layout.
    """
    if source.samples is not None:
        if not source.key:  # nothing to key a cache by
            return Histogram.from_samples(source.samples, bins=int(bins), signed=bool(signed))
        return _from_samples(source.key, int(bins), bool(signed), source.samples)
    if bins >= source.hist.n_bins:
        return source.hist
    return source.hist.rebin(int(bins))


def _upload_id(upload: Any, data: bytes) -> str:
    """A Streamlit upload's own id; a content hash for anything else (tests' fakes)."""
    file_id = getattr(upload, "file_id", None)
    if isinstance(file_id, str) and file_id:
        return file_id
    return hashlib.sha1(data).hexdigest()


def check_upload_size(what: str, data: bytes) -> None:
    """ValueError when an upload is larger than :data:`MAX_UPLOAD_BYTES`: every page's
    check, and its message ("``what`` is 61.3 MB; uploads are limited to 200 MB")."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(
            f"{what} is {len(data) / 2**20:.1f} MB; uploads are limited to "
            f"{MAX_UPLOAD_BYTES // 2**20} MB"
        )


def _upload_histograms(upload: Any) -> tuple[str, dict[str, Histogram]]:
    data = upload.getvalue()
    check_upload_size(upload.name, data)
    upload_id = _upload_id(upload, data)
    return upload_id, _parse_histograms(upload_id, upload.name, data)


def read_upload(upload, kind: str, layer: str | None = None) -> Source:
    """A Source from an uploaded file; ValueError says what was wrong and what we expect.

    ``upload`` is anything with ``.name`` and ``.getvalue()`` (a Streamlit UploadedFile).
    ``kind`` is "samples" or "histogram"; ``layer`` picks one layer of a multi-layer
    histogram file (the first by default).
    """
    if kind == "samples":
        data = upload.getvalue()
        check_upload_size(upload.name, data)
        upload_id = _upload_id(upload, data)
        x = _parse_samples(upload_id, upload.name, data)  # refuses NaN, inf and no samples
        key = f"samples:{upload_id}"
        h = _from_samples(key, DEFAULT_BINS, False, x)
        return Source("samples", upload.name, h, samples=x, key=key)
    upload_id, hists = _upload_histograms(upload)
    name = layer if layer in hists else next(iter(hists))
    label = upload.name if len(hists) == 1 else f"{upload.name}: {name}"
    return Source("histogram", label, hists[name], layer=name, key=f"histogram:{upload_id}:{name}")


# --------------------------------------------------------------------------------------
# widgets
# --------------------------------------------------------------------------------------
def _default(key: str, value: Any) -> None:
    """Give a widget its starting value through session state (not ``value=``), so that a
    query string or a callback can set it too without Streamlit's double-default warning."""
    if key not in st.session_state:
        st.session_state[key] = value


def histogram_source(key: str, default_kind: str = "model") -> Source:
    """Sidebar widgets choosing one histogram; returns it.

    The page below never stops here: while an upload is awaited (or the Layers page has
    handed nothing over yet) ``st.info`` says so and the last good source is returned,
    so every control the page draws after this stays drawn. A control that is not drawn
    in a run loses its state in the browser, which then sends its minimum back (issue
    10, problem 1). A bad upload shows ``st.error`` saying what was wrong, and the page
    keeps showing the last good source (the previous view is not lost).
    """
    kinds = list(SOURCE_KINDS)
    _default(f"{key}_kind", default_kind)
    kind = st.sidebar.radio(
        "Histogram", kinds, format_func=SOURCE_KINDS.get, key=f"{key}_kind",
        persist_state=state.KEEP,
    )  # fmt: skip
    last_key = f"{key}_last_good"
    try:
        source = _choose(key, kind)
    except ValueError as exc:
        source = st.session_state.get(last_key) or _default_model_source(key)
        text.error("Could not use that file", exc,
                   f"\n\nStill showing the previous view: {plain(source.label)}.")  # fmt: skip
    if source is None:  # waiting for a file: keep the previous view meanwhile
        source = st.session_state.get(last_key) or _default_model_source(key)
        st.info(_waiting_note(kind) + f" Showing {plain(source.label)} meanwhile.")
    st.session_state[last_key] = source
    return source


def _waiting_note(kind: str) -> str:
    if kind == "samples":
        return "Upload a file in the sidebar: raw activation samples as .npy (any shape) or .csv."
    if kind == "layers":
        return (
            "Nothing handed over from the Layers page in this session: upload a multi-layer "
            "file or collect from an ONNX model there, then select a row."
        )
    return (
        "Upload a file in the sidebar: a histogram as the project's multi-layer .npz, or "
        ".npy / .csv / .json (see calib/io/ for the layouts)."
    )


def _choose(key: str, kind: str) -> Source | None:
    """The chosen source, None while it waits for a file; ValueError for a bad file."""
    if kind == "model":
        return _model_source(key)
    if kind == "demo":
        names = list(DEMOS)
        _default(f"{key}_demo", names[0])
        name = st.sidebar.selectbox("Demo", names, key=f"{key}_demo", persist_state=state.KEEP)
        st.sidebar.caption(DEMOS[name].what)
        h = _demo(name, DEFAULT_BINS)
        # A dead layer is its all-zero histogram: samples of zeros would make a zero spike.
        x = None if h.is_dead else _demo_samples(name)
        return Source("demo", name, h, samples=x, key=f"demo:{name}")
    if kind == "layers":
        return _layers_source(key)
    types = SAMPLE_TYPES if kind == "samples" else HISTOGRAM_TYPES
    # No type= filter: the browser would refuse another file without a word to the page,
    # which would go on showing the previous file's error; the readers name the problem.
    upload = state.file_uploader(
        st.sidebar, SOURCE_KINDS[kind], key=f"{key}_{kind}_file",
        help="Accepted: " + ", ".join(f".{t}" for t in types) + ".",
    )  # fmt: skip
    if upload is None:
        return None
    try:
        if kind == "samples":
            return read_upload(upload, kind)
        _, hists = _upload_histograms(upload)
    except ValueError:
        raise
    except Exception as exc:  # an untrusted file must never put a traceback on the page
        raise ValueError(
            f"{upload.name} could not be read ({type(exc).__name__}: {exc}); expected "
            + ("raw samples as .npy or .csv" if kind == "samples" else "a histogram file")
        ) from exc
    layer = _layer_picker(f"{key}_upload_layer", list(hists)) if len(hists) > 1 else None
    return read_upload(upload, kind, layer)


def _layer_picker(layer_key: str, layers: list[str], default: str | None = None) -> str:
    s = st.session_state
    # written back on every run: another file's layers make a new widget, which the
    # browser would draw at its first option whatever the page kept
    keep = s.get(layer_key) in layers
    s[layer_key] = s[layer_key] if keep else (default if default in layers else layers[0])
    return st.sidebar.selectbox("Layer", layers, key=layer_key, persist_state=state.KEEP)


# --------------------------------------------------------------------------------------
# histograms the Layers page hands over (an upload, or a collection from an ONNX model)
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class HistogramSet:
    """A multi-layer file held in the session: ``key`` names it in caches."""

    key: str
    label: str
    hists: Mapping[str, Histogram]


SHARED = "calib_layers_histograms"  # the session key of the HistogramSet Layers hands over


def share_histograms(key: str, label: str, hists: Mapping[str, Histogram]) -> None:
    """Hand a multi-layer file to the other pages of this session (source kind "layers")."""
    held = st.session_state.get(SHARED)
    if held is None or held.key != key:
        st.session_state[SHARED] = HistogramSet(key, label, hists)


def shared_histograms() -> HistogramSet | None:
    """What the Layers page handed over in this session, if anything."""
    return st.session_state.get(SHARED)


def _layers_source(key: str) -> Source | None:
    held = shared_histograms()
    if held is None:
        return None
    layers = list(held.hists)
    name = _layer_picker(f"{key}_layers_layer", layers)
    st.sidebar.caption(f"From the Layers page: {plain(held.label)}.")
    return Source(
        "layers", f"{held.label}: {name}", held.hists[name], layer=name,
        key=f"layers:{held.key}:{name}",
    )  # fmt: skip


def model_id(key: str) -> str:
    """The shipped model this page shows (``{key}_model``), or the first one shipped."""
    shipped = shipped_models()
    model = st.session_state.get(f"{key}_model")
    return model if model in shipped else next(iter(shipped), DEFAULT_MODEL)


def _model_layer(key: str, model: str, layers: list[str]) -> str:
    layer = st.session_state.get(f"{key}_model_layer")
    if layer in layers:
        return layer
    default = MODELS[model].default_layer
    return default if default in layers else layers[0]


def _model_source_of(model: str, layer: str) -> Source:
    m = MODELS[model]
    hists = model_histograms(model)
    label = f"{m.label}: {short_name(layer)}"
    return Source("model", label, hists[layer], layer=layer, key=f"model:{model}:{layer}")


def _default_model_source(key: str) -> Source:
    """The real model's layer this page last showed (or the default), without a widget."""
    model = model_id(key)
    return _model_source_of(model, _model_layer(key, model, list(model_histograms(model))))


def model_picker(key: str, where: Any = None) -> str:
    """A select box of the shipped models (``calib.models``) under ``{key}_model``; the id."""
    where = where if where is not None else st.sidebar
    shipped = shipped_models()
    _default(f"{key}_model", model_id(key))
    if st.session_state[f"{key}_model"] not in shipped:
        st.session_state[f"{key}_model"] = model_id(key)
    model = where.selectbox(
        "Model", list(shipped), format_func=lambda k: MODELS[k].label, key=f"{key}_model",
        persist_state=state.KEEP,
        help=" ".join(f"{m.label}: {m.description}" for m in shipped.values()),
    )  # fmt: skip
    return str(model)


def _model_source(key: str) -> Source:
    model = model_picker(key)
    layers = list(model_histograms(model))
    layer_key = f"{key}_model_layer"
    st.session_state[layer_key] = _model_layer(key, model, layers)
    # kept while another kind of source is shown, so that coming back finds the same layer
    layer = st.sidebar.selectbox(
        "Layer", layers, key=layer_key, persist_state=state.KEEP, format_func=short_name,
        help=f"ONNX name: {st.session_state[layer_key]}",
    )  # fmt: skip
    return _model_source_of(model, layer)


# --------------------------------------------------------------------------------------
# histogram sizes
# --------------------------------------------------------------------------------------
def hist_bin_choices(source: Source) -> tuple[int, ...]:
    """The histogram sizes the slider offers: any of ``SAMPLE_BIN_CHOICES`` for raw
    samples; for a binned histogram, the powers of two below its size, and its size."""
    if source.samples is not None:
        return SAMPLE_BIN_CHOICES
    n = source.hist.n_bins
    return (*(b for b in _POW2_BINS if b < n), n)


def native_bins(source: Source) -> int:
    """The histogram size a source starts at: its own, or DEFAULT_BINS for samples."""
    return DEFAULT_BINS if source.samples is not None else source.hist.n_bins


def snap_hist_bins(value: Any, choices: tuple[int, ...], default: int) -> int:
    """``value`` if it is one of ``choices``, else the nearest choice (on a log scale);
    ``default`` when value is None or not a positive number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    if not (math.isfinite(v) and v > 0):
        return default
    if int(v) in choices and v == int(v):
        return int(v)
    return min(choices, key=lambda c: abs(math.log(c / v)))
