"""The choices that make one KL calibrator differ from another, as named policies.

Every implementation follows Migacz's skeleton (GTC 2017): for each candidate clip,
fold the outliers into the edge bin(s) to get P, merge the kept bins into
``target_bins`` levels, expand them back to Q over P's support, keep the candidate
with the smallest KL(P || Q). They differ in the independent choices below; a
variant is a preset of them (``VARIANTS``), and any one can be overridden.

=================  =====================================================================
policy             values
=================  =====================================================================
layout             "unsigned": |x| on [0, max]; "signed": x on [-m, m] (window around 0)
candidates         "kept_bins": i = T .. N-1 kept bins (seed, ncnn);
                   "modelopt": i = start_bin .. N inclusive, every ``stride``-th;
                   "half_window": i = T//2 .. N//2 bins each side of the zero bin
start_bin, stride  for "modelopt" candidates (defaults 128 and 1)
zero_spike         "keep"; "copy_next": ``bins[0] = bins[1]`` before searching (ModelOpt)
merge              "fractional": group k is [k i/T, (k+1) i/T), bins cut by a boundary
                   split by overlap (seed, ncnn); "whole": L//T whole bins a group, the
                   remainder to the last group (MXNet, ONNX Runtime); "linspace": bin j in
                   group ``digitize(j, linspace(0, i, T+1)) - 1`` (ModelOpt)
remainder          "whole" merge only. "last_group": remainder bins belong to the last
                   group (MXNet); "orphan": their mass goes to the last group but their
                   Q stays 0 (ONNX Runtime as shipped); needs normalize "pq"
expand             "nonzero": a group's mass spread over its non-zero P bins;
                   "uniform": the group mean over all its bins (ncnn 2021+);
                   "fill_all": divided by the non-zero count but written to every bin
                   of the group, zero or not (ONNX Runtime as shipped); needs normalize
                   "pq" (Q would outweigh P and an unnormalised KL go negative)
nonzero_from       "p": non-zero judged on P (outliers folded in); "hist": on the
                   histogram before folding (ModelOpt)
truncate           "none"; "mass": group mass cast to an integer (MXNet's int32);
                   "mass_and_q": group mass and Q both cast to integers (ONNX Runtime)
smoothing          "none"; "add_eps": eps added to every bin of P and Q (ncnn 2021+);
                   "mxnet": zeros get eps, non-zeros give up eps * zeros / non-zeros
eps                the smoothing epsilon (1e-4 everywhere)
zero_q             where P > 0 and Q == 0: "one" adds 1 (seed); "inf"
normalize          "none"; "histogram": the histogram scaled to sum 1 once (ncnn 2021+);
                   "pq": P and Q each scaled to sum 1 for every candidate (scipy)
ties               "first" or "last" minimum (ModelOpt takes the last)
start_kl           the KL the search starts below: "inf" (the smallest KL wins); "1e13":
                   the seed's ``min_kl_divergence = 10000000000000``, so where every KL is
                   at least 1e13 (raw counts totalling ~1e15) its first candidate is chosen
threshold          "edge_plus_half": (i + 0.5) bin widths (ncnn); "edge": the upper
                   edge of the kept bins or window (MXNet, ONNX Runtime, ModelOpt)
precision          "float64"; "float32": ONNX Runtime's own smoothing and entropy, op for
                   op in float32, one candidate at a time (its answer to the bit; slower)
=================  =====================================================================
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from calib import limits

__all__ = [
    "DEFAULT_TARGET_BINS",
    "MODELOPT_START_BIN",
    "NUM_BITS_CHOICES",
    "POLICY_CHOICES",
    "TARGET_BINS_MAX",
    "TARGET_BINS_MIN",
    "TYPED_TARGET_BINS_MAX",
    "VARIANTS",
    "VARIANT_NOTES",
    "Policy",
    "check_num_bits",
    "check_variant",
    "levels_for",
    "resolve_policy",
]

MODELOPT_START_BIN = 128
"""ModelOpt's first candidate, bin 128 (``start_bin`` of its entropy and MSE calibrators):
``Policy.start_bin``, ``calib.amax_mse`` and the reference loop all start there."""

POLICY_CHOICES: dict[str, tuple[str, ...]] = {
    "layout": ("unsigned", "signed"),
    "candidates": ("kept_bins", "modelopt", "half_window"),
    "zero_spike": ("keep", "copy_next"),
    "merge": ("fractional", "whole", "linspace"),
    "remainder": ("last_group", "orphan"),
    "expand": ("nonzero", "uniform", "fill_all"),
    "nonzero_from": ("p", "hist"),
    "truncate": ("none", "mass", "mass_and_q"),
    "smoothing": ("none", "add_eps", "mxnet"),
    "zero_q": ("one", "inf"),
    "normalize": ("none", "histogram", "pq"),
    "ties": ("first", "last"),
    "start_kl": ("inf", "1e13"),
    "threshold": ("edge_plus_half", "edge"),
    "precision": ("float64", "float32"),
}


@dataclasses.dataclass(frozen=True)
class Policy:
    """One complete set of choices; see the module docstring for each field.

    Examples
    --------
    >>> import calib
    >>> seed = calib.VARIANTS["seed"]
    >>> seed.changes_from(calib.Policy())
    {'start_kl': ('inf', '1e13')}
    >>> calib.VARIANTS["ncnn"].changes_from(seed)["smoothing"]
    ('none', 'add_eps')
    >>> calib.Policy(layout="signed")
    Traceback (most recent call last):
        ...
    ValueError: candidates='kept_bins' does not fit layout='signed': half_window goes with ...
    """

    layout: str = "unsigned"
    candidates: str = "kept_bins"
    start_bin: int = MODELOPT_START_BIN
    stride: int = 1
    zero_spike: str = "keep"
    merge: str = "fractional"
    remainder: str = "last_group"
    expand: str = "nonzero"
    nonzero_from: str = "p"
    truncate: str = "none"
    smoothing: str = "none"
    eps: float = 1e-4
    zero_q: str = "one"
    normalize: str = "none"
    ties: str = "first"
    start_kl: str = "inf"
    threshold: str = "edge_plus_half"
    precision: str = "float64"

    def __post_init__(self) -> None:
        for name, choices in POLICY_CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        for name in ("start_bin", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            if value > limits.MAX_BINS:  # more than any histogram's bins: no candidate
                raise ValueError(limits.exceeds(f"{name} is", value, "MAX_BINS"))
        if not (isinstance(self.eps, (int, float)) and 0 < self.eps < 1):
            raise ValueError(f"eps must be a number in (0, 1), got {self.eps!r}")
        signed = self.layout == "signed"
        if signed != (self.candidates == "half_window"):
            raise ValueError(
                f"candidates={self.candidates!r} does not fit layout={self.layout!r}: "
                "half_window goes with signed, kept_bins and modelopt with unsigned"
            )
        if self.merge == "fractional" and signed:
            raise ValueError("merge='fractional' needs layout='unsigned'")
        if self.merge == "fractional" and self.expand == "fill_all":
            raise ValueError("expand='fill_all' needs merge='whole' or 'linspace'")
        if self.remainder == "orphan" and self.merge != "whole":
            raise ValueError("remainder='orphan' needs merge='whole'")
        # Both give Q more mass than P on the bins where both are positive (a level's value
        # written onto its empty bins; the orphans' mass moved into the last level), and an
        # unnormalised sum p log(p / q) then goes negative: no longer a divergence to rank by.
        if self.expand == "fill_all" and self.normalize != "pq":
            raise ValueError(
                "expand='fill_all' needs normalize='pq': it writes each level's value onto "
                "the level's empty bins too, so Q outweighs P and an unnormalised KL can go "
                "negative"
            )
        if self.remainder == "orphan" and self.merge == "whole" and self.normalize != "pq":
            raise ValueError(
                "remainder='orphan' needs normalize='pq': the orphaned bins' mass joins the "
                "last level while their Q stays 0, so Q outweighs P on the other bins and an "
                "unnormalised KL can go negative"
            )
        if self.precision == "float32" and (
            self.smoothing != "mxnet" or self.normalize != "pq" or self.zero_q != "inf"
        ):
            raise ValueError(
                "precision='float32' follows ONNX Runtime's own smoothing and entropy: it "
                "needs smoothing='mxnet', normalize='pq' and zero_q='inf'"
            )

    def changes_from(self, other: Policy) -> dict[str, tuple[Any, Any]]:
        """The fields where this policy differs from ``other``: name -> (other's, ours)."""
        return {
            f.name: (getattr(other, f.name), getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        }


_SEED = Policy()
VARIANTS: dict[str, Policy] = {
    # The seed's numpy loop = ncnn's 2019 C++ (QuantizeData::threshold_distribution) = MNN;
    # its search starts at min_kl_divergence = 10000000000000.
    "seed": dataclasses.replace(_SEED, start_kl="1e13"),
    # Tencent/ncnn tools/quantize/ncnn2table.cpp, QuantNet::quantize_KL (2021+).
    "ncnn": dataclasses.replace(
        _SEED, expand="uniform", smoothing="add_eps", normalize="histogram", zero_q="inf"
    ),
    # apache/mxnet python/mxnet/contrib/quantization.py _get_optimal_threshold;
    # apache/tvm src/relay/quantize/calibrate.cc follows it.
    "mxnet": dataclasses.replace(
        _SEED,
        layout="signed",
        candidates="half_window",
        merge="whole",
        truncate="mass",
        smoothing="mxnet",
        zero_q="inf",
        normalize="pq",
        threshold="edge",
    ),
    # microsoft/onnxruntime onnxruntime/python/tools/quantization/calibrate.py
    # HistogramCollector.get_entropy_threshold, quant_utils.smooth_distribution.
    "onnxruntime": dataclasses.replace(
        _SEED,
        layout="signed",
        candidates="half_window",
        merge="whole",
        remainder="orphan",
        expand="fill_all",
        truncate="mass_and_q",
        smoothing="mxnet",
        zero_q="inf",
        normalize="pq",
        threshold="edge",
    ),
    # NVIDIA/Model-Optimizer modelopt/torch/quantization/calib/histogram.py
    # _compute_amax_entropy (= pytorch-quantization's).
    "modelopt": dataclasses.replace(
        _SEED,
        candidates="modelopt",
        zero_spike="copy_next",
        merge="linspace",
        nonzero_from="hist",
        zero_q="inf",
        normalize="pq",
        ties="last",
        threshold="edge",
    ),
}


NUM_BITS_CHOICES = tuple(range(2, 17))
"""The bit widths the core accepts (:func:`check_num_bits`), and so every page offers."""

TARGET_BINS_MIN, TARGET_BINS_MAX = 2, 2048
"""The levels a page's target-bins control offers: from a 2-bit quantizer's 2 to 2048, the
12-bit levels and the default histogram's size. A page keeps its own top only where it needs
one (Learn's lessons, Layers' typed number for files of more bins); the core accepts any
1 <= target_bins < bins."""

TYPED_TARGET_BINS_MAX = 2**14
"""The most levels a typed target-bins number takes (Layers'; a link to Layers or Learn):
files may hold more bins than the sliders' :data:`TARGET_BINS_MAX`."""


def check_variant(variant: Any, name: str = "variant") -> str:
    """``variant`` if it names a preset of :data:`VARIANTS`, or a ValueError naming it (any
    value: a list is refused as surely as a misspelt name)."""
    if not isinstance(variant, str) or variant not in VARIANTS:
        shown = repr(variant) if len(repr(variant)) <= 60 else repr(variant)[:57] + "..."
        raise ValueError(f"{name} must be one of {tuple(VARIANTS)}, got {shown}")
    return variant


def check_num_bits(num_bits: Any) -> int:
    """``num_bits`` as an int, or a ValueError naming it: an integer in 2..16
    (:data:`NUM_BITS_CHOICES`)."""
    lo, hi = NUM_BITS_CHOICES[0], NUM_BITS_CHOICES[-1]
    if isinstance(num_bits, bool) or not isinstance(num_bits, numbers.Integral):
        shown = num_bits.item() if hasattr(num_bits, "item") else num_bits
        raise ValueError(f"num_bits must be an integer in {lo}..{hi}, got {shown!r}")
    if not lo <= num_bits <= hi:
        raise ValueError(f"num_bits must be an integer in {lo}..{hi}, got {int(num_bits)}")
    return int(num_bits)


def levels_for(variant: str, num_bits: int = 8, unsigned: bool = False) -> int:
    """The number of quantized levels (``target_bins``) a variant uses for a quantizer.

    The one rule every page, the command line and :func:`calib.calibrate` call. MXNet (and
    TVM) count both signs' levels of a symmetric quantizer, ``2**num_bits - 1`` (255 at 8
    bits); every other variant counts the levels of one sign, ``2**(num_bits - 1)`` (128),
    or all ``2**num_bits`` of an unsigned quantizer (ModelOpt's
    ``2**(num_bits - 1 + unsigned)``).

    >>> levels_for("seed"), levels_for("mxnet"), levels_for("mxnet", 4), levels_for("seed", 4)
    (128, 255, 15, 8)
    """
    check_variant(variant)
    num_bits = check_num_bits(num_bits)
    if variant == "mxnet":
        return 2**num_bits - 1
    return 2 ** (num_bits - 1 + int(bool(unsigned)))


DEFAULT_TARGET_BINS: dict[str, int] = {v: levels_for(v) for v in VARIANTS}
"""Each variant's levels for signed int8: 128, MXNet's 255."""

VARIANT_NOTES: dict[str, str] = {
    "seed": "The blog post's numpy loop, the same as ncnn's 2019 tool and MNN's.",
    "ncnn": "ncnn 2021+: histogram normalised once, eps 1e-4 added to P and Q, "
    "Q a plain group mean.",
    "mxnet": "MXNet / TVM: signed 8001-bin histogram, 255 levels, whole-bin groups, "
    "smoothed P and Q, scipy's normalised KL.",
    "onnxruntime": "ONNX Runtime as shipped: like MXNet, but remainder bins get Q = 0, "
    "Q is written to zero bins too, and Q is truncated to integers.",
    "modelopt": "ModelOpt / pytorch-quantization: bins[0] = bins[1], linspace groups, "
    "candidates up to no clipping, the last minimum, amax = edges[i].",
}


def resolve_policy(variant: str, overrides: dict[str, Any]) -> Policy:
    """The variant's preset with ``overrides`` applied; ValueError names what is unknown."""
    check_variant(variant)
    fields = {f.name for f in dataclasses.fields(Policy)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown policy {unknown[0]!r}; policies are {sorted(fields)}")
    return dataclasses.replace(VARIANTS[variant], **overrides)
