"""The Learn page's widgets, cached computations and sections (pages/1_Learn.py).

The UI layer: the page calls these top to bottom. The numbers come from ``calib.learn``
(built on the sweep's own ``SweepResult`` and ``PQ``, no Streamlit), the figures from
``calib.figures.learn``. Cached values are the core's frozen dataclasses and plotly
figures, kept with ``st.cache_resource`` and keyed by primitives.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from calib import learn
from calib.app import state, text
from calib.app.charts import plot
from calib.app.sources import histogram_source, sized_histogram
from calib.app.text import plain
from calib.figures import learn as fl
from calib.histogram import Histogram
from calib.numbers import fmt, fmt_kl, plural
from calib.policies import MODELOPT_START_BIN, TARGET_BINS_MIN, VARIANT_NOTES, VARIANTS, Policy
from calib.sweep import PQ, SweepResult

__all__ = [
    "DIGITS",
    "NUM",
    "OTHER",
    "QUESTIONS",
    "RAW_VS_NORMALISED_LESSON",
    "Candidate",
    "Sweep",
    "choose_histogram",
    "clip_text",
    "go_to",
    "key_rows",
    "levels_demo",
    "pick_candidate",
    "question_levels",
    "question_raw_vs_normalised",
    "question_relu",
    "question_symmetric",
    "questions",
    "raw_vs_normalised",
    "raw_vs_normalised_figure",
    "relu_figure",
    "relu_spike",
    "seed_example",
    "seed_example_section",
    "seed_ramp_figure",
    "smoothing_text",
    "spike_terms",
    "step_clip",
    "step_expand",
    "step_levels",
    "step_quantized",
    "step_sweep",
    "step_terms",
    "sweep_controls",
    "symmetric_demo",
    "symmetric_figure",
    "table",
]

OTHER = "Real model, demo or upload"
DIGITS = 5  # significant digits of the lesson's numbers, in its text and its tables
NUM = st.column_config.NumberColumn(format=f"%.{DIGITS}g")
RAW_VS_NORMALISED_LESSON = "Bulk, gap, one outlier"


def table(columns: dict, **kwargs) -> None:
    """A dataframe tall enough for its rows (up to about 17), numbers to 5 digits."""
    df = pd.DataFrame(columns)
    config = {c: NUM for c in df.columns if pd.api.types.is_float_dtype(df[c])}
    height = min(35 * (len(df) + 1) + 3, 633)
    st.dataframe(df, hide_index=True, column_config=config, height=height, **kwargs)


# --------------------------------------------------------------------------------------
# cached computations
# The demos no widget changes: computed once per server.
seed_example = st.cache_resource(show_spinner=False)(learn.seed_example)
relu_spike = st.cache_resource(show_spinner=False)(learn.relu_spike)
levels_demo = st.cache_resource(show_spinner=False)(learn.levels_demo)
symmetric_demo = st.cache_resource(show_spinner=False)(learn.symmetric_demo)


@st.cache_resource(show_spinner=False, max_entries=16)
def spike_terms(fraction: float, candidates: tuple[int, ...]) -> learn.SpikeTerms:
    return learn.spike_terms(fraction, candidates)


@st.cache_resource(show_spinner=False)
def raw_vs_normalised(name: str, target_bins: int) -> learn.RawVsNormalised:
    return learn.raw_vs_normalised(learn.LESSONS[name].counts, target_bins)


# Figures that no widget changes, built once: st.plotly_chart only reads them.
@st.cache_resource(show_spinner=False)
def seed_ramp_figure():
    ex = seed_example()
    return fl.sweep_figure(ex.result, penalty=ex.penalty)


@st.cache_resource(show_spinner=False)
def symmetric_figure():
    return fl.symmetric_figure(symmetric_demo())


@st.cache_resource(show_spinner=False)
def relu_figure():
    return fl.relu_figure(relu_spike())


@st.cache_resource(show_spinner=False)
def raw_vs_normalised_figure(name: str, target_bins: int):
    return fl.raw_vs_normalised_figure(raw_vs_normalised(name, target_bins))


# --------------------------------------------------------------------------------------
# controls
def choose_histogram() -> tuple[str, Histogram]:
    names = [*learn.LESSONS, OTHER]
    choice = st.sidebar.selectbox(
        "Lesson histogram", names, key="learn_lesson", persist_state=state.KEEP
    )
    if choice != OTHER:
        st.sidebar.caption(learn.LESSONS[choice].what)
        return choice, learn.lesson_histogram(choice)
    source = histogram_source("learn", default_kind="model")
    bins = st.sidebar.select_slider(
        "Merge it down to", learn.LEARN_BIN_CHOICES, value=32, key="learn_hist_bins",
        persist_state=state.KEEP,
        help="Few bins, so that every bin's numbers fit on the page.",
    )  # fmt: skip
    return f"{source.label}, {bins} bins", sized_histogram(source, bins)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What the controls chose: a histogram, a variant, a number of levels, and the sweep."""

    label: str
    hist: Histogram
    variant: str
    target_bins: int
    result: SweepResult
    slot: Any  # the column the candidate slider goes in


def sweep_controls(label: str, hist: Histogram) -> Sweep | None:
    """The variant and level-count widgets and the sweep they ask for; None (after an error
    or a warning on the page) when there is no clip to show."""
    # the swept histogram: unsigned variants fold a signed one to half the bins
    n_min = hist.n_bins // 2 if hist.is_signed else hist.n_bins
    t_max = min(learn.LEARN_TARGET_BINS_MAX, n_min - 1)

    c1, c2, c3 = st.columns([1, 1, 2])
    variant = c1.selectbox("Variant", list(VARIANTS), key="learn_variant", persist_state=state.KEEP)
    T = None
    result = None
    if t_max < TARGET_BINS_MIN:
        st.error(
            f"{plain(label)} has {plural(hist.n_bins, 'bin')}; the lesson needs at least "
            f"{TARGET_BINS_MIN + 1} ({TARGET_BINS_MIN} levels + 1)."
        )
    else:
        # Written back every run: a slider whose range changed is a new widget, and Streamlit
        # would reset it to its minimum; a value set in code survives the change.
        t_now = st.session_state.get("learn_target_bins", learn.LEARN_TARGET_BINS)
        st.session_state["learn_target_bins"] = min(t_now, t_max)
        if t_max == TARGET_BINS_MIN:  # a slider needs min < max
            T = t_max
            c2.markdown(f"**{T} levels**, the most these {hist.n_bins} bins take.")
        else:
            T = c2.slider(
                "Target bins (levels)", TARGET_BINS_MIN, t_max, key="learn_target_bins",
                persist_state=state.KEEP,
                help="Quantized levels. Real int8 tools use 128 (MXNet 255); 8 keeps it "
                "readable.",
            )  # fmt: skip
        try:
            result = learn.learn_sweep(hist, variant, T)
        except ValueError as exc:
            text.error(f"Cannot sweep {plain(label)} with {variant}, {T} levels", exc)
            result = None
    st.caption(f"**{variant}**: {VARIANT_NOTES[variant]}")

    if result is not None and result.dead:
        st.warning(
            f"{plain(label)} is all zeros (a dead layer): there is no clip to choose. Pick another."
        )
        result = None

    if result is not None and not np.isfinite(result.kl).any():
        why = (
            f" {variant} truncates level masses to integers, and this histogram's counts are "
            "small (a normalised histogram?), so its levels are empty."
            if result.policy.truncate != "none" and result.histogram.total < 2 * hist.n_bins
            else ""
        )
        st.warning(f"Every candidate's KL is infinite for {variant} on {plain(label)}.{why}")

    if result is None or T is None:
        return None
    return Sweep(label=label, hist=hist, variant=variant, target_bins=T, result=result, slot=c3)


def go_to(candidate: int) -> None:
    st.session_state["learn_candidate"] = candidate


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One candidate of a sweep, with what the six steps show of it."""

    sweep: Sweep
    cand: int
    cand_lo: int
    cand_hi: int
    pq: PQ
    fold: learn.Fold
    counts: np.ndarray  # the histogram as the variant prepares it
    rows: dict[str, list]  # learn.bin_table
    levels: learn.LevelTable
    head: int | None  # the level tables show the first and last ``head`` levels
    sel: np.ndarray  # ... these rows of them
    log_y: bool = False  # counts on a logarithmic axis

    @property
    def result(self) -> SweepResult:
        return self.sweep.result

    @property
    def policy(self) -> Policy:
        return self.sweep.result.policy

    @property
    def signed(self) -> bool:
        return self.policy.layout == "signed"


def pick_candidate(sweep: Sweep) -> Candidate:
    """The candidate slider and the go-to-the-minimum button, and that candidate's numbers."""
    result, T = sweep.result, sweep.target_bins
    cand_lo, cand_hi = int(result.candidates[0]), int(result.candidates[-1])
    context = (sweep.label, sweep.variant, T)
    c_now = st.session_state.get("learn_candidate", -1)
    # no context yet: a link's candidate (calib.app.state), kept when the sweep has it
    fresh = st.session_state.get("learn_context") is None
    if (not fresh and st.session_state["learn_context"] != context) or not (
        cand_lo <= c_now <= cand_hi
    ):
        c_now = result.best  # a new histogram, variant or level count starts at its choice
    st.session_state["learn_context"] = context
    st.session_state["learn_candidate"] = c_now  # written back, as target bins
    signed = result.policy.layout == "signed"
    c3 = sweep.slot
    if cand_lo == cand_hi:  # a slider needs min < max: one candidate is simply shown
        cand = cand_lo
        c3.markdown(
            f"**Candidate {cand}**, the only one: with {T} levels the variant keeps at least "
            f"{T} bins, and the histogram has no more."
        )
    else:
        cand = c3.slider(
            "Candidate", cand_lo, cand_hi, key="learn_candidate", persist_state=state.KEEP,
            help=("bins kept on each side of the zero bin" if signed else "bins kept from 0")
            + f"; the variant tries {cand_lo}..{cand_hi}.",
        )  # fmt: skip
    c3.button(f"Go to the minimum ({result.best})", on_click=go_to, args=(result.best,),
              key="learn_go_best")  # fmt: skip
    pq = result.distributions(cand)
    levels = learn.level_table(result, pq)
    head = None if T <= 16 else 4
    counts = learn.prepared_counts(result)
    log_y = st.sidebar.checkbox(
        "Log count axis", value=spans_decades(counts), key="learn_log_y",
        help="Counts on a logarithmic axis: a bin holding most of the mass no longer "
        "flattens the others (on by default when the counts span more than two decades).",
    )  # fmt: skip
    return Candidate(
        sweep=sweep,
        cand=cand,
        cand_lo=cand_lo,
        cand_hi=cand_hi,
        pq=pq,
        fold=learn.fold(result, pq),
        counts=counts,
        rows=learn.bin_table(result, pq),
        levels=levels,
        head=head,
        sel=levels.rows(head),
        log_y=log_y,
    )


def spans_decades(counts: np.ndarray, decades: float = 2.0) -> bool:
    """Whether the non-zero counts span more than ``decades`` powers of ten (a linear axis
    then draws all but the largest bins flat: 5.7M counts in one of 16 bins)."""
    nz = np.asarray(counts, dtype=np.float64)
    nz = nz[nz > 0]
    return bool(nz.size and nz.max() > 10.0**decades * nz.min())


# --------------------------------------------------------------------------------------
# the six steps
def step_clip(c: Candidate) -> None:
    """1. Clip, and fold the tail into P."""
    result, pq, f, policy, cand = c.result, c.pq, c.fold, c.policy, c.cand
    hist, variant, counts, w = c.sweep.hist, c.sweep.variant, c.counts, c.fold.window
    st.header("1. Clip, and fold the tail into P")
    notes = []
    if c.signed and not hist.is_signed:
        notes.append(
            f"{variant} histograms signed x: the {hist.n_bins} bins of |x| are mirrored "
            f"into {result.histogram.n_bins}, each count copied to x and to -x (the counts "
            f"double, {fmt(hist.total, DIGITS)} → {fmt(result.histogram.total, DIGITS)}; "
            "integer counts stay integers, and the normalised KL does not see the factor 2)."
        )
    if policy.zero_spike == "copy_next":
        notes.append(f"ModelOpt first sets bins[0] = bins[1] ({fmt(counts[0], DIGITS)}).")
    if policy.normalize == "histogram":
        notes.append("ncnn first divides the histogram by its total, once.")
    if variant == "modelopt":
        notes.append(
            f"Candidates start at bin {c.cand_lo} here (ModelOpt's own start is "
            f"{MODELOPT_START_BIN})."
        )
    if c.signed:
        st.write(
            f"Candidate **{cand}** keeps {cand} bins on each side of the zero bin "
            f"{result.histogram.n_bins // 2}: bins {w.a}..{w.b - 1}, "
            f"[{fmt(pq.edges[0], DIGITS)}, {fmt(pq.edges[-1], DIGITS)}). "
            f"The {f.clipped_bins_lo} bins left of it hold {fmt(f.tail_lo, DIGITS)}, added to "
            f"the first kept bin ({fmt(f.first_before, DIGITS)} → {fmt(f.first_after, DIGITS)}); "
            f"the {f.clipped_bins_hi} bins right of it hold {fmt(f.tail_hi, DIGITS)}, added to "
            f"the last ({fmt(f.last_before, DIGITS)} → {fmt(f.last_after, DIGITS)})."
        )
    elif f.clipped_bins_hi == 0:
        st.write(
            f"Candidate **{cand}** keeps every bin, 0..{cand - 1}: nothing is clipped, and P "
            "is the histogram itself."
        )
    else:
        st.write(
            f"Candidate **{cand}** keeps bins 0..{cand - 1}, up to "
            f"{fmt(pq.edges[-1], DIGITS)}. The {f.clipped_bins_hi} bins past it hold "
            f"{fmt(f.tail_hi, DIGITS)} ({f.clipped_fraction:.2%} of the mass); P adds them to "
            f"the last kept bin, {fmt(f.last_before, DIGITS)} → {fmt(f.last_after, DIGITS)}. "
            "P keeps all the mass: a clipped value is stored as the clip."
        )
    st.write(clip_text(c))
    if notes:
        st.caption(" ".join(notes))
    m = st.columns(4)
    m[0].metric("Kept bins", f"{w.size}")
    m[1].metric("Clip (activation units)", fmt(pq.threshold, 4))
    m[2].metric("Tail folded into P", fmt(f.tail_lo + f.tail_hi, DIGITS))
    m[3].metric("Clipped share", f"{f.clipped_fraction:.2%}")
    plot(
        fl.fold_figure(counts, result.histogram.edges, f, c.log_y),
        "learn_fold",
        c.sweep.label,
        c.sweep.variant,
        "fold",
    )


def clip_text(c: Candidate) -> str:
    """Where the clip lands against the kept bins (the seed's half bin past them)."""
    pq, policy, w = c.pq, c.policy, c.fold.window
    top = fmt(pq.edges[-1], DIGITS)
    if policy.threshold == "edge_plus_half":
        half = fmt((pq.edges[-1] - pq.edges[-2]) / 2, DIGITS)
        return (
            f"The clip is **{fmt(pq.threshold, DIGITS)}**, not {top}: {c.sweep.variant} "
            f"returns (i + 0.5) bin widths for i = {w.size} kept bins, the middle of the first "
            f"clipped bin, half a bin ({half}) past the kept bins' top edge {top}."
        )
    return f"The clip is **{fmt(pq.threshold, DIGITS)}**, the kept window's upper edge."


def key_row_indices(c: Candidate) -> list[int]:
    """The rows of the bin tables worth finding (a folded tail, q = 0, a remainder bin)."""
    return [i for i, note in enumerate(c.rows["note"]) if note and note != learn.NO_TERM]


def key_rows(c: Candidate) -> str:
    """The rows of the bin tables worth finding, named above the tables, which scroll."""
    rows = [f"bin {c.rows['bin'][i]}: {c.rows['note'][i]}" for i in key_row_indices(c)]
    return ("Rows to look for: " + "; ".join(rows) + ".") if rows else ""


def bin_table_with_key_rows(c: Candidate, columns: tuple[str, ...], key: str) -> None:
    """The bin table, the rows :func:`key_rows` names above it, and those rows again as a
    table of their own under it: the full table's first screen may end before them (bin
    18 below a cut-off at bin 16)."""
    idx = key_row_indices(c)
    if idx:
        st.caption(key_rows(c))
    table({k: c.rows[k] for k in columns}, key=key)
    if idx and len(c.rows["bin"]) > len(idx):
        table({k: [c.rows[k][i] for i in idx] for k in columns}, key=f"{key}_named")


def step_levels(c: Candidate) -> None:
    """2. Split the kept bins into T levels."""
    result, pq, levels, T = c.result, c.pq, c.levels, c.sweep.target_bins
    st.header(f"2. Split the kept bins into {T} levels")
    mg = learn.merge_summary(result, pq)
    if mg.kind == "fractional":
        cut = next((s for s in levels.members if " x " in s), None)
        st.write(
            f"{mg.window_bins} bins / {T} levels = **{fmt(mg.bins_per_level, DIGITS)} bins per "
            f"level**: level k covers [k·{fmt(mg.bins_per_level, DIGITS)}, "
            f"(k+1)·{fmt(mg.bins_per_level, DIGITS)}). A bin cut by a boundary is shared by overlap"
            + (f" (level 0 takes {cut})." if cut and levels.members[0] == cut else ".")
        )
    elif mg.kind == "whole":
        rem = (
            "they join the last level (MXNet)"
            if mg.remainder_policy == "last_group"
            else "their mass is added to the last level but their Q stays 0 "
            "(ONNX Runtime as shipped; `remainder='last_group'` fixes it)"
        )
        st.write(
            f"{mg.window_bins} bins // {T} levels = **{int(mg.bins_per_level)} whole bins "
            f"per level**, remainder **{mg.remainder}**: " + (rem if mg.remainder else "none.")
        )
    else:
        space = ", ".join(fmt(x, 4) for x in mg.linspace[: min(mg.linspace.size, 17)])
        st.write(
            f"`np.linspace(0, {mg.window_bins}, {T + 1})` = [{space}"
            + (", …]" if mg.linspace.size > 17 else "]")
            + "; bin j goes to level `digitize(j, space) - 1`, so level k takes the whole "
            "bins from ceil(space[k]) to ceil(space[k+1]) - 1."
        )
    window_counts = np.array(c.rows["count"])
    plot(
        fl.levels_figure(window_counts, c.fold.window, levels, c.log_y),
        "learn_levels",
        c.sweep.label,
        c.sweep.variant,
        "levels",
    )
    sel = c.sel
    table(
        {
            "level": levels.level[sel],
            "start (bin)": levels.start[sel],
            "end (bin)": levels.end[sel],
            "bins x share": [levels.members[k] for k in sel],
        },
        key="learn_level_bounds",
    )
    if c.head is not None:
        st.caption(f"The first and last {c.head} of {T} levels.")


def step_quantized(c: Candidate) -> None:
    """3. The quantized histogram."""
    levels, policy, variant, f, sel = c.levels, c.policy, c.sweep.variant, c.fold, c.sel
    st.header("3. The quantized histogram")
    mass_note = (
        f"The level masses sum to {fmt(levels.mass.sum(), DIGITS)}; the kept bins hold "
        f"{fmt(f.kept, DIGITS)}. The folded tail is in no level: it exists only in P."
    )
    if policy.truncate == "mass":
        mass_note += f" {variant} stores the masses as integers: Q value = trunc(mass) / bins."
    elif policy.truncate == "mass_and_q":
        mass_note += (
            f" {variant} stores masses and Q as integers: Q value = trunc(trunc(mass) / bins)."
        )
    starved = levels.level[(levels.mass == 0) & (levels.nonzero > 0)]
    if starved.size:
        one = starved.size == 1
        mass_note += (
            f" Level{'' if one else 's'} {', '.join(map(str, starved))} "
            f"{'holds' if one else 'hold'} no mass but {'contains' if one else 'contain'} a "
            "bin where P is not 0 (the folded tail): Q is 0 there, which step 5 scores."
        )
    st.write(mass_note)
    plot(
        fl.quantized_figure(levels, c.log_y),
        "learn_quantized",
        c.sweep.label,
        c.sweep.variant,
        "quantized",
    )
    table(
        {
            "level": levels.level[sel],
            "mass": levels.mass[sel],
            "bins Q lands on": levels.nonzero[sel],
            "Q value": levels.value[sel],
        },
        key="learn_level_mass",
    )


def step_expand(c: Candidate) -> None:
    """4. Expand Q over the bins."""
    pq, levels, policy = c.pq, c.levels, c.policy
    st.header("4. Expand Q over the bins")
    shares = " (a shared bin counts as its share)" if policy.merge == "fractional" else ""
    if policy.nonzero_from == "hist":
        where = (
            "non-zero in the histogram before the fold" + shares + ", and written to those "
            "bins only. Where the histogram is 0, Q is 0, even in P's last bin when the folded "
            "tail made it non-zero there; step 5 then finds q = 0 where p > 0."
        )
    else:
        where = (
            "non-zero in P" + shares + ", and written to those bins only. Where P is 0, Q is "
            "0: Q never puts mass where P has none."
        )
    expand_text = {
        "nonzero": "Each level's mass is divided by the number of its bins that are " + where,
        "uniform": "Each level's mass is divided by its width in bins and written to every "
        "bin of the level, zero or not (ncnn 2021+). Smoothing later keeps log(p/q) finite.",
        "fill_all": "Each level's mass is divided by its non-zero bins but written to every "
        "bin of the level, zeros included (ONNX Runtime as shipped), so Q holds "
        f"{fmt(float(np.sum(pq.q_raw)), DIGITS)} where the levels hold "
        f"{fmt(levels.mass.sum(), DIGITS)}.",
    }[policy.expand]
    st.write(expand_text)
    plot(
        fl.expand_figure(pq, c.fold.window, levels, c.log_y),
        "learn_expand",
        c.sweep.label,
        c.sweep.variant,
        "p_and_q",
    )
    cols = ("bin", "from", "to", "count", "P", "levels", "Q", "note")
    bin_table_with_key_rows(c, cols, "learn_bins_q")


def smoothing_text(side: str, sm: learn.Smoothing) -> str:
    if sm.zeros == 0:
        return f"{side} has no zero bin, so it is unchanged."
    return (
        f"{side}'s {sm.zeros} zero bin(s) get eps, and each of its {sm.nonzeros} non-zero "
        f"bins gives up eps·{sm.zeros}/{sm.nonzeros} = {fmt(sm.taken, DIGITS)}."
    )


def step_terms(c: Candidate) -> None:
    """5. Each bin's KL term."""
    result, pq, policy = c.result, c.pq, c.policy
    st.header("5. Each bin's KL term")
    plus_one = (pq.p > 0) & (pq.q == 0) & (policy.zero_q == "one")
    rule = (
        "KL = Σ p·log(p/q) over bins with p > 0; where q = 0 the seed adds **1** instead, a "
        "constant that does not scale with the counts."
        if policy.zero_q == "one"
        else "KL = Σ p·log(p/q) over bins with p > 0; a bin with q = 0 makes the KL infinite "
        "(the candidate cannot win)."
    )
    steps = []
    if policy.smoothing == "add_eps":
        steps.append(f"ncnn adds eps = {policy.eps:g} to every bin of P and Q first.")
    if policy.smoothing == "mxnet":
        sp = learn.smoothing_summary(result, pq.p_raw)
        sq = learn.smoothing_summary(result, pq.q_raw)
        steps.append(f"Smoothing first (eps = {policy.eps:g}): " + smoothing_text("P", sp))
        steps.append(smoothing_text("Q", sq))
    if policy.normalize == "pq":
        steps.append("Then P and Q are each scaled to sum 1 (scipy.stats.entropy).")
    st.write(" ".join([rule, *steps]))
    m = st.columns(3)
    m[0].metric("KL at this candidate", fmt_kl(pq.kl, result.kl_scale, DIGITS))
    m[1].metric(
        "Bins where q = 0 < p", f"{int(((pq.p > 0) & (pq.q == 0)).sum())}",
        help="Each adds 1 in the seed; each makes the KL infinite elsewhere.",
    )  # fmt: skip
    m[2].metric("Bins with p > 0", f"{int((pq.p > 0).sum())}")
    plot(
        fl.terms_figure(pq, c.fold.window, plus_one),
        "learn_terms",
        c.sweep.label,
        c.sweep.variant,
        "kl_terms",
    )
    cols = ("bin", "p", "q", "term", "note")
    bin_table_with_key_rows(c, cols, "learn_bins_kl")


def step_sweep(c: Candidate) -> None:
    """6. The whole sweep."""
    result = c.result
    st.header("6. The whole sweep")
    tie = "first" if c.policy.ties == "first" else "last"
    st.write(
        f"Steps 1-5 for every candidate {c.cand_lo}..{c.cand_hi}; the variant keeps the "
        f"smallest KL (the {tie} one on ties): candidate **{result.best}**, clip "
        f"{fmt(result.amax, 4)}. Move the candidate slider to see any point of the curve."
    )
    m = st.columns(3)
    m[0].metric("Best candidate", f"{result.best}")
    m[1].metric("Its clip", fmt(result.amax, 4))
    m[2].metric("Minimum KL", fmt_kl(result.min_kl, result.kl_scale, DIGITS))
    for note in result.notes:  # the answer is not simply the minimum (the seed's 1e13 start)
        st.info(note[0].upper() + note[1:] + ".")
    plot(fl.sweep_figure(result, c.cand), "learn_sweep", c.sweep.label, c.sweep.variant, "kl_curve")


# --------------------------------------------------------------------------------------
# the seed's example, and what learners ask
def seed_example_section() -> None:
    """The seed's own example: a ramp gives 2047."""
    st.header("The seed's own example: a ramp gives 2047")
    ex = seed_example()
    r = ex.result
    falls = bool(np.all(np.diff(r.kl) < 0))
    st.write(
        "The seed's `__main__` sets `distribution[i] = i` for 2048 bins, divides by the sum "
        "and asks for 128 levels. Its candidates are the kept bins 128..2047: "
        "`range(target_bin, len(distribution))` stops before 2048, so 'keep everything' is "
        "never tried."
    )
    m = st.columns(3)
    m[0].metric("Seed's answer (kept bins)", f"{r.best}")
    m[1].metric("Mass clipped at 128", f"{ex.tail_at_first:.2%}")
    m[2].metric("KL at 128 → at 2047", f"{fmt(r.kl[0], 4)} → {fmt(r.kl[-1], 4)}")
    shape = r.kl - ex.penalty
    penalty_falls = bool(np.all(np.diff(ex.penalty) < 0))
    st.write(
        f"Why {r.best}: the seed never normalises P or Q. P holds all the mass (the tail "
        "folded into its last bin) but Q only the kept mass, so the KL is a scale penalty "
        "ΣP·log(ΣP / kept mass) plus the shape mismatch of P and Q each scaled to sum 1. On a "
        f"ramp most of the mass sits at the top ({ex.tail_at_first:.1%} of it is past bin "
        f"128), so the penalty starts at {fmt(ex.penalty[0], 4)} and "
        + ("falls at every step" if penalty_falls else "falls")
        + f" to {fmt(ex.penalty[-1], 4)} as the kept range grows. The shape part is the "
        "folded tail: a spike in P's last bin that Q, built from the kept bins only, cannot "
        f"follow; it peaks at {fmt(float(shape.max()), 4)} (candidate "
        f"{int(r.candidates[shape.argmax()])}) and is smallest, {fmt(float(shape.min()), 4)}, "
        f"at candidate {int(r.candidates[shape.argmin()])}. "
        + (
            "Their sum falls at every step, so the largest candidate, 2047, wins."
            if falls
            else "Their sum is smallest at the largest candidates."
        )
    )
    plot(seed_ramp_figure(), "learn_seed_ramp")


def question_levels() -> None:
    """Why 128 levels and not 256?"""
    st.subheader("Why 128 levels and not 256?")
    codes_s, mags_s = learn.quantizer_codes(8, unsigned=False)
    codes_u, mags_u = learn.quantizer_codes(8, unsigned=True)
    st.write(
        "Symmetric int8 maps x to round(x / scale) clipped to [-127, 127] (-128 is left "
        "unused so that the range is symmetric). The sweep runs on |x|, and a symmetric "
        "quantizer treats x and -x alike, so what it has for |x| is the magnitudes 0..127: "
        "128 levels. The sign costs the 8th bit. An unsigned quantizer (uint8, after a ReLU) "
        "has 256 codes on [0, amax]; ModelOpt then sweeps with 2^(bits - 1 + unsigned) = 256 "
        "levels."
    )
    table(
        {
            "quantizer": ["int8 symmetric", "uint8 unsigned"],
            "codes used": [codes_s, codes_u],
            "distinct |code|": [mags_s, mags_u],
        },
        key="learn_codes",
    )
    ld = levels_demo()
    i128, i256 = ld.levels.index(128), ld.levels.index(256)
    better = "higher" if ld.sqnr_int8_db[i128] > ld.sqnr_int8_db[i256] else "not higher"
    st.write(
        f"Sweeping with levels the quantizer does not have judges the wrong grid. On the "
        f"{ld.demo} demo (2048 bins), the seed clips at {fmt(ld.amax[i128], 4)} with 128 "
        f"levels and at {fmt(ld.amax[i256], 4)} with 256; the int8 SQNR at the 128-level clip "
        f"is {better}: {ld.sqnr_int8_db[i128]:.2f} dB against {ld.sqnr_int8_db[i256]:.2f} dB."
    )
    table(
        {
            "levels": list(ld.levels),
            "seed's kept bins": list(ld.best),
            "clip": list(ld.amax),
            "int8 SQNR (dB)": list(ld.sqnr_int8_db),
        },
        key="learn_levels_demo",
    )


def question_symmetric() -> None:
    """What does symmetric mean?"""
    st.subheader("What does symmetric mean?")
    sd = symmetric_demo()
    st.write(
        "One scale for both signs: the clip is ±amax and zero is code 0. TensorRT, ncnn and "
        "ModelOpt histogram |x|, so -3 and 3 fall in the same bin and the sweep picks amax "
        "for the magnitudes. MXNet and ONNX Runtime histogram signed x and slide a window "
        "[-c, c] around the zero bin, so P and Q keep both sides; the answer is still one "
        "amax for both signs. On a one-sided activation the negative half of the codes is "
        "mostly wasted."
    )
    m = st.columns(4)
    m[0].metric("GELU min / max", f"{sd.x_min:.3g} / {sd.x_max:.3g}")
    m[1].metric("Seed on |x|: amax", fmt(sd.amax_abs, 4))
    m[2].metric("MXNet window on x: amax", fmt(sd.amax_signed, 4))
    m[3].metric("Lowest code used", f"{sd.lowest_code_abs} of -127")
    plot(symmetric_figure(), "learn_symmetric")


def question_relu() -> None:
    """Why does a ReLU layer's spike of zeros drag the seed's clip down?"""
    st.subheader("Why does a ReLU layer's spike of zeros drag the seed's clip down?")
    rs = relu_spike()
    half = rs.fractions.index(0.5)
    cands = tuple(sorted({rs.smallest, rs.seed_best[half], rs.seed_best[0]}))
    sp = spike_terms(0.5, cands)
    st.write(
        "Every exact zero lands in bin 0, which sits in level 0 with i/128 - 1 other bins. Q "
        "spreads level 0's mass evenly over them, so bin 0's P (the spike s) meets a Q of "
        "about s·128/i and pays about s·log(i/128): the more bins the candidate keeps, the "
        "more the spike costs. The bigger the spike, the further down this term pulls the "
        "minimum, until the smallest candidate (i = 128, bin 0 a level of its own) wins. "
        "ModelOpt sets bins[0] = bins[1] before searching, which removes the spike from the "
        "question."
    )
    plot(relu_figure(), "learn_relu")
    table(
        {
            "zeros": [f"{x:.0%}" for x in rs.fractions],
            "seed's kept bins": list(rs.seed_best),
            "seed clip": list(rs.seed),
            "seed + bins[0] = bins[1]": list(rs.seed_fixed),
            "ModelOpt clip": list(rs.modelopt),
        },
        key="learn_relu_table",
    )
    st.write("With 50% zeros, bin 0's term against the rest of the KL at three candidates:")
    table(
        {
            "candidate": list(sp.candidates),
            "bins in level 0": list(sp.level0_bins),
            "bin 0's term": list(sp.bin0),
            "all other bins": list(sp.rest),
            "KL": [a + b for a, b in zip(sp.bin0, sp.rest, strict=True)],
        },
        key="learn_spike_terms",
    )


def question_raw_vs_normalised() -> None:
    """Why do raw counts and a normalised histogram give different answers?"""
    st.subheader("Why do raw counts and a normalised histogram give different answers?")
    rv = raw_vs_normalised(RAW_VS_NORMALISED_LESSON, learn.LEARN_TARGET_BINS)
    st.write(
        "Scale both P and Q by c and every p·log(p/q) term scales by c, so the curve keeps "
        "its shape. The seed's '+1 where q = 0' does not scale. With raw counts (total "
        f"{fmt(rv.total, DIGITS)}) a +1 is worth 1/{fmt(rv.total, DIGITS)} of the curve; "
        "normalised, it is worth as much as the whole shape error. A +1 appears when the "
        "clipped tail is folded into a bin whose level is empty in the histogram: Q has no "
        "mass to put there."
    )
    m = st.columns(3)
    m[0].metric("Raw counts: best", f"{rv.raw.best}")
    m[1].metric("Normalised: best", f"{rv.normalised.best}")
    m[2].metric("Candidates that pay +1", f"{int((rv.plus_ones > 0).sum())}")
    pays = int(rv.plus_ones[rv.raw.best_index])
    st.write(
        f"On the '{RAW_VS_NORMALISED_LESSON}' histogram ({learn.LEARN_TARGET_BINS} levels), "
        f"the raw counts choose {rv.raw.best} kept bins"
        + (
            ": the outlier is folded into the last bin, whose level is empty, so it costs +1 "
            f"instead of {fmt(rv.total, DIGITS)}·(its share)·log(…)."
            if pays
            else "."
        )
        + f" Normalised, every +1 is as large as the rest of the KL, and the seed chooses "
        f"{rv.normalised.best}. ncnn 2021+ normalises the histogram once and drops the +1 "
        "rule; the peers normalise P and Q for every candidate and make q = 0 an infinite KL."
    )
    plot(
        raw_vs_normalised_figure(RAW_VS_NORMALISED_LESSON, learn.LEARN_TARGET_BINS),
        "learn_raw_norm",
    )
    table(
        {
            "candidate": rv.raw.candidates,
            "+1 bins": rv.plus_ones,
            "raw KL / total": rv.raw.kl / rv.total,
            "normalised KL": rv.normalised.kl,
        },
        key="learn_raw_norm_table",
    )


QUESTIONS = {
    "Why 128 levels?": question_levels,
    "What does symmetric mean?": question_symmetric,
    "Why does a ReLU drag the seed down?": question_relu,
    "Raw counts or normalised?": question_raw_vs_normalised,
}


def questions() -> None:
    """What learners ask, one tab each. Only the open tab is computed and drawn: the
    page's first load draws three charts and three tables fewer."""
    tabs = st.tabs(
        list(QUESTIONS), key="learn_question", on_change="rerun",
        default=state.last("learn_question", None),
    )  # fmt: skip
    for tab, section in zip(tabs, QUESTIONS.values(), strict=True):
        if tab.open:
            with tab:
                section()
