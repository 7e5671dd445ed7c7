"""Both shipped real models on every page (issue 18 item 2, issue 17 item 4): the registry
(``calib.models``), and Explore, Learn, Layers, Compare and Effect switching between
all-MiniLM-L6-v2 and EfficientNet-Lite0 under AppTest.

The Effect page's EfficientNet results are a stand-in until ``assets/`` ships them: the
generated CNN of ``tests/test_evaluate_classifier.py`` (Conv, ReLU6, depthwise Conv,
pooling, Gemm to 10 class scores) evaluated here, with its histograms, put in the
registry's EfficientNet entry; the real file is used when it is there.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from calib import Histogram, evaluate, models
from calib import io as cio
from calib.app import effect, effect_models, sources
from calib.models import MODELS, short_name
from calib.numbers import DB_DECIMALS

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
NET = "efficientnet_lite0"


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def query(at: AppTest) -> dict[str, str]:
    return {k: v[0] if isinstance(v, list) else v for k, v in dict(at.query_params).items()}


def metric(at: AppTest, label: str) -> str:
    [m] = [m for m in at.metric if m.label == label]
    return m.value


# -- the registry ----------------------------------------------------------------------------
def test_every_shipped_model_opens_on_a_tensor_of_its_own_file():
    shipped = models.shipped_models()
    assert list(shipped)[:2] == ["minilm", NET]
    for m in shipped.values():
        hists = cio.load_histograms(m.histograms)
        assert m.default_layer in hists, m.id
        assert all(name.startswith("/") for name in hists)  # ONNX names
        shown = [short_name(n) for n in hists]
        assert len(set(shown)) == len(shown), f"{m.id}: two tensors shown alike"
        assert cio.load_convergence(m.histograms), f"{m.id}: no convergence traces"


def test_a_model_whose_file_is_missing_is_not_offered(monkeypatch, tmp_path):
    gone = dataclasses.replace(MODELS[NET], histograms=tmp_path / "gone.npz")
    monkeypatch.setitem(MODELS, NET, gone)
    assert NET not in models.shipped_models() and NET not in models.with_effect()
    at = page("0_Explore.py")
    assert at.selectbox(key="explore_model").options == [MODELS["minilm"].label]


def test_short_names_keep_the_last_parts_and_links_the_full_name():
    name = "/bert/encoder/layer.3/attention/self/Transpose_2_output_0"
    assert short_name(name) == "layer.3/attention/self/Transpose_2 output"
    assert short_name("/_blocks.15/_project_conv/Conv_output_1") == (
        "_blocks.15/_project_conv/Conv output 1"
    )


# -- Explore, Compare, Learn: the shared source picker ----------------------------------------
def test_explore_switches_models_and_keeps_the_model_in_its_url():
    at = page("0_Explore.py")
    layer = at.selectbox(key="explore_model_layer")
    assert layer.value == MODELS["minilm"].default_layer
    assert "layer.0/intermediate" in layer.format_func(layer.value)  # shown short
    before = metric(at, "Max |x|")
    at.selectbox(key="explore_model").set_value(NET).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    layer = at.selectbox(key="explore_model_layer")
    assert layer.options == [short_name(n) for n in sources.model_histograms(NET)]
    assert layer.value == MODELS[NET].default_layer
    assert metric(at, "Max |x|") != before  # 6 (ReLU6) against the GELU's 24.7
    q = query(at)
    assert q["model"] == NET and q["layer"] == MODELS[NET].default_layer


def test_an_explore_link_opens_either_model_on_the_method_it_names():
    last = list(sources.model_histograms(NET))[-1]
    at = AppTest.from_file(str(ROOT / "pages" / "0_Explore.py"), default_timeout=TIMEOUT)
    at.query_params.update({"src": "model", "model": NET, "layer": last, "method": "mse"})
    at.run()
    assert not at.exception and not at.warning, (at.exception, at.warning)
    assert at.session_state["explore_model"] == NET
    assert at.session_state["explore_model_layer"] == last
    assert any("Ranked under mse" in i.value for i in at.info)
    at.query_params.update({"layer": MODELS[NET].default_layer, "method": ""})
    at.query_params.pop("method")
    at.run()  # a link without a method: no such note
    assert not any("ranked under" in i.value for i in at.info)
    bad = AppTest.from_file(str(ROOT / "pages" / "0_Explore.py"), default_timeout=TIMEOUT)
    bad.query_params.update({"src": "model", "model": "resnet", "layer": last})
    bad.run()
    assert any("Ignored model" in w.value and "resnet" in w.value for w in bad.warning)


def test_compare_switches_models():
    at = page("3_Compare.py")
    before = metric(at, "Max |x|")
    assert any(MODELS["minilm"].label in c.value for c in at.caption)
    at.selectbox(key="compare_model").set_value(NET).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert any(f"{MODELS[NET].label}: " in c.value for c in at.caption)
    assert metric(at, "Max |x|") != before
    assert at.selectbox(key="compare_model_layer").options[0] == short_name(
        next(iter(sources.model_histograms(NET)))
    )


def test_learn_switches_models():
    from calib.app.learn import OTHER

    at = page("1_Learn.py")
    at.selectbox(key="learn_lesson").set_value(OTHER).run()
    before = [c.proto.spec for c in at.get("plotly_chart")]
    at.selectbox(key="learn_model").set_value(NET).run()
    after = [c.proto.spec for c in at.get("plotly_chart")]
    assert before and len(after) == len(before) and after[0] != before[0]  # the CNN's counts
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.selectbox(key="learn_model_layer").value == MODELS[NET].default_layer
    assert at.selectbox(key="learn_model_layer").options == [
        short_name(n) for n in sources.model_histograms(NET)
    ]


# -- Layers ------------------------------------------------------------------------------------
def test_layers_switches_models_and_every_row_opens_in_explore():
    at = page("2_Layers.py")
    assert metric(at, "Tensors") == "48"
    at.selectbox(key="layers_model").set_value(NET).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert metric(at, "Tensors") == "50"
    [table] = [d.value for d in at.dataframe if d.key == "layers_table"]
    hists = sources.model_histograms(NET)
    assert set(table["layer"]) == set(hists)
    assert list(table["tensor"]) == [short_name(n) for n in table["layer"]]
    # both files carry traces: the convergence section draws, no "how to record them"
    assert not any("holds no convergence traces" in i.value for i in at.info)
    from calib.app.layers import Layers, Settings, explore_params

    lay = Layers(f"model:{NET}", "x", "model", hists)
    q = explore_params(lay, Settings("entropy", "seed", 8, None, 99.99), table["layer"][0])
    assert q["model"] == NET and q["layer"] == table["layer"][0] and q["src"] == "model"


# -- Effect ------------------------------------------------------------------------------------
@pytest.fixture
def cnn_results(tmp_path, monkeypatch):
    """EfficientNet's registry entry with results: the shipped file when it is there, else
    the generated CNN's (sensitivity of best and entropy:seed), with its histograms."""
    real = MODELS[NET].effect
    if real.is_file() and json.loads(real.read_text(encoding="utf-8")).get("sensitivity"):
        yield MODELS[NET]
        return
    from tests.test_evaluate_classifier import cnn, forward, images

    model, consts = cnn()
    hists = {
        f"/_blocks.0/{k}_output_0": Histogram.from_samples(v.ravel(), bins=512, signed=True)
        for k, v in forward(images(3, 64), consts, {}).items()
        if k != "Y"
    }
    import onnx

    m = onnx.load_from_string(model)  # the same tensors under ONNX-like names
    rename = {k.split("/")[-1].removesuffix("_output_0"): k for k in hists}
    for node in m.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
    for vi in [*m.graph.input, *m.graph.output, *m.graph.value_info]:
        vi.name = rename.get(vi.name, vi.name)
    ev = evaluate.evaluate(
        m.SerializeToString(), {rename.get("X", "X"): images(2, 32)}, histograms=hists,
        methods=["max", "mse", "entropy:seed"], sensitivity_of="best,entropy:seed",
        workers=1, max_float=2, target_sqnr_db=60.0,
    )  # fmt: skip
    doc = ev.to_dict()
    (tmp_path / "effect.json").write_text(json.dumps(doc), encoding="utf-8")
    cio.save_histograms(tmp_path / "h.npz", hists)
    entry = dataclasses.replace(
        MODELS[NET], histograms=tmp_path / "h.npz", effect=tmp_path / "effect.json",
        default_layer=next(iter(hists)),
    )  # fmt: skip
    monkeypatch.setitem(MODELS, NET, entry)
    sources.model_histograms.clear()
    effect_models.shipped_report.clear()
    yield entry
    sources.model_histograms.clear()
    effect_models.shipped_report.clear()


def table(at: AppTest, column: str):
    [df] = [d.value for d in at.dataframe if column in d.value.columns]
    return df


def test_effect_switches_to_the_cnn_and_shows_its_top1_columns(cnn_results):
    at = page("4_Effect.py")
    assert at.radio(key="effect_src").options[:2] == [
        f"{MODELS['minilm'].label} (shipped)", f"{MODELS[NET].label} (shipped)",
    ]  # fmt: skip
    transformer = table(at, "calibration")
    assert "top-1 agreement %" not in transformer.columns  # hidden states: no classes
    at.radio(key="effect_src").set_value(NET).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    doc = effect.shipped_report(NET)
    methods = table(at, "calibration")
    assert list(methods["calibration"]) == [m["label"] for m in doc["methods"]]
    np.testing.assert_allclose(
        methods["top-1 agreement %"], [100 * m["top1_agreement"] for m in doc["methods"]]
    )
    assert "top-5 overlap %" in methods.columns
    sens = table(at, "only this (dB)")
    assert "only this top-1 %" in sens.columns and "all but this top-1 %" in sens.columns
    assert list(sens["layer"]) == [r["layer"] for r in doc["sensitivity"]]
    assert list(sens["tensor"]) == [short_name(r["layer"]) for r in doc["sensitivity"]]


def test_effect_ranks_under_the_calibration_picked_and_links_to_its_clip(cnn_results):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/4_Effect.py").run()
    at.radio(key="effect_src").set_value(NET).run()
    doc = effect.shipped_report(NET)
    names = list(effect_models.rankings(doc))
    assert at.selectbox(key="effect_ranking").options == names
    assert "entropy:seed" in names and len(names) >= 2
    first = table(at, "only this (dB)")
    at.selectbox(key="effect_ranking").set_value("entropy:seed").run()
    assert not at.exception, at.exception
    seed = next(s for s in doc["sensitivities"] if s["calibration"] == "entropy:seed")
    ranked = table(at, "only this (dB)")
    assert list(ranked["layer"]) == [r["layer"] for r in seed["sensitivity"]]
    np.testing.assert_allclose(  # as shown: DB_DECIMALS decimals (calib.numbers.db_cell)
        ranked["only this (dB)"],
        [r["only_this_sqnr_db"] for r in seed["sensitivity"]],
        rtol=0,
        atol=0.5 * 10.0**-DB_DECIMALS,
    )
    assert any("(entropy:seed)" in h.value for h in at.subheader)
    if doc["calibration"] != "entropy:seed":
        assert not first["only this (dB)"].equals(ranked["only this (dB)"])
    # the row opens Explore on the same model's file, at the seed's clip
    at.session_state["effect_sensitivity"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    q = query(at)
    assert q["model"] == NET and q["variant"] == "seed" and q["src"] == "model"
    assert q["layer"] == seed["sensitivity"][0]["layer"]


def test_a_row_ranked_under_a_method_links_with_that_method(cnn_results):
    doc = effect.shipped_report(NET)
    layer = doc["sensitivity"][0]["layer"]
    for name, want in (("mse", {"method": "mse"}), ("entropy:mxnet", {"variant": "mxnet"})):
        q = effect_models.explore_link({**doc, "calibration": name}, layer, model=NET)
        assert q is not None and q["model"] == NET and q["layer"] == layer
        assert all(q[k] == v for k, v in want.items()) and len(set(q) & {"method", "variant"}) == 1
    assert effect_models.explore_link(doc, "/no/such_output_0", model=NET) is None


def test_classifier_columns_only_where_the_report_has_them():
    recs = [{}, {}]
    added = effect_models.add_classifier_columns(
        recs, [{"top1_agreement": 0.5, "top5_overlap": math.nan}, {"top1_agreement": None}],
        effect_models.METHOD_TOP,
    )  # fmt: skip
    assert added == ["top-1 agreement %"]
    assert recs[0]["top-1 agreement %"] == 50.0 and math.isnan(recs[1]["top-1 agreement %"])


@pytest.mark.slow
def test_an_upload_is_ranked_under_the_calibration_picked_before_running():
    """The upload's ``sensitivity_of`` reaches ``calib.evaluate`` (in the sandbox's child):
    the sections show that calibration's ranking, and a row opens Explore at its clip."""
    from tests.test_evaluate import attention_model, quarters
    from tests.test_page_effect import _npz

    x = quarters(np.random.default_rng(0), (20, 4, 8))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/4_Effect.py").run()
    at.radio(key="effect_src").set_value("upload").run()
    assert at.selectbox(key="effect_sensitivity_of").options[0] == "best"
    at.selectbox(key="effect_sensitivity_of").set_value("max")
    at.file_uploader(key="effect_model").set_value(("att.onnx", attention_model(), "x"))
    at.file_uploader(key="effect_inputs").set_value(("x.npz", _npz(X=x), "x"))
    at.run()
    at.button(key="effect_run").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert any(h.value == "Which tensors hurt (max)" for h in at.subheader)
    at.session_state["effect_sensitivity"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    q = query(at)
    assert q["src"] == "layers" and q["method"] == "max"
    assert any("Ranked under max" in i.value for i in at.info)  # Explore says so
