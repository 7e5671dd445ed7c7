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
  too; both also need ``normalize="pq"`` (an unnormalised KL could go negative), so its
  normalisation joins them ("window + merge + expand + normalize").

Joining is done by trying: a group whose "seed + group" or "V - group" policy is refused is
merged with the fewest other groups that make both policies valid (the first such set in
``GROUPS`` order). It depends on the policies only, never on the histogram. The threshold
rule is left on its own: every layout accepts both rules, and alone it shows the half bin
it costs. A measurement the sweep itself refuses for this histogram (too few bins for the
levels, say) is left undefined with the sweep's message as a note.
"""

from calib.compare._attribution import attribute, attribute_all, change_groups
from calib.compare._results import (
    GROUPS,
    Attribution,
    ChangeGroup,
    Comparison,
    GroupEffect,
    PolicyGroup,
    Row,
    Spread,
)
from calib.compare._sweeper import Sweeper, SweepOutcome
from calib.compare._table import compare, histogram_digest

__all__ = [
    "GROUPS",
    "Attribution",
    "ChangeGroup",
    "Comparison",
    "GroupEffect",
    "PolicyGroup",
    "Row",
    "Spread",
    "SweepOutcome",
    "Sweeper",
    "attribute",
    "attribute_all",
    "change_groups",
    "compare",
    "histogram_digest",
]
