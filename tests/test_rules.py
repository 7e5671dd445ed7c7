"""One rule, one home: each rule that several modules apply, checked across all its callers.

A test of one copy says nothing about the next; these check that every caller of a rule
answers as its one home does (and, where copies used to disagree, that they now agree).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

import calib
from calib import Histogram, cli, kl_sweep, learn, numbers, reference, sweep
from calib.app import layers, links, sources
from calib.collect import HistogramAccumulator
from calib.compare import _sweeper as compare_sweeper
from calib.explore import default_target_bins
from calib.histogram import DEFAULT_BINS, grown_edges, range_growth
from calib.methods import DEFAULT_NUM_BITS, amax_mse, clip_metrics, max_code
from calib.numbers import fmt
from calib.policies import (
    DEFAULT_TARGET_BINS,
    MODELOPT_START_BIN,
    NUM_BITS_CHOICES,
    POLICY_CHOICES,
    TARGET_BINS_MAX,
    TARGET_BINS_MIN,
    VARIANTS,
    Policy,
    check_num_bits,
    levels_for,
)
from calib.sweep import _api as sweep_api
from calib.sweep._prepare import _prepare

ROOT = Path(__file__).resolve().parents[1]


@st.composite
def small_counts(draw):
    """Counts of 8 to 40 bins: integer or float, sparse or with a spike in bin 0."""
    n = draw(st.integers(8, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["int", "sparse", "spike", "float"]))
    if kind == "float":
        return rng.uniform(0, 3, n)
    c = rng.integers(0, 50, n)
    if kind == "sparse":
        c = c * (rng.random(n) < 0.4)
    if kind == "spike":
        c[0] = 60 * n
    c[draw(st.integers(0, n - 1))] += 1  # never dead
    return c


# --------------------------------------------------------------------------------------
# the prepared counts: ModelOpt's zero spike and ncnn's normalisation, applied once
# --------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(counts=small_counts(), variant=st.sampled_from(list(VARIANTS)))
def test_the_prepared_counts_are_one_rule_for_the_sweep_and_the_lesson(counts, variant):
    r = learn.learn_sweep(counts, variant, 4)
    mine = sweep.prepared_counts(r.histogram, r.policy)
    np.testing.assert_array_equal(learn.prepared_counts(r), mine)
    np.testing.assert_array_equal(_prepare(r.histogram, r.target_bins, r.policy).h, mine)
    if not mine.any():
        return  # bins[0] = bins[1] emptied a one-bin spike: "dead" is judged before, on h
    # the sweep searches exactly these counts: given them with the once-policies off, it
    # finds every candidate's KL again
    once_off = {"zero_spike": "keep"}
    if r.policy.normalize == "histogram":  # "pq" scales P and Q per candidate: not once
        once_off["normalize"] = "none"
    off = dataclasses.replace(r.policy, **once_off)
    again = kl_sweep(
        Histogram(mine, r.histogram.edges), r.target_bins, variant, **dataclasses.asdict(off)
    )
    np.testing.assert_array_equal(again.kl, r.kl)
    assert again.best == r.best


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_prepared_counts_of_a_dead_histogram_stay_zero(variant):
    r = kl_sweep(np.zeros(300), 8, variant, start_bin=8)
    c = sweep.prepared_counts(r.histogram, r.policy)
    assert r.dead and c.dtype == np.float64 and not c.any()


# --------------------------------------------------------------------------------------
# range growth: same-width bins appended until the new range is covered (TensorRT's rule)
# --------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    signed=st.booleans(),
    bins=st.integers(2, 40),
    first=st.floats(1e-3, 1e3),
    factor=st.floats(0.01, 50.0),
    offset=st.floats(-0.5, 0.5),
)
def test_range_growth_is_one_rule_for_merge_and_the_collector(
    seed, signed, bins, first, factor, offset
):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-first, first, 50)
    b = rng.uniform(-first * factor, first * factor, 50) + offset * first
    acc = HistogramAccumulator(bins, signed=signed, max_bins=calib.limits.MAX_BINS // 2)
    acc.add(a)
    h = acc.histogram
    acc.add(b)
    batch = np.abs(b) if not signed else b
    lo, hi = float(batch.min()), float(batch.max())
    if signed:
        lo, hi = min(lo, -hi), max(hi, -lo)
    rule = grown_edges(h, *range_growth(h, lo, hi))
    merged = h.merge(Histogram.from_samples(b, bins=bins, signed=signed))
    np.testing.assert_array_equal(merged.edges, rule)
    # The collector writes each edge as k * w from its integer index, merge keeps the old
    # edges and extends them: the same points rounded along two paths (a few ulps).
    assert acc.histogram.n_bins == rule.size - 1
    np.testing.assert_allclose(acc.histogram.edges, rule, rtol=1e-12, atol=1e-12 * hi)
    grow_lo = range_growth(h, lo, hi)[0]
    np.testing.assert_array_equal(rule[grow_lo : grow_lo + h.n_bins + 1], h.edges)
    assert acc.histogram.total == a.size + b.size == pytest.approx(merged.total, rel=1e-12)


# --------------------------------------------------------------------------------------
# which sweeps take the dense engine: the sweep decides, compare asks it
# --------------------------------------------------------------------------------------
def _policies():
    """Every preset, and every valid mix of the choices that decide the engine."""
    seen = []
    for preset in VARIANTS.values():
        for smoothing, merge, expand, precision in itertools.product(
            POLICY_CHOICES["smoothing"], POLICY_CHOICES["merge"], POLICY_CHOICES["expand"],
            POLICY_CHOICES["precision"],
        ):  # fmt: skip
            try:
                p = dataclasses.replace(
                    preset, smoothing=smoothing, merge=merge, expand=expand, precision=precision
                )
            except ValueError:
                continue
            if p not in seen:
                seen.append(p)
    return seen


POLICIES = _policies()


def test_the_policies_cover_both_engines():
    dense = [sweep.uses_dense_engine(p) for p in POLICIES]
    assert any(dense) and not all(dense)
    assert any(p.precision == "float32" for p in POLICIES)


@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_the_dense_engine_is_one_rule_for_the_sweep_and_compare(policy, monkeypatch):
    dense = sweep.uses_dense_engine(policy)
    h = Histogram.from_counts(np.arange(1, 41) % 7)
    kwargs = {**dataclasses.asdict(policy), "start_bin": 8}  # ModelOpt's 128 > 40 bins
    if dense:
        with pytest.raises(ValueError, match="engine='fast' cannot take"):
            kl_sweep(h, 8, "seed", engine="fast", **kwargs)

    def no_prefix_sums(*args, **kw):
        raise AssertionError("engine='auto' took the prefix-sum path")

    monkeypatch.setattr(sweep_api, "_kl_fast", no_prefix_sums)
    if dense:
        kl_sweep(h, 8, "seed", **kwargs)  # auto: the dense path, never the prefix sums
    else:
        with pytest.raises(AssertionError, match="prefix-sum"):
            kl_sweep(h, 8, "seed", **kwargs)
    # compare's thread pool starts the slow sweeps first: the sweep's own dense ones
    assert (compare_sweeper._cost((policy, 8)) >= 2) == dense


# --------------------------------------------------------------------------------------
# the upload size check: one limit, one message, on every page that takes a file
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class FakeUpload:
    name: str
    data: bytes
    file_id: str = ""

    def getvalue(self) -> bytes:
        return self.data


def test_every_upload_is_refused_past_the_one_limit_with_one_message(monkeypatch):
    monkeypatch.setattr(sources, "MAX_UPLOAD_BYTES", 2**20)
    big = bytes(3 * 2**19)  # 1.5 MB
    size = "is 1.5 MB; uploads are limited to 1 MB"
    callers = {
        "big.npy (samples)": lambda: sources.read_upload(FakeUpload("big.npy", big), "samples"),
        "big.npy (histogram)": lambda: sources.read_upload(FakeUpload("big.npy", big), "histogram"),
        "big.npz (Layers)": lambda: layers.load_upload("rules-big", "big.npz", big),
        "the model file": lambda: layers.collect_upload("rules-m", "rules-i", big, b"x"),
        "the inputs file": lambda: layers.collect_upload("rules-m2", "rules-i2", b"x", big),
    }
    for who, call in callers.items():
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == f"{who.split(' (')[0]} {size}", who
    sources.check_upload_size("exactly the limit", bytes(2**20))  # not more: accepted


# --------------------------------------------------------------------------------------
# ModelOpt's first candidate, bin 128
# --------------------------------------------------------------------------------------
def test_modelopt_starts_at_one_bin_everywhere():
    def default(f, name="start_bin"):
        return inspect.signature(f).parameters[name].default

    assert Policy().start_bin == VARIANTS["modelopt"].start_bin == MODELOPT_START_BIN
    assert default(amax_mse) == default(reference.modelopt_loop) == MODELOPT_START_BIN
    h = Histogram.from_counts(np.arange(1.0, 301.0))
    assert kl_sweep(h, variant="modelopt").candidates[0] == MODELOPT_START_BIN
    assert reference.modelopt_loop(h.counts, h.edges).candidates[0] == MODELOPT_START_BIN
    # the lesson's histograms are too small for it, and say so
    assert learn.learn_sweep(np.ones(32), "modelopt", 8).candidates[0] == 8


# --------------------------------------------------------------------------------------
# numbers for a reader: calib.numbers.fmt, one spelling of inf, -inf and "no number"
# --------------------------------------------------------------------------------------
UI_FILES = sorted(
    [*(ROOT / "pages").glob("*.py"), *(ROOT / "calib" / "app").glob("*.py"),
     *(ROOT / "calib" / "figures").glob("*.py"), ROOT / "calib" / "cli.py"]
)  # fmt: skip
SPECIAL_SPELLINGS = {"undefined", "inf", "-inf", "nan", "NaN", "n/a", "∞", "−∞", "-∞"}


def test_fmt_writes_each_special_value_one_way():
    assert (numbers.INF_TEXT, numbers.NEG_INF_TEXT, numbers.NAN_TEXT) == ("inf", "-inf", "n/a")
    assert fmt(math.inf) == fmt(np.float64("inf")) == fmt(np.float32("inf"), 2) == "inf"
    assert fmt(-math.inf, 6) == "-inf" and fmt(-math.inf, unit=" dB") == "-inf dB"
    assert fmt(math.nan) == fmt(np.nan, 6, unit="%") == fmt(None, fixed=True) == "n/a"
    assert fmt(1234.5678) == "1235" and fmt(1234.5678, 6) == "1234.57"
    assert fmt(29.0874, 2, fixed=True, unit=" dB") == "29.09 dB" and fmt(0.00123, 2) == "0.0012"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_writes_numbers_by_a_rule_of_its_own(path):
    """No formatter of its own, no spelling of a special value of its own: every page, figure
    and the command line reach calib.numbers for both."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            assert node.name.lstrip("_") not in ("fmt", "format_number"), node.name
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value.strip() not in SPECIAL_SPELLINGS, (node.lineno, node.value)
            assert "∞" not in node.value, (node.lineno, node.value)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    if "fmt" in names:
        imported = [
            n for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == "calib.numbers"
            and any(a.name == "fmt" and a.asname is None for a in n.names)
        ]  # fmt: skip
        assert imported, "fmt used but not calib.numbers.fmt"


def dead_file():
    return {
        "dead layer": Histogram(np.zeros(2048), np.linspace(0, 1, 2049)),
        "also dead": Histogram(np.zeros(2048), np.linspace(-1, 1, 2049)),
    }


@pytest.mark.slow
def test_every_page_and_the_cli_write_a_dead_layers_missing_numbers_the_same(tmp_path, capsys):
    nothing = fmt(None)
    # the command line's table: KL and SQNR of a dead layer
    path = tmp_path / "dead.npz"
    calib.save_histograms(path, dead_file())
    assert cli.main([str(path)]) == 0
    head, _, *rows = capsys.readouterr().out.splitlines()
    starts = {c: head.index(c) for c in ("KL", "SQNR dB")}
    for row in rows:
        for c, at in starts.items():
            assert row[at:].split()[0] == nothing, (c, row)
    # Explore on the dead-layer demo
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params.update({"src": "demo", "demo": "Dead layer"})
    at.run()
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown["KL at minimum"] == shown["SQNR"] == shown["Clipped mass"] == nothing
    # Compare on it
    at = AppTest.from_file(str(ROOT / "pages" / "3_Compare.py"), default_timeout=60).run()
    at.session_state["compare_demo"] = "Dead layer"
    at.radio(key="compare_kind").set_value("demo").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Largest / smallest"] == nothing
    # Layers on a file of dead layers
    at = AppTest.from_file(str(ROOT / "pages" / "2_Layers.py"), default_timeout=60).run()
    at.radio(key="layers_src").set_value("upload").run()
    buf = io.BytesIO()
    calib.save_histograms(buf, dead_file())
    at.file_uploader(key="layers_file").set_value(("dead.npz", buf.getvalue(), "x")).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Lowest SQNR (dB)"] == nothing


# --------------------------------------------------------------------------------------
# the limits a page puts on bits and levels
# --------------------------------------------------------------------------------------
def test_the_core_and_explores_links_take_exactly_the_bit_widths_on_offer():
    for bits in range(0, 21):
        if bits in NUM_BITS_CHOICES:
            assert check_num_bits(bits) == bits
            out, bad = links.parse_explore_query({"num_bits": str(bits)}, {}, {})
            assert out["explore_num_bits"] == bits and not bad
        else:
            with pytest.raises(ValueError, match=f"{NUM_BITS_CHOICES[-1]}"):
                check_num_bits(bits)
            assert links.parse_explore_query({"num_bits": str(bits)}, {}, {})[1]
    for t in (TARGET_BINS_MIN - 1, TARGET_BINS_MIN, TARGET_BINS_MAX, TARGET_BINS_MAX + 1):
        out, bad = links.parse_explore_query({"target_bins": str(t)}, {}, {})
        assert bool(out) == (TARGET_BINS_MIN <= t <= TARGET_BINS_MAX) != bool(bad)
    # the levels are levels_for's at every width, never clamped to the slider's top (main
    # clamped them to 2048: Explore swept 13 bits at 2048 levels, calibrate at 4096)
    assert default_target_bins("mxnet", NUM_BITS_CHOICES[-1]) == 2 ** NUM_BITS_CHOICES[-1] - 1
    assert default_target_bins("seed", 13) == levels_for("seed", 13) == 4096
    # and a link may ask for them at that width
    out, bad = links.parse_explore_query({"num_bits": "13", "target_bins": "4096"}, {}, {})
    assert out["explore_target_bins"] == 4096 and not bad


@pytest.mark.slow
def test_every_page_offers_the_same_bits_and_levels():
    bits = [str(b) for b in NUM_BITS_CHOICES]

    def page(name):
        at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=60).run()
        assert not at.exception, at.exception
        return at

    explore = page("0_Explore.py")
    assert explore.select_slider(key="explore_num_bits").options == bits
    levels = explore.slider(key="explore_target_bins")
    assert (levels.min, levels.max) == (TARGET_BINS_MIN, TARGET_BINS_MAX)
    compare = page("3_Compare.py")
    levels = compare.slider(key="compare_target_bins")
    assert (levels.min, levels.max) == (TARGET_BINS_MIN, TARGET_BINS_MAX)
    assert levels.value == DEFAULT_TARGET_BINS["seed"]
    layers_page = page("2_Layers.py")
    assert layers_page.selectbox(key="layers_bits").options == bits
    assert layers_page.selectbox(key="layers_bits").value == DEFAULT_NUM_BITS
    levels = layers_page.number_input(key="layers_target_bins")
    assert (levels.min, levels.max) == (TARGET_BINS_MIN, layers.LAYERS_TARGET_BINS_MAX)
    learn_page = page("1_Learn.py")
    levels = learn_page.slider(key="learn_target_bins")
    assert levels.min == TARGET_BINS_MIN and levels.max <= learn.LEARN_TARGET_BINS_MAX


# --------------------------------------------------------------------------------------
# the quantizer's largest code, and the defaults the command line shares with the pages
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("unsigned", [False, True])
def test_the_largest_code_is_one_rule_for_the_methods_the_lesson_and_the_levels(unsigned):
    h = Histogram.from_counts(np.arange(1.0, 65.0))
    for bits in NUM_BITS_CHOICES:
        q = max_code(bits, unsigned)
        assert q == levels_for("seed", bits, unsigned) - 1
        assert clip_metrics(h, 10.0, bits, unsigned).scale == pytest.approx(10.0 / q, rel=1e-15)
        if bits <= 10:
            codes, magnitudes = learn.quantizer_codes(bits, unsigned)
            assert magnitudes == q + 1 and codes == (q + 1 if unsigned else 2 * q + 1)


def test_the_command_line_defaults_are_the_cores():
    p = cli._parser()
    spec = cli._thresholds_spec(p.parse_args(["thresholds", "h.npz"]))  # its calibrator
    assert spec == calib.Spec() and spec.num_bits == DEFAULT_NUM_BITS
    assert p.parse_args(["collect", "m.onnx", "--inputs", "i", "--out", "o"]).bins == DEFAULT_BINS


@pytest.mark.parametrize(
    ("tensors", "said"),
    [
        ("(", "not a regular expression"),
        ([], "non-empty list of names"),
        ([3], "non-empty list of names"),
        (["no such tensor"], "'no such tensor' not "),
        (5, "None, a regex or a list of names"),
    ],
)
def test_a_tensors_argument_is_one_rule_for_the_collector_and_evaluate(tensors, said):
    """``tensors=`` is read by ``calib.collect._model.pick_by_name`` for both: the same
    argument is refused the same way by the collector's selection and by evaluate's."""
    onnx = pytest.importorskip("onnx")
    from test_collect import mlp_model

    from calib.collect import _model
    from calib.evaluate import select_tensors

    proto = onnx.load_from_string(mlp_model())
    with pytest.raises(ValueError, match=said):
        select_tensors(proto, tensors=tensors)
    with pytest.raises(ValueError, match=said):
        _model.collect_histograms(proto, {"X": np.ones((2, 4), np.float32)}, tensors=tensors)
