"""Realistic ONNX graphs for tests, built with ``onnx.helper`` (seeded random weights).

Shared by the command-line road tests, the file round-trip properties and the browser
journeys: import them (``from graphs import transformer_model, cnn_model``; ``tests/`` is
on the path under pytest).

- :func:`transformer_model`: shaped like an exporter's BERT (``torch.onnx.export`` of a
  Hugging Face encoder): embeddings (Gather + Add + LayerNorm), ``layers`` encoder layers
  whose attention views Q, K and V into heads with Reshape/Transpose, an additive mask
  built from float32's minimum (``(1 - mask) * -3.4028235e38`` through Unsqueeze/Cast/Sub/
  Mul), MatMul/Add projections, Softmax, GELU through Erf, LayerNorm (decomposed in the
  embeddings and after attention, a LayerNormalization op after the feed-forward block),
  exporter-length names (``/bert/encoder/layer.0/attention/self/Reshape_output_0``).
  Inputs ``input_ids``, ``attention_mask``, ``token_type_ids``: int64, [batch, sequence],
  both axes dynamic. Output ``last_hidden_state`` [batch, sequence, hidden].
- :func:`cnn_model`: a MobileNetV2-like block: Conv, depthwise Conv (group = channels),
  Clip(0, 6) as ReLU6, a residual Add, GlobalAveragePool, Flatten and a Gemm giving class
  scores [batch, classes]. Input ``input`` float32 [batch, 3, size, size], batch dynamic.

:func:`transformer_inputs` and :func:`cnn_inputs` give seeded inputs for them (the
transformer's sentences padded, so the mask holds float32's minimum); :func:`save_inputs`
writes either layout of :mod:`calib.io.inputs`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "F32_MIN",
    "cnn_inputs",
    "cnn_model",
    "save_inputs",
    "transformer_inputs",
    "transformer_model",
]

F32_MIN = float(np.finfo(np.float32).min)  # -3.4028235e38, what exporters fill masks with
OPSET = 17


class _Graph:
    """Nodes and initializers named as ``torch.onnx.export`` names them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list = []
        self.inits: list = []
        self._count: dict[str, int] = {}
        self._const = 0

    def node(self, scope: str, op: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        k = self._count.get(f"{scope}/{op}", 0)
        self._count[f"{scope}/{op}"] = k + 1
        name = f"{scope}/{op}" + (f"_{k}" if k else "")
        outs = [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs

    def one(self, scope: str, op: str, inputs: list[str], **attrs) -> str:
        return self.node(scope, op, inputs, **attrs)[0]

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def const(self, value, dtype=np.float32) -> str:
        self._const += 1
        return self.init(f"onnx::Constant_{self._const}", np.asarray(value, dtype=dtype))

    def weight(self, name: str, shape: tuple[int, ...], scale: float | None = None) -> str:
        scale = 1 / math.sqrt(shape[0]) if scale is None else scale
        return self.init(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))


def _layer_norm_decomposed(g: _Graph, scope: str, x: str, param: str, hidden: int) -> str:
    """LayerNorm as opset-12 exporters write it: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt,
    Div, Mul, Add."""
    mean = g.one(scope, "ReduceMean", [x], axes=[-1])
    centred = g.one(scope, "Sub", [x, mean])
    square = g.one(scope, "Pow", [centred, g.const(2.0)])
    var = g.one(scope, "ReduceMean", [square], axes=[-1])
    std = g.one(scope, "Sqrt", [g.one(scope, "Add", [var, g.const(1e-12)])])
    normed = g.one(scope, "Div", [centred, std])
    gamma = g.init(f"{param}.weight", 1 + 0.1 * g.rng.standard_normal(hidden).astype(np.float32))
    beta = g.init(f"{param}.bias", 0.1 * g.rng.standard_normal(hidden).astype(np.float32))
    return g.one(scope, "Add", [g.one(scope, "Mul", [normed, gamma]), beta])


def _layer_norm_op(g: _Graph, scope: str, x: str, param: str, hidden: int) -> str:
    gamma = g.init(f"{param}.weight", 1 + 0.1 * g.rng.standard_normal(hidden).astype(np.float32))
    beta = g.init(f"{param}.bias", 0.1 * g.rng.standard_normal(hidden).astype(np.float32))
    return g.one(scope, "LayerNormalization", [x, gamma, beta], axis=-1, epsilon=1e-12)


def _linear(g: _Graph, scope: str, x: str, param: str, n_in: int, n_out: int) -> str:
    """``x @ W + b``: MatMul on a weight named ``onnx::MatMul_<k>``, Add of ``<param>.bias``."""
    w = g.weight(f"onnx::MatMul_{len(g.inits)}", (n_in, n_out))
    b = g.init(f"{param}.bias", (0.02 * g.rng.standard_normal(n_out)).astype(np.float32))
    return g.one(scope, "Add", [b, g.one(scope, "MatMul", [x, w])])


def transformer_model(
    layers: int = 4,
    hidden: int = 32,
    heads: int = 4,
    ffn: int = 64,
    vocab: int = 200,
    max_len: int = 64,
    seed: int = 0,
    prefix: str = "/bert",
) -> onnx.ModelProto:
    """A BERT-like encoder as an exporter writes it (see the module docstring).

    ``prefix`` starts every scope (``/bert``); a longer one gives longer names, up to what
    ``calib.limits.MAX_NAME_CHARS`` allows. Four layers (the default) hold about 200 node
    outputs and 110 initializers; every layer adds about 45 and 16.
    """
    if hidden % heads:
        raise ValueError(f"hidden={hidden} is not a multiple of heads={heads}")
    g = _Graph(np.random.default_rng(seed))
    head = hidden // heads
    emb = f"{prefix}/embeddings"
    p_emb = prefix.strip("/").replace("/", ".") + ".embeddings"
    # embeddings: word + position (sliced to the sequence length) + token type
    words = g.weight(f"{p_emb}.word_embeddings.weight", (vocab, hidden), 0.5)
    positions = g.weight(f"{p_emb}.position_embeddings.weight", (max_len, hidden), 0.1)
    types = g.weight(f"{p_emb}.token_type_embeddings.weight", (2, hidden), 0.1)
    ids = g.init(f"{p_emb}.position_ids", np.arange(max_len, dtype=np.int64)[None, :])
    shape = g.one(emb, "Shape", ["input_ids"])
    seq = g.one(emb, "Gather", [shape, g.const(1, np.int64)], axis=0)
    seq1 = g.one(emb, "Unsqueeze", [seq, g.const([0], np.int64)])
    pos_ids = g.one(emb, "Slice", [ids, g.const([0], np.int64), seq1, g.const([1], np.int64)])
    x = g.one(f"{emb}/word_embeddings", "Gather", [words, "input_ids"])
    t = g.one(f"{emb}/token_type_embeddings", "Gather", [types, "token_type_ids"])
    x = g.one(emb, "Add", [x, t])
    x = g.one(emb, "Add", [x, g.one(f"{emb}/position_embeddings", "Gather", [positions, pos_ids])])
    x = _layer_norm_decomposed(g, f"{emb}/LayerNorm", x, f"{p_emb}.LayerNorm", hidden)
    # the additive mask: (1 - mask[:, None, None, :]) * float32's minimum
    m = g.one(prefix, "Unsqueeze", ["attention_mask", g.const([1, 2], np.int64)])
    m = g.one(prefix, "Cast", [m], to=TensorProto.FLOAT)
    m = g.one(prefix, "Sub", [g.const(1.0), m])
    mask = g.one(prefix, "Mul", [m, g.const(F32_MIN)])
    heads_shape = g.const([0, 0, heads, head], np.int64)
    merged_shape = g.const([0, 0, hidden], np.int64)
    for i in range(layers):
        scope = f"{prefix}/encoder/layer.{i}"
        param = prefix.strip("/").replace("/", ".") + f".encoder.layer.{i}"
        att = f"{scope}/attention/self"

        def view(
            name: str, perm: list[int], src: str = x, att: str = att, param: str = param
        ) -> str:
            y = _linear(g, f"{att}/{name}", src, f"{param}.attention.self.{name}", hidden, hidden)
            y = g.one(att, "Reshape", [y, heads_shape])
            return g.one(att, "Transpose", [y], perm=perm)

        q = view("query", [0, 2, 1, 3])
        k = view("key", [0, 2, 3, 1])
        v = view("value", [0, 2, 1, 3])
        scores = g.one(att, "MatMul", [q, k])
        scores = g.one(att, "Div", [scores, g.const(math.sqrt(head))])
        scores = g.one(att, "Add", [scores, mask])
        probs = g.one(att, "Softmax", [scores], axis=-1)
        ctx = g.one(att, "MatMul", [probs, v])
        ctx = g.one(att, "Transpose", [ctx], perm=[0, 2, 1, 3])
        ctx = g.one(att, "Reshape", [ctx, merged_shape])
        out = f"{scope}/attention/output"
        y = _linear(g, f"{out}/dense", ctx, f"{param}.attention.output.dense", hidden, hidden)
        y = g.one(out, "Add", [y, x])
        x = _layer_norm_decomposed(g, f"{out}/LayerNorm", y, f"{param}.attention.output.LayerNorm",
                                   hidden)  # fmt: skip
        # feed-forward: dense, GELU through Erf, dense, residual, LayerNormalization
        inter = f"{scope}/intermediate"
        h = _linear(g, f"{inter}/dense", x, f"{param}.intermediate.dense", hidden, ffn)
        act = f"{inter}/intermediate_act_fn"
        erf = g.one(act, "Erf", [g.one(act, "Div", [h, g.const(math.sqrt(2.0))])])
        h = g.one(act, "Mul", [g.one(act, "Mul", [h, g.one(act, "Add", [erf, g.const(1.0)])]),
                               g.const(0.5)])  # fmt: skip
        out = f"{scope}/output"
        y = _linear(g, f"{out}/dense", h, f"{param}.output.dense", ffn, hidden)
        y = g.one(out, "Add", [y, x])
        x = _layer_norm_op(g, f"{out}/LayerNorm", y, f"{param}.output.LayerNorm", hidden)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="/Identity"))
    ints = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch_size", "sequence_length"])
        for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    out_vi = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch_size", "sequence_length", hidden]
    )
    graph = helper.make_graph(g.nodes, "main_graph", ints, [out_vi], g.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pytorch"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def transformer_inputs(
    n: int = 8, seq: int = 12, vocab: int = 200, seed: int = 1
) -> dict[str, np.ndarray]:
    """``n`` sentences of 3 to ``seq`` tokens, padded to ``seq`` (so the mask holds zeros)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, seq + 1, n)
    lengths[0] = min(3, seq)  # at least one sentence padded
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, vocab, (n, seq)) * mask
    types = (np.arange(seq)[None, :] >= lengths[:, None] // 2).astype(np.int64) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def cnn_model(
    channels: int = 8, classes: int = 10, size: int = 16, seed: int = 0
) -> onnx.ModelProto:
    """Conv, depthwise Conv, Clip(0, 6), residual Add, GlobalAveragePool, Flatten, Gemm."""
    g = _Graph(np.random.default_rng(seed))
    zero, six = g.const(0.0), g.const(6.0)

    def conv(scope: str, x: str, c_in: int, c_out: int, k: int, param: str, **attrs) -> str:
        group = attrs.get("group", 1)
        w = g.weight(f"{param}.weight", (c_out, c_in // group, k, k), math.sqrt(2 / (c_in * k)))
        b = g.init(f"{param}.bias", (0.05 * g.rng.standard_normal(c_out)).astype(np.float32))
        return g.one(scope, "Conv", [x, w, b], kernel_shape=[k, k], **attrs)

    f = "/features"
    x = conv(f"{f}/features.0/features.0.0", "input", 3, channels, 3, "features.0.0",
             strides=[2, 2], pads=[1, 1, 1, 1])  # fmt: skip
    x = g.one(f"{f}/features.0/features.0.2", "Clip", [x, zero, six])
    block = f"{f}/features.1/conv"
    y = conv(f"{block}/conv.0/conv.0.0", x, channels, channels, 3, "features.1.conv.0.0",
             group=channels, pads=[1, 1, 1, 1])  # fmt: skip
    y = g.one(f"{block}/conv.0/conv.0.2", "Clip", [y, zero, six])
    y = conv(f"{block}/conv.1", y, channels, channels, 1, "features.1.conv.1")
    x = g.one(f"{f}/features.1", "Add", [x, y])
    x = g.one(f"{f}/features.2", "Clip", [x, zero, six])
    x = g.one("/GlobalAveragePool", "GlobalAveragePool", [x])
    x = g.one("/Flatten", "Flatten", [x], axis=1)
    w = g.weight("classifier.1.weight", (classes, channels))
    b = g.init("classifier.1.bias", (0.05 * g.rng.standard_normal(classes)).astype(np.float32))
    g.nodes.append(
        helper.make_node("Gemm", [x, w, b], ["logits"], name="/classifier/classifier.1/Gemm",
                         transB=1)
    )  # fmt: skip
    graph = helper.make_graph(
        g.nodes,
        "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pytorch"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def cnn_inputs(n: int = 8, size: int = 16, seed: int = 1) -> dict[str, np.ndarray]:
    """``n`` images, normalised as torchvision normalises them (about N(0, 1))."""
    rng = np.random.default_rng(seed)
    return {"input": rng.standard_normal((n, 3, size, size)).astype(np.float32)}


def save_inputs(path: str | Path, arrays: dict[str, np.ndarray], batch: int | None = None) -> Path:
    """Write ``arrays`` as a calib inputs ``.npz``: the whole set, or with ``batch`` in the
    batched layout (``<input>__b<k>``, each batch cut to its own longest sentence when the
    arrays are a transformer's)."""
    path = Path(path)
    if batch is None:
        np.savez(path, **arrays)
        return path
    n = len(next(iter(arrays.values())))
    out = {}
    for k, start in enumerate(range(0, n, batch)):
        part = {name: a[start : start + batch] for name, a in arrays.items()}
        if "attention_mask" in part:
            width = int(part["attention_mask"].sum(axis=1).max())
            part = {name: a[:, :width] for name, a in part.items()}
        out.update({f"{name}__b{k}": a for name, a in part.items()})
    np.savez(path, **out)
    return path
