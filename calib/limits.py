"""Every cap on what calib accepts, in one place.

The app is a server anyone with its URL can reach, so every upload and every link is
treated as hostile: each input is bounded in size, bins, layers, unpacked bytes, rows,
nesting depth and work, and refused past the bound with a ``ValueError`` that names the
limit and the value (:func:`exceeds` writes every such message). The readers, the
histogram type, the sweep, the MSE search, the collector and the app all import their
bounds from here; nothing else in calib writes a limit of its own.

The figures each cap was chosen by (the worst accepted input's time and memory, measured
on this project's 2-core machine) are in ``docs/limits.md``, with the command that
measures them again (``PYTHONPATH=. python tests/test_hostile.py``).

Settings
--------
The app runs an uploaded ONNX model in a child process under a wall-clock and an
address-space budget, :func:`app_collect_budget`: ``APP_COLLECT_SECONDS`` and
``APP_COLLECT_BYTES``, overridden by the environment variables ``CALIB_APP_COLLECT_SECONDS``
and ``CALIB_APP_COLLECT_BYTES`` (read when a collection starts). The command line and the
Python API run a user's own model without limits unless asked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

__all__ = [
    "APP_COLLECT_BYTES",
    "APP_COLLECT_SECONDS",
    "MAX_APP_MODEL_RUNS",
    "MAX_BATCHES",
    "MAX_BINS",
    "MAX_COMPARE_BINS",
    "MAX_CSV_CELLS",
    "MAX_FILE_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_LAYERS",
    "MAX_MAGNITUDE",
    "MAX_META_CHARS",
    "MAX_NAME_CHARS",
    "MAX_PAGE_CELLS",
    "MAX_SEARCH_CELLS",
    "MAX_TEXT_BYTES",
    "MAX_TRACE_METHODS",
    "MAX_UNPACKED_BYTES",
    "MAX_UPLOAD_BYTES",
    "MIN_MAGNITUDE",
    "MSE_CELL_COST",
    "CollectBudget",
    "app_collect_budget",
    "exceeds",
    "page_cells",
]

# -- files -------------------------------------------------------------------------------------
MAX_FILE_BYTES = 200 * 2**20
"""The largest binary file (``.npz``, ``.npy``, a model's inputs) any reader accepts, in
bytes. Files are read whole, so this bounds the bytes held before parsing."""

MAX_UPLOAD_BYTES = 256 * 2**20
"""The largest file the app takes as an upload, in bytes: an ONNX model (all-MiniLM-L6-v2
is 90 MB, a BERT-base 440 MB is for the command line) or anything else, which its reader
then bounds by its own cap (``MAX_FILE_BYTES``, ``MAX_TEXT_BYTES``). Streamlit's
``server.maxUploadSize`` in ``.streamlit/config.toml`` is this in MiB (a test holds them
equal); the command line reads a user's own model whatever its size. An uploaded model
then runs under :func:`app_collect_budget`."""

MAX_TEXT_BYTES = 32 * 2**20
"""The largest text file (``.csv``, ``.json``, calibration caches) any reader accepts, in
bytes. Text becomes Python objects (a str of up to 4 bytes a character, then lists of
numbers), several times its size in memory; 32 MiB holds a JSON histogram of every layer
of a large model."""

MAX_UNPACKED_BYTES = 256 * 2**20
"""The most bytes the arrays of one ``.npz`` or ``.npy`` may take once loaded and widened
to what calib converts them to: every numeric element counts 8 bytes (counts become int64
or float64, samples and edges float64, a model's inputs up to int64 or float64), text its
own size. Read from the ``.npy`` headers before any data is unpacked, so a 200 KB archive
of 200 million one-byte entries is refused before it takes 1.6 GB."""

MAX_LAYERS = 4096
"""The most tensors (layers) one file may hold: histogram files, ONNX Runtime tables,
TensorRT caches; and the most tensors one collection may histogram. An ``.npz`` may hold at
most ``3 * MAX_LAYERS + 6`` arrays (counts, edges and a convergence trace a layer, and six
more), counted by walking the zip directory before ``zipfile`` parses it."""

MAX_NAME_CHARS = 1024
"""The longest tensor name a file may hold, in characters (ONNX names run to a couple of
hundred at most). Read from an ``.npz``'s header before its names are unpacked."""

MAX_META_CHARS = 2**24
"""The longest metadata document a histogram ``.npz`` may hold (its ``meta``: provenance as
a JSON object), in characters; :func:`calib.save_histograms` refuses to write a longer one.
A collection's provenance lists every Reshape/Transpose alias and every tensor left out
(an exported transformer has thousands of aliases: 28,914 characters for a 40-block chain,
about a megabyte for ``MAX_LAYERS`` aliases of exporter-length names), so it is a document,
not a name: at most ``MAX_LAYERS`` aliases and ``MAX_LAYERS`` tensors left out, all named
with ``MAX_NAME_CHARS`` characters, take under 13.2 million characters. Read from the
``.npy`` header before it is unpacked (16.8 million characters are 64 MiB as numpy
stores them)."""

MAX_BATCHES = 2**20
"""The most batches one file may describe: the batches of a model's inputs ``.npz``
(``<input>__b<k>`` keys: ``k`` below this, and at most this many arrays in the archive),
and the batches a convergence trace records (its length). Checked on the keys and headers
before any range, loop or array is sized by them: ``x__b99999999999999999999`` is refused
by its index, not by building a range of 1e20."""

MAX_TRACE_METHODS = 64
"""The most methods a convergence trace (``trace_methods``) may name: calib records
:data:`calib.convergence.CONVERGENCE_METHODS` (a handful) or the methods asked for, each
once. Every method costs a loop over every tensor when the trace is read
(``python -m calib converge``, the Layers page)."""

MAX_CSV_CELLS = 2**18
"""The most cells (rows times columns) a CSV may hold, so at most 262,144 rows: a histogram
of ``MAX_BINS`` bins in three columns fits (196,611 cells), and raw samples past a quarter
of a million belong in an ``.npy`` (a CSV is parsed cell by cell, about a second for this
many here). Counted from the text (commas and line ends) before it is parsed, so one line
of a million numbers is refused as surely as a million lines."""

MAX_JSON_DEPTH = 32
"""The deepest nesting of arrays and objects a JSON file may have. calib's own formats
need 6 (ONNX Runtime's ``calibration.json``); Python's parser recurses once a level, so a
file of 100,000 ``[`` is refused by a scan before it is parsed."""

# -- histograms and numbers --------------------------------------------------------------------
MAX_BINS = 2**16
"""The most bins a :class:`calib.Histogram` may have: from a file, from samples
(``bins``), grown by :meth:`calib.Histogram.merge` or by the collector, or built in
Python. 65,536 holds every histogram the tools write (TensorRT's and ModelOpt's 2048,
MXNet's 8001, and the collector's signed histograms, which grow to at most this many);
the mirror the signed variants make of an ``|x|`` histogram needs it to have at most half
as many. What a sweep of that many bins costs is bounded by :data:`MAX_SEARCH_CELLS`."""

MAX_MAGNITUDE = 1e100
"""Counts may total at most this, and edges (and a clip's ``amax``) be at most this in
magnitude: the sweep and the metrics take squares, cubes and ``x log x`` of them, which
must stay finite in float64 (1e100 cubed is 1e300)."""

MIN_MAGNITUDE = 1e-100
"""A live histogram's counts total at least this, and every bin is at least this wide:
their cubes and products stay normal floats (counts of 1e-310, subnormal, would make the
seed's unnormalised KL vanish). Single tiny counts in a tail are harmless and kept."""

MAX_SEARCH_CELLS = 2**26
"""The most cells one calibration search may evaluate: a KL sweep's candidates times its
target bins on the prefix-sum engine (the window's bins, summed over candidates, on the
dense one), and the MSE search's candidates times its quantization cells (or bins, where
fewer). 2**26 (67 million) takes one to three seconds here whichever engine runs, so no
file, link or setting makes one page's calibration take longer; a larger search is refused
with what to lower (target bins, the histogram's size, the stride)."""

# -- the app: what one page view may compute --------------------------------------------------
MAX_PAGE_CELLS = 2**27
"""The most search cells one page view of the app calibrates in all, estimated before any
search starts (:func:`page_cells`): the Layers table (every tensor's search) is refused
past it, with what to do instead (the command line, ``python -m calib FILE``, has no such
bound; fewer target bins; a file of fewer or smaller histograms). 2**27 (134 million) is
about 14 s of KL sweeps here; the shipped all-MiniLM-L6-v2 file costs 15 million (the seed
folds its signed histograms to |x|),
a BERT-base-sized file (400 tensors of 2048 bins) 106 million; 500 layers of 65,536 bins
(4.2 billion, 7 minutes of sweeps) are refused at once."""

MSE_CELL_COST = 4
"""What one cell of the MSE search costs, in KL-sweep cells (measured here on 65,536-bin
layers: 3.9 s against 0.89 s for the same number of cells), so that
:data:`MAX_PAGE_CELLS` bounds time whichever method a table uses."""

MAX_COMPARE_BINS = 2**14
"""The most bins the Compare page runs every variant, method and attribution on: a larger
histogram is merged down to this many (``Histogram.rebin``) and the page says so
(``calib.compare.compare`` in Python has no such bound). Compare on one 65,536-bin
histogram took 14.6 s; on 16,384 bins it takes a few seconds."""


def page_cells(n_bins: Iterable[int], method: str, levels: int) -> int:
    """What calibrating histograms of ``n_bins`` bins with ``method`` costs, estimated in
    the unit of :data:`MAX_SEARCH_CELLS` and :data:`MAX_PAGE_CELLS`: an entropy sweep
    ``bins * (levels + 1)`` (candidates are at most the bins; a histogram of no more bins
    than levels is refused at once, ``bins``), an MSE search
    ``MSE_CELL_COST * bins * min(bins, levels)`` (``levels`` = 2**(bits-1) there), max and
    percentile ``bins``. (A signed variant mirrors |x| to twice the bins, so it sweeps where
    ``bins <= levels < 2 * bins`` too: each such sweep is still bounded by
    :data:`MAX_SEARCH_CELLS`.)

    >>> page_cells([2048] * 10, "entropy", 128)
    2641920
    """
    total = 0
    for n in n_bins:
        if method == "entropy":
            total += n * (levels + 1) if levels < n else n
        elif method == "mse":
            total += MSE_CELL_COST * n * min(n, levels)
        else:
            total += n
    return total


# -- the app's budget for an uploaded model ---------------------------------------------------
APP_COLLECT_SECONDS = 300.0
"""Default wall-clock budget, in seconds, of one collection (or evaluation) from an uploaded
ONNX model in the app (environment variable ``CALIB_APP_COLLECT_SECONDS``). Set to fit a
real model on a shared server: all-MiniLM-L6-v2 (90 MB) on 512 sentences takes 40-60 s
with the command line on this 2-core machine when it is idle; in the app's child (below
the server's priority, ``nice`` 10) under a load average of 20 it had collected 224 of the
512 samples at 120 s (so about 275 s for all), at 2.9 GB resident."""

APP_COLLECT_BYTES = 4 * 2**30
"""Default address-space budget (``RLIMIT_AS``), in bytes, of the child process that runs
an uploaded ONNX model in the app (environment variable ``CALIB_APP_COLLECT_BYTES``).
Measured here: the child's interpreter, numpy and onnxruntime run a small model within
384 MiB; the 178-byte Expand of issue 9 (one 800 MB tensor) peaks at 0.9 GB resident;
all-MiniLM-L6-v2's 204 tensors on batches of 32 x 128 tokens at 2.9 GB."""


MAX_APP_MODEL_RUNS = 2
"""The most uploaded models the app runs at once, server-wide (one child process each; a
session runs one at a time). A page past it waits in a queue, and says so, until one ends
(or the visitor leaves). Two on this project's 2-core machine: each child runs below the
server's priority (``nice`` 10), so pages stay responsive while two run."""


@dataclasses.dataclass(frozen=True)
class CollectBudget:
    """What one sandboxed collection may spend: wall-clock ``seconds`` and address space
    ``bytes`` (``RLIMIT_AS`` of the child process)."""

    seconds: float
    bytes: int


def _env_number(name: str, default: float, kind: type) -> float:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = kind(float(text)) if kind is int else kind(text)
    except (ValueError, OverflowError):
        raise ValueError(f"environment variable {name}={text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"environment variable {name}={text!r} must be positive")
    return value


def app_collect_budget() -> CollectBudget:
    """The app's budget for running an uploaded model: :data:`APP_COLLECT_SECONDS` and
    :data:`APP_COLLECT_BYTES`, or the environment's ``CALIB_APP_COLLECT_SECONDS`` and
    ``CALIB_APP_COLLECT_BYTES`` when set (a positive number; bytes may be written 3e9)."""
    return CollectBudget(
        seconds=float(_env_number("CALIB_APP_COLLECT_SECONDS", APP_COLLECT_SECONDS, float)),
        bytes=int(_env_number("CALIB_APP_COLLECT_BYTES", APP_COLLECT_BYTES, int)),
    )


def exceeds(what: str, value: float, limit: str, unit: str = "") -> str:
    """The message every cap refuses with: what was too large, by how much, and the
    limit's name and value, e.g. ``"'h.npz': layer 'x' has 100000 bins, more than
    MAX_BINS = 65536"``. ``limit`` names a constant of this module."""
    bound = globals()[limit]
    shown = f"{value:,}" if isinstance(value, int) else f"{value:.6g}"
    bound_shown = f"{bound:,}" if isinstance(bound, int) else f"{bound:g}"
    return f"{what} {shown}{unit}, more than {limit} = {bound_shown}{unit}"
