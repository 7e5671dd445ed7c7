"""The road from a model to a decision, on the command line, on realistic generated graphs.

On an exporter-shaped transformer and a MobileNet-like CNN (``tests/graphs.py``):
collect (with convergence traces) -> thresholds (``python -m calib H.npz --variant
onnxruntime``) -> TensorRT cache and ONNX Runtime table, each read back -> converge ->
evaluate with the same flags, with the defaults and with ``--op-types``. Every file a
command writes is read by every reader that takes it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
from graphs import (
    F32_MIN,
    cnn_inputs,
    cnn_model,
    save_inputs,
    transformer_inputs,
    transformer_model,
)

import calib
from calib import evaluate, selection
from calib.cli import main

MODELS = {
    "transformer": (transformer_model, transformer_inputs, "MatMul"),
    "cnn": (cnn_model, cnn_inputs, "Conv,Gemm"),
}


@pytest.fixture(scope="module", params=list(MODELS))
def road(request, tmp_path_factory):
    """The model, its calibration inputs (batched layout) and evaluation inputs on disk."""
    build, inputs, op_types = MODELS[request.param]
    d = tmp_path_factory.mktemp(request.param)
    proto = build()
    (d / "model.onnx").write_bytes(proto.SerializeToString())
    save_inputs(d / "calib.npz", inputs(n=8, seed=1), batch=4)
    save_inputs(d / "eval.npz", inputs(n=4, seed=2))
    return request.param, d, proto, op_types


@pytest.mark.parametrize("flags", ["defaults", "op-types"])
def test_collect_thresholds_exports_converge_evaluate(road, flags, capsys):
    kind, d, proto, op_types = road
    extra = [] if flags == "defaults" else ["--op-types", op_types]
    model, h = str(d / "model.onnx"), d / f"H-{flags}.npz"
    assert main(["collect", model, "--inputs", str(d / "calib.npz"), "--out", str(h),
                 "--convergence", "--bins", "256", "--quiet", *extra]) == 0  # fmt: skip
    capsys.readouterr()

    # every reader takes the histogram file: the long provenance is a document, not a name
    hists, meta = calib.load_histograms(h), calib.load_histograms_meta(h)
    traces = calib.load_convergence(h)
    assert list(calib.load_histogram_file(h)) == list(hists)
    assert set(traces) == set(hists) and meta["tool"] == "calib collect"
    chosen = selection.select_tensors(
        proto, op_types if extra else None, default=selection.ALL,
        elem_types=selection.FLOAT_TYPES,
    )  # fmt: skip
    assert set(hists) | set(meta["not_activations"]) == set(chosen.names)
    assert meta["aliases"] == chosen.aliases
    if kind == "transformer" and not extra:  # the mask: recognised and listed, not calibrated
        assert "/bert/Mul_output_0" in meta["not_activations"]
        assert "/bert/Mul_output_0" not in hists
        assert len(meta["aliases"]) >= 8 and len(json.dumps(meta)) > 1024

    # thresholds, as a new user types them, with both exports
    trt, ort_json = d / f"cache-{flags}.trt", d / f"calibration-{flags}.json"
    assert main([str(h), "--variant", "onnxruntime", "--trt-cache", str(trt),
                 "--ort-json", str(ort_json), "--format", "json"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert {r["layer"] for r in rows} == set(hists)
    amax = calib.read_trt_cache(trt)
    table = calib.read_ort_calibration_json(ort_json)
    assert set(amax) <= set(hists) and set(table.ranges) == set(amax)
    for name, a in amax.items():  # scale = amax / 127 in float32 hex: ulp-close
        assert table.ranges[name][1] == pytest.approx(a, rel=1e-6)
    cache = d / f"calibration-{flags}.cache"
    calib.write_ort_calibration_cache(cache, {n: hi for n, (_, hi) in table.ranges.items()})
    assert calib.read_ort_calibration_cache(cache) == pytest.approx(
        {n: hi for n, (_, hi) in table.ranges.items()}
    )

    assert main(["converge", str(h), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)

    # evaluate with the same flags reads the collection it made, and the exports
    report = d / f"report-{flags}.json"
    assert main(["evaluate", model, "--histograms", str(h), "--eval-inputs",
                 str(d / "eval.npz"), "--methods", "max,entropy:onnxruntime", "--cache",
                 str(trt), "--workers", "1", "--quiet", "--format", "json", "--out",
                 str(report), *extra]) == 0, capsys.readouterr().err  # fmt: skip
    doc = evaluate.read_report(report.read_text())
    quantized = doc["quantized"]["tensors"]
    assert quantized and set(quantized) <= set(hists)
    assert quantized == list(evaluate.select_tensors(proto, op_types if extra else None).names)
    capsys.readouterr()


def test_evaluate_collects_what_it_quantizes(road, capsys):
    """``evaluate --inputs`` collects for itself: the same selection, one rule."""
    _, d, proto, op_types = road
    assert main(["evaluate", str(d / "model.onnx"), "--inputs", str(d / "calib.npz"),
                 "--eval-inputs", str(d / "eval.npz"), "--methods", "max", "--op-types",
                 op_types, "--no-sensitivity", "--workers", "1", "--quiet", "--format",
                 "json"]) == 0, capsys.readouterr().err  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert doc["quantized"]["tensors"] == list(evaluate.select_tensors(proto, op_types).names)


def test_the_generated_graphs_look_exported():
    """What the road tests stand on: the shapes and names of a real export."""
    proto = transformer_model()
    ops = {n.op_type for n in proto.graph.node}
    assert {"Gather", "Reshape", "Transpose", "Softmax", "Erf", "Cast", "Sub", "Mul",
            "LayerNormalization", "ReduceMean", "MatMul"} <= ops  # fmt: skip
    names = [o for n in proto.graph.node for o in n.output]
    assert len(names) >= 190 and len(proto.graph.initializer) >= 100  # hundreds of tensors
    assert "/bert/encoder/layer.1/attention/self/Reshape_3_output_0" in names
    assert any(t.name.startswith("onnx::MatMul_") for t in proto.graph.initializer)
    assert F32_MIN == np.finfo(np.float32).min
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch_size", "sequence_length"]
    cnn = cnn_model()
    convs = [n for n in cnn.graph.node if n.op_type == "Conv"]
    assert any(a.name == "group" and a.i > 1 for c in convs for a in c.attribute)
    assert {"Clip", "Add", "GlobalAveragePool", "Flatten", "Gemm"} <= {
        n.op_type for n in cnn.graph.node
    }
