"""The records a comparison returns: policy groups, their effects, attributions and rows."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from calib.histogram import Histogram
from calib.methods import Calibration
from calib.numbers import NOT_APPLICABLE, fmt, fmt_share
from calib.spec import Spec
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
    PolicyGroup(
        "ties",
        ("ties", "start_kl"),
        "which minimum is chosen: the first or the last of equal minima, and the KL the "
        "search starts below (the seed's 1e13)",
    ),
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
            parts.append(f"alone on the seed it goes {fmt_share(top.share_with)} of the way")
        if math.isfinite(top.share_back):
            parts.append(f"taken out of {v} it comes {fmt_share(top.share_back)} of the way back")
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
        past = []
        if math.isfinite(w) and w > 1.005:
            past.append(
                f"applied alone to the seed, it puts the clip at {fmt(top.amax_with)}, past "
                f"{v}'s {fmt(self.amax)}"
            )
        if math.isfinite(b) and b > 1.005:
            past.append(
                f"taken out alone, {v} clips at {fmt(top.amax_without)}, past the seed's "
                f"{fmt(self.seed_amax)}"
            )
        if past:
            text += (
                " More than 100% means the group alone moves the clip further than the gap: "
                + "; ".join(past)
                + f". {v}'s other choices pull it back part of the way."
            )
        if any(math.isfinite(s) and s < -0.005 for s in (w, b)):
            text += " A negative share is a move the other way, widening the gap."
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

    def display_table(self) -> list[dict[str, str]]:
        """:meth:`table` as a reader sees it (``calib.numbers.fmt``; shares in %, "n/a"
        where a measurement is undefined), in fewer columns: what a group decides is in
        its ``what`` and the page's help, not a column that pushes the numbers off a
        1440-pixel screen."""

        def share(x: float) -> str:
            return fmt(None if not math.isfinite(x) else 100 * x, 3, unit="%")

        return [
            {
                "group": e.group.name,
                "changes (seed → variant)": e.group.describe(),
                "seed + group: amax": fmt(e.amax_with, 6),
                "share of gap": share(e.share_with),
                "variant − group: amax": fmt(e.amax_without, 6),
                "share back": share(e.share_back),
                "note": e.note or e.group.what,
            }
            for e in self.effects
        ]


@dataclasses.dataclass(frozen=True)
class Spread:
    """Where the variants that ran clip: ``lo`` and ``hi`` (nan when none ran), the
    variants that ran and those the core refused here."""

    lo: float
    hi: float
    ran: tuple[str, ...]
    failed: tuple[str, ...]

    def headline(self) -> str:
        """ "6.395 to 195.5", "seed only: 65", or "none" for a metric's value."""
        if not self.ran:
            return "none"
        if len(self.ran) == 1:
            return f"{self.ran[0]} only: {fmt(self.lo)}"
        return f"{fmt(self.lo)} to {fmt(self.hi)}"


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the comparison table: a label, its :class:`calib.Calibration` (the one
    record of a clip and its metrics) and a note; NaN where a value is undefined.

    ``amax``, ``clipped``, ``kl``, ``sqnr_db`` and ``target_bins`` are read off the
    calibration; the clip's metrics are shown for a positive clip only.
    """

    name: str
    kind: str  # "variant" or "method"
    calibration: Calibration
    max_abs: float  # max |x| of the histogram, for the ratio
    note: str = ""

    @property
    def spec(self) -> Spec:
        return self.calibration.spec

    @property
    def amax(self) -> float:
        return self.calibration.amax

    @property
    def ratio(self) -> float:
        """amax / max|x| (:meth:`calib.Calibration.ratio_to`)."""
        return self.calibration.ratio_to(self.max_abs)

    @property
    def _clips(self) -> bool:
        a = self.amax
        return not self.calibration.dead and math.isfinite(a) and a > 0

    @property
    def clipped(self) -> float:
        """Share of the mass beyond amax."""
        return self.calibration.clipped if self._clips else math.nan

    @property
    def sqnr_db(self) -> float:
        return self.calibration.sqnr_db if self._clips else math.nan

    @property
    def kl(self) -> float:
        """The variant's own minimum KL (each in its own normalisation); NaN for methods and
        where no candidate has a defined one."""
        kl = self.calibration.kl
        return kl if math.isfinite(kl) else math.nan

    @property
    def target_bins(self) -> int | None:
        """The KL sweep's levels (None for max, percentile and mse)."""
        return self.calibration.spec.target_bins


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

    def spread(self) -> Spread:
        """Where the variants clip, and which of them could not run here."""
        rows = [r for r in self.rows if r.kind == "variant"]
        ran = [r for r in rows if math.isfinite(r.amax)]
        amax = [r.amax for r in ran]
        return Spread(
            lo=min(amax, default=math.nan), hi=max(amax, default=math.nan),
            ran=tuple(r.name for r in ran),
            failed=tuple(r.name for r in rows if not math.isfinite(r.amax)),
        )  # fmt: skip

    def widest_gap(self) -> str | None:
        """The variant (not the seed) whose clip is furthest from the seed's, as a ratio;
        None when the seed did not run or no variant moves away from it."""
        amax = {r.name: r.amax for r in self.rows if r.kind == "variant"}
        seed = amax.get(SEED, math.nan)
        if not (math.isfinite(seed) and seed > 0):
            return None
        gaps = {
            v: abs(math.log(a / seed))
            for v, a in amax.items()
            if v != SEED and math.isfinite(a) and a > 0
        }
        best = max(gaps, key=gaps.get, default=None)
        return best if best is not None and gaps[best] > 0 else None

    def display_table(self) -> list[dict[str, str]]:
        """:meth:`table` as a reader sees it: numbers through ``calib.numbers.fmt``, the
        clipped mass in % as on every page, and "—" for what a row does not have (the
        levels and the KL of max, percentile and mse), never a raw None."""
        out = []
        for r in self.rows:
            has_kl = r.kind == "variant" or r.target_bins is not None
            out.append(
                {
                    "name": r.name,
                    "kind": r.kind,
                    "target bins": NOT_APPLICABLE if r.target_bins is None else str(r.target_bins),
                    "amax": fmt(r.amax, 6),
                    "amax / max": fmt(r.ratio, 3),
                    "clipped %": fmt(None if math.isnan(r.clipped) else 100 * r.clipped, 3),
                    "KL (own)": fmt(r.kl, 4) if has_kl else NOT_APPLICABLE,
                    "SQNR dB": fmt(r.sqnr_db, 2, fixed=True),
                    "note": r.note,
                }
            )
        return out

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
