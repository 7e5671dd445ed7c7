"""calib.evaluate on a classifier: top-1 agreement and top-5 overlap, and the sensitivity of
any calibration (not only the best).

The model is a small generated CNN shaped like EfficientNet-Lite's blocks (Conv, Clip as
ReLU6, depthwise Conv, global average pooling, Gemm to 10 class scores), random seeded
weights. The reference is a plain numpy forward pass of the same network with the same
fake quantizer on the same tensors, and the metrics are recomputed from its outputs with
Python sets, one sample at a time.

Tolerances: numpy computes in float64 and onnxruntime in float32, so the outputs agree to
about 1e-6 of their scale; a value that lands within that of a rounding boundary could be
quantized one code apart on the two sides. The input is float32 on both sides (no such
flip); one code of ``a`` or ``b`` moves a logit by about 3e-5, less than ``ATOL``; one code
of the Gemm's input ``f`` by up to 6e-3, but its odds are about 1e-5 a value (a float64
against float32 difference of 5e-8 against a step of 1/127). A sample whose float or
quantized scores have two classes within ``ATOL`` of each other at the top-1 or the top-5
cut could be ranked differently by the two sides: each such sample may move the mean by
``1 / n`` at most, so the metrics agree to ``ambiguous / n`` (and the seeds below keep
``ambiguous`` to a few of 48).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calib import Histogram
from calib.evaluate import evaluate, read_report
from calib.evaluate._metrics import ErrorAccumulator, top1_matches, topk_overlaps

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

N_CLASSES = 10
ATOL = 1e-3


def fake_quant(x: np.ndarray, amax: float, bits: int = 8) -> np.ndarray:
    """The textbook symmetric quantizer: round half to even, codes in [-qmax, qmax]."""
    qmax = 2 ** (bits - 1) - 1
    scale = np.float32(amax) / np.float32(qmax)
    return np.clip(np.round(x.astype(np.float32) / scale), -qmax, qmax) * scale


def cnn() -> tuple[bytes, dict[str, np.ndarray]]:
    """X[N,3,8,8] -> Conv 3x3 (pad 1) -> Clip(0, 6) -> a -> depthwise Conv 3x3 (pad 1) ->
    Clip(0, 6) -> b -> Conv 1x1 -> c -> GlobalAveragePool -> Flatten -> f -> Gemm -> Y[N,10]."""
    rng = np.random.default_rng(21)
    consts = {
        "W1": (rng.standard_normal((8, 3, 3, 3)) * 0.5).astype(np.float32),
        "B1": (rng.standard_normal(8) * 0.5).astype(np.float32),
        "W2": (rng.standard_normal((8, 1, 3, 3)) * 0.7).astype(np.float32),
        "B2": (rng.standard_normal(8) * 0.5).astype(np.float32),
        "W3": (rng.standard_normal((16, 8, 1, 1)) * 0.4).astype(np.float32),
        "G": (rng.standard_normal((N_CLASSES, 16)) * 0.8).astype(np.float32),
        "lo": np.float32(0.0),
        "hi": np.float32(6.0),
    }
    # class biases that centre the scores on calibration-like images, so the arg-max
    # depends on the image (else one class wins every sample and nothing can change)
    mean_f = forward(images(0, 64), consts, {})["f"].mean(axis=0)
    consts["C"] = (-(consts["G"].astype(np.float64) @ mean_f)).astype(np.float32)
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Conv", ["X", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["a"], name="relu6_1"),
        helper.make_node("Conv", ["a", "W2", "B2"], ["c2"], pads=[1, 1, 1, 1], group=8, name="dw"),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["b"], name="relu6_2"),
        helper.make_node("Conv", ["b", "W3"], ["c"], name="project"),
        helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "G", "C"], ["Y"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("X", f, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("Y", f, ["N", N_CLASSES])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), consts


def conv(x: np.ndarray, w: np.ndarray, pad: int, groups: int = 1) -> np.ndarray:
    """Cross-correlation, stride 1, as ONNX's Conv: x[N,C,H,W], w[M,C/groups,k,k]."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))  # N,C,H,W,k,k
    if groups == 1:
        return np.einsum("ncijkl,mckl->nmij", win, w)
    return np.einsum("ncijkl,ckl->ncij", win, w[:, 0])  # depthwise: one filter a channel


def forward(x: np.ndarray, consts: dict, amax: dict[str, float]) -> dict[str, np.ndarray]:
    """The network in float64, each tensor of ``amax`` fake-quantized where a Conv or Gemm
    reads it; returns the activations and ``Y``."""

    def q(name: str, v: np.ndarray) -> np.ndarray:
        return fake_quant(v, amax[name]).astype(np.float64) if name in amax else v

    c = consts
    x = x.astype(np.float64)
    a = np.clip(conv(q("X", x), c["W1"], 1) + c["B1"][None, :, None, None], 0, 6)
    b = np.clip(conv(q("a", a), c["W2"], 1, groups=8) + c["B2"][None, :, None, None], 0, 6)
    cc = conv(q("b", b), c["W3"], 0)
    f = cc.mean(axis=(2, 3))
    y = q("f", f) @ c["G"].T.astype(np.float64) + c.get("C", 0.0)
    return {"X": x, "a": a, "b": b, "f": f, "Y": y}


def reference_metrics(y: np.ndarray, yq: np.ndarray) -> tuple[float, float]:
    """Top-1 agreement and top-5 overlap, one sample at a time, with Python sets."""
    agree, overlap = [], []
    for row, row_q in zip(y.tolist(), yq.tolist(), strict=True):
        order = sorted(range(len(row)), key=lambda i: -row[i])
        order_q = sorted(range(len(row_q)), key=lambda i: -row_q[i])
        agree.append(order[0] == order_q[0])
        overlap.append(len(set(order[:5]) & set(order_q[:5])) / 5)
    return sum(agree) / len(agree), sum(overlap) / len(overlap)


def ambiguous(*ys: np.ndarray) -> np.ndarray:
    """Per sample: a score within ATOL of its neighbour in rank at the top-1 or top-5 cut,
    in any of ``ys``."""
    out = np.zeros(len(ys[0]), bool)
    for y in ys:
        s = np.sort(y, axis=1)[:, ::-1]
        out |= (s[:, 0] - s[:, 1] <= ATOL) | (s[:, 4] - s[:, 5] <= ATOL)
    return out


def assert_metrics(result, y: np.ndarray, yq: np.ndarray) -> None:
    """``result``'s top-1 and top-5 are the numpy reference's, to ambiguous / n."""
    top1, top5 = reference_metrics(y, yq)
    n_amb = int(ambiguous(y, yq).sum())
    assert n_amb <= 4
    tol = n_amb / len(y) + 1e-12
    assert result.top1_agreement == pytest.approx(top1, abs=tol)
    assert result.top5_overlap == pytest.approx(top5, abs=tol)


def images(seed: int, n: int) -> np.ndarray:
    """A colour per image, plus noise: images that differ as a whole, as photos do."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3, 1, 1)) + rng.uniform(-0.5, 0.5, (n, 3, 8, 8))
    return x.astype(np.float32)


def test_metrics_of_one_batch_against_sets():
    rng = np.random.default_rng(5)
    y = rng.standard_normal((200, 12))
    yq = y + rng.standard_normal((200, 12)) * 0.3
    yq[:20] = y[:20]  # some samples unchanged
    want_top1, want_top5 = reference_metrics(y, yq)
    assert np.mean(top1_matches(y, yq)) == want_top1
    assert np.mean(topk_overlaps(y, yq)) == pytest.approx(want_top5, abs=1e-12)
    acc = ErrorAccumulator("Y")
    for start in range(0, 200, 64):  # batch by batch, the mean is over samples
        acc.add(y[start : start + 64], yq[start : start + 64])
    e = acc.result()
    assert e.top1_agreement == want_top1 and e.top5_overlap == pytest.approx(want_top5, abs=1e-12)
    assert 0.3 < want_top1 < 1 and 0.3 < want_top5 < 1  # the test can tell them apart


def test_fewer_classes_than_five_and_outputs_that_are_not_class_scores():
    y = np.array([[3.0, 1.0, 2.0], [0.0, 1.0, 0.5]])
    yq = np.array([[1.0, 3.0, 2.0], [0.0, 1.0, 0.5]])
    assert topk_overlaps(y, yq).tolist() == [1.0, 1.0]  # k = 3: every class
    for shape in [(4,), (4, 1), (4, 3, 2)]:  # a vector, one score, a sequence of vectors
        acc = ErrorAccumulator("h")
        z = np.arange(np.prod(shape), dtype=float).reshape(shape)
        acc.add(z, z + 1)
        assert acc.result().top1_agreement is None and acc.result().top5_overlap is None


def test_evaluate_reports_top1_and_top5_as_numpy_computes_them():
    model, consts = cnn()
    x = images(1, 48)
    amax = {
        "coarse": {"X": 1.5, "a": 1.0, "b": 1.0, "f": 1.0},  # clips hard: classes change
        "fine": {"X": 1.5, "a": 6.0, "b": 6.0, "f": 3.0},
    }
    ev = evaluate(model, {"X": x}, amax=amax, workers=1, batch_size=20, max_float=2,
                  target_sqnr_db=math.inf, sensitivity_of="best,coarse")  # fmt: skip
    y = forward(x, consts, {})["Y"]
    assert [m.name for m in ev.methods] == ["coarse", "fine"]
    for m in ev.methods:
        assert_metrics(m.result, y, forward(x, consts, amax[m.name])["Y"])
    assert (
        ev.methods[0].result.top1_agreement < 0.6 < ev.methods[1].result.top1_agreement
    )  # the coarse clip changes classes
    # every sensitivity run and keep-in-float step, for the best and for "coarse"
    assert [s.calibration for s in ev.sensitivities] == ["fine", "coarse"]
    for sens in ev.sensitivities:
        clips = amax[sens.calibration]
        for row in sens.rows:
            runs = ((row.only_this, {row.layer}), (row.all_but_this, set(clips) - {row.layer}))
            for result, on in runs:
                assert_metrics(result, y, forward(x, consts, {n: clips[n] for n in on})["Y"])
        kept: set[str] = set()
        for step in sens.keep_float:
            kept.add(step.layer)
            on = {n: v for n, v in clips.items() if n not in kept}
            assert_metrics(step.result, y, forward(x, consts, on)["Y"])
    # the JSON: keys in each methods row, each sensitivity row and step; read back
    doc = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    for row in doc["methods"]:
        assert {"top1_agreement", "top5_overlap"} <= set(row)
        assert {"top1_agreement", "top5_overlap"} <= set(row["per_output"][0])
    assert doc["methods"][0]["top1_agreement"] == ev.methods[0].result.top1_agreement
    assert {"only_this_top1_agreement", "all_but_this_top5_overlap"} <= set(doc["sensitivity"][0])
    assert [s["calibration"] for s in doc["sensitivities"]] == ["fine", "coarse"]
    assert doc["sensitivities"][0]["sensitivity"] == doc["sensitivity"]
    coarse = doc["sensitivities"][1]
    assert {r["layer"] for r in coarse["sensitivity"]} == {"X", "a", "b", "f"}
    assert all("top1_agreement" in k for k in coarse["keep_float"])
    back = read_report(json.dumps(doc))
    assert (
        back["sensitivities"][1]["sensitivity"][0]["only_this_top1_agreement"]
        == (coarse["sensitivity"][0]["only_this_top1_agreement"])
    )


def test_the_sensitivity_of_a_named_calibration_is_the_one_measured_alone():
    model, _ = cnn()
    x = images(2, 32)
    hists = {
        k: Histogram.from_samples(v.ravel(), bins=512, signed=True)
        for k, v in forward(images(3, 64), cnn()[1], {}).items()
        if k != "Y"
    }
    kw = dict(histograms=hists, methods=["max", "entropy:seed"], workers=1, max_float=1)
    both = evaluate(model, {"X": x}, sensitivity_of=["best", "entropy:seed"], **kw)
    alone = evaluate(model, {"X": x}, sensitivity_of="entropy:seed", **kw)
    assert (
        alone.calibration == "entropy:seed"
        and alone.sensitivities[0].calibration == alone.calibration
    )
    second = next(s for s in both.sensitivities if s.calibration == "entropy:seed")
    assert second.rows == alone.sensitivity and second.keep_float == alone.keep_float
    assert second.rank_correlation == alone.rank_correlation
    same = evaluate(model, {"X": x}, sensitivity_of="best,best", **kw)
    assert len(same.sensitivities) == 1  # measured once
    with pytest.raises(ValueError, match="sensitivity_of: 'entropy:mxnet' is not 'best'"):
        evaluate(model, {"X": x}, sensitivity_of="best,entropy:mxnet", **kw)
    with pytest.raises(ValueError, match="sensitivity_of: no calibration named"):
        evaluate(model, {"X": x}, sensitivity_of=" , ", **kw)


def test_a_model_without_class_scores_has_null_top1_in_its_json():
    """A transformer's hidden states (3-D): the keys are there, their values null."""
    model, _ = cnn()
    m = onnx.load_from_string(model)
    m.graph.output[0].CopyFrom(helper.make_tensor_value_info("c", TensorProto.FLOAT, None))
    x = images(4, 8)
    ev = evaluate(m, {"X": x}, amax={"a": {"X": 1.0}}, workers=1, sensitivity=False)
    doc = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert doc["methods"][0]["top1_agreement"] is None and doc["methods"][0]["top5_overlap"] is None


def test_the_command_line_ranks_two_calibrations_and_prints_top1(tmp_path, capsys):
    import calib
    from calib.cli import main

    model, consts = cnn()
    (tmp_path / "m.onnx").write_bytes(model)
    np.savez(tmp_path / "e.npz", X=images(5, 16))
    hists = {k: Histogram.from_samples(v.ravel(), bins=512, signed=True)
             for k, v in forward(images(6, 32), consts, {}).items() if k != "Y"}  # fmt: skip
    calib.save_histograms(tmp_path / "h.npz", hists)
    argv = ["evaluate", str(tmp_path / "m.onnx"), "--histograms", str(tmp_path / "h.npz"),
            "--eval-inputs", str(tmp_path / "e.npz"), "--methods", "max,entropy:seed",
            "--sensitivity-of", "best,entropy:seed", "--workers", "1", "--max-float", "0",
            "--quiet"]  # fmt: skip
    assert main([*argv, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["calibration"] for s in doc["sensitivities"]] == [doc["calibration"], "entropy:seed"]
    assert all(isinstance(m["top1_agreement"], float) for m in doc["methods"])
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "top-1" in text and "Sensitivity of entropy:seed" in text
