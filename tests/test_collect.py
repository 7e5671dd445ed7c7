"""calib.collect: histograms from a real onnxruntime run, checked count for count.

The models are built with ``onnx.helper`` from small integer weights and inputs that are
multiples of 1/8, so every product and sum is exact in float32: onnxruntime and numpy give
bit-identical activations whatever order they add in, and the histograms can be compared
exactly with ``np.histogram`` of activations computed here.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from calib import Histogram, load_histograms, load_histograms_meta
from calib.cli import main
from calib.collect import HistogramAccumulator, collect_histograms, load_inputs

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

W = np.array([[1, -2, 0], [3, 1, -1], [0, 2, 2], [-1, 0, 1]], dtype=np.float32)
B = np.array([0.5, -1.0, 2.0], dtype=np.float32)


def mlp_model(batch: int | str = "N", extra_constant: bool = True) -> bytes:
    """X[N,4] -> MatMul(W) -> h -> Relu -> r -> Add(B) -> Y[N,3].

    With ``extra_constant`` a Transpose of an initializer (a constant, not an activation) is
    added and consumed by a second MatMul whose output ``y2`` is also a model output.
    """
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["h"], name="mm"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "B"], ["Y"], name="add"),
    ]
    inits = [
        helper.make_tensor("W", TensorProto.FLOAT, W.shape, W.ravel()),
        helper.make_tensor("B", TensorProto.FLOAT, B.shape, B.ravel()),
    ]
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [batch, 3])]
    if extra_constant:
        nodes += [
            helper.make_node("Transpose", ["W"], ["Wt"], name="wt"),  # [3, 4], a constant
            helper.make_node("MatMul", ["Y", "Wt"], ["y2"], name="mm2"),
        ]
        outputs.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, [batch, 4]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, 4])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def activations(x: np.ndarray) -> dict[str, np.ndarray]:
    h = x @ W
    r = np.maximum(h, 0)
    y = r + B
    return {"X": x, "h": h, "r": r, "Y": y, "y2": y @ W.T}


def eighths(rng: np.random.Generator, n: int, scale: int = 16) -> np.ndarray:
    return (rng.integers(-scale, scale + 1, size=(n, 4)) / 8).astype(np.float32)


def test_one_batch_counts_equal_np_histogram():
    x = eighths(np.random.default_rng(0), 40)
    hists = collect_histograms(mlp_model(), {"X": x}, bins=64, batch_size=64)
    assert list(hists) == ["X", "h", "r", "Y", "y2"]  # graph order; Wt is a constant
    for name, a in activations(x).items():
        a = np.abs(a.astype(np.float64)).ravel()
        edges = np.linspace(0, a.max(), 65)
        expected, _ = np.histogram(a, bins=edges)
        np.testing.assert_array_equal(hists[name].edges, edges)
        np.testing.assert_array_equal(hists[name].counts, expected)
        assert hists[name].counts.dtype == np.int64


def test_signed_counts_equal_np_histogram():
    x = eighths(np.random.default_rng(1), 30)
    hists = collect_histograms(mlp_model(), {"X": x}, bins=50, signed=True, batch_size=30)
    for name, a in activations(x).items():
        a = a.astype(np.float64).ravel()
        m = np.abs(a).max()
        expected, _ = np.histogram(a, bins=np.linspace(-m, m, 51))
        np.testing.assert_array_equal(hists[name].counts, expected)
        assert hists[name].is_signed


def test_range_growth_keeps_every_count():
    rng = np.random.default_rng(2)
    small = eighths(rng, 8, scale=4)  # |x| <= 0.5
    large = eighths(rng, 8, scale=40)  # |x| up to 5: every tensor grows
    x = np.concatenate([small, large])
    bins = 32
    hists = collect_histograms(mlp_model(), {"X": x}, bins=bins, batch_size=8, max_bins=4096)
    for name, a in activations(x).items():
        a = np.abs(a.astype(np.float64)).reshape(2, -1)
        m1 = a[0].max()
        h = hists[name]
        assert a[1].max() > m1
        assert h.n_bins > bins
        # The first batch's bins are kept as they were; bins of the same width are appended.
        np.testing.assert_array_equal(h.edges[: bins + 1], np.linspace(0, m1, bins + 1))
        np.testing.assert_allclose(np.diff(h.edges), m1 / bins, rtol=1e-9)
        assert h.edges[-2] < a[1].max() <= h.edges[-1]
        first, _ = np.histogram(a[0], bins=h.edges[: bins + 1])
        second, _ = np.histogram(a[1], bins=h.edges)
        expected = second.copy()
        expected[:bins] += first
        np.testing.assert_array_equal(h.counts, expected)
        assert h.total == a.size


def test_a_batch_of_zeros_does_not_set_the_range():
    x = np.concatenate([-np.ones((4, 4), np.float32), eighths(np.random.default_rng(3), 4)])
    x[4:, 0] = 2.0  # the second batch surely fires the Relu
    hists = collect_histograms(mlp_model(), {"X": x}, bins=16, batch_size=4, tensors="^r$")
    r = activations(x)["r"]
    assert not r[:4].any() and r[4:].any()  # the Relu does not fire on the first batch
    np.testing.assert_array_equal(hists["r"].counts, Histogram.from_samples(r, 16).counts)
    np.testing.assert_array_equal(hists["r"].edges, Histogram.from_samples(r, 16).edges)


def test_batches_fixed_by_the_model_and_progress():
    x = eighths(np.random.default_rng(4), 6)
    calls = []
    hists = collect_histograms(
        mlp_model(batch=2), {"X": x}, bins=8, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(0, 6), (2, 6), (4, 6), (6, 6)]
    assert hists["Y"].total == 18
    with pytest.raises(ValueError, match="not a multiple of the model's fixed batch size 2"):
        collect_histograms(mlp_model(batch=2), {"X": x[:5]})
    with pytest.raises(ValueError, match="batch_size=3, but the model fixes the batch at 2"):
        collect_histograms(mlp_model(batch=2), {"X": x}, batch_size=3)


def test_selection_by_regex_op_type_and_name():
    x = eighths(np.random.default_rng(5), 8)
    model = mlp_model()
    assert list(collect_histograms(model, {"X": x}, tensors="^(h|r)$")) == ["h", "r"]
    assert list(collect_histograms(model, {"X": x}, op_types="MatMul")) == ["h", "y2"]
    assert list(collect_histograms(model, {"X": x}, op_types=["Relu", "Add"])) == ["r", "Y"]
    assert list(collect_histograms(model, {"X": x}, tensors="y", op_types=["MatMul"])) == ["y2"]
    assert list(collect_histograms(model, {"X": x}, tensors=["Y", "X"])) == ["Y", "X"]
    with pytest.raises(ValueError, match="'Matmul' not in the model"):
        collect_histograms(model, {"X": x}, op_types="Matmul")
    with pytest.raises(ValueError, match="'nope' not an input or node output"):
        collect_histograms(model, {"X": x}, tensors=["nope"])
    with pytest.raises(ValueError, match="'Wt' not an input or node output"):
        collect_histograms(model, {"X": x}, tensors=["Wt"])  # a constant
    with pytest.raises(ValueError, match="no float tensor selected"):
        collect_histograms(model, {"X": x}, tensors="^zzz")
    with pytest.raises(ValueError, match="not a regular expression"):
        collect_histograms(model, {"X": x}, tensors="(")


def test_bad_models_and_inputs(tmp_path):
    x = eighths(np.random.default_rng(6), 4)
    model = mlp_model()
    with pytest.raises(ValueError, match="is not an ONNX model"):
        collect_histograms(b"this is not an onnx model", {"X": x})
    with pytest.raises(ValueError, match="is not an ONNX model"):
        collect_histograms(b"", {"X": x})
    text = tmp_path / "model.onnx"
    text.write_text("name,value\nconv1,3\n")
    with pytest.raises(ValueError, match="is not an ONNX model"):
        collect_histograms(text, {"X": x})
    with pytest.raises(ValueError, match="is not a file"):
        collect_histograms(tmp_path / "missing.onnx", {"X": x})
    with pytest.raises(ValueError, match="'x' not an input of the model"):
        collect_histograms(model, {"x": x})
    with pytest.raises(ValueError, match="'Z' not an input of the model"):
        collect_histograms(model, {"X": x, "Z": x})
    with pytest.raises(ValueError, match=r"model wants .*axis 1 is 5, not 4"):
        collect_histograms(model, {"X": np.zeros((4, 5), np.float32)})
    with pytest.raises(ValueError, match=r"shape \(4,\), the model wants \(N, 4\)"):
        collect_histograms(model, {"X": np.zeros(4, np.float32)})
    with pytest.raises(ValueError, match="0 samples"):
        collect_histograms(model, {"X": np.zeros((0, 4), np.float32)})
    with pytest.raises(ValueError, match="holds no arrays"):
        collect_histograms(model, {})
    with pytest.raises(ValueError, match="dtype <U1, the model wants float32"):
        collect_histograms(model, {"X": np.full((2, 4), "a")})
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        collect_histograms(model, {"X": x}, batch_size=0)
    inf = x.copy()
    inf[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"non-finite values .* in samples 0\.\.3"):
        collect_histograms(model, {"X": inf})
    bad = tmp_path / "inputs.npz"
    np.savez(bad, X=np.array([{"a": 1}] * 4, dtype=object))
    with pytest.raises(ValueError, match="no pickle"):
        collect_histograms(model, bad)
    with pytest.raises(ValueError, match="different numbers of samples"):
        load_inputs({"a": np.zeros(3), "b": np.zeros(4)})


def test_external_data_is_read_next_to_the_path(tmp_path):
    from onnx import numpy_helper
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load_model_from_string(mlp_model())
    for t in model.graph.initializer:  # raw_data, so that it can move to a file
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    onnx.save_model(model, tmp_path / "mlp.onnx")
    assert (tmp_path / "weights.bin").exists()
    x = eighths(np.random.default_rng(8), 5)
    hists = collect_histograms(tmp_path / "mlp.onnx", {"X": x}, bins=16)
    y = np.abs(activations(x)["Y"])
    np.testing.assert_array_equal(hists["Y"].counts, Histogram.from_samples(y, 16).counts)
    with pytest.raises(ValueError, match="external data files; pass the model's path"):
        collect_histograms((tmp_path / "mlp.onnx").read_bytes(), {"X": x})


def test_cli_progress_uses_one_tqdm_bar(monkeypatch):
    import types

    from calib.cli import _progress_printer

    bars = []

    class FakeTqdm:
        def __init__(self, total, **kw):
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    progress = _progress_printer()
    for done in (0, 4, 8, 10):
        progress(done, 10)
    assert len(bars) == 1 and bars[0].n == 10 and bars[0].closed


def test_missing_onnxruntime_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="pip install onnx onnxruntime"):
        collect_histograms(mlp_model(), {"X": np.zeros((2, 4), np.float32)})


def test_cli_end_to_end(tmp_path, capsys):
    x = eighths(np.random.default_rng(7), 10)
    (tmp_path / "mlp.onnx").write_bytes(mlp_model())
    np.savez(tmp_path / "data.npz", X=x)
    out = tmp_path / "hist.npz"
    argv = ["collect", str(tmp_path / "mlp.onnx"), "--inputs", str(tmp_path / "data.npz")]
    assert main([*argv, "--out", str(out), "--bins", "32", "--op-types", "MatMul,Relu"]) == 0
    cap = capsys.readouterr()
    assert "wrote 3 histograms from 10 samples" in cap.out
    assert "10/10" in cap.err  # the progress bar (tqdm) or the plain counter
    hists = load_histograms(out)
    assert list(hists) == ["h", "r", "y2"]
    r = np.abs(activations(x)["r"]).ravel()
    np.testing.assert_array_equal(hists["r"].counts, Histogram.from_samples(r, 32).counts)
    meta = load_histograms_meta(out)
    assert meta["model"] == "mlp.onnx" and meta["n_samples"] == 10 and meta["bins"] == 32
    assert meta["signed"] is False and meta["calib_version"] and meta["date"]
    # The threshold table reads the file back.
    assert main([str(out), "--format", "csv", "--target-bins", "8"]) == 0
    assert capsys.readouterr().out.startswith("layer,")
    # Errors are one line on stderr and exit code 2.
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    assert main(["collect", str(tmp_path / "bad.onnx"), "--inputs", str(tmp_path / "data.npz"),
                 "--out", str(out), "--quiet"]) == 2  # fmt: skip
    assert "is not an ONNX model" in capsys.readouterr().err


# -- the accumulator on its own ---------------------------------------------------------------


def test_growth_past_max_bins_coarsens_without_losing_a_count():
    acc = HistogramAccumulator(bins=8, max_bins=16)
    b1 = np.array([0.1, 0.3, 0.5, 1.0])
    b2 = np.array([0.2, 9.5])  # would need 76 bins of width 1/8
    acc.add(b1)
    acc.add(b2)
    h = acc.histogram
    assert h.n_bins <= 16 and h.edges[0] == 0 and h.edges[-1] >= 9.5
    np.testing.assert_allclose(np.diff(h.edges), 1.0, rtol=1e-9)  # 1/8 doubled three times
    # Whole bins were summed, so the first batch's max (its closed last edge) stays below 1.
    expected, _ = np.histogram(np.concatenate([b1[:-1], b2]), bins=h.edges)
    expected[np.searchsorted(h.edges, 1.0) - 1] += 1
    np.testing.assert_array_equal(h.counts, expected)


@pytest.mark.parametrize("bins", [8, 9, 10])
def test_signed_coarsening_keeps_zero_in_place(bins):
    acc = HistogramAccumulator(bins=bins, signed=True, max_bins=bins + 2)
    acc.add(np.array([-1.0, -0.2, 0.0, 0.3, 1.0]))
    acc.add(np.array([-7.0, 0.05, 6.0]))
    h = acc.histogram
    assert h.total == 8 and h.n_bins <= bins + 2
    np.testing.assert_allclose(h.edges, -h.edges[::-1], atol=1e-12)
    if h.n_bins % 2:
        assert h.edges[h.n_bins // 2] < 0 < h.edges[h.n_bins // 2 + 1]
    zero_bin = np.searchsorted(h.edges, 0.0, side="right") - 1
    assert h.counts[zero_bin] >= 2  # 0.0 and 0.05 stay together at the centre


@pytest.mark.parametrize("signed", [False, True])
def test_empty_batches_make_no_histogram(signed):
    acc = HistogramAccumulator(bins=8, signed=signed)
    assert acc.histogram is None
    for _ in range(3):
        acc.add(np.array([], dtype=np.float64))
    assert acc.histogram is None and acc.n_values == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-1e4, 1e4, allow_subnormal=False), min_size=0, max_size=30),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
    st.integers(2, 40),
)
def test_accumulator_invariants(batches, signed, bins):
    n = sum(len(b) for b in batches)
    assume(n > 0)  # no values at all: test_empty_batches_make_no_histogram
    acc = HistogramAccumulator(bins=bins, signed=signed)
    for b in batches:
        acc.add(np.array(b, dtype=np.float64))
    h = acc.histogram
    assert h.total == n and h.counts.dtype == np.int64
    assert h.n_bins <= 8 * bins and h.is_uniform
    data = np.concatenate([np.array(b, dtype=np.float64) for b in batches])
    data = data if signed else np.abs(data)
    # Past an edge by under 1e-9 of a bin is rounding (merge's slack): counted in the edge bin.
    slack = 1e-9 * h.bin_width
    assert h.edges[0] - slack <= data.min() and data.max() <= h.edges[-1] + slack
