"""The Explore page's machinery (pages/0_Explore.py): its sidebar controls, its one cached
computation, the candidate the user picks, the downloads, and the view's state in the
query string.

The UI layer: the page imports this, this imports ``calib.app.sources`` (the widgets the
pages share) and the core, never the reverse; what the view computes is the core's
``calib.explore``. Cached values are immutable (frozen dataclasses)
and kept with ``st.cache_resource``; caches are keyed by primitives (a source's ``key``,
ints, names), never by hashing arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import streamlit as st

from calib import policies
from calib.app import state
from calib.app.sources import (
    Source,
    _default,
    hist_bin_choices,
    model_histograms,
    native_bins,
    shipped_models,
    sized_histogram,
    snap_hist_bins,
)
from calib.app.text import plain
from calib.demos import DEMOS
from calib.explore import (
    DEFAULT_LAYER,
    EXPLORE_QUERY_KEYS,
    LAYER_KEYS,
    NUM_BITS_CHOICES,
    POLICY_FIELDS,
    POLICY_HELP,
    POLICY_INTS,
    TARGET_BINS_MAX,
    TARGET_BINS_MIN,
    OtherClip,
    View,
    build_view,
    default_target_bins,
    every_method,
    every_variant,
    max_target_bins,
    parse_explore_query,
)
from calib.figures.explore import candidate_clicked, kl_markers
from calib.histogram import Histogram
from calib.methods import DEFAULT_NUM_BITS
from calib.models import DEFAULT_MODEL, MODELS
from calib.numbers import fmt
from calib.policies import POLICY_CHOICES, VARIANTS, resolve_policy
from calib.sweep import SweepResult

__all__ = [
    "Controls",
    "compute_view",
    "explore_controls",
    "explore_view",
    "kl_chart_key",
    "pick_candidate",
    "policy_overrides",
    "synced_query_params",
    "thresholds_table",
    "write_query",
    "zoom_candidates",
]


# --------------------------------------------------------------------------------------
# Explore: levels and policies
# --------------------------------------------------------------------------------------
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
            elif f in POLICY_INTS:
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


def _on_target_typed(key: str) -> None:
    """The typed target bins move the slider (clamped to its range)."""
    s = st.session_state
    t = s.get(f"{key}_target_bins_typed")
    if t is not None:  # the box has the slider's range
        s[f"{key}_target_bins"] = max(int(t), TARGET_BINS_MIN)


def _fit_target_bins(key: str, t_max: int, cap: int = TARGET_BINS_MAX) -> int | None:
    """Target bins follow the histogram's size: above what it takes (``t_max``) they are
    lowered to it, and the value asked for comes back once the histogram takes it again,
    unless the user moved the control meanwhile (``cap``: the slider's top at this bit
    width). Returns the value asked for while it is lowered, else None."""
    s = st.session_state
    tk, wanted, lowered = f"{key}_target_bins", f"{key}_target_wanted", f"{key}_target_lowered"
    t = int(s[tk])
    if wanted in s and t == s.get(lowered):
        t = int(s[wanted])  # untouched since it was lowered: the wish still stands
    else:
        s.pop(wanted, None)
    t = int(min(max(t, TARGET_BINS_MIN), cap))
    if t > t_max:
        s[wanted], s[lowered] = t, max(t_max, TARGET_BINS_MIN)
        t = s[lowered]
    else:
        s.pop(wanted, None)
        s.pop(lowered, None)
    s[tk] = t
    return s.get(wanted)


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
    # the histogram's size is settled first: the target bins it takes follow from it
    choices = hist_bin_choices(source)
    native = native_bins(source)
    hk = f"{key}_hist_bins"
    current, before = s.get(hk), s.get(f"{key}_hist_native")
    if current == before and native != before:
        current = None  # it was the previous source's own size: take this one's
    s[hk] = snap_hist_bins(current, choices, native)
    s[f"{key}_hist_native"] = native
    layout = s.get(f"{key}_policy_layout", VARIANTS[variant].layout)
    signed = source.hist.is_signed if source.samples is None else layout == "signed"
    # the variant's own levels at this width may pass the usual top (13 bits: 4096): the
    # slider then reaches them, and never computes with fewer than it says
    own = default_target_bins(variant, num_bits)
    cap = max(TARGET_BINS_MAX, own)
    t_max = min(cap, max_target_bins(s[hk], signed, layout))
    _default(f"{key}_target_bins", own)
    asked = _fit_target_bins(key, t_max, cap)
    top = max(t_max, TARGET_BINS_MIN + 1)  # a slider needs min < max
    s[f"{key}_target_bins_typed"] = s[f"{key}_target_bins"]
    slot, typed = side.columns([3, 1], vertical_alignment="bottom")
    target_bins = slot.slider(
        "Target bins (quantized levels)",
        min_value=TARGET_BINS_MIN,
        max_value=top,
        key=f"{key}_target_bins",
        help="The levels P is merged into: 128 for INT8 in most tools, 255 in MXNet. At "
        "most the histogram's bins less one (they follow its size). Type a value in the box "
        "beside, or focus the slider and use the arrow keys.",
    )
    typed.number_input(
        "Target bins, typed", min_value=TARGET_BINS_MIN, max_value=top, step=1,
        key=f"{key}_target_bins_typed", on_change=_on_target_typed, args=(key,),
        label_visibility="collapsed",
    )  # fmt: skip
    if own > TARGET_BINS_MAX:
        side.caption(
            f"At {num_bits} bits {variant} uses {own:,} levels, past the usual "
            f"{TARGET_BINS_MAX:,}: the slider reaches {top:,} here."
        )
    if asked is not None:
        side.caption(
            f"Target bins follow the histogram: {s[hk]} bins take at most {t_max} levels "
            f"here ({asked} asked; it comes back with a larger histogram)."
        )
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
        variant=variant, overrides=pairs, target_bins=int(target_bins),
        hist_bins=int(hist_bins), num_bits=int(num_bits), log_y=bool(log_y),
        show_variants=bool(show_variants),
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Explore: the one computation
# --------------------------------------------------------------------------------------
def compute_view(
    source: Source,
    variant: str,
    overrides: Mapping[str, Any] | tuple[tuple[str, Any], ...] = (),
    target_bins: int | None = None,
    hist_bins: int | None = None,
    num_bits: int = DEFAULT_NUM_BITS,
    with_variants: bool = False,
) -> View:
    """:func:`calib.explore.build_view` of one source at ``hist_bins`` (the source's own
    size by default), with the other methods' and variants' clips cached apart: they do
    not depend on the sliders that move most. No Streamlit calls but the caches.
    """
    pairs = tuple(dict(overrides).items())
    policy = resolve_policy(variant, dict(pairs))
    bins = native_bins(source) if hist_bins is None else int(hist_bins)
    h = sized_histogram(source, bins, signed=policy.layout == "signed")
    if source.key:
        methods = _method_clips(source.key, h.n_bins, h.is_signed, num_bits, _hist=h)
    else:  # nothing to key a cache by
        methods = every_method(h, num_bits)
    variants: tuple[OtherClip, ...] = ()
    if with_variants:
        if source.key:
            every = _variant_clips(source.key, h.n_bins, h.is_signed, num_bits, _hist=h)
        else:
            every = every_variant(h, num_bits)
        variants = tuple(o for o in every if o.name != variant or pairs)
    return build_view(
        h, variant, pairs, target_bins, num_bits, source_key=source.key, label=source.label,
        layer=source.layer, methods=methods, variants=variants,
    )  # fmt: skip


@st.cache_resource(show_spinner=False, max_entries=32)
def _method_clips(
    source_key: str, hist_bins: int, signed: bool, num_bits: int, *, _hist: Histogram
) -> tuple[OtherClip, ...]:
    """``every_method``, cached apart from the view, as ``_variant_clips`` is."""
    return every_method(_hist, num_bits)


@st.cache_resource(show_spinner=False, max_entries=32)
def _variant_clips(
    source_key: str, hist_bins: int, signed: bool, num_bits: int, *, _hist: Histogram
) -> tuple[OtherClip, ...]:
    """``every_variant``, cached apart from the view."""
    return every_variant(_hist, num_bits)


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


def thresholds_table(rows: list[tuple[str, float, Any]], max_abs: float) -> str:
    """Every method's threshold on the histogram, a markdown table: (name, amax, its
    ``ClipMetrics`` or None) rows. (Markdown, not ``st.dataframe``: a first visit then
    loads no data grid, 1.2 MB of the browser's script.)"""
    lines = [
        "| method | amax | amax / max | clipped % | SQNR dB |",
        "|:--|--:|--:|--:|--:|",
    ]
    for name, amax, m in rows:
        clipped = None if m is None else 100 * m.clipped_fraction
        sqnr = None if m is None else m.sqnr_db
        lines.append(
            f"| {name} | {fmt(amax, 6)} | {fmt(amax / max_abs)} | {fmt(clipped)} | "
            f"{fmt(sqnr, 2, fixed=True)} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Explore: the candidate the user picks (slider or a click on the KL curve)
# --------------------------------------------------------------------------------------
def _selected_markers(chart: Any) -> set[int]:
    """The indices of the KL curve's selected markers (series ``"candidates"``)."""
    sel = chart.get("selection") if isinstance(chart, Mapping) else None
    groups = sel.get("selected") if isinstance(sel, Mapping) else None
    return {
        int(i)
        for g in groups or []
        if isinstance(g, Mapping) and g.get("series_name") == "candidates"
        for i in g.get("data_indices") or []
        if isinstance(i, int)
    }


def kl_chart_key(result: SweepResult, span: tuple[int, int] | None, key: str = "explore") -> str:
    """The KL curve's widget key: one chart for the whole curve (a new sweep updates it in
    place), a new one for each zoom. A zoom changes which markers there are, and ECharts
    keeps a selection by marker index: a fresh chart starts with none."""
    c = result.candidates
    if span is None or (span[0], span[1]) == (int(c[0]), int(c[-1])):
        return f"{key}_kl_curve"
    return f"{key}_kl_curve_{span[0]}_{span[1]}"


def pick_candidate(
    result: SweepResult, key: str = "explore", span: tuple[int, int] | None = None
) -> int:
    """The threshold slider under the KL curve; a click on a marker of the curve (drawn
    for ``span``, the zoom) moves it. The slider starts at the widest candidate
    (clipping least), to contrast with the chosen one.

    The chart (widget key :func:`kl_chart_key`) keeps one instance across reruns, and its
    markers are in ECharts' "multiple" selection mode: each click toggles one marker in
    or out of the selection, which the chart keeps. The marker clicked is the one the
    selection gained since the last one handled (remembered here), or else the one it
    lost; markers the curve no longer has (a narrower zoom) do not count, and a change by
    more than one marker (a double click clears them all) picks nothing.
    """
    s = st.session_state
    chart = kl_chart_key(result, span, key)
    memo = f"{key}_kl_selected"
    if chart not in s:  # a new chart (a zoom, or back from another page): nothing selected
        s.pop(memo, None)
    now = _selected_markers(s.get(chart))
    n_markers = kl_markers(result, span).size
    before = {i for i in s.get(memo, ()) if i < n_markers}
    s[memo] = sorted(now)
    gained, lost = now - before, before - now
    toggled = gained if gained else lost
    if len(toggled) == 1:
        state = {"selected": [{"series_name": "candidates", "data_indices": [toggled.pop()]}]}
        clicked = candidate_clicked(state, result, span)
        if clicked is not None:
            s[f"{key}_candidate"] = clicked
    options = [int(c) for c in result.candidates]
    ck = f"{key}_candidate"
    # Written back on every run, kept or not: a new sweep's options make the slider a new
    # widget, which the browser would otherwise draw at its first option while the page
    # computed with the value kept here (the two then ran out of step).
    s[ck] = s[ck] if s.get(ck) in set(options) else options[-1]
    return int(
        _candidate_slider(
            "Inspect a candidate threshold (or click a point of the KL curve)", result, key=ck
        )
    )


def _candidate_slider(label: str, result: SweepResult, **kw: Any) -> Any:
    """A slider over the sweep's candidates (bins), which every variant spaces evenly, a
    stride apart (tests/test_sweep.py holds every policy to it): a plain integer slider,
    whose message to the browser is three numbers, where a select slider sends every
    option's label (2,000 of them, 89 kB on every rerun)."""
    c = result.candidates
    if c.size < 2:  # one candidate: nothing to slide (the zoom is not drawn then)
        st.caption(f"{label}: the one candidate, bin {int(c[0])}")
        return int(c[0])
    return st.slider(
        label, min_value=int(c[0]), max_value=int(c[-1]), step=int(c[1] - c[0]),
        format="bin %d", **kw,
    )  # fmt: skip


def zoom_candidates(result: SweepResult, key: str = "explore") -> tuple[int, int]:
    """The candidates the KL curve shows, (first, last): a range slider under it, all of
    them at first. A 2,000-candidate curve is about 8 candidates a pixel wide; a narrower
    range makes each one clickable."""
    s = st.session_state
    options = [int(c) for c in result.candidates]
    if len(options) < 2:
        return options[0], options[-1]
    zk, seen = f"{key}_kl_zoom", f"{key}_kl_zoom_of"
    # Other candidates make a new widget, which the browser draws at its default (all of
    # them): the kept range goes too, so that the page computes what the browser shows.
    # (A range slider takes its range from value=, so the state is never set here.)
    of = (options[0], options[-1], len(options))
    if s.get(seen) != of:
        s.pop(zk, None)
        s[seen] = of
    lo, hi = _candidate_slider(
        "Zoom: the candidates the KL curve shows", result, value=(options[0], options[-1]),
        key=zk, help="Narrow it to click one candidate of a long curve.",
    )  # fmt: skip
    return int(lo), int(hi)


# --------------------------------------------------------------------------------------
# Explore: the view's state in the query string
# --------------------------------------------------------------------------------------
def _state_query(key: str) -> dict[str, str]:
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
    if s.get(f"{key}_method") not in (None, "entropy"):  # a row ranked under it
        q["method"] = str(s[f"{key}_method"])
    if s.get(f"{key}_candidate") is not None:  # the picked one, once the slider has one
        q["candidate"] = str(s[f"{key}_candidate"])
    preset = VARIANTS[variant]
    for f in POLICY_FIELDS:
        v = s.get(f"{key}_policy_{f}", getattr(preset, f))
        if v != getattr(preset, f):
            q[f] = repr(v) if isinstance(v, float) else str(v)
    return q


def write_query(key: str = "explore") -> None:
    """Write the view's state into the URL (what :func:`synced_query_params` does at the
    start and the end of a run; a fragment's rerun, which runs neither, calls this)."""
    _write_query(key)


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
    if state.stale(key, st.query_params.to_dict()):  # another page's, not a link here
        params = {}
    written = s.get(f"{key}_query_written")
    # back from another page: Streamlit dropped this page's widget states meanwhile
    returning = written is not None and f"{key}_variant" not in s
    if not params and written:
        params = written
    if params and (params != written or returning):
        updates, ignored = parse_explore_query(
            params, s, list(model_histograms()), key, models=_shipped_layers()
        )
        for k, v in updates.items():
            s[k] = v
        if f"{key}_hist_bins" in updates:
            s.pop(f"{key}_hist_native", None)  # a size from a link is meant for its source
        for message in ignored:
            st.warning(plain(message))  # a link's values are anyone's text: never markdown
    _write_query(key)
    try:
        yield
    finally:
        _write_query(key)


# --------------------------------------------------------------------------------------
# Explore: which shipped model (calib.models), and the method a link was ranked under
# --------------------------------------------------------------------------------------
def _shipped_layers() -> dict[str, list[str]]:
    return {k: list(model_histograms(k)) for k in shipped_models()}


def _model_query(key: str) -> dict[str, str]:
    s = st.session_state
    model = s.get(f"{key}_model", DEFAULT_MODEL)
    if model not in shipped_models():
        return {"layer": str(s.get(f"{key}_model_layer", DEFAULT_LAYER))}
    layer = s.get(f"{key}_model_layer")
    if layer not in model_histograms(model):  # another model's, until the picker settles it
        layer = MODELS[model].default_layer
    return {"model": str(model), "layer": str(layer)}
