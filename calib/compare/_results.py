"""The records a comparison returns: policy groups, their effects, attributions and rows."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from calib.histogram import Histogram
from calib.sweep import SweepResult

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


def _share(move: float, gap: float) -> float:
    return move / gap if gap != 0 and math.isfinite(move) else math.nan
