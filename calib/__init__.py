"""calib: KL-divergence (entropy) INT8 calibration, exact and vectorised.

    >>> import numpy as np, calib
    >>> h = calib.Histogram.from_samples(np.random.default_rng(0).standard_normal(10_000))
    >>> s = calib.kl_sweep(h, target_bins=128, variant="seed")
    >>> 0 < s.amax <= float(h.edges[-1])
    True

The numerical modules import numpy and the standard library only; plots live in
``calib.figures`` and the Streamlit app outside the package.
"""

from calib.histogram import DEFAULT_BINS, Histogram, as_histogram
from calib.io import (
    load_convergence,
    load_histogram_file,
    load_histograms,
    load_histograms_meta,
    load_samples_file,
    read_ort_calibration_cache,
    read_ort_calibration_json,
    read_trt_cache,
    read_trt_cache_full,
    save_histograms,
    write_ort_calibration_cache,
    write_ort_calibration_json,
    write_trt_cache,
)
from calib.methods import (
    METHODS,
    Calibration,
    ClipMetrics,
    amax_max,
    amax_mse,
    amax_percentile,
    calibrate,
    clip_metrics,
    clip_mse_curve,
)
from calib.policies import DEFAULT_TARGET_BINS, VARIANT_NOTES, VARIANTS, Policy
from calib.spec import Spec
from calib.sweep import PQ, SweepResult, kl_sweep

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_TARGET_BINS",
    "METHODS",
    "PQ",
    "VARIANTS",
    "VARIANT_NOTES",
    "Calibration",
    "ClipMetrics",
    "Histogram",
    "Policy",
    "Spec",
    "SweepResult",
    "amax_max",
    "amax_mse",
    "amax_percentile",
    "as_histogram",
    "calibrate",
    "clip_metrics",
    "clip_mse_curve",
    "kl_sweep",
    "load_convergence",
    "load_histogram_file",
    "load_histograms",
    "load_histograms_meta",
    "load_samples_file",
    "read_ort_calibration_cache",
    "read_ort_calibration_json",
    "read_trt_cache",
    "read_trt_cache_full",
    "save_histograms",
    "write_ort_calibration_cache",
    "write_ort_calibration_json",
    "write_trt_cache",
]
