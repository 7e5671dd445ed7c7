"""The ONNX side: load a model, pick its activation tensors, run the batches, collect."""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from calib.collect._accumulator import HistogramAccumulator
from calib.histogram import DEFAULT_BINS, Histogram, _check_bins

DEFAULT_BATCH_SIZE = 32
"""Samples per onnxruntime run when the model's batch axis is dynamic."""

FLOAT_TYPES = {1: "float", 10: "float16", 11: "double"}
"""ONNX element types collected (``TensorProto.FLOAT``, ``FLOAT16``, ``DOUBLE``)."""

INSTALL_HINT = "pip install onnx onnxruntime"

Progress = Callable[[int, int], Any]


# -- the ONNX side ----------------------------------------------------------------------------


def _require() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"collecting histograms from an ONNX model needs onnx and onnxruntime "
            f"({exc.name or exc} is missing): {INSTALL_HINT}"
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
            except (OSError, ValueError) as exc:
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


@dataclasses.dataclass(frozen=True)
class _TensorType:
    """A tensor's ONNX element type and dims (an int, a symbolic name or None per axis)."""

    elem_type: int = 0  # TensorProto.UNDEFINED: not known
    dims: list | None = None  # None: rank unknown


_UNKNOWN = _TensorType()


def _tensor_types(onnx: Any, proto: Any) -> dict[str, _TensorType]:
    """name -> its type and dims, for every typed tensor, after shape inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:  # a custom op or a model too odd to infer: use what the model says
        inferred = proto
    out: dict[str, _TensorType] = {}
    g = inferred.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        t = vi.type
        if t.WhichOneof("value") != "tensor_type":
            continue
        dims = None
        if t.tensor_type.HasField("shape"):
            dims = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in t.tensor_type.shape.dim
            ]
        out[vi.name] = _TensorType(t.tensor_type.elem_type, dims)
    return out


def _graph_inputs(proto: Any) -> list:
    """The inputs that need feeding: graph inputs that are not initializers."""
    init = {t.name for t in proto.graph.initializer}
    return [vi for vi in proto.graph.input if vi.name not in init]


def _dynamic_tensors(proto: Any, fed: set[str]) -> dict[str, str]:
    """Node outputs that depend on the fed inputs, name -> producing op type, in graph order.

    Tensors computed from initializers alone (a transposed weight, shape arithmetic) are
    constants, not activations. Nodes with subgraphs (If, Loop, Scan) count as dynamic.
    """
    dynamic = set(fed)
    out: dict[str, str] = {}
    for node in proto.graph.node:
        has_subgraph = any(a.type in (5, 10) for a in node.attribute)  # GRAPH, GRAPHS
        if has_subgraph or any(i in dynamic for i in node.input if i):
            for o in node.output:
                if o:
                    dynamic.add(o)
                    out[o] = node.op_type
    return out


def _select(
    candidates: dict[str, str | None],
    types: dict[str, _TensorType],
    all_ops: set[str],
    tensors: Any,
    op_types: Any,
) -> list[str]:
    """The tensor names to histogram (see collect_histograms)."""
    if isinstance(op_types, str):
        op_types = [s.strip() for s in op_types.split(",") if s.strip()]
    if op_types is not None:
        op_types = list(op_types)
        if not op_types or not all(isinstance(o, str) for o in op_types):
            raise ValueError(
                f"op_types must be a non-empty list of op type names, got {op_types!r}"
            )
        unknown = [o for o in op_types if o not in all_ops]
        if unknown:
            raise ValueError(
                f"op_types: {', '.join(map(repr, unknown))} not in the model "
                f"(its op types: {', '.join(sorted(all_ops))})"
            )
    floats = [n for n in candidates if types.get(n, _UNKNOWN).elem_type in FLOAT_TYPES]
    if tensors is None or isinstance(tensors, (str, re.Pattern)):
        chosen = floats
        if tensors is not None:
            try:
                pattern = re.compile(tensors)
            except re.error as exc:
                raise ValueError(
                    f"tensors: {tensors!r} is not a regular expression ({exc})"
                ) from None
            chosen = [n for n in chosen if pattern.search(n)]
    elif isinstance(tensors, Iterable):
        chosen = list(tensors)
        if not chosen or not all(isinstance(n, str) for n in chosen):
            raise ValueError(
                f"tensors must be a regex or a non-empty list of names, got {tensors!r}"
            )
        unknown = [n for n in chosen if n not in candidates]
        if unknown:
            raise ValueError(
                f"tensors: {', '.join(map(repr, unknown[:5]))} not an input or node output "
                "of the model (or computed from initializers alone)"
            )
        not_float = [n for n in chosen if types.get(n, _UNKNOWN).elem_type not in FLOAT_TYPES]
        if not_float:
            raise ValueError(
                f"tensors: {', '.join(map(repr, not_float[:5]))} not float tensors "
                "(or of a type shape inference could not tell)"
            )
        chosen = list(dict.fromkeys(chosen))
    else:
        raise ValueError(f"tensors must be None, a regex or a list of names, got {tensors!r}")
    if op_types is not None:
        chosen = [n for n in chosen if candidates[n] in op_types]
    if not chosen:
        raise ValueError(
            f"no float tensor selected (tensors={tensors!r}, op_types={op_types!r}; "
            f"the model has {len(floats)} float tensors)"
        )
    return chosen


def load_inputs(inputs: Any) -> dict[str, np.ndarray]:
    """Calibration inputs: a dict of arrays or an ``.npz`` path / binary file (no pickle).

    Axis 0 of every array is the sample axis. Raises ``ValueError`` for anything else,
    empty inputs, or arrays whose sample counts differ.
    """
    if isinstance(inputs, Mapping):
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        what = "inputs"
    elif isinstance(inputs, (str, os.PathLike)) or callable(getattr(inputs, "read", None)):
        what = repr(os.fspath(inputs)) if isinstance(inputs, (str, os.PathLike)) else "inputs"
        try:
            with np.load(inputs, allow_pickle=False) as z:
                if not isinstance(z, np.lib.npyio.NpzFile):
                    raise ValueError(f"inputs: {what} is a .npy, not an .npz of named arrays")
                arrays = {k: z[k] for k in z.files}
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise ValueError(
                    f"inputs: {what} holds object arrays (refused: no pickle)"
                ) from None
            raise ValueError(f"inputs: {what} is not a readable .npz ({exc})") from None
        except (OSError, EOFError) as exc:
            raise ValueError(f"inputs: {what} is not a readable .npz ({exc})") from None
    else:
        raise ValueError(
            f"inputs must be a dict of arrays or an .npz path, got {type(inputs).__name__}"
        )
    if not arrays:
        raise ValueError(f"inputs: {what} holds no arrays")
    for k, a in arrays.items():
        if a.dtype == object:
            raise ValueError(f"inputs[{k!r}] is an object array (refused: no pickle)")
        if a.ndim == 0:
            raise ValueError(f"inputs[{k!r}] is a scalar; axis 0 must be the sample axis")
    sizes = {k: a.shape[0] for k, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs: arrays hold different numbers of samples (axis 0): {sizes}")
    if not next(iter(sizes.values())):
        raise ValueError("inputs are empty: 0 samples along axis 0")
    return arrays


def _np_dtype(onnx: Any, elem_type: int) -> np.dtype:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def _check_feed(
    onnx: Any,
    proto: Any,
    arrays: dict[str, np.ndarray],
    types: dict[str, _TensorType],
    batch_size: int | None,
) -> tuple[dict[str, np.ndarray], int]:
    """Inputs cast to the model's types and checked against its shapes; the batch size."""
    graph_inputs = _graph_inputs(proto)
    names = [vi.name for vi in graph_inputs]
    extra = [k for k in arrays if k not in names]
    if extra:
        raise ValueError(
            f"inputs: {', '.join(map(repr, extra))} not an input of the model "
            f"(its inputs: {', '.join(map(repr, names))})"
        )
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"inputs: the model's input(s) {', '.join(map(repr, missing))} missing")
    fixed_batch = set()
    feed = {}
    for name in names:
        a = arrays[name]
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
                raise ValueError(f"inputs[{name!r}] has dtype {a.dtype}, the model wants {want}")
            a = a.astype(want, copy=False)
        if dims is not None:
            shown = "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"
            if a.ndim != len(dims):
                raise ValueError(
                    f"inputs[{name!r}] has shape {a.shape}, the model wants {shown} "
                    "(axis 0 is the sample axis)"
                )
            for axis, d in enumerate(dims):
                if axis and isinstance(d, int) and d > 0 and a.shape[axis] != d:
                    raise ValueError(
                        f"inputs[{name!r}] has shape {a.shape}, the model wants {shown}: "
                        f"axis {axis} is {a.shape[axis]}, not {d}"
                    )
            if dims and isinstance(dims[0], int) and dims[0] > 0:
                fixed_batch.add(dims[0])
        feed[name] = a
    n = next(iter(feed.values())).shape[0]
    if len(fixed_batch) > 1:
        raise ValueError(f"the model's inputs fix different batch sizes: {sorted(fixed_batch)}")
    if fixed_batch:
        fixed = fixed_batch.pop()
        if batch_size is not None and batch_size != fixed:
            raise ValueError(f"batch_size={batch_size}, but the model fixes the batch at {fixed}")
        if n % fixed:
            raise ValueError(
                f"inputs hold {n} samples, not a multiple of the model's fixed batch size {fixed}"
            )
        batch_size = fixed
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    return feed, int(batch_size)


def collect_histograms(
    model: Any,
    inputs: Any,
    *,
    tensors: Any = None,
    op_types: Any = None,
    bins: int = DEFAULT_BINS,
    signed: bool = False,
    batch_size: int | None = None,
    max_bins: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Histogram]:
    """Histogram a model's float tensors over calibration inputs, with ONNX Runtime on the CPU.

    Parameters
    ----------
    model : str, os.PathLike, bytes, binary file or onnx.ModelProto
        The ONNX model (external data is read next to a path).
    inputs : dict of str to array, or an ``.npz`` path or binary file
        One array per model input, named after it; axis 0 is the sample axis. Inputs that
        are initializers (have defaults) may be left out. Arrays are cast to the model's
        element type within the same kind (float to float, int to int).
    tensors : None, str (regex) or list of str
        None: every float tensor the inputs reach (float graph inputs and node outputs,
        the model's outputs among them; tensors computed from initializers alone are
        constants and left out). A str is a regular expression searched in the names
        (``re.search``). A list names tensors exactly.
    op_types : None, str or list of str
        Keep only outputs of these op types (``"MatMul,Gemm"`` or ``["MatMul", "Gemm"]``);
        graph inputs are then left out. Combines with ``tensors`` (both must hold).
    bins : int
        Bins of each histogram's first range (2048: TensorRT's and ModelOpt's default).
    signed : bool
        False: ``|x|`` on ``[0, max|x|]``; True: ``x`` on ``[-m, m]``.
    batch_size : int, optional
        Samples per run. Default: the model's fixed batch size, else
        :data:`DEFAULT_BATCH_SIZE`.
    max_bins : int, optional
        Cap on a histogram's bins as its range grows (default ``8 * bins``).
    progress : callable, optional
        Called as ``progress(done, total)`` in samples, once before the first batch and
        after each batch.

    Returns
    -------
    dict of str to Histogram
        Keyed by tensor name, in graph order (inputs first). Tensors that never held a
        value (empty in every batch) are left out.

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
    with graph optimisations off, so each tensor is the one the graph names. One pass;
    only one batch of activations is alive at a time, plus the histograms. See the module
    doc for the growth rule and non-finite values. bfloat16 tensors are not collected;
    models over protobuf's 2 GB limit are refused.
    """
    onnx, ort = _require()
    proto, label = _load_model(onnx, model)
    arrays = load_inputs(inputs)
    bins = _check_bins(bins)
    types = _tensor_types(onnx, proto)
    feed, batch_size = _check_feed(onnx, proto, arrays, types, batch_size)

    fed = [vi.name for vi in _graph_inputs(proto)]
    candidates: dict[str, str | None] = dict.fromkeys(fed)
    candidates.update(_dynamic_tensors(proto, set(fed)))
    all_ops = {node.op_type for node in proto.graph.node}
    names = _select(candidates, types, all_ops, tensors, op_types)
    fetch = [n for n in names if n not in feed]

    model_outputs = {o.name for o in proto.graph.output}
    run_proto = onnx.ModelProto()
    run_proto.CopyFrom(proto)
    for n in fetch:
        if n not in model_outputs:
            run_proto.graph.output.append(
                onnx.helper.make_tensor_value_info(n, types[n].elem_type, None)
            )
    session = None
    if fetch:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        try:
            blob = run_proto.SerializeToString()
        except ValueError as exc:  # protobuf's 2 GB limit
            raise ValueError(f"model: {label} is too large to collect from ({exc})") from None
        try:
            session = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception classes
            raise ValueError(f"model: onnxruntime cannot load {label}: {exc}") from None

    accs = {n: HistogramAccumulator(bins, signed, max_bins, name=n) for n in names}
    total = next(iter(feed.values())).shape[0]
    if progress is not None:
        progress(0, total)
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        where = f"samples {start}..{stop - 1}"
        batch = {k: a[start:stop] for k, a in feed.items()}
        if session is not None:
            try:
                outs = session.run(fetch, batch)
            except Exception as exc:
                raise ValueError(f"onnxruntime failed on {where}: {exc}") from None
            for n, out in zip(fetch, outs, strict=True):
                accs[n].add(out, where)
            del outs
        for n in names:
            if n in batch:
                accs[n].add(batch[n], where)
        if progress is not None:
            progress(stop, total)
    return {n: acc.histogram for n, acc in accs.items() if acc.histogram is not None}


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
