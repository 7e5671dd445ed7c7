"""Collect activation histograms from an ONNX model, in one pass over the calibration data.

    >>> import numpy as np
    >>> from calib.collect import HistogramAccumulator
    >>> acc = HistogramAccumulator(bins=4)
    >>> acc.add(np.array([0.5, 1.0, -2.0]))  # the first batch sets the range [-2, 2]
    >>> acc.add(np.array([3.0]))  # grows to [-3, 3]: two bins of width 0.5 on each side
    >>> acc.histogram.counts.tolist()
    [0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1]
    >>> acc.histogram.fold().counts.tolist()  # |x|: what the seed, ncnn and ModelOpt read
    [0, 1, 1, 1, 0, 1]

numpy and the standard library at import; :func:`collect_histograms` imports ``onnx`` and
``onnxruntime`` when it is called and says what to ``pip install`` when they are missing.

Collect once, serve every variant
---------------------------------
Each tensor is kept as a signed histogram on symmetric edges, ``2 * bins`` bins of the
width a ``bins``-bin ``|x|`` histogram would have (:mod:`calib.collect._accumulator`):
folding it gives that ``|x|`` histogram (up to which side of an edge a negative value
lying exactly on it falls), so the seed, ncnn and ModelOpt lose nothing, and MXNet and
ONNX Runtime read the signs they need. Counts are exact integers.

Range growth
------------
The first batch with a non-zero value sets the range ``[-m, m]``, ``m = max|x|``. When a
later batch goes past it, the same number of bins of the same width is appended on both
sides until the new maximum is covered: TensorRT's rule of keeping the bin width (kept by
pytorch-quantization and ModelOpt, and by :meth:`calib.Histogram.merge`), grown
symmetrically as ONNX Runtime's collector grows. The counts already collected stay in
their bins and the new batch is counted straight onto the grown grid.

Two refinements, both exact:

- A batch in which a tensor is all zeros (a ReLU that did not fire) does not set the range:
  its zeros are held back and counted into the bin of 0 once a non-zero batch arrives, so a
  dead first batch cannot pin the range to a placeholder.
- Memory stays bounded by the histograms: the bins per side are capped at ``max_bins``
  (default ``8 * bins``); a batch that would need more first sums neighbouring bins in
  pairs outwards from 0, doubling the width. Whole bins are summed, so no count moves
  across an edge; resolution near zero is what is given up.

What is not collected
---------------------
- A tensor that only re-lays out another (``RELAYOUT_OPS``: Reshape, Transpose, ...) holds
  the same values: it is counted once and shares the histogram (``Collection.aliases``).
- A tensor holding a value of magnitude ``MASK_MAGNITUDE`` (1e30) or more is an additive
  attention mask (transformers write float32's minimum, -3.4e38), not an activation to
  quantize: it is listed with the reason in ``Collection.not_activations``, has no
  histogram, and is no longer fetched.
- Non-finite activations (NaN, inf) are refused with a ``ValueError`` naming the tensor and
  the samples: they are a bug upstream, and dropping them silently would hide it.

Speed
-----
One division, a truncation and one ``np.bincount`` per value, a block of ``BLOCK`` values
at a time in a buffer kept per thread (:func:`calib.collect._accumulator.bin_counts`),
after one min and one max (which also catch NaN and inf); the tensors of a batch are
counted by a few threads, since numpy releases the GIL in all but the count. While a
collection runs, glibc keeps freed activations mapped for the next batch
(``calib/collect/_heap.py``).
"""

from calib.collect._accumulator import (
    DEFAULT_MAX_BINS_FACTOR,
    MASK_MAGNITUDE,
    HistogramAccumulator,
    bin_counts,
)
from calib.collect._model import (
    DEFAULT_BATCH_SIZE,
    FLOAT_TYPES,
    RELAYOUT_OPS,
    Collection,
    Progress,
    collect_histograms,
    collect_meta,
    load_inputs,
)
from calib.convergence import CONVERGENCE_METHODS

__all__ = [
    "CONVERGENCE_METHODS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_BINS_FACTOR",
    "FLOAT_TYPES",
    "MASK_MAGNITUDE",
    "RELAYOUT_OPS",
    "Collection",
    "HistogramAccumulator",
    "Progress",
    "bin_counts",
    "collect_histograms",
    "collect_meta",
    "load_inputs",
]
