"""The Layers page's small multiples and convergence sections under AppTest
(calib/app/grid.py, calib/app/convergence.py): the grid pages through the table's order and
opens a clicked panel in Explore; the convergence charts are calib.convergence's numbers;
a file of 240 tensors stays fast."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from calib import convergence
from calib import io as cio
from calib.app import grid as ug
from calib.app.convergence import HOW_TO
from calib.app.sources import ASSET_PATH
from calib.histogram import Histogram
from calib.io import Trace

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/2_Layers.py"
TIMEOUT = 60
MANY = 240  # tensors in the synthetic file: ten pages


def run_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def table_layers(at: AppTest) -> list[str]:
    frames = [d for d in at.dataframe if d.key == "layers_table"]
    assert len(frames) == 1
    return list(frames[0].value["layer"])


def chart(at: AppTest, key: str) -> dict:
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key)]
    assert len(found) == 1, f"{len(found)} charts {key}"
    return json.loads(found[0].proto.spec)


def panels(at: AppTest) -> list[str]:
    """The layers of the grid's panels, in order (trace i + 1 is panel i)."""
    data = chart(at, ug.CHART_KEY)["data"]
    return [t["name"] for t in data[1:] if t["name"] not in ("clip", "max", "labels")]


def decode(v) -> np.ndarray:
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="layers_src").set_value("upload").run()
    at.file_uploader(key="layers_file").set_value((name, data, "application/octet-stream"))
    return at.run()


def many_tensors(traced: bool = True) -> bytes:
    """MANY small histograms, and traces whose thresholds settle by known batches."""
    rng = np.random.default_rng(7)
    hists, traces = {}, {}
    samples = np.arange(1, 9) * 16
    for i in range(MANY):
        x = rng.laplace(scale=1 + i % 5, size=2000)
        if i % 40 == 0:
            x[:3] *= 30  # outliers for the flags
        hists[f"block{i // 12}/layer{i}:out"] = Histogram.from_samples(x, 256)
        final = 1.0 + i
        settle = i % 8  # batch from which the amax is final
        amax = np.where(np.arange(8) < settle, final * 0.5, final)
        traces[f"block{i // 12}/layer{i}:out"] = Trace(
            samples, {"max": amax, "entropy:seed": amax * 0.25}
        )
    buf = io.BytesIO()
    cio.save_histograms(buf, hists, traces=traces if traced else None)
    return buf.getvalue()


# -- the grid ---------------------------------------------------------------------------------
def test_the_grid_pages_through_the_tables_order():
    at = run_page()
    order = table_layers(at)
    assert len(order) == 48
    page = at.selectbox(key=ug.PAGE_KEY)
    assert page.options == ["1–24 of 48", "25–48 of 48"]
    assert panels(at) == order[:24]
    for p in (0, 1):
        at.selectbox(key=ug.PAGE_KEY).set_value(ug.page_label(p, 48)).run()
        assert not at.exception
        assert panels(at) == order[24 * p : 24 * (p + 1)]
        assert table_layers(at) == order  # the table above is untouched
    # another method reorders the table, and the grid follows it
    at.selectbox(key="layers_method").set_value("max").run()
    assert not at.exception
    order = table_layers(at)
    assert panels(at) == order[24:48]
    spec = chart(at, ug.CHART_KEY)
    clips = [v for v in spec["data"][-3]["customdata"][0::3]]
    maxes = [v for v in spec["data"][-2]["customdata"][0::3]]
    assert clips == maxes  # max calibration clips at the max


@pytest.mark.slow
def test_clicking_a_panel_opens_it_in_explore():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    at.selectbox(key="layers_variant").set_value("ncnn").run()
    at.selectbox(key=ug.PAGE_KEY).set_value(ug.page_label(1, 48)).run()
    order = table_layers(at)
    # a click on the background of the third panel of page 2
    at.session_state[ug.CHART_KEY] = {
        "selection": {"points": [{"curve_number": 0, "point_index": 2}], "point_indices": [2]}
    }
    at.run()
    assert not at.exception, at.exception
    params = dict(at.query_params)
    layer = params["layer"]
    assert (layer[0] if isinstance(layer, list) else layer) == order[26]
    assert params["variant"] in ("ncnn", ["ncnn"])
    assert not any(t.value == "Layers" for t in at.title), "still on the Layers page"
    at.switch_page(PAGE).run()  # coming back does not bounce to Explore again
    assert not at.exception
    assert any(t.value == "Layers" for t in at.title)


@pytest.mark.slow
def test_two_hundred_and_forty_tensors_page_fast():
    at = run_page()
    t0 = time.perf_counter()
    at = upload(at, "many.npz", many_tensors())
    first = time.perf_counter() - t0
    assert not at.exception and not at.error
    order = table_layers(at)
    assert len(order) == MANY
    assert len(at.selectbox(key=ug.PAGE_KEY).options) == 10
    assert panels(at) == order[:24]
    turns = []
    for p in (9, 4, 5):
        t0 = time.perf_counter()
        at.selectbox(key=ug.PAGE_KEY).set_value(ug.page_label(p, MANY)).run()
        turns.append(time.perf_counter() - t0)
        assert not at.exception
        assert panels(at) == order[24 * p : 24 * (p + 1)]
    print(f"240 tensors: first view {first:.2f} s, page turns {[round(t, 2) for t in turns]} s")
    # a page turn redraws 24 panels, not 240: well under the first view's cost
    assert min(turns) < 1.0
    # a smaller file afterwards: back to its first page
    small = {"a": Histogram.from_samples(np.arange(100.0), 128)}
    buf = io.BytesIO()
    cio.save_histograms(buf, small)
    at = upload(at, "small.npz", buf.getvalue())
    assert not at.exception and panels(at) == ["a"]
    assert not [s for s in at.selectbox if s.key == ug.PAGE_KEY]  # one page: no selector


def test_page_helpers():
    assert ug.page_count(0) == 1 and ug.page_count(24) == 1 and ug.page_count(25) == 2
    assert ug.page_label(2, 72) == "49–72 of 72" and ug.page_label(1, 30) == "25–30 of 30"
    assert list(ug.page_rows(list(range(50)), 2)) == [48, 49]


# -- convergence ------------------------------------------------------------------------------
def test_convergence_of_the_shipped_model_is_calib_convergence():
    at = run_page()
    traces = cio.load_convergence(ASSET_PATH)
    tol = convergence.DEFAULT_TOL
    spec = chart(at, "layers_conv_share")
    lines = {t["name"]: t for t in spec["data"]}
    assert list(lines) == list(convergence.CONVERGENCE_METHODS)
    for m in convergence.CONVERGENCE_METHODS:
        samples, share = convergence.settled_share(traces, m, tol)
        np.testing.assert_array_equal(decode(lines[m]["x"]), samples)
        np.testing.assert_allclose(decode(lines[m]["y"]), 100 * share)
    df = next(d.value for d in at.dataframe if "95% settled at" in d.value.columns)
    df = df.set_index("method")
    for row in convergence.settling_table(traces, tol):
        assert df.loc[row.method, "tensors"] == row.tensors == 48
        assert df.loc[row.method, "95% settled at"].split()[0] == str(row.samples_95)
        assert df.loc[row.method, "all settled at"].split()[0] == str(row.samples_all)
    # 512 sentences in batches sorted by length: each batch is longer than the last, so no
    # method has settled before the last one
    assert df.loc["entropy:seed", "95% settled at"] == "512 (last batch)"
    assert df.loc["percentile", "95% settled at"] == "512 (last batch)"
    assert any("still moving" in c.value for c in at.caption)

    # one tensor: the worst of the table first, then any other
    order = table_layers(at)
    assert at.selectbox(key="layers_conv_layer").value == order[0]
    other = order[5]
    at.selectbox(key="layers_conv_layer").set_value(other).run()
    assert not at.exception
    spec = chart(at, "layers_conv_amax")
    assert other in spec["layout"]["title"]["text"]
    lines = {t["name"]: t for t in spec["data"]}
    for m, amax in traces[other].amax.items():
        np.testing.assert_array_equal(decode(lines[m]["x"]), traces[other].samples)
        np.testing.assert_array_equal(decode(lines[m]["y"]), amax)
        j = convergence.settled_at(traces[other], m, tol)
        assert lines[f"{m} settled"]["x"] == [int(traces[other].samples[j])]


@pytest.mark.slow
def test_convergence_of_an_uploaded_file_and_of_one_without_traces():
    at = upload(run_page(), "many.npz", many_tensors())
    assert not at.exception and not at.error
    spec = chart(at, "layers_conv_share")
    share = {t["name"]: decode(t["y"]) for t in spec["data"]}
    # tensor i settles at batch i % 8: an eighth more of them after each batch
    np.testing.assert_allclose(share["max"], 100 * np.arange(1, 9) / 8)
    np.testing.assert_allclose(share["entropy:seed"], share["max"])
    assert not any(HOW_TO[:40] in i.value for i in at.info)

    at = upload(at, "plain.npz", many_tensors(traced=False))
    assert not at.exception and not at.error
    assert any(i.value == HOW_TO for i in at.info)
    assert "--convergence" in HOW_TO
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("layers_conv_share")]
    assert panels(at)  # the grid is there all the same


@pytest.mark.slow
def test_histograms_collected_on_the_page_have_a_grid_and_say_how_to_get_traces():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from test_page_layers import _relu_model

    buf = io.BytesIO()
    np.savez(buf, X=np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32))
    at = run_page()
    at.radio(key="layers_src").set_value("onnx").run()
    at.file_uploader(key="layers_onnx_model").set_value(("tiny.onnx", _relu_model(), "x"))
    at.file_uploader(key="layers_onnx_inputs").set_value(("x.npz", buf.getvalue(), "x"))
    at.run()
    assert not at.exception and not at.error
    assert sorted(panels(at)) == ["X", "Y", "h"]
    assert panels(at) == table_layers(at)
    notes = [i.value for i in at.info]
    assert any(n.startswith("Histograms collected here hold no convergence traces") for n in notes)
    assert any("--convergence" in n for n in notes)
