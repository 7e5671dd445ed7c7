"""The Effect page's widgets, caches and sections (pages/4_Effect.py wires them in order).

Every section reads one report, the dict of ``calib.evaluate.read_report``: the shipped
results on all-MiniLM-L6-v2 (``assets/minilm_effect.json``) or an uploaded model's, which
``calib.evaluate.evaluate`` computes here under a progress bar. Widget keys start with
``effect_``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from calib import evaluate
from calib.app import sources
from calib.app.charts import plot
from calib.app.layers import EXPLORE
from calib.app.links import explore_query
from calib.figures.effect import keep_float_figure, methods_figure, proxy_figure
from calib.histogram import Histogram
from calib.numbers import fmt

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

SHIPPED_PATH = Path(__file__).resolve().parents[2] / "assets" / "minilm_effect.json"
APP_MAX_TENSORS = 64
"""An upload quantizing more tensors is refused here (two runs of the evaluation set per
tensor): the command line (``python -m calib evaluate``) has no such cap."""
APP_MAX_FLOAT = 8
"""The keep-in-float search's most steps in the app."""
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

_SENSITIVITY_COLUMNS = {
    "layer": st.column_config.TextColumn("tensor", width="large"),
    "only this (dB)": st.column_config.NumberColumn(format="%.2f"),
    "all but this (dB)": st.column_config.NumberColumn(format="%.2f"),
    "histogram SQNR (dB)": st.column_config.NumberColumn(format="%.2f"),
    "KL": st.column_config.NumberColumn(format="%.4g"),
    "clipped %": st.column_config.NumberColumn(format="%.4g"),
    "amax": st.column_config.NumberColumn(format="%.4g"),
}


@st.cache_data(show_spinner=False)
def shipped_report() -> dict[str, Any]:
    """The real model's results, shipped in assets/."""
    return evaluate.read_report(SHIPPED_PATH.read_bytes())


@dataclasses.dataclass(frozen=True)
class Shown:
    """The report on screen, whose it is, and (for an upload) the histograms it was
    calibrated from, which Explore opens through the session."""

    doc: dict[str, Any]
    label: str
    key: str = ""  # the upload's cache key; "" for the shipped results
    hists: Mapping[str, Histogram] | None = None


@st.cache_resource(show_spinner=False, max_entries=2)
def run_upload(
    key: str, _model: bytes, _inputs: bytes, _eval: bytes | None, target: float, weights: bool
) -> tuple[dict[str, Any], dict[str, Histogram]]:
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
        "max_tensors": APP_MAX_TENSORS, "workers": APP_WORKERS,
    }  # fmt: skip
    try:
        return sandbox.evaluate_upload(_model, _inputs, _eval, options=options, progress=progress)
    finally:
        bar.empty()


def _request(key: str) -> None:
    st.session_state["effect_requested"] = key


def choose_report() -> Shown:
    """The report to show, and whose: the shipped one, or an upload's once evaluated."""
    shipped = shipped_report()
    label = "all-MiniLM-L6-v2 (shipped results)"
    src = st.sidebar.radio(
        "Results",
        ["shipped", "upload"],
        format_func={"shipped": "all-MiniLM-L6-v2 (shipped)", "upload": "Your model"}.get,
        key="effect_src",
    )
    if src == "shipped":
        return Shown(shipped, label)
    sb = st.sidebar
    model = sb.file_uploader("ONNX model", type=["onnx"], key="effect_model")
    inputs = sb.file_uploader(
        "Calibration inputs", type=["npz"], key="effect_inputs",
        help="An .npz with one array per model input, named after it (samples on axis 0), "
        "or batches <input>__b<k>.",
    )  # fmt: skip
    held = sb.file_uploader(
        "Evaluation inputs (optional)", type=["npz"], key="effect_eval",
        help="Without them, the last 20% of the calibration inputs is held out.",
    )  # fmt: skip
    target = sb.number_input(
        "Target output SQNR (dB)", 0.0, 120.0, evaluate.DEFAULT_TARGET_SQNR_DB, 1.0,
        key="effect_target",
    )  # fmt: skip
    weights = sb.checkbox("Quantize weights too (per channel, max)", key="effect_weights")
    if model is None or inputs is None:
        st.info(
            "Upload an ONNX model and an .npz of calibration inputs, then press Evaluate: "
            "histograms are collected, every method runs, and each tensor's sensitivity is "
            f"measured (two runs per tensor). Showing {label} meanwhile."
        )
        return Shown(shipped, label)
    key = "|".join(
        [model.file_id, inputs.file_id, held.file_id if held else "", str(target), str(weights)]
    )
    # a callback, not the button's return value: the request survives a rerun
    sb.button("Evaluate", key="effect_run", type="primary", on_click=_request, args=(key,))
    if st.session_state.get("effect_requested") != key:
        st.info(f"Press Evaluate in the sidebar to run {model.name}. Showing {label} meanwhile.")
        return Shown(shipped, label)
    try:
        held_data = held.getvalue() if held else None
        doc, hists = run_upload(
            key, model.getvalue(), inputs.getvalue(), held_data, float(target), bool(weights)
        )
    except (ValueError, ImportError) as exc:
        st.session_state.pop("effect_requested", None)  # not retried on every rerun
        st.error(f"Could not evaluate {model.name}: {exc}. Showing {label}.")
        return Shown(shipped, label)
    return Shown(doc, f"{model.name} on {inputs.name}", f"effect:{key}", hists)


def summary(doc: Mapping[str, Any], label: str) -> None:
    q = doc["quantized"]
    run = doc.get("run", {})
    st.caption(
        f"**{label}**. Quantized: {q['description']}; int{q['num_bits']}, weights "
        f"{q['weights']}. Evaluation: {doc['evaluation']['data']} "
        f"({doc['evaluation']['samples']} samples). "
        f"{run.get('runs', '?')} runs on {run.get('backend', '?')}."
    )


def methods_section(doc: Mapping[str, Any]) -> None:
    st.subheader("Which calibrator is best for this model")
    plot(methods_figure(doc["methods"], doc.get("calibration", "")), "effect_methods")
    rows = [
        {
            "calibration": m["label"],
            "output SQNR (dB)": m["output_sqnr_db"],
            "cosine": m["cosine"],
            "max abs error": m["max_abs_error"],
            "quantized": m["quantized"],
        }
        for m in doc["methods"]
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="effect_methods_table")
    left = {m["label"]: m["left_float"] for m in doc["methods"] if m["left_float"]}
    for name, why in left.items():
        st.caption(f"{name} leaves {len(why)} tensors in float: {next(iter(why.values()))}")


def sensitivity_table(doc: Mapping[str, Any]) -> str | None:
    """The ranked table; the selected row's tensor, if any."""
    st.subheader(f"Which tensors hurt ({doc.get('calibration', '')})")
    rows = doc["sensitivity"]
    if not rows:
        st.info("No sensitivity was measured for these results.")
        return None
    table = pd.DataFrame(
        [
            {
                "layer": r["layer"],
                "only this (dB)": r["only_this_sqnr_db"],
                "all but this (dB)": r["all_but_this_sqnr_db"],
                "histogram SQNR (dB)": r["hist_sqnr_db"],
                "KL": r["kl"],
                "clipped %": 100.0 * r["clipped"],
                "amax": r["amax"],
                "flags": ", ".join(r["flags"]),
            }
            for r in rows
        ]
    )
    if table["KL"].isna().all():  # not an entropy calibration: no KL to show
        table = table.drop(columns="KL")
    event = st.dataframe(
        table,
        key="effect_sensitivity",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        column_config=_SENSITIVITY_COLUMNS,
        width="stretch",
    )
    picked = event.selection.rows if event is not None else []
    return str(table["layer"].iloc[picked[0]]) if picked else None


def explore_params(shown: Shown, layer: str) -> dict[str, str] | None:
    """Explore's query string for a tensor: for an upload, its histogram handed over in the
    session (as Layers hands its own); for the shipped results, its Linear layer's input
    in the shipped histograms. None when Explore has no histogram of it."""
    doc = shown.doc
    method, _, variant = str(doc.get("calibration", "")).partition(":")
    common = {
        "variant": variant if method == "entropy" else None,
        "num_bits": doc["quantized"]["num_bits"],
    }
    if shown.hists is not None:
        if layer not in shown.hists:
            return None
        sources.share_histograms(shown.key, shown.label, shown.hists)
        return explore_query("layers", layer=layer, **common)
    row = next((r for r in doc["sensitivity"] if r["layer"] == layer), None)
    name = row.get("explore") if row else None
    return explore_query("model", layer=name, **common) if name else None


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
            f"Every tensor quantized already gives {fmt(start, 2, fixed=True, unit=' dB')}, "
            f"at or above the target of {fmt(target, 4, unit=' dB')}: nothing to keep in float."
        )
        return
    plot(keep_float_figure(steps, start, target), "effect_keep_float")
    done = "reaches" if doc["reached"] else "does not reach"
    st.caption(
        f"Greedy: each step returns to float the tensor that raises the output SQNR most. "
        f"{len(steps)} tensors {done} the target of {fmt(target, 4, unit=' dB')}."
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "step": i + 1,
                    "back to float": s["layer"],
                    "output SQNR (dB)": s["output_sqnr_db"],
                }
                for i, s in enumerate(steps)
            ]
        ),
        hide_index=True,
        key="effect_keep_float_table",
    )


def proxy_section(doc: Mapping[str, Any]) -> None:
    st.subheader("Does the histogram predict it?")
    rows = doc["sensitivity"]
    rho = doc.get("rank_correlation", {})
    if not rows or not rho:
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


def report_download(doc: Mapping[str, Any], raw: bool = True) -> None:
    """The report as JSON (the shipped file as shipped)."""
    data = SHIPPED_PATH.read_bytes() if raw else json.dumps(_plain(doc), indent=1).encode()
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
