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
    DEFAULT_PERCENTILE,
    ClipMetrics,
    amax_max,
    amax_mse,
    amax_percentile,
    clip_metrics,
)
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
from calib.sweep import SweepResult, kl_sweep

__all__ = [
    "DEFAULT_LAYER",
    "EXPLORE_QUERY_KEYS",
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
    "build_view",
    "candidate_from_selection",
    "default_target_bins",
    "every_method",
    "every_variant",
    "explore_query",
    "kl_curve_csv",
    "parse_explore_query",
    "policy_error",
    "threshold_json",
]

MODEL_NAME = "all-MiniLM-L6-v2"
# The FFN output of the first block: one [CLS] value near 196 against a bulk below 10.
DEFAULT_LAYER = "encoder.layer.0.output.dense:output"
SOURCE_KINDS = {
    "model": f"Real model ({MODEL_NAME})",
    "demo": "Built-in demo",
    "histogram": "Upload a histogram",
    "samples": "Upload raw samples",
}
POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(Policy))
EXPLORE_QUERY_KEYS = (
    "src", "layer", "demo", "variant", "target_bins", "hist_bins", "num_bits", "log_y",
)  # fmt: skip


def default_target_bins(variant: str, num_bits: int = DEFAULT_NUM_BITS) -> int:
    """The variant's levels for a ``num_bits`` quantizer (:func:`calib.policies.levels_for`),
    clamped to the target-bins slider's range."""
    return int(min(max(levels_for(variant, num_bits), TARGET_BINS_MIN), TARGET_BINS_MAX))


POLICY_INTS = ("start_bin", "stride")


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

    ``target_bins`` defaults to the variant's levels for ``num_bits``. ``methods`` (max,
    percentile, mse) are computed unless given (a page caches them apart: they do not
    depend on the variant); ``variants`` are the other variants' clips to draw, if any.
    ValueError (from the core) names an impossible policy combination or a target_bins the
    histogram cannot take.
    """
    pairs = tuple(dict(overrides).items())
    T = default_target_bins(variant, num_bits) if target_bins is None else int(target_bins)
    result = kl_sweep(hist, target_bins=T, variant=variant, **dict(pairs))
    metrics = None if result.dead else clip_metrics(hist, result.amax, num_bits)
    if methods is None:
        methods = every_method(hist, num_bits)
    return View(
        source_key=source_key, label=label, layer=layer, variant=variant, overrides=pairs,
        target_bins=T, hist_bins=hist.n_bins, num_bits=int(num_bits), hist=hist,
        result=result, metrics=metrics, methods=tuple(methods), variants=tuple(variants),
    )  # fmt: skip


def every_method(h: Histogram, num_bits: int) -> tuple[OtherClip, ...]:
    """The max, percentile and MSE thresholds of ``h``. The MSE search is left out where the
    core refuses it (past ``calib.limits.MAX_SEARCH_CELLS``: 16 bits over tens of thousands
    of bins), as :func:`every_variant` leaves out a variant that cannot take the histogram."""
    out = [
        _other(h, "max", amax_max(h), num_bits),
        _other(h, "percentile", amax_percentile(h, DEFAULT_PERCENTILE), num_bits),
    ]
    try:
        out.append(_other(h, "mse", amax_mse(h, num_bits), num_bits))
    except ValueError:
        pass
    return tuple(out)


def every_variant(h: Histogram, num_bits: int) -> tuple[OtherClip, ...]:
    """Every variant's threshold at its own levels for ``num_bits``."""
    out = []
    for v in VARIANTS:
        try:
            r = kl_sweep(h, target_bins=default_target_bins(v, num_bits), variant=v)
        except ValueError:
            continue  # too few bins for that variant's levels: leave its line out
        out.append(_other(h, v, r.amax, num_bits))
    return tuple(out)


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
