"""Numbers that read right (issue 19, item 3): one rule in calib.numbers for metrics, tables,
text and charts, and the readings a new user found wrong, each pinned."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calib import Histogram, kl_sweep
from calib.numbers import (
    DB_FORMAT,
    ZERO_KL_TEXT,
    axis_ticks,
    fmt,
    fmt_count,
    fmt_db,
    fmt_kl,
    fmt_pct,
    plural,
)

# -- the rule ----------------------------------------------------------------------------------
NOT_SI = ("~g", "~e")  # d3's general or exponent notation: 1e-4, never "100µ"


def test_significant_digits_never_turn_a_round_number_into_an_exponent():
    """'Clipped mass 1e+02%': Python's g at 2 digits writes 100 as 1e+02."""
    assert fmt(100.0, 2, unit="%") == "100%"  # what Explore's "Clipped mass" calls
    assert fmt(99.96, 2, unit="%") == "100%"
    assert fmt_pct(1.0) == "100%" and fmt_pct(0.5) == "50%" and fmt_pct(0.000123) == "0.0123%"
    assert fmt(0.00012345, 2) == "0.00012" and fmt(1.5e-5, 2) == "1.5e-05"
    assert fmt(1234.5678) == "1235" and fmt(5757312.0) == "5.757e+06"
    assert fmt(-0.0) == "0" and fmt(-0.0001, 2, fixed=True) == "0.00"


def test_a_kl_within_rounding_of_zero_prints_0_and_says_so():
    """'KL at minimum −1.863e-15': a sum of terms of both signs rounds to +-1e-16 of them."""
    assert fmt_kl(-1.863e-15) == ZERO_KL_TEXT == "0 (within rounding)"
    assert fmt_kl(3.638e-12, scale=5.7e6) == ZERO_KL_TEXT  # raw counts: terms of millions
    assert fmt_kl(0.0) == ZERO_KL_TEXT  # exact here, -9e-13 on the other engine
    assert fmt_kl(0.32146) == "0.3215" and fmt_kl(2e-9) == "2e-09"
    assert fmt_kl(float("inf")) == "inf" and fmt_kl(None) == "n/a"


def test_decibels_counts_and_plurals_have_one_spelling():
    """Explore's metric said 0.7 dB where its table said 0.67; dead layers said '1 bins'."""
    assert fmt_db(0.6712) == "0.67 dB" and fmt_db(0.6712, unit=False) == "0.67"
    assert DB_FORMAT % 0.6712 == "0.67"  # the tables' column format is the same rule
    assert fmt_count(5757312) == "5,757,312" and fmt_count(0.25) == "0.25"
    assert plural(1, "bin") == "1 bin" and plural(2048, "bin") == "2,048 bins"
    assert plural(None, "bin") == "n/a"


def test_axis_ticks_never_use_si_for_a_kl_nor_for_fractional_counts():
    """Plotly's default SI ticks wrote a KL of 1e-4 and normalised counts as '100µ', and a
    linear KL axis near 0 as '0000000000003' (cut); log axes as '0.00000001'."""
    for q in ("kl", "value", "db", "percent"):
        t = axis_ticks(q)
        assert t["tickformat"] == "~g" and t["exponentformat"] == "e"
    assert axis_ticks("count", lo=1e-4)["tickformat"] == "~g"
    assert axis_ticks("count", lo=1.0)["tickformat"] == "~s"  # 1k, 5.7M
    log = axis_ticks("kl", log=True)
    assert log["type"] == "log" and log["dtick"] == 1 and log["tickformat"] == "~e"
    assert axis_ticks("index", n=2) == {"tickformat": "d", "tick0": 0, "dtick": 1}
    assert axis_ticks("index", n=500)["dtick"] == 50
    with pytest.raises(ValueError, match="quantity must be one of"):
        axis_ticks("kls")


# -- the readings, where they are drawn -------------------------------------------------------
def test_learn_says_the_same_kl_in_step_5_and_step_6():
    """Step 5 (the candidate's P and Q, built bin by bin) said KL 0, step 6 (the sweep's
    prefix sums) -9.095e-13, for the same candidate. Both are written with the sweep's
    scale: one text."""
    r = kl_sweep(np.array([423.0, 403.0, 29.0, 6.0, 0.0, 0.0]), 4, "seed")
    pq = r.distributions(r.best)
    assert pq.kl == 0.0 and r.min_kl != 0.0  # the two engines' roundings
    assert fmt(pq.kl, 5) != fmt(r.min_kl, 5)  # what Learn wrote: "0" and "-9.0949e-13"
    assert fmt_kl(pq.kl, r.kl_scale) == fmt_kl(r.min_kl, r.kl_scale) == ZERO_KL_TEXT


def test_learn_figures_read_counts_and_kl_with_the_one_rule():
    from calib import learn
    from calib.figures import learn as fl

    hist = learn.lesson_histogram(next(iter(learn.LESSONS)))
    r = learn.learn_sweep(hist, "seed", 8)
    pq = r.distributions(r.best)
    f = learn.fold(r, pq)
    counts = learn.prepared_counts(r)
    fig = fl.fold_figure(counts, r.histogram.edges, f, log_y=True)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.tickformat == "~s"
    levels = learn.level_table(r, pq)
    fig = fl.quantized_figure(levels, log_y=True)
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.tickformat == "d"
    normalised = fl.levels_figure(counts / counts.sum(), f.window, levels)
    assert normalised.layout.yaxis.tickformat == "~g"  # no "100µ" counts
    assert fl.sweep_figure(r).layout.yaxis.tickformat in NOT_SI  # no SI, no cut KL labels
    assert fl.terms_figure(pq, f.window, np.zeros(pq.p.size, bool)).layout.yaxis.tickformat == "~g"


def test_learn_turns_a_log_count_axis_on_where_one_bin_holds_the_rest_flat():
    """A real layer merged to 16 bins drew all 5.7M counts in one bin on a linear axis."""
    from calib.app.learn import spans_decades

    assert spans_decades(np.r_[5_700_000.0, 3.0, 1.0, np.zeros(13)])
    assert not spans_decades(np.r_[50.0, 3.0, 1.0])
    assert not spans_decades(np.zeros(4))


def test_the_sqnr_chart_counts_tensors_in_whole_numbers():
    """Two tensors: the x axis read 0, 0.2, ... 1."""
    from calib.figures.layers import sqnr_figure
    from calib.report import layer_table

    rng = np.random.default_rng(0)
    hists = {n: Histogram.from_samples(rng.normal(size=5000), bins=256) for n in ("a", "b")}
    fig = sqnr_figure(layer_table(hists))
    assert fig.layout.xaxis.tickformat == "d" and fig.layout.xaxis.dtick == 1
    assert ".2f" in fig.data[0].hovertemplate  # dB as everywhere else


def test_compare_shows_clips_that_coincide_and_says_so():
    """The seed's clip was drawn under ncnn's, the same colour width: one line, two names."""
    from calib.compare import compare
    from calib.figures.compare import clips_figure

    rng = np.random.default_rng(1)
    h = Histogram.from_samples(np.abs(rng.normal(size=20_000)), bins=512)
    c = compare(h)
    fig = clips_figure(c)
    shapes = [s for s in fig.layout.shapes if s.showlegend]
    by_x: dict[float, list] = {}
    for s in shapes:
        by_x.setdefault(round(s.x0, 9), []).append(s)
    together = [g for g in by_x.values() if len(g) > 1]
    assert together, "the fixture should have two clips at one place"
    for group in together:
        widths = [s.line.width for s in group]
        assert len(set(widths)) == len(widths)  # each visible under the next
        assert all(s.legendgrouptitle.text.startswith("one clip: ") for s in group)


@pytest.mark.slow
def test_learn_shows_the_rows_it_points_at_and_one_kl_for_one_candidate():
    """'Rows to look for: bin 18' pointed below the table's first screen (16 rows); the
    rows named are now a table of their own. Step 5 and step 6 write the minimum's KL alike."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    page = str(Path(__file__).resolve().parents[1] / "pages" / "1_Learn.py")
    at = AppTest.from_file(page, default_timeout=60).run()
    assert not at.exception, at.exception
    named = [d.value for d in at.dataframe if "note" in d.value.columns and len(d.value) <= 3]
    assert len(named) == 2  # above the step 4 and the step 5 tables
    assert all(list(f["bin"]) == [18] for f in named)
    at.button(key="learn_go_best").click().run()
    m = {x.label: x.value for x in at.metric}
    assert m["KL at this candidate"] == m["Minimum KL"]


def test_compare_axes_say_no_si_for_a_kl_nor_for_normalised_counts():
    """'plotly axes say 100µ for a KL and for counts': plotly's default SI exponents."""
    from calib.compare import compare
    from calib.figures.compare import clips_figure, kl_curves_figure

    rng = np.random.default_rng(2)
    h = Histogram.from_samples(np.abs(rng.normal(size=20_000)), bins=256)
    normalised = Histogram(h.counts / h.total, h.edges)
    c = compare(normalised, explain=False)
    assert clips_figure(c, log_y=True).layout.yaxis.tickformat in NOT_SI
    assert clips_figure(compare(h, explain=False)).layout.yaxis.tickformat == "~s"  # 1k
    fig = kl_curves_figure(c.sweeps)
    assert fig.layout.yaxis.tickformat in NOT_SI and fig.layout.yaxis.exponentformat == "e"


def test_a_share_that_rounds_to_nothing_is_written_0_percent():
    """Compare said "alone on the seed it goes -0% of the way" (MXNet on MiniLM's default
    layer): a share is written in whole percent, and never as a negative zero."""
    from calib.numbers import fmt_share

    assert fmt_share(-0.004) == fmt_share(0.004) == "0%"
    assert fmt_share(-0.006) == "-1%" and fmt_share(1.104) == "110%"
    h = Histogram.from_samples(np.random.default_rng(3).normal(size=20_000), bins=512)
    from calib.compare import compare

    for text in (a.summary() for a in compare(h).attributions.values()):
        assert "-0%" not in text


@pytest.mark.slow
def test_the_effect_page_writes_no_negative_zero_db():
    """The CNN's seed and ncnn rows read "-0.00" dB in the Effect tables and "-0.0" on the
    bars (output SQNR -0.001 dB: the model destroyed)."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "pages" / "4_Effect.py"), default_timeout=120).run()
    at.radio(key="effect_src").set_value("efficientnet_lite0").run()
    assert not at.exception
    cells = [v for d in at.dataframe for c in d.value.columns if "(dB)" in c for v in d.value[c]]
    assert cells and any(abs(v) < 0.005 for v in cells)  # the destroyed rows are there
    assert not any(v == 0 and math.copysign(1.0, v) < 0 for v in cells)
    bars = at.get("plotly_chart")[0].proto.spec
    assert '"-0.0"' not in bars
