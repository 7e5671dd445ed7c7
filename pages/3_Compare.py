"""Compare: every KL variant and calibration method on one histogram, and why they disagree.

The numbers come from ``calib.compare`` (``compare`` for the table, ``attribute`` for the
"why" tabs), the figures from ``calib.figures.compare``. Both are cached by primitives: a
digest of the histogram, the number of levels, the variant.
"""

from __future__ import annotations

import math

import streamlit as st

from calib.app.charts import plot
from calib.app.navigation import ensure_navigation

ensure_navigation()  # first, before the slow imports: see calib/app/navigation.py

from calib.app import sources, state
from calib.app.text import error, plain
from calib.compare import Attribution, Comparison, Sweeper, attribute, compare, histogram_digest
from calib.figures.compare import attribution_figure, clips_figure, kl_curves_figure
from calib.histogram import Histogram
from calib.limits import MAX_COMPARE_BINS
from calib.numbers import fmt, plural
from calib.policies import (
    DEFAULT_TARGET_BINS,
    TARGET_BINS_MAX,
    TARGET_BINS_MIN,
    VARIANT_NOTES,
    VARIANTS,
)

WORKERS = 2  # threads for the sweeps: two nearly halve the dense ones
EXPLAINED = [v for v in VARIANTS if v != "seed"]


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_comparison(digest: str, target_bins: int | None, _hist: Histogram) -> Comparison:
    return compare(_hist, target_bins, explain=False, workers=WORKERS)


@st.cache_resource(show_spinner=False, max_entries=64)
def cached_attribution(
    digest: str, target_bins: int | None, variant: str, _hist: Histogram
) -> Attribution:
    return attribute(_hist, variant, target_bins, target_bins, sweeper=Sweeper(_hist, WORKERS))


def size_options(source: sources.Source) -> tuple[tuple[int, ...], int]:
    """Histogram sizes to offer (Explore's, up to the page's budget, MAX_COMPARE_BINS), and
    the default: 2048 bins for raw samples, a binned histogram's own size (it can only be
    merged down), or the budget when that is smaller."""
    native = sources.native_bins(source)
    options = tuple(b for b in sources.hist_bin_choices(source) if b <= MAX_COMPARE_BINS)
    return options or (MAX_COMPARE_BINS,), min(native, MAX_COMPARE_BINS)


st.set_page_config(page_title="calib: compare", layout="wide")
st.title("Compare implementations and methods")

state.follow_explore("compare")  # opens on Explore's layer unless one was picked here
state.sync("compare")  # the view in the URL (calib/app/state.py)
source = sources.histogram_source("compare")
with st.sidebar:
    st.header("Settings")
    options, default = size_options(source)
    # a new source starts at its own size; written back on every run, since new options
    # make a new widget that the browser would draw at its first option otherwise
    hist_bins_now = st.session_state.get("compare_hist_bins")
    st.session_state["compare_hist_bins"] = hist_bins_now if hist_bins_now in options else default
    hist_bins = st.select_slider(
        "Histogram size (bins)", options=options, key="compare_hist_bins",
        help="Raw samples are histogrammed again; a histogram is merged down.",
        persist_state=state.KEEP,
    )  # fmt: skip
    same = st.checkbox(
        "Same target bins for every variant", value=False, key="compare_same_levels",
        persist_state=state.KEEP,
        help="Off: each variant at its own default (255 levels for MXNet, 128 for the rest).",
    )  # fmt: skip
    levels = st.slider(
        "Target bins (quantized levels)", TARGET_BINS_MIN, TARGET_BINS_MAX,
        DEFAULT_TARGET_BINS["seed"], key="compare_target_bins", disabled=not same,
        persist_state=state.KEEP,
    )  # fmt: skip
    log_y = st.checkbox("Log count axis", value=True, key="compare_log_y", persist_state=state.KEEP)

target_bins = int(levels) if same else None
hist = sources.sized_histogram(source, int(hist_bins))
digest = histogram_digest(hist)
st.caption(f"{plain(source.label)} · {plural(hist.n_bins, 'bin')}")
if sources.native_bins(source) > MAX_COMPARE_BINS:
    st.info(
        f"This histogram has {sources.native_bins(source):,} bins; Compare runs every variant "
        f"and method on at most {MAX_COMPARE_BINS:,} (MAX_COMPARE_BINS, the page's budget), "
        "so it is merged down. calib.compare.compare in Python takes it whole."
    )
st.write(
    "Every KL variant (solid lines) and every calibration method (dotted) on one histogram: "
    "where each clips, what the clip costs, and, below, which choice moves each variant away "
    "from the seed's answer."
)

try:
    comparison = cached_comparison(digest, target_bins, hist)
except ValueError as exc:  # the core names what is wrong; keep the page alive
    error("Cannot compare on this histogram", exc)
    st.stop()
if comparison.dead:
    st.warning(
        "Every count is zero (a dead layer): no clip is defined, and every variant and "
        "method answers amax 0."
    )

spread = comparison.spread()
cols = st.columns(3)
cols[0].metric("Max |x|", fmt(comparison.max_abs), help="Where the data end.")
cols[1].metric(
    "Variants clip at" if len(spread.ran) == 1 else "Variants' clips span", spread.headline(),
    help="The KL variants that ran on this histogram, each at its own levels.",
)  # fmt: skip
if len(spread.ran) > 1:
    ratio = spread.hi / spread.lo if spread.lo > 0 else (math.inf if spread.hi > 0 else math.nan)
    cols[2].metric("Largest / smallest", fmt(ratio, 3, unit="×"))  # all 0: a dead layer
if spread.failed:
    st.warning(
        f"{len(spread.failed)} of {len(spread.failed) + len(spread.ran)} variants cannot run "
        f"on this histogram ({', '.join(spread.failed)}): the table's notes say why."
    )

plot(clips_figure(comparison, log_y=log_y), "compare_clips", source.layer or source.label, "clips")
text = st.column_config.TextColumn
st.dataframe(
    comparison.display_table(),
    key="compare_table",
    hide_index=True,
    column_config={
        "target bins": text(help="The levels each KL sweep merges into; — for a method "
                            "without levels."),
        "amax": text(help="The clip, activation units."),
        "clipped %": text(help="Share of the values beyond amax, in %."),
        "KL (own)": text(
            help="The variant's minimum KL in its own definition (raw counts for the seed, "
            "a normalised histogram for ncnn, normalised P and Q for the others): compare "
            "within a row, not across rows. — for a method without a KL; n/a where no "
            "candidate has a finite one.",
        ),
        "SQNR dB": text(help="Signal to quantization noise of an int8 symmetric quantizer."),
        "note": text(width="large"),
    },
)  # fmt: skip
plot(
    kl_curves_figure(comparison.sweeps),
    "compare_kl_curves",
    source.layer or source.label,
    "kl_curves",
)

st.header("Why do ncnn, MXNet, ONNX Runtime and ModelOpt disagree?")
st.caption(
    "Clips are compared in activation units: the variants count their candidates differently "
    "(kept bins from 0, or bins on each side of the zero bin of a signed histogram mirrored "
    "from |x|), so a candidate number means nothing across layouts."
)
st.write(
    "Each variant differs from the seed in a few choices. Each group of them is measured "
    "both ways: **seed + group** applies only that group to the seed, **variant − group** "
    "takes only that group out of the variant. The share is how much of the gap between "
    "the two clips that move covers; when the two shares disagree, the group interacts with "
    "another. Choices that `calib.Policy` refuses to mix are measured together."
)
# Only the open tab is computed (a variant's attribution is 10 to 18 sweeps, MXNet's and
# ONNX Runtime's with two slow dense ones); each is cached, so switching back is instant.
# it opens on the variant furthest from the seed (ncnn, first, often has nothing to explain)
tabs = st.tabs(
    EXPLAINED, key="compare_why_tab", on_change="rerun",
    default=state.last("compare_why_tab", comparison.widest_gap()),
)  # fmt: skip
for tab, variant in zip(tabs, EXPLAINED, strict=True):
    if not tab.open:
        continue
    with tab:
        st.caption(VARIANT_NOTES[variant])
        with st.spinner(f"Sweeping every choice of {variant}..."):
            attribution = cached_attribution(digest, target_bins, variant, hist)
        st.markdown(attribution.summary())
        if attribution.effects and not comparison.dead:
            st.dataframe(
                attribution.display_table(),
                key=f"compare_why_{variant}",
                hide_index=True,
                column_config={
                    "changes (seed → variant)": st.column_config.TextColumn(width="medium"),
                    "share of gap": st.column_config.TextColumn(
                        help="How much of the gap the group covers applied alone to the seed."
                    ),
                    "share back": st.column_config.TextColumn(
                        help="How much of the gap closes when only this group is taken out "
                        "of the variant."
                    ),
                    "note": st.column_config.TextColumn(
                        width="medium", help="What the group decides, or why a "
                        "measurement is missing."
                    ),
                },
            )  # fmt: skip
            plot(attribution_figure(attribution), f"compare_why_fig_{variant}")
state.write("compare")
