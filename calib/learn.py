"""The Learn page's numbers: one candidate of a KL sweep taken apart step by step.

Everything here is read off the sweep's own results (``SweepResult`` and the ``PQ`` of
one candidate); nothing recomputes the KL. What the sweep does not hand out, the
lesson needs for display, and each piece is a few lines over ``PQ``:

- the fold: how much mass lies outside the candidate's window and which edge bin took it;
- which levels each bin belongs to, and with what share (``level_shares``), from which a
  level's non-zero count follows;
- the learner-question demos: small histograms built so that the effect is visible, and
  the sweeps that show it.

numpy and the standard library only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from calib import sweep
from calib.demos import demo_histogram, demo_samples
from calib.histogram import Histogram
from calib.methods import clip_metrics, max_code
from calib.policies import levels_for
from calib.sweep import PQ, SweepResult, kl_sweep

__all__ = [
    "LEARN_BIN_CHOICES",
    "LEARN_TARGET_BINS",
    "LEARN_TARGET_BINS_MAX",
    "LESSONS",
    "NO_TERM",
    "Fold",
    "Lesson",
    "LevelTable",
    "LevelsDemo",
    "Merge",
    "RawVsNormalised",
    "ReluSpike",
    "SeedExample",
    "Smoothing",
    "SpikeTerms",
    "SymmetricDemo",
    "Window",
    "bin_table",
    "fold",
    "learn_sweep",
    "lesson_histogram",
    "level_shares",
    "level_table",
    "levels_demo",
    "merge_summary",
    "nonzero_weights",
    "prepared_counts",
    "quantizer_codes",
    "raw_vs_normalised",
    "relu_histogram",
    "relu_spike",
    "scale_penalty",
    "seed_example",
    "smoothing_summary",
    "spike_terms",
    "symmetric_demo",
    "window",
]

LEARN_TARGET_BINS = 8  # few enough levels that every number fits on screen
LEARN_TARGET_BINS_MAX = 32
LEARN_BIN_CHOICES = (16, 32, 64)  # a real histogram merged down to this many bins


# --------------------------------------------------------------------------------------
# the lesson histograms
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Lesson:
    name: str
    what: str
    counts: tuple[int, ...]


_BULK = (900, 780, 610, 470, 350, 260, 190, 140, 100, 70, 50, 35, 24, 16, 10, 6)
_RELU = (2400, 300, 290, 270, 250, 220, 190, 160, 130, 100, 75, 55, 40, 28, 18, 11, 7, 4, 2, 1)
LESSONS: dict[str, Lesson] = {
    lesson.name: lesson
    for lesson in (
        Lesson(
            "Bulk, gap, one outlier",
            "32 bins: a decaying bulk in bins 0-15, empty bins 16-28, 20 counts in bin 29. "
            "With raw counts the seed clips inside the gap and pays only +1 for the outlier.",
            (*_BULK, *(0,) * 13, 20, 0, 0),
        ),
        Lesson(
            "ReLU zero spike",
            "32 bins: 2400 exact zeros in bin 0 over a half-normal bulk and 3 outliers "
            "in bin 27. The spike drags the seed's clip down.",
            (*_RELU, *(0,) * 7, 3, 0, 0, 0, 0),
        ),
        Lesson(
            "Ramp",
            "32 bins with count i in bin i: the seed's own example, small. Every candidate "
            "clips most of the mass, so the KL falls all the way to the last one.",
            tuple(range(32)),
        ),
    )
}


def lesson_histogram(name: str) -> Histogram:
    """A lesson histogram: unit-width bins from 0, so activation units are bins."""
    if name not in LESSONS:
        raise ValueError(f"lesson must be one of {tuple(LESSONS)}, got {name!r}")
    return Histogram.from_counts(np.array(LESSONS[name].counts, dtype=np.int64))


def learn_sweep(hist: Histogram, variant: str, target_bins: int, **policies) -> SweepResult:
    """``kl_sweep`` as the lesson runs it.

    ModelOpt's first candidate is bin ``MODELOPT_START_BIN`` (128), which a 32-bin
    histogram does not have; here it starts at ``target_bins`` instead, the smallest window
    that still has a bin per level.
    """
    if variant == "modelopt" and "start_bin" not in policies:
        policies = {**policies, "start_bin": int(target_bins)}
    return kl_sweep(hist, target_bins=int(target_bins), variant=variant, **policies)


# --------------------------------------------------------------------------------------
# step 1: clip and fold
# --------------------------------------------------------------------------------------
def prepared_counts(result: SweepResult) -> np.ndarray:
    """The counts the variant swept: :func:`calib.sweep.prepared_counts` of the result's
    histogram and policy (ModelOpt's ``bins[0] = bins[1]``, ncnn's normalisation)."""
    return sweep.prepared_counts(result.histogram, result.policy)


@dataclasses.dataclass(frozen=True)
class Window:
    """Bins [a, b) of the swept histogram that a candidate keeps."""

    a: int
    b: int

    @property
    def size(self) -> int:
        return self.b - self.a


def window(result: SweepResult, pq: PQ) -> Window:
    """The candidate's window, read off the edges the sweep returned with its P."""
    a = int(np.flatnonzero(result.histogram.edges == pq.edges[0])[0])
    return Window(a, a + pq.p.size)


@dataclasses.dataclass(frozen=True)
class Fold:
    """What clipping one candidate does to P.

    ``tail_lo`` (signed layouts only) is the mass left of the window, added to its first
    bin; ``tail_hi`` the mass right of it, added to its last bin.
    """

    window: Window
    total: float  # mass of the prepared histogram
    kept: float  # mass inside the window, before folding
    tail_lo: float
    tail_hi: float
    clipped_bins_lo: int
    clipped_bins_hi: int
    first_before: float
    first_after: float
    last_before: float
    last_after: float

    @property
    def clipped_fraction(self) -> float:
        return (self.tail_lo + self.tail_hi) / self.total if self.total > 0 else 0.0


def fold(result: SweepResult, pq: PQ) -> Fold:
    """How much mass the candidate clips on each side, and the edge bins before and after."""
    c = prepared_counts(result)
    w = window(result, pq)
    return Fold(
        window=w,
        total=float(c.sum()),
        kept=float(c[w.a : w.b].sum()),
        tail_lo=float(c[: w.a].sum()),
        tail_hi=float(c[w.b :].sum()),
        clipped_bins_lo=w.a,
        clipped_bins_hi=c.size - w.b,
        first_before=float(c[w.a]),
        first_after=float(pq.p_raw[0]),
        last_before=float(c[w.b - 1]),
        last_after=float(pq.p_raw[-1]),
    )


# --------------------------------------------------------------------------------------
# step 2 and 3: levels
# --------------------------------------------------------------------------------------
def level_shares(pq: PQ) -> np.ndarray:
    """``W[j, k]``: the share of window bin j that level k takes, from the sweep's own
    level boundaries (``pq.group_edges``, in bins from the window start).

    Bin j covers [j, j + 1); level k covers [g_k, g_{k+1}). With fractional boundaries
    (the seed) a bin cut by a boundary is shared by overlap; with whole-bin boundaries
    every share is 0 or 1. Bins past the last boundary (ONNX Runtime's remainder) belong
    to no level. A boundary past the window (the seed's float overshoot) is cut at it.
    """
    g = np.asarray(pq.group_edges, dtype=np.float64)
    j = np.arange(pq.p.size, dtype=np.float64)[:, None]
    return np.clip(np.minimum(j + 1, g[None, 1:]) - np.maximum(j, g[None, :-1]), 0.0, None)


def nonzero_weights(result: SweepResult, pq: PQ) -> np.ndarray:
    """Per window bin, 1 where the variant lets Q land and 0 where it does not.

    The non-zero test is on P (seed, MXNet, ONNX Runtime) or on the histogram before the
    fold (ModelOpt); ncnn's uniform expansion lands everywhere.
    """
    policy = result.policy
    if policy.expand == "uniform":
        return np.ones(pq.p.size)
    if policy.nonzero_from == "hist":
        w = window(result, pq)
        return (prepared_counts(result)[w.a : w.b] != 0).astype(np.float64)
    return (pq.p_raw != 0).astype(np.float64)


@dataclasses.dataclass(frozen=True)
class LevelTable:
    """One row per quantized level (columns as arrays)."""

    level: np.ndarray
    start: np.ndarray  # boundaries in absolute bins (fractional for the seed)
    end: np.ndarray
    members: tuple[str, ...]  # "3, 4, 5 x 0.25": the bins and the shares they give
    mass: np.ndarray  # the sweep's group_mass
    nonzero: np.ndarray  # the divisor: how many (weighted) bins the mass is spread over
    value: np.ndarray  # the sweep's group_value, Q on each receiving bin

    def rows(self, head: int | None = None) -> np.ndarray:
        """Indices of the first and last ``head`` levels (all when head is None)."""
        n = self.level.size
        if head is None or 2 * head >= n:
            return np.arange(n)
        return np.concatenate([np.arange(head), np.arange(n - head, n)])


def _members(shares: np.ndarray, a: int) -> str:
    parts = []
    for j in np.flatnonzero(shares > 0):
        s = float(shares[j])
        parts.append(f"{a + j}" if math.isclose(s, 1.0, abs_tol=1e-12) else f"{a + j} x {s:.4g}")
    return ", ".join(parts) if parts else "(none)"


def level_table(result: SweepResult, pq: PQ) -> LevelTable:
    """The candidate's levels: boundaries, member bins, and the sweep's mass, divisor
    (weighted count of the bins Q lands on) and Q value.

    The divisor is the sweep's own: the seed's float boundaries can give a level a
    rounding sliver (1e-15) of a bin its exact share leaves out, and with it a value."""
    w = window(result, pq)
    W = level_shares(pq)
    T = pq.group_mass.size
    g = np.asarray(pq.group_edges, dtype=np.float64)
    return LevelTable(
        level=np.arange(T),
        start=w.a + g[:-1],
        end=w.a + g[1:],
        members=tuple(_members(W[:, k], w.a) for k in range(T)),
        mass=np.asarray(pq.group_mass, dtype=np.float64),
        nonzero=np.asarray(pq.group_count, dtype=np.float64),
        value=np.asarray(pq.group_value, dtype=np.float64),
    )


@dataclasses.dataclass(frozen=True)
class Merge:
    """How the candidate's window is cut into levels, in words a table can hold."""

    kind: str  # the policy: "fractional", "whole" or "linspace"
    window_bins: int
    levels: int
    bins_per_level: float  # window / levels (fractional), or its floor (whole)
    remainder: int  # whole: bins left over after levels * bins_per_level
    remainder_policy: str  # "last_group" or "orphan"
    linspace: np.ndarray | None  # linspace: np.linspace(0, window, levels + 1)


def merge_summary(result: SweepResult, pq: PQ) -> Merge:
    L, T = pq.p.size, pq.group_mass.size
    kind = result.policy.merge
    per = L / T if kind != "whole" else float(L // T)
    remainder = L - T * (L // T) if kind == "whole" else 0
    space = np.linspace(0, L, T + 1) if kind == "linspace" else None
    return Merge(
        kind=kind, window_bins=L, levels=T, bins_per_level=per, remainder=remainder,
        remainder_policy=result.policy.remainder, linspace=space,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# step 4 and 5: Q, smoothing and each bin's term
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Smoothing:
    """What smoothing does to one side (P or Q) of one candidate."""

    rule: str  # the policy: "none", "add_eps" or "mxnet"
    eps: float
    zeros: int  # bins of the window where the side is 0
    nonzeros: int
    taken: float  # mxnet: eps * zeros / nonzeros, taken from every non-zero bin


def smoothing_summary(result: SweepResult, x: np.ndarray) -> Smoothing:
    x = np.asarray(x)
    rule = result.policy.smoothing
    zeros, nonzeros = int((x == 0).sum()), int((x != 0).sum())
    eps = result.policy.eps
    taken = eps * zeros / nonzeros if rule == "mxnet" and nonzeros else 0.0
    return Smoothing(rule, eps if rule != "none" else 0.0, zeros, nonzeros, taken)


BIN_COLUMNS = (
    "bin", "from", "to", "count", "P", "levels", "Q", "p", "q", "term", "note",
)  # fmt: skip


NO_TERM = "p = 0: no term"
"""The note of a bin where P is 0 (the commonest, so the page does not call it out)."""


def bin_table(result: SweepResult, pq: PQ) -> dict[str, list]:
    """One row per bin of the candidate's window: from histogram count to KL term.

    ``count`` is the histogram as the variant sweeps it, ``P``/``Q`` the sweep's raw P and
    Q (``p_raw``/``q_raw``), ``p``/``q`` what the KL is taken over (after smoothing and
    normalisation), ``term`` the bin's part of the KL, ``note`` what is special about it.
    """
    f = fold(result, pq)
    w = f.window
    c = prepared_counts(result)[w.a : w.b]
    W = level_shares(pq)
    policy = result.policy
    e = pq.edges
    rows: dict[str, list] = {k: [] for k in BIN_COLUMNS}
    for j in range(pq.p.size):
        levels = [
            f"{k}" if math.isclose(W[j, k], 1.0, abs_tol=1e-12) else f"{k} x {W[j, k]:.4g}"
            for k in np.flatnonzero(W[j] > 0)
        ]
        notes = []
        if j == 0 and f.tail_lo > 0:
            notes.append(f"left tail {f.tail_lo:.6g} folded in")
        if j == pq.p.size - 1 and f.tail_hi > 0:
            notes.append(f"tail {f.tail_hi:.6g} folded in")
        if w.a + j == 0 and policy.zero_spike == "copy_next":
            notes.append("bins[0] = bins[1]")
        if not levels:
            notes.append("remainder bin: in no level, Q = 0")
        if pq.p[j] > 0 and pq.q[j] == 0:
            notes.append("q = 0: adds 1" if policy.zero_q == "one" else "q = 0: KL is inf")
        elif pq.p[j] == 0:
            notes.append(NO_TERM)
        for key, value in (
            ("bin", w.a + j), ("from", float(e[j])), ("to", float(e[j + 1])),
            ("count", float(c[j])), ("P", float(pq.p_raw[j])), ("levels", ", ".join(levels)),
            ("Q", float(pq.q_raw[j])), ("p", float(pq.p[j])), ("q", float(pq.q[j])),
            ("term", float(pq.terms[j])), ("note", "; ".join(notes)),
        ):  # fmt: skip
            rows[key].append(value)
    return rows


# --------------------------------------------------------------------------------------
# step 6 and the seed's example: why the unnormalised KL likes long windows
# --------------------------------------------------------------------------------------
def scale_penalty(result: SweepResult) -> np.ndarray:
    """Per candidate, ``sum(P) * log(sum(P) / kept mass)``: the part of an unnormalised
    KL that only says "Q is missing the clipped mass".

    With P of total S and Q of total K, ``sum p log(p/q) = S * KL(p/S || q/K) +
    S * log(S / K)``. In the seed Q holds the kept mass only (the tail went into P's last
    bin, not into any level), so K is the kept mass whenever every level that has mass
    also has a non-zero bin to spread it over and no bin pays "+1 where q = 0". The rest
    of the KL is the shape mismatch of the normalised P and Q, never negative.
    Unsigned layouts only (a window [0, i) per candidate).
    """
    if result.policy.layout != "unsigned":
        raise ValueError(f"scale_penalty needs an unsigned layout, got {result.policy.layout!r}")
    c = prepared_counts(result)
    H = np.concatenate([[0.0], np.cumsum(c)])
    with np.errstate(divide="ignore"):
        return H[-1] * np.log(H[-1] / H[result.candidates])


@dataclasses.dataclass(frozen=True)
class SeedExample:
    """The seed's ``__main__``: counts i over 2048 bins, normalised, 128 levels."""

    result: SweepResult
    penalty: np.ndarray  # scale_penalty, aligned with result.candidates
    tail_at_first: float  # share of the mass clipped by the smallest candidate


SEED_RAMP_BINS = 2048
SEED_RAMP_LEVELS = levels_for("seed")  # 128: int8's levels, the seed's own


def seed_example() -> SeedExample:
    ramp = np.arange(SEED_RAMP_BINS, dtype=np.float64)
    result = kl_sweep(ramp / ramp.sum(), target_bins=SEED_RAMP_LEVELS, variant="seed")
    c = result.histogram.counts
    first = int(result.candidates[0])
    tail = float(c[first:].sum() / c.sum())
    return SeedExample(result, scale_penalty(result), tail)


# --------------------------------------------------------------------------------------
# learner questions
# --------------------------------------------------------------------------------------
def quantizer_codes(num_bits: int = 8, unsigned: bool = False) -> tuple[int, int]:
    """(codes, magnitudes) a uniform quantizer with clip amax reaches on [-amax, amax]
    (unsigned: [0, amax]): ``clip(round(x / scale), -qmax, qmax)``, qmax = 127 for int8
    and 255 for uint8 (:func:`calib.methods.max_code`), evaluated on a dense grid of x."""
    qmax = max_code(num_bits, unsigned)
    x = np.linspace(0.0 if unsigned else -1.0, 1.0, 64 * (2 * qmax + 1) + 1)
    codes = np.clip(np.round(x / (1.0 / qmax)), 0 if unsigned else -qmax, qmax)
    return int(np.unique(codes).size), int(np.unique(np.abs(codes)).size)


@dataclasses.dataclass(frozen=True)
class LevelsDemo:
    """One histogram swept with several numbers of levels, judged by an int8 quantizer."""

    demo: str
    levels: tuple[int, ...]
    best: tuple[int, ...]
    amax: tuple[float, ...]
    sqnr_int8_db: tuple[float, ...]  # symmetric int8 (127 levels + 0) at that clip


def levels_demo(demo: str = "Half-normal", levels: tuple[int, ...] = (64, 128, 256)) -> LevelsDemo:
    h = demo_histogram(demo)
    runs = [kl_sweep(h, target_bins=T, variant="seed") for T in levels]
    return LevelsDemo(
        demo,
        tuple(levels),
        tuple(r.best for r in runs),
        tuple(r.amax for r in runs),
        tuple(clip_metrics(h, r.amax, 8, False).sqnr_db for r in runs),
    )


@dataclasses.dataclass(frozen=True)
class SymmetricDemo:
    """GELU-like samples seen as |x| (seed) and as signed x (MXNet's window)."""

    abs_hist: Histogram
    signed_hist: Histogram
    x_min: float
    x_max: float
    amax_abs: float  # the seed on |x|
    amax_signed: float  # MXNet's window around zero on x
    lowest_code_abs: int  # round(x_min / scale) with scale = amax / 127
    lowest_code_signed: int


def symmetric_demo(demo: str = "GELU", bins: int = 2048) -> SymmetricDemo:
    x = demo_samples(demo)
    if x is None:
        raise ValueError(f"demo {demo!r} has no samples; pick one with raw activations")
    abs_hist = Histogram.from_samples(x, bins=bins)
    signed_hist = Histogram.from_samples(x, bins=bins, signed=True)
    amax_abs = kl_sweep(abs_hist, variant="seed", target_bins=levels_for("seed")).amax
    amax_signed = kl_sweep(signed_hist, variant="mxnet", target_bins=levels_for("mxnet")).amax
    lo = float(x.min())

    def code(amax: float) -> int:
        return int(max(-127, round(lo / (amax / 127))))

    return SymmetricDemo(
        abs_hist=abs_hist, signed_hist=signed_hist, x_min=lo, x_max=float(x.max()),
        amax_abs=amax_abs, amax_signed=amax_signed,
        lowest_code_abs=code(amax_abs), lowest_code_signed=code(amax_signed),
    )  # fmt: skip


RELU_BINS = 2048
RELU_RANGE = 6.0  # the half-normal bulk is histogrammed on [0, 6] standard deviations
RELU_FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def relu_histogram(zero_fraction: float, bins: int = RELU_BINS) -> Histogram:
    """ReLU(N(0, 1)) as expected counts (1e6 in the bulk, rounded) with ``zero_fraction``
    of all values exactly zero, in bin 0."""
    if not 0.0 <= zero_fraction < 1.0:
        raise ValueError(f"zero_fraction must be in [0, 1), got {zero_fraction!r}")
    edges = np.linspace(0.0, RELU_RANGE, bins + 1)
    cdf = np.array([math.erf(v / math.sqrt(2.0)) for v in edges])
    counts = np.round(np.diff(cdf) * 1e6)
    counts[0] += round(zero_fraction / (1.0 - zero_fraction) * counts.sum())
    return Histogram(counts, edges)


@dataclasses.dataclass(frozen=True)
class ReluSpike:
    """The chosen clip as the share of exact zeros grows, with and without the fix."""

    fractions: tuple[float, ...]
    seed: tuple[float, ...]  # amax
    seed_fixed: tuple[float, ...]  # the seed with bins[0] = bins[1]
    modelopt: tuple[float, ...]
    seed_best: tuple[int, ...]
    smallest: int  # the seed's smallest candidate (kept bins)


def relu_spike(fractions: tuple[float, ...] = RELU_FRACTIONS) -> ReluSpike:
    seed, fixed, mo, best = [], [], [], []
    T = levels_for("seed")  # int8's 128, the seed's smallest candidate too
    for f in fractions:
        h = relu_histogram(f)
        s = kl_sweep(h, target_bins=T, variant="seed")
        seed.append(s.amax)
        best.append(s.best)
        fixed.append(kl_sweep(h, target_bins=T, variant="seed", zero_spike="copy_next").amax)
        mo.append(kl_sweep(h, target_bins=levels_for("modelopt"), variant="modelopt").amax)
    return ReluSpike(
        fractions=tuple(fractions), seed=tuple(seed), seed_fixed=tuple(fixed),
        modelopt=tuple(mo), seed_best=tuple(best), smallest=T,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SpikeTerms:
    """Bin 0's KL term against the rest, at a few candidates of one ReLU histogram."""

    zero_fraction: float
    candidates: tuple[int, ...]
    bin0: tuple[float, ...]  # p log(p/q) of bin 0, where the zeros are
    rest: tuple[float, ...]  # every other bin's terms
    level0_bins: tuple[float, ...]  # how many bins level 0 spans: i / 128


def spike_terms(zero_fraction: float, candidates: tuple[int, ...]) -> SpikeTerms:
    s = kl_sweep(relu_histogram(zero_fraction), target_bins=levels_for("seed"), variant="seed")
    bin0, rest, width = [], [], []
    for c in candidates:
        pq = s.distributions(int(c))
        bin0.append(float(pq.terms[0]))
        rest.append(float(pq.kl - pq.terms[0]))
        width.append(float(pq.group_edges[1] - pq.group_edges[0]))
    return SpikeTerms(zero_fraction, tuple(candidates), tuple(bin0), tuple(rest), tuple(width))


@dataclasses.dataclass(frozen=True)
class RawVsNormalised:
    """The seed on one histogram given as raw counts and as the same counts / total."""

    raw: SweepResult
    normalised: SweepResult
    total: float
    plus_ones: np.ndarray  # per candidate: bins where p > 0 and q = 0 (each adds 1)


def raw_vs_normalised(counts, target_bins: int = LEARN_TARGET_BINS) -> RawVsNormalised:
    c = np.asarray(counts, dtype=np.float64)
    raw = kl_sweep(c, target_bins=target_bins, variant="seed")
    norm = kl_sweep(c / c.sum(), target_bins=target_bins, variant="seed")
    plus = []
    for cand in raw.candidates:
        pq = raw.distributions(int(cand))
        plus.append(int(((pq.p > 0) & (pq.q == 0)).sum()))
    return RawVsNormalised(raw, norm, float(c.sum()), np.array(plus))
