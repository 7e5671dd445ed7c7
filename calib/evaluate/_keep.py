"""The keep-in-float answer of a report at another target, without running the model.

The greedy search (``calib.evaluate.evaluate``) picks each step without looking at the
target: the target only says where it stops. So one search run to a high target holds,
as a prefix, the search at every lower one: :func:`keep_float_at` cuts it there.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["keep_float_at"]


def keep_float_at(report: Mapping[str, Any], target_sqnr_db: float) -> dict[str, Any]:
    """``report`` (as ``to_dict`` writes it) with its keep-in-float search at another target.

    Parameters
    ----------
    report : mapping
        A report with ``keep_float`` (the greedy steps, each with ``output_sqnr_db``),
        ``all_quantized_sqnr_db``, ``target_sqnr_db`` and ``reached``.
    target_sqnr_db : float
        The output SQNR the search should reach, dB.

    Returns
    -------
    dict
        A copy of ``report`` whose ``keep_float``, ``reached`` and ``target_sqnr_db`` are
        those of the same search run at ``target_sqnr_db``: the steps up to the first that
        reaches it (none when every tensor quantized already does). A report without a
        search (``reached`` None) is returned as a copy.

    Raises
    ------
    ValueError
        When the report's search stopped at its own, lower target before reaching this
        one: the steps beyond it were never measured.

    Examples
    --------
    >>> doc = {"keep_float": [{"layer": "a", "output_sqnr_db": 20.0},
    ...                       {"layer": "b", "output_sqnr_db": 31.0}],
    ...        "all_quantized_sqnr_db": 12.0, "target_sqnr_db": 120.0, "reached": False}
    >>> [s["layer"] for s in keep_float_at(doc, 30.0)["keep_float"]]
    ['a', 'b']
    >>> keep_float_at(doc, 15.0)["keep_float"], keep_float_at(doc, 10.0)["keep_float"]
    ([{'layer': 'a', 'output_sqnr_db': 20.0}], [])
    >>> keep_float_at(doc, 40.0)["reached"]
    False
    """
    target = float(target_sqnr_db)
    if math.isnan(target):
        raise ValueError(f"target_sqnr_db must be a number of dB, got {target_sqnr_db!r}")
    out = copy.deepcopy(dict(report))
    if report.get("reached") is None:
        return out
    steps = list(report["keep_float"])
    start = report["all_quantized_sqnr_db"]
    if start is not None and start >= target:
        kept, reached = [], True
    else:
        first = next(
            (i for i, s in enumerate(steps) if s["output_sqnr_db"] >= target), None
        )  # nan never reaches
        if first is not None:
            kept, reached = steps[: first + 1], True
        elif report["reached"] and report["target_sqnr_db"] < target:
            raise ValueError(
                f"target_sqnr_db {target:g} dB is above the {report['target_sqnr_db']:g} dB "
                "this search stopped at: its later steps were not measured"
            )
        else:  # the search ran out of steps (max_float) or tensors without reaching it
            kept, reached = steps, False
    out["keep_float"] = copy.deepcopy(kept)
    out["reached"] = reached
    out["target_sqnr_db"] = target
    return out
