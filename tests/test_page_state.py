"""Pages keep their state (calib/app/state.py), under AppTest through app.py's navigation:
set a page's widgets and uploads, visit another page, come back, and find them (and the
results computed from them) where they were; each page's view in its URL, and a link
that reproduces it; a ranked row opening Explore on its method's clip.

The browser clears the query string on a page change (the sidebar's links, and
``st.switch_page`` without ``query_params``); AppTest keeps it, so :func:`go` clears it
as the browser does.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import calib
from calib import evaluate
from calib import io as cio
from calib.app import effect, sources
from calib.explore import DEFAULT_LAYER
from calib.numbers import fmt
from tests.test_evaluate import attention_model, quarters

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
EXPLORE, LEARN, LAYERS, COMPARE, EFFECT = (
    "pages/0_Explore.py", "pages/1_Learn.py", "pages/2_Layers.py", "pages/3_Compare.py",
    "pages/4_Effect.py",
)  # fmt: skip

pytestmark = pytest.mark.slow  # page journeys: several pages run per test


def app(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    return at.run()


def go(at: AppTest, page: str, query: dict[str, str] | None = None) -> AppTest:
    """Switch page as the browser does: the query string is the link's, or empty."""
    at.query_params.clear()
    at.query_params.update(query or {})
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def small_npz() -> bytes:
    rng = np.random.default_rng(0)
    hists = {
        "conv1 / relu": calib.Histogram.from_samples(np.maximum(rng.normal(size=20_000), 0)),
        "fc: out [0]": calib.Histogram.from_samples(rng.laplace(size=20_000)),
    }
    buf = io.BytesIO()
    cio.save_histograms(buf, hists)
    return buf.getvalue()


def layers_table(at: AppTest):
    [df] = [d for d in at.dataframe if d.key == "layers_table"]
    return df.value


def params(at: AppTest) -> dict[str, str]:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in dict(at.query_params).items()}


# -- Layers ------------------------------------------------------------------------------------
def test_layers_keeps_its_upload_and_settings_across_a_visit_to_explore():
    at = go(app(), LAYERS)
    at.selectbox(key="layers_method").set_value("mse").run()
    at.selectbox(key="layers_bits").set_value(6).run()
    at.radio(key="layers_src").set_value("upload").run()
    at.file_uploader(key="layers_file").set_value(("small.npz", small_npz(), "x")).run()
    assert sorted(layers_table(at)["layer"]) == ["conv1 / relu", "fc: out [0]"]

    go(at, EXPLORE)
    go(at, LAYERS)
    assert at.radio(key="layers_src").value == "upload"
    assert at.selectbox(key="layers_method").value == "mse"
    assert at.selectbox(key="layers_bits").value == 6
    assert sorted(layers_table(at)["layer"]) == ["conv1 / relu", "fc: out [0]"]
    kept = [c.value.replace("\\", "") for c in at.sidebar.caption]
    assert any("small.npz" in c and "earlier in this session" in c for c in kept)
    assert params(at) == {"src": "upload", "method": "mse", "variant": "seed", "bits": "6"}
    # a rerun on the page keeps it too (the uploader shows no file now)
    at.selectbox(key="layers_method").set_value("max").run()
    assert sorted(layers_table(at)["layer"]) == ["conv1 / relu", "fc: out [0]"]


def test_layers_keeps_its_collection_from_an_onnx_model_without_running_it_again(monkeypatch):
    from calib import sandbox
    from calib.app import layers as ul
    from tests.test_page_layers import _relu_model

    runs = []  # each collection (AppTest runs the page in this process)
    real = sandbox.collect_upload

    def counted(*args, **kwargs):
        runs.append(real(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(sandbox, "collect_upload", counted)
    ul.collect_upload.clear()
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    at = go(app(), LAYERS)
    at.radio(key="layers_src").set_value("onnx").run()
    at.file_uploader(key="layers_onnx_model").set_value(("tiny.onnx", _relu_model(), "x"))
    at.file_uploader(key="layers_onnx_inputs").set_value(("x.npz", _npz(X=x), "x"))
    at.run()
    assert sorted(layers_table(at)["layer"]) == ["X", "Y", "h"] and len(runs) == 1
    ul.collect_upload.clear()  # even with the server's cache emptied meanwhile
    go(at, COMPARE)
    go(at, LAYERS)
    assert at.radio(key="layers_src").value == "onnx"
    assert sorted(layers_table(at)["layer"]) == ["X", "Y", "h"] and len(runs) == 1


def test_a_removed_upload_is_forgotten():
    at = go(app(), LAYERS)
    at.radio(key="layers_src").set_value("upload").run()
    at.file_uploader(key="layers_file").set_value(("small.npz", small_npz(), "x")).run()
    go(at, EXPLORE)
    go(at, LAYERS)
    assert len(layers_table(at)) == 2  # kept
    at.file_uploader(key="layers_file").set_value(("small.npz", small_npz(), "x")).run()
    at.file_uploader(key="layers_file").set_value(None).run()  # the user removes it
    assert any("Upload a histogram file" in i.value for i in at.info)
    assert not any("earlier in this session" in c.value for c in at.sidebar.caption)


def test_a_layers_link_reproduces_the_settings_and_a_bad_value_is_named():
    query = {"method": "percentile", "bits": "4", "percentile": "99.9", "variant": "mxnet"}
    at = go(app(), LAYERS, query)
    assert at.selectbox(key="layers_method").value == "percentile"
    assert at.selectbox(key="layers_bits").value == 4
    assert at.number_input(key="layers_percentile").value == pytest.approx(99.9)
    assert at.selectbox(key="layers_variant").value == "mxnet"
    assert params(at)["percentile"] == "99.9"
    at = go(app(), LAYERS, {"method": "kl", "bits": "99"})
    text = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "method='kl'" in text and "bits='99'" in text
    assert at.selectbox(key="layers_method").value == "entropy"


@pytest.mark.parametrize("method", ["mse", "percentile", "max"])
def test_a_layers_row_opens_explore_on_the_clip_of_its_method(method):
    at = go(app(), LAYERS)
    at.selectbox(key="layers_method").set_value(method).run()
    table = layers_table(at)
    layer = str(table["layer"].iloc[0])
    at.session_state["layers_table"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="explore_kind").value == "model"
    assert params(at)["method"] == method and params(at)["layer"] == layer
    [info] = [i for i in at.info if "Ranked under" in i.value]
    amax = float(table["amax"].iloc[0])
    assert f"amax {fmt(amax)}" in info.value  # the one number rule
    # the picked candidate is the sweep's nearest to that clip
    h = sources.model_histograms()[layer]
    sweep = calib.kl_sweep(h, variant="seed")
    nearest = int(sweep.candidates[np.abs(sweep.thresholds - amax).argmin()])
    assert at.slider(key="explore_candidate").value == nearest
    # AppTest's next run() would rerun Layers (the page it was told to run): go on in Explore
    at = go(at, EXPLORE, params(at))
    assert any("Ranked under" in i.value for i in at.info)
    at.button(key="explore_method_off").click().run()
    assert not [i for i in at.info if "Ranked under" in i.value]
    assert "method" not in params(at)


def test_an_effect_row_opens_explore_on_the_clip_of_its_method():
    doc = evaluate.read_report((ROOT / "assets" / "minilm_effect.json").read_bytes())
    method = doc["calibration"].partition(":")[0]
    row = next(i for i, r in enumerate(doc["sensitivity"]) if r["explore"])
    at = go(app(), EFFECT)
    at.session_state["effect_sensitivity"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    if method == "entropy":
        assert "method" not in params(at)
    else:
        assert params(at)["method"] == method
        assert any(f"Ranked under {method}" in i.value for i in at.info)


# -- Effect ------------------------------------------------------------------------------------
def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def effect_layers(at: AppTest) -> list[str]:
    [df] = [d for d in at.dataframe if d.key == "effect_sensitivity"]
    return sorted(df.value["layer"])


def test_effect_keeps_the_upload_evaluation_and_target_sqnr_recomputes_only_keep_float(
    monkeypatch,
):
    from calib import sandbox

    runs = []  # each evaluation of the upload (AppTest runs the page in this process)
    real = sandbox.evaluate_upload

    def counted(*args, **kwargs):
        runs.append(real(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(sandbox, "evaluate_upload", counted)
    effect.run_upload.clear()
    x = quarters(np.random.default_rng(0), (20, 4, 8))
    at = go(app(), EFFECT)
    at.radio(key="effect_src").set_value("upload").run()
    at.file_uploader(key="effect_model").set_value(("att.onnx", attention_model(), "x"))
    at.file_uploader(key="effect_inputs").set_value(("x.npz", _npz(X=x), "x"))
    at.run()
    at.button(key="effect_run").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    own = ["X", "a", "h", "r", "t"]
    assert effect_layers(at) == own
    [(doc, _)] = runs

    go(at, EXPLORE)
    go(at, EFFECT)
    assert at.radio(key="effect_src").value == "upload"
    assert effect_layers(at) == own  # not the shipped 48
    assert len(runs) == 1  # the same evaluation, not a new one

    for target in (5.0, 60.0):
        at.number_input(key="effect_target").set_value(target).run()
        assert not at.exception and not at.error
        assert effect_layers(at) == own
        assert len(runs) == 1
        want = evaluate.keep_float_at(doc, target)
        steps = [d for d in at.dataframe if "back to float" in d.value.columns]
        got = list(steps[0].value["back to float"]) if steps else []
        assert got == [s["layer"] for s in want["keep_float"]]
    ranked = str(doc["calibration"])  # the ranking shown: the best method's, by default
    assert params(at) == {
        "src": "upload", "ranking": ranked, "target": "60.0", "weights": "false",
        "rank_upload": "best",  # the calibration the upload's sensitivity was run under
    }  # fmt: skip


# -- Compare -----------------------------------------------------------------------------------
def test_compare_opens_on_explores_layer_and_keeps_its_own_settings():
    layers = list(sources.model_histograms())
    other = next(n for n in layers if n != DEFAULT_LAYER)
    at = go(app(), EXPLORE, {"src": "model", "layer": other})
    go(at, COMPARE)
    assert at.selectbox(key="compare_model_layer").value == other
    assert params(at)["layer"] == other
    # settings kept across a visit to Explore
    at.checkbox(key="compare_log_y").uncheck().run()
    at.checkbox(key="compare_same_levels").check().run()
    at.slider(key="compare_target_bins").set_value(64).run()
    go(at, EXPLORE)
    go(at, COMPARE)
    assert at.checkbox(key="compare_log_y").value is False
    assert at.checkbox(key="compare_same_levels").value is True
    assert at.slider(key="compare_target_bins").value == 64
    q = params(at)
    assert (q["log_y"], q["same_levels"], q["target_bins"]) == ("false", "true", "64")
    # a layer picked here is Compare's own: Explore's next layer does not replace it
    third = next(n for n in layers if n not in (DEFAULT_LAYER, other))
    at.selectbox(key="compare_model_layer").set_value(third).run()
    go(at, EXPLORE, {"src": "model", "layer": DEFAULT_LAYER})
    go(at, COMPARE)
    assert at.selectbox(key="compare_model_layer").value == third


def test_a_compare_link_reproduces_the_view():
    layer = list(sources.model_histograms())[3]
    query = {"src": "model", "layer": layer, "log_y": "false", "why": "mxnet"}
    at = go(app(), COMPARE, query)
    assert at.selectbox(key="compare_model_layer").value == layer
    assert at.checkbox(key="compare_log_y").value is False
    assert params(at)["why"] == "mxnet"


# -- Learn -------------------------------------------------------------------------------------
def test_learn_keeps_its_lesson_settings_and_candidate_and_its_link_reproduces_them():
    at = go(app(), LEARN)
    lessons = at.selectbox(key="learn_lesson").options
    at.selectbox(key="learn_lesson").set_value(lessons[1]).run()
    at.selectbox(key="learn_variant").set_value("mxnet").run()
    lo, hi = at.slider(key="learn_candidate").min, at.slider(key="learn_candidate").max
    cand = int((lo + hi) // 2)
    at.slider(key="learn_candidate").set_value(cand).run()
    go(at, LAYERS)
    go(at, LEARN)
    assert at.selectbox(key="learn_lesson").value == lessons[1]
    assert at.selectbox(key="learn_variant").value == "mxnet"
    assert at.slider(key="learn_candidate").value == cand
    q = params(at)
    assert (q["lesson"], q["variant"], q["candidate"]) == (lessons[1], "mxnet", str(cand))

    fresh = go(app(), LEARN, q)  # the link, in a new session
    assert fresh.selectbox(key="learn_lesson").value == lessons[1]
    assert fresh.selectbox(key="learn_variant").value == "mxnet"
    assert fresh.slider(key="learn_candidate").value == cand


# -- the shipped model in every page's link ---------------------------------------------------
NET = "efficientnet_lite0"


def test_every_pages_link_names_the_shipped_model_and_compare_follows_explores():
    """A view of the CNN is a link to the CNN on every page (the link tables of
    calib.app.links): Explore's, Compare's (which opens on Explore's model and layer),
    Layers' and Learn's; a link naming the model opens it."""
    layer = list(sources.model_histograms(NET))[5]
    at = go(app(), EXPLORE, {"src": "model", "model": NET, "layer": layer})
    assert params(at)["model"] == NET and params(at)["layer"] == layer
    go(at, COMPARE)
    assert at.selectbox(key="compare_model").value == NET
    assert at.selectbox(key="compare_model_layer").value == layer
    assert (params(at)["model"], params(at)["layer"]) == (NET, layer)
    from calib.app.learn import OTHER  # the lesson on any histogram (the others: demos)

    for page, key, more in (
        (LAYERS, "layers_model", {}),
        (LEARN, "learn_model", {"lesson": OTHER}),
    ):
        fresh = go(app(), page, {"src": "model", "model": NET, **more})
        assert fresh.selectbox(key=key).value == NET, page
        assert params(fresh)["model"] == NET, page
    bad = go(app(), LAYERS, {"src": "model", "model": "resnet"})
    assert any("Ignored model='resnet'" in w.value for w in bad.warning)


def test_an_effect_link_opens_the_cnns_results_ranked_under_the_calibration_it_names():
    from calib.app import effect_models

    doc = effect_models.shipped_report(NET)
    names = list(effect_models.rankings(doc))
    assert len(names) > 1  # the shipped CNN results rank several calibrations
    at = go(app(), EFFECT, {"src": NET, "ranking": names[1]})
    assert at.radio(key="effect_src").value == NET
    assert at.selectbox(key="effect_ranking").value == names[1]
    assert (params(at)["src"], params(at)["ranking"]) == (NET, names[1])


def test_a_layers_row_under_entropy_opens_explore_on_its_sweep_after_a_method_link():
    """Layers writes method=entropy for its default table; Explore refused it ("Ignored
    method='entropy'") and kept the previous link's mse clip (a merge of two branches)."""
    at = go(app(), EXPLORE, {"src": "model", "layer": DEFAULT_LAYER, "method": "mse"})
    assert any("Ranked under mse" in i.value for i in at.info)
    go(at, LAYERS)
    assert at.selectbox(key="layers_method").value == "entropy"
    at.session_state["layers_table"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    assert not at.warning, [w.value for w in at.warning]
    assert not [i for i in at.info if "Ranked under" in i.value]
    assert "method" not in params(at)


def test_a_link_with_a_method_keeps_its_own_candidate():
    """A link with method= and candidate= reopened on its method's clip but moved the
    candidate to the sweep's nearest to that clip: the link's pick was lost."""
    h = sources.model_histograms()[DEFAULT_LAYER]
    candidates = calib.kl_sweep(h, variant="mxnet").candidates
    pick = int(candidates[len(candidates) // 3])
    query = {"src": "model", "layer": DEFAULT_LAYER, "variant": "mxnet", "method": "percentile",
             "candidate": str(pick)}  # fmt: skip
    at = go(app(), EXPLORE, query)
    assert any("Ranked under percentile" in i.value for i in at.info)
    assert at.slider(key="explore_candidate").value == pick
    assert params(at)["candidate"] == str(pick)
