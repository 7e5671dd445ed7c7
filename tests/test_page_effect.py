"""The Effect page (pages/4_Effect.py) under AppTest: the shipped MiniLM results, opening a
tensor in Explore, and an uploaded model evaluated under a progress bar."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from calib import evaluate, load_histograms, models
from calib.app import effect
from tests.test_evaluate import attention_model, quarters

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/4_Effect.py"
TIMEOUT = 60


def run_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def frame(at: AppTest, key: str):
    """A selectable table by its key; the others (AppTest keeps no key for them) by a
    column only they have."""
    column = {"effect_methods_table": "calibration", "effect_keep_float_table": "back to float"}
    if key in column:
        [df] = [d for d in at.dataframe if column[key] in d.value.columns]
    else:
        [df] = [d for d in at.dataframe if d.key == key]
    return df.value


def chart(at: AppTest, key: str) -> dict:
    [c] = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    return json.loads(c.proto.spec)


def shipped() -> dict:
    return evaluate.read_report(effect.SHIPPED_PATH.read_bytes())


def test_the_shipped_report_is_small_and_complete():
    assert effect.SHIPPED_PATH.stat().st_size < 200 * 1024
    doc = shipped()
    assert len(doc["quantized"]["tensors"]) == 48 and len(doc["sensitivity"]) == 48
    assert len(doc["methods"]) == 8
    only = [r["only_this_sqnr_db"] for r in doc["sensitivity"]]
    assert only == sorted(only)
    # one collection: every ranked tensor has its histogram in the file Explore opens
    hists = load_histograms(ROOT / "assets" / "minilm_histograms.npz")
    assert all(r["explore"] == r["layer"] and r["layer"] in hists for r in doc["sensitivity"])
    assert math.isfinite(doc["rank_correlation"]["hist_sqnr_db"])


def test_default_view_shows_the_shipped_minilm_results():
    at = run_page()
    doc = shipped()
    assert any(t.value == "Effect on the model" for t in at.title)
    methods = frame(at, "effect_methods_table")
    assert list(methods["calibration"]) == [m["label"] for m in doc["methods"]]
    bars = chart(at, "effect_methods")["data"][0]
    assert bars["x"] == [m["label"] for m in doc["methods"]]
    np.testing.assert_allclose(bars["y"], [m["output_sqnr_db"] for m in doc["methods"]])
    table = frame(at, "effect_sensitivity")
    assert list(table["layer"]) == [r["layer"] for r in doc["sensitivity"]]
    proxy = chart(at, "effect_proxy")
    points = sum(len(t["x"]) for t in proxy["data"])
    assert points == len(doc["sensitivity"])
    assert f"{doc['rank_correlation']['hist_sqnr_db']:.2f}" in proxy["layout"]["title"]["text"]
    if doc["keep_float"]:
        steps = chart(at, "effect_keep_float")["data"][0]
        assert steps["customdata"][1:] == [s["layer"] for s in doc["keep_float"]]


@pytest.mark.slow
def test_selecting_a_tensor_opens_its_histogram_in_explore():
    doc = shipped()
    row = 0
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    at.session_state["effect_sensitivity"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    params = dict(at.query_params)
    layer = params["layer"]
    assert (layer[0] if isinstance(layer, list) else layer) == doc["sensitivity"][row]["layer"]
    assert params["src"] in ("model", ["model"])
    assert not any(t.value == "Effect on the model" for t in at.title)


@pytest.mark.slow
def test_a_tensor_explore_has_no_histogram_of_says_so(tmp_path, monkeypatch):
    """A row whose tensor has no histogram in the shipped collection (the shipped report
    has none since it is evaluated from that collection: one made here) says so."""
    doc = json.loads(effect.SHIPPED_PATH.read_text(encoding="utf-8"))
    for ranking in (doc, *doc.get("sensitivities", ())):  # the row as every ranking has it
        ranking["sensitivity"][0]["layer"] = "/not/in/the/histogram/file_output_0"
    path = tmp_path / "effect.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    m = models.MODELS["minilm"]
    monkeypatch.setitem(models.MODELS, "minilm", dataclasses.replace(m, effect=path))
    effect.shipped_report.clear()
    try:
        at = run_page()
        at.session_state["effect_sensitivity"] = {"selection": {"rows": [0], "columns": []}}
        at.run()
        assert not at.exception
        assert any("Explore has no histogram of" in c.value for c in at.caption)
        assert any(t.value == "Effect on the model" for t in at.title)
    finally:
        effect.shipped_report.clear()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.slow
def test_an_uploaded_model_runs_when_asked():
    x = quarters(np.random.default_rng(0), (20, 4, 8))
    at = run_page()
    at.radio(key="effect_src").set_value("upload").run()
    assert any("Upload an ONNX model" in i.value for i in at.info)
    at.file_uploader(key="effect_model").set_value(("att.onnx", attention_model(), "x"))
    at.file_uploader(key="effect_inputs").set_value(("x.npz", _npz(X=x), "x"))
    at.run()
    assert any("Press Evaluate" in i.value for i in at.info)
    assert len(frame(at, "effect_methods_table")) == 8  # still the shipped results
    at.button(key="effect_run").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    table = frame(at, "effect_sensitivity")
    assert sorted(table["layer"]) == ["X", "a", "h", "r", "t"]
    assert any("samples 16..19 of 20" in c.value for c in at.caption)
    # a rerun keeps the results without pressing again
    at.run()
    assert sorted(frame(at, "effect_sensitivity")["layer"]) == ["X", "a", "h", "r", "t"]


@pytest.mark.slow
def test_an_uploaded_tensor_opens_in_explore_with_its_histogram():
    x = quarters(np.random.default_rng(0), (20, 4, 8))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    at.radio(key="effect_src").set_value("upload").run()
    at.file_uploader(key="effect_model").set_value(("att.onnx", attention_model(), "x"))
    at.file_uploader(key="effect_inputs").set_value(("x.npz", _npz(X=x), "x"))
    at.run()
    at.button(key="effect_run").click().run()
    assert not at.exception and not at.error
    table = frame(at, "effect_sensitivity")
    row = int(np.flatnonzero(table["layer"] == "a")[0])
    at.session_state["effect_sensitivity"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    assert not any(t.value == "Effect on the model" for t in at.title)
    assert at.radio(key="explore_kind").value == "layers"
    assert at.selectbox(key="explore_layers_layer").value == "a"


@pytest.mark.slow
def test_a_bad_upload_shows_an_error_and_the_shipped_results():
    at = run_page()
    at.radio(key="effect_src").set_value("upload").run()
    at.file_uploader(key="effect_model").set_value(("bad.onnx", b"not onnx", "x"))
    at.file_uploader(key="effect_inputs").set_value(("x.npz", _npz(X=np.zeros((4, 2))), "x"))
    at.run()
    at.button(key="effect_run").click().run()
    assert not at.exception
    assert at.error and "Could not evaluate bad.onnx" in at.error[0].value
    assert len(frame(at, "effect_sensitivity")) == 48


@pytest.mark.parametrize("rho", [0.5, math.nan])
def test_the_proxy_figure_title(rho):
    from calib.figures.effect import proxy_figure

    rows = [
        {"layer": "a", "hist_sqnr_db": 10.0, "only_this_sqnr_db": 20.0, "flags": []},
        {"layer": "b", "hist_sqnr_db": 5.0, "only_this_sqnr_db": math.inf, "flags": ["dead"]},
    ]
    fig = proxy_figure(rows, rho)
    assert [list(t.customdata) for t in fig.data] == [["a"], []]
    assert ("0.50" in fig.layout.title.text) == (rho == 0.5)
