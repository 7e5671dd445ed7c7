"""The Explore page's machinery (pages/0_Explore.py): its sidebar controls, its one cached
computation, the candidate the user picks, the downloads, and the view's state in the
query string.

The UI layer: the page imports this, this imports ``calib.app.sources`` (the widgets the pages
share) and the core, never the reverse. Cached values are immutable (frozen dataclasses)
and kept with ``st.cache_resource``; caches are keyed by primitives (a source's ``key``,
ints, names), never by hashing arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import numpy as np
import streamlit as st

from calib import policies
from calib.app.sources import (
    DEFAULT_LAYER,
    MODEL_NAME,
    SOURCE_KINDS,
    Source,
    _default,
    hist_bin_choices,
    model_histograms,
    native_bins,
    sized_histogram,
    snap_hist_bins,
)
from calib.demos import DEMOS
from calib.histogram import Histogram
from calib.methods import (
    DEFAULT_NUM_BITS,
    DEFAULT_PERCENTILE,
    ClipMetrics,
    amax_max,
    amax_mse,
    amax_percentile,
    clip_metrics,
)
from calib.policies import DEFAULT_TARGET_BINS, POLICY_CHOICES, VARIANTS, Policy, resolve_policy
from calib.sweep import SweepResult, kl_sweep

__all__ = [
    "EXPLORE_QUERY_KEYS",
    "NUM_BITS_CHOICES",
    "POLICY_FIELDS",
    "POLICY_HELP",
    "TARGET_BINS_MAX",
    "TARGET_BINS_MIN",
    "Controls",
    "OtherClip",
    "View",
    "candidate_from_selection",
    "compute_view",
    "default_target_bins",
    "explore_controls",
    "explore_link",
    "explore_query",
    "explore_view",
    "kl_curve_csv",
    "parse_explore_query",
    "pick_candidate",
    "policy_error",
    "policy_overrides",
    "synced_query_params",
    "threshold_json",
]

# Explore's controls. Levels from 2 (a 2-bit quantizer's) to 2048 (12 bits).
TARGET_BINS_MIN, TARGET_BINS_MAX = 2, 2048
NUM_BITS_CHOICES = tuple(range(2, 13))
POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(Policy))
EXPLORE_QUERY_KEYS = (
    "src", "layer", "demo", "variant", "target_bins", "hist_bins", "num_bits", "log_y",
)  # fmt: skip


# --------------------------------------------------------------------------------------
# Explore: levels and policies
# --------------------------------------------------------------------------------------
def default_target_bins(variant: str, num_bits: int = DEFAULT_NUM_BITS) -> int:
    """The variant's own number of levels for a ``num_bits`` quantizer.

    At 8 bits, ``DEFAULT_TARGET_BINS`` (128, MXNet's 255); other widths scale it, as
    ``calib.calibrate`` does: 2**(num_bits - 1) levels, MXNet's 2**num_bits - 1.
    Clamped to the slider's range.
    """
    levels8 = DEFAULT_TARGET_BINS[variant]
    if levels8 % 2:  # 2**8 - 1: both signs' levels
        levels = (levels8 + 1) * 2**num_bits // 256 - 1
    else:
        levels = levels8 * 2**num_bits // 256
    return int(min(max(levels, TARGET_BINS_MIN), TARGET_BINS_MAX))


_POLICY_INTS = ("start_bin", "stride")


def _policy_help() -> dict[str, str]:
    """Each policy's line from the table in ``calib.policies``' docstring: one source."""
    lines = (policies.__doc__ or "").splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    if len(rules) < 3:
        return {}
    width = lines[rules[0]].index(" ") + 2
    out: dict[str, str] = {}
    names: list[str] = []
    for line in lines[rules[1] + 1 : rules[2]]:
        if line[:1].strip():
            names = [n.strip() for n in line[:width].split(",")]
        for n in names:
            out[n] = (out.get(n, "") + " " + line[width:].strip()).strip()
    return out


POLICY_HELP = _policy_help()


def _reset_policies(key: str) -> None:
    for f in POLICY_FIELDS:
        st.session_state.pop(f"{key}_policy_{f}", None)


def policy_overrides(variant: str, key: str, container: Any = None) -> dict[str, Any]:
    """An expander with one widget per field of ``calib.Policy``, each starting at the
    variant's preset; returns the fields the user changed (``{name: value}``).

    The widget keys are ``<key>_policy_<field>``; popping them (``_reset_policies``)
    brings every widget back to the preset. A variant change should do so.
    """
    preset = VARIANTS[variant]
    box = container or st.sidebar
    for f in POLICY_FIELDS:
        _default(f"{key}_policy_{f}", getattr(preset, f))
    active = {
        f: st.session_state[f"{key}_policy_{f}"]
        for f in POLICY_FIELDS
        if st.session_state[f"{key}_policy_{f}"] != getattr(preset, f)
    }
    title = f"Policies of {variant}" + (f" ({len(active)} overridden)" if active else "")
    with box.expander(title, expanded=bool(active)):
        st.caption("Each choice starts at the preset; change one to see what it moves.")
        for f in POLICY_FIELDS:
            k = f"{key}_policy_{f}"
            value = getattr(preset, f)
            help_ = POLICY_HELP.get(f)
            if f in POLICY_CHOICES:

                def mark(v: str, preset_value: str = value) -> str:
                    return f"{v} (preset)" if v == preset_value else v

                st.selectbox(f, POLICY_CHOICES[f], key=k, format_func=mark, help=help_)
            elif f in _POLICY_INTS:
                st.number_input(f"{f} (preset {value})", min_value=1, step=1, key=k, help=help_)
            else:  # eps
                st.number_input(
                    f"{f} (preset {value:g})", min_value=1e-12, max_value=0.5, step=1e-5,
                    format="%.2e", key=k, help=help_,
                )  # fmt: skip
        active = {
            f: st.session_state[f"{key}_policy_{f}"]
            for f in POLICY_FIELDS
            if st.session_state[f"{key}_policy_{f}"] != getattr(preset, f)
        }
        if active:
            st.markdown(
                "**Overridden:** "
                + ", ".join(
                    f"`{f}` = {v!r} (preset {getattr(preset, f)!r})" for f, v in active.items()
                )
            )
            st.button("Reset to the preset", key=f"{key}_policy_reset", on_click=_reset_policies,
                      args=(key,))  # fmt: skip
    return active


@dataclasses.dataclass(frozen=True)
class Controls:
    """What the Explore sidebar chose."""

    variant: str
    overrides: tuple[tuple[str, Any], ...]  # (policy, value) pairs, in Policy field order
    target_bins: int
    hist_bins: int
    num_bits: int
    log_y: bool
    show_variants: bool


def _on_variant_change(key: str) -> None:
    """A new variant starts from its own levels and its own policies."""
    s = st.session_state
    s[f"{key}_target_bins"] = default_target_bins(s[f"{key}_variant"], s[f"{key}_num_bits"])
    _reset_policies(key)


def _on_num_bits_change(key: str) -> None:
    """A new bit width starts from the variant's number of levels for it."""
    s = st.session_state
    s[f"{key}_target_bins"] = default_target_bins(s[f"{key}_variant"], s[f"{key}_num_bits"])


def explore_controls(source: Source, key: str = "explore") -> Controls:
    """Explore's sidebar: variant, bit width, target bins, histogram size, log-y, the
    other variants' lines, and the variant's policies."""
    s = st.session_state
    side = st.sidebar
    side.header("Calibration")
    _default(f"{key}_variant", "seed")
    _default(f"{key}_num_bits", DEFAULT_NUM_BITS)
    variant = side.selectbox(
        "Variant", list(VARIANTS), key=f"{key}_variant", on_change=_on_variant_change,
        args=(key,), help="Which implementation's choices the sweep follows.",
    )  # fmt: skip
    side.caption(policies.VARIANT_NOTES[variant])
    num_bits = side.select_slider(
        "Bit width", NUM_BITS_CHOICES, key=f"{key}_num_bits", on_change=_on_num_bits_change,
        args=(key,), help="The quantizer the SQNR and the MSE method assume; a new width "
        "also resets target bins to the variant's levels for it.",
    )  # fmt: skip
    _default(f"{key}_target_bins", default_target_bins(variant, num_bits))
    t = s[f"{key}_target_bins"]
    s[f"{key}_target_bins"] = int(min(max(int(t), TARGET_BINS_MIN), TARGET_BINS_MAX))
    target_bins = side.slider(
        "Target bins (quantized levels)",
        min_value=TARGET_BINS_MIN,
        max_value=TARGET_BINS_MAX,
        key=f"{key}_target_bins",
        help="The levels P is merged into: 128 for INT8 in most tools, 255 in MXNet.",
    )
    choices = hist_bin_choices(source)
    native = native_bins(source)
    hk = f"{key}_hist_bins"
    current, before = s.get(hk), s.get(f"{key}_hist_native")
    if current == before and native != before:
        current = None  # it was the previous source's own size: take this one's
    s[hk] = snap_hist_bins(current, choices, native)
    s[f"{key}_hist_native"] = native
    hist_bins = side.select_slider(
        "Histogram size (bins)",
        choices,
        key=hk,
        format_func=lambda b: (
            f"{b} (as given)" if b == native and source.samples is None else str(b)
        ),
        help="Raw samples are histogrammed again at this size; a binned histogram is "
        "merged down (never split).",
    )
    _default(f"{key}_log_y", True)
    # On by default: a ReLU layer's zero spike dwarfs the rest on a linear axis.
    log_y = side.checkbox("Log count axis", key=f"{key}_log_y")
    show_variants = side.checkbox(
        "Show the other variants' thresholds", key=f"{key}_show_variants",
        help="Each variant at its own default levels for this bit width.",
    )  # fmt: skip
    overrides = policy_overrides(variant, key)
    pairs = tuple((f, overrides[f]) for f in POLICY_FIELDS if f in overrides)
    return Controls(
        variant, pairs, int(target_bins), int(hist_bins), int(num_bits), bool(log_y),
        bool(show_variants),
    )  # fmt: skip


def policy_error(variant: str, overrides: Mapping[str, Any]) -> str | None:
    """Why the variant's preset with these overrides is impossible, or None."""
    try:
        resolve_policy(variant, dict(overrides))
    except ValueError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------------------
# Explore: the one computation
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OtherClip:
    """Another calibrator's threshold on the same histogram."""

    name: str  # "max", "percentile", "mse", or a variant's name
    amax: float
    metrics: ClipMetrics | None  # None where amax is 0 (a dead histogram)


@dataclasses.dataclass(frozen=True)
class View:
    """Everything the Explore page shows for one set of choices (no picked candidate).

    ``hist`` is the source at ``hist_bins`` as the user sees it (the sweep may fold or
    mirror it for its layout: ``result.histogram``). ``metrics`` is ``clip_metrics`` at
    the chosen amax (None for a dead histogram). ``methods`` holds max, percentile and
    mse; ``variants`` the other variants at their own levels (empty unless asked).
    """

    source_key: str
    label: str
    layer: str | None
    variant: str
    overrides: tuple[tuple[str, Any], ...]
    target_bins: int
    hist_bins: int
    num_bits: int
    hist: Histogram
    result: SweepResult
    metrics: ClipMetrics | None
    methods: tuple[OtherClip, ...]
    variants: tuple[OtherClip, ...]

    @property
    def max_abs(self) -> float:
        return self.hist.max_abs

    @property
    def ratio(self) -> float:
        """amax / max|x|; nan for a dead histogram."""
        m = self.max_abs
        return self.result.amax / m if m > 0 else math.nan

    def others(self) -> dict[str, float]:
        """Label -> amax of the other methods and variants, for the histogram's lines."""
        return {c.name: c.amax for c in (*self.methods, *self.variants)}


def _other(h: Histogram, name: str, amax: float, num_bits: int) -> OtherClip:
    m = clip_metrics(h, amax, num_bits) if amax > 0 else None
    return OtherClip(name, float(amax), m)


def compute_view(
    source: Source,
    variant: str,
    overrides: Mapping[str, Any] | tuple[tuple[str, Any], ...] = (),
    target_bins: int | None = None,
    hist_bins: int | None = None,
    num_bits: int = DEFAULT_NUM_BITS,
    with_variants: bool = False,
) -> View:
    """The sweep, its metrics and the other methods' thresholds of one source.

    ``target_bins`` defaults to the variant's levels for ``num_bits``, ``hist_bins`` to
    the source's own size (DEFAULT_BINS for raw samples). ValueError (from the core)
    names an impossible policy combination or a target_bins the histogram cannot take.
    No Streamlit calls except the cached histogramming.
    """
    pairs = tuple(dict(overrides).items())
    policy = resolve_policy(variant, dict(pairs))
    T = default_target_bins(variant, num_bits) if target_bins is None else int(target_bins)
    bins = native_bins(source) if hist_bins is None else int(hist_bins)
    h = sized_histogram(source, bins, signed=policy.layout == "signed")
    result = kl_sweep(h, target_bins=T, variant=variant, **dict(pairs))
    metrics = None if result.dead else clip_metrics(h, result.amax, num_bits)
    if source.key:  # the other methods do not depend on the variant or its levels
        methods = _method_clips(source.key, h.n_bins, h.is_signed, num_bits, _hist=h)
    else:
        methods = _every_method(h, num_bits)
    variants: tuple[OtherClip, ...] = ()
    if with_variants:
        if source.key:
            every = _variant_clips(source.key, h.n_bins, h.is_signed, num_bits, _hist=h)
        else:  # nothing to key a cache by
            every = _every_variant(h, num_bits)
        variants = tuple(o for o in every if o.name != variant or pairs)
    return View(
        source.key, source.label, source.layer, variant, pairs, T, h.n_bins, int(num_bits),
        h, result, metrics, methods, variants,
    )  # fmt: skip


def _every_method(h: Histogram, num_bits: int) -> tuple[OtherClip, ...]:
    """The max, percentile and MSE thresholds of ``h``."""
    return (
        _other(h, "max", amax_max(h), num_bits),
        _other(h, "percentile", amax_percentile(h, DEFAULT_PERCENTILE), num_bits),
        _other(h, "mse", amax_mse(h, num_bits), num_bits),
    )


@st.cache_resource(show_spinner=False, max_entries=32)
def _method_clips(
    source_key: str, hist_bins: int, signed: bool, num_bits: int, *, _hist: Histogram
) -> tuple[OtherClip, ...]:
    """``_every_method``, cached apart from the view, as ``_variant_clips`` is."""
    return _every_method(_hist, num_bits)


@st.cache_resource(show_spinner=False, max_entries=32)
def _variant_clips(
    source_key: str, hist_bins: int, signed: bool, num_bits: int, *, _hist: Histogram
) -> tuple[OtherClip, ...]:
    """``_every_variant``, cached apart from the view: it does not depend on the sliders
    that move most."""
    return _every_variant(_hist, num_bits)


def _every_variant(h: Histogram, num_bits: int) -> tuple[OtherClip, ...]:
    """Every variant's threshold at its own levels for ``num_bits``."""
    out = []
    for v in VARIANTS:
        try:
            r = kl_sweep(h, target_bins=default_target_bins(v, num_bits), variant=v)
        except ValueError:
            continue  # too few bins for that variant's levels: leave its line out
        out.append(_other(h, v, r.amax, num_bits))
    return tuple(out)


@st.cache_resource(show_spinner=False, max_entries=128)
def explore_view(
    source_key: str,
    variant: str,
    overrides: tuple[tuple[str, Any], ...],
    target_bins: int,
    hist_bins: int,
    num_bits: int,
    with_variants: bool = False,
    *,
    _source: Source,
) -> View:
    """``compute_view``, cached on its primitive arguments (``_source`` is not hashed:
    ``source_key`` names it)."""
    return compute_view(
        _source, variant, overrides, target_bins, hist_bins, num_bits, with_variants
    )


def kl_curve_csv(result: SweepResult) -> str:
    """The KL curve as CSV: ``candidate,threshold,kl`` (undefined KL written as inf)."""
    rows = ["candidate,threshold,kl"]
    rows += [
        f"{int(c)},{float(t)!r},{float(k)!r}"
        for c, t, k in zip(result.candidates, result.thresholds, result.kl, strict=True)
    ]
    return "\n".join(rows) + "\n"


def _json_number(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def threshold_json(view: View) -> str:
    """The chosen threshold and how it was chosen, as JSON (undefined KL as null)."""
    r = view.result
    doc = {
        "source": view.label,
        "layer": view.layer,
        "variant": view.variant,
        "policies_overridden": dict(view.overrides),
        "target_bins": view.target_bins,
        "hist_bins": view.hist_bins,
        "num_bits": view.num_bits,
        "amax": _json_number(r.amax),
        "best": int(r.best),
        "kl": _json_number(r.min_kl),
        "sqnr_db": None if view.metrics is None else _json_number(view.metrics.sqnr_db),
    }
    return json.dumps(doc, indent=2) + "\n"


# --------------------------------------------------------------------------------------
# Explore: the candidate the user picks (slider or a click on the KL curve)
# --------------------------------------------------------------------------------------
def candidate_from_selection(selection: Any, result: SweepResult) -> int | None:
    """The candidate nearest the first clicked point's x (a threshold), or None.

    ``selection`` is what ``st.plotly_chart(on_select="rerun")`` returns (or its
    ``["selection"]`` part, or the ``points`` list).
    """
    points = selection
    if isinstance(points, Mapping):
        points = points.get("selection", points)
    if isinstance(points, Mapping):
        points = points.get("points", [])
    for p in points or []:
        x = p.get("x") if isinstance(p, Mapping) else None
        if isinstance(x, (int, float)) and math.isfinite(x) and result.thresholds.size:
            return int(result.candidates[int(np.argmin(np.abs(result.thresholds - x)))])
    return None


def pick_candidate(result: SweepResult, key: str = "explore") -> int:
    """The threshold slider under the KL curve; a click on the curve moves it.

    A new click (one not handled before) sets the slider; its selection stays in the
    chart until the figure changes, so the last handled click is remembered, and the
    memory is cleared when the chart shows no selection. The slider starts at the
    widest candidate (clipping least), to contrast with the chosen one.
    """
    s = st.session_state
    chart = s.get(f"{key}_kl_curve")
    points = []
    if isinstance(chart, Mapping):
        points = list((chart.get("selection") or {}).get("points") or [])
    click_key = f"{key}_kl_click"
    if points:
        signature = json.dumps(points, sort_keys=True, default=str)
        if signature != s.get(click_key):
            s[click_key] = signature
            c = candidate_from_selection(points, result)
            if c is not None:
                s[f"{key}_candidate"] = c
    else:
        s.pop(click_key, None)
    options = [int(c) for c in result.candidates]
    ck = f"{key}_candidate"
    if s.get(ck) not in set(options):
        s[ck] = options[-1]
    thresholds = dict(zip(options, result.thresholds.tolist(), strict=True))
    return int(
        st.select_slider(
            "Inspect a candidate threshold (or click a point of the KL curve)",
            options,
            key=ck,
            format_func=lambda c: f"{thresholds[c]:.4g} (bin {c})",
        )
    )


# --------------------------------------------------------------------------------------
# Explore: the view's state in the query string
# --------------------------------------------------------------------------------------
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
    if field in _POLICY_INTS:
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
    key: str = "explore",
) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """Session-state assignments for an Explore query string, and what was ignored.

    Parameters
    ----------
    params : mapping
        The query string (``src``, ``layer``, ``demo``, ``variant``, ``target_bins``,
        ``hist_bins``, ``num_bits``, ``log_y`` and any field of ``calib.Policy``);
        other keys are ignored.
    current : mapping
        The session state now (a missing parameter keeps its current value).
    model_layers : list of str
        The real model's layers, to check ``layer`` against.

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
    if "layer" in params:
        if kind == "model":
            if params["layer"] in model_layers:
                out[f"{key}_model_layer"] = params["layer"]
            else:
                ignore("layer", f"a layer of {MODEL_NAME}")
        elif kind == "histogram":
            out[f"{key}_upload_layer"] = params["layer"]  # checked once the file is there
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
        if v is not None and TARGET_BINS_MIN <= v <= TARGET_BINS_MAX:
            out[f"{key}_target_bins"] = v
        else:
            ignore("target_bins", f"an integer in {TARGET_BINS_MIN}..{TARGET_BINS_MAX}")
    if f"{key}_target_bins" not in out and (f"{key}_variant" in out or f"{key}_num_bits" in out):
        out[f"{key}_target_bins"] = default_target_bins(variant, num_bits)
    if "hist_bins" in params:
        v = _as_int(params["hist_bins"])
        if v is not None and v >= 2:
            out[f"{key}_hist_bins"] = v  # snapped to the sizes on offer by the slider
        else:
            ignore("hist_bins", "an integer of at least 2")
    if "log_y" in params:
        text = params["log_y"].lower()
        if text in ("true", "1", "false", "0"):
            out[f"{key}_log_y"] = text in ("true", "1")
        else:
            ignore("log_y", "true or false")
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


def explore_link(layer: str, variant: str | None = None, **more: Any) -> str:
    """A relative link opening Explore on one layer of the real model:
    ``/?src=model&layer=...`` (for the Layers page)."""
    return "/?" + urlencode(explore_query("model", layer=layer, variant=variant, **more))


def _state_query(key: str) -> dict[str, str]:
    """The view's state as query parameters, read from the widgets' session state (a
    widget not made yet counts at the value it will start at; hist_bins is left out
    until the slider has settled it)."""
    s = st.session_state
    kind = s.get(f"{key}_kind", "model")
    q: dict[str, str] = {"src": kind}
    if kind == "model":
        q["layer"] = str(s.get(f"{key}_model_layer", DEFAULT_LAYER))
    if kind == "histogram" and s.get(f"{key}_upload_layer"):
        q["layer"] = str(s[f"{key}_upload_layer"])
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
    preset = VARIANTS[variant]
    for f in POLICY_FIELDS:
        v = s.get(f"{key}_policy_{f}", getattr(preset, f))
        if v != getattr(preset, f):
            q[f] = repr(v) if isinstance(v, float) else str(v)
    return q


def _write_query(key: str) -> None:
    q = _state_query(key)
    if q != st.query_params.to_dict():
        st.query_params.from_dict(q)
    # remembered only once sent: after st.stop() the send itself can be cut short
    st.session_state[f"{key}_query_written"] = q


@contextlib.contextmanager
def synced_query_params(key: str = "explore") -> Iterator[None]:
    """Keep the page's state in the URL: apply the query string at the start of a run
    when it is new (a link, or another page sending the user here), and write the state
    back at the start and at the end of the run.

    The start already holds this rerun's widget values (Streamlit applies them before
    the script runs), so a page that stops early (``st.stop``, after which nothing more
    reaches the browser) still has them in the URL; the end adds what the run itself
    settled (a histogram size snapped to the sizes on offer). A query string the page
    wrote itself is not applied again, unless the user is back from another page (whose
    runs dropped this page's widget states); an empty one (another page's navigation
    cleared it, or left only its own keys) brings back the state this page last wrote.
    """
    s = st.session_state
    params = {
        k: v
        for k, v in st.query_params.to_dict().items()
        if k in EXPLORE_QUERY_KEYS or k in POLICY_FIELDS  # another page's keys are not ours
    }
    written = s.get(f"{key}_query_written")
    # back from another page: Streamlit dropped this page's widget states meanwhile
    returning = written is not None and f"{key}_variant" not in s
    if not params and written:
        params = written
    if params and (params != written or returning):
        updates, ignored = parse_explore_query(params, s, list(model_histograms()), key)
        for k, v in updates.items():
            s[k] = v
        if f"{key}_hist_bins" in updates:
            s.pop(f"{key}_hist_native", None)  # a size from a link is meant for its source
        for message in ignored:
            st.warning(message)
    _write_query(key)
    try:
        yield
    finally:
        _write_query(key)
