"""What the Explore page shows, computed without Streamlit: one histogram's sweep, its
metrics and the other calibrators' clips (:class:`View`), the downloads, and the view's
numbers behind a link (the link's format is ``calib.app.links``).

The page (``pages/0_Explore.py`` over ``calib.app.explore``) sizes the histogram, caches,
and draws; everything it decides about numbers lives here, where a test can call it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from calib import policies
from calib.histogram import Histogram
from calib.methods import (
    DEFAULT_NUM_BITS,
    METHODS,
    Calibration,
    ClipMetrics,
    clip_metrics,
    max_code,
    try_calibrate,
)
from calib.models import DEFAULT_MODEL, MODELS
from calib.numbers import fmt, fmt_count, fmt_db, fmt_kl, fmt_pct
from calib.policies import (
    NUM_BITS_CHOICES,
    TARGET_BINS_MAX,
    TARGET_BINS_MIN,
    VARIANTS,
    Policy,
    levels_for,
    resolve_policy,
)
from calib.spec import Spec
from calib.sweep import PQ, SweepResult, kl_sweep

__all__ = [
    "DEFAULT_LAYER",
    "MODEL_NAME",
    "NUM_BITS_CHOICES",
    "POLICY_FIELDS",
    "POLICY_HELP",
    "POLICY_INTS",
    "SOURCE_KINDS",
    "TARGET_BINS_MAX",
    "TARGET_BINS_MIN",
    "OtherClip",
    "View",
    "Why",
    "build_view",
    "default_target_bins",
    "every_method",
    "every_variant",
    "explain",
    "kl_curve_csv",
    "max_target_bins",
    "policy_error",
    "selection_points",
    "threshold_json",
]

MODEL_NAME = MODELS[DEFAULT_MODEL].label  # the default shipped model (calib.models)
DEFAULT_LAYER = MODELS[DEFAULT_MODEL].default_layer
SOURCE_KINDS = {
    "model": "Real model",  # which one: ``model`` (a key of calib.models.MODELS)
    "demo": "Built-in demo",
    "histogram": "Upload a histogram",
    "samples": "Upload raw samples",
    "layers": "From the Layers page",  # what Layers handed over in this session
}
POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(Policy))
CLIP_METHODS = tuple(m for m in METHODS if m != "entropy")
"""The methods whose clips Explore draws beside its sweep's (and shows first for a link's
``method=``: a row ranked under one); entropy's is the sweep's own."""


def default_target_bins(variant: str, num_bits: int = DEFAULT_NUM_BITS) -> int:
    """The variant's levels for a ``num_bits`` quantizer: :func:`calib.policies.levels_for`,
    whatever a slider can show (13 bits: the seed's 4096). A page that cannot show the
    value says so; it never computes with another."""
    return levels_for(variant, num_bits)


POLICY_INTS = ("start_bin", "stride")


def max_target_bins(n_bins: int, signed: bool, layout: str) -> int:
    """The most levels a histogram of ``n_bins`` takes in a variant's ``layout``: the sweep
    needs ``target_bins`` below the bins it sweeps, and a histogram of |x| swept signed is
    mirrored to ``2 * n_bins`` bins, a signed one swept as |x| folded to ``n_bins // 2``.

    >>> max_target_bins(64, False, "unsigned"), max_target_bins(64, False, "signed")
    (63, 127)
    """
    n = int(n_bins)
    if layout == "signed" and not signed:
        n *= 2
    elif layout == "unsigned" and signed:
        n //= 2
    return max(n - 1, 1)


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


def policy_error(variant: str, overrides: Mapping[str, Any]) -> str | None:
    """Why the variant's preset with these overrides is impossible, or None."""
    try:
        resolve_policy(variant, dict(overrides))
    except ValueError as exc:
        return str(exc)
    return None


@dataclasses.dataclass(frozen=True)
class OtherClip:
    """Another calibrator's threshold on the same histogram: a label and its
    :class:`calib.Calibration` (the one record of a clip and its metrics).

    A calibrator that cannot run on this histogram (MSE's first candidate, bin 128, on a
    64-bin histogram; a variant whose levels the histogram cannot hold) has ``amax`` nan
    and says why in ``note``: its line is left out, not the whole view.
    """

    name: str  # "max", "percentile", "mse", or a variant's name
    calibration: Calibration

    @property
    def amax(self) -> float:
        return self.calibration.amax

    @property
    def metrics(self) -> ClipMetrics | None:
        """The clip's metrics; None where amax is 0 (a dead histogram) or nan."""
        return self.calibration.metrics if self.amax > 0 else None

    @property
    def note(self) -> str:
        """Why it is left out ("" when it is not)."""
        return self.calibration.error


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
    chosen: PQ | None = None  # P and Q at the chosen candidate (None when dead)
    why: Why = dataclasses.field(default_factory=lambda: Why())

    @property
    def spec(self) -> Spec:
        """The view's calibration as a :class:`calib.Spec` (``entropy:<variant>@<bits>``,
        its levels and overrides): what ``calib.calibrate`` takes to give the same clip."""
        return Spec("entropy", self.variant, self.num_bits, levels=self.target_bins,
                    overrides=self.overrides)  # fmt: skip

    @property
    def max_abs(self) -> float:
        return self.hist.max_abs

    @property
    def ratio(self) -> float:
        """amax / max|x|; nan for a dead histogram."""
        m = self.max_abs
        return self.result.amax / m if m > 0 else math.nan

    def others(self) -> dict[str, float]:
        """Label -> amax of the other methods and variants, for the histogram's lines
        (those left out are not in it)."""
        return {c.name: c.amax for c in (*self.methods, *self.variants) if not c.note}

    def left_out(self) -> list[str]:
        """One line per calibrator that could not run here: "mse: <why>"."""
        return [f"{c.name}: {c.note}" for c in (*self.methods, *self.variants) if c.note]


def _other(h: Histogram, name: str, spec: Spec) -> OtherClip:
    """``spec``'s clip and its metrics; a ValueError leaves it out with the reason."""
    return OtherClip(name, try_calibrate(h, spec))


def build_view(
    hist: Histogram,
    variant: str,
    overrides: Mapping[str, Any] | tuple[tuple[str, Any], ...] = (),
    target_bins: int | None = None,
    num_bits: int = DEFAULT_NUM_BITS,
    *,
    source_key: str = "",
    label: str = "",
    layer: str | None = None,
    methods: tuple[OtherClip, ...] | None = None,
    variants: tuple[OtherClip, ...] = (),
) -> View:
    """The sweep of ``hist``, its metrics and the other methods' thresholds.

    ``target_bins`` defaults to the variant's levels for ``num_bits`` (``levels_for``,
    never clamped to a slider's range). ``methods`` (max,
    percentile, mse) are computed unless given (a page caches them apart: they do not
    depend on the variant); ``variants`` are the other variants' clips to draw, if any.
    ValueError (from the core) names an impossible policy combination or a target_bins the
    histogram cannot take.
    """
    pairs = tuple(dict(overrides).items())
    T = levels_for(variant, num_bits) if target_bins is None else int(target_bins)
    result = kl_sweep(hist, target_bins=T, variant=variant, **dict(pairs))
    metrics = None if result.dead else clip_metrics(hist, result.amax, num_bits)
    chosen = None if result.dead else result.distributions()
    if methods is None:
        methods = every_method(hist, num_bits)
    return View(
        source_key=source_key, label=label, layer=layer, variant=variant, overrides=pairs,
        target_bins=T, hist_bins=hist.n_bins, num_bits=int(num_bits), hist=hist,
        result=result, metrics=metrics, methods=tuple(methods), variants=tuple(variants),
        chosen=chosen, why=explain(hist, result, chosen, metrics, num_bits),
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Why:
    """Sentences that explain a view's numbers to someone meeting them for the first time
    (each "" where there is nothing to say).

    ``floor``: the sweep chose its first candidate, and why that one. ``penalty``: how much
    of the KL at the minimum is the seed's "+1 where Q = 0 < P". ``error``: where the
    SQNR's error comes from (clipping or rounding). ``undefined``: how many candidates
    have an infinite KL, and why. ``coincide``: P and Q at the chosen candidate are equal
    but in a few bins, so the chart draws one over the other.
    """

    floor: str = ""
    penalty: str = ""
    error: str = ""
    undefined: str = ""
    coincide: str = ""


def _count(total: float) -> str:
    """A total count as people write it: 5,757,312 (or 4 digits when not whole)."""
    return fmt_count(total)


CLIP_ONLY_BITS = 16
"""A quantizer this fine rounds so little that its error is the clipping error alone."""


def explain(
    hist: Histogram,
    result: SweepResult,
    chosen: PQ | None,
    metrics: ClipMetrics | None,
    num_bits: int = DEFAULT_NUM_BITS,
) -> Why:
    """The sentences of :class:`Why` for one sweep of ``hist`` (``chosen`` is its P and Q
    at the chosen candidate, ``metrics`` its clip's metrics)."""
    if result.dead or chosen is None:
        return Why()
    r, policy, T = result, result.policy, result.target_bins
    p_has, q_zero = chosen.p > 0, chosen.q == 0
    n_plus = int((p_has & q_zero).sum()) if policy.zero_q == "one" else 0
    floor = penalty = error = undefined = coincide = ""
    if r.best_index == 0 and r.candidates.size > 1:
        floor = (
            f"The sweep chose its first candidate (bin {r.best}, clip {fmt(r.amax)}): the "
            "floor of its search, not a minimum of the curve; no smaller clip is tried."
        )
        if policy.candidates == "kept_bins" and r.best == T and policy.merge == "fractional":
            raw = policy.normalize == "none"
            floor += (
                f" There {T} kept bins make {T} levels, one bin each, so Q copies P wherever "
                "the histogram has counts and the KL is the last bin's term alone, where the "
                "clipped tail is folded in. Every wider candidate merges bins into levels, and "
                + (
                    f"its shape error, counted in raw counts ({_count(hist.total)} values), "
                    if raw
                    else "its shape error "
                )
                + f"costs more: the next candidate's KL is {fmt_kl(r.kl[1], r.kl_scale)}."
            )
    if r.notes:  # the answer is not simply the curve's minimum, or the tool would refuse
        floor = " ".join(n[0].upper() + n[1:] + "." for n in r.notes)
    if n_plus:
        shape = r.min_kl - n_plus
        shape_text = "about 0" if abs(shape) < 1e-6 * max(1.0, r.min_kl) else fmt(shape)
        bins = f"{n_plus} bin of P holds" if n_plus == 1 else f"{n_plus} bins of P hold"
        penalty = (
            f"Of the KL at the minimum ({fmt_kl(r.min_kl, r.kl_scale)}), {n_plus} is the "
            f'seed\'s "+1 where Q = 0" rule: {bins} the folded tail where the histogram '
            "is empty, and Q, "
            "spread over the histogram's non-zero bins only, is 0 there. The shape mismatch "
            f"itself is {shape_text}."
        )
    if metrics is not None and metrics.mse > 0:
        clip_only = clip_metrics(hist, r.amax, CLIP_ONLY_BITS).mse
        share = min(max(clip_only / metrics.mse, 0.0), 1.0)
        sqnr = fmt_db(metrics.sqnr_db)
        if share >= 0.5:
            error = (
                f"SQNR {sqnr}: clipping causes {share:.0%} of the error. The "
                f"{fmt_pct(metrics.clipped_fraction)} of the values beyond the "
                f"clip reach {fmt(hist.max_abs)} ({fmt(hist.max_abs / r.amax, 2)}x the clip), "
                "and each is stored as the clip."
            )
        else:
            step = f"in steps of amax / {max_code(num_bits)} = {fmt(metrics.scale)}"
            error = (
                f"SQNR {sqnr}: nothing is clipped, so all of the error is rounding, {step}."
                if metrics.clipped_fraction == 0
                else f"SQNR {sqnr}: rounding causes {1 - share:.0%} of the error, {step}; "
                f"clipping the rest ({fmt_pct(metrics.clipped_fraction)} of "
                "the values lie beyond the clip)."
            )
    n_inf = int((~np.isfinite(r.kl)).sum())
    if n_inf:
        undefined = (
            f"{n_inf:,} of {r.kl.size:,} candidates have an infinite KL (gaps in the curve): "
            f"Q is 0 in a bin where P is not, which {r.variant} scores as infinite. Most often "
            "it is the last kept bin, where the tail is folded into a bin the histogram "
            "leaves empty."
        )
    p_norm = chosen.p / max(chosen.p.sum(), 1e-300)
    q_norm = chosen.q / max(chosen.q.sum(), 1e-300)
    # a thousandth is below what the chart can show
    differ = int((~np.isclose(p_norm, q_norm, rtol=1e-3, atol=1e-12)).sum())
    if differ <= 2:
        coincide = (
            "P and Q are equal here "
            + (f"but in {differ} bin{'s' if differ > 1 else ''}" if differ else "in every bin")
            + ": Q (orange, dashed) is drawn over P (blue, filled)."
        )
    return Why(floor=floor, penalty=penalty, error=error, undefined=undefined, coincide=coincide)


def every_method(h: Histogram, num_bits: int) -> tuple[OtherClip, ...]:
    """The max, percentile and MSE thresholds of ``h`` (one the core refuses, such as an
    MSE search past ``calib.limits.MAX_SEARCH_CELLS``, keeps its reason as a note)."""
    return tuple(_other(h, m, Spec(m, num_bits=num_bits)) for m in CLIP_METHODS)


def every_variant(h: Histogram, num_bits: int) -> tuple[OtherClip, ...]:
    """Every variant's threshold at its own levels for ``num_bits`` (``levels_for``; a
    variant whose levels this histogram cannot hold is left out, with the reason)."""
    return tuple(_other(h, v, Spec("entropy", v, num_bits)) for v in VARIANTS)


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


def selection_points(selection: Any) -> list:
    """The clicked points of a chart: ``selection`` is what
    ``st.plotly_chart(on_select="rerun")`` returns, or its ``["selection"]`` part, or the
    ``points`` list itself; anything else has none."""
    points = selection
    if isinstance(points, Mapping):
        points = points.get("selection", points)
    if isinstance(points, Mapping):
        points = points.get("points", [])
    return list(points) if isinstance(points, (list, tuple)) else []
