"""The Effect page's shipped models and rankings (``pages/4_Effect.py`` over
``calib.app.effect``): which shipped results to show (``calib.models``), which
calibration's sensitivity ranking, the classifier columns (top-1 agreement, top-5
overlap) where the report has them, and the link that opens a ranked tensor in Explore on
the clip it was ranked under. Widget keys start with ``effect_``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from calib import evaluate
from calib.app import sources, state
from calib.app.links import UPLOAD_RANKINGS, explore_query
from calib.models import MODELS, with_effect
from calib.numbers import PCT_FORMAT
from calib.spec import Spec

__all__ = [
    "KEEP_FLOAT_TOP",
    "METHOD_TOP",
    "RANKED_KEYS",
    "SENSITIVITY_TOP",
    "UPLOAD_RANKINGS",
    "add_classifier_columns",
    "explore_link",
    "model_label",
    "percent_columns",
    "rank_picker",
    "ranked_view",
    "ranking",
    "rankings",
    "shipped_ids",
    "shipped_report",
]

# report key -> column, for the classifier metrics (a share, shown in %)
METHOD_TOP = {"top1_agreement": "top-1 agreement %", "top5_overlap": "top-5 overlap %"}
SENSITIVITY_TOP = {
    "only_this_top1_agreement": "only this top-1 %",
    "all_but_this_top1_agreement": "all but this top-1 %",
    "only_this_top5_overlap": "only this top-5 %",
}
KEEP_FLOAT_TOP = METHOD_TOP
# what one ranking sets in a report (``Evaluation.to_dict``'s top level, and each
# ``sensitivities`` entry)
RANKED_KEYS = (
    "calibration", "all_quantized_sqnr_db", "sensitivity", "keep_float", "reached",
    "rank_correlation",
)  # fmt: skip


def shipped_ids() -> list[str]:
    """The shipped models with Effect results (``calib.models.with_effect``)."""
    return list(with_effect())


def model_label(model: str) -> str:
    return f"{MODELS[model].label} (shipped results)"


@st.cache_data(show_spinner=False)
def shipped_report(model: str) -> dict[str, Any]:
    """A shipped model's Effect results (``calib.models.MODELS[model].effect``)."""
    return evaluate.read_report(MODELS[model].effect.read_bytes())


def rankings(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each calibration's sensitivity ranking in a report, by its name: the report's
    ``sensitivities`` (the top-level one first), or the top level alone (older reports)."""
    found = {
        str(s["calibration"]): {k: s.get(k) for k in RANKED_KEYS if k in s}
        for s in doc.get("sensitivities") or ()
        if isinstance(s, Mapping) and "calibration" in s
    }
    top = {k: doc[k] for k in RANKED_KEYS if k in doc}
    return {str(doc.get("calibration", "")): top, **found}


def ranked_view(doc: Mapping[str, Any], calibration: str) -> dict[str, Any]:
    """The report with its top-level ranking replaced by ``calibration``'s (every section
    below then shows that one); the report itself when it has no such ranking."""
    ranking = rankings(doc).get(calibration)
    if ranking is None:
        return dict(doc)
    out = dict(doc)
    out.update(ranking)  # a value the ranking has is its own, null (an undefined SQNR) too
    return out


def rank_picker(doc: Mapping[str, Any], key: str) -> str:
    """A select box of the calibrations whose sensitivity the report ranks; the name."""
    names = list(rankings(doc))
    if st.session_state.get(key) not in names:
        st.session_state[key] = names[0]
    if len(names) == 1:
        st.caption(f"Sensitivity ranked under {names[0]} (the only ranking in these results).")
        return names[0]
    picked = st.selectbox(
        "Rank the tensors under", names, key=key, persist_state=state.KEEP,
        help="Each calibration's own ranking: which tensors hurt when quantized with "
        "its clips, and what to keep in float. The first is the best method's.",
    )  # fmt: skip
    return str(picked)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def add_classifier_columns(
    records: Sequence[dict[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, str],
) -> list[str]:
    """Add to each record the classifier metrics its report row has (report key ->
    column, as a share in %); a metric no row has (a model whose outputs are not class
    scores) is left out. Returns the columns added."""
    added = []
    for k, column in columns.items():
        values = [r.get(k) for r in rows]
        if not any(_finite(v) for v in values):
            continue
        for rec, v in zip(records, values, strict=True):
            rec[column] = 100.0 * v if _finite(v) else math.nan
        added.append(column)
    return added


def percent_columns(columns: Sequence[str]) -> dict[str, Any]:
    """Column configs for the classifier columns added: a share in %, one decimal."""
    help_ = {
        "top-1": "Share of samples whose arg-max class is the float model's.",
        "top-5": "Mean share of the float model's 5 top classes among the quantized one's 5.",
    }
    return {
        c: st.column_config.NumberColumn(
            c, format=PCT_FORMAT, help=next((h for k, h in help_.items() if k in c), None)
        )
        for c in columns
    }


def explore_link(
    doc: Mapping[str, Any], layer: str, *, model: str = "", src: str = "model"
) -> dict[str, str] | None:
    """Explore's query string for a ranked tensor, on the clip of the calibration it was
    ranked under (``doc["calibration"]``): an entropy variant as Explore's variant,
    max / percentile / mse as its ``method``. ``model``: the shipped model whose histogram
    file holds the tensor (None when it does not); ``src="layers"``: an upload's
    histograms handed over in the session."""
    try:  # a cache's name ("cache:calib.cache") is no calibrator
        spec = Spec.parse(str(doc.get("calibration", "")))
    except ValueError:
        spec = None
    more: dict[str, Any] = {"num_bits": doc["quantized"]["num_bits"]}
    if spec is not None and spec.method == "entropy":
        more["variant"] = spec.variant
    elif spec is not None:
        more["method"] = spec.method
    if src == "model":
        if model not in MODELS or layer not in sources.model_histograms(model):
            return None
        more["model"] = model
    return explore_query(src, layer=layer, **more)


def ranking(shown: Any, key: str = "effect_ranking") -> Any:
    """The page's ``Shown`` with its report ranked under the calibration the user picks
    (:func:`rank_picker`): the sensitivity, keep-in-float and proxy sections and the
    Explore links then follow that calibration; an upload's keep-in-float search is cut
    at the page's target (``Shown.target``)."""
    picked = rank_picker(shown.doc, key)
    doc = ranked_view(shown.doc, picked)
    if shown.target is not None:  # an upload's search, run high, cut at the user's target
        doc = evaluate.keep_float_at(doc, shown.target)
    return dataclasses.replace(shown, doc=doc)
