"""The questions an engineer asks of a calibration, answered by runs of the switched model."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from calib.collect._model import _batches, _tensor_types
from calib.collect._model import load_inputs as _load_inputs
from calib.evaluate._graph import (
    Selection,
    check_eval_bits,
    load_model,
    require_onnx,
    select_tensors,
    switched_model,
)
from calib.evaluate._metrics import RunResult, spearman
from calib.evaluate._runner import Payload, Run, Runner
from calib.histogram import Histogram
from calib.report import CachedThresholds, LayerRow, layer_row, read_calibration_file
from calib.report._exports import json_value
from calib.spec import Spec

DEFAULT_METHODS = (
    "max",
    "percentile",
    "mse",
    "entropy:seed",
    "entropy:ncnn",
    "entropy:mxnet",
    "entropy:onnxruntime",
    "entropy:modelopt",
)
"""Every method and every entropy variant: the methods table's rows."""

BEST = "best"
"""``sensitivity_of`` default: the calibration with the highest output SQNR, the one an
engineer would deploy and then ask what still hurts (ties: the first)."""

DEFAULT_TARGET_SQNR_DB = 30.0
"""Keep-in-float target: 30 dB is an error power of 1/1000 of the output's, a mean cosine
of about 0.9995."""

SEARCH_SQNR_DB = 120.0
"""The highest target a page offers, and the one its keep-in-float search runs to: the
greedy steps do not depend on the target, so the search at any lower target is a prefix
of this one (:func:`keep_float_at` cuts it) and a new target needs no new run."""

DEFAULT_MAX_FLOAT = 16
"""The greedy keep-in-float search stops after this many tensors if the target is not met."""

DEFAULT_SHORTLIST = 8
"""Candidates a keep-in-float step after the first tries: the best of the step before. The
first step tries every tensor (its runs are the all-but-this runs, already made); later
ones try the shortlist, so a step costs 8 runs, not one per tensor still quantized."""

DEFAULT_HOLDOUT = 0.2
"""Share of the inputs held out for evaluation when no evaluation inputs are given."""


# -- calibrations ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Clips:
    """One calibration: a clip per tensor, and where it came from.

    Attributes
    ----------
    name : str
        ``"max"``, ``"entropy:seed"``, ``"cache:calib.cache"``, or a name given with
        explicit clips.
    method, variant : str
        The method (``"entropy"``, ``"tensorrt"`` for a cache ...) and its variant (the KL
        preset, a cache's algorithm; ``""`` when none).
    amax : dict of str to float
        Tensor -> clip. Tensors it lacks, or whose clip is not a finite number >= 0, stay
        in float under this calibration.
    rows : dict of str to LayerRow
        The histogram-level numbers of each clip (:func:`calib.report.layer_row`: KL,
        clipped mass, SQNR of the clip, flags); empty for a cache or explicit clips.
    """

    name: str
    method: str
    variant: str
    amax: dict[str, float]
    rows: dict[str, LayerRow] = dataclasses.field(default_factory=dict)


def parse_method(text: Any) -> tuple[str, str]:
    """``(method, variant)`` of a calibrator's text, read by :meth:`calib.Spec.parse` (the
    one parser): ``"entropy:onnxruntime"`` -> ``("entropy", "onnxruntime")``, ``"entropy"``
    the seed, ``"max"`` -> ``("max", "")``. Kept for old callers; a :class:`calib.Spec`
    says more."""
    spec = Spec.parse(text)
    return spec.method, spec.variant or ""


def clips_from_histograms(
    hists: Mapping[str, Histogram],
    names: Sequence[str],
    methods: Sequence[Any] = DEFAULT_METHODS,
    num_bits: int = 8,
) -> list[Clips]:
    """A :class:`Clips` per calibrator (a :class:`calib.Spec` or its text, at ``num_bits``
    unless it names those bits), each tensor's clip by :func:`calib.calibrate` (through
    :func:`calib.report.layer_row`, so the flags are the Layers page's). A calibration is
    named by its spec's canonical text without the evaluation's bits (``"entropy:seed"``)."""
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m.strip()]
    try:
        specs = [Spec.parse(m) for m in methods]
    except ValueError as exc:
        raise ValueError(f"methods: {exc}") from None
    if not specs:
        raise ValueError("methods: none given")
    missing = [n for n in names if n not in hists]
    if missing:
        raise ValueError(
            f"histograms: no histogram for {len(missing)} of the {len(names)} quantized "
            f"tensors ({', '.join(map(repr, missing[:3]))}{', ...' if len(missing) > 3 else ''});"
            " collect them from the model (calib collect) or choose other tensors"
        )
    out = []
    for spec in dict.fromkeys(specs):
        ran = spec.at_bits(num_bits, strict=True)
        rows = {n: layer_row(n, hists[n], ran) for n in names}
        amax = {n: r.amax for n, r in rows.items()}
        out.append(
            Clips(
                name=str(spec), method=spec.method, variant=spec.variant or "", amax=amax,
                rows=rows,
            )
        )  # fmt: skip
    return out


def clips_from_cache(cache: Any) -> Clips:
    """A :class:`Clips` from a TensorRT cache or an ONNX Runtime table: a path, or what
    :func:`calib.report.read_calibration_file` returned."""
    if isinstance(cache, (str, os.PathLike)):
        with open(cache, "rb") as f:
            cache = read_calibration_file(f.read(), os.path.basename(os.fspath(cache)))
    if not isinstance(cache, CachedThresholds):
        raise ValueError(f"caches: {cache!r} is not a path or a read calibration file")
    return Clips(
        name=f"cache:{cache.name}",
        method=cache.kind,
        variant=cache.algorithm or cache.header,
        amax=dict(cache.amax),
    )


# -- evaluation inputs -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class HeldOut:
    """Inputs split into a calibration share and an evaluation share."""

    calibration: Any  # a dict of arrays or a list of batches, as the inputs were
    evaluation: Any
    description: str


def hold_out(inputs: Any, share: float = DEFAULT_HOLDOUT) -> HeldOut:
    """The last ``share`` of the samples (whole-set inputs) or of the batches (batched
    inputs), at least one, for evaluation; the rest for calibration.

    The last share, not a random one: the split is the same on every run and says which
    samples it took, and calibration files are rarely ordered by anything that matters.
    """
    if not (isinstance(share, (int, float)) and 0 < share < 1):
        raise ValueError(f"share must be a number in (0, 1), got {share!r}")
    inputs = _load_inputs(inputs)
    if isinstance(inputs, Mapping):
        n = next(iter(inputs.values())).shape[0]
        if n < 2:
            raise ValueError(f"inputs: {n} sample, need at least 2 to hold one out")
        k = min(n - 1, max(1, math.ceil(share * n)))
        return HeldOut(
            calibration={name: a[: n - k] for name, a in inputs.items()},
            evaluation={name: a[n - k :] for name, a in inputs.items()},
            description=(
                f"samples {n - k}..{n - 1} of {n} (the last {share:.0%}), held out from calibration"
            ),
        )
    batches = list(inputs)
    n = len(batches)
    if n < 2:
        raise ValueError(f"inputs: {n} batch, need at least 2 to hold one out")
    k = min(n - 1, max(1, math.ceil(share * n)))
    return HeldOut(
        calibration=batches[: n - k],
        evaluation=batches[n - k :],
        description=(
            f"batches {n - k}..{n - 1} of {n} (the last {share:.0%}), held out from calibration"
        ),
    )


def eval_batches(proto: Any, inputs: Any, batch_size: int | None = None) -> list[dict]:
    """The evaluation runs' feeds, cast to the model's input types (as the collector does)."""
    onnx, _ = require_onnx()
    inputs = _load_inputs(inputs)
    batches, _total = _batches(onnx, proto, inputs, _tensor_types(onnx, proto), batch_size)
    return [feed for _where, feed in batches]


# -- results ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MethodRow:
    """A calibration with every tensor it clips quantized at once."""

    name: str
    method: str
    variant: str
    result: RunResult
    quantized: int
    left_float: dict[str, str]  # tensor -> why this calibration leaves it in float

    @property
    def sqnr_db(self) -> float:
        return self.result.sqnr_db

    @property
    def cosine(self) -> float:
        return self.result.cosine


@dataclasses.dataclass(frozen=True)
class SensitivityRow:
    """One tensor: the output error with only it quantized, and with all but it.

    ``row`` is its :class:`calib.report.LayerRow` (its clip's :class:`calib.Calibration`
    and flags; None for a cache's clips): ``hist_sqnr_db``, ``kl``, ``clipped`` and
    ``flags`` are read off it (nan / empty without one), the proxy the measured numbers are
    set against.
    """

    layer: str
    amax: float
    only_this: RunResult
    all_but_this: RunResult
    row: LayerRow | None = None

    @property
    def hist_sqnr_db(self) -> float:
        return math.nan if self.row is None else self.row.sqnr_db

    @property
    def kl(self) -> float:
        return math.nan if self.row is None else self.row.kl

    @property
    def clipped(self) -> float:
        return math.nan if self.row is None else self.row.clipped

    @property
    def flags(self) -> tuple[str, ...]:
        return () if self.row is None else self.row.flags


@dataclasses.dataclass(frozen=True)
class KeepFloatStep:
    """One step of the greedy search: ``layer`` goes back to float, giving ``result``."""

    layer: str
    result: RunResult


@dataclasses.dataclass(frozen=True)
class Sensitivity:
    """One calibration's per-tensor sensitivity and keep-in-float list.

    ``rows`` is ranked most harmful first: lowest output SQNR with only that tensor
    quantized (ties: highest with all but it). ``keep_float`` lists the greedy steps in
    order; ``reached`` says whether the last one meets the target (None: no search).
    ``rank_correlation`` is Spearman's rho between each histogram-level number and the
    measured only-this output SQNR over the ranked tensors.
    """

    calibration: str
    all_quantized: RunResult
    rows: tuple[SensitivityRow, ...]
    keep_float: tuple[KeepFloatStep, ...]
    reached: bool | None
    rank_correlation: dict[str, float]


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where an evaluation is: the stage, its runs done and total, seconds since start."""

    stage: str  # "methods", "sensitivity", "keep float"
    done: int
    total: int
    elapsed_s: float


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Everything :func:`evaluate` measured; :meth:`to_dict` is the JSON the CLI writes.

    ``calibration`` names the one whose sensitivity was measured. ``sensitivity`` is
    ranked most harmful first: lowest output SQNR with only that tensor
    quantized (ties: highest with all but it). ``keep_float`` lists the greedy steps in
    order; ``reached`` says whether the last one meets ``target_sqnr_db`` (None: no search).
    ``rank_correlation`` is Spearman's rho between each histogram-level number and the
    measured only-this output SQNR over the ranked tensors (``hist_sqnr_db`` should
    correlate positively, ``kl`` and ``clipped`` negatively, if the histogram predicts).
    These are the first calibration of ``sensitivity_of``'s; ``sensitivities`` holds every
    one asked for (the first among them), each a :class:`Sensitivity`.
    """

    model: str
    outputs: tuple[str, ...]
    selection: Selection
    data: str
    n_samples: int
    n_batches: int
    num_bits: int
    weights: bool
    methods: tuple[MethodRow, ...]
    calibration: str
    all_quantized: RunResult | None
    sensitivity: tuple[SensitivityRow, ...]
    keep_float: tuple[KeepFloatStep, ...]
    target_sqnr_db: float
    reached: bool | None
    rank_correlation: dict[str, float]
    backend: str
    runs: int
    seconds: dict[str, float]
    sensitivities: tuple[Sensitivity, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON data (nan -> None, inf -> ``"inf"``, as :mod:`calib.report`)."""
        j = json_value

        def run(r: RunResult) -> list[dict]:
            return [
                {
                    "output": e.output,
                    "sqnr_db": j(e.sqnr_db),
                    "cosine": j(e.cosine),
                    "max_abs_error": j(e.max_abs_error),
                    "top1_agreement": j(e.top1_agreement),
                    "top5_overlap": j(e.top5_overlap),
                }
                for e in r.errors
            ]

        def sensitivity_rows(rows: Sequence[SensitivityRow]) -> list[dict]:
            return [
                {
                    "layer": s.layer,
                    "only_this_sqnr_db": j(s.only_this.sqnr_db),
                    "all_but_this_sqnr_db": j(s.all_but_this.sqnr_db),
                    "hist_sqnr_db": j(s.hist_sqnr_db),
                    "kl": j(s.kl),
                    "flags": list(s.flags),
                    "amax": j(s.amax),
                    "clipped": j(s.clipped),
                    "only_this_cosine": j(s.only_this.cosine),
                    "all_but_this_cosine": j(s.all_but_this.cosine),
                    "only_this_top1_agreement": j(s.only_this.top1_agreement),
                    "all_but_this_top1_agreement": j(s.all_but_this.top1_agreement),
                    "only_this_top5_overlap": j(s.only_this.top5_overlap),
                    "all_but_this_top5_overlap": j(s.all_but_this.top5_overlap),
                }
                for s in rows
            ]

        def steps(keep: Sequence[KeepFloatStep]) -> list[dict]:
            return [
                {
                    "layer": k.layer,
                    "output_sqnr_db": j(k.result.sqnr_db),
                    "cosine": j(k.result.cosine),
                    "top1_agreement": j(k.result.top1_agreement),
                    "top5_overlap": j(k.result.top5_overlap),
                }
                for k in keep
            ]

        return {
            "model": self.model,
            "outputs": list(self.outputs),
            "quantized": {
                "description": self.selection.describe(),
                "op_types": [self.selection.op_types]
                if isinstance(self.selection.op_types, str)
                else list(self.selection.op_types),
                "pattern": self.selection.pattern,
                "tensors": list(self.selection.names),
                "skipped": dict(self.selection.skipped),
                "num_bits": self.num_bits,
                "weights": "per channel, max" if self.weights else "float",
            },
            "evaluation": {
                "data": self.data,
                "samples": self.n_samples,
                "batches": self.n_batches,
            },
            "methods": [
                {
                    "name": m.method,
                    "variant": m.variant,
                    "label": m.name,
                    "output_sqnr_db": j(m.sqnr_db),
                    "cosine": j(m.cosine),
                    "max_abs_error": j(m.result.max_abs_error),
                    "top1_agreement": j(m.result.top1_agreement),
                    "top5_overlap": j(m.result.top5_overlap),
                    "quantized": m.quantized,
                    "left_float": dict(m.left_float),
                    "per_output": run(m.result),
                }
                for m in self.methods
            ],
            "calibration": self.calibration,
            "all_quantized_sqnr_db": (
                None if self.all_quantized is None else j(self.all_quantized.sqnr_db)
            ),
            "sensitivity": sensitivity_rows(self.sensitivity),
            "keep_float": steps(self.keep_float),
            "target_sqnr_db": j(self.target_sqnr_db),
            "reached": self.reached,
            "rank_correlation": {k: j(v) for k, v in self.rank_correlation.items()},
            "sensitivities": [
                {
                    "calibration": x.calibration,
                    "all_quantized_sqnr_db": j(x.all_quantized.sqnr_db),
                    "all_quantized_top1_agreement": j(x.all_quantized.top1_agreement),
                    "sensitivity": sensitivity_rows(x.rows),
                    "keep_float": steps(x.keep_float),
                    "reached": x.reached,
                    "rank_correlation": {k: j(v) for k, v in x.rank_correlation.items()},
                }
                for x in self.sensitivities
            ],
            "run": {
                "backend": self.backend,
                "runs": self.runs,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            },
        }


# -- the evaluation --------------------------------------------------------------------------
def _usable(a: Any) -> bool:
    return a is not None and math.isfinite(a) and a >= 0


def _left_float(c: Clips, names: Sequence[str]) -> dict[str, str]:
    """The tensors a calibration has no usable clip for, and why."""
    out = {}
    for n in names:
        a = c.amax.get(n)
        if n in c.rows and c.rows[n].error:
            out[n] = f"{c.name} refused it: {c.rows[n].error}"
        elif a is None:
            out[n] = f"not in {c.name}"
        elif not _usable(a):
            out[n] = f"amax {a!r} is not a finite number >= 0"
    return out


def _ranked(rows: list[SensitivityRow]) -> list[SensitivityRow]:
    def key(r: SensitivityRow) -> tuple:
        only, but = r.only_this.sqnr_db, r.all_but_this.sqnr_db
        return (
            math.isnan(only),
            only if not math.isnan(only) else 0.0,
            -but if not math.isnan(but) else math.inf,
        )

    return sorted(rows, key=key)


def _check_target(target: Any) -> float:
    if isinstance(target, bool) or not isinstance(target, (int, float)) or math.isnan(target):
        raise ValueError(f"target_sqnr_db must be a number of dB, got {target!r}")
    return float(target)


def _finite(x: float) -> float:
    """An SQNR to compare: nan (no signal) below everything."""
    return -math.inf if math.isnan(x) else x


def _check_shortlist(n: Any) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"shortlist must be a positive integer or None, got {n!r}")
    return int(n)


def _check_max_float(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"max_float must be a non-negative integer, got {n!r}")
    return int(n)


def evaluate(
    model: Any,
    eval_inputs: Any,
    *,
    histograms: Any = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    caches: Sequence[Any] = (),
    amax: Mapping[str, Mapping[str, float]] | None = None,
    sensitivity_of: str | Sequence[str] = BEST,
    op_types: Any = None,
    tensors: Any = None,
    num_bits: int = 8,
    weights: bool = False,
    sensitivity: bool = True,
    target_sqnr_db: float = DEFAULT_TARGET_SQNR_DB,
    max_float: int = DEFAULT_MAX_FLOAT,
    shortlist: int | None = DEFAULT_SHORTLIST,
    batch_size: int | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    progress: Callable[[Progress], Any] | None = None,
    data: str | None = None,
) -> Evaluation:
    """Fake-quantize a model's activations and measure what each calibration, and each
    tensor, does to its outputs.

    Parameters
    ----------
    model : path, bytes, binary file or onnx.ModelProto
        The float ONNX model (opset 13 or newer).
    eval_inputs : dict of arrays, list of dict batches, or an ``.npz``
        The evaluation set, in either layout of :mod:`calib.io.inputs` (see
        :func:`hold_out` for a share of the calibration inputs).
    histograms : mapping of str to Histogram, or a histogram file path, optional
        The quantized tensors' histograms; each of ``methods`` calibrates them.
    methods : sequence of str or calib.Spec
        Calibrators, as :meth:`calib.Spec.parse` reads them: ``"max"``, ``"percentile"``,
        ``"percentile:99.9"``, ``"mse"``, ``"entropy:<variant>"`` (:data:`DEFAULT_METHODS`:
        every method and variant); used with ``histograms``. Each runs at ``num_bits``
        unless it names those bits; a calibration is named by its canonical text.
    caches : sequence of paths or CachedThresholds
        TensorRT caches or ONNX Runtime tables: one more calibration each.
    amax : mapping of name to (mapping of tensor to amax), optional
        Calibrations given as clips.
    sensitivity_of : str or sequence of str
        The calibration whose per-tensor sensitivity and keep-in-float list are measured:
        a calibration's name (``"entropy:seed"``, or any text that names the same
        calibrator: ``"entropy"``), or ``"best"`` (default, :data:`BEST`):
        the highest output SQNR among the calibrations that quantize the most tensors (a
        method that refuses a tensor leaves it in float, which must not win it the title).
        Several (a sequence, or names joined by commas: ``"best,entropy:seed"``): each is
        measured (once, if two name the same calibration), the first in the top-level
        fields of the result and all in ``Evaluation.sensitivities``.
    op_types, tensors
        Which activations are quantized (:func:`calib.evaluate.select_tensors`).
    num_bits : int
        2..8; ``scale = amax / (2**(num_bits - 1) - 1)``.
    weights : bool
        Also quantize the quantized ops' float32 weight initializers, per output channel,
        with max (every quantized run then has them in int8).
    sensitivity : bool
        Measure per-tensor sensitivity (2 runs per tensor) and search what to keep in float.
    target_sqnr_db, max_float, shortlist
        The keep-in-float search's target, its most steps (0: no search), and how many of
        the previous step's best candidates each later step tries (None: all).
    batch_size : int, optional
        Samples per run for whole-set inputs (the model's fixed batch, else 32).
    workers, scheduler
        Where the runs go (:class:`calib.evaluate.Runner`): local processes, or a Dask
        scheduler's address or client.
    progress : callable, optional
        Called with a :class:`Progress` as runs finish.
    data : str, optional
        What the evaluation inputs are, for the report (default: their counts).

    Returns
    -------
    Evaluation

    Raises
    ------
    ImportError
        onnx or onnxruntime (or, with a scheduler, dask.distributed) is missing.
    ValueError
        A model, inputs, selection or calibration that does not fit; the message names it.
    """
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    num_bits = check_eval_bits(num_bits)
    target_sqnr_db = _check_target(target_sqnr_db)
    max_float = _check_max_float(max_float)
    proto, label = load_model(model)
    if isinstance(model, (str, os.PathLike)):
        label = os.path.basename(os.fspath(model))
    selection = select_tensors(proto, op_types, tensors)

    clips: list[Clips] = []
    if histograms is not None:
        if isinstance(histograms, (str, os.PathLike)):
            from calib.io.histograms import load_histograms_and_meta

            histograms, meta = load_histograms_and_meta(histograms)
            left_out = meta.get("not_activations")
        else:  # a Collection lists them too
            left_out = getattr(histograms, "not_activations", None)
        if isinstance(left_out, Mapping):  # additive masks: listed, not calibrated
            selection = selection.without({str(n): str(w) for n, w in left_out.items()})
        clips += clips_from_histograms(histograms, selection.names, methods, num_bits)
    names = selection.names
    clips += [clips_from_cache(c) for c in caches]
    for name, table in (amax or {}).items():
        clips.append(Clips(name=str(name), method="given", variant="", amax=dict(table)))
    if not clips:
        raise ValueError("no calibration: give histograms, a calibration cache or amax")
    labels = [c.name for c in clips]
    if len(set(labels)) != len(labels):
        raise ValueError(f"calibrations: names repeat ({labels})")
    wanted = _check_sensitivity_of(sensitivity_of, labels)
    shortlist = _check_shortlist(shortlist)
    seconds["calibrate"] = time.perf_counter() - t_start

    batches = eval_batches(proto, eval_inputs, batch_size)
    n_samples = sum(next(iter(b.values())).shape[0] for b in batches if b)
    data = data or f"{n_samples} samples in {len(batches)} batches"
    sw = switched_model(proto, selection, num_bits, weights)
    table = np.array([[c.amax.get(n, math.nan) for n in names] for c in clips], dtype=np.float64)
    table[~np.vectorize(_usable)(table)] = math.nan
    payload = Payload(
        model=sw.proto.SerializeToString(),
        switches=sw.switches,
        weights_on=sw.weights_on,
        outputs=sw.outputs,
        num_bits=num_bits,
        batches=tuple(batches),
        amax=table,
    )
    all_on = (True,) * len(names)

    def reporter(stage: str) -> Callable[[int, int], None]:
        def tick(done: int, total: int) -> None:
            if progress is not None:
                progress(Progress(stage, done, total, time.perf_counter() - t_start))

        return tick

    n_runs = 0
    t0 = time.perf_counter()
    with Runner(payload, workers, scheduler) as runner:
        seconds["start workers"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = runner.run(
            [Run(k, all_on, weights) for k in range(len(clips))], reporter("methods")
        )
        n_runs += len(results)
        seconds["methods"] = time.perf_counter() - t0
        method_rows = tuple(
            MethodRow(
                name=c.name,
                method=c.method,
                variant=c.variant,
                result=r,
                quantized=int(np.isfinite(table[k]).sum()),
                left_float=_left_float(c, names),
            )
            for k, (c, r) in enumerate(zip(clips, results, strict=True))
        )
        best = max(  # among those that quantize the most tensors
            range(len(clips)),
            key=lambda i: (method_rows[i].quantized, _finite(results[i].sqnr_db), -i),
        )
        chosen = list(dict.fromkeys(best if w == BEST else labels.index(w) for w in wanted))
        found: list[Sensitivity] = []
        for k in chosen:
            one, extra = _sensitivity(
                runner, k, clips[k], names, table, results[k], weights,
                sensitivity, target_sqnr_db, max_float, shortlist, reporter, seconds,
            )  # fmt: skip
            found.append(one)
            n_runs += extra
    first = found[0]
    seconds["total"] = time.perf_counter() - t_start
    return Evaluation(
        model=label,
        outputs=sw.outputs,
        selection=selection,
        data=data,
        n_samples=n_samples,
        n_batches=len(batches),
        num_bits=num_bits,
        weights=bool(weights),
        methods=method_rows,
        calibration=first.calibration,
        all_quantized=first.all_quantized,
        sensitivity=first.rows,
        keep_float=first.keep_float,
        target_sqnr_db=target_sqnr_db,
        reached=first.reached,
        rank_correlation=first.rank_correlation,
        backend=runner.backend,
        runs=n_runs,
        seconds=seconds,
        sensitivities=tuple(found),
    )


def _check_sensitivity_of(sensitivity_of: Any, labels: Sequence[str]) -> list[str]:
    """``sensitivity_of`` as a list of :data:`BEST` or calibration names (commas split)."""
    if isinstance(sensitivity_of, str):
        wanted = [w.strip() for w in sensitivity_of.split(",") if w.strip()]
    elif isinstance(sensitivity_of, Sequence) and all(isinstance(w, str) for w in sensitivity_of):
        wanted = [w.strip() for w in sensitivity_of]
    else:
        raise ValueError(
            f"sensitivity_of must be a name or a list of names, got {sensitivity_of!r}"
        )
    if not wanted:
        raise ValueError(f"sensitivity_of: no calibration named in {sensitivity_of!r}")
    for n, w in enumerate(wanted):
        if w != BEST and w not in labels:
            try:  # a calibrator named another way: "entropy" is "entropy:seed"
                wanted[n] = w = str(Spec.parse(w))
            except ValueError:
                pass
        if w != BEST and w not in labels:
            raise ValueError(f"sensitivity_of: {w!r} is not 'best' nor one of {labels}")
    return wanted


def _sensitivity(
    runner: Runner,
    k: int,
    cal: Clips,
    names: Sequence[str],
    table: np.ndarray,
    all_quantized: RunResult,
    weights: bool,
    sensitivity: bool,
    target_sqnr_db: float,
    max_float: int,
    shortlist: int | None,
    reporter: Callable[[str], Callable[[int, int], None]],
    seconds: dict[str, float],
) -> tuple[Sensitivity, int]:
    """Calibration ``k``'s per-tensor sensitivity (only this, all but this) and greedy
    keep-in-float list; the runs made. ``seconds`` gains the stages' times (summed over
    calibrations)."""
    live = [i for i in range(len(names)) if not math.isnan(table[k, i])]
    rows: list[SensitivityRow] = []
    steps: list[KeepFloatStep] = []
    reached = None
    n_runs = 0
    if sensitivity and live:
        t0 = time.perf_counter()
        only = [Run(k, tuple(j == i for j in range(len(names))), weights) for i in live]
        but = [Run(k, tuple(j != i for j in range(len(names))), weights) for i in live]
        res = runner.run(only + but, reporter("sensitivity"))
        n_runs += len(res)
        seconds["sensitivity"] = seconds.get("sensitivity", 0.0) + time.perf_counter() - t0
        for pos, i in enumerate(live):
            lr = cal.rows.get(names[i])
            rows.append(
                SensitivityRow(
                    layer=names[i],
                    amax=float(table[k, i]),
                    only_this=res[pos],
                    all_but_this=res[len(live) + pos],
                    row=lr,
                )
            )
        if max_float:
            t0 = time.perf_counter()
            steps, reached, extra = _keep_float(
                runner, k, names, live, all_quantized, res[len(live) :], weights,
                target_sqnr_db, max_float, shortlist, reporter("keep float"),
            )  # fmt: skip
            n_runs += extra
            seconds["keep float"] = seconds.get("keep float", 0.0) + time.perf_counter() - t0
    ranked = _ranked(rows)
    measured = [r.only_this.sqnr_db for r in ranked]
    correlation = {}
    if cal.rows and ranked:
        correlation = {
            "hist_sqnr_db": spearman([r.hist_sqnr_db for r in ranked], measured),
            "kl": spearman([r.kl for r in ranked], measured),
            "clipped": spearman([r.clipped for r in ranked], measured),
        }
    sens = Sensitivity(cal.name, all_quantized, tuple(ranked), tuple(steps), reached, correlation)
    return sens, n_runs


def _keep_float(
    runner: Runner,
    k: int,
    names: Sequence[str],
    live: list[int],
    start: RunResult,
    first: list[RunResult],
    weights: bool,
    target: float,
    max_float: int,
    shortlist: int | None,
    tick: Callable[[int, int], None],
) -> tuple[list[KeepFloatStep], bool, int]:
    """Greedy: at each step the tensor whose return to float raises the output SQNR most
    (ties: graph order), until ``target`` is met or ``max_float`` tensors are in float.

    The first step tries every quantized tensor, with the all-but-this runs already made.
    Each later step tries the ``shortlist`` candidates (all with None) whose last measured
    SQNR is highest (measured at the step before, or earlier for those not tried since).
    Returns the steps, whether the target was met, and the runs made.
    """
    if start.sqnr_db >= target:
        return [], True, 0
    kept: list[int] = []
    steps: list[KeepFloatStep] = []
    last = {i: r.sqnr_db for i, r in zip(live, first, strict=True)}  # latest SQNR measured
    tried, results = list(live), list(first)
    runs = 0
    while True:
        best = min(range(len(tried)), key=lambda c: (-_finite(results[c].sqnr_db), tried[c]))
        kept.append(tried[best])
        steps.append(KeepFloatStep(names[tried[best]], results[best]))
        del last[tried[best]]
        if results[best].sqnr_db >= target:
            return steps, True, runs
        if len(kept) >= max_float or not last:
            return steps, False, runs
        ranked = sorted(last, key=lambda i: (-_finite(last[i]), i))
        tried = sorted(ranked[:shortlist] if shortlist else ranked)
        off = set(kept)
        todo = [
            Run(k, tuple(j not in off and j != c for j in range(len(names))), weights)
            for c in tried
        ]
        results = runner.run(todo, tick)
        runs += len(todo)
        last.update({i: r.sqnr_db for i, r in zip(tried, results, strict=True)})


REPORT_KEYS = ("outputs", "quantized", "evaluation", "methods", "sensitivity", "keep_float")
"""Keys every report (:meth:`Evaluation.to_dict`) has."""

_NUMBER_KEYS = {
    "output_sqnr_db", "cosine", "max_abs_error", "sqnr_db", "only_this_sqnr_db",
    "all_but_this_sqnr_db", "hist_sqnr_db", "kl", "amax", "clipped", "only_this_cosine",
    "all_but_this_cosine", "target_sqnr_db", "all_quantized_sqnr_db", "top1_agreement",
    "top5_overlap", "only_this_top1_agreement", "all_but_this_top1_agreement",
    "only_this_top5_overlap", "all_but_this_top5_overlap", "all_quantized_top1_agreement",
}  # fmt: skip


def _number(x: Any) -> float:
    """A report's number back to a float: None -> nan, ``"inf"`` / ``"-inf"`` -> inf."""
    if x is None:
        return math.nan
    if isinstance(x, str) and x in ("inf", "-inf"):
        return math.inf if x == "inf" else -math.inf
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"report: {x!r} is not a number")
    return float(x)


def _numbers(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _numbers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v, key) for v in value]
    return _number(value) if key in _NUMBER_KEYS else value


def read_report(source: Any) -> dict[str, Any]:
    """A report as :meth:`Evaluation.to_dict` wrote it (a dict, or its JSON text or bytes),
    with every number a float again (null -> nan, ``"inf"`` -> inf), checked for the keys
    every report has. ValueError says what is wrong."""
    import json

    if isinstance(source, (str, bytes, bytearray)):
        try:
            source = json.loads(source)
        except ValueError as exc:
            raise ValueError(f"report: not JSON ({exc})") from None
    if not isinstance(source, Mapping):
        raise ValueError(f"report: expected a JSON object, got {type(source).__name__}")
    missing = [k for k in REPORT_KEYS if k not in source]
    if missing:
        raise ValueError(f"report: no {', '.join(map(repr, missing))} (not an evaluate report)")
    doc = _numbers(dict(source))
    doc["rank_correlation"] = {
        k: _number(v) for k, v in (source.get("rank_correlation") or {}).items()
    }
    return doc
