"""calib.report: the layer table against calibrate(), each flag, the exports, the cache checks."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

import calib
from calib import io as cio
from calib import report
from calib.histogram import Histogram

ROOT = Path(__file__).resolve().parents[1]
RNG_SEED = 0


# -- histograms built to trigger (or not) each flag -------------------------------------------
def normal_abs(n: int = 200_000, seed: int = RNG_SEED) -> Histogram:
    """The clean case: |N(0, 1)|, no spike, no outliers."""
    return Histogram.from_samples(np.random.default_rng(seed).standard_normal(n))


def relu(n: int = 200_000, seed: int = RNG_SEED) -> Histogram:
    """Half exact zeros, half a half-normal: a zero spike."""
    return Histogram.from_samples(np.maximum(np.random.default_rng(seed).standard_normal(n), 0))


def with_outliers(n: int = 200_000, seed: int = RNG_SEED) -> Histogram:
    """|N(0, 1)| with ten values at 30 to 40 sigma."""
    rng = np.random.default_rng(seed)
    return Histogram.from_samples(np.r_[rng.standard_normal(n), rng.uniform(30, 40, 10)])


def dead(bins: int = 2048) -> Histogram:
    return Histogram(np.zeros(bins), np.linspace(0, 1, bins + 1))


def smooth_peak(bins: int = 2048) -> Histogram:
    """30% of the mass in bin 0 but bin 1 nearly as full: a peaked body, not a spike."""
    counts = 0.3 * 0.82 ** np.arange(bins)
    return Histogram(counts, np.linspace(0, 1, bins + 1))


def mostly_zero(bins: int = 2048) -> Histogram:
    """99.999% in bin 0: ModelOpt's percentile rule answers 0."""
    counts = np.zeros(bins, dtype=np.int64)
    counts[0], counts[100] = 999_990, 10
    return Histogram(counts, np.linspace(0, 1, bins + 1))


def flags_of(h: Histogram, **kwargs) -> tuple[str, ...]:
    return report.layer_row("x", h, **kwargs).flags


# -- the rows are calibrate()'s ------------------------------------------------------------
LAYERS = {
    "normal": normal_abs(),
    "relu": relu(),
    "outliers": with_outliers(),
    "signed laplace": Histogram.from_samples(
        np.random.default_rng(1).laplace(size=50_000), bins=1024, signed=True
    ),
    "dead": dead(),
}


@pytest.mark.parametrize(
    "method, variant, num_bits, target_bins",
    [
        ("entropy", "seed", 8, None),
        ("entropy", "ncnn", 8, 64),
        ("entropy", "modelopt", 6, None),
        ("entropy", "onnxruntime", 8, None),
        ("max", "seed", 8, None),
        ("percentile", "seed", 8, None),
        ("mse", "seed", 4, None),
    ],
)
def test_rows_agree_with_calibrate(method, variant, num_bits, target_bins):
    rows = report.layer_table(LAYERS, method, variant, num_bits, target_bins)
    assert [r.layer for r in rows] == list(LAYERS)
    policies = {"target_bins": target_bins} if target_bins else {}
    for row in rows:
        h = LAYERS[row.layer]
        cal = calib.calibrate(h, method, num_bits, variant=variant, **policies)
        assert row.bins == h.n_bins and row.max == h.max_abs
        assert row.amax == cal.amax
        assert row.clipped == cal.metrics.clipped_fraction
        np.testing.assert_equal(row.sqnr_db, cal.metrics.sqnr_db)  # nan == nan for dead
        if cal.dead:
            assert math.isnan(row.ratio) and math.isnan(row.kl)
            continue
        assert row.ratio == pytest.approx(cal.amax / h.max_abs, rel=1e-15)
        if method == "entropy":
            assert row.kl == cal.sweep.min_kl
            assert ("smallest candidate" in row.flags) == (cal.sweep.best_index == 0)
        else:
            assert math.isnan(row.kl)


def test_progress_is_called_after_every_layer():
    calls = []
    report.layer_table(LAYERS, "max", progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, len(LAYERS)) for i in range(1, len(LAYERS) + 1)]


def test_real_model_rows_agree_with_calibrate_on_a_sample():
    hists = calib.load_histograms(ROOT / "assets" / "minilm_histograms.npz")
    names = list(hists)[::12]
    rows = report.layer_table({n: hists[n] for n in names})
    for row in rows:
        assert row.amax == calib.calibrate(hists[row.layer]).amax


# -- each flag ---------------------------------------------------------------------------------
def test_dead_flag():
    assert flags_of(dead()) == ("dead",)
    assert "dead" not in flags_of(normal_abs())


def test_zero_spike_flag_needs_a_large_and_steep_zero_bin():
    assert "zero spike" in flags_of(relu())
    assert "zero spike" in flags_of(relu().mirror())  # signed: the two central bins
    assert "zero spike" not in flags_of(normal_abs())
    share, step = report.zero_spike(smooth_peak())
    assert share >= report.ZERO_SPIKE_SHARE and step < report.ZERO_SPIKE_STEP
    assert "zero spike" not in flags_of(smooth_peak())


def test_zero_spike_numbers_against_a_hand_count():
    counts = np.array([50, 5, 3, 2, 0, 40], dtype=np.int64)
    share, step = report.zero_spike(Histogram(counts, np.arange(7.0)))
    assert share == pytest.approx(50 / 100) and step == pytest.approx(50 / 5)
    # signed, zero an edge: bins [-1, 0] and [0, 1] touch it; neighbours [-2, -1], [1, 2]
    signed = Histogram(np.array([1, 4, 6, 30, 4, 5]), np.arange(-3.0, 4.0))
    share, step = report.zero_spike(signed)
    assert share == pytest.approx(36 / 50) and step == pytest.approx((36 / 2) / (8 / 2))
    assert report.zero_spike(Histogram(np.ones(3), np.arange(1.0, 5.0))) == (0.0, 0.0)


def test_outliers_flag_and_tail_ratio_against_a_loop():
    assert "outliers" in flags_of(with_outliers())
    assert "outliers" not in flags_of(normal_abs())
    assert "outliers" not in flags_of(relu())
    for h in (with_outliers(), normal_abs(), relu()):
        cum, target, i = 0, 0.9999 * h.total, 0
        while cum + h.counts[i] < target:  # the first bin where the cdf reaches 99.99%
            cum += h.counts[i]
            i += 1
        assert report.tail_ratio(h) == pytest.approx(h.max_abs / h.edges[i], rel=1e-12)
    assert report.tail_ratio(mostly_zero()) == math.inf
    assert math.isnan(report.tail_ratio(dead()))


def test_smallest_candidate_flag():
    # outliers at 100-200 sigma squeeze the body into the first bins: the seed's KL keeps
    # falling towards its first candidate (128 bins, about 10 sigma here)
    rng = np.random.default_rng(RNG_SEED)
    far = Histogram.from_samples(np.r_[rng.standard_normal(200_000), rng.uniform(100, 200, 20)])
    assert calib.kl_sweep(far).best_index == 0
    assert "smallest candidate" in flags_of(far)
    assert "smallest candidate" not in flags_of(normal_abs())
    assert "smallest candidate" not in flags_of(far, method="max")


def test_zero_amax_flag():
    assert "zero amax" in flags_of(mostly_zero(), method="percentile")
    assert "zero amax" not in flags_of(mostly_zero(), method="max")
    assert "zero amax" not in flags_of(normal_abs(), method="percentile")


def test_error_rows_keep_the_rest_of_the_table():
    small = Histogram(np.ones(64), np.linspace(0, 1, 65))
    rows = report.layer_table({"small": small, "normal": normal_abs()}, target_bins=128)
    assert rows[0].flags == ("error",) and "target_bins" in rows[0].error
    assert math.isnan(rows[0].amax)
    assert rows[1].error == "" and rows[1].amax > 0
    assert rows[0].record()["flags"].startswith("error: ")
    with pytest.raises(ValueError, match=r"layer .small.*target_bins"):
        report.cli_records(report.layer_table({"small": small}, target_bins=128))
    with pytest.raises(ValueError, match="method must be one of"):
        report.layer_table(LAYERS, "kl")


def saturated_tanh(n: int = 200_000, seed: int = RNG_SEED) -> Histogram:
    """tanh(100 x): nearly every value at +-1, which the seed clips away."""
    return Histogram.from_samples(np.tanh(100 * np.random.default_rng(seed).standard_normal(n)))


def test_most_values_clipped_and_low_sqnr_are_flagged():
    """Issue 10, problem 6: a saturated Tanh with most of its values clipped at under 1 dB
    had no flag; MiniLM's layer.4 FFN output at 2.1 dB had none either."""
    row = report.layer_row("tanh", saturated_tanh())
    assert row.clipped > 0.9 and row.sqnr_db < 1
    assert {"clipped", "low SQNR"} <= set(row.flags)
    assert "clipped" not in flags_of(normal_abs()) and "low SQNR" not in flags_of(normal_abs())
    hists = calib.load_histograms(ROOT / "assets" / "minilm_histograms.npz")
    layer = "/bert/encoder/layer.1/attention/self/Softmax_output_0"  # the seed clips at 0.07
    row = report.layer_row(layer, hists[layer])
    assert row.sqnr_db == pytest.approx(1.2, abs=0.05)
    assert {"clipped", "low SQNR"} <= set(row.flags)
    # at the thresholds
    assert report.CLIPPED_SHARE == 0.01 and report.LOW_SQNR_DB == 10.0


def test_sparse_histograms_are_flagged():
    """Few values over 2048 bins: p99.99 is the largest value, the outlier test is blind."""
    rng = np.random.default_rng(RNG_SEED)
    few = Histogram.from_samples(np.r_[np.abs(rng.standard_normal(3000)), 40.0])
    assert report.tail_ratio(few) < report.OUTLIER_RATIO  # a 13-sigma value, not seen
    assert "sparse" in flags_of(few) and "outliers" not in flags_of(few)
    # 50,000 values over 1,400 occupied bins: more than 10 per bin
    assert "sparse" not in flags_of(Histogram.from_samples(np.abs(rng.standard_normal(50_000))))
    # fewer than 10 per occupied bin, though more than 10,000 values
    wide = Histogram.from_samples(rng.uniform(0, 1, 15_000), bins=2048)
    assert "sparse" in flags_of(wide)
    # a normalised histogram does not say how many values it holds
    assert not report.sparse(Histogram(few.counts / few.total, few.edges))
    assert "sparse" not in flags_of(dead())


def test_a_row_without_flags_says_no_flag():
    row = report.layer_row("x", normal_abs())
    assert row.flags == () and row.flag_text == report.NO_FLAG == "no flag"
    assert row.record()["flags"] == "no flag"
    assert set(report.FLAG_HELP) == set(report.FLAGS)


def test_clean_histogram_has_no_flags():
    assert flags_of(normal_abs()) == ()
    for method in calib.METHODS:
        assert flags_of(normal_abs(), method=method) == ()


# -- order and records ---------------------------------------------------------------------------
def test_worst_first_is_lowest_sqnr_with_dead_and_errors_on_top():
    rows = report.layer_table(LAYERS)
    ordered = report.worst_first(rows)
    assert ordered[0].layer == "dead"
    sqnr = [r.sqnr_db for r in ordered[1:]]
    assert sqnr == sorted(sqnr)
    assert sorted(r.layer for r in ordered) == sorted(LAYERS)


def test_cli_records_have_the_cli_columns():
    rows = report.cli_records(report.layer_table(LAYERS, "max"))
    assert all(tuple(r) == report.CLI_COLUMNS for r in rows)
    assert rows[-1]["flags"] == "dead" and rows[-1]["amax"] == 0.0


# -- exports -------------------------------------------------------------------------------------
def test_csv_and_json_read_back():
    rows = report.layer_table(LAYERS)
    recs = report.records(rows)
    back = list(csv.DictReader(io.StringIO(report.records_csv(recs))))
    assert [r["layer"] for r in back] == list(LAYERS)
    for r, row in zip(back, rows, strict=True):
        np.testing.assert_equal(float(r["amax"]), row.amax)  # repr round-trips floats
        np.testing.assert_equal(float(r["SQNR dB"]), row.sqnr_db)
        assert r["flags"] == (", ".join(row.flags) or "no flag")
    doc = json.loads(report.records_json(recs, {"method": "entropy"}))  # strict: no NaN
    assert doc["settings"] == {"method": "entropy"}
    assert [d["amax"] for d in doc["layers"]] == [r.amax for r in rows]
    dead_rec = doc["layers"][list(LAYERS).index("dead")]
    assert dead_rec["SQNR dB"] is None and dead_rec["KL"] is None
    assert report.records_csv([]) == ""


def test_trt_cache_and_ort_json_round_trip_without_dead_layers():
    rows = report.layer_table(LAYERS)
    text, skipped = report.trt_cache_text(rows)
    assert skipped == ["dead"]
    assert text.startswith(cio.TRT_DEFAULT_HEADER + "\n")
    back = cio.read_trt_cache(io.StringIO(text))
    assert list(back) == [r.layer for r in rows if r.layer != "dead"]
    for row in rows:
        if row.layer != "dead":
            assert back[row.layer] == pytest.approx(row.amax, rel=1e-6)  # float32 scale
    ort_text, skipped = report.ort_json_text(rows)
    assert skipped == ["dead"]
    ort = cio.read_ort_calibration_json(io.StringIO(ort_text))
    assert ort.method == "Entropy"
    for name, (lo, hi) in ort.ranges.items():
        amax = next(r.amax for r in rows if r.layer == name)
        assert hi == pytest.approx(amax, rel=1e-6) and lo == -hi


# -- calibration caches ----------------------------------------------------------------------
def trt_bytes(amax: dict, header: str = cio.TRT_DEFAULT_HEADER) -> bytes:
    buf = io.StringIO()
    cio.write_trt_cache(buf, amax, header=header)
    return buf.getvalue().encode()


def test_read_calibration_file_reads_every_kind():
    trt = report.read_calibration_file(trt_bytes({"a": 1.0, "b: c [0]": 2.0}), "x.cache")
    assert trt.kind == "tensorrt" and trt.version == 8601
    assert trt.amax == pytest.approx({"a": 1.0, "b: c [0]": 2.0}, rel=1e-6)
    buf = io.StringIO()
    cio.write_ort_calibration_json(buf, {"a": (-1.5, 0.5)}, method="Entropy")
    ort = report.read_calibration_file(buf.getvalue().encode(), "calibration.json")
    assert ort.kind == "onnxruntime json" and ort.amax == {"a": 1.5}
    assert ort.algorithm == "Entropy"
    plain = report.read_calibration_file(b"a 1.25\nb name -2.5\n", "calibration.cache")
    assert plain.kind == "onnxruntime cache" and plain.amax == {"a": 1.25, "b name": 2.5}


@pytest.mark.parametrize(
    "data, name, match",
    [
        (b"", "x.cache", "empty"),
        (b"TRT-8601-EntropyCalibration2\na: zzzz\n", "x.cache", "not a float32 in hex"),
        (b"just some words here\nand more\n", "x.cache", "neither a TensorRT"),
        (b"{not json", "calibration.json", "JSON|json"),
    ],
)
def test_read_calibration_file_refuses_bad_files(data, name, match):
    with pytest.raises(ValueError, match=match):
        report.read_calibration_file(data, name)


def test_compare_cache_ratio_and_disagreement():
    rows = report.layer_table(LAYERS, "max")
    amax = {r.layer: r.amax for r in rows}
    cached = {
        "normal": amax["normal"] * 1.49,  # within 1.5x: agree
        "relu": amax["relu"] / 1.51,  # beyond 1.5x: disagree
        "outliers": amax["outliers"],
        "dead": 0.0,  # both zero: agree
    }
    cache = report.CachedThresholds("onnxruntime cache", "c", cached)
    m = report.compare_cache(rows, cache)
    assert set(m) == set(cached)  # "signed laplace" is not in the cache
    assert m["normal"].ratio == pytest.approx(1.49) and not m["normal"].disagree
    assert m["relu"].disagree and not m["outliers"].disagree and not m["dead"].disagree
    bad = report.CachedThresholds("tensorrt", "c", {"normal": math.nan, "dead": 1.0})
    m = report.compare_cache(rows, bad)
    assert m["normal"].disagree and m["dead"].disagree and m["dead"].ratio == math.inf
    recs = report.records(rows, report.compare_cache(rows, cache))
    assert [r["disagree"] for r in recs] == [False, True, False, False, False]
    assert math.isnan(recs[3]["cached amax"])  # signed laplace: not cached


def checks_of(amax: dict, layers, header: str = cio.TRT_DEFAULT_HEADER) -> dict:
    cache = report.read_calibration_file(trt_bytes(amax, header), "c.cache")
    found: dict[str, list[str]] = {}
    for c in report.check_cache(cache, layers):
        found.setdefault(c.check, []).append(c.message)
    return found


def test_a_clean_cache_has_no_findings():
    layers = [f"t{i}" for i in range(8)]
    amax = {n: 1.0 + i / 8 for i, n in enumerate(layers)}
    assert checks_of(amax, layers) == {}


def test_each_cache_check_fires():
    layers = ["a", "b", "c", "d", "e", "f"]
    amax = {
        "a": 1.0,
        "b": 1.0,  # identical to a
        "c": 0.0,  # zero scale: the reader's problem
        "d": 2.0e6,  # beyond float16
        "e": 1e-5,  # far below the median
        "(Unnamed Layer* 12) [Activation]_output": 3.0,  # generated name, and extra
    }  # "f" is missing
    found = checks_of(amax, layers)
    assert set(found) == {"problem", "identical", "extreme", "unnamed", "missing", "extra"}
    assert "'c'" in found["problem"][0] and "zero scale" in found["problem"][0]
    assert "2 tensors share" in found["identical"][0] and "'a', 'b'" in found["identical"][0]
    assert any("'d'" in m and "float16" in m for m in found["extreme"])
    assert any("'e'" in m and "median" in m for m in found["extreme"])
    assert "'f'" in found["missing"][0] and "Unnamed" in found["extra"][0]
    header = checks_of({"a": 1.0}, ["a"], header="TRT-x-MinMaxCalibration")
    assert len(header["header"]) == 2  # version not a number; not an entropy calibrator
    nan = report.read_calibration_file(b"TRT-8601-EntropyCalibration2\na: 7fc00000\n", "c")
    assert "NaN scale" in report.check_cache(nan, ["a"])[0].message
