"""``calib.dev.bench_collect`` end to end on a tiny ONNX model, and its agreement function.

The model (built with ``onnx.helper``, 212 parameters): ``h = Relu(x @ W1 + b1)``,
``y = h @ W2 + b2``, and a second output ``masked = x * 0 + float32 min``, the way BERT's
attention mask holds -3.4e38: ORT's histogram cannot be made on it, calib's can.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calib.dev import bench_collect as bc

F32_MIN = float(np.finfo(np.float32).min)


# -- agreement: pure ---------------------------------------------------------------------------


def test_agreement_counts_bins_apart():
    calib = {"same": 1.0, "near": 1.2, "one": 2.0, "two": 3.0, "calib_only": 5.0}
    ort = {
        "same": (1.0, 0.5),  # equal
        "near": (1.0, 0.5),  # 0.4 bin apart: the same bin
        "one": (1.5, 0.5),  # one bin apart: within one, not the same
        "two": (2.0, 0.5),  # two bins apart: neither
        "ort_only": (1.0, 0.1),
    }
    a = bc.agreement(calib, ort)
    assert a.compared == 4
    assert a.same_bin == 2
    assert a.within_one_bin == 3
    assert [r.name for r in a.rows] == ["two", "one", "near", "same"]  # worst first
    assert [r.bins_apart for r in a.rows] == pytest.approx([2.0, 1.0, 0.4, 0.0])
    assert a.only_calib == ("calib_only",)
    assert a.only_ort == ("ort_only",)


def test_agreement_can_fail_everywhere():
    a = bc.agreement({"t": 10.0, "u": 0.0}, {"t": (8.0, 1.0), "u": (2.0, 1.0)})
    assert (a.compared, a.same_bin, a.within_one_bin) == (2, 0, 0)


def test_agreement_zero_bin_width():
    """A dead tensor: ORT's width can be zero; equal values agree, others are inf apart."""
    a = bc.agreement({"dead": 0.0, "odd": 1.0}, {"dead": (0.0, 0.0), "odd": (0.0, 0.0)})
    rows = {r.name: r.bins_apart for r in a.rows}
    assert rows == {"dead": 0.0, "odd": math.inf}
    assert a.same_bin == 1


# -- the cases, on a tiny model ----------------------------------------------------------------

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization.calibrate")


def _tiny_model(path, n_in=8, n_hidden=16, n_out=4, seed=0):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [
        init("W1", n_in, n_hidden),
        init("b1", n_hidden),
        init("W2", n_hidden, n_out),
        init("b2", n_out),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(F32_MIN, np.float32), "big"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["mm1"]),
        helper.make_node("Add", ["mm1", "b1"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["h"]),
        helper.make_node("MatMul", ["h", "W2"], ["mm2"]),
        helper.make_node("Add", ["mm2", "b2"], ["y"]),
        helper.make_node("Mul", ["x", "zero"], ["x0"]),
        helper.make_node("Add", ["x0", "big"], ["masked"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out]),
            helper.make_tensor_value_info("masked", TensorProto.FLOAT, ["batch", n_in]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return sum(int(np.prod(t.dims)) for t in inits)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    assert 200 < _tiny_model(d / bc.MODEL_FILE) < 300
    x = np.random.default_rng(1).standard_normal((80, 8)).astype(np.float32)
    x[50, 3] = 6.0  # a later batch grows the range
    np.savez(d / bc.INPUTS_FILE, x=x)
    return d


EXPECTED = {"x", "mm1", "pre", "h", "mm2", "y", "x0", "masked"}


@pytest.mark.slow
def test_cases_in_process(model_dir, tmp_path):
    kw = dict(batch_size=32, num_bins=256, target_bins=32)
    plain = bc.run_case("plain", model_dir, tmp_path, **kw)
    assert plain["tensors"] is None
    assert (plain["samples"], plain["batches"]) == (80, 3)
    assert plain["wall_s"] > 0 and plain["peak_rss_mb"] > 10

    got = bc.run_case("calib", model_dir, tmp_path, **kw)
    # calib recognises the mask (float32's minimum) and lists it instead of calibrating it
    assert got["tensors"] == len(EXPECTED) - 1
    from calib import load_histograms

    hists = load_histograms(tmp_path / bc.CALIB_FILE)
    assert set(hists) == EXPECTED - {"masked"}
    # max_abs is the outer edge of the last bin that holds a count: within a bin of 6
    assert abs(hists["x"].max_abs - 6.0) <= hists["x"].bin_width

    ort = bc.run_case("ort", model_dir, tmp_path, **kw)
    saved = json.loads((tmp_path / bc.ORT_FILE).read_text())
    assert set(saved["failed"]) == {"masked"}
    assert all("finite-sized bins" in why for why in saved["failed"].values())
    assert set(saved["thresholds"]) == EXPECTED - {"masked"}
    assert ort["tensors"] == len(EXPECTED) - 1 and ort["failed"] == 1
    assert ort["selected"] == len(EXPECTED)
    x = saved["thresholds"]["x"]
    assert x["bins"] > 256  # grown by whole strides on both sides
    with np.load(model_dir / bc.INPUTS_FILE) as z:
        first = float(np.abs(z["x"][:32]).max())
    assert x["bin_width"] == pytest.approx(2 * first / 256, rel=1e-5)  # the first batch's
    assert x["threshold"] == max(abs(x["lowest"]), abs(x["highest"]))


@pytest.mark.slow
def test_calib_builds_orts_grid(model_dir, tmp_path):
    got = bc.run_case("calib", model_dir, tmp_path, num_bins=256)
    assert got["tensors"] == len(EXPECTED) - 1  # the mask is listed, not collected
    from calib import load_histograms

    x = load_histograms(tmp_path / bc.CALIB_FILE)["x"]
    assert x.is_signed and x.n_bins > 256  # grown on both sides, as ORT grows
    with np.load(model_dir / bc.INPUTS_FILE) as z:
        first = float(np.abs(z["x"][:32]).max())
    assert x.bin_width == pytest.approx(2 * first / 256, rel=1e-5)


@pytest.mark.slow
def test_run_case_refuses_an_unknown_case(model_dir, tmp_path):
    with pytest.raises(ValueError, match="case must be one of"):
        bc.run_case("tensorrt", model_dir, tmp_path)


@pytest.mark.slow
def test_run_end_to_end_in_fresh_processes(model_dir):
    b = bc.run(model_dir, batch_size=32, batches=2, num_bins=256, target_bins=32)
    assert [r.case for r in b.results] == list(bc.CASES)
    assert all(r.error is None for r in b.results), [r.error for r in b.results]
    assert b.samples == 64
    assert b.result("calib").tensors == len(EXPECTED) - 1  # the mask is listed, not collected
    assert b.result("ort").tensors == len(EXPECTED) - 1
    assert all(r.peak_rss_mb > 10 for r in b.results)
    a = b.agreement
    assert a is not None and a.compared == len(EXPECTED) - 1
    assert a.only_calib == () and a.only_ort == ()
    assert set(b.ort_failed) == {"masked"}
    assert 0 <= a.same_bin <= a.within_one_bin <= a.compared

    lines = []
    bc.print_report(b, out=lines.append)
    text = "\n".join(lines)
    for case in bc.CASES:
        assert any(ln.startswith(case) for ln in lines)
    assert "same bin" in text and "within one bin" in text
    assert "ORT failed on 1 tensors" in text and "masked" in text


@pytest.mark.slow
def test_a_failing_case_is_reported_not_raised(model_dir, tmp_path):
    (tmp_path / bc.MODEL_FILE).write_bytes(b"not onnx")
    (tmp_path / bc.INPUTS_FILE).write_bytes((model_dir / bc.INPUTS_FILE).read_bytes())
    b = bc.run(tmp_path, cases=["plain"], batches=1)
    (r,) = b.results
    assert r.error is not None and r.wall_s is None
    lines = []
    bc.print_report(b, out=lines.append)
    assert any("failed" in ln for ln in lines)
    assert b.agreement is None


def test_main_refuses_a_folder_without_the_model(tmp_path, capsys):
    assert bc.main([str(tmp_path)]) == 2
    assert "model.onnx" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_line_runs_it(model_dir, capsys):
    from calib.cli import main

    code = main(["bench", "collect", str(model_dir), "--batches", "1", "--cases", "plain,calib"])
    assert code == 0
    out = capsys.readouterr().out
    assert any(line.startswith("calib") for line in out.splitlines())
