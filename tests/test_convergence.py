"""Convergence while collecting: traces recorded batch by batch (calib.collect), stored
with the histograms (calib.io), and read back as when each threshold settled
(calib.convergence, python -m calib converge)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import calib
from calib.cli import main
from calib.collect import CONVERGENCE_METHODS, collect_histograms
from calib.convergence import samples_to_settle, settled_at, settled_share, settling_table
from calib.io import Trace, save_histograms
from calib.methods import amax_max, amax_percentile

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from test_collect import eighths, mlp_model


def batches_x(seed: int = 0, n: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = eighths(rng, n, scale=16)
    x[24:] *= 3  # later batches reach further: the thresholds move, then settle
    return x


def test_each_batch_traces_the_sweep_on_what_was_collected_so_far():
    x = batches_x()
    found = collect_histograms(mlp_model(), {"X": x}, bins=256, batch_size=8, convergence=True)
    assert set(found.traces) == set(found)
    for name in ("h", "Y"):
        t = found.traces[name]
        np.testing.assert_array_equal(t.samples, [8, 16, 24, 32, 40, 48])
        assert list(t.amax) == list(CONVERGENCE_METHODS)
        for k in range(1, 7):  # re-collect the first k batches: the same thresholds
            again = collect_histograms(mlp_model(), {"X": x[: 8 * k]}, bins=256, batch_size=8)
            h = again[name]
            assert t.amax["max"][k - 1] == amax_max(h)
            assert t.amax["percentile"][k - 1] == amax_percentile(h)
            for variant in ("seed", "onnxruntime"):
                want = calib.kl_sweep(h, variant=variant).amax
                assert t.amax[f"entropy:{variant}"][k - 1] == want, (name, k, variant)


def test_a_file_written_by_collect_holds_a_trace_for_every_tensor(tmp_path, capsys):
    x = batches_x(1)
    (tmp_path / "m.onnx").write_bytes(mlp_model())
    np.savez(tmp_path / "x.npz", X=x)
    out = tmp_path / "h.npz"
    argv = [
        "collect",
        str(tmp_path / "m.onnx"),
        "--inputs",
        str(tmp_path / "x.npz"),
        "--out",
        str(out),
        "--bins",
        "256",
        "--batch-size",
        "8",
        "--convergence",
        "--quiet",
    ]
    assert main(argv) == 0  # fmt: skip
    hists = calib.load_histograms(out)
    traces = calib.load_convergence(out)
    assert set(traces) == set(hists)
    for name, h in hists.items():
        t = traces[name]
        assert t.samples.size == 6 and t.samples[-1] == 48  # one entry per batch
        for variant in ("seed", "onnxruntime"):  # the last one is the final histogram's
            assert t.amax[f"entropy:{variant}"][-1] == calib.kl_sweep(h, variant=variant).amax
    capsys.readouterr()
    assert main(["converge", str(out)]) == 0
    table = capsys.readouterr().out
    assert "entropy:seed" in table and "95% settled" in table
    assert main(["converge", str(out), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in rows] == list(CONVERGENCE_METHODS)
    assert all(r["total_samples"] == 48 for r in rows)
    # A file without traces says how to get them.
    save_histograms(tmp_path / "plain.npz", hists)
    assert calib.load_convergence(tmp_path / "plain.npz") == {}
    assert main(["converge", str(tmp_path / "plain.npz")]) == 2
    assert "collect with --convergence" in capsys.readouterr().err


def test_traces_round_trip_and_bad_ones_are_refused(tmp_path):
    h = calib.Histogram.from_samples(np.arange(10.0), 16)
    t = Trace(
        np.array([4, 8]), {"max": np.array([1.0, 2.0]), "entropy:seed": np.array([0.5, math.nan])}
    )
    save_histograms(tmp_path / "t.npz", {"a": h, "b": h}, traces={"a": t})
    back = calib.load_convergence(tmp_path / "t.npz")
    assert list(back) == ["a"]
    np.testing.assert_array_equal(back["a"].amax["entropy:seed"], [0.5, math.nan])
    with pytest.raises(ValueError, match="other methods or samples"):
        other = Trace(np.array([4]), {"max": np.array([1.0])})
        save_histograms(tmp_path / "u.npz", {"a": h, "b": h}, traces={"a": t, "b": other})
    arrays = dict(np.load(tmp_path / "t.npz"))
    arrays["trace_0"] = arrays["trace_0"][:, :1]  # one batch short
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"trace_0 \('a'\) must be float, 2 methods x 2"):
        calib.load_convergence(tmp_path / "bad.npz")


def settled_slow(a: list[float], tol: float) -> int | None:
    """The definition, one batch at a time: the first j from which every later value is
    within tol of the last one."""
    final = a[-1]
    if not math.isfinite(final) or final == 0:
        return None
    for j in range(len(a)):
        if all(abs(v - final) <= tol * abs(final) for v in a[j:]):
            return j
    return None  # unreachable: j = len(a) - 1 always qualifies


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.floats(0, 10, allow_nan=False), min_size=5, max_size=5), min_size=1,
             max_size=8),
    st.sampled_from([0.0, 0.01, 0.2]),
)  # fmt: skip
def test_settling_matches_its_definition(rows, tol):
    samples = np.arange(1, 6) * 10
    traces = {f"t{i}": Trace(samples, {"max": np.array(r)}) for i, r in enumerate(rows)}
    at = [settled_slow(r, tol) for r in rows]
    assert [settled_at(t, "max", tol) for t in traces.values()] == at
    _, share = settled_share(traces, "max", tol)
    defined = [j for j in at if j is not None]
    for k in range(5):
        want = sum(j <= k for j in defined) / len(defined) if defined else math.nan
        assert share[k] == pytest.approx(want, nan_ok=True)
    if defined:
        assert samples_to_settle(traces, "max", 1.0, tol) == samples[max(defined)]
        row = settling_table(traces, tol)[0]
        assert row.samples_all == samples[max(defined)] and row.tensors == len(defined)


def test_bad_arguments_are_named():
    t = Trace(np.array([1]), {"max": np.array([1.0])})
    with pytest.raises(ValueError, match="tol must be"):
        settled_at(t, "max", tol=2)
    with pytest.raises(ValueError, match="was not traced"):
        settled_at(t, "mse")
    with pytest.raises(
        ValueError, match="convergence: calibrator 'entropy:tensorrt': variant must be one of"
    ):
        collect_histograms(mlp_model(), {"X": batches_x()}, convergence=["entropy:tensorrt"])


def test_any_calibrator_can_be_traced_by_its_spec():
    """convergence takes what Spec.parse reads: "entropy" is the seed, a percentile and an
    MSE clip are traced too, each named by its canonical text."""
    from calib.convergence import check_methods

    assert check_methods(["entropy", "entropy:seed", "percentile:99.9", "mse@4"]) == (
        "entropy:seed",
        "percentile:99.9",
        "mse@4",
    )
    x = batches_x(1)
    found = collect_histograms(
        mlp_model(), {"X": x}, bins=256, batch_size=8, convergence=["percentile:99.9", "mse"]
    )
    for name, t in found.traces.items():
        h = found[name]
        assert t.amax["percentile:99.9"][-1] == amax_percentile(h, 99.9)
        assert t.amax["mse"][-1] == calib.calibrate(h, "mse").amax
