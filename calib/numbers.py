"""How a number is written for a reader: one rule for every page and the command line.

    >>> from calib.numbers import fmt
    >>> fmt(3.14159), fmt(0.000123456, 2), fmt(29.0874, 2, fixed=True, unit=" dB")
    ('3.142', '0.00012', '29.09 dB')
    >>> fmt(float("inf")), fmt(float("-inf"), unit=" dB"), fmt(float("nan"), unit="%"), fmt(None)
    ('inf', '-inf dB', 'n/a', 'n/a')

Machine formats keep their own rules (``calib.report``'s JSON writes inf as the string
``"inf"`` and NaN as null; CSV keeps Python's ``inf`` and ``nan``).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["INF_TEXT", "NAN_TEXT", "NEG_INF_TEXT", "NOT_APPLICABLE", "fmt"]

INF_TEXT = "inf"
NEG_INF_TEXT = "-inf"
NAN_TEXT = "n/a"
NOT_APPLICABLE = "—"
"""A cell for a quantity the row does not have (a max calibration's levels or KL), where a
table would otherwise show a raw "None"."""


def fmt(x: Any, digits: int = 4, *, fixed: bool = False, unit: str = "") -> str:
    """``x`` for a reader: ``digits`` significant digits (``fixed``: digits after the point),
    then ``unit``; ``"inf"``, ``"-inf"`` and ``"n/a"`` for the values that are not numbers.

    Why these three: an infinity here is a value, not a failure (the KL of a candidate whose
    Q leaves out some of P's mass is +inf, the SQNR of a clip that adds no error is +inf),
    so it reads as one, with its unit ("inf dB"), and it is spelled as Python, numpy and the
    exports spell it, in ASCII that any terminal prints. NaN, and None, mean that there is
    no number (a dead layer's SQNR, a sweep the core refused): "n/a", without a unit, not
    "nan", which reads like a value, and not "undefined", which the pages used to say of
    infinities too.
    """
    if x is None:
        return NAN_TEXT
    v = float(x)
    if math.isnan(v):
        return NAN_TEXT
    if math.isinf(v):
        return (INF_TEXT if v > 0 else NEG_INF_TEXT) + unit
    return f"{v:.{digits}{'f' if fixed else 'g'}}{unit}"
