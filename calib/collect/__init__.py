"""Collect activation histograms from an ONNX model, in one pass over the calibration data.

    >>> import numpy as np
    >>> from calib.collect import HistogramAccumulator
    >>> acc = HistogramAccumulator(bins=4)
    >>> acc.add(np.array([0.5, 1.0, -2.0]))  # the first batch sets the range [0, 2]
    >>> acc.add(np.array([3.0]))  # grows to [0, 3]: two bins of width 0.5 appended
    >>> acc.histogram.counts.tolist(), acc.histogram.edges.tolist()
    ([0, 1, 1, 1, 0, 1], [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])

numpy and the standard library at import; :func:`collect_histograms` imports ``onnx`` and
``onnxruntime`` when it is called and says what to ``pip install`` when they are missing.

Range growth
------------
The first batch of a tensor sets the range (``[0, max|x|]``, or ``[-m, m]`` when signed) in
``bins`` bins, as :meth:`calib.Histogram.from_samples` does. When a later batch goes past
it, bins of the same width are appended until the new maximum is covered (on both sides
when signed): TensorRT's rule, kept by pytorch-quantization and ModelOpt, and the one
:meth:`calib.Histogram.merge` implements, which this module calls. Why this rule: the counts
already collected stay in their bins and the new batch is histogrammed straight onto the
grown grid, so every count is exact (integers, nothing split or re-estimated), and the
histogram is the one TensorRT's and ModelOpt's entropy calibrators would be handed.
(ONNX Runtime grows by whole old strides too, only symmetrically; the alternative of
re-histogramming onto a new, wider grid of ``bins`` bins would have to split old counts.)

Two refinements, both exact:

- A batch in which a tensor is all zeros (a ReLU that did not fire) does not set the range:
  its zeros are held back and counted into the bin of 0 once a non-zero batch arrives, so a
  dead first batch cannot pin the range to the placeholder ``[0, 1]``.
- Memory stays bounded by the histograms. Appending bins can only grow the bin count, so it
  is capped at ``max_bins`` (default ``8 * bins``): when a batch would need more, neighbouring
  bins are first summed in pairs (in threes around the middle bin of an odd signed
  histogram), doubling the bin width, until the grown histogram fits. Whole bins are summed,
  so no count moves across an edge; resolution near zero is what is given up.

Non-finite activations (NaN, inf) are refused with a ``ValueError`` naming the tensor and the
samples: they are a bug upstream, would make the range infinite, and dropping them silently
would hide it.
"""

from calib.collect._accumulator import DEFAULT_MAX_BINS_FACTOR, HistogramAccumulator
from calib.collect._model import (
    DEFAULT_BATCH_SIZE,
    FLOAT_TYPES,
    collect_histograms,
    collect_meta,
    load_inputs,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_BINS_FACTOR",
    "FLOAT_TYPES",
    "HistogramAccumulator",
    "collect_histograms",
    "collect_meta",
    "load_inputs",
]
