"""The Layers page's widgets, caches and sections (pages/2_Layers.py wires them in order).

The UI layer: the page imports this, this imports Streamlit, pandas, the figures and the
core (``calib.report``, numpy only), never the reverse. The rows come from
``calib.report.layer_table`` (the command line's table too), kept in a ``RowStore`` held
with ``st.cache_resource`` per (file, method, variant, bits, target bins, percentile), so a
repeated visit is a dictionary look-up. Uploads are cached by the upload's identity, not
by hashing the bytes. Widget keys start with ``layers_``.
"""

from __future__ import annotations

import dataclasses
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from calib import io as cio
from calib import limits, report
from calib.app import sources, state, text
from calib.app.charts import plot
from calib.app.links import explore_query
from calib.app.text import plain
from calib.explore import max_target_bins
from calib.figures.layers import sqnr_figure
from calib.methods import DEFAULT_NUM_BITS, DEFAULT_PERCENTILE, METHODS, max_code
from calib.models import MODELS, short_name
from calib.numbers import DB_FORMAT, PCT_FORMAT, fmt, plural
from calib.policies import (
    NUM_BITS_CHOICES,
    TARGET_BINS_MIN,
    TYPED_TARGET_BINS_MAX,
    VARIANT_NOTES,
    VARIANTS,
    levels_for,
    resolve_policy,
)
from calib.spec import Spec

__all__ = [
    "CACHE_TYPES",
    "COLUMNS",
    "EXPLORE",
    "HELP",
    "HIST_TYPES",
    "LAYERS_TARGET_BINS_MAX",
    "ORDER",
    "ROW_CACHE_ENTRIES",
    "Layers",
    "RowStore",
    "Settings",
    "cache_findings",
    "check_budget",
    "choose_cache",
    "choose_layers",
    "choose_onnx",
    "choose_settings",
    "collect_upload",
    "explore_note",
    "explore_params",
    "export_notes",
    "export_stem",
    "exports",
    "flag_notes",
    "histograms_npz",
    "load_cache",
    "load_upload",
    "row_store",
    "settings_doc",
    "show_table",
    "sqnr_chart",
    "summary",
    "table_rows",
]

HIST_TYPES = ["npz", "json", "npy", "csv"]
CACHE_TYPES = ["cache", "calib", "table", "txt", "json"]
ROW_CACHE_ENTRIES = 64
LAYERS_TARGET_BINS_MAX = TYPED_TARGET_BINS_MAX  # typed, not a slider (calib.policies)
EXPLORE = "pages/0_Explore.py"

_FLAG_LINES = "\n".join(f"- **{flag}**: {text}" for flag, text in report.FLAG_HELP.items())
HELP = f"""
**Worst first** means the lowest SQNR first: the error the chosen clip causes, rounding
and clipping together, relative to the tensor's own signal power, in dB. It ranks tensors
of any scale, and any method, on one axis, and it is what INT8 loses on that tensor.
Dead tensors and tensors the method refused come before all: they need a look before
anything is exported. Click a column header to sort by it instead.

**Flags** (they explain a row, they do not rank it; a row with none says "{report.NO_FLAG}"):
{_FLAG_LINES}

**A calibration cache** (TensorRT, or ONNX Runtime's calibration.json / .cache) loaded in
the sidebar adds each tensor's cached amax and *cached/calib*; a ratio beyond
{report.DISAGREE_RATIO:g}x either way is a disagreement. The cache itself is checked:
zero, NaN, inf or extreme scales, identical scales, generated names, missing and extra
tensors, the header.
"""

COLUMNS = {
    "tensor": st.column_config.TextColumn(
        "tensor", help="The ONNX name's last parts; the full name is the layer column."
    ),
    "layer": st.column_config.TextColumn("layer", help="Select a row to open it in Explore."),
    "bins": st.column_config.NumberColumn("bins", format="%d"),
    "max": st.column_config.NumberColumn("max", format="%.4g", help="Largest |x| seen."),
    "amax": st.column_config.NumberColumn("amax", format="%.4g", help="The chosen clip."),
    "amax/max": st.column_config.NumberColumn("amax/max", format="%.3f"),
    "clipped %": st.column_config.NumberColumn(
        "clipped %", format=PCT_FORMAT, help="Share of the values beyond the clip."
    ),
    "KL": st.column_config.NumberColumn("KL", format="%.4g", help="At the minimum (entropy)."),
    "SQNR dB": st.column_config.NumberColumn(
        "SQNR dB", format=DB_FORMAT, help="Signal over rounding + clipping error. Sorted on."
    ),
    "zero %": st.column_config.NumberColumn(
        "zero %", format=PCT_FORMAT, help="Share in the bin(s) touching zero."
    ),
    "max/p99.99": st.column_config.NumberColumn(
        "max/p99.99", format="%.2f", help=f"Outliers when >= {report.OUTLIER_RATIO:g}."
    ),
    "flags": st.column_config.TextColumn("flags", width="medium"),
    "cached amax": st.column_config.NumberColumn("cached amax", format="%.4g"),
    "cached/calib": st.column_config.NumberColumn(
        "cached/calib", format="%.3f", help=f"Disagree beyond {report.DISAGREE_RATIO:g}x."
    ),
    "disagree": st.column_config.CheckboxColumn("disagree"),
}
# on screen the flags come early; the exports keep report.COLUMNS' order
ORDER = ("tensor", "SQNR dB", "flags", "amax", "cached amax", "cached/calib", "disagree", "max",
         "amax/max", "clipped %", "KL", "zero %", "max/p99.99", "bins", "layer")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Layers:
    """A multi-layer file: ``key`` identifies it in caches, ``src`` is Explore's source."""

    key: str
    label: str
    src: str
    hists: dict


@dataclasses.dataclass(frozen=True)
class Settings:
    method: str
    variant: str
    num_bits: int
    target_bins: int | None
    percentile: float

    @property
    def spec(self) -> Spec:
        """The table's calibrator: the settings that count for the method
        (:func:`calib.report.table_spec`; the variant and target bins for entropy only)."""
        return report.table_spec(
            self.method, self.variant, self.num_bits, self.target_bins, self.percentile
        )

    @property
    def key(self) -> tuple:
        """Only what changes the rows: the spec's canonical text."""
        return (str(self.spec),)


# -- caches (no widgets) -------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=4)
def load_upload(file_id: str, name: str, _data: bytes) -> dict:
    """An uploaded histogram file, keyed by the upload's identity, not by hashing it."""
    sources.check_upload_size(name, _data)
    return cio.load_histogram_file(io.BytesIO(_data), name)


@st.cache_resource(show_spinner=False, max_entries=2)
def collect_upload(model_id: str, inputs_id: str, _model: bytes, _inputs: bytes) -> dict:
    """Histograms collected from an uploaded ONNX model run on uploaded inputs, in a child
    process under the app's time and memory budget (``calib.sandbox``; past it, a
    ValueError saying which budget)."""
    from calib import sandbox
    from calib.app import jobs

    for what, data in (("the model file", _model), ("the inputs file", _inputs)):
        sources.check_upload_size(what, data)
    bar = st.progress(0.0, text="Running the model…")

    def progress(p: sandbox.SandboxProgress) -> None:
        bar.progress(p.fraction or 0.0, text=p.text)

    try:
        with jobs.page_work() as cancel:  # the child ends with this page run
            found = sandbox.collect_upload(_model, _inputs, progress=progress, cancel=cancel)
        return found.histograms
    finally:
        bar.empty()


@st.cache_resource(show_spinner=False, max_entries=4)
def load_cache(file_id: str, name: str, _data: bytes) -> report.CachedThresholds:
    return report.read_calibration_file(_data, name)


class RowStore:
    """Finished tables by (file key, settings key), the least recently used dropped."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: OrderedDict[tuple, tuple[report.LayerRow, ...]] = OrderedDict()

    def get(self, key: tuple) -> tuple[report.LayerRow, ...] | None:
        with self.lock:
            if key in self.rows:
                self.rows.move_to_end(key)
            return self.rows.get(key)

    def put(self, key: tuple, rows: tuple[report.LayerRow, ...]) -> None:
        with self.lock:
            self.rows[key] = rows
            while len(self.rows) > ROW_CACHE_ENTRIES:
                self.rows.popitem(last=False)


@st.cache_resource(show_spinner=False)
def row_store() -> RowStore:
    return RowStore()


def table_rows(layers: Layers, s: Settings) -> tuple[report.LayerRow, ...]:
    """The rows in file order: from the store, or computed under a progress bar."""
    key = (layers.key, *s.key)
    rows = row_store().get(key)
    if rows is None:
        check_budget(layers, s)
        n = len(layers.hists)
        bar = st.progress(0.0, text=f"Calibrating {n} tensors…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Calibrating: {done} of {total} tensors")

        rows = tuple(report.layer_table(layers.hists, s.spec, progress=progress))
        bar.empty()
        row_store().put(key, rows)
    return rows


def check_budget(layers: Layers, s: Settings) -> None:
    """Refuse (st.error, then stop the page) a table past the page's budget,
    ``limits.MAX_PAGE_CELLS``, before any tensor is calibrated, saying what to do."""
    bins = [h.n_bins for h in layers.hists.values()]
    if s.method == "entropy":
        levels = s.target_bins or levels_for(s.variant, s.num_bits)
        # the bins the variant sweeps: a signed histogram is folded to |x| by an unsigned
        # layout, |x| mirrored by a signed one (the rule of calib.explore.max_target_bins)
        layout = resolve_policy(s.variant, {}).layout
        bins = [max_target_bins(h.n_bins, h.is_signed, layout) + 1 for h in layers.hists.values()]
    else:
        levels = max_code(s.num_bits) + 1  # the MSE search's levels (limits.page_cells)
    cells = limits.page_cells(bins, s.method, levels)
    if cells > limits.MAX_PAGE_CELLS:
        what = f"The table of {len(layers.hists):,} tensors with {s.method} needs about"
        st.error(
            limits.exceeds(what, cells, "MAX_PAGE_CELLS", " cells")
            + ", the app's budget for one page. Run it on the command line, which has no "
            f"such bound (python -m calib FILE --method {s.method}), lower the target bins, "
            "or upload fewer or smaller histograms (Histogram.rebin merges bins)."
        )
        st.stop()


# -- widgets ---------------------------------------------------------------------------------
def choose_layers() -> Layers:
    """The model's file by default, or an upload; a bad upload keeps the last good file."""
    last = st.session_state.get("layers_last_good")
    kinds = {
        "model": "Real model",
        "upload": "Upload a multi-layer file",
        "onnx": "Collect from an ONNX model",
    }
    kind = st.sidebar.radio(
        "Histograms", list(kinds), format_func=kinds.get, key="layers_src", persist_state=state.KEEP
    )
    model = shipped_layers(sources.model_picker("layers") if kind == "model" else None)
    layers = model
    last = last or model
    if kind == "onnx":
        layers = choose_onnx(last)
    if kind == "upload":
        upload = state.file_uploader(
            st.sidebar,
            "Histogram file",
            key="layers_file",
            help="The project's multi-layer .npz (python -m calib collect writes it), a "
            '{"layers": ...} .json, or one histogram as .npy / .csv '
            f"({', '.join('.' + t for t in HIST_TYPES)}).",
        )
        if upload is None:
            st.info(
                f"Upload a histogram file in the sidebar; showing {plain(last.label)} meanwhile."
            )
            layers = last
        else:
            try:
                hists = load_upload(upload.file_id, upload.name, upload.getvalue())
                layers = Layers(f"upload:{upload.file_id}", upload.name, "layers", hists)
            except ValueError as exc:
                text.error(
                    f"Could not read {plain(upload.name)}",
                    exc,
                    ". Expected the project's "
                    f"multi-layer .npz (see calib/io/); still showing {plain(last.label)}.",
                )
                layers = last
    st.session_state["layers_last_good"] = layers
    if layers.src == "layers":  # Explore, Compare and Learn open it from the session
        sources.share_histograms(layers.key, layers.label, layers.hists)
    return layers


def shipped_layers(model: str | None = None) -> Layers:
    """A shipped model's file (``calib.models``) as Layers shows it: key ``model:<id>``
    (None: the one the model picker last chose, or the first shipped)."""
    model = model or sources.model_id("layers")
    hists = sources.model_histograms(model)
    label = f"{MODELS[model].label}, {len(hists)} tensors"
    return Layers(f"model:{model}", label, "model", hists)


def choose_onnx(last: Layers) -> Layers:
    """Histograms of every float tensor of an uploaded ONNX model, run on uploaded inputs."""
    # no type= filters (see calib.app.sources): the readers name what is wrong with a file
    model = state.file_uploader(
        st.sidebar, "ONNX model", key="layers_onnx_model", help="An .onnx file."
    )
    inputs = state.file_uploader(
        st.sidebar,
        "Calibration inputs",
        key="layers_onnx_inputs",
        help="An .npz with one array per model input, named after it; axis 0 is the sample.",
    )
    if model is None or inputs is None:
        st.info(
            "Upload an ONNX model and an .npz of inputs (one array per model input, named "
            "after it, samples along axis 0); onnxruntime runs it on the CPU and histograms "
            f"|x| of every float tensor in one pass. Showing {plain(last.label)} meanwhile."
        )
        return last
    key = f"onnx:{model.file_id}:{inputs.file_id}"
    if last.key == key:  # collected earlier in this session: kept, not run again
        return last
    try:
        hists = collect_upload(model.file_id, inputs.file_id, model.getvalue(), inputs.getvalue())
    except (ValueError, ImportError) as exc:
        text.error(f"Could not collect from {plain(model.name)}", exc,
                   f"; still showing {plain(last.label)}.")  # fmt: skip
        return last
    label = f"{model.name} on {inputs.name}, {len(hists)} tensors"
    return Layers(key, label, "layers", hists)


def choose_settings() -> Settings:
    sb = st.sidebar
    method = sb.selectbox(
        "Method",
        METHODS,
        index=METHODS.index("entropy"),
        key="layers_method",
        persist_state=state.KEEP,
        help="entropy: the KL sweep; max; percentile (ModelOpt's rule); "
        "mse: the clip with the least expected error.",
    )
    entropy = method == "entropy"
    variant = sb.selectbox(
        "Variant",
        list(VARIANTS),
        key="layers_variant",
        persist_state=state.KEEP,
        disabled=not entropy,
        help="Whose KL sweep (entropy only).",
    )
    if entropy:
        sb.caption(VARIANT_NOTES[variant])
    num_bits = sb.selectbox(
        "Bits",
        NUM_BITS_CHOICES,
        index=NUM_BITS_CHOICES.index(DEFAULT_NUM_BITS),
        key="layers_bits",
        persist_state=state.KEEP,
    )
    auto = levels_for(variant, num_bits)
    target_bins = sb.number_input(
        "Target bins",
        min_value=TARGET_BINS_MIN,
        max_value=LAYERS_TARGET_BINS_MAX,
        value=None,
        step=1,
        key="layers_target_bins",
        persist_state=state.KEEP,
        placeholder=f"auto: {auto}",
        disabled=not entropy,
        help="Quantized levels of the KL sweep; empty = the variant's own for these bits "
        "(2^(bits-1), MXNet's 2^bits - 1).",
    )
    percentile = DEFAULT_PERCENTILE
    if method == "percentile":
        percentile = sb.number_input(
            "Percentile",
            0.0,
            100.0,
            DEFAULT_PERCENTILE,
            0.01,
            format="%.4f",
            key="layers_percentile",
            persist_state=state.KEEP,
        )
    tb = None if target_bins is None else int(target_bins)
    return Settings(method, variant, int(num_bits), tb, float(percentile))


def choose_cache() -> report.CachedThresholds | None:
    """An optional calibration cache; a bad one shows st.error and keeps the last good."""
    upload = state.file_uploader(
        st.sidebar,
        "Calibration cache to compare (optional)",
        key="layers_cache_file",
        help="A TensorRT calibration cache, or ONNX Runtime's calibration.json / .cache "
        f"({', '.join('.' + t for t in CACHE_TYPES)}).",
    )
    if upload is None:
        st.session_state.pop("layers_last_cache", None)
        return None
    try:
        cache = load_cache(upload.file_id, upload.name, upload.getvalue())
    except ValueError as exc:
        cache = st.session_state.get("layers_last_cache")
        keep = f"; still comparing with {plain(cache.name)}" if cache else ""
        text.error(f"Could not read the cache {plain(upload.name)}", exc, keep)
        return cache
    st.session_state["layers_last_cache"] = cache
    return cache


def explore_params(layers: Layers, s: Settings, layer: str) -> dict[str, str]:
    """Explore's query string for one tensor (the contract: src, layer, variant, ...),
    opening on the clip of the method the row was ranked under."""
    model = layers.key.removeprefix("model:") if layers.src == "model" else None
    return explore_query(
        layers.src, layer=layer, variant=s.variant, num_bits=s.num_bits, target_bins=s.target_bins,
        method=s.method, model=model,
    )  # fmt: skip


# -- the page's sections, top to bottom -------------------------------------------------------
def summary(
    layers: Layers,
    s: Settings,
    rows: Sequence[report.LayerRow],
    ordered: Sequence[report.LayerRow],
    matches: Mapping[str, report.CacheMatch] | None,
) -> None:
    """What the table shows, the tensors that failed, and four metrics."""
    st.caption(
        f"{plain(layers.label)}: {s.method}"
        + (f", {s.variant}" if s.method == "entropy" else "")
        + f", {s.num_bits} bits."
    )
    failed = [r for r in rows if r.error]
    if failed:
        text.error(
            f"{len(failed)} tensors could not be calibrated with these settings; the first, "
            f"{plain(repr(failed[0].layer))}", failed[0].error,
        )  # fmt: skip
    worst = next((r for r in ordered if math.isfinite(r.sqnr_db)), None)
    cols = st.columns(4)
    cols[0].metric("Tensors", len(rows))
    cols[1].metric("Flagged", sum(1 for r in rows if r.flags))
    cols[2].metric(
        "Lowest SQNR (dB)",
        fmt(worst.sqnr_db if worst else None, 2, fixed=True),
        help=plain(worst.layer) if worst else None,
    )
    if matches is not None:
        cols[3].metric(
            "Disagree with the cache",
            sum(m.disagree for m in matches.values()),
            help=f"cached/calib beyond {report.DISAGREE_RATIO:g}x either way",
        )
    else:
        cols[3].metric("Dead", sum(1 for r in rows if r.dead))


def show_table(recs: Sequence[Mapping[str, Any]]) -> str | None:
    """The table (``report.records``, worst first); the selected row's layer, if any."""
    table = pd.DataFrame(recs)
    if "layer" in table.columns:
        table.insert(0, "tensor", table["layer"].map(short_name))
    event = st.dataframe(
        table,
        key="layers_table",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        column_config=COLUMNS,
        column_order=[c for c in ORDER if c in table.columns],
        width="stretch",
    )
    picked = event.selection.rows if event is not None else []
    if picked:
        return str(table["layer"].iloc[picked[0]])
    return None


def flag_notes(rows: Sequence[report.LayerRow]) -> None:
    """One sentence for each flag the table shows, with how many rows carry it."""
    counts = {f: sum(f in r.flags for r in rows) for f in report.FLAGS}
    lines = [f"- **{flag}** ({n}): {report.FLAG_HELP[flag]}" for flag, n in counts.items() if n]
    if lines:
        st.markdown("\n".join(lines))


def explore_note(layers: Layers) -> None:
    """Where a selected row opens, and the collected histograms as a file."""
    if layers.src == "model":
        return
    st.caption(
        'A selected row opens in Explore with these histograms (source "From the Layers '
        'page"; Compare and Learn offer it too). They live in this browser session only.'
    )
    if layers.key.startswith("onnx:"):
        st.download_button(
            "Collected histograms (.npz)", histograms_npz(layers.key, layers.label, layers.hists),
            file_name=f"{export_stem(layers)}_histograms.npz", mime="application/zip",
            on_click="ignore", key="layers_dl_histograms",
            help="The project's multi-layer format (calib.load_histograms reads it; so do "
            "every page's uploads and python -m calib).",
        )  # fmt: skip


@st.cache_resource(show_spinner=False, max_entries=2)
def histograms_npz(key: str, label: str, _hists: Mapping) -> bytes:
    """A file's histograms in the project's .npz format (``calib.io.save_histograms``),
    once per file (``key``)."""
    buf = io.BytesIO()
    cio.save_histograms(buf, _hists, meta={"source": label})
    return buf.getvalue()


def sqnr_chart(rows: Sequence[report.LayerRow]) -> None:
    plot(sqnr_figure(rows), "layers_sqnr")


def cache_findings(
    cache: report.CachedThresholds,
    matches: Mapping[str, report.CacheMatch],
    layers: Layers,
    s: Settings,
) -> None:
    """The cache's header and what ``report.check_cache`` found in it."""
    st.subheader(f"Calibration cache: {plain(cache.name)}")
    head = f"{cache.kind}" + (f", header {cache.header!r}" if cache.header else "")
    st.caption(
        f"{plain(head)}; {plural(len(cache.amax), 'tensor')}, {len(matches)} matched by name."
    )
    checks = report.check_cache(cache, list(layers.hists), s.method)
    for check in report.CHECKS:
        found = [c.message for c in checks if c.check == check]
        if found:
            st.warning(f"**{check}**: " + "  \n".join(plain(m) for m in found[:10]))
    if not checks:
        st.success("No problems found in the cache.")


def export_stem(layers: Layers) -> str:
    """The exports' file name stem: the label's first part, without its suffix."""
    return Path(layers.label.split(",")[0]).stem.replace(" ", "_")


def settings_doc(layers: Layers, s: Settings) -> dict[str, Any]:
    """The settings block of the JSON export."""
    return {"source": layers.label, **dataclasses.asdict(s), "sorted": "worst first: lowest SQNR"}


def export_notes(skipped: Sequence[str], num_bits: int) -> list[str]:
    """Captions under the download buttons: what the calibration files leave out."""
    notes = []
    if skipped:
        notes.append(
            f"Left out of both calibration files ({len(skipped)}): dead tensors, zero "
            f"amaxes and errors have no scale: {plain(', '.join(skipped[:10]))}"
        )
    if num_bits != 8:
        notes.append("A TensorRT cache is INT8: its scale is amax / 127 whatever the bits above.")
    return notes


def exports(
    layers: Layers,
    s: Settings,
    rows: Sequence[report.LayerRow],
    recs: Sequence[Mapping[str, Any]],
) -> None:
    """Four downloads: the table as CSV and JSON, a TensorRT cache, ORT's calibration.json."""
    st.subheader("Export")
    stem = export_stem(layers)
    trt_text, skipped = report.trt_cache_text(rows)
    ort_text, _ = report.ort_json_text(rows, s.method)
    dl = st.columns(4)
    dl[0].download_button(
        "Table as CSV",
        report.records_csv(recs),
        f"{stem}_layers.csv",
        "text/csv",
        key="layers_dl_csv",
    )
    dl[1].download_button(
        "Table as JSON",
        report.records_json(recs, settings_doc(layers, s)),
        f"{stem}_layers.json",
        "application/json",
        key="layers_dl_json",
    )
    dl[2].download_button(
        "TensorRT calibration cache",
        trt_text,
        f"{stem}_calibration.cache",
        "text/plain",
        key="layers_dl_trt",
    )
    dl[3].download_button(
        "ONNX Runtime calibration.json",
        ort_text,
        f"{stem}_calibration.json",
        "application/json",
        key="layers_dl_ort",
    )
    for note in export_notes(skipped, s.num_bits):
        st.caption(note)
