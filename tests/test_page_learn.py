"""The Learn page (pages/1_Learn.py) under Streamlit's AppTest."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from calib import learn
from calib.app import learn as ul
from calib.policies import VARIANTS

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "1_Learn.py")
TIMEOUT = 60
OTHER = "Real model, demo or upload"


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def values(v) -> np.ndarray:
    """A trace's data array: plotly 6 writes numpy arrays as base64 typed arrays."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def figure_with_trace(at: AppTest, name: str) -> dict:
    return next(f for f in figures(at) if any(t.get("name") == name for t in f["data"]))


def trace(fig: dict, name: str) -> dict:
    return next(t for t in fig["data"] if t.get("name") == name)


def frame(at: AppTest, column: str):
    """The first dataframe on the page with this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_default_view_shows_every_step_with_the_seeds_numbers():
    at = run_page()
    assert not at.error
    hist = learn.lesson_histogram("Bulk, gap, one outlier")
    result = learn.learn_sweep(hist, "seed", 8)
    pq = result.distributions(result.best)
    m = metrics(at)
    # 19: the seed's own loop agrees (test_learn); 20: the lesson's 20 counts in bin 29
    assert m["Kept bins"] == str(result.best) == "19"
    assert m["Tail folded into P"] == "20"
    assert m["Best candidate"] == "19"
    assert float(m["KL at this candidate"]) == pytest.approx(pq.kl, rel=1e-4)
    assert m["Bins where q = 0 < p"] == "1"
    headers = [h.value for h in at.header]
    for n in range(1, 7):
        assert any(h.startswith(f"{n}. ") for h in headers), headers
    # the tables hold the sweep's own numbers
    np.testing.assert_allclose(frame(at, "mass")["mass"], pq.group_mass)
    np.testing.assert_allclose(frame(at, "Q")["Q"], pq.q_raw)
    np.testing.assert_allclose(frame(at, "term")["term"], pq.terms)
    # step 1's figure stacks the folded tail on the last kept bin
    folded = trace(figure_with_trace(at, "folded tail"), "folded tail")
    y = values(folded["y"])
    assert y.sum() == 20 and y[18] == 20
    # step 6's curve marks the minimum where the sweep has it
    fig = figure_with_trace(at, "minimum")
    assert list(values(trace(fig, "minimum")["x"])) == [19]


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_runs_and_shows_its_own_answer(variant):
    at = run_page()
    at.selectbox(key="learn_variant").set_value(variant)
    rerun(at)
    result = learn.learn_sweep(learn.lesson_histogram("Bulk, gap, one outlier"), variant, 8)
    m = metrics(at)
    assert m["Best candidate"] == str(result.best)
    assert at.slider(key="learn_candidate").value == result.best
    pq = result.distributions(result.best)
    assert float(m["KL at this candidate"]) == pytest.approx(pq.kl, rel=1e-4)
    assert len(frame(at, "term")) == pq.p.size
    assert len(at.get("plotly_chart")) >= 6


@pytest.mark.slow
def test_candidate_widget_changes_the_numbers():
    at = run_page()
    before = metrics(at)
    at.slider(key="learn_candidate").set_value(12)
    rerun(at)
    after = metrics(at)
    assert after["Kept bins"] == "12"
    for label in ("Tail folded into P", "KL at this candidate", "Clip (activation units)"):
        assert after[label] != before[label], label
    assert after["Best candidate"] == before["Best candidate"]  # the sweep is the same
    assert len(frame(at, "term")) == 12
    # back to the minimum with the button
    at.button(key="learn_go_best").click()
    rerun(at)
    assert metrics(at)["Kept bins"] == before["Kept bins"]


@pytest.mark.slow
def test_target_bins_widget_changes_the_numbers():
    at = run_page()
    before = metrics(at)
    at.slider(key="learn_target_bins").set_value(5)
    rerun(at)
    after = metrics(at)
    result = learn.learn_sweep(learn.lesson_histogram("Bulk, gap, one outlier"), "seed", 5)
    assert after["Best candidate"] == str(result.best) != before["Best candidate"]
    assert after["Minimum KL"] != before["Minimum KL"]
    assert len(frame(at, "mass")) == 5


def test_seed_example_shows_2047():  # the seed's published answer for its ramp
    at = run_page()
    assert metrics(at)["Seed's answer (kept bins)"] == "2047"
    assert any("2047" in h.value for h in at.header)


def open_question(at: AppTest, title: str) -> AppTest:
    """Open one of the "What learners ask" tabs (only the open one is drawn)."""
    at.session_state["learn_question"] = title
    return rerun(at)


@pytest.mark.slow
def test_learner_questions_show_what_they_claim():
    at = run_page()
    assert [t.label for t in at.tabs] == list(ul.QUESTIONS)
    codes = frame(at, "distinct |code|")  # the first tab is open
    assert list(codes["distinct |code|"]) == [128, 256]
    assert "Raw counts: best" not in metrics(at)  # the other tabs are not drawn
    open_question(at, "Raw counts or normalised?")
    m = metrics(at)
    # the seed's own loop answers 19 and 15 too (test_learn)
    assert m["Raw counts: best"] == "19" and m["Normalised: best"] == "15"
    raw_norm = frame(at, "+1 bins")
    assert raw_norm["+1 bins"].sum() > 0
    open_question(at, "Why does a ReLU drag the seed down?")
    relu = frame(at, "zeros")
    clip = relu["seed clip"].to_numpy()
    assert np.all(np.diff(clip) <= 0) and clip[-1] < clip[0]
    # one candidate on the same edges at every zero fraction: the same threshold, exactly
    assert len(set(relu["seed + bins[0] = bins[1]"])) == 1


@pytest.mark.slow
def test_lessons_and_real_sources_keep_the_chosen_levels():
    at = run_page()
    at.slider(key="learn_target_bins").set_value(10)
    rerun(at)
    for lesson in learn.LESSONS:
        at.selectbox(key="learn_lesson").set_value(lesson)
        rerun(at)
        assert at.slider(key="learn_target_bins").value == 10
    at.selectbox(key="learn_lesson").set_value(OTHER)
    rerun(at)
    assert "Layer" in [s.label for s in at.sidebar.selectbox]  # the real model by default
    for bins in (32, 128):  # signed: folded to 16 and 64 bins, room for 10 levels
        at.select_slider(key="learn_hist_bins").set_value(bins)
        rerun(at)
        # a slider whose range changed keeps its value (Streamlit would reset it to 2)
        assert at.slider(key="learn_target_bins").value == 10
        assert int(metrics(at)["Kept bins"]) >= 10


@pytest.mark.slow
def test_a_dead_demo_warns_and_the_rest_of_the_page_stays():
    at = run_page()
    at.selectbox(key="learn_lesson").set_value(OTHER)
    rerun(at)
    at.radio(key="learn_kind").set_value("demo")
    rerun(at)
    at.selectbox(key="learn_demo").set_value("Dead layer")
    rerun(at)
    assert any("dead layer" in w.value for w in at.warning)
    m = metrics(at)
    assert "Kept bins" not in m
    assert m["Seed's answer (kept bins)"] == "2047"


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_largest_target_bins_leave_the_page_whole(variant):
    """Issue 10, problem 4: at 31 levels on a 32-bin lesson the seed and ncnn have one
    candidate; the candidate slider (min == max) raised StreamlitInvalidMinMaxError and
    everything below it disappeared."""
    at = run_page()
    at.selectbox(key="learn_variant").set_value(variant).run()
    t_max = at.slider(key="learn_target_bins").max
    at.slider(key="learn_target_bins").set_value(t_max)
    rerun(at)
    assert any(h.value.startswith("6. The whole sweep") for h in at.header)
    assert any(h.value == "What learners ask" for h in at.header)
    hist = learn.lesson_histogram(next(iter(learn.LESSONS)))
    r = learn.learn_sweep(hist, variant, t_max)
    assert metrics(at)["Best candidate"] == str(r.best)


@pytest.mark.slow
def test_the_lesson_explains_the_half_bin_the_key_rows_and_the_mirror():
    """Issue 10, problem 8: the key row (the folded tail, q = 0) was only seen by scrolling
    inside the tables; the clip 19.5 for bins 0..18 was never explained; the signed
    variants' mirror was said to split counts evenly when it copies them; log axes
    labelled minor ticks "2" and "5"; in the ReLU chart one line hid another."""
    at = run_page()
    text = " ".join(m.value for m in at.markdown)
    assert "keeps bins 0..18" in text
    assert "The clip is **19.5**, not 19" in text and "half a bin (0.5)" in text
    captions = [c.value for c in at.caption]
    key = "Rows to look for: bin 18: tail 20 folded in; q = 0: adds 1."
    assert captions.count(key) == 2  # above the step 4 and the step 5 tables
    # the signed variants copy each count to x and -x
    at.selectbox(key="learn_variant").set_value("mxnet")
    rerun(at)
    note = " ".join(c.value for c in at.caption)
    assert "split evenly" not in note and "copied to x and to -x" in note
    assert "4031 → 8062" in note  # the lesson's 4,031 counts, each twice
    # every log axis: one tick per decade (the symmetric and raw-counts charts have them)
    logs = 0
    for title in ul.QUESTIONS:
        open_question(at, title)
        for fig in figures(at):
            for name, axis in fig["layout"].items():
                if name.startswith(("xaxis", "yaxis")) and axis.get("type") == "log":
                    assert axis.get("dtick") == 1, (fig["layout"]["title"], name)
                    logs += 1
    assert logs >= 2
    # the ReLU chart: the two lines that agree are drawn so that both show
    open_question(at, "Why does a ReLU drag the seed down?")
    relu = figure_with_trace(at, "ModelOpt")
    band = trace(relu, "seed with bins[0] = bins[1]")
    dotted = trace(relu, "ModelOpt")
    assert band["line"]["width"] > 3 * dotted["line"]["width"]
    assert dotted["line"]["dash"] == "dot" and dotted["marker"]["symbol"] == "x"
