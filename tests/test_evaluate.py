"""calib.evaluate: the fake-quantized model against an independent numpy forward pass.

The reference here is written from the models' definitions, not from the edited graph:
numpy computes each small model with ``fake_quant`` (the textbook quantizer, rounding half
to even, codes clipped to [-qmax, qmax]) applied to the same named tensors, and the
switched ONNX copy must give the same outputs.

Why to float32 tolerance, and why exactly in places: the inputs are multiples of 1/4, the
weights multiples of 1/128 or small integers, and every clip is ``127 * 2**-k``, so every
scale is a power of two. Every tensor that feeds a quantizer then holds a few bits and is
computed exactly in float32 whatever order onnxruntime and numpy sum in: both sides
quantize identical numbers, so no rounding decision can differ (and ties, x / scale
landing on k + 1/2, are frequent: round half to even is exercised). Only a model output
that no quantizer reads may be a sum that float32 rounds, differently by summation order,
by a few ulps of its largest term; those are compared with ``atol = 1e-5 * max|y|``, and
outputs computed from quantized values alone, which are exact, with equality.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calib import Histogram
from calib.evaluate import (
    Run,
    Runner,
    clip_feeds,
    evaluate,
    hold_out,
    keep_float_at,
    load_model,
    parse_method,
    quantize_weight,
    rank,
    select_tensors,
    spearman,
    switched_model,
)
from calib.evaluate._metrics import ErrorAccumulator
from calib.evaluate._runner import Payload

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(12)
W1 = RNG.integers(-1, 2, size=(8, 6)).astype(np.float32)


def _model(nodes, inputs, outputs, inits, opset=17) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def attention_model() -> bytes:
    """X[N,4,8] -> MatMul W1 -> h -> Relu -> r; t = Transpose(r); a = MatMul(r, t);
    Y = MatMul(a, r). A weight read through a Transpose (a constant) feeds a side output."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("MatMul", ["X", "W1"], ["h"], name="mm1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1], name="tr"),
        helper.make_node("MatMul", ["r", "t"], ["a"], name="mm_rt"),
        helper.make_node("MatMul", ["a", "r"], ["Y"], name="mm_ar"),
        helper.make_node("Transpose", ["W1"], ["W1t"], name="wt"),  # a constant
        helper.make_node("MatMul", ["h", "W1t"], ["Z"], name="mm_side"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("X", f, ["N", 4, 8])],
        [
            helper.make_tensor_value_info("Y", f, ["N", 4, 6]),
            helper.make_tensor_value_info("Z", f, ["N", 4, 8]),
        ],
        [numpy_helper.from_array(W1, "W1")],
    )


def fake_quant(x: np.ndarray, amax: float, bits: int = 8) -> np.ndarray:
    """The textbook symmetric quantizer, in float32: round half to even, clip the codes."""
    qmax = 2 ** (bits - 1) - 1
    s = np.float32(amax) / np.float32(qmax)
    return (np.clip(np.round(x / s), -qmax, qmax) * s).astype(np.float32)


def attention_reference(x: np.ndarray, amax: dict[str, float], bits: int = 8) -> dict:
    """The model by hand; ``amax`` names the quantized tensors (readers: the MatMuls)."""

    def q(name, v):
        return fake_quant(v, amax[name], bits) if name in amax else v

    h = q("X", x) @ W1
    r = np.maximum(h, 0)
    t = np.transpose(r, (0, 2, 1))  # Transpose reads the float r
    a = q("r", r) @ q("t", t)
    y = q("a", a) @ q("r", r)
    z = q("h", h) @ W1.T
    return {"Y": y, "Z": z}


def quarters(rng, shape, lim=8) -> np.ndarray:
    return (rng.integers(-lim, lim + 1, size=shape) / 4).astype(np.float32)


def dyadic_amax(k: int) -> float:
    """A clip whose scale is exactly 2**-k."""
    return 127.0 * 2.0**-k


def run_switched(model: bytes, x: dict, amax: dict[str, float], bits=8, weights=False, **sel):
    proto, _ = load_model(model)
    sw = switched_model(proto, select_tensors(proto, **sel), bits, weights)
    names = [s.name for s in sw.switches]
    feeds = clip_feeds(sw.switches, bits, [amax.get(n, 0.0) for n in names],
                       [n in amax for n in names])  # fmt: skip
    if sw.weights_on:
        feeds[sw.weights_on] = np.array(weights)
    sess = ort.InferenceSession(sw.proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(sw.outputs, sess.run(list(sw.outputs), {**x, **feeds}), strict=True))


def assert_close_f32(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max() + 1e-30))


# -- selection -------------------------------------------------------------------------------
def test_default_selection_is_the_activation_inputs_of_matmul_gemm_conv():
    proto, _ = load_model(attention_model())
    sel = select_tensors(proto)
    # X, r, t, a, h: every MatMul's non-constant input; W1 and W1t (a constant) are weights
    assert sel.names == ("X", "r", "t", "a", "h")
    assert sel.readers["r"] == ("mm_rt", "mm_ar")
    assert "5 activation tensors" in sel.describe() and "MatMul, Gemm, Conv" in sel.describe()
    assert select_tensors(proto, tensors="^[ra]$").names == ("r", "a")
    assert select_tensors(proto, tensors=["a", "X"]).names == ("X", "a")
    assert select_tensors(proto, op_types="Relu").names == ("h",)
    with pytest.raises(ValueError, match="none of 'Conv' is in the model"):
        select_tensors(proto, op_types="Conv")
    with pytest.raises(ValueError, match="'W1t' not an activation input"):
        select_tensors(proto, tensors=["W1t"])
    with pytest.raises(ValueError, match="not a regular expression"):
        select_tensors(proto, tensors="(")
    with pytest.raises(ValueError, match="no tensor selected"):
        select_tensors(proto, tensors="^zzz$")


# -- the independent check -------------------------------------------------------------------
def test_switched_model_matches_the_numpy_forward_pass_for_any_subset():
    rng = np.random.default_rng(0)
    x = quarters(rng, (5, 4, 8))
    names = ["X", "r", "t", "a", "h"]
    for trial in range(24):
        on = rng.random(len(names)) < 0.6
        ks = rng.integers(-4, 7, size=len(names))  # scales 16 .. 1/64: clipping and ties
        amax = {n: dyadic_amax(int(k)) for n, k, o in zip(names, ks, on, strict=True) if o}
        got = run_switched(attention_model(), {"X": x}, amax)
        want = attention_reference(x, amax)
        if {"a", "r"} <= set(amax):  # Y from quantized values only: exact
            np.testing.assert_array_equal(got["Y"], want["Y"], err_msg=f"trial {trial}")
        else:
            assert_close_f32(got["Y"], want["Y"])
        assert_close_f32(got["Z"], want["Z"])


def test_round_half_to_even_and_the_symmetric_clip():
    """X / scale on k + 1/2 rounds to the even code; |codes| stop at qmax, never -128."""
    x = np.array([[[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 200.0, -200.0]] * 4], np.float32)
    got = run_switched(attention_model(), {"X": x}, {"X": 127.0}, tensors="^X$")
    xq = fake_quant(x, 127.0)
    assert xq[0, 0].tolist() == [0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 127.0, -127.0]
    np.testing.assert_array_equal(got["Y"], attention_reference(x, {"X": 127.0})["Y"])


@pytest.mark.parametrize("bits", [4, 6])
def test_fewer_bits(bits):
    rng = np.random.default_rng(bits)
    x = quarters(rng, (3, 4, 8))
    qmax = 2 ** (bits - 1) - 1
    amax = {"X": qmax * 2.0**-2, "r": qmax * 2.0**1}  # scales 1/4 and 2
    got = run_switched(attention_model(), {"X": x}, amax, bits=bits)
    want = attention_reference(x, amax, bits)
    assert_close_f32(got["Y"], want["Y"])


def conv_model() -> tuple[bytes, dict[str, np.ndarray]]:
    """X[N,2,6,6] -> Conv(W, B) -> c -> Relu -> Flatten -> f -> Gemm(f, G^T, C) -> Y[N,5]."""
    rng = np.random.default_rng(3)
    w = (rng.integers(-200, 201, size=(3, 2, 3, 3)) / 128).astype(np.float32)
    w[:, 0, 0, 0] = 127 / 64 * np.array([1, -1, 1])  # each channel's max: scale 1/64
    g = (rng.integers(-64, 65, size=(5, 48)) / 128).astype(np.float32)
    g[:, 0] = 127 / 128  # scale 1/128
    consts = {
        "W": w,
        "B": (rng.integers(-4, 5, size=3) / 4).astype(np.float32),
        "G": g,
        "C": (rng.integers(-4, 5, size=5) / 4).astype(np.float32),
    }
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "G", "C"], ["Y"], transB=1, name="gemm"),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("X", f, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("Y", f, ["N", 5])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    return model, consts


def conv_reference(x, consts, amax, weights=False, bits=8):
    def q(name, v):
        return fake_quant(v, amax[name], bits) if name in amax else v

    w, g = consts["W"], consts["G"]
    if weights:  # per output channel: Conv axis 0, Gemm's transposed B axis 0
        qmax = 2 ** (bits - 1) - 1
        sw = (np.abs(w).max(axis=(1, 2, 3)) / np.float32(qmax)).astype(np.float32)
        w = np.clip(np.round(w / sw[:, None, None, None]), -qmax, qmax) * sw[:, None, None, None]
        sg = (np.abs(g).max(axis=1) / np.float32(qmax)).astype(np.float32)
        g = np.clip(np.round(g / sg[:, None]), -qmax, qmax) * sg[:, None]
    windows = np.lib.stride_tricks.sliding_window_view(q("X", x), (3, 3), axis=(2, 3))
    c = np.einsum("ncijkl,mckl->nmij", windows, w) + consts["B"][None, :, None, None]
    f = np.maximum(c, 0).reshape(len(x), -1)
    return {"Y": q("f", f) @ g.T + consts["C"]}


@pytest.mark.parametrize("weights", [False, True])
def test_conv_and_gemm_with_and_without_int8_weights(weights):
    model, consts = conv_model()
    rng = np.random.default_rng(4)
    x = quarters(rng, (4, 2, 6, 6))
    proto, _ = load_model(model)
    assert select_tensors(proto).names == ("X", "f")
    for amax in ({"X": dyadic_amax(1), "f": dyadic_amax(-2)}, {"X": dyadic_amax(4)}, {}):
        got = run_switched(model, {"X": x}, amax, weights=weights)
        want = conv_reference(x, consts, amax, weights)
        if "f" in amax:
            np.testing.assert_array_equal(got["Y"], want["Y"])
        else:
            assert_close_f32(got["Y"], want["Y"])


def test_quantize_weight_per_channel_round_half_even():
    w = np.array([[1.0, -0.25], [0.5, 0.0], [-2.0, 0.0]], np.float32)  # [K=3, N=2]
    codes, scale = quantize_weight(w, axis=1, num_bits=8)
    np.testing.assert_array_equal(scale, np.float32([2.0, 0.25]) / np.float32(127))
    assert codes[:, 1].tolist() == [-127, 0, 0]
    assert codes[:, 0].tolist() == [64, 32, -127]  # 63.5 rounds to 64 (even), 31.75 to 32
    zero, s0 = quantize_weight(np.zeros((2, 2), np.float32), axis=0, num_bits=8)
    assert not zero.any() and s0.tolist() == [1.0, 1.0]


# -- metrics ---------------------------------------------------------------------------------
def test_rank_and_spearman_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    for n in (3, 7, 40, 200):
        a = rng.integers(0, 6, size=n).astype(float)  # many ties
        b = a + rng.normal(size=n)
        np.testing.assert_array_equal(rank(a), stats.rankdata(a))
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    a, b = rng.normal(size=30), rng.normal(size=30)
    a[3], b[7], a[9] = np.nan, np.nan, np.inf
    keep = ~(np.isnan(a) | np.isnan(b))
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a[keep], b[keep]).statistic)
    assert math.isnan(spearman([1, 2], [2, 1])) and math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_error_metrics():
    y = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    yq = np.array([[1.0, 1.0], [0.0, -2.0], [0.0, 0.0]])
    acc = ErrorAccumulator("y")
    acc.add(y[:2], yq[:2])
    acc.add(y[2:], yq[2:])
    e = acc.result()
    assert e.sqnr_db == pytest.approx(10 * math.log10(5 / 17))
    assert e.cosine == pytest.approx((1 / math.sqrt(2) - 1 + 1) / 3)  # both-zero sample: 1
    assert e.max_abs_error == 4.0


# -- held-out share --------------------------------------------------------------------------
def test_hold_out_takes_the_last_share_and_says_so():
    x = {"X": np.arange(10.0).reshape(10, 1), "M": np.ones((10, 2))}
    h = hold_out(x)
    assert h.calibration["X"].ravel().tolist() == list(range(8))
    assert h.evaluation["X"].ravel().tolist() == [8, 9]
    assert h.description == "samples 8..9 of 10 (the last 20%), held out from calibration"
    batches = [{"X": np.zeros((2, 1))} for _ in range(4)]
    hb = hold_out(batches, 0.3)
    assert len(hb.calibration) == 2 and len(hb.evaluation) == 2
    assert hb.description.startswith("batches 2..3 of 4")
    with pytest.raises(ValueError, match="need at least 2"):
        hold_out({"X": np.zeros((1, 3))})
    with pytest.raises(ValueError, match="share must be"):
        hold_out(x, 1.0)


# -- the evaluation --------------------------------------------------------------------------
def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    d = ref.astype(np.float64) - got
    noise = float(np.sum(d * d))
    return (
        10 * math.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise) if noise else math.inf
    )


def test_evaluate_measures_what_the_numpy_model_gives():
    rng = np.random.default_rng(6)
    x = quarters(rng, (12, 4, 8))
    names = ["X", "r", "t", "a", "h"]
    amax = {n: dyadic_amax(k) for n, k in zip(names, [1, -1, -1, -3, 1], strict=True)}
    ev = evaluate(attention_model(), {"X": x}, amax={"dyadic": amax}, workers=1,
                  batch_size=5, target_sqnr_db=math.inf, max_float=3, shortlist=None)  # fmt: skip
    ref = attention_reference(x, {})

    def measured(on: set[str]) -> float:
        out = attention_reference(x, {n: amax[n] for n in on})
        return min(_sqnr(ref[k], out[k]) for k in ("Y", "Z"))

    assert ev.outputs == ("Y", "Z") and ev.n_batches == 3 and ev.n_samples == 12
    [m] = ev.methods
    assert m.name == "dyadic" and m.quantized == 5
    assert m.sqnr_db == pytest.approx(measured(set(names)), abs=1e-4)
    assert [e.output for e in m.result.errors] == ["Y", "Z"]
    assert len(ev.sensitivity) == 5
    for s in ev.sensitivity:
        assert s.only_this.sqnr_db == pytest.approx(measured({s.layer}), abs=1e-4)
        assert s.all_but_this.sqnr_db == pytest.approx(measured(set(names) - {s.layer}), abs=1e-4)
    only = [s.only_this.sqnr_db for s in ev.sensitivity]
    assert only == sorted(only)  # most harmful first
    # greedy, checked by brute force over the numpy model
    kept: set[str] = set()
    for step in ev.keep_float:
        best = max(
            (n for n in names if n not in kept), key=lambda n: measured(set(names) - kept - {n})
        )
        assert step.layer == best
        kept.add(best)
        assert step.result.sqnr_db == pytest.approx(measured(set(names) - kept), abs=1e-4)
    assert len(ev.keep_float) == 3 and ev.reached is False
    assert ev.runs == 1 + 10 + 4 + 3  # methods, sensitivity, steps 2 and 3 (step 1 reuses)
    assert ev.rank_correlation == {}  # given clips have no histogram


def test_keep_float_stops_at_the_target():
    rng = np.random.default_rng(7)
    x = quarters(rng, (6, 4, 8))
    amax = {n: dyadic_amax(2) for n in ["X", "r", "t", "a", "h"]}
    ev = evaluate(attention_model(), {"X": x}, amax={"a": amax}, workers=1, target_sqnr_db=-50)
    assert ev.keep_float == () and ev.reached is True
    ev = evaluate(attention_model(), {"X": x}, amax={"a": amax}, workers=1, max_float=0)
    assert ev.keep_float == () and ev.reached is None and len(ev.sensitivity) == 5
    target = ev.all_quantized.sqnr_db + 0.01
    ev = evaluate(attention_model(), {"X": x}, amax={"a": amax}, workers=1, target_sqnr_db=target)
    assert ev.reached is True and ev.keep_float[-1].result.sqnr_db >= target


def _histograms(x: np.ndarray, bins: int = 1024) -> dict[str, Histogram]:
    h = x @ W1
    r = np.maximum(h, 0)
    t = np.transpose(r, (0, 2, 1))
    acts = {"X": x, "h": h, "r": r, "t": t, "a": r @ t}
    return {k: Histogram.from_samples(v.ravel(), bins=bins, signed=True) for k, v in acts.items()}


def test_methods_side_by_side_the_best_one_and_the_json(tmp_path):
    rng = np.random.default_rng(8)
    x = quarters(rng, (16, 4, 8))
    hists = _histograms(x)
    ev = evaluate(attention_model(), {"X": x[12:]}, histograms=hists, workers=1, max_float=2)
    names = [m.name for m in ev.methods]
    assert names == ["max", "percentile", "mse", "entropy:seed", "entropy:ncnn",
                     "entropy:mxnet", "entropy:onnxruntime", "entropy:modelopt"]  # fmt: skip
    best = max(ev.methods, key=lambda m: m.sqnr_db)
    assert ev.calibration == best.name
    row = {s.layer: s for s in ev.sensitivity}["a"]
    from calib.report import layer_row

    method, variant = parse_method(best.name)
    lr = layer_row("a", hists["a"], method, variant or "seed", 8)
    assert row.amax == lr.amax and row.hist_sqnr_db == lr.sqnr_db and row.flags == lr.flags
    assert set(ev.rank_correlation) == {"hist_sqnr_db", "kl", "clipped"}
    doc = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert {"outputs", "methods", "sensitivity", "keep_float"} <= set(doc)
    assert set(doc["methods"][0]) >= {"name", "variant", "output_sqnr_db", "cosine"}
    assert doc["methods"][3]["name"] == "entropy" and doc["methods"][3]["variant"] == "seed"
    assert set(doc["sensitivity"][0]) >= {
        "layer", "only_this_sqnr_db", "all_but_this_sqnr_db", "hist_sqnr_db", "kl", "flags"
    }  # fmt: skip
    assert doc["quantized"]["tensors"] == ["X", "r", "t", "a", "h"]
    assert all(set(k) >= {"layer", "output_sqnr_db"} for k in doc["keep_float"])
    one = evaluate(attention_model(), {"X": x[12:]}, histograms=hists, methods=["max"],
                   sensitivity_of="max", workers=1, sensitivity=False)  # fmt: skip
    assert one.methods[0].sqnr_db == ev.methods[0].sqnr_db and one.sensitivity == ()
    # "entropy" names the seed's calibration: one spec, whichever way it is written
    seed = evaluate(attention_model(), {"X": x[12:]}, histograms=hists, methods=["entropy"],
                    sensitivity_of="entropy", workers=1, sensitivity=False)  # fmt: skip
    assert seed.calibration == "entropy:seed" and seed.methods[0].name == "entropy:seed"


def test_a_cache_and_missing_tensors_stay_in_float(tmp_path):
    from calib import write_trt_cache

    rng = np.random.default_rng(9)
    x = quarters(rng, (6, 4, 8))
    path = tmp_path / "calib.cache"
    write_trt_cache(path, {"X": dyadic_amax(3), "a": dyadic_amax(-3)})
    ev = evaluate(attention_model(), {"X": x}, caches=[path], workers=1, max_float=0)
    [m] = ev.methods
    assert m.name == "cache:calib.cache" and m.method == "tensorrt" and m.quantized == 2
    assert m.left_float == dict.fromkeys(("r", "t", "h"), "not in cache:calib.cache")
    assert [s.layer for s in ev.sensitivity] and {s.layer for s in ev.sensitivity} == {"X", "a"}
    want = attention_reference(x, {"X": dyadic_amax(3), "a": dyadic_amax(-3)})
    ref = attention_reference(x, {})
    assert m.sqnr_db == pytest.approx(min(_sqnr(ref[k], want[k]) for k in "YZ"), abs=1e-3)


def test_bad_arguments():
    model = attention_model()
    x = {"X": quarters(np.random.default_rng(0), (2, 4, 8))}
    ok = {"a": {"X": 1.0}}
    with pytest.raises(ValueError, match="no calibration"):
        evaluate(model, x, workers=1)
    with pytest.raises(ValueError, match=r"num_bits must be an integer in 2\.\.8"):
        evaluate(model, x, amax=ok, num_bits=9)
    with pytest.raises(ValueError, match="sensitivity_of: 'max' is not 'best' nor one of"):
        evaluate(model, x, amax=ok, sensitivity_of="max")
    with pytest.raises(ValueError, match="no histogram for 5 of the 5 quantized tensors"):
        evaluate(model, x, histograms={"q": Histogram.from_samples(np.ones(3))})
    with pytest.raises(ValueError, match=r"methods: calibrator 'entropy:tvm': variant must be one"):
        evaluate(model, x, histograms={}, methods=["entropy:tvm"])
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        evaluate(model, x, amax=ok, workers=0)
    with pytest.raises(ValueError, match="'Q' not an input of the model"):
        evaluate(model, {"Q": x["X"]}, amax=ok, workers=1)
    old = onnx.load_model_from_string(model)
    old.opset_import[0].version = 12
    with pytest.raises(ValueError, match="opset 12; evaluating needs opset 13"):
        evaluate(old, x, amax=ok, workers=1)


# -- parallel --------------------------------------------------------------------------------
def _payload(model: bytes, x: dict, amax: dict) -> tuple[Payload, list[Run]]:
    proto, _ = load_model(model)
    sw = switched_model(proto, select_tensors(proto))
    names = [s.name for s in sw.switches]
    table = np.array([[amax[n] for n in names], [a * 2 for a in (amax[n] for n in names)]])
    payload = Payload(sw.proto.SerializeToString(), sw.switches, None, sw.outputs, 8,
                      ({"X": x["X"][:4]}, {"X": x["X"][4:]}), table)  # fmt: skip
    rng = np.random.default_rng(1)
    runs = [Run(int(k), tuple(bool(b) for b in rng.random(len(names)) < 0.5)) for k in
            rng.integers(0, 2, size=12)]  # fmt: skip
    return payload, runs


@pytest.mark.slow
def test_process_pool_gives_the_same_results_as_one_process():
    x = {"X": quarters(np.random.default_rng(10), (8, 4, 8))}
    amax = dict.fromkeys(["X", "r", "t", "a", "h"], dyadic_amax(2))
    payload, runs = _payload(attention_model(), x, amax)
    with Runner(payload, workers=1) as one:
        expected = one.run(runs)
    seen = []
    with Runner(payload, workers=2) as two:
        assert two.backend == "2 local processes"
        assert two.run(runs, lambda done, total: seen.append((done, total))) == expected
    assert seen[-1] == (12, 12)


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_same_results():
    distributed = pytest.importorskip("distributed")
    x = {"X": quarters(np.random.default_rng(11), (8, 4, 8))}
    amax = dict.fromkeys(["X", "r", "t", "a", "h"], dyadic_amax(1))
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        local = evaluate(attention_model(), x, amax={"a": amax}, workers=1, max_float=2)
        remote = evaluate(attention_model(), x, amax={"a": amax},
                          scheduler=cluster.scheduler_address, max_float=2)  # fmt: skip
        payload, runs = _payload(attention_model(), x, amax)
        with Runner(payload, workers=1) as one:
            expected = one.run(runs)
        with Runner(payload, scheduler=cluster.scheduler_address) as dask_runner:
            assert dask_runner.backend.startswith("dask at tcp://")
            assert dask_runner.workers == 2
            assert dask_runner.run(runs) == expected
    assert remote.backend.startswith("dask at")
    a, b = local.to_dict(), remote.to_dict()
    del a["run"], b["run"]
    assert a == b


def test_a_scheduler_that_is_not_there(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("calib.evaluate._runner.CONNECT_TIMEOUT_S", 1)
    with pytest.raises(ValueError, match="cannot reach a Dask scheduler"):
        evaluate(attention_model(), {"X": np.zeros((1, 4, 8), np.float32)},
                 amax={"a": {"X": 1.0}}, scheduler="tcp://127.0.0.1:9")  # fmt: skip


def test_a_method_that_refuses_tensors_leaves_them_in_float_and_is_not_best():
    """256 signed bins fold to 128: the seed's 128 levels need more bins, so it refuses."""
    rng = np.random.default_rng(8)
    x = quarters(rng, (8, 4, 8))
    hists = _histograms(x, bins=256)
    ev = evaluate(attention_model(), {"X": x}, histograms=hists, methods=["entropy:seed", "max"],
                  workers=1, sensitivity=False)  # fmt: skip
    seed, mx = ev.methods
    assert seed.quantized == 0 and seed.sqnr_db == math.inf  # nothing quantized
    assert "entropy:seed refused it: " in seed.left_float["a"]
    assert ev.calibration == "max" and mx.quantized == 5


def test_later_keep_float_steps_try_the_shortlist_of_every_candidate_left():
    rng = np.random.default_rng(13)
    x = quarters(rng, (6, 4, 8))
    amax = {n: dyadic_amax(1) for n in ["X", "r", "t", "a", "h"]}
    ev = evaluate(attention_model(), {"X": x}, amax={"a": amax}, workers=1,
                  target_sqnr_db=math.inf, max_float=4, shortlist=2)  # fmt: skip
    assert len(ev.keep_float) == 4 and ev.reached is False
    assert ev.runs == 1 + 10 + 2 + 2 + 2  # the shortlist does not shrink step after step
    assert len({k.layer for k in ev.keep_float}) == 4


def test_a_report_reads_back_with_its_infinities_and_gaps():
    from calib.evaluate import read_report

    x = quarters(np.random.default_rng(14), (4, 4, 8))
    exact = {"X": dyadic_amax(3)}  # X is a multiple of 1/4: quantized without error
    ev = evaluate(attention_model(), {"X": x}, amax={"a": exact}, workers=1, max_float=0)
    text = json.dumps(ev.to_dict(), allow_nan=False)
    assert '"inf"' in text and "null" in text  # only-this SQNR of X, and KL
    doc = read_report(text)
    [row] = doc["sensitivity"]
    assert row["only_this_sqnr_db"] == math.inf and math.isnan(row["kl"])
    assert doc["methods"][0]["output_sqnr_db"] == math.inf
    with pytest.raises(ValueError, match="not an evaluate report"):
        read_report('{"outputs": []}')
    with pytest.raises(ValueError, match="not JSON"):
        read_report("{")


def test_clips_read_calibrators_with_the_one_parser():
    """Calibrators are specs (calib.Spec.parse): named by their canonical text without the
    evaluation's bits, calibrated at those bits, and one naming other bits is refused."""
    from calib import Spec, calibrate
    from calib.evaluate import clips_from_histograms

    h = Histogram.from_samples(np.random.default_rng(1).laplace(size=20_000), bins=1024)
    clips = clips_from_histograms({"a": h}, ["a"], ["entropy", "percentile:99.9", "mse"], 4)
    assert [c.name for c in clips] == ["entropy:seed", "percentile:99.9", "mse"]
    assert clips[0].rows["a"].spec == Spec.parse("entropy@4")
    assert clips[0].amax["a"] == calibrate(h, "entropy:seed@4").amax
    assert clips[1].amax["a"] == calibrate(h, "percentile:99.9@4").amax
    # "entropy" and "entropy:seed" are one calibration
    assert len(clips_from_histograms({"a": h}, ["a"], "entropy,entropy:seed", 4)) == 1
    with pytest.raises(ValueError, match="names its own quantizer"):
        clips_from_histograms({"a": h}, ["a"], ["entropy:mxnet@6"], 4)


def test_keep_float_at_another_target_is_the_search_run_at_it():
    """One search to a high target holds the search at every lower one (the greedy steps do
    not look at the target): the Effect page answers a new Target SQNR without running."""
    rng = np.random.default_rng(6)
    x = quarters(rng, (12, 4, 8))
    names = ["X", "r", "t", "a", "h"]
    amax = {"dyadic": {n: dyadic_amax(k) for n, k in zip(names, [1, -1, -1, -3, 1], strict=True)}}
    kw = {"amax": amax, "workers": 1, "batch_size": 5, "max_float": 4, "shortlist": None}
    high = evaluate(attention_model(), {"X": x}, target_sqnr_db=120.0, **kw).to_dict()
    sqnrs = [high["all_quantized_sqnr_db"]] + [s["output_sqnr_db"] for s in high["keep_float"]]
    targets = [-50.0, *(v + d for v in sqnrs for d in (-0.01, 0.0, 0.01)), 119.0]
    for target in targets:
        want = evaluate(attention_model(), {"X": x}, target_sqnr_db=target, **kw).to_dict()
        got = keep_float_at(high, target)
        assert got["keep_float"] == want["keep_float"], target
        assert got["reached"] == want["reached"], target
    low = evaluate(attention_model(), {"X": x}, target_sqnr_db=sqnrs[1], **kw).to_dict()
    if low["keep_float"]:  # stopped at its own target: the steps beyond were never run
        with pytest.raises(ValueError, match="target_sqnr_db 119"):
            keep_float_at(low, 119.0)
