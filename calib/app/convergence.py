"""Layers' convergence section: did the calibration set suffice?

The UI layer (``pages/2_Layers.py`` places it under the grid). A file written by
``python -m calib collect --convergence`` holds each tensor's thresholds after every batch
(:func:`calib.load_convergence`); this draws, for the whole file, the share of tensors whose
amax already sat within 1% of its final value against samples seen, with the samples until
95% and all of them settled (``calib.convergence.settling_table``, the numbers
``python -m calib converge`` prints), and for one tensor each method's amax after each
batch. Traces are read once per file (``st.cache_resource``, keyed by the file's key).
Widget keys start with ``layers_conv``.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from calib import convergence, report
from calib import io as cio
from calib.app import state
from calib.app.charts import plot
from calib.app.layers import Layers
from calib.app.text import plain
from calib.figures.convergence import amax_figure, settled_share_figure
from calib.io import Trace
from calib.models import MODELS

__all__ = ["HOW_TO", "Settled", "file_traces", "settled", "show_convergence", "traced_order"]

LAYER_KEY = "layers_conv_layer"
UPLOAD_KEY = "layers_file"  # Layers' histogram uploader (calib.app.layers.choose_layers)
HOW_TO = (
    "This file holds no convergence traces. Record them while collecting: "
    "`python -m calib collect model.onnx --inputs data.npz --out H.npz --convergence` "
    "stores, after every batch, each tensor's max, percentile and entropy (seed, ONNX "
    "Runtime) thresholds with the histograms; upload `H.npz` here, or run "
    "`python -m calib converge H.npz` for the numbers."
)


@dataclasses.dataclass(frozen=True)
class Settled:
    """What the whole-file chart and table show, computed once per file."""

    table: tuple[convergence.Settling, ...]
    shares: dict[str, tuple[np.ndarray, np.ndarray]]  # method -> settled_share(...)


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_traces(file_key: str, name: str, _data: bytes | None) -> dict[str, Trace]:
    """A file's traces by its key: the shipped model's, or an uploaded .npz's."""
    if _data is None:  # a shipped model's ("model:<id>", calib.models)
        return cio.load_convergence(MODELS[file_key.removeprefix("model:")].histograms)
    return cio.load_convergence(io.BytesIO(_data))


def file_traces(layers: Layers) -> dict[str, Trace]:
    """The traces of the file Layers shows: ``{}`` when it has none (a plain ``.npz``, a
    ``.json``, histograms collected in the app) or can no longer be read."""
    if layers.key.startswith("model:"):
        return _load_traces(layers.key, "", None)
    if layers.key.startswith("upload:"):
        upload = st.session_state.get(UPLOAD_KEY)
        file_id = layers.key.removeprefix("upload:")
        if upload is None or getattr(upload, "file_id", None) != file_id:
            return {}  # the last good upload, no longer in the uploader
        if not upload.name.lower().endswith(".npz"):
            return {}
        try:
            return _load_traces(layers.key, upload.name, upload.getvalue())
        except ValueError:  # Layers has reported what is wrong with the file
            return {}
    return {}


@st.cache_resource(show_spinner=False, max_entries=8)
def settled(file_key: str, tol: float, _traces: Mapping[str, Trace]) -> Settled:
    """``settling_table`` and each method's ``settled_share`` for one file."""
    table = tuple(convergence.settling_table(_traces, tol))
    shares = {row.method: convergence.settled_share(_traces, row.method, tol) for row in table}
    return Settled(table, shares)


def traced_order(ordered: Sequence[report.LayerRow], traces: Mapping[str, Trace]) -> list[str]:
    """The traced tensors in the table's order (worst first)."""
    return [r.layer for r in ordered if r.layer in traces]


def _samples(n: int | None, total: int) -> str:
    if n is None:
        return "never"
    return f"{n} (last batch)" if n == total else str(n)


def _verdict(table: Sequence[convergence.Settling]) -> str:
    """One sentence per method whose thresholds were still moving in the last batch."""
    late = [r.method for r in table if r.samples_95 is not None and r.samples_95 == r.total_samples]
    if not late:
        return (
            "Every method had 95% of its thresholds settled before the last batch: more data "
            "of the same kind would move few of them by more than 1%."
        )
    return (
        f"{plain(', '.join(late))}: 95% of the thresholds settle only with the last batch, so they "
        "were still moving when the data ran out; more calibration data would likely move "
        "them further."
    )


def show_convergence(layers: Layers, ordered: Sequence[report.LayerRow]) -> None:
    """The section: the whole file's settling, then one tensor's amax after each batch."""
    st.subheader("Was the calibration set big enough?")
    traces = file_traces(layers)
    if not traces:
        if layers.key.startswith("onnx:"):  # collected on this page, without traces
            st.info(HOW_TO.replace("This file holds", "Histograms collected here hold", 1))
        else:
            st.info(HOW_TO)
        return
    tol = convergence.DEFAULT_TOL
    done = settled(layers.key, tol, traces)
    st.caption(
        f"A tensor has settled once its amax stays within {tol:.0%} of its final value for "
        "every later batch. The share settled only grows, and reaches 100% at the last "
        "batch by definition; how long before that it gets there is the margin."
    )
    left, right = st.columns(2)
    share = settled_share_figure(done.shares, done.table, tol=tol)
    plot(share, "layers_conv_share", where=left)
    right.dataframe(
        pd.DataFrame(
            {
                "method": [r.method for r in done.table],
                "tensors": [r.tensors for r in done.table],
                "95% settled at": [_samples(r.samples_95, r.total_samples) for r in done.table],
                "all settled at": [_samples(r.samples_all, r.total_samples) for r in done.table],
                "samples": [r.total_samples for r in done.table],
            }
        ),
        hide_index=True,
        key="layers_conv_table",
    )
    right.caption(_verdict(done.table))

    names = traced_order(ordered, traces)
    if not names:
        return
    if st.session_state.get(LAYER_KEY) not in names:
        st.session_state[LAYER_KEY] = names[0]
    layer = st.selectbox(
        "Tensor to follow batch by batch",
        names,
        key=LAYER_KEY,
        persist_state=state.KEEP,
        help="In the table's order (worst first); the first is preselected.",
    )
    trace = traces[layer]
    at = {m: convergence.settled_at(trace, m, tol) for m in trace.amax}
    plot(amax_figure(layer, trace, at, tol=tol), "layers_conv_amax", layer, "convergence")
    samples = np.asarray(trace.samples)
    parts = [f"{plain(m)} after {'never' if j is None else samples[j]}" for m, j in at.items()]
    st.caption(f"Within {tol:.0%} of the final amax from then on: " + "; ".join(parts) + ".")
