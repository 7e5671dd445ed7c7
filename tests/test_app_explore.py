"""calib.app.sources and calib.app.explore without a page: uploads, sizes, the Explore computation,
downloads, the query string, and the figures' named shapes. Each answer is checked against
the core called directly (kl_sweep, clip_metrics, the amax_* methods), never against ui
itself."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import math
import tomllib
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from calib import io as cio
from calib.app import explore, sources
from calib.demos import DEMOS
from calib.figures import histogram_figure, kl_curve_figure, pq_figure
from calib.histogram import DEFAULT_BINS, Histogram
from calib.methods import amax_max, amax_mse, amax_percentile, clip_metrics
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS, Policy
from calib.sweep import kl_sweep

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class FakeUpload:
    """What read_upload needs of a Streamlit UploadedFile."""

    name: str
    data: bytes

    def getvalue(self) -> bytes:
        return self.data


def npy_bytes(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def plain_npz(**arrays: np.ndarray) -> bytes:
    """An .npz as other tools write it: np.savez(conv1=counts)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def two_layers() -> dict[str, Histogram]:
    rng = np.random.default_rng(1)
    return {
        "conv1": Histogram.from_samples(rng.standard_normal(5000), 300),
        "conv 2/relu": Histogram.from_samples(np.maximum(rng.laplace(size=5000), 0), 400),
    }


def calib_npz(hists: dict[str, Histogram]) -> bytes:
    buf = io.BytesIO()
    cio.save_histograms(buf, hists)
    return buf.getvalue()


def samples_source(x: np.ndarray, key: str = "samples:test") -> sources.Source:
    x = np.asarray(x, dtype=np.float64)
    return sources.Source("samples", "x", Histogram.from_samples(x), samples=x, key=key)


def model_source(layer: str = sources.DEFAULT_LAYER) -> sources.Source:
    return sources.Source(
        "model", layer, sources.model_histograms()[layer], layer=layer, key=f"m:{layer}"
    )


# --------------------------------------------------------------------------------------
# uploads
# --------------------------------------------------------------------------------------
def test_read_upload_multi_layer_npz_picks_a_layer():
    hists = two_layers()
    up = FakeUpload("model.npz", calib_npz(hists))
    first = sources.read_upload(up, "histogram")
    assert first.kind == "histogram" and first.layer == "conv1"
    assert first.hist == hists["conv1"]
    second = sources.read_upload(up, "histogram", "conv 2/relu")
    assert second.hist == hists["conv 2/relu"] and second.label == "model.npz: conv 2/relu"
    assert first.key != second.key  # caches tell the layers apart
    assert sources.read_upload(up, "histogram", "no such layer").layer == "conv1"


@pytest.mark.parametrize(
    ("name", "data", "counts", "edges"),
    [
        ("h.npy", npy_bytes(np.array([5, 3, 2, 1])), [5, 3, 2, 1], [0, 1, 2, 3, 4]),
        (
            "h.npy",
            npy_bytes(np.array([[0.0, 0.5, 4], [0.5, 1.0, 2], [1.0, 1.5, 1]])),
            [4, 2, 1],
            [0, 0.5, 1.0, 1.5],
        ),
        ("h.csv", b"counts,edges\n4,0\n2,0.5\n1,1.0\n,1.5\n", [4, 2, 1], [0, 0.5, 1.0, 1.5]),
        ("h.csv", b"7\n0\n1\n", [7, 0, 1], [0, 1, 2, 3]),
        (
            "h.json",
            b'{"counts": [4, 2, 1], "edges": [0, 0.5, 1, 1.5]}',
            [4, 2, 1],
            [0, 0.5, 1, 1.5],
        ),
        ("h.json", b'{"layers": {"a": {"counts": [1, 2]}}}', [1, 2], [0, 1, 2]),
        ("h.npz", plain_npz(conv1=np.array([3, 1, 1])), [3, 1, 1], [0, 1, 2, 3]),
    ],
)
def test_read_upload_single_histograms(name, data, counts, edges):
    src = sources.read_upload(FakeUpload(name, data), "histogram")
    np.testing.assert_array_equal(src.hist.counts, counts)
    np.testing.assert_allclose(src.hist.edges, edges)
    assert src.samples is None and src.key.startswith("histogram:")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("x.npy", npy_bytes(np.array([[-1.0, 2.0], [0.5, -4.0]]))),
        ("x.csv", b"value\n-1\n2, 0.5\n-4\n"),
    ],
)
def test_read_upload_samples(name, data):
    src = sources.read_upload(FakeUpload(name, data), "samples")
    np.testing.assert_array_equal(np.sort(src.samples), [-4.0, -1.0, 0.5, 2.0])
    assert src.hist == Histogram.from_samples(src.samples, bins=DEFAULT_BINS)
    assert src.kind == "samples" and src.label == name


def pickled() -> bytes:
    return npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


BAD = [
    ("empty", "h.npy", b"", "histogram", "empty"),
    ("malformed npz", "h.npz", b"PK\x03\x04 not a zip", "histogram", "not an .npz"),
    ("malformed json", "h.json", b'{"counts": [1, 2', "histogram", "not valid JSON"),
    ("all-NaN histogram", "h.npy", npy_bytes(np.full(8, np.nan)), "histogram", "finite"),
    ("all-NaN samples", "x.npy", npy_bytes(np.full(8, np.nan)), "samples", "non-finite"),
    ("pickled histogram", "h.npy", pickled(), "histogram", "object array"),
    ("pickled samples", "x.npy", pickled(), "samples", "object array"),
    ("wrong shape", "h.npy", npy_bytes(np.ones((3, 4))), "histogram", r"shape \(3, 4\)"),
    ("negative counts", "h.csv", b"1\n-2\n3\n", "histogram", "non-negative"),
    ("not text", "h.csv", bytes(range(256)), "histogram", "UTF-8"),
    ("wrong extension", "h.txt", b"1,2,3", "histogram", "unsupported extension"),
    ("no samples", "x.csv", b"# nothing\n", "samples", "no samples"),
]


@pytest.mark.parametrize(("what", "name", "data", "kind", "match"), BAD, ids=[b[0] for b in BAD])
def test_bad_uploads_are_value_errors_that_say_what_was_wrong(what, name, data, kind, match):
    with pytest.raises(ValueError, match=match):
        sources.read_upload(FakeUpload(name, data), kind)


def test_oversize_upload_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(sources, "MAX_UPLOAD_BYTES", 1000)
    big = npy_bytes(np.ones(200))  # a valid file, 1728 bytes
    for kind in ("histogram", "samples"):
        with pytest.raises(ValueError, match="limited to"):
            sources.read_upload(FakeUpload("big.npy", big), kind)


def test_upload_limit_matches_the_server_setting():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert sources.MAX_UPLOAD_BYTES == config["server"]["maxUploadSize"] * 2**20


@settings(max_examples=150, deadline=None)
@given(
    data=hs.one_of(
        hs.binary(max_size=600),
        hs.text(max_size=300).map(str.encode),
        hs.just(npy_bytes(np.arange(6.0))).flatmap(
            lambda b: hs.integers(0, len(b) - 1).map(lambda n: b[:n])
        ),  # truncated
    ),
    ext=hs.sampled_from(["npz", "npy", "csv", "json"]),
    kind=hs.sampled_from(["histogram", "samples"]),
)
def test_any_bytes_give_a_source_or_a_value_error(data, ext, kind):
    """Whatever a user uploads, the page can say what was wrong: nothing but ValueError."""
    try:
        src = sources.read_upload(FakeUpload(f"f.{ext}", data), kind)
    except ValueError as exc:
        assert str(exc)
    else:
        assert src.hist.n_bins >= 2


# --------------------------------------------------------------------------------------
# sizes and levels
# --------------------------------------------------------------------------------------
def test_sized_histogram_rehistograms_samples_and_merges_histograms_down():
    x = np.random.default_rng(2).standard_normal(3000)
    src = samples_source(x)
    for bins, signed in [(64, False), (1000, False), (513, True)]:
        h = sources.sized_histogram(src, bins, signed=signed)
        assert h == Histogram.from_samples(x, bins=bins, signed=signed)
    keyless = dataclasses.replace(src, key="")  # another page's Source: computed, not cached
    assert sources.sized_histogram(keyless, 100) == Histogram.from_samples(x, bins=100)

    binned = model_source()
    n = binned.hist.n_bins
    assert sources.sized_histogram(binned, n) is binned.hist
    assert sources.sized_histogram(binned, 10 * n) is binned.hist  # never split
    merged = sources.sized_histogram(binned, 512)
    assert merged == binned.hist.rebin(512) and merged.total == pytest.approx(binned.hist.total)


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
        ("mxnet", 12, 2048),  # 4095 clamped to the slider's top
    ],
)
def test_default_target_bins(variant, bits, levels):
    assert explore.default_target_bins(variant, bits) == levels
    if bits == 8:
        assert levels == DEFAULT_TARGET_BINS[variant]


def test_hist_bin_choices_and_snapping():
    assert sources.hist_bin_choices(samples_source(np.arange(10.0))) == sources.SAMPLE_BIN_CHOICES
    assert 8001 in sources.SAMPLE_BIN_CHOICES and DEFAULT_BINS in sources.SAMPLE_BIN_CHOICES
    small = sources.Source("histogram", "h", Histogram.from_counts(np.ones(200)), key="h")
    assert sources.hist_bin_choices(small) == (16, 32, 64, 128, 200)
    choices = sources.hist_bin_choices(model_source())
    assert choices[-1] == model_source().hist.n_bins and choices[-2] == 2048
    assert sources.snap_hist_bins(1024, choices, 7) == 1024
    assert sources.snap_hist_bins(1000, choices, 7) == 1024
    assert sources.snap_hist_bins(90, choices, 7) == 64  # nearer 64 than 128 on a log scale
    assert sources.snap_hist_bins(10**6, choices, 7) == choices[-1]
    for bad in (None, "x", -5, 0, math.nan):
        assert sources.snap_hist_bins(bad, choices, 7) == 7


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
    assert "half_window" in explore.policy_error("seed", {"layout": "signed"})
    assert explore.policy_error("seed", {"merge": "linspace"}) is None
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


def test_dead_view_has_no_metrics():
    src = sources.Source("demo", "Dead layer", Histogram.from_counts(np.zeros(300)), key="dead")
    view = explore.compute_view(src, "seed")
    assert view.result.dead and view.metrics is None and math.isnan(view.ratio)
    assert all(o.amax == 0 and o.metrics is None for o in view.methods)
    doc = json.loads(explore.threshold_json(view))
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
    rows = list(csv.reader(io.StringIO(explore.kl_curve_csv(view.result))))
    assert rows[0] == ["candidate", "threshold", "kl"]
    body = np.array(rows[1:], dtype=np.float64)
    r = view.result
    np.testing.assert_array_equal(body[:, 0], r.candidates)
    np.testing.assert_array_equal(body[:, 1], r.thresholds)
    np.testing.assert_array_equal(body[:, 2], r.kl)
    dead = kl_sweep(np.zeros(300))
    lines = explore.kl_curve_csv(dead).splitlines()
    assert len(lines) == 1 + dead.candidates.size and lines[1].endswith(",inf")


def test_threshold_json():
    src = model_source()
    view = explore.compute_view(src, "modelopt", {"ties": "first"}, 128, 1024, 8)
    doc = json.loads(explore.threshold_json(view))
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
# a click on the KL curve
# --------------------------------------------------------------------------------------
def test_candidate_from_selection_maps_x_to_the_nearest_candidate():
    r = explore.compute_view(model_source(), "seed", (), 128, 512).result
    rng = np.random.default_rng(4)
    for x in rng.uniform(r.thresholds[0] - 1, r.thresholds[-1] + 1, 30):
        nearest = min(zip(r.candidates, r.thresholds, strict=True), key=lambda ct: abs(ct[1] - x))[
            0
        ]
        state = {"selection": {"points": [{"x": float(x), "y": 1.0, "curve_number": 0}]}}
        assert explore.candidate_from_selection(state, r) == nearest
        assert explore.candidate_from_selection(state["selection"], r) == nearest
        assert explore.candidate_from_selection(state["selection"]["points"], r) == nearest
    exact = int(r.candidates[17])
    assert explore.candidate_from_selection([{"x": r.thresholds[17]}], r) == exact
    for empty in (None, {}, {"selection": {"points": []}}, [{"y": 2.0}], [{"x": "a"}]):
        assert explore.candidate_from_selection(empty, r) is None


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
    out, bad = explore.parse_explore_query(params, {}, LAYERS)
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
    out, bad = explore.parse_explore_query({"variant": "mxnet"}, {}, LAYERS)
    assert out["explore_target_bins"] == 255 and bad == []
    assert {f"explore_policy_{f}" for f in explore.POLICY_FIELDS} <= set(out)
    out, _ = explore.parse_explore_query({"num_bits": "4"}, {"explore_variant": "mxnet"}, LAYERS)
    assert out["explore_target_bins"] == 15
    out, _ = explore.parse_explore_query({"src": "demo", "demo": "GELU", "layer": "x"}, {}, LAYERS)
    assert out == {"explore_kind": "demo", "explore_demo": "GELU"}  # layer means nothing here
    out, _ = explore.parse_explore_query({"src": "histogram", "layer": "conv1"}, {}, LAYERS)
    assert out["explore_upload_layer"] == "conv1"  # checked once the file is uploaded
    params = {
        "src": "web", "layer": "nope", "demo": "Cauchy", "variant": "tensorrt",
        "num_bits": "40", "target_bins": "1", "hist_bins": "many", "log_y": "maybe",
        "merge": "sideways", "stride": "0", "eps": "2",
    }  # fmt: skip
    out, bad = explore.parse_explore_query(params, {}, LAYERS)
    assert out == {}
    assert sorted(m.split("=")[0] for m in bad) == sorted(f"Ignored {name}" for name in params)


def test_explore_link_opens_that_layer():
    link = explore.explore_link(LAYERS[3], variant="ncnn")
    parts = urlsplit(link)
    assert parts.path == "/"
    params = dict(parse_qsl(parts.query))
    assert params == {"src": "model", "layer": LAYERS[3], "variant": "ncnn"}
    out, bad = explore.parse_explore_query(params, {}, LAYERS)
    assert not bad and out["explore_model_layer"] == LAYERS[3]
    assert explore.explore_query("demo", demo="GELU", log_y=False, target_bins=64) == {
        "src": "demo", "demo": "GELU", "log_y": "false", "target_bins": "64",
    }  # fmt: skip


def test_every_policy_field_has_help_from_the_policies_table():
    assert set(explore.POLICY_FIELDS) == {f.name for f in dataclasses.fields(Policy)}
    for f in explore.POLICY_FIELDS:
        assert len(explore.POLICY_HELP[f]) > 10, f
    assert (
        "fractional" in explore.POLICY_HELP["merge"] and "modelopt" in explore.POLICY_HELP["stride"]
    )


# --------------------------------------------------------------------------------------
# figures: the named shapes and traces the page and its tests rely on
# --------------------------------------------------------------------------------------
def decode(v) -> np.ndarray:
    """A plotly JSON array: a list, or numpy's bytes in base64 (plotly 6)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def spec(fig) -> dict:
    return json.loads(fig.to_json())


def test_histogram_figure_clip_tail_others_and_picked():
    h = model_source().hist
    r = kl_sweep(h)
    others = {"max": amax_max(h), "percentile": amax_percentile(h), "mse": 0.0}
    s = spec(histogram_figure(h, r, log_y=True, others=others, picked=50.0))
    shapes = {sh["name"]: sh for sh in s["layout"]["shapes"]}
    assert shapes["clip"]["x0"] == shapes["clip"]["x1"] == r.amax
    assert shapes["clipped tail"]["x0"] == r.amax and shapes["clipped tail"]["x1"] == h.edges[-1]
    assert shapes["max"]["x0"] == amax_max(h) and shapes["percentile"]["x0"] == amax_percentile(h)
    assert "mse" not in shapes  # a zero threshold is not drawn
    assert shapes["picked"]["x0"] == 50.0
    labels = {a["text"] for a in s["layout"]["annotations"]}
    assert {"max", "percentile", f"clip {r.amax:.4g}"} <= labels
    assert s["layout"]["yaxis"]["type"] == "log"
    x = decode(s["data"][0]["x"])
    assert x.size == 2 * h.n_bins and x[0] == h.edges[0] and x[-1] == h.edges[-1]


def test_histogram_figure_signed_and_dead():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(5000), [-30.0, 40.0]])  # outliers to clip
    h = Histogram.from_samples(x, 512, signed=True)
    r = kl_sweep(h, variant="mxnet")
    assert -h.edges[0] > r.amax
    shapes = spec(histogram_figure(h, r))["layout"]["shapes"]
    names = [sh["name"] for sh in shapes]
    assert names.count("clipped tail") == 2
    minus = next(sh for sh in shapes if sh["name"] == "clip -")
    assert minus["x0"] == -r.amax
    dead = Histogram.from_counts(np.zeros(300))
    s = spec(histogram_figure(dead, kl_sweep(dead)))
    assert not s["layout"].get("shapes") and s["layout"].get("yaxis", {}).get("type") != "log"


def test_kl_curve_figure_marks_minimum_and_picked():
    r = kl_sweep(model_source().hist.rebin(512), variant="ncnn")
    picked = int(r.candidates[-1])
    s = spec(kl_curve_figure(r, picked=picked))
    traces = {t["name"]: t for t in s["data"]}
    assert "markers" in traces["KL"]["mode"]  # plotly selects markers, not lines
    np.testing.assert_array_equal(decode(traces["KL"]["customdata"]), r.candidates)
    assert traces["minimum"]["x"] == [r.amax] and traces["minimum"]["y"] == [r.min_kl]
    assert traces["picked"]["x"] == [r.thresholds[-1]]
    assert traces["picked"]["customdata"] == [picked]
    with pytest.raises(ValueError, match="candidate"):
        kl_curve_figure(r, picked=-3)


def test_pq_figure_title_and_axes():
    r = kl_sweep(model_source().hist.rebin(512))
    pq = r.distributions()
    s = spec(pq_figure(pq, log_y=True, title="Chosen"))
    assert s["layout"]["title"]["text"] == "Chosen"
    assert s["layout"]["yaxis"]["type"] == "log"
    p = decode(s["data"][0]["y"])
    assert p.sum() == pytest.approx(2.0)  # each bin twice in the step outline, P sums to 1
    assert "KL" in spec(pq_figure(pq))["layout"]["title"]["text"]


def test_every_demo_has_a_view():
    for name in DEMOS:
        h = sources._demo(name, DEFAULT_BINS)
        x = None if h.is_dead else sources._demo_samples(name)
        src = sources.Source("demo", name, h, samples=x, key=f"demo:{name}")
        view = explore.compute_view(src, "seed")
        assert view.result.dead == (name == "Dead layer")
        if name == "Seed ramp":
            assert view.result.best == 2047
