"""One tensor selection for collection and evaluation (calib.selection, issue 17 item 2)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
from graphs import cnn_inputs, cnn_model, transformer_inputs, transformer_model

from calib import collect, evaluate, selection
from calib.selection import ALL, FLOAT_TYPES, select_tensors


@pytest.fixture(scope="module")
def transformer():
    return transformer_model(layers=2)


@pytest.fixture(scope="module")
def cnn():
    return cnn_model()


def collected(proto, op_types=None):
    return select_tensors(proto, op_types, default=ALL, elem_types=FLOAT_TYPES)


@pytest.mark.parametrize("op_types", [None, "MatMul", "Add", "Softmax,Erf", "Conv,Gemm", "Clip"])
@pytest.mark.parametrize("model", ["transformer", "cnn"])
def test_a_collection_with_any_flags_serves_the_evaluation_with_the_same_flags(
    model, op_types, request
):
    proto = request.getfixturevalue(model)
    ops = {n.op_type for n in proto.graph.node}
    wanted = op_types and set(op_types.split(","))
    if wanted and not wanted & ops:
        with pytest.raises(ValueError, match=r"none of .* is in the model"):
            evaluate.select_tensors(proto, op_types)
        return
    quantized = evaluate.select_tensors(proto, op_types).names
    assert set(quantized) <= set(collected(proto, op_types).names)
    assert set(quantized) <= set(collected(proto).names)  # the default serves every one
    if op_types:  # float32 graphs: the same tensors, in the same order
        assert quantized == collected(proto, op_types).names


@pytest.mark.parametrize("model", ["transformer", "cnn"])
def test_data_inputs_are_activations_not_weights_shapes_or_indices(model, request):
    proto = request.getfixturevalue(model)
    weights = {t.name for t in proto.graph.initializer}
    every = set(collected(proto).names)
    shapes = {n.input[1] for n in proto.graph.node if n.op_type == "Reshape"}
    for op_types in ("MatMul,Gemm,Conv", "Reshape,Gather,Slice", "Add,Mul,Sub,Div"):
        try:
            names = set(collected(proto, op_types).names)
        except ValueError:  # none of them in this model
            continue
        assert not names & weights and not names & shapes and names <= every
    by_name = {o: n for n in proto.graph.node for o in n.output}
    for name in evaluate.select_tensors(proto).names:  # never computed from weights alone
        assert name not in by_name or any(i in every for i in by_name[name].input)


def test_reshape_and_transpose_views_are_aliases_in_both(transformer):
    sel = collected(transformer, "MatMul")
    views = [n for n in sel.names if "Transpose" in n]
    assert views and all(n in sel.aliases for n in views)
    ev = evaluate.select_tensors(transformer, "MatMul")
    assert ev.aliases == {n: a for n, a in sel.aliases.items() if n in ev.names}
    root = sel.aliases["/bert/encoder/layer.0/attention/self/Transpose_1_output_0"]
    assert root == "/bert/encoder/layer.0/attention/self/key/Add_output_0"


def test_masks_are_listed_by_collect_and_left_in_float_by_evaluate(transformer):
    x = transformer_inputs(n=6, seq=10)
    found = collect.collect_histograms(transformer, x, op_types="Add", bins=64, batch_size=3)
    masks = set(found.not_activations)
    assert "/bert/Mul_output_0" in masks and not masks & set(found)
    ev = evaluate.evaluate(
        transformer, transformer_inputs(n=2, seq=10, seed=5), histograms=found,
        methods=["max"], op_types="Add", sensitivity=False, workers=1,
    )  # fmt: skip
    assert "/bert/Mul_output_0" in ev.selection.skipped
    assert not masks & set(ev.selection.names) and ev.methods[0].quantized > 0


def test_the_rule_has_one_home():
    assert evaluate.DEFAULT_OP_TYPES is selection.DEFAULT_OP_TYPES
    assert collect.RELAYOUT_OPS is selection.RELAYOUT_OPS
    assert collect.FLOAT_TYPES is selection.FLOAT_TYPES
    assert selection.data_inputs("Reshape", 2) == (0,)
    assert selection.data_inputs("Where", 3) == (1, 2)


def test_collect_op_types_means_what_evaluate_quantizes_on_a_cnn(cnn):
    found = collect.collect_histograms(cnn, cnn_inputs(n=4), op_types="Conv,Gemm", bins=64)
    assert list(found) == list(evaluate.select_tensors(cnn).names)
    assert "input" in found  # the first Conv reads the graph input
    np.testing.assert_equal(found["input"].total, 4 * 3 * 16 * 16)
