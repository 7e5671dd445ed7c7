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
from calib.app.charts import plot
from calib.app.links import EXPLORE_QUERY_KEYS, parse_explore_query, state_query
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
from calib.app.text import error_text, plain
from calib.explore import (
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
    kl_curve_csv,
    max_target_bins,
    policy_error,
    threshold_json,
)
from calib.figures.explore import chosen_figure, explore_histogram, picked_figure
from calib.histogram import Histogram
from calib.methods import DEFAULT_NUM_BITS
from calib.numbers import fmt, fmt_count, fmt_db, fmt_kl, fmt_pct
from calib.policies import POLICY_CHOICES, VARIANTS, resolve_policy
from calib.sweep import SweepResult

__all__ = [
    "Controls",
    "compute_view",
    "explore_controls",
    "explore_view",
    "page",
    "pick_candidate",
    "policy_overrides",
    "synced_query_params",
    "thresholds_table",
    "write_query",
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
def pick_candidate(result: SweepResult, key: str = "explore") -> int:
    """The candidate the server picks (the link keeps it, the histogram draws its line,
    the "Picked" figure's slider starts there): an integer slider over the candidates,
    at the widest one (clipping least) at first, to contrast with the chosen one.
    Scrubbing other candidates happens in the figure itself, in the browser."""
    s = st.session_state
    options = [int(c) for c in result.candidates]
    ck = f"{key}_candidate"
    # Written back on every run, kept or not: a new sweep's options make the slider a new
    # widget, which the browser would otherwise draw at its first option while the page
    # computed with the value kept here (the two then ran out of step).
    s[ck] = s[ck] if s.get(ck) in set(options) else options[-1]
    return int(
        _candidate_slider(
            "Candidate for the link and the histogram's green line (scrub the figure's own "
            "slider to inspect others at once)",
            result,
            key=ck,
        )
    )


def _candidate_slider(label: str, result: SweepResult, **kw: Any) -> Any:
    """A slider over the sweep's candidates (bins), which every variant spaces evenly, a
    stride apart (tests/test_sweep.py holds every policy to it): a plain integer slider,
    whose message to the browser is three numbers, where a select slider sends every
    option's label (2,000 of them, 89 kB on every rerun)."""
    c = result.candidates
    if c.size < 2:  # one candidate: nothing to slide
        st.caption(f"{label}: the one candidate, bin {int(c[0])}")
        return int(c[0])
    return st.slider(
        label, min_value=int(c[0]), max_value=int(c[-1]), step=int(c[1] - c[0]),
        format="bin %d", **kw,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Explore: the view's state in the query string
# --------------------------------------------------------------------------------------
def write_query(key: str = "explore") -> None:
    """Write the view's state into the URL (what :func:`synced_query_params` does at the
    start and the end of a run; a fragment's rerun, which runs neither, calls this)."""
    _write_query(key)


def _write_query(key: str) -> None:
    q = state_query(key)
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
        # the link's own pick: a method's clip does not move it (state.method_clip)
        s[f"{key}_candidate_linked"] = f"{key}_candidate" in updates
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


# --------------------------------------------------------------------------------------
# Explore: the page
# --------------------------------------------------------------------------------------
INTRO = (
    "Where an entropy (KL-divergence) INT8 calibrator clips one activation histogram: the "
    "clip on the histogram, the KL of every candidate threshold, and P against Q at the "
    "chosen one and at any candidate you pick. It opens on a real model's layer; the "
    "sidebar picks another layer, a demo or your own file, and every implementation choice."
)


def page(key: str = "explore") -> None:
    """The Explore page below its title: the source and controls (sidebar), the numbers,
    and the figures, the state kept in the URL (``calib.app.links``)."""
    from calib.app import sources

    st.write(INTRO)
    with synced_query_params(key):
        source = sources.histogram_source(key)
        c = explore_controls(source, key)
        view = _view_or_error(source, c)
        _numbers(view, c, key)
        r = view.result
        name = view.layer or view.label
        if r.dead:
            plot(explore_histogram(view, c.log_y), f"{key}_histogram", name, "histogram")
            st.warning(
                "Every count is zero (a dead layer): no clip is defined, amax is 0. A "
                "calibration table should flag this tensor rather than trust its scale."
            )
            st.stop()
        _downloads(view, key)

        @st.fragment
        def candidate_views() -> None:
            """The figures and the picked candidate. The candidate slider reruns only this
            (a fragment): the sidebar and the numbers above do not depend on it."""
            _figures(view, c, key, name)

        candidate_views()


def _view_or_error(source: Source, c: Controls) -> View:
    problem = policy_error(c.variant, dict(c.overrides))
    if problem:
        st.error(
            f"Impossible policy combination for {c.variant}: {problem}. Change one of the "
            "overridden policies in the sidebar, or reset them to the preset."
        )
        st.stop()
    try:
        return explore_view(
            source.key, c.variant, c.overrides, c.target_bins, c.hist_bins, c.num_bits,
            c.show_variants, _source=source,
        )  # fmt: skip
    except ValueError as err:
        st.error(f"Cannot sweep with these settings: {error_text(err)}")
        st.stop()
        raise  # st.stop() raises; this line is for the type checker


def _numbers(view: View, c: Controls, key: str) -> None:
    """The caption, seven metrics and the sentences that explain them."""
    r, h, m = view.result, view.hist, view.metrics
    st.caption(
        f"**{plain(view.label)}**: {h.n_bins} bins on [{fmt(h.edges[0])}, {fmt(h.edges[-1])}], "
        f"{fmt_count(h.total)} counts; {c.variant}, {view.target_bins} levels, {c.num_bits}-bit"
        + (f"; overridden: {dict(c.overrides)}" if c.overrides else "")
    )
    state.method_clip(view, c.num_bits, key)  # a row ranked under max, percentile or mse
    # two rows of four: seven metrics in one row cut values like "0.0089%" at 1440 px
    cols = [*st.columns(4), *st.columns(4)]
    cols[0].metric(
        "Threshold (bins)", "—" if r.dead else f"{r.best}",
        help="The chosen candidate as the variant's own loop counts it (seed, ncnn, "
        "ModelOpt: kept bins; MXNet, ONNX Runtime: bins on each side of zero).",
    )  # fmt: skip
    cols[1].metric("Threshold", fmt(r.amax), help="The clip amax, in activation units.")
    cols[2].metric("Max |x|", fmt(view.max_abs), help="Where the data end.")
    cols[3].metric("Threshold / max", fmt(view.ratio, 3))
    cols[4].metric(
        # 2 significant digits: the metric column is narrow
        "Clipped mass", fmt_pct(None if m is None else m.clipped_fraction),
        help="Share of the values beyond the clip.",
    )  # fmt: skip
    cols[5].metric(
        "KL at minimum", fmt_kl(None if r.dead else r.min_kl, r.kl_scale),  # dead: no KL
        help="KL(P‖Q) of the chosen candidate, in the variant's own definition (the "
        "seed: raw counts, plus 1 for each bin where Q = 0 < P).",
    )  # fmt: skip
    cols[6].metric(
        "SQNR", fmt_db(None if m is None else m.sqnr_db),
        help=f"Signal to quantization noise of a {c.num_bits}-bit symmetric quantizer "
        "clipped at the threshold (rounding plus clipping error).",
    )  # fmt: skip
    why = view.why
    lines = [t for t in (why.floor, why.penalty, why.error) if t]
    if lines:
        st.markdown("\n".join(f"- {t}" for t in lines))


def _downloads(view: View, key: str) -> None:
    r = view.result
    d1, d2, _ = st.columns([1, 1, 5])
    d1.download_button(
        "KL curve (CSV)", lambda: kl_curve_csv(r), file_name="kl_curve.csv",
        mime="text/csv", on_click="ignore", key=f"{key}_csv",
    )  # fmt: skip
    d2.download_button(
        "Threshold (JSON)", lambda: threshold_json(view), file_name="threshold.json",
        mime="application/json", on_click="ignore", key=f"{key}_json",
    )  # fmt: skip


@st.cache_resource(show_spinner=False, max_entries=16)
def _picked_figure(view_id: tuple, picked: int, log_y: bool, *, _view: View) -> Any:
    """The scrub figure (about 60 candidates' P and Q), cached by the view's keys."""
    return picked_figure(_view, picked, log_y)


def _figures(view: View, c: Controls, key: str, name: str) -> None:
    """The histogram, the KL curve with the picked P and Q (scrubbed in the browser), the
    candidate the server keeps (the link's), the chosen P and Q and every threshold."""
    r, why = view.result, view.why
    hist_slot = st.empty()
    scrub_slot = st.empty()
    picked = pick_candidate(r, key)
    if why.undefined:
        st.caption(why.undefined)
    left, right = st.columns(2)
    # the chosen P and Q first: a key press's change reaches the browser before the rest
    plot(chosen_figure(view, c.log_y), f"{key}_pq_chosen", name, "chosen_pq", where=left)
    if why.coincide:
        left.caption(why.coincide)
    plot(explore_histogram(view, c.log_y, picked), f"{key}_histogram", name, "histogram",
         where=hist_slot)  # fmt: skip
    view_id = (view.source_key, view.variant, view.overrides, view.target_bins,
               view.hist_bins, view.num_bits, view.hist.is_signed)  # fmt: skip
    fig = _picked_figure(view_id, picked, c.log_y, _view=view) if view.source_key else (
        picked_figure(view, picked, c.log_y))  # fmt: skip
    plot(fig, f"{key}_picked", name, "kl_curve_and_picked_pq", where=scrub_slot)
    rows = [("entropy: " + c.variant, r.amax, view.metrics)]
    rows += [(o.name, o.amax, o.metrics) for o in (*view.methods, *view.variants) if not o.note]
    right.markdown(
        f"**Every threshold on this histogram** ({c.num_bits}-bit quantizer)\n\n"
        + thresholds_table(rows, view.max_abs)
    )
    right.caption(
        "max: the largest |x|; percentile: ModelOpt's 99.99th; mse: the clip with the "
        "smallest expected quantization error. They are the faint lines on the histogram."
    )
    for line in view.left_out():
        right.caption(f"Left out (cannot run on this histogram): {line}.")
    write_query(key)  # a rerun of this alone: the picked candidate into the URL
