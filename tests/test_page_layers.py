"""The Layers page (pages/2_Layers.py) under AppTest: the real model's table, widgets,
opening a row in Explore, the exports, bad uploads and a calibration cache beside the table."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

import calib
from calib import io as cio
from calib import report
from calib.app import sources

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/2_Layers.py"
TIMEOUT = 60


def run_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest):
    frames = [d for d in at.dataframe if d.key == "layers_table"]
    assert len(frames) == 1
    return frames[0].value


def sqnr_chart(at: AppTest) -> dict:
    [chart] = [c for c in at.get("plotly_chart") if c.proto.id.endswith("layers_sqnr")]
    return json.loads(chart.proto.spec)


def model_rows(**settings) -> dict[str, report.LayerRow]:
    return {r.layer: r for r in report.layer_table(sources.model_histograms(), **settings)}


def npz_bytes(hists) -> bytes:
    buf = io.BytesIO()
    cio.save_histograms(buf, hists)
    return buf.getvalue()


def small_file():
    rng = np.random.default_rng(0)
    return {
        "conv1 / relu": calib.Histogram.from_samples(np.maximum(rng.normal(size=20_000), 0)),
        "fc: out [0]": calib.Histogram.from_samples(rng.laplace(size=20_000)),
        "dead layer": calib.Histogram(np.zeros(2048), np.linspace(0, 1, 2049)),
    }


def upload_histograms(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="layers_src").set_value("upload").run()
    at.file_uploader(key="layers_file").set_value((name, data, "application/octet-stream"))
    return at.run()


def test_default_view_lists_the_real_model_worst_first():
    at = run_page()
    assert not at.error
    df = table(at)
    hists = sources.model_histograms()
    assert len(df) == len(hists) == 48
    assert set(df["layer"]) == set(hists)
    sqnr = df["SQNR dB"].to_numpy()
    assert np.all(np.diff(sqnr) >= 0), "not sorted by SQNR, lowest first"
    expected = report.worst_first(list(model_rows().values()))
    assert list(df["layer"]) == [r.layer for r in expected]
    # attention probabilities, clipped far inside by the seed's entropy, are the worst and
    # say why
    assert df["layer"].iloc[0] == "/bert/encoder/layer.1/attention/self/Softmax_output_0"
    assert "low SQNR" in df["flags"].iloc[0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tensors"] == "48"
    fig = sqnr_chart(at)
    assert sum(len(t["customdata"]) for t in fig["data"]) == 48


def test_every_flag_shown_is_explained_and_unflagged_rows_say_so():
    """Issue 10, problem 6: the flags missed the worst tensors and were not explained."""
    at = run_page()
    df = table(at).set_index("layer")
    gelu = "/bert/encoder/layer.0/intermediate/intermediate_act_fn/Mul_1_output_0"
    assert df.loc[gelu, "flags"] == "outliers, low SQNR"  # 9.5 dB
    assert (df["flags"] == report.NO_FLAG).any() and not (df["flags"] == "").any()
    shown = {f for text in df["flags"] for f in text.split(", ") if f != report.NO_FLAG}
    notes = " ".join(m.value for m in at.markdown)
    for flag in shown:
        assert f"**{flag}**" in notes and report.FLAG_HELP[flag] in notes
    fig = sqnr_chart(at)
    assert [t["name"] for t in fig["data"]] == ["no flag", "flagged"]


@pytest.mark.slow
def test_variant_and_method_change_the_amaxes():
    at = run_page()
    seed = table(at).set_index("layer")["amax"]
    at.selectbox(key="layers_variant").set_value("modelopt").run()
    assert not at.exception and not at.error
    modelopt = table(at).set_index("layer")["amax"]
    assert not np.allclose(seed[modelopt.index], modelopt)
    want = model_rows(variant="modelopt")
    assert all(modelopt[n] == want[n].amax for n in modelopt.index)

    at.selectbox(key="layers_method").set_value("max").run()
    assert not at.exception and not at.error
    df = table(at)
    assert np.array_equal(df["amax"], df["max"])  # max calibration clips at the max
    assert df["KL"].isna().all()  # KL is the entropy method's only
    assert at.selectbox(key="layers_variant").disabled


@pytest.mark.slow
def test_target_bins_too_large_shows_an_error_and_keeps_the_other_rows():
    at = run_page()
    # folded to |x|, the shipped histograms have 2,048 to 4,820 bins: 2,600 levels fit in
    # some, not in others (and the table stays under the page's cell budget)
    at.number_input(key="layers_target_bins").set_value(2600).run()
    assert not at.exception
    assert len(at.error) == 1 and "target_bins" in at.error[0].value
    df = table(at)
    assert len(df) == 48
    errors = df["flags"].str.startswith("error")
    assert errors.any() and not errors.all()
    # the seed reads |x|: each shipped histogram is signed, its n bins fold to n / 2
    folded = df["bins"] / 2
    assert (folded[errors] <= 2600).all() and (folded[~errors] > 2600).all()


@pytest.mark.slow
def test_selecting_a_row_opens_it_in_explore():
    # switch_page resolves page paths against the entry point, so enter through app.py
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    at.selectbox(key="layers_variant").set_value("ncnn").run()
    df = table(at)
    at.session_state["layers_table"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    params = dict(at.query_params)
    assert params["src"] in ("model", ["model"])
    layer = params["layer"]
    assert (layer[0] if isinstance(layer, list) else layer) == df["layer"].iloc[1]
    assert params["variant"] in ("ncnn", ["ncnn"])
    assert not any(t.value == "Layers" for t in at.title), "still on the Layers page"
    # coming back does not bounce straight to Explore again
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any(t.value == "Layers" for t in at.title)


@pytest.fixture
def downloads(monkeypatch):
    """Every file handed to a download button this test: media id -> bytes."""
    saved: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        saved[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return saved


def download(at: AppTest, key: str, saved: dict[str, bytes]) -> str:
    button = next(b for b in at.get("download_button") if b.proto.id.endswith(key))
    file_id = Path(button.proto.url).stem
    return saved[file_id].decode()


@pytest.mark.slow
def test_exports_read_back(downloads):
    at = upload_histograms(run_page(), "small.npz", npz_bytes(small_file()))
    assert not at.exception and not at.error
    rows = {r.layer: r for r in report.layer_table(small_file())}

    back = list(csv.DictReader(io.StringIO(download(at, "layers_dl_csv", downloads))))
    assert {r["layer"] for r in back} == set(rows)
    for r in back:
        assert float(r["amax"]) == rows[r["layer"]].amax
    doc = json.loads(download(at, "layers_dl_json", downloads))
    assert doc["settings"]["method"] == "entropy" and len(doc["layers"]) == 3

    trt = cio.read_trt_cache_full(io.StringIO(download(at, "layers_dl_trt", downloads)))
    assert set(trt.amax) == {"conv1 / relu", "fc: out [0]"}  # the dead layer has no scale
    assert not trt.problems
    for name, amax in trt.amax.items():
        assert amax == pytest.approx(rows[name].amax, rel=1e-6)
    ort = cio.read_ort_calibration_json(io.StringIO(download(at, "layers_dl_ort", downloads)))
    assert ort.ranges["fc: out [0]"][1] == pytest.approx(rows["fc: out [0]"].amax, rel=1e-6)
    assert any("dead layer" in c.value and "no scale" in c.value for c in at.caption)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, data, says",
    [
        ("bad.npz", b"not a zip at all", "not an .npz"),
        ("empty.npz", b"", "empty"),
        ("objects.npz", None, "pickle"),
    ],
)
def test_a_bad_upload_shows_an_error_and_keeps_the_previous_table(name, data, says):
    if data is None:  # an object array: refused without unpickling
        buf = io.BytesIO()
        np.savez(buf, counts=np.array([1, "x", None], dtype=object))
        data = buf.getvalue()
    at = upload_histograms(run_page(), "small.npz", npz_bytes(small_file()))
    assert len(table(at)) == 3
    at.file_uploader(key="layers_file").set_value((name, data, "application/octet-stream"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and says in at.error[0].value and name in at.error[0].value
    assert set(table(at)["layer"]) == set(small_file())  # the previous table stays


@pytest.mark.slow
def test_a_cache_shows_cached_thresholds_and_flags_problems():
    rows = model_rows()
    names = list(rows)
    amax = {n: rows[n].amax for n in names[1:]}  # the first tensor is missing
    amax[names[5]] *= 3.0  # a large disagreement
    amax[names[6]] = 0.0  # a zero scale
    amax[names[8]] = amax[names[7]]  # two tensors sharing one scale (a copy, or an alias)
    amax["(Unnamed Layer* 7) [Activation]_output"] = 1.0  # a generated name, not ours
    buf = io.StringIO()
    cio.write_trt_cache(buf, amax)
    at = run_page()
    cache = ("model.cache", buf.getvalue().encode(), "text/plain")
    at.file_uploader(key="layers_cache_file").set_value(cache).run()
    assert not at.exception and not at.error
    df = table(at).set_index("layer")
    assert df.loc[names[2], "cached amax"] == pytest.approx(rows[names[2]].amax, rel=1e-6)
    assert df.loc[names[5], "cached/calib"] == pytest.approx(3.0, rel=1e-6)
    assert df.loc[names[5], "disagree"] and not df.loc[names[2], "disagree"]
    assert df.loc[names[6], "disagree"]  # zero against calib's amax
    assert math.isnan(df.loc[names[0], "cached amax"])
    metrics = {m.label: m.value for m in at.metric}
    # the large one, the zero and the copied scale (unless the two tensors clip alike)
    ratio = rows[names[7]].amax / rows[names[8]].amax
    copied = not 1 / report.DISAGREE_RATIO <= ratio <= report.DISAGREE_RATIO
    assert metrics["Disagree with the cache"] == str(2 + copied)
    warnings = " ".join(w.value for w in at.warning)
    for check in ("problem", "identical", "unnamed", "missing", "extra"):
        assert f"**{check}**" in warnings
    assert "zero scale" in warnings and repr(names[0]) in warnings

    # a bad cache: an error, and the comparison with the last good cache stays
    broken = ("broken.cache", b"TRT-8601-EntropyCalibration2\nx: nothex\n", "text/plain")
    at.file_uploader(key="layers_cache_file").set_value(broken).run()
    assert not at.exception
    assert len(at.error) == 1 and "broken.cache" in at.error[0].value
    assert "not a float32 in hex" in at.error[0].value
    assert "cached amax" in table(at).columns


def _relu_model() -> bytes:
    """X[N,3] -> MatMul(W) -> h -> Relu -> Y: a model small enough to check by hand."""
    from onnx import TensorProto, helper

    w = np.array([[1.0, -1.0], [0.5, 2.0], [-2.0, 0.25]], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["h"], name="mm"),
            helper.make_node("Relu", ["h"], ["Y"], name="relu"),
        ],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.slow
def test_collect_from_an_uploaded_onnx_model():
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, X=x)
    at = run_page()
    at.radio(key="layers_src").set_value("onnx").run()
    assert any("Upload an ONNX model" in i.value for i in at.info)
    at.file_uploader(key="layers_onnx_model").set_value(("tiny.onnx", _relu_model(), "x"))
    at.file_uploader(key="layers_onnx_inputs").set_value(("x.npz", buf.getvalue(), "x"))
    at.run()
    assert not at.exception and not at.error
    assert sorted(table(at)["layer"]) == ["X", "Y", "h"]  # every float tensor, one row each
    # a file that is not ONNX: an error, and the previous table stays
    at.file_uploader(key="layers_onnx_model").set_value(("bad.onnx", b"not onnx", "x")).run()
    assert at.error and "Could not collect from bad.onnx" in at.error[0].value
    assert sorted(table(at)["layer"]) == ["X", "Y", "h"]  # the last good file stays


@pytest.mark.slow
def test_a_collected_tensor_opens_in_explore_and_downloads(downloads):
    """Issue 10, problem 2: a row of histograms collected from an ONNX model used to open
    an empty Explore asking for "the same file", which the user never had."""
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, X=x)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    at.radio(key="layers_src").set_value("onnx").run()
    at.file_uploader(key="layers_onnx_model").set_value(("tiny.onnx", _relu_model(), "x"))
    at.file_uploader(key="layers_onnx_inputs").set_value(("x.npz", buf.getvalue(), "x"))
    at.run()
    assert not at.exception and not at.error
    # the collected histograms as the project's .npz
    button = next(b for b in at.get("download_button") if b.proto.id.endswith("histograms"))
    saved = downloads[Path(button.proto.url).stem]
    back = cio.load_histograms(io.BytesIO(saved))
    assert sorted(back) == ["X", "Y", "h"]
    df = table(at)
    row = int(np.flatnonzero(df["layer"] == "h")[0])
    at.session_state["layers_table"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    assert not any(t.value == "Layers" for t in at.title), "still on the Layers page"
    assert not at.info, [i.value for i in at.info]  # no "Upload a file"
    assert at.radio(key="explore_kind").value == "layers"
    assert at.selectbox(key="explore_layers_layer").value == "h"
    assert "tiny.onnx" in at.caption[0].value and ": h" in at.caption[0].value
    r = calib.kl_sweep(back["h"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Threshold (bins)"] == str(r.best)
