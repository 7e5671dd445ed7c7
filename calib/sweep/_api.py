"""``kl_sweep``: validate, prepare, pick an engine, choose the minimum."""

from __future__ import annotations

from typing import Any

import numpy as np

from calib import limits
from calib.histogram import Histogram, as_histogram
from calib.policies import Policy, resolve_policy
from calib.sweep._dense import _kl_dense_rows
from calib.sweep._fast import _kl_fast, sweep_cells, uses_dense_engine
from calib.sweep._prepare import _check_target_bins, _prepare, _to_layout, pick_minimum, tie_scale
from calib.sweep._result import SweepResult

_ENGINES = ("auto", "fast", "dense")


# --------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------
def kl_sweep(
    hist: Any,
    target_bins: int | None = None,
    variant: str = "seed",
    *,
    engine: str = "auto",
    **policies: Any,
) -> SweepResult:
    """Sweep every candidate clip of a histogram and pick the one with the smallest KL.

    Parameters
    ----------
    hist : Histogram or array_like
        The histogram; a bare counts array means unit-width bins from 0.
    target_bins : int, optional
        Quantized levels T (128 for the seed, ncnn, ONNX Runtime and ModelOpt;
        255 for MXNet). At least 2 (``TARGET_BINS_MIN``) and less than the number of
        bins.
    variant : str
        One of ``calib.VARIANTS``: "seed", "ncnn", "mxnet", "onnxruntime", "modelopt".
    engine : {"auto", "fast", "dense"}
        "auto" takes the prefix-sum path where the policies allow it. "dense" builds
        P and Q for every candidate; it exists to check the fast path and to teach.
    **policies
        Any field of ``calib.Policy`` overrides the variant's preset, for example
        ``kl_sweep(h, variant="onnxruntime", remainder="last_group")``.

    Returns
    -------
    SweepResult

    Notes
    -----
    A sweep costs ``candidates * target_bins`` cells on the prefix sums (the window's bins,
    summed over candidates, on the dense engine); one past ``calib.limits.MAX_SEARCH_CELLS``
    is refused with what to lower.

    For each candidate, P is the kept bins with the outliers added to the edge bin(s);
    the kept bins (without the outliers) are merged into T levels and expanded back
    to Q; ``KL = sum p log(p / q)`` over ``p > 0``, with the variant's rule where
    ``q == 0``. A variant whose layout is signed (MXNet, ONNX Runtime) mirrors a
    histogram of |x| into a symmetric one; an unsigned variant folds a symmetric
    signed histogram into |x| (``Histogram.mirror`` / ``Histogram.fold``).

    Examples
    --------
    The seed's own example: a ramp of 2048 bins, 128 levels, answer 2047.

    >>> import numpy as np, calib
    >>> ramp = np.arange(2048.0)
    >>> calib.kl_sweep(ramp / ramp.sum()).best
    2047
    """
    policy = resolve_policy(variant, policies)
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {_ENGINES}, got {engine!r}")
    h = as_histogram(hist)
    h = _to_layout(h, policy)
    T = _check_target_bins(target_bins, variant, h.n_bins)
    if h.is_dead:
        return _dead_result(variant, policy, T, h)
    prep = _prepare(h, T, policy)
    dense = uses_dense_engine(policy)
    if engine == "fast" and dense:
        raise ValueError(
            "engine='fast' cannot take precision='float32', smoothing='mxnet' with a "
            "fractional merge or a uniform expansion, nor truncation or orphaned remainder "
            "bins without smoothing='mxnet' (uses_dense_engine); use engine='auto' or 'dense'"
        )
    dense = engine == "dense" or (engine == "auto" and dense)
    cells = sweep_cells(prep, policy, dense)
    if cells > limits.MAX_SEARCH_CELLS:
        what = (
            f"the bin-by-bin sweep of {prep.cand.size:,} candidates over {h.n_bins:,} bins "
            "(their windows' bins, summed) needs"
            if dense
            else f"the sweep of {prep.cand.size:,} candidates at {T} target bins over "
            f"{h.n_bins:,} bins needs"
        )
        raise ValueError(
            limits.exceeds(what, cells, "MAX_SEARCH_CELLS", " cells")
            + "; lower target_bins or rebin the histogram to fewer bins (Histogram.rebin)"
        )
    if dense:
        kl = _kl_dense_rows(prep, policy, np.arange(prep.cand.size))
    else:
        kl = _kl_fast(prep, policy)
    return _finish(variant, policy, T, h, prep, kl)


def _dead_result(variant: str, policy: Policy, T: int, h: Histogram) -> SweepResult:
    prep = _prepare(h, T, policy)
    return SweepResult(
        variant=variant, policy=policy, target_bins=T, histogram=h, candidates=prep.cand,
        kl=np.full(prep.cand.size, np.inf), thresholds=prep.thresholds,
        best=int(prep.cand[0]), best_index=0, amax=0.0, dead=True,
    )  # fmt: skip


START_KL = {"inf": np.inf, "1e13": 1e13}
"""``Policy.start_kl``: the KL a search starts below (the seed's ``min_kl_divergence``)."""


def _finish(variant, policy, T, h, prep, kl) -> SweepResult:
    kl = np.where(np.isnan(kl), np.inf, kl)
    if not np.isfinite(kl).any() and policy.truncate != "none":
        _refuse_truncated_fractions(policy, h)
    eps = policy.eps if policy.smoothing != "none" else 0.0
    i = pick_minimum(kl, policy.ties, tie_scale(prep.h, policy.normalize == "pq", eps))
    notes = []
    start = START_KL[policy.start_kl]
    if np.isfinite(kl[i]) and kl[i] >= start:
        # the seed keeps its first candidate unless some KL is below where it started
        notes.append(
            f"every candidate's KL is at least {policy.start_kl}, where the seed's search "
            f"starts (min_kl_divergence = 10000000000000; these raw counts total "
            f"{h.total:.3g}), so it answers its first candidate, {int(prep.cand[0])}; the "
            f"smallest KL is at {int(prep.cand[i])}. Normalise the counts (divide by their "
            "total) or set start_kl='inf' for the minimum"
        )
        i = 0
    if policy.truncate == "mass" and not prep.whole_counts:
        notes.append(
            "these counts are not whole numbers: MXNet's Python truncates each level's sum "
            "(followed here, levels summed left to right), while its C++ op "
            "calibrate_entropy (which TVM follows) truncates every bin before summing, and "
            "may answer otherwise on fractions. Give raw sample counts to agree with both"
        )
    if variant == "modelopt":
        total = float(prep.h.sum())
        if round(total) != total:
            notes.append(
                f"ModelOpt's own _compute_amax_entropy stops with 'Count mismatch' on these "
                f"counts: it checks that they total a whole number (they total {total:.6g}), "
                "as sample counts do; this is what its arithmetic (scipy's entropy) gives"
            )
    return SweepResult(
        variant=variant, policy=policy, target_bins=T, histogram=h, candidates=prep.cand,
        kl=kl, thresholds=prep.thresholds,
        best=int(prep.cand[i]), best_index=i, amax=float(prep.thresholds[i]), dead=False,
        notes=tuple(notes),
    )  # fmt: skip


def _refuse_truncated_fractions(policy: Policy, h: Histogram) -> None:
    """Refuse a sweep whose integer truncation left no candidate a finite KL because the
    counts are fractions: a normalised histogram (counts that sum to 1) under MXNet's or
    ONNX Runtime's truncation, which cuts every level's mass to 0.

    Both tools would answer their first candidate (``argmin`` of all-inf), the search's
    floor rather than a minimum (69% of the mass clipped on a normal layer), and say
    nothing. They never see such counts (they count samples themselves), so no answer of
    theirs exists to reproduce; a warning would still hand a number to a calibration cache;
    scaling the counts would invent a sample count, on which truncation and the smoothing's
    absolute eps both depend. So the sweep refuses and says what to do. (Other sweeps with
    no finite KL, such as ModelOpt's on a histogram its ``bins[0] = bins[1]`` empties, keep
    the variant's own answer: that is what the tool does on its own counts.)
    """
    if np.array_equal(h.counts, np.floor(h.counts)):
        return
    raise ValueError(
        f"no candidate has a finite KL, so no clip can be chosen: truncate={policy.truncate!r} "
        f"cuts each level's mass to a whole number, and these counts are fractions (they "
        f"total {h.total:.6g}: a normalised histogram?), so every level is cut to 0. Give "
        "raw counts, or set truncate='none'"
    )
