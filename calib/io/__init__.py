"""Read and write the files users bring: histograms, TensorRT caches, ONNX Runtime tables.

numpy and the standard library only. No pickle, ever: every ``np.load`` passes
``allow_pickle=False``, and object arrays are refused from the ``.npy`` header before numpy
reads any data. No ``eval``. Every input is bounded (:mod:`calib.limits`): a binary file by
``MAX_FILE_BYTES``, a text file by ``MAX_TEXT_BYTES``, an ``.npz`` by its number of arrays
and the bytes they take once widened (``MAX_UNPACKED_BYTES``), histograms by ``MAX_BINS``,
files by ``MAX_LAYERS`` tensors, names by ``MAX_NAME_CHARS`` characters and a histogram
file's metadata, a document, by ``MAX_META_CHARS``; batches and convergence traces by
``MAX_BATCHES`` and a trace's methods by ``MAX_TRACE_METHODS``; a CSV by
``MAX_CSV_CELLS`` cells and JSON by ``MAX_JSON_DEPTH`` levels. Bad input raises
``ValueError`` naming what was wrong and what was expected, and the limit by name.

Inputs
------
Every reader takes a path (``str`` or ``os.PathLike``) or an open file object: binary (a
Streamlit upload is a ``BytesIO``) or, for the text formats, text. A file object is read
from its current position. Text is UTF-8 (a byte-order mark is skipped); lines end in
``\n`` or ``\r\n``. Writers take a path (the name is used as given: no extension is
added) or a writable file object.

The multi-layer histogram file (``.npz``, version 1)
----------------------------------------------------
A zip of ``.npy`` arrays, as ``np.savez_compressed`` writes it, with exactly these keys:

==============  ===========================================================================
``format``      0-d unicode array, ``"calib-histograms"``
``version``     0-d integer array, ``1``
``names``       1-D unicode array of the L layer names, in order: any unicode, distinct,
                at least one; none may end in ``"\0"`` (numpy's unicode arrays drop
                trailing NULs)
``counts_<i>``  for ``i`` in ``0 .. L-1``: the counts of layer ``names[i]``, 1-D int64 or
                float64 (finite, non-negative, at least 2 bins)
``edges_<i>``   the edges of layer ``names[i]``, 1-D float64, strictly increasing,
                ``len(counts_<i>) + 1`` of them
``meta``        optional 0-d unicode array holding a JSON object (provenance: model, data
                set, tool, date; a collection's aliases and the tensors it left out), at
                most ``MAX_META_CHARS`` characters (the writer refuses a longer one)
``trace_*``     optional, written by ``collect --convergence``: ``trace_samples`` (1-D
                int64, the samples seen after each of B batches), ``trace_methods`` (1-D
                unicode, M distinct names: ``max``, ``percentile``, ``entropy:<variant>``;
                M <= ``MAX_TRACE_METHODS``, B <= ``MAX_BATCHES``, samples never decrease) and
                ``trace_<i>`` (float64, M x B) for each layer traced: each method's amax
                on the histogram collected so far, after each batch
                (:func:`calib.load_convergence`)
==============  ===========================================================================

Layer names live inside the ``names`` array, never in zip member names, so any name
round-trips. A missing key, any other key, a duplicate name, two archive members of one
name (numpy would keep the last), a newer version or an array of the wrong kind is refused.

A *plain* ``.npz`` (no ``format`` key), as other tools write it, is read too: keys
``<layer>.counts`` (with an optional ``<layer>.edges``) give a layer with those edges, and
any other key ``<layer>`` gives a layer of counts in unit-width bins from 0, so
``np.savez("h.npz", conv1=counts1, conv2=counts2)`` loads. Layers come in archive order.

Single histograms (:func:`load_histogram_file`, by extension)
-------------------------------------------------------------
``.npz``
    Either form above.
``.npy``
    A 1-D array of counts (unit-width bins from 0), or an ``(N, 3)`` array whose rows are
    ``(lo, hi, count)`` of N contiguous bins. Any other shape is refused.
``.csv``
    Comma-separated. With a header row (a first row with no number in it, or a first
    comment line ``# counts,edges`` as ``np.savetxt(..., header=...)`` writes), the columns
    are named, case-insensitively: ``counts``; or ``counts`` and ``edges``, where there is
    one more edge than counts and the ``counts`` cell of the last row is left empty; or
    ``lo``, ``hi`` and ``counts`` (contiguous bins). Without a header: one column is counts
    in unit-width bins from 0, three columns are ``lo, hi, counts``; anything else needs a
    header. Other lines starting with ``#`` are comments. Counts that are all written as
    integers become int64.
``.json``
    ``{"counts": [...], "edges": [...]}`` (``edges`` optional: unit-width bins from 0), or
    ``{"layers": {"<name>": {"counts": [...], "edges": [...]}, ...}}``.

A single histogram is returned as ``{<file name without extension>: Histogram}``.

Raw samples (:func:`load_samples_file`): ``.npy`` of any shape, or ``.csv`` numbers (any
number per row; a non-numeric first row is a header and skipped; ``#`` lines are comments).

TensorRT calibration cache
--------------------------
The first line is ``TRT-<version>-<Algorithm>`` (``TRT-8601-EntropyCalibration2``), then one
line per tensor, ``<tensor name>: <hex>``, where ``<hex>`` is the big-endian IEEE float32
bit pattern of ``scale = amax / 127``, written by TensorRT as 8 hex digits (shorter forms,
such as ``0``, are read as zero-padded on the left). The name is everything before the last
``": "``, so names may hold spaces, brackets, slashes and ``": "``.

ONNX Runtime calibration tables
-------------------------------
``write_calibration_table`` writes ``calibration.json``: ``json.dumps`` of a ``TensorsData``,
``{"CLS": "TensorsData", "data": {<name>: <TensorData>}, "calibration_method": {...}}``,
where a ``TensorData`` is ``{"lowest": x, "highest": x, ["hist": x, "hist_edges": x],
"CLS": "TensorData"}`` and each ``x`` is ``{"data": ..., "dtype": ..., "CLS":
"numpy.array"}``. The entropy and percentile calibrators store the histogram edges under
``"bins"`` instead of ``"hist_edges"``; both are read. Older versions wrote a plain
``{<name>: [lowest, highest]}``, which is read too. ``calibration.cache`` holds one
``<name> <value>`` line per tensor, where recent versions write ``max(highest, lowest)``
(older ones ``max(|lowest|, |highest|)``).
"""

from calib.io._safe import Source, write_text
from calib.io.histograms import (
    NPZ_FORMAT,
    NPZ_VERSION,
    Trace,
    load_convergence,
    load_histogram_file,
    load_histograms,
    load_histograms_meta,
    load_samples_file,
    save_histograms,
)
from calib.io.ort import (
    ORT_METHODS,
    OrtCalibration,
    read_ort_calibration_cache,
    read_ort_calibration_json,
    write_ort_calibration_cache,
    write_ort_calibration_json,
)
from calib.io.trt import (
    TRT_ALGORITHMS,
    TRT_DEFAULT_HEADER,
    TrtCache,
    read_trt_cache,
    read_trt_cache_full,
    write_trt_cache,
)
from calib.limits import MAX_FILE_BYTES

__all__ = [
    "MAX_FILE_BYTES",
    "NPZ_FORMAT",
    "NPZ_VERSION",
    "ORT_METHODS",
    "TRT_ALGORITHMS",
    "TRT_DEFAULT_HEADER",
    "OrtCalibration",
    "Source",
    "Trace",
    "TrtCache",
    "load_convergence",
    "load_histogram_file",
    "load_histograms",
    "load_histograms_meta",
    "load_samples_file",
    "read_ort_calibration_cache",
    "read_ort_calibration_json",
    "read_trt_cache",
    "read_trt_cache_full",
    "save_histograms",
    "write_ort_calibration_cache",
    "write_ort_calibration_json",
    "write_text",
    "write_trt_cache",
]
