"""calib.app.explore without a page: the Explore computation, its downloads, a click on
the KL curve, the query string. Each answer is checked against the core called directly
(kl_sweep, clip_metrics, the amax_* methods), never against explore itself."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math

import numpy as np
import pytest

import calib.explore
from calib.app import explore, links, sources
from calib.demos import DEMOS
from calib.histogram import DEFAULT_BINS, Histogram
from calib.methods import amax_max, amax_mse, amax_percentile, clip_metrics
from calib.numbers import fmt_db
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS, Policy
from calib.sweep import kl_sweep


def samples_source(x: np.ndarray, key: str = "samples:test") -> sources.Source:
    x = np.asarray(x, dtype=np.float64)
    return sources.Source("samples", "x", Histogram.from_samples(x), samples=x, key=key)


def model_source(layer: str = sources.DEFAULT_LAYER) -> sources.Source:
    return sources.Source(
        "model", layer, sources.model_histograms()[layer], layer=layer, key=f"m:{layer}"
    )


# --------------------------------------------------------------------------------------
# levels
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variant", "bits", "levels"),
    [
        ("seed", 8, 128),
        ("mxnet", 8, 255),
        ("onnxruntime", 8, 128),
        ("modelopt", 8, 128),
        ("ncnn", 4, 8),
        ("mxnet", 4, 15),
        ("seed", 2, 2),
        ("mxnet", 2, 3),
        ("modelopt", 10, 512),
        ("seed", 12, 2048),
        ("mxnet", 12, 4095),  # past the slider's 2048: never clamped (main gave 2048)
        ("seed", 13, 4096),
    ],
)
def test_default_target_bins(variant, bits, levels):
    assert calib.explore.default_target_bins(variant, bits) == levels
    if bits == 8:
        assert levels == DEFAULT_TARGET_BINS[variant]


# --------------------------------------------------------------------------------------
# the Explore computation
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_compute_view_matches_the_core(variant):
    src = model_source()
    view = explore.compute_view(src, variant, (), 100, 1024, 6)
    h = src.hist.rebin(1024)
    expected = kl_sweep(h, target_bins=100, variant=variant)
    assert view.hist == h and view.hist_bins == 1024 and view.target_bins == 100
    # exact: the view makes this same kl_sweep call (and the same clip_metrics and amax_*
    # calls) on the same histogram, so the arithmetic is identical
    np.testing.assert_array_equal(view.result.kl, expected.kl)
    assert view.result.amax == expected.amax and view.result.best == expected.best
    assert view.metrics == clip_metrics(h, expected.amax, num_bits=6)
    assert view.ratio == pytest.approx(expected.amax / h.max_abs)
    assert view.others() == {
        "max": amax_max(h),
        "percentile": amax_percentile(h),
        "mse": amax_mse(h, num_bits=6),
    }
    assert view.methods[2].metrics == clip_metrics(h, amax_mse(h, num_bits=6), num_bits=6)


def test_compute_view_applies_overrides_and_names_impossible_ones():
    src = model_source()
    view = explore.compute_view(src, "seed", {"zero_q": "inf", "smoothing": "add_eps"})
    expected = kl_sweep(src.hist, variant="seed", zero_q="inf", smoothing="add_eps")
    assert view.result.amax == expected.amax
    assert view.result.policy == dataclasses.replace(
        VARIANTS["seed"], zero_q="inf", smoothing="add_eps"
    )
    assert view.overrides == (("zero_q", "inf"), ("smoothing", "add_eps"))
    assert view.target_bins == 128  # the variant's own levels when none are given
    with pytest.raises(ValueError, match="half_window"):
        explore.compute_view(src, "seed", {"layout": "signed"})
    assert "half_window" in calib.explore.policy_error("seed", {"layout": "signed"})
    assert calib.explore.policy_error("seed", {"merge": "linspace"}) is None
    with pytest.raises(ValueError, match="target_bins"):
        explore.compute_view(src, "seed", (), 600, 512)


def test_signed_variants_histogram_samples_signed():
    x = np.random.default_rng(3).standard_normal(4000) - 0.5
    src = samples_source(x, key="samples:signed-test")
    view = explore.compute_view(src, "mxnet", (), 255, 1024)
    h = Histogram.from_samples(x, bins=1024, signed=True)
    assert view.hist == h and view.hist.is_signed
    assert view.result.amax == kl_sweep(h, target_bins=255, variant="mxnet").amax
    # the same variant forced unsigned is histogrammed as |x|
    forced = explore.compute_view(
        src, "mxnet", {"layout": "unsigned", "candidates": "kept_bins"}, 255, 1024
    )
    assert not forced.hist.is_signed


def test_other_variants_at_their_own_levels():
    src = model_source()
    view = explore.compute_view(src, "seed", (), 64, None, 8, with_variants=True)
    names = [o.name for o in view.variants]
    assert names == [v for v in VARIANTS if v != "seed"]
    for o in view.variants:
        assert o.amax == kl_sweep(src.hist, variant=o.name).amax  # 8-bit defaults
    # with overrides the preset itself is another answer, so it is drawn too
    overridden = explore.compute_view(src, "seed", {"zero_q": "inf"}, with_variants=True)
    assert [o.name for o in overridden.variants] == list(VARIANTS)


@pytest.mark.slow
def test_the_view_computes_with_the_true_levels_at_any_width():
    """At 13 bits the seed uses 4096 levels, past the slider's 2048: the view sweeps at
    4096, as calibrate does (main clamped to 2048: 3.01 against calibrate's 5.98 on the
    ReLU demo at 8192 bins); its spec gives the same clip through calibrate."""
    from calib.demos import demo_histogram

    h = demo_histogram("ReLU with zero spike", 8192)
    view = calib.explore.build_view(h, "seed", (), None, 13)
    cal = calib.calibrate(h, num_bits=13)
    assert view.target_bins == cal.sweep.target_bins == 4096
    assert view.result.amax == cal.amax
    assert calib.calibrate(h, view.spec).amax == view.result.amax
    assert str(view.spec) == "entropy:seed@13"
    others = {o.name: o for o in calib.explore.every_variant(h, 13)}
    assert others["seed"].amax == cal.amax and others["mxnet"].calibration.spec.target_bins == 8191


def test_dead_view_has_no_metrics():
    src = sources.Source("demo", "Dead layer", Histogram.from_counts(np.zeros(300)), key="dead")
    view = explore.compute_view(src, "seed")
    assert view.result.dead and view.metrics is None and math.isnan(view.ratio)
    assert all(o.amax == 0 and o.metrics is None for o in view.methods)
    doc = json.loads(calib.explore.threshold_json(view))
    assert doc["amax"] == 0 and doc["kl"] is None and doc["sqnr_db"] is None


def test_explore_view_is_cached_on_its_primitive_keys():
    src = model_source()
    a = explore.explore_view(src.key, "seed", (), 120, 1024, 8, _source=src)
    assert explore.explore_view(src.key, "seed", (), 120, 1024, 8, _source=src) is a
    b = explore.explore_view(src.key, "seed", (), 121, 1024, 8, _source=src)
    assert b is not a and b.target_bins == 121


# --------------------------------------------------------------------------------------
# downloads
# --------------------------------------------------------------------------------------
def test_kl_curve_csv_round_trips_exactly():
    view = explore.compute_view(model_source(), "onnxruntime", (), 64, 512)
    rows = list(csv.reader(io.StringIO(calib.explore.kl_curve_csv(view.result))))
    assert rows[0] == ["candidate", "threshold", "kl"]
    body = np.array(rows[1:], dtype=np.float64)
    r = view.result
    np.testing.assert_array_equal(body[:, 0], r.candidates)
    np.testing.assert_array_equal(body[:, 1], r.thresholds)
    np.testing.assert_array_equal(body[:, 2], r.kl)
    dead = kl_sweep(np.zeros(300))
    lines = calib.explore.kl_curve_csv(dead).splitlines()
    assert len(lines) == 1 + dead.candidates.size and lines[1].endswith(",inf")


def test_threshold_json():
    src = model_source()
    view = explore.compute_view(src, "modelopt", {"ties": "first"}, 128, 1024, 8)
    doc = json.loads(calib.explore.threshold_json(view))
    r = view.result
    assert doc == {
        "source": src.label,
        "layer": src.layer,
        "variant": "modelopt",
        "policies_overridden": {"ties": "first"},
        "target_bins": 128,
        "hist_bins": 1024,
        "num_bits": 8,
        "amax": r.amax,
        "best": r.best,
        "kl": r.min_kl,
        "sqnr_db": clip_metrics(src.hist.rebin(1024), r.amax).sqnr_db,
    }


# --------------------------------------------------------------------------------------
# the query string
# --------------------------------------------------------------------------------------
LAYERS = list(sources.model_histograms())


def test_parse_explore_query_full_link():
    layer = LAYERS[5]
    params = {
        "src": "model", "layer": layer, "variant": "mxnet", "target_bins": "200",
        "hist_bins": "1024", "num_bits": "6", "log_y": "false", "merge": "linspace",
        "eps": "0.001", "stride": "3", "unrelated": "x",
    }  # fmt: skip
    out, bad = links.parse_explore_query(params, {}, LAYERS)
    assert bad == []
    assert out["explore_kind"] == "model" and out["explore_model_layer"] == layer
    assert out["explore_variant"] == "mxnet" and out["explore_target_bins"] == 200
    assert out["explore_hist_bins"] == 1024 and out["explore_num_bits"] == 6
    assert out["explore_log_y"] is False
    assert out["explore_policy_merge"] == "linspace"  # the override wins over the preset
    assert out["explore_policy_eps"] == 0.001 and out["explore_policy_stride"] == 3
    assert out["explore_policy_layout"] == "signed"  # the rest: mxnet's presets
    assert not any("unrelated" in k for k in out)


def test_parse_explore_query_defaults_and_bad_values():
    out, bad = links.parse_explore_query({"variant": "mxnet"}, {}, LAYERS)
    assert out["explore_target_bins"] == 255 and bad == []
    assert {f"explore_policy_{f}" for f in calib.explore.POLICY_FIELDS} <= set(out)
    out, _ = links.parse_explore_query({"num_bits": "4"}, {"explore_variant": "mxnet"}, LAYERS)
    assert out["explore_target_bins"] == 15
    out, _ = links.parse_explore_query({"src": "demo", "demo": "GELU", "layer": "x"}, {}, LAYERS)
    assert out == {"explore_kind": "demo", "explore_demo": "GELU"}  # layer means nothing here
    out, _ = links.parse_explore_query({"src": "histogram", "layer": "conv1"}, {}, LAYERS)
    assert out["explore_upload_layer"] == "conv1"  # checked once the file is uploaded
    params = {
        "src": "web", "layer": "nope", "demo": "Cauchy", "variant": "tensorrt",
        "num_bits": "40", "target_bins": "1", "hist_bins": "many", "log_y": "maybe",
        "merge": "sideways", "stride": "0", "eps": "2",
    }  # fmt: skip
    out, bad = links.parse_explore_query(params, {}, LAYERS)
    assert out == {}
    assert sorted(m.split("=")[0] for m in bad) == sorted(f"Ignored {name}" for name in params)


def test_every_policy_field_has_help_from_the_policies_table():
    assert set(calib.explore.POLICY_FIELDS) == {f.name for f in dataclasses.fields(Policy)}
    for f in calib.explore.POLICY_FIELDS:
        assert len(calib.explore.POLICY_HELP[f]) > 10, f
    assert (
        "fractional" in calib.explore.POLICY_HELP["merge"]
        and "modelopt" in calib.explore.POLICY_HELP["stride"]
    )


def test_every_demo_has_a_view():
    for name in DEMOS:
        h = sources._demo(name, DEFAULT_BINS)
        x = None if h.is_dead else sources._demo_samples(name)
        src = sources.Source("demo", name, h, samples=x, key=f"demo:{name}")
        view = explore.compute_view(src, "seed")
        assert view.result.dead == (name == "Dead layer")
        if name == "Seed ramp":
            assert view.result.best == 2047


def test_explore_query_opens_that_layer():
    """What the Layers page sends (explore_query) is what the Explore page reads back."""
    params = links.explore_query("model", layer=LAYERS[3], variant="ncnn")
    assert params == {"src": "model", "layer": LAYERS[3], "variant": "ncnn"}
    out, bad = links.parse_explore_query(params, {}, LAYERS)
    assert not bad and out["explore_model_layer"] == LAYERS[3]
    assert out["explore_variant"] == "ncnn"
    assert links.explore_query("demo", demo="GELU", log_y=False, target_bins=64) == {
        "src": "demo", "demo": "GELU", "log_y": "false", "target_bins": "64",
    }  # fmt: skip


# --------------------------------------------------------------------------------------
# what the view says about its numbers (calib.explore.explain)
# --------------------------------------------------------------------------------------
def test_explain_says_where_the_error_comes_from():
    rng = np.random.default_rng(3)
    h = Histogram.from_samples(np.abs(rng.standard_normal(100_000)))
    view = calib.explore.build_view(h, "seed")
    m = view.metrics
    clip_only = clip_metrics(h, view.result.amax, 16).mse
    assert clip_only < 0.5 * m.mse  # a half-normal's clip costs less than its rounding
    assert view.why.error.startswith(f"SQNR {fmt_db(m.sqnr_db)}: rounding causes")
    assert not view.why.floor and not view.why.undefined  # a minimum inside the search
    # no clip at all (a clip at the max): all of the error is rounding
    assert (
        "nothing is clipped"
        in calib.explore.explain(h, view.result, view.chosen, clip_metrics(h, h.max_abs, 8)).error
    )
    dead = Histogram(np.zeros(8), np.arange(9.0))
    assert calib.explore.build_view(dead, "seed", target_bins=4).why == calib.explore.Why()
