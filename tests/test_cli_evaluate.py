"""``python -m calib evaluate`` as a user runs it: histograms given or collected, a held-out
share or separate evaluation inputs, a table or the JSON the issue names."""

from __future__ import annotations

import json

import numpy as np
import pytest

import calib
from calib.cli import main
from tests.test_evaluate import _histograms, attention_model, quarters

pytest.importorskip("onnxruntime")


@pytest.fixture
def files(tmp_path):
    x = quarters(np.random.default_rng(0), (20, 4, 8))
    model = tmp_path / "m.onnx"
    model.write_bytes(attention_model())
    np.savez(tmp_path / "x.npz", X=x)
    np.savez(tmp_path / "e.npz", X=x[:6])
    calib.save_histograms(tmp_path / "h.npz", _histograms(x))
    return tmp_path


def test_json_with_histograms_and_eval_inputs(files, capsys):
    out = files / "report.json"
    code = main(["evaluate", str(files / "m.onnx"), "--histograms", str(files / "h.npz"),
                 "--eval-inputs", str(files / "e.npz"), "--methods", "max,entropy:mxnet",
                 "--workers", "1", "--format", "json", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(out.read_text())
    assert doc["outputs"] == ["Y", "Z"]
    assert [(m["name"], m["variant"]) for m in doc["methods"]] == [
        ("max", ""),
        ("entropy", "mxnet"),
    ]
    assert len(doc["sensitivity"]) == 5 and doc["evaluation"]["data"] == "e.npz"
    assert doc["evaluation"]["samples"] == 6
    assert doc["quantized"]["op_types"] == ["MatMul", "Gemm", "Conv"]


def test_table_collecting_from_the_inputs_and_holding_out_the_last_fifth(files, capsys):
    code = main(["evaluate", str(files / "m.onnx"), "--inputs", str(files / "x.npz"),
                 "--methods", "max,percentile", "--tensors", "^[Xra]$", "--workers", "1",
                 "--quiet"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "evaluation: x.npz: samples 16..19 of 20 (the last 20%), held out" in text
    assert "quantized: 3 activation tensors" in text and "names matching '^[Xra]$'" in text
    assert "Methods: every tensor quantized" in text and "Sensitivity of " in text
    assert "Keep in float (target 30 dB" in text and "Spearman" in text


def test_errors_name_what_is_wrong(files, capsys):
    m = str(files / "m.onnx")
    assert main(["evaluate", m, "--histograms", str(files / "h.npz")]) == 2
    assert "give --eval-inputs, or --inputs" in capsys.readouterr().err
    args = ["evaluate", m, "--eval-inputs", str(files / "e.npz"), "--histograms"]
    assert main([*args, str(files / "h.npz"), "--methods", "kl", "--quiet"]) == 2
    assert "calibrator 'kl': unknown method 'kl'" in capsys.readouterr().err
    assert main([*args, str(files / "h.npz"), "--out", str(files / "h.npz")]) == 2
    assert "never written over" in capsys.readouterr().err
