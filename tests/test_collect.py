"""calib.collect: histograms from a real onnxruntime run, checked count for count.

The models are built with ``onnx.helper`` from small integer weights and inputs that are
multiples of 1/8, so every product and sum is exact in float32: onnxruntime and numpy give
bit-identical activations whatever order they add in, and the histograms can be compared
exactly with ``np.histogram`` of activations computed here. The collector's bins are
``[-m, m]`` in ``2 * bins`` bins; with these dyadic values every edge and every quotient is
exact, so ``np.histogram`` on the same edges is the reference, count for count.
"""

from __future__ import annotations

import math
import platform
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from calib import load_histograms, load_histograms_meta
from calib.cli import main
from calib.collect import (
    MASK_MAGNITUDE,
    HistogramAccumulator,
    bin_counts,
    collect_histograms,
    load_inputs,
)

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


def grid(m: float, bins: int) -> np.ndarray:
    """The collector's edges for a first range ``[-m, m]``: 2 * bins bins of width m / bins."""
    return (m / bins) * np.arange(-bins, bins + 1, dtype=np.float64)


def test_one_batch_counts_equal_np_histogram():
    x = eighths(np.random.default_rng(0), 40)
    hists = collect_histograms(mlp_model(), {"X": x}, bins=64, batch_size=64)
    assert list(hists) == ["X", "h", "r", "Y", "y2"]  # graph order; Wt is a constant
    for name, a in activations(x).items():
        a = a.astype(np.float64).ravel()
        edges = grid(np.abs(a).max(), 64)
        expected, _ = np.histogram(a, bins=edges)
        np.testing.assert_array_equal(hists[name].edges, edges)
        np.testing.assert_array_equal(hists[name].counts, expected)
        assert hists[name].counts.dtype == np.int64


def test_the_fold_is_the_abs_histogram_but_for_negative_values_on_an_edge():
    """What the |x| variants read: signed=False (and Histogram.fold of the default)."""
    x = eighths(np.random.default_rng(1), 30)
    folded = collect_histograms(mlp_model(), {"X": x}, bins=50, signed=False, batch_size=30)
    signed = collect_histograms(mlp_model(), {"X": x}, bins=50, batch_size=30)
    for name, a in activations(x).items():
        a = a.astype(np.float64).ravel()
        m = np.abs(a).max()
        w = m / 50
        assert folded[name] == signed[name].fold()
        # np.histogram of |x| on [0, m]: the same but for negative values exactly on an
        # inner edge, which the fold counts one bin lower ((k w, (k + 1) w] for x < 0).
        k = -a / w
        on_edge = (a < 0) & (a > -m) & (k == np.round(k))
        expected, _ = np.histogram(np.abs(a[~on_edge]), bins=np.linspace(0, m, 51))
        np.add.at(expected, np.round(k[on_edge]).astype(int) - 1, 1)
        np.testing.assert_array_equal(folded[name].counts, expected)
        np.testing.assert_array_equal(folded[name].edges, np.abs(grid(m, 50)[50:]))


def test_range_growth_keeps_every_count():
    rng = np.random.default_rng(2)
    small = eighths(rng, 8, scale=4)  # |x| <= 0.5
    large = eighths(rng, 8, scale=40)  # |x| up to 5: every tensor grows
    x = np.concatenate([small, large])
    bins = 32
    hists = collect_histograms(mlp_model(), {"X": x}, bins=bins, batch_size=8, max_bins=4096)
    for name, a in activations(x).items():
        a = a.astype(np.float64).reshape(2, -1)
        m1, m2 = np.abs(a[0]).max(), np.abs(a[1]).max()
        w = m1 / bins
        h = hists[name]
        assert m2 > m1
        g = (h.n_bins - 2 * bins) // 2  # bins appended on each side
        # Just enough bins of the first batch's width, on both sides, to cover the second.
        assert g == math.ceil((m2 - m1) / w) and h.n_bins == 2 * (bins + g)
        np.testing.assert_allclose(h.edges, w * np.arange(-bins - g, bins + g + 1), rtol=1e-15)
        c1, _ = np.histogram(a[0], bins=grid(m1, bins))
        c2, _ = np.histogram(a[1], bins=h.edges)
        c2[g : g + 2 * bins] += c1  # the first batch's counts stay where they were
        np.testing.assert_array_equal(h.counts, c2)
        assert h.total == a.size


def test_a_batch_of_zeros_does_not_set_the_range():
    x = np.concatenate([-np.ones((4, 4), np.float32), eighths(np.random.default_rng(3), 4)])
    x[4:, 0] = 2.0  # the second batch surely fires the Relu
    hists = collect_histograms(mlp_model(), {"X": x}, bins=16, batch_size=4, tensors="^r$")
    r = activations(x)["r"]
    assert not r[:4].any() and r[4:].any()  # the Relu does not fire on the first batch
    expected, _ = np.histogram(r, bins=grid(r.max(), 16))
    np.testing.assert_array_equal(hists["r"].counts, expected)
    assert hists["r"].total == r.size  # the held-back zeros are counted too


def test_batches_fixed_by_the_model_and_progress():
    x = eighths(np.random.default_rng(4), 6)
    calls = []
    hists = collect_histograms(mlp_model(batch=2), {"X": x}, bins=8, progress=calls.append)
    assert [(p.samples, p.total_samples, p.batches, p.total_batches) for p in calls] == [
        (0, 6, 0, 3), (2, 6, 1, 3), (4, 6, 2, 3), (6, 6, 3, 3),
    ]  # fmt: skip
    assert all(p.tensors == 5 for p in calls) and calls[-1].left_s == 0
    assert hists["Y"].total == 18
    with pytest.raises(ValueError, match="not a multiple of the model's fixed batch size 2"):
        collect_histograms(mlp_model(batch=2), {"X": x[:5]})
    with pytest.raises(ValueError, match="batch_size=3, but the model fixes the batch at 2"):
        collect_histograms(mlp_model(batch=2), {"X": x}, batch_size=3)


def test_selection_by_regex_op_type_and_name():
    x = eighths(np.random.default_rng(5), 8)
    model = mlp_model()
    assert list(collect_histograms(model, {"X": x}, tensors="^(h|r)$")) == ["h", "r"]
    # op types select the activations their nodes read (calib.selection), as evaluate does
    assert list(collect_histograms(model, {"X": x}, op_types="MatMul")) == ["X", "Y"]
    assert list(collect_histograms(model, {"X": x}, op_types=["Relu", "Add"])) == ["h", "r"]
    assert list(collect_histograms(model, {"X": x}, tensors="Y", op_types=["MatMul"])) == ["Y"]
    assert list(collect_histograms(model, {"X": x}, tensors=["Y", "X"])) == ["X", "Y"]
    assert list(collect_histograms(model, {"X": x}, op_types="all")) == ["X", "h", "r", "Y", "y2"]
    with pytest.raises(ValueError, match="none of 'Matmul' is in the model"):
        collect_histograms(model, {"X": x}, op_types="Matmul")
    with pytest.raises(ValueError, match="'nope' not an input or node output"):
        collect_histograms(model, {"X": x}, tensors=["nope"])
    with pytest.raises(ValueError, match="'Wt' not an input or node output"):
        collect_histograms(model, {"X": x}, tensors=["Wt"])  # a constant
    with pytest.raises(ValueError, match="no tensor selected"):
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
    with pytest.raises(ValueError, match="missing"):
        collect_histograms(model, {})
    with pytest.raises(ValueError, match="no batches"):
        collect_histograms(model, [])
    with pytest.raises(ValueError, match=r"\(batch 1\): a batch must be a dict"):
        collect_histograms(model, [{"X": x}, x])
    with pytest.raises(ValueError, match="batch_size applies to a whole set"):
        collect_histograms(model, [{"X": x}], batch_size=2)
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
    y = activations(x)["Y"]
    expected, _ = np.histogram(y, bins=grid(np.abs(y).max(), 16))
    np.testing.assert_array_equal(hists["Y"].counts, expected)
    with pytest.raises(ValueError, match="external data files; pass the model's path"):
        collect_histograms((tmp_path / "mlp.onnx").read_bytes(), {"X": x})


def test_cli_progress_line_names_tensors_batches_and_time_left():
    import io

    from calib.cli import _progress_printer
    from calib.collect import Progress

    out = io.StringIO()  # not a terminal: whole lines, the first and the last at least
    progress = _progress_printer(out)
    for k in range(4):
        progress(Progress(4 * k, 12, k, 3, 7, 2.0 * k))
    lines = out.getvalue().splitlines()
    assert lines[0] == "collect: 7 tensors, batch 0/3, 0/12 samples, 0 s"
    assert lines[-1] == "collect: 7 tensors, batch 3/3, 12/12 samples, 6 s, ~0 s left"
    assert Progress(4, 12, 1, 3, 7, 2.0).left_s == pytest.approx(4.0)  # 2 s per 4 samples


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
    assert main([*argv, "--out", str(out), "--bins", "32", "--op-types", "MatMul,Add"]) == 0
    cap = capsys.readouterr()
    assert "wrote 3 histograms from 10 samples (1 batches)" in cap.out
    assert "10/10 samples" in cap.err  # the progress line
    hists = load_histograms(out)
    assert list(hists) == ["X", "r", "Y"]  # what MatMul and Add read
    r = activations(x)["r"].ravel()
    expected, _ = np.histogram(r, bins=grid(r.max(), 32))
    np.testing.assert_array_equal(hists["r"].counts, expected)
    meta = load_histograms_meta(out)
    assert meta["model"] == "mlp.onnx" and meta["n_samples"] == 10 and meta["bins"] == 32
    assert meta["signed"] is True and meta["calib_version"] and meta["date"]
    assert meta["not_activations"] == {} and meta["batches"] == 1
    # The threshold table reads the file back.
    assert main([str(out), "--format", "csv", "--target-bins", "8"]) == 0
    assert capsys.readouterr().out.startswith("layer,")
    # Errors are one line on stderr and exit code 2.
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    assert main(["collect", str(tmp_path / "bad.onnx"), "--inputs", str(tmp_path / "data.npz"),
                 "--out", str(out), "--quiet"]) == 2  # fmt: skip
    assert "is not an ONNX model" in capsys.readouterr().err
    # The output never replaces an input.
    for path in (tmp_path / "mlp.onnx", tmp_path / "data.npz"):
        before = path.read_bytes()
        assert main([*argv, "--out", str(path), "--quiet"]) == 2
        assert "never written over" in capsys.readouterr().err
        assert path.read_bytes() == before


# -- the accumulator on its own ---------------------------------------------------------------


def floor_bins(x: np.ndarray, n: int, w: float) -> np.ndarray:
    """The binning rule one value at a time, in exact rational arithmetic: bin
    floor(x / w) + n; the range is closed, so +-m (a hair past +-n w when n w rounds below
    m) go in the outermost bins (a slow, obviously-correct reference)."""
    wq = Fraction(w)
    counts = np.zeros(2 * n, np.int64)
    for v in x.tolist():
        k = math.floor(Fraction(v) / wq) + n
        counts[max(0, min(k, 2 * n - 1))] += 1
    return counts


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_subnormal=False, width=32), min_size=1, max_size=60),
    st.integers(1, 64),
)
def test_bin_counts_is_the_floor_rule(values, n):
    x = np.array(values, dtype=np.float32)
    m = float(np.abs(x).max())
    assume(m > 0)
    w = m / n
    # A value within 1e-12 of an edge (relative) may round to either side: not this test's.
    q = [Fraction(v) / Fraction(w) for v in x.tolist()]
    keep = np.array([abs(v) == n or abs(v - round(v)) > 1e-12 * n for v in q])
    np.testing.assert_array_equal(bin_counts(x[keep], n, w), floor_bins(x[keep], n, w))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-64, 64), min_size=1, max_size=60), st.integers(-8, 8))
def test_bin_counts_puts_values_on_an_edge_in_the_bin_it_opens(ks, e):
    """Values exactly on edges (k w with w a power of two: every quotient exact)."""
    n, w = 64, 2.0**e
    x = np.array(ks, dtype=np.float64) * w
    np.testing.assert_array_equal(bin_counts(x, n, w), floor_bins(x, n, w))
    expected, _ = np.histogram(x, bins=w * np.arange(-n, n + 1))  # the same left-closed bins
    np.testing.assert_array_equal(bin_counts(x, n, w), expected)


def test_bin_counts_keeps_a_quotient_rounded_below_the_first_edge_in_the_first_bin():
    """-m / (m / n) rounds to a hair below -n for some m: that value is the first edge's,
    not a bin below the grid (found by hypothesis: m = 7236.3125, n = 23)."""
    m, n = 7236.3125, 23
    w = m / n
    assert -m / w < -n  # the rounding this test is about
    np.testing.assert_array_equal(bin_counts(np.array([-m, m]), n, w), np.r_[1, [0] * 44, 1])


def test_bin_counts_takes_float16_float64_and_ints():
    x64 = np.array([-3.0, -1.5, 0.0, 0.25, 2.9999, 3.0])
    want = floor_bins(x64, 6, 0.5)
    for dtype in (np.float16, np.float32, np.float64):
        np.testing.assert_array_equal(bin_counts(x64.astype(dtype), 6, 0.5), want)
    np.testing.assert_array_equal(bin_counts(np.array([-2, 0, 1, 2]), 2, 1.0), [1, 0, 1, 2])


def test_growth_past_max_bins_coarsens_without_losing_a_count():
    acc = HistogramAccumulator(bins=8, max_bins=16)
    b1 = np.array([0.1, 0.3, 0.5, 1.0])  # w = 1/8, 8 bins a side
    b2 = np.array([-0.2, 9.5])  # would need 76 bins a side of width 1/8
    acc.add(b1)
    acc.add(b2)
    h = acc.histogram
    assert h.n_bins <= 32 and h.edges[-1] >= 9.5 and h.edges[0] == -h.edges[-1]
    np.testing.assert_allclose(np.diff(h.edges), 1.0, rtol=1e-9)  # 1/8 doubled three times
    assert h.edges[h.n_bins // 2] == 0  # 0 stays an edge
    # Whole bins were summed, so the first batch's max (closed in its last bin) stays below 1.
    expected, _ = np.histogram(np.concatenate([b1[:-1], b2]), bins=h.edges)
    expected[np.searchsorted(h.edges, 1.0) - 1] += 1
    np.testing.assert_array_equal(h.counts, expected)


@pytest.mark.parametrize("bins", [8, 9, 10])
def test_coarsening_keeps_zero_an_edge(bins):
    acc = HistogramAccumulator(bins=bins, max_bins=bins + 2)
    acc.add(np.array([-1.0, -0.2, 0.0, 0.3, 1.0]))
    acc.add(np.array([-7.0, 0.05, 6.0]))
    h = acc.histogram
    assert h.total == 8 and h.n_bins <= 2 * (bins + 2) and h.n_bins % 2 == 0
    np.testing.assert_allclose(h.edges, -h.edges[::-1], atol=1e-12)
    assert h.edges[h.n_bins // 2] == 0
    above = [0.0, 0.05, 0.3, 6.0]
    first_bin = sum(0 <= v < h.bin_width for v in above)
    # The first batch's max, 1.0, sat in its closed last bin [1 - w0, 1], and whole bins
    # were summed: it stays in the bin that held 1 - w0 (w0 = 1 / bins).
    first_bin += h.bin_width > 1 - 1 / bins
    assert h.counts[h.n_bins // 2] == first_bin


@pytest.mark.parametrize("signed", [False, True])
def test_empty_batches_make_no_histogram(signed):
    acc = HistogramAccumulator(bins=8, signed=signed)
    assert acc.histogram is None
    for _ in range(3):
        acc.add(np.array([], dtype=np.float64))
    assert acc.histogram is None and acc.n_values == 0


def test_a_mask_is_recognised_and_stops_counting():
    acc = HistogramAccumulator(bins=8, name="mask")
    acc.add(np.array([0.0, -1.0, 2.0]))
    acc.add(np.array([0.0, np.finfo(np.float32).min], dtype=np.float32))
    assert acc.not_activation and "additive mask" in acc.not_activation
    acc.add(np.array([np.nan]))  # no longer looked at
    assert acc.n_values == 3
    just_below = HistogramAccumulator(bins=8)
    just_below.add(np.array([-0.5 * MASK_MAGNITUDE, 1.0]))
    assert just_below.not_activation is None and just_below.histogram.total == 2


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
# a value so small that bins of MIN_MAGNITUDE had edges that rounded closer than that
@example(batches=[[4.2413743205139515e-223]], signed=False, bins=19)
def test_accumulator_invariants(batches, signed, bins):
    n = sum(len(b) for b in batches)
    assume(n > 0)  # no values at all: test_empty_batches_make_no_histogram
    acc = HistogramAccumulator(bins=bins, signed=signed)
    for b in batches:
        acc.add(np.array(b, dtype=np.float64))
    h = acc.histogram
    assert h.total == n and h.counts.dtype == np.int64
    assert h.n_bins <= (16 if signed else 8) * bins and h.is_uniform
    assert h == (acc.signed_histogram if signed else acc.signed_histogram.fold())
    data = np.concatenate([np.array(b, dtype=np.float64) for b in batches])
    data = data if signed else np.abs(data)
    # Past an edge by under 1e-9 of a bin is rounding (growth's slack): in the edge bin.
    slack = 1e-9 * h.bin_width
    assert h.edges[0] - slack <= data.min() and data.max() <= h.edges[-1] + slack


# -- a small attention-like model: re-layouts, an additive mask, variable length ---------------

WA = np.array([[1, 0, -1], [2, 1, 0], [0, -1, 1], [1, 1, 1]], dtype=np.float32)
WV = np.array([[1], [-2], [1]], dtype=np.float32)
F32_MIN = float(np.finfo(np.float32).min)


def attention_model() -> bytes:
    """X[N, L, 4], M[N, L] (1 = a token, 0 = padding):
    h = X @ WA; t = Transpose(h); r = Reshape(t) (two re-layouts of h);
    logits = Squeeze(h @ WV); ext = (1 - M) * float32.min (an additive mask);
    masked = logits + ext; P = Softmax(masked)."""
    nodes = [
        helper.make_node("MatMul", ["X", "WA"], ["h"]),
        helper.make_node("Transpose", ["h"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["t", "flat"], ["r"]),
        helper.make_node("MatMul", ["h", "WV"], ["lv"]),
        helper.make_node("Squeeze", ["lv", "last"], ["logits"]),
        helper.make_node("Sub", ["one", "M"], ["pad"]),
        helper.make_node("Mul", ["pad", "fmin"], ["ext"]),
        helper.make_node("Add", ["logits", "ext"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["P"], axis=-1),
    ]
    inits = [
        helper.make_tensor("WA", TensorProto.FLOAT, WA.shape, WA.ravel()),
        helper.make_tensor("WV", TensorProto.FLOAT, WV.shape, WV.ravel()),
        helper.make_tensor("flat", TensorProto.INT64, [2], [0, -1]),
        helper.make_tensor("last", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("fmin", TensorProto.FLOAT, [], [F32_MIN]),
    ]
    graph = helper.make_graph(
        nodes,
        "attention",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", "L", 4]),
            helper.make_tensor_value_info("M", TensorProto.FLOAT, ["N", "L"]),
        ],
        [helper.make_tensor_value_info("P", TensorProto.FLOAT, ["N", "L"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def sentences(rng: np.random.Generator, lengths: list[int]) -> list[dict[str, np.ndarray]]:
    """One batch per length: 3 sequences of that length, the last padded by one token."""
    out = []
    for length in lengths:
        x = (rng.integers(-16, 17, size=(3, length, 4)) / 8).astype(np.float32)
        m = np.ones((3, length), np.float32)
        m[-1, -1] = 0.0
        out.append({"X": x, "M": m})
    return out


def test_relayouts_are_counted_once_and_masks_are_listed_not_calibrated():
    batches = sentences(np.random.default_rng(10), [4, 4])
    found = collect_histograms(attention_model(), batches, bins=16)
    assert found.aliases == {"t": "h", "r": "h", "logits": "lv"}
    assert found["t"] == found["h"] and found["r"] == found["h"]
    assert set(found.not_activations) == {"ext", "masked"}
    assert "additive mask" in found.not_activations["masked"]
    assert "ext" not in found and "masked" not in found  # no histogram, no threshold
    assert list(found) == ["X", "M", "h", "t", "r", "lv", "logits", "pad", "P"]
    assert (found.n_samples, found.n_batches) == (6, 2)


def test_variable_length_batches_count_exactly_what_each_batch_holds(tmp_path):
    """Batches of different sequence lengths in one pass: the counts are those of feeding
    each batch's activations (computed here) to an accumulator, in the same order; the
    same batches from a batched .npz (<input>__b<k>) give the same histograms."""
    batches = sentences(np.random.default_rng(11), [3, 7, 2, 5])
    found = collect_histograms(attention_model(), batches, bins=32, tensors="^(h|lv|pad)$")
    accs = {n: HistogramAccumulator(bins=32) for n in ("h", "lv", "pad")}
    for b in batches:
        h = b["X"] @ WA
        for name, a in (("h", h), ("lv", h @ WV), ("pad", 1 - b["M"])):
            accs[name].add(a)
    for name, acc in accs.items():
        assert found[name] == acc.histogram, name
    assert found["h"].total == sum(b["X"].shape[0] * b["X"].shape[1] * 3 for b in batches)
    path = tmp_path / "by_length.npz"
    np.savez(path, **{f"{k}__b{i}": v for i, b in enumerate(batches) for k, v in b.items()})
    from_file = collect_histograms(attention_model(), path, bins=32, tensors="^(h|lv|pad)$")
    assert dict(from_file.histograms) == dict(found.histograms)
    # any iterable, not just a list: a generator of batches (no total known in advance)
    calls = []
    gen = collect_histograms(attention_model(), (b for b in batches), bins=32,
                             tensors="^(h|lv|pad)$", progress=calls.append)  # fmt: skip
    assert dict(gen.histograms) == dict(found.histograms)
    assert calls[-1].total_samples is None and calls[-1].samples == 12


def test_batched_inputs_file_is_checked(tmp_path):
    x = np.zeros((2, 3, 4), np.float32)
    m = np.ones((2, 3), np.float32)
    cases = {
        "gap": ({"X__b0": x, "M__b0": m, "X__b2": x, "M__b2": m}, "no batch 1"),
        "missing": ({"X__b0": x, "M__b0": m, "X__b1": x}, "every batch needs every input"),
        "mixed": ({"X__b0": x, "M": m}, "mixes batched keys"),
        "samples": ({"X__b0": x, "M__b0": m[:1]}, "different numbers of samples"),
    }
    for name, (arrays, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=message):
            load_inputs(path)
    # counted widened, 8 bytes an element: 4096 float32 are 32768 bytes, not 16384
    np.savez(tmp_path / "big.npz", X=np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match=r"widened to 8 bytes an element\) to more than"):
        load_inputs(tmp_path / "big.npz", max_bytes=20_000)
    assert load_inputs(tmp_path / "big.npz", max_bytes=40_000)["X"].shape == (64, 64)
    # an .npy is one unnamed array: said so (it was a TypeError)
    np.save(tmp_path / "one.npy", np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"not an \.npz of named arrays .*np\.savez"):
        load_inputs(tmp_path / "one.npy")


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_heap_reuse_keeps_a_freed_activation_mapped_for_the_next():
    """calib/collect/_heap.py: within heap_reuse, a 24 MB buffer malloc'd, written, freed
    and malloc'd again (ONNX Runtime's output of one batch, then the next's) is not mapped
    and zeroed afresh by the kernel: five more rounds fault in fewer pages than one round's
    buffer holds. With glibc's defaults (or a trim threshold that gives the heap back, or
    an mmap threshold under 24 MB) every round faults in every page."""
    import ctypes
    import ctypes.util
    import resource

    from calib.collect._heap import heap_reuse

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
    libc.free.argtypes, libc.free.restype = [ctypes.c_void_p], None
    size = 24 << 20

    def faults_of(rounds: int) -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            p = libc.malloc(size)
            ctypes.memset(p, 1, size)  # touch every page, as an output is written
            libc.free(p)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    pages = size // resource.getpagesize()
    with heap_reuse():
        pass
    # on the way out it set glibc's default thresholds back: mapped afresh every round
    assert faults_of(2) > pages
    with heap_reuse() as arranged:
        assert arranged
        faults_of(1)
        again = faults_of(5)
    assert again < pages
