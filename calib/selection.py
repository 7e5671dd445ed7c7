"""Which tensors of an ONNX model are activations, and which of them a command calibrates.

One rule for :func:`calib.collect.collect_histograms` and :func:`calib.evaluate.evaluate`
(and the app, which calls both), so that a collection made with any flags serves an
evaluation made with the same flags:

- An **activation** is a graph input that is fed (not an initializer) or a node output
  the fed inputs reach. Initializers and tensors computed from initializers alone (a
  transposed weight, shape arithmetic) are constants: weights, not activations.
- **The activation tensors of op types X** are the activations read at a *data input* of
  a node of a type in X (:func:`data_inputs`): both operands of MatMul, the input and
  (when it is computed) the weight of Conv and Gemm, the first input of Reshape, Gather,
  Slice, Clip, Resize and the like. Biases, shapes, indices, axes and bounds are not data.
- **The default**: :func:`calib.evaluate.evaluate` quantizes the activation tensors of
  :data:`DEFAULT_OP_TYPES` (MatMul, Gemm, Conv: what a QDQ deployment quantizes);
  ``collect`` histograms every float activation (``op_types=ALL``), a superset that serves
  every evaluation, whatever its op types.
- A name pattern (``tensors``, a regular expression searched in the names, or a list of
  exact names) narrows either set, the same way for both (:func:`pick_by_name`).
- A tensor that only re-lays out another (``RELAYOUT_OPS``: Reshape, Transpose, ...) holds
  the same values: :attr:`Selection.aliases` maps it to the tensor it views, so the
  collector counts it once and both files and evaluations name it as the model does.

Additive attention masks (values of float32's minimum) cannot be told from the graph
alone; the collector recognises them from their values and lists them
(``Collection.not_activations``, the histogram file's ``meta["not_activations"]``), and an
evaluation leaves a tensor so listed in float (:meth:`Selection.without`).

numpy and the standard library at import; ``onnx`` is imported when a graph is read.

    >>> data_inputs("MatMul", 2), data_inputs("Reshape", 2), data_inputs("Gemm", 3)
    ((0, 1), (0,), (0, 1))
    >>> data_inputs("Add", 2)  # an op without a rule: every input is data
    (0, 1)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ALL",
    "DATA_INPUTS",
    "DEFAULT_OP_TYPES",
    "FLOAT32",
    "FLOAT_TYPES",
    "RELAYOUT_OPS",
    "Selection",
    "data_inputs",
    "parse_op_types",
    "pick_by_name",
    "select_tensors",
]

DEFAULT_OP_TYPES = ("MatMul", "Gemm", "Conv")
"""The ops whose activation inputs an evaluation quantizes by default: ONNX Runtime's
``quantize_static`` op types that carry the compute of a transformer or a CNN."""

ALL = "all"
"""``op_types=ALL``: every activation of the model (the collector's default), read or not."""

FLOAT_TYPES = {1: "float", 10: "float16", 11: "double"}
"""ONNX element types collected (``TensorProto.FLOAT``, ``FLOAT16``, ``DOUBLE``)."""

FLOAT32 = {1: "float"}
"""The element type a fake-quantized copy quantizes (its QuantizeLinear takes float32)."""

RELAYOUT_OPS = ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity")
"""Ops whose first output holds the values of their first input, only laid out anew."""

DATA_INPUTS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("MatMul", "Gemm", "Conv", "ConvTranspose"), (0, 1)),  # not the bias
    **dict.fromkeys(
        (
            *RELAYOUT_OPS, "Gather", "GatherElements", "GatherND", "Slice", "Expand", "Tile",
            "Pad", "Clip", "Resize", "Upsample", "Split", "Dropout", "TopK", "CumSum",
            "LayerNormalization", "BatchNormalization", "InstanceNormalization",
            "GroupNormalization", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
            "ReduceProd", "ReduceL2", "ArgMax", "ArgMin", "DepthToSpace", "SpaceToDepth",
        ),
        (0,),
    ),  # the data; shapes, indices, axes, bounds, scales and biases are not
    "Where": (1, 2),  # not the condition
}  # fmt: skip
"""The inputs of these ops that carry data (by position); any other op: all its inputs."""


def data_inputs(op_type: str, n_inputs: int) -> tuple[int, ...]:
    """The positions of the data inputs of a node of ``op_type`` with ``n_inputs`` inputs."""
    slots = DATA_INPUTS.get(op_type)
    if slots is None:
        return tuple(range(n_inputs))
    return tuple(i for i in slots if i < n_inputs)


def parse_op_types(op_types: Any, all_ops: Iterable[str] | None = None) -> tuple[str, ...] | str:
    """``op_types`` as given by a user: ``"MatMul,Gemm"``, a list of names, or :data:`ALL`.

    With ``all_ops`` (the model's op types), at least one must be in the model; the others
    are allowed (a default that names Conv serves a transformer).
    """
    if isinstance(op_types, str):
        if op_types.strip() == ALL:
            return ALL
        op_types = [s.strip() for s in op_types.split(",") if s.strip()]
    if isinstance(op_types, Iterable):
        op_types = list(op_types)
    if not op_types or not all(isinstance(o, str) and o for o in op_types):
        raise ValueError(f"op_types must be a non-empty list of op type names, got {op_types!r}")
    if all_ops is not None:
        present = set(all_ops)
        if not any(o in present for o in op_types):
            raise ValueError(
                f"op_types: none of {', '.join(map(repr, op_types))} is in the model "
                f"(its op types: {', '.join(sorted(present))})"
            )
    return tuple(dict.fromkeys(op_types))


def pick_by_name(names: Sequence[str], tensors: Any, known: Iterable[str], what: str) -> list[str]:
    """What a ``tensors=`` argument keeps, for the collector and ``calib.evaluate`` alike.

    None keeps ``names``; a regular expression (a string or a compiled pattern) keeps those
    of ``names`` it finds; a non-empty list of names keeps those names, once each, in its
    own order, and each must be in ``known`` (a container; a ``ValueError`` says it is
    not ``what``). Anything else is a ``ValueError``.
    """
    if tensors is None:
        return list(names)
    if isinstance(tensors, (str, re.Pattern)):
        try:
            rx = re.compile(tensors)
        except re.error as exc:
            raise ValueError(f"tensors: {tensors!r} is not a regular expression ({exc})") from None
        return [n for n in names if rx.search(n)]
    if isinstance(tensors, Iterable):
        wanted = list(tensors)
        if not wanted or not all(isinstance(n, str) for n in wanted):
            raise ValueError(
                f"tensors must be a regex or a non-empty list of names, got {wanted!r}"
            )
        missing = [n for n in wanted if n not in known]
        if missing:
            raise ValueError(f"tensors: {', '.join(map(repr, missing[:5]))} not {what}")
        return list(dict.fromkeys(wanted))
    raise ValueError(f"tensors must be None, a regex or a list of names, got {tensors!r}")


# -- the graph ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TensorType:
    """A tensor's ONNX element type and dims (an int, a symbolic name or None per axis)."""

    elem_type: int = 0  # TensorProto.UNDEFINED: not known
    dims: list | None = None  # None: rank unknown


UNKNOWN = TensorType()


def tensor_types(proto: Any) -> dict[str, TensorType]:
    """name -> its type and dims, for every typed tensor, after shape inference."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:  # a custom op or a model too odd to infer: use what the model says
        inferred = proto
    out: dict[str, TensorType] = {}
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
        out[vi.name] = TensorType(t.tensor_type.elem_type, dims)
    return out


def graph_inputs(proto: Any) -> list:
    """The inputs that need feeding: graph inputs that are not initializers."""
    init = {t.name for t in proto.graph.initializer}
    return [vi for vi in proto.graph.input if vi.name not in init]


def dynamic_tensors(proto: Any, fed: set[str]) -> dict[str, str]:
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


def activations(proto: Any) -> dict[str, str | None]:
    """Every activation, name -> producing op type (None for a fed graph input), inputs
    first, then in graph order."""
    fed = [vi.name for vi in graph_inputs(proto)]
    out: dict[str, str | None] = dict.fromkeys(fed)
    out.update(dynamic_tensors(proto, set(fed)))
    return out


def relayout_sources(proto: Any, dynamic: Iterable[str]) -> dict[str, str]:
    """Tensor -> the tensor whose values it holds in another layout (through chains of
    RELAYOUT_OPS), for the outputs of those ops whose data input is an activation."""
    dynamic = set(dynamic)
    root: dict[str, str] = {}
    for node in proto.graph.node:
        if node.op_type in RELAYOUT_OPS and node.input and node.input[0] in dynamic:
            src = node.input[0]
            for out in node.output[:1]:
                if out:
                    root[out] = root.get(src, src)
    return root


def node_name(node: Any, k: int) -> str:
    """A node's name, or ``<op type>#<index>`` when it has none."""
    return node.name or f"{node.op_type}#{k}"


@dataclasses.dataclass(frozen=True)
class Selection:
    """The activation tensors a command calibrates, and how they were chosen.

    Attributes
    ----------
    names : tuple of str
        The selected tensors, in the model's order however they were given: inputs first,
        then by producer for :data:`ALL`; by first reader for op types.
    op_types : tuple of str, or ALL
        The ops whose data inputs were considered, or every activation.
    pattern : str or None
        The regular expression the names had to match (``re.search``), if any.
    readers : dict of str to tuple of str
        Tensor -> the names of the nodes (of ``op_types``) that read it at a data input
        (every reader's name for ALL; empty for a tensor no node reads, a model output).
    skipped : dict of str to str
        Activations the rule would take that are not selected, and why (not of a selected
        element type; listed as no activation by a collection).
    aliases : dict of str to str
        Selected tensors that only re-lay out another (Reshape, Transpose, ...) -> the
        tensor whose values they hold (through chains of them).
    """

    names: tuple[str, ...]
    op_types: tuple[str, ...] | str
    pattern: str | None
    readers: dict[str, tuple[str, ...]]
    skipped: dict[str, str]
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        """One line for a report: how many tensors, which ops, which pattern."""
        where = f", names matching {self.pattern!r}" if self.pattern else ""
        if self.op_types == ALL:
            return f"{len(self.names)} activation tensors: every float activation{where}"
        return (
            f"{len(self.names)} activation tensors: the non-constant data inputs of "
            f"{', '.join(self.op_types)}{where}"
        )

    def without(self, left_out: dict[str, str]) -> Selection:
        """This selection less the tensors of ``left_out`` (name -> why), which join
        :attr:`skipped`; a ValueError when nothing is left."""
        drop = {n: why for n, why in left_out.items() if n in self.names}
        if not drop:
            return self
        names = tuple(n for n in self.names if n not in drop)
        if not names:
            raise ValueError(
                f"no tensor left to quantize: every selected tensor is left out "
                f"({', '.join(f'{n!r}: {w}' for n, w in list(drop.items())[:3])})"
            )
        return dataclasses.replace(
            self,
            names=names,
            readers={n: r for n, r in self.readers.items() if n not in drop},
            skipped={**self.skipped, **drop},
            aliases={n: a for n, a in self.aliases.items() if n not in drop},
        )


def select_tensors(
    proto: Any,
    op_types: Any = None,
    tensors: Any = None,
    *,
    default: tuple[str, ...] | str = DEFAULT_OP_TYPES,
    elem_types: dict[int, str] = FLOAT32,
    types: dict[str, TensorType] | None = None,
) -> Selection:
    """The activation tensors of ``op_types`` in ``proto``, narrowed by ``tensors``.

    Parameters
    ----------
    proto : onnx.ModelProto
    op_types : None, str or list of str
        The ops whose data inputs are selected (``"MatMul,Gemm"``, a list, or
        :data:`ALL`: every activation); None: ``default``. Op types the model lacks are
        allowed as long as one is present.
    tensors : None, str (regex) or list of str
        Keep only these: a regular expression searched in the names, or exact names (each
        must be one the rule takes, or a ValueError says so).
    default : tuple of str or ALL
        What None means: :data:`DEFAULT_OP_TYPES` for an evaluation, :data:`ALL` for a
        collection.
    elem_types : dict of int to str
        The element types selected (:data:`FLOAT32` for an evaluation, :data:`FLOAT_TYPES`
        for a collection); the other activations the rule takes are listed in ``skipped``
        (a name given one by one is refused). A tensor whose type shape inference cannot
        tell is skipped too.
    types : dict, optional
        :func:`tensor_types` of ``proto``, when the caller has it already.

    Returns
    -------
    Selection
    """
    all_ops = {n.op_type for n in proto.graph.node}
    ops = parse_op_types(default if op_types is None else op_types, all_ops)
    if types is None:
        types = tensor_types(proto)
    acts = activations(proto)
    readers: dict[str, list[str]] = {}
    if ops == ALL:
        readers = {n: [] for n in acts}
    for k, node in enumerate(proto.graph.node):
        if ops != ALL and node.op_type not in ops:
            continue
        for i in data_inputs(node.op_type, len(node.input)):
            x = node.input[i]
            if x in acts and (ops != ALL or node_name(node, k) not in readers.get(x, ())):
                readers.setdefault(x, []).append(node_name(node, k))
    skipped = {}
    for name in readers:
        elem = types.get(name, UNKNOWN).elem_type
        if elem not in elem_types:
            what = _type_name(elem)
            kinds = " or ".join(elem_types.values())
            skipped[name] = f"{what}, not {kinds}: left in float"
    names = [n for n in readers if n not in skipped]
    if ops == ALL:
        what = "an input or node output of the model (or computed from initializers alone)"
    else:
        what = f"an activation input of {', '.join(ops)} in the model"
    chosen = pick_by_name(names, tensors, readers, what)
    bad = [n for n in chosen if n in skipped]  # only names given one by one can be
    if bad:
        raise ValueError(f"tensors: {bad[0]!r} is {skipped[bad[0]]}")
    keep = set(chosen)
    names = [n for n in names if n in keep]  # in the model's order, however given
    pattern = tensors.pattern if isinstance(tensors, re.Pattern) else tensors
    pattern = pattern if isinstance(pattern, str) else None
    if not names:
        raise ValueError(
            f"no tensor selected (op_types={ops if ops == ALL else list(ops)}, "
            f"tensors={tensors!r}; the rule takes {len(readers)} activations of the model, "
            f"{len(skipped)} of them not {' or '.join(elem_types.values())})"
        )
    relayout = relayout_sources(proto, acts)
    return Selection(
        names=tuple(names),
        op_types=ops,
        pattern=pattern,
        readers={n: tuple(readers[n]) for n in names},
        skipped=skipped,
        aliases={n: relayout[n] for n in names if n in relayout},
    )


def _type_name(elem: int) -> str:
    if not elem:
        return "an unknown type"
    import onnx

    try:
        return onnx.helper.tensor_dtype_to_string(elem)
    except Exception:  # an element type this onnx does not know
        return f"element type {elem}"
