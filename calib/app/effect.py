"""The Effect page's widgets, caches and sections (pages/4_Effect.py wires them in order).

Every section reads one report, the dict of ``calib.evaluate.read_report``: a shipped
model's results (``calib.models``: all-MiniLM-L6-v2, EfficientNet-Lite0) or an uploaded
model's, which ``calib.evaluate.evaluate`` computes here under a progress bar. Widget
keys start with ``effect_``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from calib import evaluate
from calib.app import effect_models as em
from calib.app import sources, state, text
from calib.app.charts import plot
from calib.app.layers import EXPLORE
from calib.app.text import plain
from calib.figures.effect import keep_float_figure, methods_figure, proxy_figure
from calib.histogram import Histogram
from calib.models import DEFAULT_MODEL, MODELS, short_name
from calib.numbers import DB_FORMAT, PCT_FORMAT, db_cell, fmt, fmt_db, plural

__all__ = [
    "APP_MAX_FLOAT",
    "APP_MAX_TENSORS",
    "APP_WORKERS",
    "EXPLORE",
    "HELP",
    "SHIPPED_PATH",
    "Shown",
    "choose_report",
    "explore_params",
    "keep_float_section",
    "methods_section",
    "proxy_section",
    "report_download",
    "run_upload",
    "sensitivity_table",
    "shipped_report",
    "summary",
]

SHIPPED_PATH = MODELS[DEFAULT_MODEL].effect  # the default model's results (calib.models)
APP_MAX_TENSORS = 64
"""An upload quantizing more tensors is refused here (two runs of the evaluation set per
tensor): the command line (``python -m calib evaluate``) has no such cap."""
APP_MAX_FLOAT = 8
"""The keep-in-float search's most steps in the app."""
SEARCH_SQNR_DB = evaluate.SEARCH_SQNR_DB  # an upload's search runs to it, cut at the target
APP_WORKERS = 1
"""Processes per evaluation in the app: the server is shared, so one (the command line
takes ``--workers``)."""

HELP = """
**What is measured.** The model is copied with a QuantizeLinear -> DequantizeLinear pair
(int8, symmetric, zero point 0, scale = amax / 127) on each quantized activation: by
default the inputs of every MatMul, Gemm and Conv that are not weights, as a real INT8
deployment quantizes them. Weights stay in float, so that what you see is the
calibration's doing. The float and the fake-quantized model run on the same held-out
inputs, and the outputs are compared: **SQNR** (signal power over error power, in dB;
higher is better, 30 dB is an error of 0.1% of the power) and the mean **cosine** over
samples.

**Methods**: every tensor quantized with each calibration's clips. **Sensitivity**: the
output SQNR with *only this* tensor quantized (low: this tensor hurts), and with *all but
this* (high: leaving it in float helps). **Keep in float**: the fewest tensors whose
return to float brings the output to the target, found greedily. **Does the histogram
predict it?**: each tensor's SQNR of the clip computed from its histogram alone (what
the Layers page ranks by) against the measured only-this output SQNR.
"""

_METHOD_COLUMNS = {  # dB as every dB of the app is written (calib.numbers)
    "output SQNR (dB)": st.column_config.NumberColumn(format=DB_FORMAT),
    "cosine": st.column_config.NumberColumn(format="%.4g"),
    "max abs error": st.column_config.NumberColumn(format="%.4g"),
}
_SENSITIVITY_COLUMNS = {
    "tensor": st.column_config.TextColumn(
        "tensor", width="medium", help="The ONNX name's last parts; the full name is last."
    ),
    "layer": st.column_config.TextColumn("ONNX name", width="large"),
    "only this (dB)": st.column_config.NumberColumn(format=DB_FORMAT),
    "all but this (dB)": st.column_config.NumberColumn(format=DB_FORMAT),
    "histogram SQNR (dB)": st.column_config.NumberColumn(format=DB_FORMAT),
    "KL": st.column_config.NumberColumn(format="%.4g"),
    "clipped %": st.column_config.NumberColumn(format=PCT_FORMAT),
    "amax": st.column_config.NumberColumn(format="%.4g"),
}


shipped_report = em.shipped_report  # a shipped model's results, by its id (calib.models)


@dataclasses.dataclass(frozen=True)
class Shown:
    """The report on screen, whose it is, and (for an upload) the histograms it was
    calibrated from, which Explore opens through the session."""

    doc: dict[str, Any]
    label: str
    key: str = ""  # the upload's cache key; "" for the shipped results
    hists: Mapping[str, Histogram] | None = None
    model: str = ""  # the shipped model's id (calib.models); "" for an upload
    # an upload's keep-in-float target: its search ran to SEARCH_SQNR_DB and is cut here
    # (calib.evaluate.keep_float_at) after the ranking is picked; None for shipped results
    target: float | None = None


@st.cache_resource(show_spinner=False, max_entries=2)
def run_upload(
    key: str, _model: bytes, _inputs: bytes, _eval: bytes | None, target: float, weights: bool,
    sensitivity_of: str = evaluate.BEST,
) -> tuple[dict[str, Any], dict[str, Histogram]]:  # fmt: skip
    """An uploaded model evaluated on its uploaded inputs (a held-out share of the
    calibration inputs when no evaluation inputs are given), under a progress bar, in a
    child process under the app's time and memory budget (``calib.sandbox``): the report
    and the histograms."""
    from calib import sandbox

    for what, data in (("the model file", _model), ("the inputs file", _inputs),
                       ("the evaluation inputs file", _eval)):  # fmt: skip
        if data is not None:
            sources.check_upload_size(what, data)
    bar = st.progress(0.0, text="Collecting histograms…")

    def progress(p: sandbox.SandboxProgress) -> None:
        bar.progress(p.fraction or 0.0, text=p.text)

    options = {
        "target_sqnr_db": target, "weights": weights, "max_float": APP_MAX_FLOAT,
        "max_tensors": APP_MAX_TENSORS, "workers": APP_WORKERS, "sensitivity_of": sensitivity_of,
    }  # fmt: skip
    from calib.app import jobs

    try:
        with jobs.page_work() as cancel:  # the child ends with this page run
            return sandbox.evaluate_upload(
                _model, _inputs, _eval, options=options, progress=progress, cancel=cancel
            )
    finally:
        bar.empty()


def _request(key: str) -> None:
    st.session_state["effect_requested"] = key


def choose_report() -> Shown:
    """The report to show, and whose: the shipped one, or an upload's once evaluated."""
    ids = em.shipped_ids()
    if st.session_state.get("effect_src") not in (*ids, "upload"):
        st.session_state["effect_src"] = ids[0] if ids else "upload"
    src = st.sidebar.radio(
        "Results", [*ids, "upload"], key="effect_src", persist_state=state.KEEP,
        format_func=lambda k: f"{MODELS[k].label} (shipped)" if k in MODELS else "Your model",
        help=" ".join(f"{MODELS[k].label}: {MODELS[k].description}" for k in ids),
    )  # fmt: skip
    first = src if src in ids else (ids[0] if ids else "")
    label = em.model_label(first) if first else "no shipped results"
    shipped = shipped_report(first) if first else None
    if src != "upload":
        return Shown(shipped, label, model=src)
    sb = st.sidebar
    model = state.file_uploader(sb, "ONNX model", type=["onnx"], key="effect_model")
    inputs = state.file_uploader(
        sb,
        "Calibration inputs", type=["npz"], key="effect_inputs",
        help="An .npz with one array per model input, named after it (samples on axis 0), "
        "or batches <input>__b<k>.",
    )  # fmt: skip
    held = state.file_uploader(
        sb,
        "Evaluation inputs (optional)", type=["npz"], key="effect_eval",
        help="Without them, the last 20% of the calibration inputs is held out.",
    )  # fmt: skip
    target = sb.number_input(
        "Target output SQNR (dB)", 0.0, SEARCH_SQNR_DB, evaluate.DEFAULT_TARGET_SQNR_DB, 1.0,
        key="effect_target", persist_state=state.KEEP,
    )  # fmt: skip
    weights = sb.checkbox(
        "Quantize weights too (per channel, max)", key="effect_weights", persist_state=state.KEEP
    )
    ranked = sb.selectbox(
        "Rank the tensors under", em.UPLOAD_RANKINGS, key="effect_sensitivity_of",
        persist_state=state.KEEP,
        help="The calibration whose per-tensor sensitivity and keep-in-float list are "
        "measured (best: the highest output SQNR).",
    )  # fmt: skip
    if model is None or inputs is None:
        st.info(
            "Upload an ONNX model and an .npz of calibration inputs, then press Evaluate: "
            "histograms are collected, every method runs, and each tensor's sensitivity is "
            f"measured (two runs per tensor). Showing {label} meanwhile."
        )
        return _shipped_or_stop(shipped, label, first)
    # the target is not part of it: only the keep-in-float answer depends on it (em.ranking)
    key = "|".join(
        [model.file_id, inputs.file_id, held.file_id if held else "", str(weights), str(ranked)]
    )
    # a callback, not the button's return value: the request survives a rerun
    sb.button("Evaluate", key="effect_run", type="primary", on_click=_request, args=(key,))
    if st.session_state.get("effect_requested") != key:
        st.info(
            f"Press Evaluate in the sidebar to run {plain(model.name)}. Showing {label} meanwhile."
        )
        return _shipped_or_stop(shipped, label, first)
    kept = st.session_state.get("effect_result")  # this session's own, across pages
    if kept is not None and kept[0] == key:
        doc, hists = kept[1], kept[2]
    else:
        try:
            held_data = held.getvalue() if held else None
            doc, hists = run_upload(
                key, model.getvalue(), inputs.getvalue(), held_data, SEARCH_SQNR_DB,
                bool(weights), str(ranked),
            )  # fmt: skip
        except (ValueError, ImportError) as exc:
            st.session_state.pop("effect_requested", None)  # not retried on every rerun
            text.error(f"Could not evaluate {plain(model.name)}", exc, f". Showing {label}.")
            return _shipped_or_stop(shipped, label, first)
        st.session_state["effect_result"] = (key, doc, hists)  # one: the next replaces it
    return Shown(
        doc, f"{model.name} on {inputs.name}", f"effect:{key}", hists, target=float(target)
    )


def _shipped_or_stop(doc: dict[str, Any] | None, label: str, model: str) -> Shown:
    """The shipped results shown while an upload waits; none shipped: the page stops."""
    if doc is None:
        st.stop()
    return Shown(doc, label, model=model)


def summary(doc: Mapping[str, Any], label: str) -> None:
    q = doc["quantized"]
    run = doc.get("run", {})
    st.caption(
        f"**{plain(label)}**. Quantized: {plain(q['description'])}; int{q['num_bits']}, "
        f"weights {plain(q['weights'])}. Evaluation: {plain(doc['evaluation']['data'])} "
        f"({plain(doc['evaluation']['samples'])} samples). "
        f"{plain(run.get('runs', '?'))} runs on {plain(run.get('backend', '?'))}."
    )


def methods_section(doc: Mapping[str, Any]) -> None:
    st.subheader("Which calibrator is best for this model")
    plot(methods_figure(doc["methods"], doc.get("calibration", "")), "effect_methods")
    rows = [
        {
            "calibration": m["label"],
            "output SQNR (dB)": db_cell(m["output_sqnr_db"]),
            "cosine": m["cosine"],
            "max abs error": m["max_abs_error"],
            "quantized": m["quantized"],
        }
        for m in doc["methods"]
    ]
    top = em.add_classifier_columns(rows, doc["methods"], em.METHOD_TOP)
    st.dataframe(
        pd.DataFrame(rows), hide_index=True, key="effect_methods_table",
        column_config={**_METHOD_COLUMNS, **em.percent_columns(top)},
    )  # fmt: skip
    left = {m["label"]: m["left_float"] for m in doc["methods"] if m["left_float"]}
    for name, why in left.items():
        first = plain(next(iter(why.values())))
        st.caption(f"{plain(name)} leaves {plural(len(why), 'tensor')} in float: {first}")


def sensitivity_table(doc: Mapping[str, Any]) -> str | None:
    """The ranked table; the selected row's tensor, if any."""
    st.subheader(f"Which tensors hurt ({plain(doc.get('calibration', ''))})")
    rows = doc["sensitivity"]
    if not rows:
        st.info("No sensitivity was measured for these results.")
        return None
    records = [
        {
            "tensor": short_name(r["layer"]),
            "only this (dB)": db_cell(r["only_this_sqnr_db"]),
            "all but this (dB)": db_cell(r["all_but_this_sqnr_db"]),
            "histogram SQNR (dB)": db_cell(r["hist_sqnr_db"]),
            "KL": r["kl"],
            "clipped %": 100.0 * r["clipped"],
            "amax": r["amax"],
            "flags": ", ".join(r["flags"]),
        }
        for r in rows
    ]
    top = em.add_classifier_columns(records, rows, em.SENSITIVITY_TOP)
    for rec, r in zip(records, rows, strict=True):
        rec["layer"] = r["layer"]  # the full ONNX name, last
    table = pd.DataFrame(records)
    if table["KL"].isna().all():  # not an entropy calibration: no KL to show
        table = table.drop(columns="KL")
    event = st.dataframe(
        table,
        key="effect_sensitivity",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        column_config={**_SENSITIVITY_COLUMNS, **em.percent_columns(top)},
        width="stretch",
    )
    picked = event.selection.rows if event is not None else []
    return str(table["layer"].iloc[picked[0]]) if picked else None


def explore_params(shown: Shown, layer: str) -> dict[str, str] | None:
    """Explore's query string for a tensor: for an upload, its histogram handed over in the
    session (as Layers hands its own); for the shipped results, its histogram in the
    shipped model's collection. None when Explore has no histogram of it."""
    if shown.hists is not None:
        if layer not in shown.hists:
            return None
        sources.share_histograms(shown.key, shown.label, shown.hists)
        return em.explore_link(shown.doc, layer, src="layers")
    return em.explore_link(shown.doc, layer, model=shown.model)


def keep_float_section(doc: Mapping[str, Any]) -> None:
    st.subheader("What to keep in float")
    steps = doc["keep_float"]
    start = doc.get("all_quantized_sqnr_db")
    target = doc.get("target_sqnr_db")
    if doc.get("reached") is None or start is None or target is None:
        st.info("No keep-in-float search for these results.")
        return
    if not steps:
        st.success(
            f"Every tensor quantized already gives {fmt_db(start)}, "
            f"at or above the target of {fmt(target, 4, unit=' dB')}: nothing to keep in float."
        )
        return
    plot(keep_float_figure(steps, start, target), "effect_keep_float")
    done = "reaches" if doc["reached"] else "does not reach"
    st.caption(
        f"Greedy: each step returns to float the tensor that raises the output SQNR most. "
        f"{len(steps)} tensors {done} the target of {fmt(target, 4, unit=' dB')}."
    )
    records = [
        {
            "step": i + 1,
            "back to float": short_name(s["layer"]),
            "output SQNR (dB)": db_cell(s["output_sqnr_db"]),
        }
        for i, s in enumerate(steps)
    ]
    top = em.add_classifier_columns(records, steps, em.KEEP_FLOAT_TOP)
    for rec, s in zip(records, steps, strict=True):
        rec["ONNX name"] = s["layer"]
    st.dataframe(
        pd.DataFrame(records), hide_index=True, key="effect_keep_float_table",
        column_config=em.percent_columns(top),
    )  # fmt: skip


def proxy_section(doc: Mapping[str, Any]) -> None:
    st.subheader("Does the histogram predict it?")
    rows = doc["sensitivity"]
    rho = doc.get("rank_correlation", {})
    if not rows:
        st.info("No sensitivity was measured for these results: nothing to set against.")
        return
    if not rho:
        st.info("No histogram-level numbers for these results (clips from a cache).")
        return
    plot(proxy_figure(rows, rho.get("hist_sqnr_db", math.nan)), "effect_proxy")
    st.caption(
        f"Spearman's rank correlation with the measured only-this output SQNR over "
        f"{len(rows)} tensors: histogram SQNR {fmt(rho.get('hist_sqnr_db'), 2, fixed=True)}, "
        f"KL {fmt(rho.get('kl'), 2, fixed=True)}, clipped mass "
        f"{fmt(rho.get('clipped'), 2, fixed=True)} (+1 or -1: the histogram ranks the "
        "tensors exactly as the model does; 0: not at all)."
    )


def report_download(doc: Mapping[str, Any], raw: bool | str = True) -> None:
    """The report as JSON (the shipped file as shipped: ``raw``, the shipped model's id or
    True for the default one)."""
    path = MODELS[raw].effect if isinstance(raw, str) and raw in MODELS else SHIPPED_PATH
    data = path.read_bytes() if raw else json.dumps(_plain(doc), indent=1).encode()
    st.download_button(
        "Download the report (JSON)", data, file_name="effect.json", mime="application/json",
        key="effect_download",
    )  # fmt: skip


def _plain(value: Any) -> Any:
    """A read report back to strict JSON data (the core's own rule for nan and inf)."""
    from calib.report import json_value

    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return json_value(value)
