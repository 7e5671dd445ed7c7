"""What a clip does to the model: a fake-quantized ONNX copy run against the float one.

    >>> from calib.evaluate import spearman, parse_method
    >>> parse_method("entropy:onnxruntime"), parse_method("max")
    (('entropy', 'onnxruntime'), ('max', ''))
    >>> spearman([3.0, 10.0, 25.0], [1.0, 4.0, 9.0])  # the histogram ranks the tensors right
    1.0

numpy and the standard library at import; :func:`evaluate` imports ``onnx`` and
``onnxruntime`` (and, given a scheduler, ``dask.distributed``) when it is called, and says
what to ``pip install`` when they are missing.

What is quantized
-----------------
By default, the tensors a real INT8 deployment quantizes: the activation inputs of MatMul,
Gemm and Conv (ONNX Runtime's ``quantize_static`` op types that carry the compute), not
every tensor collected (quantizing a LayerNorm's internals or a mask measures nothing a
deployment does). An activation is a graph input or a node output that the fed inputs
reach; initializers and tensors computed from them alone are weights. ``op_types`` and a
name pattern (``tensors``) choose another set; every report says which
(:meth:`Selection.describe`). The rule is :mod:`calib.selection`'s, shared with the
collector, so ``collect --op-types X`` collects what ``evaluate --op-types X`` quantizes
and a default collection (every activation) serves any evaluation; a tensor the collection
listed as no activation (an additive mask) is left in float. Only the selected ops read the
quantized copy of a tensor; its other readers (a residual Add) keep the float tensor, as in
a QDQ deployment that quantizes those ops. Weights stay in float unless ``weights=True``,
so that what is measured is the calibration's effect; then the quantized ops' float32
weight initializers are quantized per output channel with max (:func:`quantize_weight`).

The quantizer
-------------
Symmetric, zero point 0, ``scale = amax / qmax`` with ``qmax = 2**(num_bits - 1) - 1``
(:func:`calib.methods.max_code`: 127 at 8 bits), codes in int8. Each quantized tensor
``x`` becomes ``DequantizeLinear(QuantizeLinear(Clip(x, -qmax*scale, qmax*scale)))``:
ONNX's QuantizeLinear rounds half to even and saturates to [-128, 127]; the Clip first
keeps the codes in ``[-qmax, qmax]``, the symmetric range that TensorRT uses and that
:func:`calib.clip_metrics` models, and gives bit widths below 8 (int4 codes in int8). An
``amax`` of 0 zeroes the tensor; a tensor a calibration has no finite clip for stays in
float under it (the methods table says how many).

One session for every run
-------------------------
A session per configuration would cost a model load per tensor. Instead each quantized
tensor gets an ``If`` on a bool scalar graph input: its then-branch is the Q/DQ above, its
else-branch the float tensor, and the scale and clip bounds are float scalar inputs too.
One session then runs the float model (every switch off), any calibration (the scales
fed), and any subset of tensors quantized. The ``If`` is chosen over a blend
``x + m * (qdq(x) - x)`` with ``m`` fed 0 or 1: a switched-off tensor costs no quantizer
work at all (a blend computes Q, DQ, Sub, Mul and Add whatever ``m`` is), and a switched-on
one is exactly ``qdq(x)`` rather than ``x + (qdq(x) - x)``, which float rounding can move by
an ulp. Measured on a 40-layer MatMul chain (256 wide, 2048 rows, one thread): plain 0.29 s
a run, blend 0.35 s, ``Where(m, qdq(x), x)`` 0.37 s, ``If`` 0.29 s off and 0.31 s on.

What is measured
----------------
For each float output over the evaluation set: SQNR
``10 log10(sum(y^2) / sum((y - y_q)^2))`` in dB, the mean over samples of the cosine
similarity of each sample's flattened output, and the max abs error; with several
outputs, a run's SQNR and cosine are the worst output's.

What a classifier is judged by: an output that is class scores (2-D, one row a sample,
at least 2 columns) also gets the **top-1 agreement** (share of samples whose arg-max
class is the float model's) and the **top-5 overlap** (mean ``|top5(y) & top5(y_q)| / 5``);
a run's are the worst class-score output's, nan (null in JSON) when no output is class
scores. Any 2-D output is read as class scores (an embedding's numbers mean little).

- **Methods side by side**: each calibration with every tensor it clips quantized.
- **Sensitivity** (of the best calibration by default, or any named, or several): per
  tensor, the output SQNR with only it quantized, and with all but it; ranked most
  harmful first.
- **Keep in float**: greedily, the tensor whose return to float raises the output SQNR
  most, step after step, until a target (30 dB by default) is met; the first step tries
  every tensor, later ones the 8 best of the step before.
- **Does the histogram predict it?** Spearman's rank correlation between each tensor's
  histogram-level numbers (SQNR of the clip, KL, clipped mass) and its measured only-this
  output SQNR.

Evaluation data
---------------
Given separately, or held out from the calibration inputs: the last 20% of the samples
(or batches) by :func:`hold_out`, and the report says which.

Parallel, and past one machine
------------------------------
Every run is independent: a :class:`Runner` spreads them over local processes (``spawn``,
one single-threaded session each; default: the CPU count, at most 4) or over a Dask
cluster given its scheduler's address. Each session has one intra-op thread, so a run's
numbers do not depend on where it ran: the results are identical either way.
The pool and Dask pickle the project's own objects between its own processes (the model's
bytes, the evaluation arrays, run descriptions and results), as they must; nothing a user
uploads is ever unpickled (uploads are read with ``allow_pickle=False`` and ``onnx``).
"""

from calib.evaluate._evaluate import (
    BEST,
    DEFAULT_HOLDOUT,
    DEFAULT_MAX_FLOAT,
    DEFAULT_METHODS,
    DEFAULT_SHORTLIST,
    DEFAULT_TARGET_SQNR_DB,
    SEARCH_SQNR_DB,
    Clips,
    Evaluation,
    HeldOut,
    KeepFloatStep,
    MethodRow,
    Progress,
    Sensitivity,
    SensitivityRow,
    clips_from_cache,
    clips_from_histograms,
    eval_batches,
    evaluate,
    hold_out,
    parse_method,
    read_report,
)
from calib.evaluate._graph import (
    DEFAULT_OP_TYPES,
    Selection,
    SwitchedModel,
    TensorSwitch,
    clip_feeds,
    load_model,
    quantize_weight,
    select_tensors,
    switched_model,
)
from calib.evaluate._keep import keep_float_at
from calib.evaluate._metrics import TOP_K, OutputError, RunResult, rank, spearman
from calib.evaluate._runner import Payload, Run, Runner

__all__ = [
    "BEST",
    "DEFAULT_HOLDOUT",
    "DEFAULT_MAX_FLOAT",
    "DEFAULT_METHODS",
    "DEFAULT_OP_TYPES",
    "DEFAULT_SHORTLIST",
    "DEFAULT_TARGET_SQNR_DB",
    "SEARCH_SQNR_DB",
    "TOP_K",
    "Clips",
    "Evaluation",
    "HeldOut",
    "KeepFloatStep",
    "MethodRow",
    "OutputError",
    "Payload",
    "Progress",
    "Run",
    "RunResult",
    "Runner",
    "Selection",
    "Sensitivity",
    "SensitivityRow",
    "SwitchedModel",
    "TensorSwitch",
    "clip_feeds",
    "clips_from_cache",
    "clips_from_histograms",
    "eval_batches",
    "evaluate",
    "hold_out",
    "keep_float_at",
    "load_model",
    "parse_method",
    "quantize_weight",
    "rank",
    "read_report",
    "select_tensors",
    "spearman",
    "switched_model",
]
