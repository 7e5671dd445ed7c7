"""The ONNX side: which tensors a deployment quantizes, and the switched fake-quantized copy."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from calib import selection as _selection
from calib.collect._model import _load_model
from calib.collect._model import require_onnx as _require_onnx
from calib.methods import max_code
from calib.selection import DEFAULT_OP_TYPES, Selection
from calib.selection import graph_inputs as _graph_inputs
from calib.selection import node_name as _node_name

__all__ = ["DEFAULT_OP_TYPES", "Selection", "select_tensors"]

_WEIGHT_SLOTS = {"MatMul": (0, 1), "Gemm": (0, 1), "Conv": (0, 1), "ConvTranspose": (0, 1)}
"""Inputs of these ops whose float32 initializers ``weights=True`` quantizes per channel."""

MIN_OPSET = 13
"""QuantizeLinear / DequantizeLinear per axis (the weights) and Clip with run-time bounds."""

MAX_EVAL_BITS = 8
"""The quantized codes live in int8, so num_bits is 2..8 here."""


_FLOAT = 1  # TensorProto.FLOAT
_INT8 = 3  # TensorProto.INT8
_BOOL = 9  # TensorProto.BOOL


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or an ImportError that says what to pip install."""
    return _require_onnx("evaluating a model")


def load_model(model: Any) -> tuple[Any, str]:
    """(ModelProto, label) from a path, bytes, a binary file or a ModelProto (external data
    read next to a path), as :func:`calib.collect.collect_histograms` reads it."""
    onnx, _ = require_onnx()
    return _load_model(onnx, model)


def select_tensors(proto: Any, op_types: Any = None, tensors: Any = None) -> Selection:
    """The activation tensors an evaluation quantizes: :func:`calib.selection.select_tensors`
    with its evaluation defaults (the data inputs of :data:`DEFAULT_OP_TYPES`, float32).

    An activation is a graph input or a node output that the fed inputs reach: an
    initializer, or a tensor computed from initializers alone (a transposed weight), is a
    constant (a weight), not an activation. Only float32 activations are quantized; the
    others are listed in ``skipped``.
    """
    require_onnx()
    chosen = _selection.select_tensors(proto, op_types, tensors)
    unread = {n: "no node reads it: nothing to quantize" for n, r in chosen.readers.items()
              if not r}  # fmt: skip
    return chosen.without(unread)  # a model output, under op_types="all"


# -- the switched copy ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TensorSwitch:
    """The run-time inputs that quantize one tensor of a switched model."""

    name: str  # the tensor
    on: str  # bool scalar: quantize it in this run
    scale: str  # float scalar: amax / qmax
    lo: str  # float scalar: -qmax * scale, the clip
    hi: str  # float scalar: qmax * scale


@dataclasses.dataclass(frozen=True)
class SwitchedModel:
    """A fake-quantized copy of a model whose quantizers are switched and set at run time.

    Attributes
    ----------
    proto : onnx.ModelProto
        The copy.
    switches : tuple of TensorSwitch
        One per quantized activation, in :attr:`Selection.names` order.
    weights_on : str or None
        The bool scalar input that switches the weights to their per-channel int8 copies
        (None: weights are not quantized).
    weights : tuple of str
        The weight initializers that have an int8 copy.
    inputs : tuple of str
        The model's own inputs (what the evaluation data feeds).
    outputs : tuple of str
        The model's float outputs, compared between runs.
    num_bits : int
    """

    proto: Any
    switches: tuple[TensorSwitch, ...]
    weights_on: str | None
    weights: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    num_bits: int


def check_eval_bits(num_bits: Any) -> int:
    """``num_bits`` for a fake-quantized model: an integer in 2..8 (the codes are int8)."""
    if isinstance(num_bits, bool) or not isinstance(num_bits, (int, np.integer)):
        raise ValueError(f"num_bits must be an integer in 2..{MAX_EVAL_BITS}, got {num_bits!r}")
    if not 2 <= num_bits <= MAX_EVAL_BITS:
        raise ValueError(
            f"num_bits must be an integer in 2..{MAX_EVAL_BITS} (the quantized model holds "
            f"int8 codes), got {int(num_bits)}"
        )
    return int(num_bits)


def _opset(proto: Any) -> int:
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 0


def _unique_prefix(proto: Any, base: str) -> str:
    """A name prefix no tensor, node or input of the model starts with."""
    g = proto.graph
    names = {*(i.name for i in g.input), *(t.name for t in g.initializer)}
    names |= {o for n in g.node for o in n.output} | {n.name for n in g.node}
    prefix = base
    while any(n.startswith(prefix) for n in names):
        prefix += "_"
    return prefix


def weight_axis(op_type: str, slot: int, rank: int, attrs: Mapping[str, int]) -> int | None:
    """The output-channel axis of a weight read at input ``slot`` of an op (None: one
    scale for the whole tensor, a 1-D MatMul operand)."""
    if op_type in ("Conv", "ConvTranspose"):
        return (1 if op_type == "ConvTranspose" else 0) if slot == 1 else None
    if op_type == "Gemm":
        trans = attrs.get("transB" if slot == 1 else "transA", 0)
        return (0 if trans else 1) if slot == 1 else (1 if trans else 0)
    if op_type == "MatMul" and rank >= 2:
        return rank - 1 if slot == 1 else rank - 2
    return None


def quantize_weight(
    w: np.ndarray, axis: int | None, num_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric max quantization of a weight: ``(codes int8, scale float32)``.

    ``scale[c] = max|w[c]| / qmax`` (1 for an all-zero channel, whose codes are 0) and
    ``codes = clip(round(w / scale), -qmax, qmax)``, rounding half to even as ONNX's
    QuantizeLinear does; ``codes * scale`` is what DequantizeLinear gives back.
    """
    qmax = max_code(num_bits)
    w = np.asarray(w, dtype=np.float32)
    if axis is None:
        amax = np.abs(w).max(initial=0.0).reshape(1)
        shape = (1,) * w.ndim
    else:
        other = tuple(a for a in range(w.ndim) if a != axis)
        amax = np.abs(w).max(axis=other, initial=0.0)
        shape = tuple(-1 if a == axis else 1 for a in range(w.ndim))
    scale = np.where(amax > 0, amax / np.float32(qmax), np.float32(1.0)).astype(np.float32)
    codes = np.clip(np.round(w / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
    return codes, scale


def _switch(helper: Any, cond: str, out: str, quantized: list, source: str) -> Any:
    """``If(cond)``: the last output of the ``quantized`` nodes, else ``source`` as it is."""
    then = helper.make_graph(
        quantized, f"{out}_quantized", [],
        [helper.make_tensor_value_info(quantized[-1].output[0], _FLOAT, None)],
    )  # fmt: skip
    other = helper.make_graph(
        [helper.make_node("Identity", [source], [f"{out}_float"])], f"{out}_float", [],
        [helper.make_tensor_value_info(f"{out}_float", _FLOAT, None)],
    )  # fmt: skip
    return helper.make_node(
        "If", [cond], [out], name=f"{out}_switch", then_branch=then, else_branch=other
    )


def switched_model(
    proto: Any, selection: Selection, num_bits: int = 8, weights: bool = False
) -> SwitchedModel:
    """A copy of ``proto`` with a run-time switch before every selected reader.

    Each selected tensor ``x`` gets an ``If`` on a bool scalar input ``on``: its then-branch
    is ``DequantizeLinear(QuantizeLinear(Clip(x, lo, hi), scale, 0), scale, 0)`` (int8,
    zero point 0), its else-branch ``x`` itself; the readers of ``x`` among the selected
    ops read the ``If``'s output, every other reader the float ``x``. ``scale``, ``lo`` and
    ``hi`` are float scalar inputs too, so one session runs any calibration with any set of
    tensors quantized, the float model included (every switch off). With ``weights``, each
    float32 weight initializer of a selected reader gets an int8 per-channel copy
    (:func:`quantize_weight`) behind one more ``If`` on the ``weights_on`` input.

    Raises ValueError for a model below opset :data:`MIN_OPSET`.
    """
    onnx, _ = require_onnx()
    helper = onnx.helper
    num_bits = check_eval_bits(num_bits)
    opset = _opset(proto)
    if opset < MIN_OPSET:
        raise ValueError(
            f"model: opset {opset}; evaluating needs opset {MIN_OPSET} or newer (Clip with "
            "run-time bounds, per-axis DequantizeLinear): onnx.version_converter can convert it"
        )
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    prefix = _unique_prefix(out, "calib_q")
    zero = f"{prefix}zero_point"
    g.initializer.append(helper.make_tensor(zero, _INT8, [], [0]))
    nodes = list(g.node)
    reader_nodes = {r for rs in selection.readers.values() for r in rs}
    readers = [k for k, node in enumerate(nodes) if _node_name(node, k) in reader_nodes]
    inserts: dict[int, list] = {}  # node index -> the If nodes to place before it

    switches = []
    replaced: dict[str, str] = {}
    for i, name in enumerate(selection.names):
        p = f"{prefix}{i}"
        sw = TensorSwitch(name=name, on=f"{p}_on", scale=f"{p}_scale", lo=f"{p}_lo", hi=f"{p}_hi")
        switches.append(sw)
        g.input.append(helper.make_tensor_value_info(sw.on, _BOOL, []))
        for s in (sw.scale, sw.lo, sw.hi):
            g.input.append(helper.make_tensor_value_info(s, _FLOAT, []))
        qdq = [
            helper.make_node("Clip", [name, sw.lo, sw.hi], [f"{p}_clip"]),
            helper.make_node("QuantizeLinear", [f"{p}_clip", sw.scale, zero], [f"{p}_q"]),
            helper.make_node("DequantizeLinear", [f"{p}_q", sw.scale, zero], [f"{p}_dq"]),
        ]
        first = min(k for k in readers if name in nodes[k].input)
        inserts.setdefault(first, []).append(_switch(helper, sw.on, p, qdq, name))
        replaced[name] = p

    weights_on = None
    weight_names: list[str] = []
    if weights:
        weights_on = f"{prefix}weights_on"
        g.input.append(helper.make_tensor_value_info(weights_on, _BOOL, []))
        inits = {t.name: t for t in g.initializer}
        copies: dict[tuple[str, int | None], str] = {}
        for k in readers:
            node = nodes[k]
            attrs = {a.name: a.i for a in node.attribute if a.type == 2}  # INT
            for slot in _WEIGHT_SLOTS.get(node.op_type, ()):
                t = inits.get(node.input[slot]) if slot < len(node.input) else None
                if t is None or t.data_type != _FLOAT:
                    continue
                w = onnx.numpy_helper.to_array(t)
                axis = weight_axis(node.op_type, slot, w.ndim, attrs)
                if (t.name, axis) not in copies:
                    p = f"{prefix}w{len(copies)}"
                    codes, scale = quantize_weight(w, axis, num_bits)
                    g.initializer.append(onnx.numpy_helper.from_array(codes, f"{p}_q"))
                    g.initializer.append(
                        onnx.numpy_helper.from_array(scale if axis is not None else scale[0],
                                                     f"{p}_scale")
                    )  # fmt: skip
                    kw = {"axis": axis} if axis is not None else {}
                    dq = [helper.make_node("DequantizeLinear", [f"{p}_q", f"{p}_scale"],
                                           [f"{p}_dq"], **kw)]  # fmt: skip
                    inserts.setdefault(0, []).insert(0, _switch(helper, weights_on, p, dq, t.name))
                    copies[(t.name, axis)] = p
                    weight_names.append(t.name)
                node.input[slot] = copies[(t.name, axis)]

    for k in readers:  # the selected readers read the switched copies
        node = nodes[k]
        for slot, x in enumerate(node.input):
            if x in replaced and _node_name(node, k) in selection.readers[x]:
                node.input[slot] = replaced[x]
    del g.node[:]
    for k, node in enumerate(nodes):
        g.node.extend(inserts.get(k, []))
        g.node.append(node)

    outputs = tuple(
        o.name
        for o in proto.graph.output
        if o.type.tensor_type.elem_type in (1, 10, 11)  # float, float16, double
    )
    if not outputs:
        raise ValueError("model: no float output to compare")
    return SwitchedModel(
        proto=out,
        switches=tuple(switches),
        weights_on=weights_on,
        weights=tuple(weight_names),
        inputs=tuple(vi.name for vi in _graph_inputs(proto)),
        outputs=outputs,
        num_bits=num_bits,
    )


def clip_feeds(
    switches: Sequence[TensorSwitch], num_bits: int, amax: Sequence[float], on: Sequence[bool]
) -> dict[str, np.ndarray]:
    """The switch inputs of one run: tensor ``i`` quantized at ``amax[i]`` when ``on[i]``.

    ``scale = amax / qmax`` and the clip ``[-qmax * scale, qmax * scale]``, in float32, so
    the codes stay in ``[-qmax, qmax]`` (symmetric: -128 never appears at 8 bits). An
    ``amax`` of 0 (a dead tensor, or a method that clips everything) gives the clip
    ``[0, 0]``: the tensor becomes 0. A switch that is off is fed harmless values.
    """
    qmax = np.float32(max_code(num_bits))
    feeds: dict[str, np.ndarray] = {}
    for sw, a, flag in zip(switches, amax, on, strict=True):
        live = bool(flag) and np.isfinite(a) and a >= 0
        scale = np.float32(a) / qmax if live and a > 0 else np.float32(1.0)
        bound = qmax * scale if live and a > 0 else np.float32(0.0)
        feeds[sw.on] = np.array(live)
        feeds[sw.scale] = np.array(scale, dtype=np.float32)
        feeds[sw.lo] = np.array(-bound, dtype=np.float32)
        feeds[sw.hi] = np.array(bound, dtype=np.float32)
    return feeds
