"""Sweeps memoised by (policy, levels): the variants share many of the mixed policies."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from calib.compare._results import SEED
from calib.histogram import as_histogram
from calib.methods import DEFAULT_NUM_BITS
from calib.policies import Policy, check_variant, levels_for
from calib.sweep import SweepResult, kl_sweep, uses_dense_engine

# --------------------------------------------------------------------------------------
# sweeps, memoised by (policy, levels): variants share many of the mixed policies
# --------------------------------------------------------------------------------------
SweepKey = tuple[Policy, int]


@dataclasses.dataclass(frozen=True)
class SweepOutcome:
    """One sweep a :class:`Sweeper` ran: its result, or why the core refused it.

    Exactly one of ``result`` and ``error`` is set: ``error`` is the ValueError's message.
    """

    result: SweepResult | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.result is None) == (self.error is None):
            raise ValueError("a SweepOutcome holds a result or an error, not both or neither")

    @property
    def amax(self) -> float:
        """The sweep's amax; NaN when it was refused."""
        return math.nan if self.result is None else self.result.amax

    @property
    def note(self) -> str:
        """The core's message when refused; a warning when no candidate has a defined KL
        (the pick is then a fallback); else ""."""
        if self.result is None:
            return self.error or ""
        return _undefined_note(self.result)


class Sweeper:
    """Runs ``kl_sweep`` on one histogram, once per distinct (policy, target_bins).

    ``run`` returns a :class:`SweepOutcome`: the sweep, or the ValueError's message when
    the core refuses it.
    ``prefetch`` runs many at once, on ``workers`` threads (numpy releases the GIL in
    the long array passes, so two threads nearly halve the slow dense sweeps).
    """

    def __init__(self, hist: Any, workers: int = 1) -> None:
        self.hist = as_histogram(hist)
        self.workers = _check_workers(workers)
        self._done: dict[SweepKey, SweepOutcome] = {}

    @property
    def n_sweeps(self) -> int:
        return len(self._done)

    def _sweep(self, key: SweepKey) -> SweepOutcome:
        policy, target_bins = key
        try:
            return SweepOutcome(
                result=kl_sweep(self.hist, target_bins, SEED, **dataclasses.asdict(policy))
            )
        except ValueError as exc:
            return SweepOutcome(error=str(exc))

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

    def run(self, policy: Policy, target_bins: int) -> SweepOutcome:
        key = (policy, int(target_bins))
        if key not in self._done:
            self._done[key] = self._sweep(key)
        return self._done[key]


def _undefined_note(result: SweepResult) -> str:
    """A note for a live sweep whose every KL is undefined (inf), else ""."""
    if result.dead or np.isfinite(result.kl).any():
        return ""
    which = "first" if result.policy.ties == "first" else "last"
    return f"no candidate has a defined KL: the {which} one is taken"


def _cost(key: SweepKey) -> int:
    """A rough order of a sweep's cost: dense paths, then signed (doubled) histograms."""
    p = key[0]
    return 2 * uses_dense_engine(p) + (p.layout == "signed")


def _check_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return workers


def _levels(variant: str, target_bins: Any, num_bits: int = DEFAULT_NUM_BITS) -> int:
    """``target_bins``, or the variant's own levels for ``num_bits`` (``levels_for``)."""
    if target_bins is None:
        return levels_for(variant, num_bits)
    if isinstance(target_bins, bool) or not isinstance(target_bins, (int, np.integer)):
        raise ValueError(f"target_bins must be an integer or None, got {target_bins!r}")
    return int(target_bins)


def _check_variants(variants: Iterable[str]) -> tuple[str, ...]:
    variants = tuple(variants)
    for name in variants:
        check_variant(name, "variants")
    return variants
