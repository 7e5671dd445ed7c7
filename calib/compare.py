"""Every variant and method on one histogram, and which policy moves each variant off the seed.

The KL variants differ from the seed in a handful of policies (``Policy.changes_from``) and,
for MXNet, in the number of levels. To say *why* a variant clips elsewhere, its differences
are cut into groups and each group is measured both ways:

    with    = amax(seed + only this group of V's choices)     moved  = with - amax(seed)
    without = amax(V with only this group set back to seed's)  moved  = amax(V) - without

Each move is also given as a share of the gap ``amax(V) - amax(seed)``. When the groups do
not interact the two shares agree and add up to 1; when they interact (one choice matters
only in the presence of another) they disagree, and both are shown.

All amaxes are compared in activation units: the variants count their candidates
differently (kept bins from 0, or bins on each side of a zero bin of a histogram mirrored
from |x| into 2N signed bins), so a candidate number means nothing across layouts.

The groups
----------
``GROUPS`` lists the choices, each a set of Policy fields that make one decision (the
rows of the variant table in DESIGN.md); ``"levels"`` is ``target_bins``, which is not a
Policy field. Some choices cannot be measured alone, because ``Policy`` refuses the mixed
policy; :func:`change_groups` joins them, following the validation rules in
``calib/policies.py``:

- ``layout`` and ``candidates`` are one group ("window"): signed goes with half_window.
- ``merge="fractional"`` needs the unsigned layout, so a signed variant's window and merge
  join ("window + merge", MXNet and ONNX Runtime).
- ``expand="fill_all"`` needs a whole-bin merge, and ``remainder="orphan"`` needs
  ``merge="whole"`` (``remainder`` is in the merge group), so ONNX Runtime's expand joins
  too ("window + merge + expand").

Joining is done by trying: a group whose "seed + group" or "V - group" policy is refused is
merged with the fewest other groups that make both policies valid (the first such set in
``GROUPS`` order). It depends on the policies only, never on the histogram. The threshold
rule is left on its own: every layout accepts both rules, and alone it shows the half bin
it costs. A measurement the sweep itself refuses for this histogram (too few bins for the
levels, say) is left undefined with the sweep's message as a note.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

import numpy as np

from calib.histogram import Histogram, as_histogram
from calib.methods import DEFAULT_NUM_BITS, METHODS, calibrate, clip_metrics
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS, Policy
from calib.sweep import SweepResult, kl_sweep

__all__ = [
    "GROUPS",
    "Attribution",
    "ChangeGroup",
    "Comparison",
    "GroupEffect",
    "PolicyGroup",
    "Row",
    "Sweeper",
    "attribute",
    "attribute_all",
    "change_groups",
    "compare",
    "histogram_digest",
]

SEED = "seed"
LEVELS = "target_bins"  # not a Policy field: the number of levels, measured like one


@dataclasses.dataclass(frozen=True)
class PolicyGroup:
    """One decision of a calibrator: a name, the fields it sets, what it means."""

    name: str
    fields: tuple[str, ...]
    what: str


GROUPS: tuple[PolicyGroup, ...] = (
    PolicyGroup("levels", (LEVELS,), "how many quantized levels T the kept bins merge into"),
    PolicyGroup(
        "window",
        ("layout", "candidates", "start_bin", "stride"),
        "the histogram's layout (|x|, or signed mirrored from |x|) and which clips are tried",
    ),
    PolicyGroup("zero_spike", ("zero_spike",), "what happens to the spike of exact zeros"),
    PolicyGroup("merge", ("merge", "remainder"), "how the kept bins are cut into levels"),
    PolicyGroup(
        "expand", ("expand", "nonzero_from"), "how a level's mass is spread back over its bins"
    ),
    PolicyGroup("truncate", ("truncate",), "whether level masses and Q are cast to integers"),
    PolicyGroup("smoothing", ("smoothing", "eps"), "eps added to empty bins of P and Q"),
    PolicyGroup("zero_q", ("zero_q",), "the KL term where P > 0 and Q == 0"),
    PolicyGroup("normalize", ("normalize",), "whether P and Q are scaled to sum 1"),
    PolicyGroup("ties", ("ties",), "the first or the last of equal minima"),
    PolicyGroup("threshold", ("threshold",), "where in the last kept bin the clip is put"),
    PolicyGroup("precision", ("precision",), "float64, or ONNX Runtime's own float32 arithmetic"),
)
_FIELDS = {f.name for f in dataclasses.fields(Policy)} | {LEVELS}
assert {f for g in GROUPS for f in g.fields} == _FIELDS, "every choice is in one group"


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ChangeGroup:
    """Some of a variant's differences from the seed, measured together.

    ``changes`` maps each field to (seed's value, the variant's value); ``target_bins``
    stands for the number of levels.
    """

    name: str  # "smoothing", or joined groups: "window + merge"
    changes: Mapping[str, tuple[Any, Any]]
    what: str = ""  # what the group decides (GROUPS' descriptions, joined)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.changes)

    def describe(self) -> str:
        """``"layout: unsigned → signed; candidates: kept_bins → half_window"``."""
        return "; ".join(f"{k}: {a} → {b}" for k, (a, b) in self.changes.items())


@dataclasses.dataclass(frozen=True)
class GroupEffect:
    """How far one group moves the amax, both ways (NaN where a measurement is refused).

    Attributes
    ----------
    group : ChangeGroup
    gap : float
        ``variant_amax - seed_amax``, the distance to explain.
    amax_with : float
        amax of the seed with only this group of the variant's choices applied.
    amax_without : float
        amax of the variant with only this group set back to the seed's.
    moved_with, moved_back : float
        ``amax_with - seed_amax`` and ``variant_amax - amax_without``.
    note : str
        Why a measurement is missing, or "".
    """

    group: ChangeGroup
    gap: float
    amax_with: float
    amax_without: float
    moved_with: float
    moved_back: float
    note: str = ""

    @property
    def share_with(self) -> float:
        """``moved_with / gap``; NaN when the gap is 0 or a value is undefined."""
        return _share(self.moved_with, self.gap)

    @property
    def share_back(self) -> float:
        """``moved_back / gap``; NaN when the gap is 0 or a value is undefined."""
        return _share(self.moved_back, self.gap)

    @property
    def weight(self) -> float:
        """The ranking key: how much of the gap this group carries.

        The mean of the defined shares, each capped to [-1, 1]: a group that crosses the
        whole gap on its own counts 1 however far it overshoots (a choice that matters only
        in the absence of another can move the seed far past the variant), one that pulls
        the other way counts negative. When the gap is 0 or undefined there are no shares,
        and the key is the mean size of the defined moves. 0 when nothing is defined.
        """
        shares = [s for s in (self.share_with, self.share_back) if math.isfinite(s)]
        if shares:
            return sum(min(1.0, max(-1.0, s)) for s in shares) / len(shares)
        moves = [abs(m) for m in (self.moved_with, self.moved_back) if math.isfinite(m)]
        return sum(moves) / len(moves) if moves else 0.0


@dataclasses.dataclass(frozen=True)
class Attribution:
    """Why one variant's amax differs from the seed's: its groups, largest effect first."""

    variant: str
    target_bins: int
    seed_target_bins: int
    seed_amax: float
    amax: float
    effects: tuple[GroupEffect, ...]
    note: str = ""

    @property
    def gap(self) -> float:
        return self.amax - self.seed_amax

    def summary(self) -> str:
        """One or two sentences: the two clips, and the group that carries the gap."""
        v = self.variant
        if not (math.isfinite(self.seed_amax) and math.isfinite(self.amax)):
            return f"{v} and the seed cannot both be swept here: {self.note}"
        if self.seed_amax == self.amax == 0:
            return self.note
        head = f"{v} clips at {self.amax:.4g}, the seed at {self.seed_amax:.4g}"
        if not self.effects:
            return head + "."
        if self.gap == 0:
            movers = [e.group.name for e in self.effects if e.weight > 0]
            if not movers:
                return head + ": the same clip, and none of its choices moves it here."
            return (
                head + ": the same clip, though " + ", ".join(movers)
                + " would move it; their moves cancel out."
            )  # fmt: skip
        top = self.effects[0]
        if top.weight < 0.1:
            return (
                f"{head} ({self.gap:+.4g}). No group of its choices covers a tenth of the gap "
                "on its own: it takes several of them together."
            )
        parts = []
        if math.isfinite(top.share_with):
            parts.append(f"alone on the seed it goes {top.share_with:.0%} of the way")
        if math.isfinite(top.share_back):
            parts.append(f"taken out of {v} it comes {top.share_back:.0%} of the way back")
        text = (
            f"{head} ({self.gap:+.4g}). The largest part is {top.group.name} "
            f"({top.group.describe()}): " + "; ".join(parts) + "."
        )
        w, b = top.share_with, top.share_back
        if math.isfinite(w) and math.isfinite(b):
            if w > 0.5 and abs(b) < 0.1:
                text += f" Another of {v}'s choices does the same job, so taking it out alone "
                text += "changes little."
            elif b > 0.5 and abs(w) < 0.1:
                text += f" It matters only together with another of {v}'s choices."
        return text

    def table(self) -> list[dict[str, Any]]:
        """One record per group, in ranking order, for a table widget."""
        return [
            {
                "group": e.group.name,
                "changes (seed → variant)": e.group.describe(),
                "what it decides": e.group.what,
                "seed + group: amax": e.amax_with,
                "seed + group: share of gap": e.share_with,
                "variant − group: amax": e.amax_without,
                "variant − group: share of gap": e.share_back,
                "note": e.note,
            }
            for e in self.effects
        ]


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the comparison table; NaN where a value is undefined."""

    name: str
    kind: str  # "variant" or "method"
    amax: float
    ratio: float  # amax / max|x|
    clipped: float  # share of the mass beyond amax
    kl: float  # the variant's own minimum KL (each in its own normalisation); NaN for methods
    sqnr_db: float
    target_bins: int | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Everything the Compare page shows for one histogram."""

    histogram: Histogram
    max_abs: float
    rows: tuple[Row, ...]
    sweeps: Mapping[str, SweepResult]  # variant -> its sweep (variants that ran)
    attributions: Mapping[str, Attribution]  # every variant but the seed (explain=True)
    n_sweeps: int  # distinct sweeps run, attribution included

    @property
    def dead(self) -> bool:
        return self.histogram.is_dead

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def table(self) -> list[dict[str, Any]]:
        """One record per row, for a table widget (NaN where a value is undefined)."""
        return [
            {
                "name": r.name,
                "kind": r.kind,
                "target bins": r.target_bins,
                "amax": r.amax,
                "amax / max": r.ratio,
                "clipped mass": r.clipped,
                "KL (own)": r.kl,
                "SQNR dB": r.sqnr_db,
                "note": r.note,
            }
            for r in self.rows
        ]


# --------------------------------------------------------------------------------------
# sweeps, memoised by (policy, levels): variants share many of the mixed policies
# --------------------------------------------------------------------------------------
SweepKey = tuple[Policy, int]


class Sweeper:
    """Runs ``kl_sweep`` on one histogram, once per distinct (policy, target_bins).

    ``run`` returns the sweep, or the ValueError's message when the core refuses it.
    ``prefetch`` runs many at once, on ``workers`` threads (numpy releases the GIL in
    the long array passes, so two threads nearly halve the slow dense sweeps).
    """

    def __init__(self, hist: Any, workers: int = 1) -> None:
        self.hist = as_histogram(hist)
        self.workers = _check_workers(workers)
        self._done: dict[SweepKey, SweepResult | str] = {}

    @property
    def n_sweeps(self) -> int:
        return len(self._done)

    def _sweep(self, key: SweepKey) -> SweepResult | str:
        policy, target_bins = key
        try:
            return kl_sweep(self.hist, target_bins, SEED, **dataclasses.asdict(policy))
        except ValueError as exc:
            return str(exc)

    def prefetch(self, keys: Iterable[SweepKey]) -> None:
        todo = list(dict.fromkeys(k for k in keys if k not in self._done))
        if self.workers == 1 or len(todo) < 2:
            results = map(self._sweep, todo)
        else:
            # the slow sweeps first, so that no thread is left with one at the end
            todo.sort(key=_cost, reverse=True)
            with ThreadPoolExecutor(min(self.workers, len(todo))) as pool:
                results = list(pool.map(self._sweep, todo))
        self._done.update(zip(todo, results, strict=True))

    def run(self, policy: Policy, target_bins: int) -> SweepResult | str:
        key = (policy, int(target_bins))
        if key not in self._done:
            self._done[key] = self._sweep(key)
        return self._done[key]

    def measure(self, policy: Policy, target_bins: int) -> tuple[float, str]:
        """The sweep's amax and a note: NaN and the core's message when it is refused;
        a warning when no candidate has a defined KL (the pick is then a fallback)."""
        r = self.run(policy, target_bins)
        if isinstance(r, str):
            return math.nan, r
        return r.amax, _undefined_note(r)


def _undefined_note(result: SweepResult) -> str:
    """A note for a live sweep whose every KL is undefined (inf), else ""."""
    if result.dead or np.isfinite(result.kl).any():
        return ""
    which = "first" if result.policy.ties == "first" else "last"
    return f"no candidate has a defined KL: the {which} one is taken"


def _cost(key: SweepKey) -> int:
    """A rough order of a sweep's cost: dense paths, then signed (doubled) histograms."""
    p = key[0]
    dense = p.smoothing == "mxnet" and (p.merge == "fractional" or p.expand == "uniform")
    return 2 * dense + (p.layout == "signed")


def _check_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return workers


# --------------------------------------------------------------------------------------
# grouping
# --------------------------------------------------------------------------------------
def _levels(variant: str, target_bins: Any) -> int:
    if target_bins is None:
        return DEFAULT_TARGET_BINS[variant]
    if isinstance(target_bins, bool) or not isinstance(target_bins, (int, np.integer)):
        raise ValueError(f"target_bins must be an integer or None, got {target_bins!r}")
    return int(target_bins)


def _choices(policy: Policy, levels: int) -> dict[str, Any]:
    return {**dataclasses.asdict(policy), LEVELS: levels}


def _build(choices: dict[str, Any]) -> tuple[Policy, int]:
    """(Policy, levels) from a dict of choices; ValueError if Policy refuses them."""
    fields = {k: v for k, v in choices.items() if k != LEVELS}
    return Policy(**fields), int(choices[LEVELS])


def _valid(choices: dict[str, Any]) -> bool:
    try:
        _build(choices)
    except ValueError:
        return False
    return True


def _mix(base: dict[str, Any], other: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """``base`` with ``fields`` taken from ``other``."""
    return {**base, **{f: other[f] for f in fields}}


def change_groups(
    variant: str, target_bins: int | None = None, seed_target_bins: int | None = None
) -> tuple[ChangeGroup, ...]:
    """The variant's differences from the seed, cut into groups that can each be measured.

    Parameters
    ----------
    variant : str
        One of ``VARIANTS``.
    target_bins, seed_target_bins : int, optional
        Levels of the variant and of the seed (each its own default when None).

    Returns
    -------
    tuple of ChangeGroup
        In ``GROUPS`` order. Only groups where the variant differs appear; groups that
        ``Policy`` refuses to apply alone to the seed, or to revert alone from the variant,
        are joined with the fewest others that make both policies valid (see the module
        docstring). Empty for the seed itself.

    Examples
    --------
    >>> [g.name for g in change_groups("onnxruntime")]  # doctest: +NORMALIZE_WHITESPACE
    ['window + merge + expand', 'truncate', 'smoothing', 'zero_q', 'normalize',
     'threshold']
    >>> change_groups("ncnn")[0].describe()
    'expand: nonzero → uniform'
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    seed = _choices(VARIANTS[SEED], _levels(SEED, seed_target_bins))
    mine = _choices(VARIANTS[variant], _levels(variant, target_bins))
    parts = [
        (g.name, tuple(f for f in g.fields if seed[f] != mine[f]))
        for g in GROUPS
        if any(seed[f] != mine[f] for f in g.fields)
    ]

    def measurable(fields: tuple[str, ...]) -> bool:
        return _valid(_mix(seed, mine, fields)) and _valid(_mix(mine, seed, fields))

    def fields_of(members: Iterable[int]) -> tuple[str, ...]:
        return tuple(f for j in members for f in parts[j][1])

    i = 0
    while i < len(parts):
        if measurable(parts[i][1]):
            i += 1
            continue
        # join the fewest other groups that make it measurable; all of them together
        # always are (applying everything is the variant, reverting everything the seed)
        others = [j for j in range(len(parts)) if j != i]
        join = next(
            js
            for size in range(1, len(others) + 1)
            for js in itertools.combinations(others, size)
            if measurable(fields_of([i, *js]))
        )
        members = sorted([i, *join])
        merged = (" + ".join(parts[j][0] for j in members), fields_of(members))
        parts = [p for j, p in enumerate(parts) if j not in members]
        parts.insert(members[0], merged)
        i = members[0]  # look at the joined group again
    what = {g.name: g.what for g in GROUPS}
    return tuple(
        ChangeGroup(
            name,
            MappingProxyType({f: (seed[f], mine[f]) for f in fields}),
            "; ".join(what[part] for part in name.split(" + ")),
        )
        for name, fields in parts
    )


# --------------------------------------------------------------------------------------
# attribution
# --------------------------------------------------------------------------------------
def _plan(variant: str, target_bins: int | None, seed_target_bins: int | None):
    """The seed's and the variant's choices, and the variant's groups."""
    groups = change_groups(variant, target_bins, seed_target_bins)  # checks the names
    seed = _choices(VARIANTS[SEED], _levels(SEED, seed_target_bins))
    mine = _choices(VARIANTS[variant], _levels(variant, target_bins))
    return seed, mine, groups


def _planned_choices(seed, mine, groups) -> list[dict[str, Any]]:
    """Every policy an attribution sweeps: the two ends, and each group both ways."""
    out = [seed, mine]
    for g in groups:
        out += [_mix(seed, mine, g.fields), _mix(mine, seed, g.fields)]
    return out


def _share(move: float, gap: float) -> float:
    return move / gap if gap != 0 and math.isfinite(move) else math.nan


def attribute(
    hist: Any,
    variant: str,
    target_bins: int | None = None,
    seed_target_bins: int | None = None,
    *,
    sweeper: Sweeper | None = None,
) -> Attribution:
    """Which of a variant's choices move its amax away from the seed's, on one histogram.

    Parameters
    ----------
    hist : Histogram or array_like
        The histogram every sweep reads (each variant puts it in its own layout).
    variant : str
        One of ``VARIANTS``.
    target_bins, seed_target_bins : int, optional
        Levels of the variant and of the seed; each its own default when None.
    sweeper : Sweeper, optional
        Share sweeps with other calls on the same histogram.

    Returns
    -------
    Attribution
        ``effects`` sorted by :attr:`GroupEffect.weight`, largest first (``GROUPS`` order
        among equals): the groups that carry the variant's answer away from the seed's
        first, those that pull it back last.

    Notes
    -----
    With ``s`` the seed's amax, ``v`` the variant's and ``gap = v - s``, for each group g::

        moved_with = amax(seed + g) - s          share_with = moved_with / gap
        moved_back = v - amax(variant - g)       share_back = moved_back / gap

    Applying every group to the seed is the variant itself and reverting every group is
    the seed, so a variant with a single group has both shares equal to 1. A sweep the
    core refuses leaves its amax NaN and its message in ``note``; a dead histogram gives
    amax 0 everywhere and no shares.

    Examples
    --------
    A ReLU layer: half the values are exact zeros. ModelOpt's ``bins[0] = bins[1]`` is
    what lifts its clip above the seed's:

    >>> import numpy as np
    >>> edges = np.linspace(0.0, 6.0, 513)
    >>> counts = np.round(1e5 * np.exp(-(edges[:-1] ** 2) / 2))
    >>> counts[0] = counts.sum()
    >>> a = attribute(Histogram(counts, edges), "modelopt")
    >>> bool(a.amax > a.seed_amax), a.effects[0].group.name
    (True, 'zero_spike')
    """
    sw = sweeper if sweeper is not None else Sweeper(hist)
    seed, mine, groups = _plan(variant, target_bins, seed_target_bins)
    sw.prefetch(_build(c) for c in _planned_choices(seed, mine, groups))
    s_val, s_note = sw.measure(*_build(seed))
    v_val, v_note = sw.measure(*_build(mine))
    notes = [f"{who}: {note}" for who, note in ((SEED, s_note), (variant, v_note)) if note]
    gap = v_val - s_val

    effects = []
    for g in groups:
        measured, why = [], []
        ways = ((seed, mine, f"seed + {g.name}"), (mine, seed, f"{variant} - {g.name}"))
        for base, other, label in ways:
            a, note = sw.measure(*_build(_mix(base, other, g.fields)))
            if note:
                why.append(f"{label}: {note}")
            measured.append(a)
        a_with, a_without = measured
        moved_with, moved_back = a_with - s_val, v_val - a_without
        effects.append(
            GroupEffect(g, gap, a_with, a_without, moved_with, moved_back, "; ".join(why))
        )  # fmt: skip
    order = sorted(range(len(effects)), key=lambda k: (-effects[k].weight, k))
    if sw.hist.is_dead:
        notes.append("dead layer: every count is zero, every variant answers amax 0")
    elif not groups:
        notes.append("this is the seed")
    elif gap == 0:
        notes.append("the same amax as the seed: any moves below cancel out")
    return Attribution(
        variant,
        mine[LEVELS],
        seed[LEVELS],
        s_val,
        v_val,
        tuple(effects[k] for k in order),
        "; ".join(notes),
    )


# --------------------------------------------------------------------------------------
# the whole comparison
# --------------------------------------------------------------------------------------
def attribute_all(
    hist: Any,
    target_bins: int | None = None,
    *,
    variants: Iterable[str] = tuple(VARIANTS),
    workers: int = 1,
    sweeper: Sweeper | None = None,
) -> dict[str, Attribution]:
    """:func:`attribute` for every variant but the seed, sharing (and prefetching) sweeps.

    ``target_bins`` is given to every variant and to the seed alike; None lets each use
    its own default.
    """
    variants = _check_variants(variants)
    sw = sweeper if sweeper is not None else Sweeper(hist, workers)
    explained = [v for v in variants if v != SEED]
    sw.prefetch(
        _build(c) for v in explained for c in _planned_choices(*_plan(v, target_bins, target_bins))
    )
    return {v: attribute(sw.hist, v, target_bins, target_bins, sweeper=sw) for v in explained}


def _check_variants(variants: Iterable[str]) -> tuple[str, ...]:
    variants = tuple(variants)
    for name in variants:
        if name not in VARIANTS:
            raise ValueError(f"variants must be among {tuple(VARIANTS)}, got {name!r}")
    return variants


def _row(name, kind, h, amax, kl, target_bins, num_bits, note="") -> Row:
    max_abs = h.max_abs
    ratio = amax / max_abs if max_abs > 0 and math.isfinite(amax) else math.nan
    if h.is_dead or not math.isfinite(amax) or amax <= 0:
        return Row(name, kind, amax, ratio, math.nan, kl, math.nan, target_bins, note)
    m = clip_metrics(h, amax, num_bits)
    return Row(name, kind, amax, ratio, m.clipped_fraction, kl, m.sqnr_db, target_bins, note)


def compare(
    hist: Any,
    target_bins: int | None = None,
    *,
    variants: Iterable[str] = tuple(VARIANTS),
    methods: Iterable[str] = METHODS,
    num_bits: int = DEFAULT_NUM_BITS,
    explain: bool = True,
    workers: int = 1,
) -> Comparison:
    """Every variant's KL sweep, every method, and the attribution of each variant's gap.

    Parameters
    ----------
    hist : Histogram or array_like
    target_bins : int, optional
        Levels for every variant (and the entropy method); None gives each its own default
        (``DEFAULT_TARGET_BINS``: 255 for MXNet, 128 for the others).
    variants, methods : iterables of str
        Which rows to compute (names from ``VARIANTS`` and ``METHODS``).
    num_bits : int
        The quantizer the metrics (and the "mse" method) assume.
    explain : bool
        Also attribute every variant's gap to the seed (:func:`attribute`).
    workers : int
        Threads for the sweeps (see :class:`Sweeper`); the answers do not depend on it.

    Returns
    -------
    Comparison
        Variant rows first, then method rows. The metrics are ``clip_metrics`` of the
        input histogram at each amax; ``kl`` is the variant's own minimum (NaN where it is
        undefined, and for max, percentile and mse). A row that cannot run has NaN values
        and the core's message as its note.
    """
    h = as_histogram(hist)
    variants, methods = _check_variants(variants), tuple(methods)
    sw = Sweeper(h, workers)
    # the attributions' sweeps include every variant's own: run them all in one batch
    attributions = attribute_all(h, target_bins, variants=variants, sweeper=sw) if explain else {}
    sw.prefetch((VARIANTS[v], _levels(v, target_bins)) for v in variants)
    rows, sweeps = [], {}
    for name in variants:
        T = _levels(name, target_bins)
        r = sw.run(VARIANTS[name], T)
        if isinstance(r, str):
            rows.append(Row(name, "variant", *[math.nan] * 5, T, r))
            continue
        sweeps[name] = r
        kl = math.nan if r.dead else _finite_or_nan(r.min_kl)
        rows.append(_row(name, "variant", h, r.amax, kl, T, num_bits, _undefined_note(r)))
    for method in methods:
        extra = {} if method != "entropy" or target_bins is None else {LEVELS: target_bins}
        try:
            c = calibrate(h, method, num_bits, **extra)
        except ValueError as exc:
            rows.append(Row(method, "method", *[math.nan] * 5, extra.get(LEVELS), str(exc)))
            continue
        kl, T, note = math.nan, None, ""
        if method == "entropy" and not c.dead:
            kl, T, note = (
                _finite_or_nan(c.detail.min_kl),
                c.detail.target_bins,
                _undefined_note(c.detail),
            )
        rows.append(_row(method, "method", h, c.amax, kl, T, num_bits, note))
    return Comparison(
        h, h.max_abs, tuple(rows), MappingProxyType(sweeps), MappingProxyType(attributions),
        sw.n_sweeps,
    )  # fmt: skip


def _finite_or_nan(x: float) -> float:
    """NaN for an infinite KL: no candidate had a defined one."""
    return float(x) if math.isfinite(x) else math.nan


def histogram_digest(hist: Histogram) -> str:
    """A short digest of a histogram's counts and edges: a primitive cache key."""
    d = hashlib.blake2b(digest_size=16)
    for a in (hist.counts, hist.edges):
        d.update(str(a.dtype).encode())
        d.update(np.ascontiguousarray(a).tobytes())
    return d.hexdigest()
