"""The KL sweep: every candidate clip's KL(P || Q) in a few numpy passes.

A naive sweep rebuilds P and Q for each candidate, O(N) per candidate and O(N^2) in
all, in Python loops. Here every candidate costs O(target_bins): level masses and
non-zero counts come from prefix sums, and the KL of a level's bins against the
level's single Q value is read off prefix sums too,

    sum_j p_j log(p_j / v) = sum_j p_j log p_j - log(v) * sum_j p_j,

so the whole sweep is a handful of (candidates x target_bins) array operations.
Only a few bins per candidate are computed one by one: the edge bin(s) that hold the
folded outliers, and (fractional merges) the bins a level boundary cuts in two.
MXNet-style smoothing shifts every non-zero bin by an amount that depends on the
candidate; its p log p is read off prefix sums of a Taylor series in that shift, and
the rare candidates where the series would not converge fast take the dense path,
which builds P and Q bin by bin for blocks of candidates (and also serves
``SweepResult.distributions`` and the tests).

Both paths, and the slow loops in ``calib.reference``, are compared in the tests.
"""

from calib.sweep._api import kl_sweep
from calib.sweep._fast import uses_dense_engine
from calib.sweep._prepare import TIE_RTOL, pick_minimum, prepared_counts, tie_scale
from calib.sweep._result import PQ, SweepResult

__all__ = [
    "PQ",
    "TIE_RTOL",
    "SweepResult",
    "kl_sweep",
    "pick_minimum",
    "prepared_counts",
    "tie_scale",
    "uses_dense_engine",
]
