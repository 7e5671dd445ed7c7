"""Explore: where a KL (entropy) calibrator clips one activation histogram, and why.

Run with ``streamlit run app.py``. Until uploads land, the page sweeps a demo histogram
built in code: a ReLU output (half exact zeros, half a half-normal) with a few outliers.
The helpers above ``main`` hold the logic and are importable without Streamlit running.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import streamlit as st

from calib.figures import histogram_figure, kl_curve_figure, pq_figure
from calib.histogram import DEFAULT_BINS, Histogram
from calib.policies import DEFAULT_TARGET_BINS, VARIANT_NOTES, VARIANTS
from calib.sweep import SweepResult, kl_sweep

DEMO_SEED = 0
DEMO_SAMPLES = 200_000
DEMO_OUTLIERS = 20
HIST_BIN_CHOICES = (512, 1024, 2048, 4096, 8192)
TARGET_BINS_MIN, TARGET_BINS_MAX = 8, 1024
VARIANT_NAMES = tuple(VARIANTS)


# --------------------------------------------------------------------------------------
# logic (no widgets)
# --------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False)
def demo_samples(seed: int = DEMO_SEED) -> np.ndarray:
    """ReLU(N(0, 1)) samples plus a few large outliers: a zero spike and a long tail."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal(DEMO_SAMPLES), 0.0)
    outliers = rng.uniform(6.0, 12.0, DEMO_OUTLIERS)
    return np.concatenate([x, outliers])


def demo_histogram(hist_bins: int = DEFAULT_BINS) -> Histogram:
    """The demo samples as a histogram of |x| with ``hist_bins`` bins."""
    return Histogram.from_samples(demo_samples(), bins=hist_bins)


@st.cache_data(show_spinner=False, max_entries=64)
def demo_sweep(variant: str, target_bins: int, hist_bins: int) -> SweepResult:
    """The sweep of the demo histogram; ValueError (from the core) on a bad combination."""
    return kl_sweep(demo_histogram(hist_bins), target_bins=target_bins, variant=variant)


@dataclasses.dataclass(frozen=True)
class Summary:
    """The numbers the page reports for one sweep."""

    best: int
    amax: float
    max_abs: float
    ratio: float
    min_kl: float
    dead: bool


def summarize(hist: Histogram, result: SweepResult) -> Summary:
    max_abs = hist.max_abs
    ratio = result.amax / max_abs if max_abs > 0 else math.nan
    return Summary(result.best, result.amax, max_abs, ratio, result.min_kl, result.dead)


def fmt(value: float, digits: int = 4) -> str:
    """A number for a metric: 4 significant digits, "undefined" for inf or NaN."""
    return f"{value:.{digits}g}" if math.isfinite(value) else "undefined"


def bins_help(variant: str) -> str:
    if VARIANTS[variant].candidates == "half_window":
        return "Bins kept on each side of the zero bin (this variant's own loop counter)."
    return "Bins kept from zero (this variant's own loop counter)."


# --------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------
def _reset_target_bins() -> None:
    """A new variant starts from its own default number of levels."""
    st.session_state["target_bins"] = DEFAULT_TARGET_BINS[st.session_state["variant"]]


def sidebar() -> tuple[str, int, int, bool]:
    with st.sidebar:
        st.header("Settings")
        variant = st.selectbox(
            "Variant", VARIANT_NAMES, key="variant", on_change=_reset_target_bins,
            help="Which implementation's choices the sweep follows.",
        )  # fmt: skip
        st.caption(VARIANT_NOTES[variant])
        # Set through session state (not value=) because a variant change resets it.
        st.session_state.setdefault("target_bins", DEFAULT_TARGET_BINS[variant])
        target_bins = st.slider(
            "Target bins (quantized levels)",
            min_value=TARGET_BINS_MIN,
            max_value=TARGET_BINS_MAX,
            key="target_bins",
            help="128 for INT8 in most tools, 255 in MXNet.",
        )
        hist_bins = st.select_slider(
            "Histogram bins",
            options=HIST_BIN_CHOICES,
            value=DEFAULT_BINS,
            key="hist_bins",
            help="How finely the demo samples are histogrammed before the sweep.",
        )
        # On by default: a ReLU layer's zero spike dwarfs the rest on a linear axis.
        log_y = st.checkbox("Log count axis", value=True, key="log_y")
    return variant, int(target_bins), int(hist_bins), log_y


def metrics(s: Summary, variant: str) -> None:
    cols = st.columns(5)
    cols[0].metric("Threshold (bins)", f"{s.best}", help=bins_help(variant))
    cols[1].metric("Threshold", fmt(s.amax), help="The clip amax, in activation units.")
    cols[2].metric("Max |x|", fmt(s.max_abs), help="Where the data end.")
    cols[3].metric("Threshold / max", fmt(s.ratio, 3))
    cols[4].metric("KL at minimum", fmt(s.min_kl), help="KL(P‖Q) of the chosen candidate.")


def main() -> None:
    st.set_page_config(page_title="calib: KL calibration", layout="wide")
    st.title("KL calibration explorer")
    st.write(
        "Where an entropy (KL-divergence) INT8 calibrator clips one activation histogram: "
        "the clip on the histogram, the KL of every candidate threshold, and P against Q "
        "at the chosen one. The data are a demo ReLU layer (200,000 samples, 20 outliers)."
    )
    variant, target_bins, hist_bins, log_y = sidebar()
    try:
        hist = demo_histogram(hist_bins)
        result = demo_sweep(variant, target_bins, hist_bins)
    except ValueError as err:
        st.error(f"Cannot sweep with these settings: {err}")
        st.stop()
    if result.dead:
        st.warning("Every count is zero (a dead layer): there is nothing to clip.")
        st.stop()
    metrics(summarize(hist, result), variant)
    st.plotly_chart(histogram_figure(hist, result, log_y=log_y), key="histogram")
    left, right = st.columns(2)
    left.plotly_chart(kl_curve_figure(result), key="kl_curve")
    right.plotly_chart(pq_figure(result.distributions(), log_y=log_y), key="pq")


if __name__ == "__main__":
    main()
