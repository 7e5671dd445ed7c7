"""What the Explore page shows, computed without Streamlit: one histogram's sweep, its
metrics and the other calibrators' clips (:class:`View`), the downloads, and the view's
state as a query string (so a link reproduces it).

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
from calib.demos import DEMOS
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
    POLICY_CHOICES,
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
    "EXPLORE_QUERY_KEYS",
    "LAYER_KEYS",
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
    "explore_query",
    "kl_curve_csv",
    "max_target_bins",
    "parse_explore_query",
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
# the session key of each kind's layer picker (its query parameter is ``layer``)
LAYER_KEYS = {"model": "model_layer", "histogram": "upload_layer", "layers": "layers_layer"}
POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(Policy))
EXPLORE_QUERY_KEYS = (
    "src", "layer", "demo", "variant", "target_bins", "hist_bins", "num_bits", "log_y",
    "show_variants", "candidate", "model", "method",
)  # fmt: skip


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
    return tuple(_other(h, m, Spec(m, num_bits=num_bits)) for m in ("max", "percentile", "mse"))


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
    if "method" in params:  # "" clears it: the view is the entropy sweep's own
        if params["method"] in (*(m for m in METHODS if m != "entropy"), ""):
            out[f"{key}_method"] = params["method"]
        else:
            ignore("method", "max, percentile or mse")
    elif "layer" in params and current.get(f"{key}_method"):  # a link not ranked under one
        out[f"{key}_method"] = ""
    if "candidate" in params:
        v = _as_int(params["candidate"])
        if v is not None and v >= 0:
            out[f"{key}_candidate"] = v  # one of the sweep's, or the widest is shown
        else:
            ignore("candidate", "a candidate of the sweep (a non-negative integer)")
    if "method" in params:  # the method a row was ranked under: its clip is shown first
        if params["method"] in METHODS:
            out[f"{key}_method"] = params["method"]
        else:
            ignore("method", f"one of {', '.join(METHODS)}")
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
