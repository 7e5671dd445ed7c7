"""Which group of choices moves a variant's clip away from the seed's, measured both ways."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from calib.compare._results import GROUPS, LEVELS, SEED, Attribution, ChangeGroup, GroupEffect
from calib.compare._sweeper import Sweeper, _check_variants, _levels
from calib.methods import DEFAULT_NUM_BITS
from calib.policies import VARIANTS, Policy, check_num_bits, check_variant


# --------------------------------------------------------------------------------------
# grouping
# --------------------------------------------------------------------------------------
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
    variant: str,
    target_bins: int | None = None,
    seed_target_bins: int | None = None,
    *,
    num_bits: int = DEFAULT_NUM_BITS,
) -> tuple[ChangeGroup, ...]:
    """The variant's differences from the seed, cut into groups that can each be measured.

    Parameters
    ----------
    variant : str
        One of ``VARIANTS``.
    target_bins, seed_target_bins : int, optional
        Levels of the variant and of the seed (each its own for ``num_bits`` when None,
        :func:`calib.policies.levels_for`).
    num_bits : int
        The quantizer the levels are for.

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
    ['window + merge + expand + normalize', 'truncate', 'smoothing', 'zero_q', 'ties',
     'threshold']
    >>> change_groups("ncnn")[0].describe()
    'expand: nonzero → uniform'
    """
    check_variant(variant)
    seed = _choices(VARIANTS[SEED], _levels(SEED, seed_target_bins, num_bits))
    mine = _choices(VARIANTS[variant], _levels(variant, target_bins, num_bits))
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
@dataclasses.dataclass(frozen=True)
class _Plan:
    """The seed's and the variant's choices (Policy fields and levels), and the groups."""

    seed: dict[str, Any]
    mine: dict[str, Any]
    groups: tuple[ChangeGroup, ...]

    def choices(self) -> list[dict[str, Any]]:
        """Every policy an attribution sweeps: the two ends, and each group both ways."""
        out = [self.seed, self.mine]
        for g in self.groups:
            out += [_mix(self.seed, self.mine, g.fields), _mix(self.mine, self.seed, g.fields)]
        return out


def _plan(
    variant: str, target_bins: int | None, seed_target_bins: int | None, num_bits: int
) -> _Plan:
    groups = change_groups(variant, target_bins, seed_target_bins, num_bits=num_bits)
    seed = _choices(VARIANTS[SEED], _levels(SEED, seed_target_bins, num_bits))
    mine = _choices(VARIANTS[variant], _levels(variant, target_bins, num_bits))
    return _Plan(seed=seed, mine=mine, groups=groups)


def attribute(
    hist: Any,
    variant: str,
    target_bins: int | None = None,
    seed_target_bins: int | None = None,
    *,
    num_bits: int = DEFAULT_NUM_BITS,
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
        Levels of the variant and of the seed; each its own for ``num_bits`` when None.
    num_bits : int
        The quantizer the default levels are for (:func:`calib.policies.levels_for`).
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
    >>> from calib import Histogram
    >>> edges = np.linspace(0.0, 6.0, 513)
    >>> counts = np.round(1e5 * np.exp(-(edges[:-1] ** 2) / 2))
    >>> counts[0] = counts.sum()
    >>> a = attribute(Histogram(counts, edges), "modelopt")
    >>> bool(a.amax > a.seed_amax), a.effects[0].group.name
    (True, 'zero_spike')
    """
    sw = sweeper if sweeper is not None else Sweeper(hist)
    plan = _plan(variant, target_bins, seed_target_bins, check_num_bits(num_bits))
    seed, mine, groups = plan.seed, plan.mine, plan.groups
    sw.prefetch(_build(c) for c in plan.choices())
    s_run, v_run = sw.run(*_build(seed)), sw.run(*_build(mine))
    notes = [f"{who}: {r.note}" for who, r in ((SEED, s_run), (variant, v_run)) if r.note]
    s_val, v_val = s_run.amax, v_run.amax
    gap = v_val - s_val

    effects = []
    for g in groups:
        measured, why = [], []
        ways = ((seed, mine, f"seed + {g.name}"), (mine, seed, f"{variant} - {g.name}"))
        for base, other, label in ways:
            r = sw.run(*_build(_mix(base, other, g.fields)))
            if r.note:
                why.append(f"{label}: {r.note}")
            measured.append(r.amax)
        a_with, a_without = measured
        effects.append(
            GroupEffect(
                group=g,
                gap=gap,
                amax_with=a_with,
                amax_without=a_without,
                moved_with=a_with - s_val,
                moved_back=v_val - a_without,
                note="; ".join(why),
            )
        )
    order = sorted(range(len(effects)), key=lambda k: (-effects[k].weight, k))
    if sw.hist.is_dead:
        notes.append("dead layer: every count is zero, every variant answers amax 0")
    elif not groups:
        notes.append("this is the seed")
    elif gap == 0:
        notes.append("the same amax as the seed: any moves below cancel out")
    return Attribution(
        variant=variant,
        target_bins=mine[LEVELS],
        seed_target_bins=seed[LEVELS],
        seed_amax=s_val,
        amax=v_val,
        effects=tuple(effects[k] for k in order),
        note="; ".join(notes),
    )


# --------------------------------------------------------------------------------------
# the whole comparison
# --------------------------------------------------------------------------------------
def attribute_all(
    hist: Any,
    target_bins: int | None = None,
    *,
    variants: Iterable[str] = tuple(VARIANTS),
    num_bits: int = DEFAULT_NUM_BITS,
    workers: int = 1,
    sweeper: Sweeper | None = None,
) -> dict[str, Attribution]:
    """:func:`attribute` for every variant but the seed, sharing (and prefetching) sweeps.

    ``target_bins`` is given to every variant and to the seed alike; None lets each use
    its own levels for ``num_bits``.
    """
    variants = _check_variants(variants)
    bits = check_num_bits(num_bits)
    sw = sweeper if sweeper is not None else Sweeper(hist, workers)
    explained = [v for v in variants if v != SEED]
    sw.prefetch(
        _build(c) for v in explained for c in _plan(v, target_bins, target_bins, bits).choices()
    )
    return {
        v: attribute(sw.hist, v, target_bins, target_bins, num_bits=bits, sweeper=sw)
        for v in explained
    }
