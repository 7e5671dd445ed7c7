"""calib.compare: the comparison table and the attribution of each variant's gap to the seed.

The references are direct ``kl_sweep`` / ``calibrate`` calls with the policies spelled out by
hand: the attribution must be nothing but those sweeps, labelled and ranked.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from calib.compare import (
    GROUPS,
    GroupEffect,
    Sweeper,
    attribute,
    attribute_all,
    change_groups,
    compare,
    histogram_digest,
)
from calib.histogram import Histogram
from calib.methods import METHODS, calibrate, clip_metrics
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS, Policy
from calib.sweep import kl_sweep

N_BINS = 512  # small enough that a whole comparison takes a fraction of a second


def row_of(c, name: str):
    """The comparison's row of that name."""
    return next(r for r in c.rows if r.name == name)


def half_normal(n: int = N_BINS, top: float = 6.0) -> np.ndarray:
    e = np.linspace(0.0, top, n + 1)
    c = 0.5 * (e[:-1] + e[1:])
    return e, np.round(1e5 * np.exp(-(c**2) / 2)).astype(np.int64)


def relu_spike(n: int = N_BINS) -> Histogram:
    """A ReLU output: a half-normal and, in bin 0, as many exact zeros as everything else."""
    e, counts = half_normal(n)
    counts[0] = counts.sum()
    return Histogram(counts, e)


def far_outlier(n: int = N_BINS) -> Histogram:
    """A bulk in the first few % of the range, two stray values far out, 5 at the max.

    Every level between the bulk and the strays is empty, so with ``zero_q="inf"`` and no
    smoothing each clip whose last level is empty (its edge bin holds the folded outliers,
    its Q is 0) has an infinite KL: only clips near the strays are defined.
    """
    e, counts = half_normal(n, top=200.0)
    counts[int(n * 0.93)] = 1
    counts[int(n * 0.98)] = 1
    counts[-1] = 5
    return Histogram(counts, e)


def levels(variant: str, target_bins: int | None) -> int:
    return DEFAULT_TARGET_BINS[variant] if target_bins is None else target_bins


def changes(group) -> dict:
    return {f: new for f, (_, new) in group.changes.items()}


def reverts(group) -> dict:
    return {f: old for f, (old, _) in group.changes.items()}


def split_levels(d: dict, default: int) -> tuple[int, dict]:
    d = dict(d)
    return d.pop("target_bins", default), d


# --------------------------------------------------------------------------------------
# groups
# --------------------------------------------------------------------------------------
def test_each_preset_is_cut_into_the_documented_groups():
    names = {v: [g.name for g in change_groups(v)] for v in VARIANTS}
    assert names == {
        "seed": [],
        # "ties" holds start_kl too: only the seed starts its search below a KL of 1e13
        "ncnn": ["expand", "smoothing", "zero_q", "normalize", "ties"],
        "mxnet": [
            "levels", "window + merge", "truncate", "smoothing", "zero_q", "normalize",
            "ties", "threshold",
        ],
        "onnxruntime": [
            "window + merge + expand + normalize", "truncate", "smoothing", "zero_q",
            "ties", "threshold",
        ],
        "modelopt": [
            "window", "zero_spike", "merge", "expand", "zero_q", "normalize", "ties",
            "threshold",
        ],
    }  # fmt: skip
    # one number of levels for everyone: MXNet's 255 is no longer a difference
    assert "levels" not in [g.name for g in change_groups("mxnet", 200, 200)]
    assert change_groups("ncnn", 200, 100)[0].name == "levels"


def test_every_choice_is_in_exactly_one_group():
    fields = [f for g in GROUPS for f in g.fields]
    assert len(fields) == len(set(fields))
    assert set(fields) == {f.name for f in dataclasses.fields(Policy)} | {"target_bins"}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_groups_partition_the_variants_changes(variant):
    groups = change_groups(variant)
    fields = [f for g in groups for f in g.fields]
    assert len(fields) == len(set(fields))
    expected = dict(VARIANTS[variant].changes_from(VARIANTS["seed"]))
    if DEFAULT_TARGET_BINS[variant] != DEFAULT_TARGET_BINS["seed"]:
        expected["target_bins"] = (DEFAULT_TARGET_BINS["seed"], DEFAULT_TARGET_BINS[variant])
    assert {f: c for g in groups for f, c in g.changes.items()} == expected
    seed = dataclasses.asdict(VARIANTS["seed"])
    mine = dataclasses.asdict(VARIANTS[variant])
    for g in groups:
        # each group can be applied alone to the seed and reverted alone from the variant
        Policy(**{**seed, **{k: v for k, v in changes(g).items() if k in seed}})
        Policy(**{**mine, **{k: v for k, v in reverts(g).items() if k in mine}})
        assert g.what


@pytest.mark.parametrize("variant", ["mxnet", "onnxruntime"])
def test_groups_are_joined_only_where_policy_refuses_them_apart(variant):
    seed = dataclasses.asdict(VARIANTS["seed"])
    mine = dataclasses.asdict(VARIANTS[variant])
    by_name = {g.name: g.fields for g in GROUPS}
    joined = [g for g in change_groups(variant) if " + " in g.name]
    assert joined
    for g in joined:
        for part in g.name.split(" + "):
            fields = [f for f in by_name[part] if f in g.changes]
            with pytest.raises(ValueError):
                Policy(**{**seed, **{f: mine[f] for f in fields}})
                Policy(**{**mine, **{f: seed[f] for f in fields}})


def test_groups_reject_an_unknown_variant():
    with pytest.raises(ValueError, match="variant must be one of"):
        change_groups("tensorrt")
    with pytest.raises(ValueError, match="variant must be one of"):
        attribute(relu_spike(), "tensorrt")
    with pytest.raises(ValueError, match="variants must be one of"):
        compare(relu_spike(), variants=["seed", "tvm"])
    with pytest.raises(ValueError, match="target_bins must be an integer or None"):
        compare(relu_spike(), 100.5)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        Sweeper(relu_spike(), workers=0)


def test_a_sweeper_run_holds_the_sweep_or_the_cores_message():
    sw = Sweeper(relu_spike())
    ok = sw.run(VARIANTS["seed"], 128)
    assert ok.error is None and ok.note == ""
    assert ok.amax == ok.result.amax == kl_sweep(relu_spike(), 128, "seed").amax
    refused = sw.run(VARIANTS["seed"], N_BINS)  # as many levels as bins
    assert refused.result is None and math.isnan(refused.amax)
    assert "target_bins" in refused.error and refused.note == refused.error
    assert sw.run(VARIANTS["seed"], 128) is ok and sw.n_sweeps == 2


# --------------------------------------------------------------------------------------
# attribution against direct sweeps
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("target_bins", [None, 100])
@pytest.mark.parametrize("variant", ["ncnn", "mxnet", "onnxruntime", "modelopt"])
def test_every_measurement_is_the_direct_sweep(variant, target_bins):
    h = relu_spike()
    a = attribute(h, variant, target_bins, target_bins)
    T, Ts = levels(variant, target_bins), levels("seed", target_bins)
    assert a.seed_amax == kl_sweep(h, Ts, "seed").amax
    assert a.amax == kl_sweep(h, T, variant).amax
    assert a.gap == a.amax - a.seed_amax
    for e in a.effects:
        t_with, with_ = split_levels(changes(e.group), Ts)
        t_without, without = split_levels(reverts(e.group), T)
        s_with = kl_sweep(h, t_with, "seed", **with_)
        s_without = kl_sweep(h, t_without, variant, **without)
        assert e.amax_with == s_with.amax
        assert e.amax_without == s_without.amax
        assert e.moved_with == e.amax_with - a.seed_amax
        assert e.moved_back == a.amax - e.amax_without
        if a.gap:
            assert e.share_with == pytest.approx(e.moved_with / a.gap, rel=1e-12)
            assert e.share_back == pytest.approx(e.moved_back / a.gap, rel=1e-12)
        else:
            assert math.isnan(e.share_with) and math.isnan(e.share_back)
        # a note exactly where a sweep had no defined KL and fell back to a candidate
        undefined = [not np.isfinite(s.kl).any() for s in (s_with, s_without)]
        assert (f"seed + {e.group.name}: no candidate" in e.note) == undefined[0]
        assert (f"{variant} - {e.group.name}: no candidate" in e.note) == undefined[1]
    weights = [e.weight for e in a.effects]
    assert weights == sorted(weights, reverse=True)


@pytest.mark.parametrize("variant", ["ncnn", "mxnet", "onnxruntime", "modelopt"])
@pytest.mark.parametrize("make", [relu_spike, far_outlier])
def test_all_groups_together_are_the_variant_and_none_the_seed(variant, make):
    h = make()
    a = attribute(h, variant)
    groups = change_groups(variant)
    T, Ts = DEFAULT_TARGET_BINS[variant], DEFAULT_TARGET_BINS["seed"]
    t_all, applied = split_levels({k: v for g in groups for k, v in changes(g).items()}, Ts)
    t_none, reverted = split_levels({k: v for g in groups for k, v in reverts(g).items()}, T)
    assert kl_sweep(h, t_all, "seed", **applied).amax == a.amax
    assert kl_sweep(h, t_none, variant, **reverted).amax == a.seed_amax


def test_weight_caps_each_share_at_the_whole_gap():
    g = change_groups("ncnn")[0]
    nan = math.nan
    # applied alone it overshoots 21 times the gap, taken out it changes nothing: half
    overshoot = GroupEffect(g, 1.0, 22.0, 2.0, 21.0, 0.0)
    both = GroupEffect(g, 1.0, 2.0, 1.0, 1.0, 1.0)  # the whole gap both ways
    against = GroupEffect(g, 1.0, -2.0, 5.0, -3.0, -4.0)  # pulls back, far
    assert (overshoot.weight, both.weight, against.weight) == (0.5, 1.0, -1.0)
    assert GroupEffect(g, -2.0, -1.0, 0.0, -1.0, -2.0).weight == 0.75  # a negative gap
    assert GroupEffect(g, 0.0, 3.0, 1.0, 3.0, -1.0).weight == 2.0  # no gap: mean |move|
    assert GroupEffect(g, 1.0, nan, 0.5, nan, 0.5).weight == 0.5  # one side refused
    assert GroupEffect(g, nan, nan, nan, nan, nan).weight == 0.0


# --------------------------------------------------------------------------------------
# known answers
# --------------------------------------------------------------------------------------
def test_modelopt_on_a_relu_spike_is_its_zero_spike_rule():
    # bins[0] = bins[1] removes the spike of zeros that drags the seed's clip down
    a = attribute(relu_spike(), "modelopt")
    assert a.gap > 1.0
    top, rest = a.effects[0], a.effects[1:]
    assert top.group.name == "zero_spike"
    assert 0.8 < top.share_with < 1.3 and 0.8 < top.share_back < 1.3
    for e in rest:
        assert abs(e.share_with) < 0.2 and abs(e.share_back) < 0.2, e.group.name
    assert "zero_spike" in a.summary()


def test_far_outlier_with_empty_levels_is_zero_q_and_smoothing():
    h = far_outlier()
    near_max = 0.9 * h.max_abs
    c = compare(h, methods=())
    # ncnn answers as the seed does: its eps smoothing makes every empty Q finite, exactly
    # what the seed's "+1" does, so zero_q and smoothing cancel out
    ncnn = c.attributions["ncnn"]
    assert ncnn.gap == 0 and "the same clip" in ncnn.summary()
    moved = {e.group.name: e for e in ncnn.effects if e.weight > 0}
    assert set(moved) == {"smoothing", "zero_q", "normalize"}
    assert moved["zero_q"].amax_with > near_max  # inf where Q = 0: only far clips defined
    assert moved["smoothing"].amax_without > near_max  # ncnn without its eps: the same
    assert moved["zero_q"].amax_without == moved["smoothing"].amax_with == ncnn.amax
    # ModelOpt has no smoothing: its inf for Q = 0 (or normalising, which makes the seed's
    # +1 huge) alone takes the seed's clip out to the strays
    modelopt = c.attributions["modelopt"]
    assert {e.group.name for e in modelopt.effects[:2]} == {"zero_q", "normalize"}
    assert all(e.share_with > 0.9 for e in modelopt.effects[:2])
    # every variant with smoothing clips out at the strays once its smoothing is taken out;
    # the seed, whose "+1" already keeps every KL finite, does not care for smoothing
    for v in ("ncnn", "mxnet", "onnxruntime"):
        smoothing = next(e for e in c.attributions[v].effects if e.group.name == "smoothing")
        assert smoothing.amax_without > near_max, v
        assert smoothing.amax_with == row_of(c, "seed").amax, v
        zero_q = next(e for e in c.attributions[v].effects if e.group.name == "zero_q")
        assert zero_q.amax_with > near_max, v


def test_a_measurement_the_sweep_refuses_is_skipped_with_a_note():
    e, counts = half_normal(200)
    h = Histogram(counts, e)  # 200 bins: the seed cannot take MXNet's 255 levels
    a = attribute(h, "mxnet")
    by_name = {x.group.name: x for x in a.effects}
    lv = by_name["levels"]
    assert math.isnan(lv.amax_with) and math.isnan(lv.share_with)
    assert "seed + levels" in lv.note and "target_bins" in lv.note
    assert lv.amax_without == kl_sweep(h, 128, "mxnet").amax  # the other way still works
    # MXNet's 255 levels on the seed's unsigned 200 bins, the other way round
    wm = by_name["window + merge"]
    assert math.isnan(wm.amax_without) and math.isfinite(wm.amax_with)
    assert "mxnet - window + merge" in wm.note and "target_bins" in wm.note
    assert math.isfinite(a.gap)
    others = [x for x in a.effects if x.group.name not in ("levels", "window + merge")]
    assert others and all(x.note == "" for x in others)


def test_a_histogram_too_small_for_any_sweep_gives_notes_not_errors():
    e, counts = half_normal(64)
    c = compare(Histogram(counts, e))
    for row in c.rows:
        if row.kind == "variant" or row.name in ("entropy", "mse"):
            assert math.isnan(row.amax) and row.note, row.name
    assert row_of(c, "max").amax == calibrate(Histogram(counts, e), "max").amax
    for a in c.attributions.values():
        assert "cannot" in a.summary()


def test_dead_histogram_has_a_defined_answer_everywhere():
    h = Histogram(np.zeros(N_BINS, dtype=np.int64), np.linspace(0.0, 1.0, N_BINS + 1))
    c = compare(h)
    assert c.dead and c.max_abs == 0
    for row in c.rows:
        assert row.amax == 0.0, row.name
        assert math.isnan(row.sqnr_db) and math.isnan(row.kl) and math.isnan(row.ratio)
    assert set(c.attributions) == {"ncnn", "mxnet", "onnxruntime", "modelopt"}
    for a in c.attributions.values():
        assert a.seed_amax == a.amax == 0.0
        assert "dead" in a.note and a.summary() == a.note
        for e in a.effects:
            assert e.amax_with == e.amax_without == 0.0
            assert math.isnan(e.share_with) and math.isnan(e.share_back)


def test_a_sweep_with_no_defined_kl_says_so():
    # no strays: with inf for Q = 0 every kept-bins clip has the folded tail in an empty
    # level, so the seed's sweep has no defined KL and takes its first candidate
    e, counts = half_normal(top=200.0)
    counts[-1] = 5
    h = Histogram(counts, e)
    assert not np.isfinite(kl_sweep(h, 128, "seed", zero_q="inf").kl).any()
    a = attribute(h, "modelopt")
    zero_q = next(x for x in a.effects if x.group.name == "zero_q")
    assert zero_q.note == "seed + zero_q: no candidate has a defined KL: the first one is taken"
    assert a.note == ""  # ModelOpt's own sweep has its no-clipping candidate, defined


# --------------------------------------------------------------------------------------
# the comparison table
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("target_bins", [None, 100])
def test_rows_are_the_direct_calls(target_bins):
    h = relu_spike()
    c = compare(h, target_bins, explain=False)
    assert [r.name for r in c.rows] == [*VARIANTS, *METHODS]
    assert not c.attributions
    for v in VARIANTS:
        s = kl_sweep(h, levels(v, target_bins), v)
        row = row_of(c, v)
        assert row.kind == "variant" and row.target_bins == levels(v, target_bins)
        assert row.amax == s.amax and c.sweeps[v].amax == s.amax
        assert row.kl == s.min_kl
        m = clip_metrics(h, s.amax)
        assert (row.clipped, row.sqnr_db) == (m.clipped_fraction, m.sqnr_db)
        assert row.ratio == s.amax / h.max_abs
    for method in METHODS:
        extra = {"target_bins": target_bins} if method == "entropy" and target_bins else {}
        cal = calibrate(h, method, **extra)
        row = row_of(c, method)
        assert row.kind == "method" and row.amax == cal.amax
        assert row.sqnr_db == cal.metrics.sqnr_db
        assert math.isnan(row.kl) == (method != "entropy")
    records = c.table()
    assert [r["amax"] for r in records] == [r.amax for r in c.rows]


def test_threads_and_sharing_change_nothing():
    h = far_outlier()
    one = compare(h, workers=1)
    two = compare(h, workers=2)
    assert one.rows == two.rows
    for v, a in one.attributions.items():
        assert a == two.attributions[v]
        assert attribute(h, v) == a  # alone, without the shared sweeps
    assert attribute_all(h, workers=2) == dict(one.attributions)
    # sweeps are shared between variants: fewer than the measurements made
    measurements = sum(2 + 2 * len(a.effects) for a in one.attributions.values())
    assert one.n_sweeps < measurements


def test_histogram_digest_is_a_content_key():
    h = relu_spike()
    same = Histogram(h.counts.copy(), h.edges.copy())
    assert histogram_digest(h) == histogram_digest(same)
    counts = h.counts.copy()
    counts[100] += 1
    assert histogram_digest(Histogram(counts, h.edges)) != histogram_digest(h)
    assert histogram_digest(Histogram(h.counts.astype(float), h.edges)) != histogram_digest(h)


@pytest.mark.parametrize("num_bits", [4, 6])
def test_every_variant_sweeps_at_its_levels_for_the_bits(num_bits):
    """compare(h, num_bits=4) sweeps each variant at levels_for(variant, 4), as calibrate
    does: on main every variant swept at its 8-bit levels (the seed's clip 10.13 at 4 bits
    on MiniLM's FFN output, against calibrate's 6.82)."""
    from calib.policies import levels_for

    h = relu_spike()
    c = compare(h, num_bits=num_bits)
    for v in VARIANTS:
        row = row_of(c, v)
        assert row.target_bins == levels_for(v, num_bits)
        cal = calibrate(h, "entropy", num_bits, variant=v)
        assert row.amax == cal.amax and c.sweeps[v].target_bins == cal.sweep.target_bins
        assert row.sqnr_db == cal.metrics.sqnr_db
    assert row_of(c, "entropy").amax == row_of(c, "seed").amax
    for a in c.attributions.values():  # the seed it is measured against is the 4-bit one
        assert a.seed_amax == row_of(c, "seed").amax
        assert a.target_bins == levels_for(a.variant, num_bits)
