"""The ONNX side: load a model, pick its activation tensors, run the batches, collect."""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from calib import limits
from calib.collect._accumulator import HistogramAccumulator
from calib.collect._heap import heap_reuse
from calib.convergence import Trace, amax_row, check_methods
from calib.histogram import DEFAULT_BINS, Histogram, _check_bins
from calib.io.inputs import check_arrays
from calib.io.inputs import load_inputs as read_inputs
from calib.selection import (
    ALL,
    FLOAT_TYPES,
    RELAYOUT_OPS,
    UNKNOWN,
    select_tensors,
    tensor_types,
)
from calib.selection import TensorType as _TensorType
from calib.selection import graph_inputs as _graph_inputs
from calib.selection import pick_by_name as pick_by_name

_UNKNOWN = UNKNOWN
__all__ = ["FLOAT_TYPES", "RELAYOUT_OPS", "collect_histograms", "collect_meta", "pick_by_name"]


def _tensor_types(onnx: Any, proto: Any) -> dict[str, _TensorType]:
    """:func:`calib.selection.tensor_types` (``onnx`` already imported by the caller)."""
    return tensor_types(proto)


DEFAULT_BATCH_SIZE = 32
"""Samples per onnxruntime run when the model's batch axis is dynamic."""

INSTALL_HINT = "pip install onnx onnxruntime"

FLOAT_ELEM = 1  # TensorProto.FLOAT


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a collection is, handed to the ``progress`` callback before the first batch
    and after each one."""

    samples: int
    total_samples: int | None  # None: batches from an iterable of unknown length
    batches: int
    total_batches: int | None
    tensors: int  # tensors counted (aliases and masks left out)
    elapsed_s: float

    @property
    def left_s(self) -> float | None:
        """Seconds left at the pace so far, when the total is known and a batch is done."""
        if not self.total_samples or not self.samples:
            return None
        return self.elapsed_s * (self.total_samples - self.samples) / self.samples


# -- the ONNX side ----------------------------------------------------------------------------


def require_onnx(doing: str = "collecting histograms from an ONNX model") -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or an ImportError that says what ``doing`` needs and what to
    pip install (the collector's and ``calib.evaluate``'s one import of both)."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"{doing} needs onnx and onnxruntime ({exc.name or exc} is missing): {INSTALL_HINT}"
        ) from exc
    return onnx, onnxruntime


def _load_model(onnx: Any, model: Any) -> tuple[Any, str]:
    """(ModelProto, label) from a path, bytes, a binary file object or a ModelProto."""
    if isinstance(model, onnx.ModelProto):
        proto, label = model, "the model"
    else:
        if isinstance(model, (str, os.PathLike)):
            label = repr(os.fspath(model))
            path = Path(model)
            if not path.is_file():
                raise ValueError(f"model: {label} is not a file")
            data = path.read_bytes()
        elif isinstance(model, (bytes, bytearray, memoryview)):
            label, data = "the model bytes", bytes(model)
        elif callable(getattr(model, "read", None)):
            label = repr(getattr(model, "name", "the model file"))
            data = model.read()
        else:
            raise ValueError(
                "model must be a path, bytes, a binary file or an onnx.ModelProto, "
                f"got {type(model).__name__}"
            )
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError(f"model: {label} did not read as bytes")
        try:
            proto = onnx.load_model_from_string(bytes(data))
        except Exception as exc:  # google.protobuf DecodeError and friends
            raise ValueError(f"model: {label} is not an ONNX model ({exc})") from None
        if _has_external_data(proto):
            if not isinstance(model, (str, os.PathLike)):
                raise ValueError(
                    f"model: {label} keeps its weights in external data files; "
                    "pass the model's path so that they can be found next to it"
                )
            from onnx.external_data_helper import load_external_data_for_model

            try:
                load_external_data_for_model(proto, str(Path(model).resolve().parent))
            except Exception as exc:  # OSError, and onnx's ValidationError for a location
                # outside the model's folder (a path traversal onnx refuses)
                raise ValueError(
                    f"model: {label}: its external data cannot be read ({exc})"
                ) from None
    if proto.ir_version <= 0 or not proto.graph.node:
        raise ValueError(
            f"model: {label} is not an ONNX model (no IR version or no graph nodes; "
            f"{len(proto.graph.node)} nodes, ir_version {proto.ir_version})"
        )
    return proto, label


def _has_external_data(proto: Any) -> bool:
    return any(t.data_location == 1 for t in proto.graph.initializer)  # TensorProto.EXTERNAL


def load_inputs(inputs: Any, max_bytes: int | None = None) -> dict[str, np.ndarray] | list:
    """Calibration inputs: a dict of arrays (checked), an ``.npz`` path or binary file in
    either layout of :mod:`calib.io.inputs` (no pickle), or a list of batch dicts."""
    if isinstance(inputs, Mapping):
        return check_arrays(inputs)
    if isinstance(inputs, (str, os.PathLike)) or callable(getattr(inputs, "read", None)):
        return read_inputs(inputs, max_bytes)
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    raise ValueError(
        "inputs must be a dict of arrays, an .npz path or a list of batches, "
        f"got {type(inputs).__name__}"
    )


def _np_dtype(onnx: Any, elem_type: int) -> np.dtype:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def _cast_batch(
    onnx: Any,
    names: list[str],
    arrays: Mapping[str, Any],
    types: dict[str, _TensorType],
    where: str,
) -> dict[str, np.ndarray]:
    """One batch (or the whole set) cast to the model's input types and checked against its
    shapes; axis 0 is the sample axis."""
    extra = [k for k in arrays if k not in names]
    if extra:
        raise ValueError(
            f"inputs{where}: {', '.join(map(repr, extra))} not an input of the model "
            f"(its inputs: {', '.join(map(repr, names))})"
        )
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(
            f"inputs{where}: the model's input(s) {', '.join(map(repr, missing))} missing"
        )
    feed = {}
    for name in names:
        a = np.asarray(arrays[name])
        if a.dtype == object:
            raise ValueError(f"inputs[{name!r}]{where} is an object array (refused: no pickle)")
        if a.ndim == 0:
            raise ValueError(f"inputs[{name!r}]{where} is a scalar; axis 0 is the sample axis")
        tt = types.get(name, _UNKNOWN)
        elem, dims = tt.elem_type, tt.dims
        if elem:
            want = _np_dtype(onnx, elem)
            same_kind = (
                (np.issubdtype(a.dtype, np.floating) and np.issubdtype(want, np.floating))
                or (np.issubdtype(a.dtype, np.integer) and np.issubdtype(want, np.integer))
                or a.dtype == want
            )
            if not same_kind:
                raise ValueError(
                    f"inputs[{name!r}]{where} has dtype {a.dtype}, the model wants {want}"
                )
            a = a.astype(want, copy=False)
        if dims is not None:
            shown = "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"
            if a.ndim != len(dims):
                raise ValueError(
                    f"inputs[{name!r}]{where} has shape {a.shape}, the model wants {shown} "
                    "(axis 0 is the sample axis)"
                )
            for axis, d in enumerate(dims):
                if axis and isinstance(d, int) and d > 0 and a.shape[axis] != d:
                    raise ValueError(
                        f"inputs[{name!r}]{where} has shape {a.shape}, the model wants "
                        f"{shown}: axis {axis} is {a.shape[axis]}, not {d}"
                    )
        feed[name] = a
    sizes = {k: a.shape[0] for k, a in feed.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs{where}: arrays hold different numbers of samples: {sizes}")
    return feed


def _fixed_batch(proto: Any, types: dict, names: list[str]) -> int | None:
    """The batch size the model's inputs fix on axis 0, if any."""
    fixed = set()
    for name in names:
        dims = types.get(name, _UNKNOWN).dims
        if dims and isinstance(dims[0], int) and dims[0] > 0:
            fixed.add(dims[0])
    if len(fixed) > 1:
        raise ValueError(f"the model's inputs fix different batch sizes: {sorted(fixed)}")
    return fixed.pop() if fixed else None


def _check_batch_size(batch_size: Any, fixed: int | None, n: int | None) -> int:
    if fixed is not None:
        if batch_size is not None and batch_size != fixed:
            raise ValueError(f"batch_size={batch_size}, but the model fixes the batch at {fixed}")
        if n is not None and n % fixed:
            raise ValueError(
                f"inputs hold {n} samples, not a multiple of the model's fixed batch size {fixed}"
            )
        return fixed
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    return int(batch_size)


def _batches(
    onnx: Any, proto: Any, inputs: Any, types: dict, batch_size: Any
) -> tuple[Iterator[tuple[str, dict[str, np.ndarray]]], int | None]:
    """The model's runs: ``(where, feed)`` pairs, and the total samples when known.

    A whole set is cut into ``batch_size`` samples (the model's fixed batch, if it has
    one); batches given as a list or an iterable run as given, each checked on its own.
    """
    names = [vi.name for vi in _graph_inputs(proto)]
    fixed = _fixed_batch(proto, types, names)
    if isinstance(inputs, Mapping):
        feed = _cast_batch(onnx, names, inputs, types, "")
        total = next(iter(feed.values())).shape[0] if feed else 0
        if not total:
            raise ValueError("inputs are empty: 0 samples along axis 0")
        size = _check_batch_size(batch_size, fixed, total)

        def cut() -> Iterator[tuple[str, dict[str, np.ndarray]]]:
            for start in range(0, total, size):
                stop = min(start + size, total)
                yield f"samples {start}..{stop - 1}", {k: a[start:stop] for k, a in feed.items()}

        return cut(), total
    if batch_size is not None:
        raise ValueError("batch_size applies to a whole set of inputs, not to given batches")
    total = None
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ValueError("inputs: no batches")
        total = sum(len(next(iter(b.values()), ())) if isinstance(b, Mapping) else 0
                    for b in inputs)  # fmt: skip

    def given() -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        k = -1
        for k, batch in enumerate(inputs):
            where = f" (batch {k})"
            if not isinstance(batch, Mapping):
                raise ValueError(
                    f"inputs{where}: a batch must be a dict of arrays, got {type(batch).__name__}"
                )
            feed = _cast_batch(onnx, names, batch, types, where)
            n = next(iter(feed.values())).shape[0] if feed else 0
            if fixed is not None and n != fixed:
                raise ValueError(
                    f"inputs{where}: {n} samples, but the model fixes the batch at {fixed}"
                )
            yield f"batch {k}", feed
        if k < 0:
            raise ValueError("inputs: no batches")

    return given(), total


@dataclasses.dataclass(frozen=True)
class Collection(Mapping):
    """What one pass collected: a mapping of tensor name to Histogram, plus what was not.

    Attributes
    ----------
    histograms : dict of str to Histogram
        Keyed by tensor name, in graph order (inputs first).
    not_activations : dict of str to str
        Tensors recognised as no activation to quantize (additive attention masks), with
        the reason; they have no histogram.
    aliases : dict of str to str
        Tensors that only re-lay out another (Reshape, Transpose, ...): their histogram is
        that tensor's, counted once.
    n_samples, n_batches : int
        Samples and runs of the model.
    traces : dict of str to Trace
        With ``convergence``: each tensor's thresholds after each batch; else empty.
    """

    histograms: dict[str, Histogram]
    not_activations: dict[str, str]
    aliases: dict[str, str]
    n_samples: int
    n_batches: int
    traces: dict[str, Trace] = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str) -> Histogram:
        return self.histograms[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.histograms)

    def __len__(self) -> int:
        return len(self.histograms)


def collect_histograms(
    model: Any,
    inputs: Any,
    *,
    tensors: Any = None,
    op_types: Any = None,
    bins: int = DEFAULT_BINS,
    signed: bool = True,
    batch_size: int | None = None,
    max_bins: int | None = None,
    progress: Callable[[Progress], Any] | None = None,
    workers: int | None = None,
    convergence: bool | Sequence[str] = False,
) -> Collection:
    """Histogram a model's float tensors over calibration inputs, with ONNX Runtime on the CPU.

    Parameters
    ----------
    model : str, os.PathLike, bytes, binary file or onnx.ModelProto
        The ONNX model (external data is read next to a path).
    inputs : dict of arrays, list or iterable of dict batches, or an ``.npz``
        A dict: one array per model input, named after it, axis 0 the sample axis, cut
        into ``batch_size`` batches. A list or any iterable of ``{input: array}`` dicts:
        batches run as given, so their shapes may differ (variable sequence length). An
        ``.npz`` path or binary file: either layout of :mod:`calib.io.inputs`. Arrays are
        cast to the model's element type within the same kind (float to float, int to
        int); inputs that are initializers (have defaults) may be left out.
    tensors : None, str (regex) or list of str
        Narrow the selection: a str is a regular expression searched in the names
        (``re.search``), a list names tensors exactly. :mod:`calib.selection` says what
        both arguments mean, for this and for :func:`calib.evaluate.evaluate` alike.
    op_types : None, str or list of str
        None (or ``"all"``): every float activation, the tensors the inputs reach (float
        graph inputs and node outputs, the model's outputs among them; tensors computed
        from initializers alone are constants and left out). Op types
        (``"MatMul,Gemm"`` or ``["MatMul", "Gemm"]``): the activations read at a data
        input of those ops, exactly what ``evaluate`` quantizes with the same op types.
        Combines with ``tensors`` (both must hold).
    bins : int
        Bins of each ``|x|`` histogram's first range (2048: TensorRT's and ModelOpt's
        default); a signed histogram has twice as many, of the same width.
    signed : bool
        True (default): ``x`` on ``[-m, m]``, symmetric, which every variant can read
        exactly (the ``|x|`` ones fold it, ``Histogram.fold``). False: the fold, ``|x|``.
    batch_size : int, optional
        Samples per run for a whole set of inputs. Default: the model's fixed batch size,
        else :data:`DEFAULT_BATCH_SIZE`.
    max_bins : int, optional
        Cap on a histogram's bins per side as its range grows (default ``8 * bins``).
    progress : callable, optional
        Called with a :class:`Progress` (samples, batches, tensors, time) once before the
        first batch and after each batch.
    workers : int, optional
        Threads that histogram one batch's tensors (numpy releases the GIL in most of the
        work). Default: the CPU count, at most 4.
    convergence : bool or sequence of str
        Record, after each batch, every tensor's amax on the histogram so far for
        :data:`CONVERGENCE_METHODS` (True) or the methods named (``"max"``,
        ``"percentile"``, ``"entropy:<variant>"``): ``Collection.traces``. It costs one
        sweep per tensor, batch and entropy method (a few ms each), so it is off by default.

    Returns
    -------
    Collection
        A mapping of tensor name to Histogram, plus the tensors left out and why.

    Raises
    ------
    ImportError
        onnx or onnxruntime is not installed (the message says what to pip install).
    ValueError
        A model that is not ONNX or that onnxruntime cannot load or run; inputs whose names,
        dtypes or shapes do not match the model, or that are empty; a selection that picks
        nothing; non-finite activations.

    Notes
    -----
    The selected tensors are added as graph outputs (typed from ONNX shape inference; a
    tensor whose type inference cannot tell is skipped unless named) and the model runs
    with graph optimisations off, so each tensor is the one the graph names. A tensor that
    only re-lays out another (``RELAYOUT_OPS``) holds the same values: it is fetched and
    counted once. One pass; only one batch of activations is alive at a time, plus the
    histograms. A tensor holding a value of magnitude 1e30 or more (an additive attention
    mask) is listed in ``not_activations`` and stops being fetched. bfloat16 tensors are
    not collected; models over protobuf's 2 GB limit are refused.
    """
    bins = _check_bins(bins, "bins", per_bin=2)  # kept signed: 2 * bins bins, checked first
    if max_bins is not None:
        _check_bins(max_bins, "max_bins", per_bin=2)
    onnx, ort = require_onnx()
    proto, label = _load_model(onnx, model)
    if isinstance(inputs, (str, os.PathLike)) or callable(getattr(inputs, "read", None)):
        inputs = read_inputs(inputs)
    types = _tensor_types(onnx, proto)
    batches, total = _batches(onnx, proto, inputs, types, batch_size)

    fed = [vi.name for vi in _graph_inputs(proto)]
    selection = select_tensors(
        proto, op_types, tensors, default=ALL, elem_types=FLOAT_TYPES, types=types
    )
    names = list(selection.names)
    if len(names) > limits.MAX_LAYERS:
        raise ValueError(
            limits.exceeds("the selection holds", len(names), "MAX_LAYERS", " tensors")
            + "; narrow it with tensors= (a regular expression) or op_types="
        )
    aliases = dict(selection.aliases)
    counted = list(dict.fromkeys(aliases.get(n, n) for n in names))
    fetch = [n for n in counted if n not in fed]

    model_outputs = {o.name for o in proto.graph.output}
    run_proto = onnx.ModelProto()
    run_proto.CopyFrom(proto)
    for n in fetch:
        if n not in model_outputs:
            elem = types.get(n, _UNKNOWN).elem_type or FLOAT_ELEM  # a re-layout's source
            run_proto.graph.output.append(onnx.helper.make_tensor_value_info(n, elem, None))
    session = None
    if fetch:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        # No arena: the fetched outputs are freed as their OrtValues go, instead of an arena
        # grown to hold a batch's every activation (measured on MiniLM: 2.9 against 3.8 GB).
        opts.enable_cpu_mem_arena = False
        try:
            blob = run_proto.SerializeToString()
        except ValueError as exc:  # protobuf's 2 GB limit
            raise ValueError(f"model: {label} is too large to collect from ({exc})") from None
        try:
            session = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception classes
            raise ValueError(f"model: onnxruntime cannot load {label}: {exc}") from None

    accs = {n: HistogramAccumulator(bins, signed, max_bins, name=n) for n in counted}
    workers = _check_workers(workers)
    methods = check_methods(convergence)
    trace_rows: dict[str, list[tuple[int, tuple[float, ...]]]] = {}
    done = n_batches = 0
    n_runs = None if total is None else _n_batches(inputs, total, batch_size, types, proto)
    t0 = time.perf_counter()

    def report() -> None:
        if progress is not None:
            live = sum(acc.not_activation is None for acc in accs.values())
            progress(Progress(done, total, n_batches, n_runs, live, time.perf_counter() - t0))

    report()
    # freed outputs stay mapped for the next batch (calib/collect/_heap.py)
    with heap_reuse(), ThreadPoolExecutor(workers) as pool:
        for where, batch in batches:
            live = [n for n in fetch if accs[n].not_activation is None]
            outs: list = []
            values: list = []
            if session is not None and live:
                feed = {k: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a))
                        for k, a in batch.items()}  # fmt: skip
                try:
                    # OrtValues read in place: session.run would copy every output once more
                    # (gigabytes a batch on a transformer, and the time to fault them in).
                    values = session.run_with_ort_values(live, feed)
                except Exception as exc:
                    raise ValueError(f"onnxruntime failed on {where}: {exc}") from None
                outs = [v.numpy() for v in values]
            work = [(accs[n], out) for n, out in zip(live, outs, strict=True)]
            work += [(accs[n], batch[n]) for n in counted if n in batch]
            # the largest first, so the threads finish together
            work.sort(key=lambda job: -np.size(job[1]))
            for f in [pool.submit(acc.add, a, where) for acc, a in work]:
                f.result()
            del outs, work, values  # the OrtValues outlive the arrays that view them
            n_batches += 1
            done += next(iter(batch.values())).shape[0] if batch else 0
            if methods:
                traced = [(n, acc) for n, acc in accs.items() if acc.not_activation is None]
                rows = pool.map(lambda job: amax_row(job[1].signed_histogram, methods), traced)
                for (n, _), row in zip(traced, rows, strict=True):
                    trace_rows.setdefault(n, []).append((done, row))
            report()
    hists = {}
    not_act = {}
    for n in names:
        acc = accs[aliases.get(n, n)]
        if acc.not_activation:
            not_act[n] = acc.not_activation
        elif acc.histogram is not None:
            hists[n] = acc.histogram
    traces = {}
    for n in hists:
        rows = trace_rows.get(aliases.get(n, n), [])
        seen = {k: r for k, r in rows}  # a tensor starts being traced at its first batch
        samples, amax = _trace_table(seen, trace_rows, methods)
        traces[n] = Trace(samples, dict(zip(methods, amax, strict=True)))
    return Collection(hists, not_act, aliases, done, n_batches, traces if methods else {})


def _trace_table(seen: dict, trace_rows: dict, methods: tuple[str, ...]):
    """Samples after every batch, and each method's amax then (0 before the tensor's first)."""
    every = sorted({k for rows in trace_rows.values() for k, _ in rows})
    samples = np.array(every, dtype=np.int64)
    amax = np.zeros((len(methods), samples.size))
    for j, k in enumerate(every):
        if k in seen:
            amax[:, j] = seen[k]
    return samples, amax


def _n_batches(inputs: Any, total: int, batch_size: Any, types: dict, proto: Any) -> int:
    """How many runs the inputs make (known whenever the total is)."""
    if isinstance(inputs, Mapping):
        names = [vi.name for vi in _graph_inputs(proto)]
        size = _check_batch_size(batch_size, _fixed_batch(proto, types, names), total)
        return -(-total // size)
    return len(inputs)


def _check_workers(workers: Any) -> int:
    if workers is None:
        return max(1, min(4, os.cpu_count() or 1))
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return int(workers)


def _calib_version() -> str:
    try:
        from importlib.metadata import version

        return version("calib")
    except Exception:
        pass
    try:
        import tomllib

        with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except Exception:
        return "unknown"


def collect_meta(model_name: str, n_samples: int, **extra: Any) -> dict[str, Any]:
    """Provenance for ``calib.save_histograms``: model file name, samples, tool, date, and
    ``extra`` (bins, signed, selection...) as given."""
    meta: dict[str, Any] = {
        "model": os.path.basename(str(model_name)),
        "n_samples": int(n_samples),
    }
    meta.update(extra)
    meta.setdefault(
        "growth", "TensorRT rule: first batch sets the range, wider batches append bins"
    )
    meta["tool"] = "calib collect"
    meta["calib_version"] = _calib_version()
    try:
        import onnxruntime

        meta["onnxruntime_version"] = onnxruntime.__version__
    except ImportError:
        pass
    meta["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return meta
