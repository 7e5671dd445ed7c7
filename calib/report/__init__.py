"""A model's layers in one table: each tensor's clip, the numbers it is judged by, and flags.

The Layers page, the command line (``python -m calib FILE``) and the benchmark all build
their tables here, from :func:`calib.methods.calibrate`, so there is one copy of every
calculation. numpy and the standard library only.

Flags
-----
Each row carries the flags that fire on it, in this order (:data:`FLAG_HELP` says each in one
sentence; a row with none says :data:`NO_FLAG`, "no flag"):

``dead``
    Every count is zero: the tensor never fired, or the collector never saw it. No amax,
    no scale (a calibration cache leaves it out).
``zero spike``
    The bin(s) touching zero hold at least :data:`ZERO_SPIKE_SHARE` of the mass *and* are
    at least :data:`ZERO_SPIKE_STEP` times as dense as the bins next to them: a spike (a
    ReLU's exact zeros), not merely a peaked body. A big spike drags the seed's
    unnormalised KL towards the smallest candidate.
``outliers``
    ``max / p99.99 >= OUTLIER_RATIO``, where p99.99 is the 99.99th percentile of ``|x|``
    (ModelOpt's rule, :func:`calib.methods.amax_percentile`). A normal body gives a ratio
    of about 1.4 at six million samples and a Laplace body about 1.7; neither reaches 4
    at any sample count an engineer collects, so a ratio of 4 or more means a few values
    far beyond the rest (transformer FFN outputs, a [CLS] token's activations), or a
    tail so long that no clip serves both it and the body. When the percentile is 0 (at
    least 99.99% of the mass in the first bin) the ratio is inf and the flag fires.
``clipped``
    At least :data:`CLIPPED_SHARE` (1%) of the values lie beyond the clip. A Tanh output
    clipped at a tenth of its range loses most of its values this way, whatever its KL.
``low SQNR``
    SQNR below :data:`LOW_SQNR_DB` (10 dB): rounding and clipping together carry more than
    a tenth of the signal's power. It catches a bad clip that no shape test explains (one
    MiniLM FFN output sits at 2.1 dB with no spike and no outlier).
``sparse``
    Integer counts with fewer than :data:`SPARSE_PER_BIN` values per occupied bin, or fewer
    than :data:`OUTLIER_MIN_COUNT` in all: the histogram is sampling noise at its size, and
    p99.99 is the largest value itself, so ``outliers`` cannot fire. Float counts (a
    normalised histogram) do not say how many values they hold and are never sparse.
``smallest candidate``
    Entropy only: the sweep chose its first candidate (``best_index == 0``). The KL
    minimum may lie below the range searched, so the answer is the search's floor, not a
    minimum.
``zero amax``
    A live tensor whose method answered 0 (ModelOpt's percentile rule on a tensor that is
    mostly zeros): everything would be clipped. No scale is written for it.
``error``
    The method refused this tensor (``ValueError``; for example ``target_bins`` not below
    the tensor's number of bins). The message is in :attr:`LayerRow.error`.

Worst first
-----------
:func:`worst_first` sorts by SQNR, lowest first: the error the chosen clip causes
(rounding and clipping together) relative to the tensor's own signal power, in dB, so
tensors of any scale, and any method, are ranked on one axis. Flags explain a row; they
do not rank it. Rows without an SQNR (dead, error) come first: they need a look before
anything is exported.

Calibration caches
------------------
:func:`read_calibration_file` reads a TensorRT calibration cache, an ONNX Runtime
``calibration.json`` or ``calibration.cache`` into :class:`CachedThresholds` (tensor name
-> amax). :func:`compare_cache` puts each cached amax beside calib's and marks a
disagreement when the ratio ``cached / calib`` is beyond :data:`DISAGREE_RATIO` either way
(or not finite). :func:`check_cache` checks the cache itself: its readers' problems (zero,
negative, NaN, inf scales; an unknown algorithm), identical scales shared by several
tensors, extreme scales, TensorRT's auto-generated "(Unnamed Layer* N)" names, tensors of
the histograms missing from the cache and the reverse, and the header.
"""

from calib.report._caches import (
    CacheCheck,
    CachedThresholds,
    CacheMatch,
    check_cache,
    compare_cache,
    read_calibration_file,
)
from calib.report._exports import (
    cli_records,
    exportable_amax,
    json_value,
    ort_json_text,
    records,
    records_csv,
    records_json,
    trt_cache_text,
)
from calib.report._table import (
    CHECKS,
    CLI_COLUMNS,
    CLIPPED_SHARE,
    COLUMNS,
    DISAGREE_RATIO,
    EXTREME_RATIO,
    FLAG_HELP,
    FLAGS,
    FLOAT16_MAX,
    LOW_SQNR_DB,
    NO_FLAG,
    OUTLIER_MIN_COUNT,
    OUTLIER_RATIO,
    SPARSE_PER_BIN,
    TAIL_PERCENTILE,
    ZERO_SPIKE_SHARE,
    ZERO_SPIKE_STEP,
    LayerRow,
    layer_row,
    layer_table,
    sparse,
    table_spec,
    tail_ratio,
    worst_first,
    zero_spike,
)

__all__ = [
    "CHECKS",
    "CLIPPED_SHARE",
    "CLI_COLUMNS",
    "COLUMNS",
    "DISAGREE_RATIO",
    "EXTREME_RATIO",
    "FLAGS",
    "FLAG_HELP",
    "FLOAT16_MAX",
    "LOW_SQNR_DB",
    "NO_FLAG",
    "OUTLIER_MIN_COUNT",
    "OUTLIER_RATIO",
    "SPARSE_PER_BIN",
    "TAIL_PERCENTILE",
    "ZERO_SPIKE_SHARE",
    "ZERO_SPIKE_STEP",
    "CacheCheck",
    "CacheMatch",
    "CachedThresholds",
    "LayerRow",
    "check_cache",
    "cli_records",
    "compare_cache",
    "exportable_amax",
    "json_value",
    "layer_row",
    "layer_table",
    "ort_json_text",
    "read_calibration_file",
    "records",
    "records_csv",
    "records_json",
    "sparse",
    "table_spec",
    "tail_ratio",
    "trt_cache_text",
    "worst_first",
    "zero_spike",
]
