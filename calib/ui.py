"""Streamlit widgets the pages share: where a histogram comes from, and its size.

The UI layer: pages import this, this imports figures and the core, never the reverse.
Cached values are immutable (frozen Histograms with read-only arrays) and kept with
``st.cache_resource``, which stores the objects themselves: nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import streamlit as st

from calib import files
from calib.demos import DEMOS, demo_histogram, demo_samples
from calib.histogram import DEFAULT_BINS, Histogram

__all__ = [
    "ASSET_PATH",
    "DEFAULT_LAYER",
    "MAX_UPLOAD_BYTES",
    "MODEL_NAME",
    "SOURCE_KINDS",
    "Source",
    "histogram_source",
    "model_histograms",
    "sized_histogram",
]

ASSET_PATH = Path(__file__).resolve().parent.parent / "assets" / "minilm_histograms.npz"
MODEL_NAME = "all-MiniLM-L6-v2"
# The FFN output of the first block: one [CLS] value near 196 against a bulk below 10.
DEFAULT_LAYER = "encoder.layer.0.output.dense:output"
MAX_UPLOAD_BYTES = 50 * 2**20  # also .streamlit/config.toml's maxUploadSize
SOURCE_KINDS = {
    "model": f"Real model ({MODEL_NAME})",
    "demo": "Built-in demo",
    "histogram": "Upload a histogram",
    "samples": "Upload raw samples",
}
HISTOGRAM_TYPES = ["npz", "npy", "csv", "json"]
SAMPLE_TYPES = ["npy", "csv"]


@dataclasses.dataclass(frozen=True)
class Source:
    """One histogram to look at, and where it came from."""

    kind: str  # a key of SOURCE_KINDS
    label: str  # what the page can print: "all-MiniLM-L6-v2: encoder.layer.0..."
    hist: Histogram  # at its own size
    samples: np.ndarray | None = None  # raw samples, when the user gave them
    layer: str | None = None


# --------------------------------------------------------------------------------------
# cached loading (no widgets)
# --------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def model_histograms() -> dict[str, Histogram]:
    """The real model's per-layer histograms shipped in assets/."""
    return files.load_histograms(ASSET_PATH)


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
def _parse_histograms(data: bytes, name: str) -> dict[str, Histogram]:
    return files.load_histogram_file(io.BytesIO(data), name)


@st.cache_resource(show_spinner=False, max_entries=8)
def _parse_samples(data: bytes, name: str) -> np.ndarray:
    x = files.load_samples_file(io.BytesIO(data), name)
    x.setflags(write=False)
    return x


@st.cache_resource(show_spinner=False, max_entries=64)
def _from_samples(samples_id: int, bins: int, _samples: np.ndarray) -> Histogram:
    # keyed by the samples' identity (they are cached objects), not by hashing them
    return Histogram.from_samples(_samples, bins=bins)


def sized_histogram(source: Source, bins: int) -> Histogram:
    """The source at ``bins`` bins: raw samples are histogrammed again, a histogram is
    merged down (``Histogram.rebin``); a histogram is never split into more bins."""
    if source.samples is not None:
        return _from_samples(id(source.samples), int(bins), source.samples)
    if bins >= source.hist.n_bins:
        return source.hist
    return source.hist.rebin(int(bins))


def read_upload(upload, kind: str) -> Source:
    """A Source from an uploaded file; ValueError says what was wrong and what we expect."""
    data = upload.getvalue()
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(
            f"{upload.name} is {len(data) / 2**20:.1f} MB; uploads are limited to "
            f"{MAX_UPLOAD_BYTES // 2**20} MB"
        )
    if kind == "samples":
        x = _parse_samples(data, upload.name)
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).sum())
            raise ValueError(
                f"{upload.name} holds {bad} non-finite values (NaN or inf) out of {x.size}; "
                "expected finite activation samples"
            )
        h = Histogram.from_samples(x, bins=DEFAULT_BINS)
        return Source("samples", upload.name, h, samples=x)
    hists = _parse_histograms(data, upload.name)
    name = next(iter(hists))
    return Source("histogram", upload.name, hists[name], layer=name)


# --------------------------------------------------------------------------------------
# widgets
# --------------------------------------------------------------------------------------
def histogram_source(key: str, default_kind: str = "model") -> Source:
    """Sidebar widgets choosing one histogram; returns it.

    A bad upload shows ``st.error`` saying what was wrong, and the page keeps showing the
    last good source (the previous view is not lost).
    """
    kinds = list(SOURCE_KINDS)
    kind = st.sidebar.radio(
        "Histogram", kinds, index=kinds.index(default_kind),
        format_func=SOURCE_KINDS.get, key=f"{key}_kind",
    )  # fmt: skip
    last_key = f"{key}_last_good"
    try:
        source = _choose(key, kind)
    except ValueError as exc:
        st.error(f"Could not use that file: {exc}")
        source = st.session_state.get(last_key) or _model_source(key)
    st.session_state[last_key] = source
    return source


def _choose(key: str, kind: str) -> Source:
    if kind == "model":
        return _model_source(key)
    if kind == "demo":
        names = list(DEMOS)
        name = st.sidebar.selectbox("Demo", names, key=f"{key}_demo")
        st.sidebar.caption(DEMOS[name].what)
        x = _demo_samples(name)
        return Source("demo", name, _demo(name, DEFAULT_BINS), samples=x)
    types = SAMPLE_TYPES if kind == "samples" else HISTOGRAM_TYPES
    upload = st.sidebar.file_uploader(SOURCE_KINDS[kind], type=types, key=f"{key}_{kind}_file")
    if upload is None:
        st.info(
            "Upload a file in the sidebar: "
            + (
                "raw activation samples as .npy (any shape) or .csv (numbers)."
                if kind == "samples"
                else "a histogram as the project's multi-layer .npz, or .npy / .csv / .json "
                "(see calib/files.py for the layouts)."
            )
        )
        st.stop()
    source = read_upload(upload, kind)
    if kind == "histogram":
        hists = _parse_histograms(upload.getvalue(), upload.name)
        if len(hists) > 1:
            layer = st.sidebar.selectbox("Layer", list(hists), key=f"{key}_upload_layer")
            source = Source("histogram", f"{upload.name}: {layer}", hists[layer], layer=layer)
    return source


def _model_source(key: str) -> Source:
    hists = model_histograms()
    layers = list(hists)
    index = layers.index(DEFAULT_LAYER) if DEFAULT_LAYER in layers else 0
    layer = st.sidebar.selectbox("Layer", layers, index=index, key=f"{key}_model_layer")
    return Source("model", f"{MODEL_NAME}: {layer}", hists[layer], layer=layer)
