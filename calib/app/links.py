"""The link format: every app page's state as query parameters, and back, in one place.

A link to Explore reproduces its view (``?src=model&model=minilm&layer=...&variant=...``):
the Layers and Effect pages write one with :func:`explore_query`, Explore reads it with
:func:`parse_explore_query` and writes its own state back with :func:`state_query`. The
other pages' links are tables, :data:`LINKS` (a :class:`Param` per query parameter: the
widget it sets and how its text is read), which ``calib.app.state`` applies and writes.
The session keys a link sets (``<key>_variant``, ``<key>_policy_<field>``...) are the
pages' widgets'; the values are checked against the core's vocabularies (variants,
policies, demos, bit widths, shipped models).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from calib.demos import DEMOS
from calib.evaluate import BEST, DEFAULT_METHODS, SEARCH_SQNR_DB
from calib.explore import (
    CLIP_METHODS,
    DEFAULT_LAYER,
    MODEL_NAME,
    NUM_BITS_CHOICES,
    POLICY_FIELDS,
    POLICY_INTS,
    SOURCE_KINDS,
    TARGET_BINS_MAX,
    TARGET_BINS_MIN,
    default_target_bins,
)
from calib.methods import DEFAULT_NUM_BITS, METHODS
from calib.models import DEFAULT_MODEL, MODELS, shipped_models
from calib.policies import POLICY_CHOICES, TYPED_TARGET_BINS_MAX, VARIANTS, levels_for

__all__ = [
    "EXPLORE_QUERY_KEYS",
    "LAYER_KEYS",
    "LINKS",
    "UPLOAD_RANKINGS",
    "Param",
    "explore_query",
    "parse_explore_query",
    "state_query",
]

UPLOAD_RANKINGS = (BEST, *DEFAULT_METHODS)
"""What an upload's sensitivity can be ranked under on the Effect page (``evaluate``'s
``sensitivity_of``), and its link's ``rank_upload``."""
# the session key of each kind's layer picker (its query parameter is ``layer``)
LAYER_KEYS = {"model": "model_layer", "histogram": "upload_layer", "layers": "layers_layer"}
EXPLORE_QUERY_KEYS = (
    "src", "layer", "demo", "variant", "target_bins", "hist_bins", "num_bits", "log_y",
    "show_variants", "candidate", "model", "method",
)  # fmt: skip


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _policy_value(field: str, text: str) -> Any:
    """A policy value from the query string, or raise ValueError."""
    if field in POLICY_CHOICES:
        if text not in POLICY_CHOICES[field]:
            raise ValueError(f"one of {POLICY_CHOICES[field]}")
        return text
    if field in POLICY_INTS:
        v = _as_int(text)
        if v is None or v < 1:
            raise ValueError("a positive integer")
        return v
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (0 < v < 1):
        raise ValueError("a number in (0, 1)")
    return v


def parse_explore_query(
    params: Mapping[str, str], current: Mapping[str, Any], model_layers: list[str],
    key: str = "explore", models: Mapping[str, list[str]] | None = None,
) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """Session-state assignments for an Explore query string, and what was ignored.

    Parameters
    ----------
    params : mapping
        The query string (``src``, ``layer``, ``demo``, ``variant``, ``target_bins``,
        ``hist_bins``, ``num_bits``, ``log_y``, ``show_variants``, ``candidate`` (the
        picked one), ``method`` (the method whose clip is shown first: a row ranked under
        it) and any field of ``calib.Policy``); other keys are ignored.
    current : mapping
        The session state now (a missing parameter keeps its current value).
    model_layers : list of str
        The real model's layers, to check ``layer`` against.
    models : mapping of str to list of str, optional
        Every shipped model's layers by id (``calib.models``): ``model`` picks one, and
        ``layer`` is checked against its layers instead. ``method`` (max, percentile, mse)
        names the calibration a link was ranked under (``{key}_method``).

    Returns
    -------
    (dict, list of str)
        Widget keys to set, in order; and one message per value that was ignored.
    """
    out: dict[str, Any] = {}
    bad: list[str] = []

    def ignore(name: str, expected: str) -> None:
        bad.append(f"Ignored {name}={params[name]!r} from the link: expected {expected}.")

    if "src" in params:
        if params["src"] in SOURCE_KINDS:
            out[f"{key}_kind"] = params["src"]
        else:
            ignore("src", f"one of {', '.join(SOURCE_KINDS)}")
    kind = out.get(f"{key}_kind", current.get(f"{key}_kind", "model"))
    model = current.get(f"{key}_model", DEFAULT_MODEL)
    if "model" in params and models is not None:
        if params["model"] in models:
            model = out[f"{key}_model"] = params["model"]
        else:
            ignore("model", f"one of {', '.join(models)}")
    if models is not None and model in models:
        model_layers = models[model]
    if "layer" in params:
        if kind == "model":
            if params["layer"] in model_layers:
                out[f"{key}_model_layer"] = params["layer"]
            else:
                name = MODELS[model].label if model in MODELS else MODEL_NAME
                ignore("layer", f"a layer of {name}")
        elif kind in LAYER_KEYS:  # checked once the file is there
            out[f"{key}_{LAYER_KEYS[kind]}"] = params["layer"]
    if "demo" in params:
        if params["demo"] in DEMOS:
            out[f"{key}_demo"] = params["demo"]
        else:
            ignore("demo", f"one of {', '.join(DEMOS)}")
    variant = current.get(f"{key}_variant", "seed")
    if "variant" in params:
        if params["variant"] in VARIANTS:
            variant = out[f"{key}_variant"] = params["variant"]
            for f in POLICY_FIELDS:  # a variant from a link comes with its own presets
                out[f"{key}_policy_{f}"] = getattr(VARIANTS[variant], f)
        else:
            ignore("variant", f"one of {', '.join(VARIANTS)}")
    num_bits = current.get(f"{key}_num_bits", DEFAULT_NUM_BITS)
    if "num_bits" in params:
        v = _as_int(params["num_bits"])
        if v in NUM_BITS_CHOICES:
            num_bits = out[f"{key}_num_bits"] = v
        else:
            ignore("num_bits", f"an integer in {NUM_BITS_CHOICES[0]}..{NUM_BITS_CHOICES[-1]}")
    if "target_bins" in params:
        v = _as_int(params["target_bins"])
        top = max(TARGET_BINS_MAX, levels_for(variant, num_bits))  # the slider's, at these bits
        if v is not None and TARGET_BINS_MIN <= v <= top:
            out[f"{key}_target_bins"] = v
        else:
            ignore("target_bins", f"an integer in {TARGET_BINS_MIN}..{top}")
    if f"{key}_target_bins" not in out and (f"{key}_variant" in out or f"{key}_num_bits" in out):
        out[f"{key}_target_bins"] = default_target_bins(variant, num_bits)
    if "hist_bins" in params:
        v = _as_int(params["hist_bins"])
        if v is not None and v >= 2:
            out[f"{key}_hist_bins"] = v  # snapped to the sizes on offer by the slider
        else:
            ignore("hist_bins", "an integer of at least 2")
    for name in ("log_y", "show_variants"):
        if name in params:
            text = params[name].lower()
            if text in ("true", "1", "false", "0"):
                out[f"{key}_{name}"] = text in ("true", "1")
            else:
                ignore(name, "true or false")
    if "method" in params:  # "" or entropy: the view is the entropy sweep's own
        if params["method"] in (*CLIP_METHODS, "", "entropy"):
            out[f"{key}_method"] = params["method"] if params["method"] in CLIP_METHODS else ""
        else:
            ignore("method", ", ".join((*CLIP_METHODS, "entropy")))
    elif "layer" in params and current.get(f"{key}_method"):  # a link not ranked under one
        out[f"{key}_method"] = ""
    if "candidate" in params:
        v = _as_int(params["candidate"])
        if v is not None and v >= 0:
            out[f"{key}_candidate"] = v  # one of the sweep's, or the widest is shown
        else:
            ignore("candidate", "a candidate of the sweep (a non-negative integer)")
    for f in POLICY_FIELDS:
        if f in params:
            try:
                out[f"{key}_policy_{f}"] = _policy_value(f, params[f])
            except ValueError as exc:
                ignore(f, str(exc))
    return out, bad


def explore_query(
    src: str = "model",
    layer: str | None = None,
    demo: str | None = None,
    variant: str | None = None,
    **more: Any,
) -> dict[str, str]:
    """The query parameters that open Explore on a view (None values left out).

    ``more`` takes the other keys (``target_bins``, ``hist_bins``, ``num_bits``,
    ``log_y``) and policy overrides (``merge="whole"``).
    """
    raw = {"src": src, "layer": layer, "demo": demo, "variant": variant, **more}
    out = {}
    for k, v in raw.items():
        if v is None:
            continue
        out[k] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def state_query(key: str = "explore") -> dict[str, str]:
    """The view's state as query parameters, read from the widgets' session state (a
    widget not made yet counts at the value it will start at; hist_bins is left out
    until the slider has settled it)."""
    s = st.session_state
    kind = s.get(f"{key}_kind", "model")
    q: dict[str, str] = {"src": kind}
    if kind == "model":
        q.update(_model_query(key))
    elif kind in LAYER_KEYS and s.get(f"{key}_{LAYER_KEYS[kind]}"):
        q["layer"] = str(s[f"{key}_{LAYER_KEYS[kind]}"])
    if kind == "demo":
        q["demo"] = str(s.get(f"{key}_demo", next(iter(DEMOS))))
    variant = s.get(f"{key}_variant", "seed")
    num_bits = s.get(f"{key}_num_bits", DEFAULT_NUM_BITS)
    q["variant"] = str(variant)
    q["target_bins"] = str(s.get(f"{key}_target_bins", default_target_bins(variant, num_bits)))
    if f"{key}_hist_bins" in s:
        q["hist_bins"] = str(s[f"{key}_hist_bins"])
    q["num_bits"] = str(num_bits)
    q["log_y"] = "true" if s.get(f"{key}_log_y", True) else "false"
    if s.get(f"{key}_show_variants"):
        q["show_variants"] = "true"
    if s.get(f"{key}_method") in CLIP_METHODS:  # a row ranked under it
        q["method"] = str(s[f"{key}_method"])
    if s.get(f"{key}_candidate") is not None:  # the picked one, once the slider has one
        q["candidate"] = str(s[f"{key}_candidate"])
    preset = VARIANTS[variant]
    for f in POLICY_FIELDS:
        v = s.get(f"{key}_policy_{f}", getattr(preset, f))
        if v != getattr(preset, f):
            q[f] = repr(v) if isinstance(v, float) else str(v)
    return q


def _model_query(key: str) -> dict[str, str]:
    """Which shipped model (``calib.models``) and which of its layers the view shows."""
    from calib.app.sources import model_histograms

    s = st.session_state
    model = s.get(f"{key}_model", DEFAULT_MODEL)
    if model not in shipped_models():
        return {"layer": str(s.get(f"{key}_model_layer", DEFAULT_LAYER))}
    layer = s.get(f"{key}_model_layer")
    if layer not in model_histograms(model):  # another model's, until the picker settles it
        layer = MODELS[model].default_layer
    return {"model": str(model), "layer": str(layer)}


# --------------------------------------------------------------------------------------
# every other page's link: one table per page (read and written by calib.app.state)
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Param:
    """One query parameter: its ``name`` in the URL, the widget ``key`` it sets, how the
    text is read (``read`` returns the value or raises ValueError), what it expects
    (for the warning a bad link gets)."""

    name: str
    key: str
    read: Callable[[str], Any]
    expects: str
    widget: bool = True  # False: st.tabs, which a page opens through ``default=`` (see last)
    # written only while another parameter has this value: ("src", "model") for the model
    when: tuple[str, str] | None = None


def _one_of(options: Sequence[Any]) -> Callable[[str], Any]:
    by_text = {str(o): o for o in options}

    def read(text: str) -> Any:
        if text not in by_text:
            raise ValueError(text)
        return by_text[text]

    return read


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def read(text: str) -> int:
        v = int(text)
        if not lo <= v <= hi:
            raise ValueError(text)
        return v

    return read


def _float_in(lo: float, hi: float) -> Callable[[str], float]:
    def read(text: str) -> float:
        v = float(text)
        if not lo <= v <= hi:  # NaN fails too
            raise ValueError(text)
        return v

    return read


def _bool(text: str) -> bool:
    t = text.lower()
    if t not in ("true", "1", "false", "0"):
        raise ValueError(text)
    return t in ("true", "1")


def _any_text(text: str) -> str:
    return text  # checked where it is used (a layer of the file shown)


def _choice(name: str, key: str, options: Sequence[Any]) -> Param:
    return Param(name, key, _one_of(options), "one of " + ", ".join(map(str, options)))


def _learn_choice(name: str, key: str, what: str) -> Param:
    """A choice among calib.app.learn's lessons or questions (read when a link comes)."""

    def read(text: str) -> str:
        from calib.app import learn  # it imports this module

        options = [*learn.learn.LESSONS, learn.OTHER] if what == "lesson" else list(learn.QUESTIONS)
        return _one_of(options)(text)

    return Param(name, key, read, f"a {what} of the Learn page", widget=what != "question")


def _source_params(page: str) -> tuple[Param, ...]:
    """The histogram source of a page built on ``calib.app.sources.histogram_source``."""
    return (
        _choice("src", f"{page}_kind", list(SOURCE_KINDS)),
        dataclasses.replace(_choice("model", f"{page}_model", list(MODELS)), when=("src", "model")),
        Param("layer", f"{page}_model_layer", _any_text, "a layer of the real model"),
        Param("layers_layer", f"{page}_layers_layer", _any_text, "a layer of the file"),
        _choice("demo", f"{page}_demo", list(DEMOS)),
    )


LINKS: dict[str, tuple[Param, ...]] = {
    "layers": (
        _choice("src", "layers_src", ["model", "upload", "onnx"]),
        dataclasses.replace(_choice("model", "layers_model", list(MODELS)), when=("src", "model")),
        _choice("method", "layers_method", METHODS),
        _choice("variant", "layers_variant", list(VARIANTS)),
        _choice("bits", "layers_bits", NUM_BITS_CHOICES),
        Param(
            "target_bins",
            "layers_target_bins",
            _int_in(TARGET_BINS_MIN, TYPED_TARGET_BINS_MAX),
            "an integer",
        ),
        Param("percentile", "layers_percentile", _float_in(0.0, 100.0), "a number in 0..100"),
    ),
    "compare": (
        *_source_params("compare"),
        Param("hist_bins", "compare_hist_bins", _int_in(2, 2**20), "an integer"),
        Param("same_levels", "compare_same_levels", _bool, "true or false"),
        Param(
            "target_bins",
            "compare_target_bins",
            _int_in(TARGET_BINS_MIN, TARGET_BINS_MAX),
            "an integer",
        ),
        Param("log_y", "compare_log_y", _bool, "true or false"),
        dataclasses.replace(
            _choice("why", "compare_why_tab", [v for v in VARIANTS if v != "seed"]), widget=False
        ),
    ),
    "effect": (
        _choice("src", "effect_src", [*MODELS, "upload"]),
        Param("ranking", "effect_ranking", _any_text, "a calibration the results rank"),
        Param(
            "target",
            "effect_target",
            _float_in(0.0, SEARCH_SQNR_DB),
            f"0..{SEARCH_SQNR_DB:g} dB",
        ),
        dataclasses.replace(
            _choice("rank_upload", "effect_sensitivity_of", UPLOAD_RANKINGS),
            when=("src", "upload"),
        ),
        Param("weights", "effect_weights", _bool, "true or false"),
    ),
    "learn": (
        _learn_choice("lesson", "learn_lesson", "lesson"),
        *_source_params("learn"),
        Param("hist_bins", "learn_hist_bins", _int_in(2, 2**20), "an integer"),
        _choice("variant", "learn_variant", list(VARIANTS)),
        Param(
            "target_bins",
            "learn_target_bins",
            _int_in(TARGET_BINS_MIN, TYPED_TARGET_BINS_MAX),
            "an integer",
        ),
        Param("candidate", "learn_candidate", _int_in(0, 2**20), "an integer"),
        _learn_choice("question", "learn_question", "question"),
    ),
}
"""Each page's query parameters but Explore's (whose are :data:`EXPLORE_QUERY_KEYS`)."""
