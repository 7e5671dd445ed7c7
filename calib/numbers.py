"""How a number is written for a reader: one rule for every page, table, chart and the CLI.

    >>> from calib.numbers import fmt
    >>> fmt(3.14159), fmt(0.000123456, 2), fmt(29.0874, 2, fixed=True, unit=" dB")
    ('3.142', '0.00012', '29.09 dB')
    >>> fmt(float("inf")), fmt(float("-inf"), unit=" dB"), fmt(float("nan"), unit="%"), fmt(None)
    ('inf', '-inf dB', 'n/a', 'n/a')

The rules, one function each, so the same quantity prints the same everywhere:

- any number, :func:`fmt`: ``digits`` significant digits (4), written out in full from
  1e-4 to 1e6 (``100``, never ``1e+02``) and in scientific notation outside that
  (``1.863e-15``), trailing zeros dropped;
- a share, :func:`fmt_pct`: a fraction as a percentage, 3 significant digits (``100%``,
  ``0.0123%``);
- decibels, :func:`fmt_db`: :data:`DB_DECIMALS` decimals (``0.67 dB``); tables that format
  their own cells use :data:`DB_FORMAT` on :func:`db_cell`'s values (no ``-0.00``);
- a KL divergence, :func:`fmt_kl`: 4 significant digits, and a KL within rounding of 0 (of
  either sign: a sum of terms of both signs rounds to about 1e-16 of them) is written
  ``0 (within rounding)``;
- a count, :func:`fmt_count`: whole numbers with thousands separators (``5,757,312``),
  fractions as :func:`fmt`; "1 bin", "2 bins": :func:`plural`;
- chart axes, :func:`axis_ticks`: the plotly tick settings of an axis of one quantity
  (KL, counts, values, dB, percentages, integer indices), linear or logarithmic, so a
  chart's ticks read as the text beside it (no ``100µ`` for a KL, no ``0.00000001``).

Machine formats keep their own rules (``calib.report``'s JSON writes inf as the string
``"inf"`` and NaN as null; CSV keeps Python's ``inf`` and ``nan``).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "DB_DECIMALS",
    "DB_FORMAT",
    "INF_TEXT",
    "KL_ROUNDING",
    "NAN_TEXT",
    "NEG_INF_TEXT",
    "NOT_APPLICABLE",
    "PCT_FORMAT",
    "ZERO_KL_TEXT",
    "axis_ticks",
    "db_cell",
    "fmt",
    "fmt_count",
    "fmt_db",
    "fmt_kl",
    "fmt_pct",
    "fmt_share",
    "is_zero_kl",
    "plural",
]

INF_TEXT = "inf"
NEG_INF_TEXT = "-inf"
NAN_TEXT = "n/a"
NOT_APPLICABLE = "—"
"""A cell for a quantity the row does not have (a max calibration's levels or KL), where a
table would otherwise show a raw "None"."""

DB_DECIMALS = 2
"""Decibels are written with two decimals everywhere (metric, text, tables, hovers)."""
DB_FORMAT = f"%.{DB_DECIMALS}f"
"""The printf format of a dB table cell (``st.column_config.NumberColumn(format=...)``)."""

PCT_DIGITS = 3
"""Significant digits of a percentage."""
PCT_FORMAT = f"%.{PCT_DIGITS}g"
"""The printf format of a percent table cell: :func:`fmt_pct`'s significant digits."""

KL_ROUNDING = 1e-12
"""A KL whose size is at most this share of the terms it is summed from (``scale``) is
0 within rounding: float64 sums round at about 1e-16 of their terms, and the sweep's
engines disagree by up to 1e-12 of them (``calib.sweep.TIE_RTOL``)."""
ZERO_KL_TEXT = "0 (within rounding)"

_POSITIONAL = (1e-4, 1e6)  # written out in full between these magnitudes


def fmt(x: Any, digits: int = 4, *, fixed: bool = False, unit: str = "") -> str:
    """``x`` for a reader: ``digits`` significant digits (``fixed``: digits after the point),
    then ``unit``; ``"inf"``, ``"-inf"`` and ``"n/a"`` for the values that are not numbers.

    Significant digits are written out in full from 1e-4 to 1e6, where Python's ``g`` would
    switch to an exponent as soon as the digits run out (``100`` at 2 digits was
    ``1e+02``), and in scientific notation outside (``1.863e-15``, ``5.757e+06``).

    >>> fmt(100.0, 2), fmt(99.96, 3), fmt(0.5), fmt(1234567.0), fmt(-1.8634e-15), fmt(0.0)
    ('100', '100', '0.5', '1.235e+06', '-1.863e-15', '0')

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
    if fixed:
        text = f"{v:.{digits}f}"
        return ("0" + text[2:] if text.startswith("-0") and float(text) == 0 else text) + unit
    return _significant(v, max(int(digits), 1)) + unit


def _significant(v: float, digits: int) -> str:
    if v == 0:
        return "0"
    rounded = float(f"{v:.{digits - 1}e}")  # the value at `digits` significant digits
    if _POSITIONAL[0] <= abs(rounded) < _POSITIONAL[1]:
        exponent = math.floor(math.log10(abs(rounded)))
        decimals = max(digits - 1 - exponent, 0)
        text = f"{rounded:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, exponent = f"{v:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{exponent}"


def fmt_pct(fraction: Any, digits: int = PCT_DIGITS) -> str:
    """A fraction (0..1) as a percentage with ``digits`` significant digits.

    >>> fmt_pct(1.0), fmt_pct(0.000123), fmt_pct(0.5), fmt_pct(0.0), fmt_pct(None)
    ('100%', '0.0123%', '50%', '0%', 'n/a')
    """
    if fraction is None or math.isnan(float(fraction)):
        return NAN_TEXT
    return fmt(100.0 * float(fraction), digits, unit="%")


def fmt_share(fraction: Any) -> str:
    """A share of a whole (how far a choice moves a clip) in whole percent; one that rounds
    to 0 prints ``0%``, whatever its sign (``f"{-0.001:.0%}"`` wrote ``-0%``).

    >>> fmt_share(-0.001), fmt_share(1.104), fmt_share(-0.25), fmt_share(float("nan"))
    ('0%', '110%', '-25%', 'n/a')
    """
    if fraction is None or not math.isfinite(float(fraction)):
        return NAN_TEXT
    return f"{round(100.0 * float(fraction)):d}%"  # an int: no negative zero


def db_cell(x: Any) -> float:
    """A dB value for a table that formats its own cells with :data:`DB_FORMAT`: rounded to
    :data:`DB_DECIMALS`, a value that rounds to 0 made +0 (``%.2f`` writes -0.001 as
    ``-0.00``), None as nan.

    >>> db_cell(-0.001), db_cell(12.3456), db_cell(None)
    (0.0, 12.35, nan)
    """
    if x is None:
        return math.nan
    return round(float(x), DB_DECIMALS) + 0.0  # -0.0 + 0.0 is 0.0


def fmt_db(x: Any, *, unit: bool = True) -> str:
    """Decibels with :data:`DB_DECIMALS` decimals (``unit=False``: a table whose column says
    dB).

    >>> fmt_db(0.6712), fmt_db(29.0874, unit=False), fmt_db(float("inf")), fmt_db(None)
    ('0.67 dB', '29.09', 'inf dB', 'n/a')
    """
    return fmt(x, DB_DECIMALS, fixed=True, unit=" dB" if unit else "")


def is_zero_kl(x: Any, scale: float = 1.0) -> bool:
    """Whether a KL is 0 within rounding: finite and at most ``KL_ROUNDING * scale`` in size
    (``scale``: the size of the terms it is summed from, ``SweepResult.kl_scale``; 1 for a
    normalised KL)."""
    if x is None:
        return False
    v = float(x)
    return math.isfinite(v) and abs(v) <= KL_ROUNDING * max(float(scale), 1.0)


def fmt_kl(x: Any, scale: float = 1.0, digits: int = 4) -> str:
    """A KL divergence: ``digits`` significant digits; ``0 (within rounding)`` where it is 0
    within the rounding of the sums it is made of (:func:`is_zero_kl`), whatever its sign.

    >>> fmt_kl(0.3214567), fmt_kl(-1.863e-15), fmt_kl(3.638e-12, scale=5.7e6), fmt_kl(2e-9)
    ('0.3215', '0 (within rounding)', '0 (within rounding)', '2e-09')
    >>> fmt_kl(float("inf")), fmt_kl(0.0)
    ('inf', '0 (within rounding)')
    """
    if is_zero_kl(x, scale):  # an exact 0 too: the other engine's may be -9e-13
        return ZERO_KL_TEXT
    return fmt(x, digits)


def fmt_count(x: Any) -> str:
    """A count: whole numbers in full with thousands separators, fractions as :func:`fmt`.

    >>> fmt_count(5757312), fmt_count(5757312.0), fmt_count(0.25), fmt_count(None)
    ('5,757,312', '5,757,312', '0.25', 'n/a')
    """
    if x is None:
        return NAN_TEXT
    v = float(x)
    if math.isfinite(v) and v.is_integer() and abs(v) < 1e18:
        return f"{int(v):,}"
    return fmt(v)


def plural(n: Any, noun: str, nouns: str | None = None) -> str:
    """``n`` and the noun that agrees with it; "n/a" for a missing count.

    >>> plural(1, "bin"), plural(2048, "bin"), plural(None, "bin")
    ('1 bin', '2,048 bins', 'n/a')
    """
    if n is None:
        return NAN_TEXT
    return f"{fmt_count(n)} {noun if float(n) == 1 else (nouns or noun + 's')}"


_TICK_FORMATS = {
    "kl": "~g",  # 3e-12, 0.5, 12: never an SI "100µ" or a cut "0000000000003"
    "value": "~g",  # activation units
    "db": "~g",
    "percent": "~g",
    "probability": "~g",  # P and Q, normalised: 0.001, 1e-6
}
QUANTITIES = ("kl", "count", "value", "db", "percent", "probability", "index")


def axis_ticks(
    quantity: str, *, log: bool = False, lo: float | None = None, n: int | None = None
) -> dict:
    """The plotly axis settings (``tickformat``, ``exponentformat``, ``type``, ``dtick``) of an
    axis of ``quantity``, merged into the axis dict (``layout.xaxis`` / ``yaxis``).

    Parameters
    ----------
    quantity : {"kl", "count", "value", "db", "percent", "probability", "index"}
        What the axis measures. KL, values, dB, percentages and probabilities get d3's
        ``~g`` (``3e-12``, ``0.5``, ``1e+6``), never SI prefixes, which write a KL of 1e-4
        as ``100µ``.
        Counts get SI (``1k``, ``5.7M``) when every count on the axis is at least 1
        (``lo``, the smallest positive one drawn), else ``~g`` (a normalised histogram's
        0.0001 is not ``100µ`` values). "index" is an integer axis (tensors, steps, bins):
        whole-number ticks, at most about ten (``n``: how many positions).
    log : bool
        A logarithmic axis: ``type: "log"``, a tick per decade (``dtick: 1``), labelled
        alike (``1e-8``, ``1e+6``: d3's ``~e``, not ``0.00000001``), counts in SI.

    >>> axis_ticks("kl")
    {'tickformat': '~g', 'exponentformat': 'e'}
    >>> axis_ticks("count", log=True, lo=1.0)
    {'tickformat': '~s', 'exponentformat': 'SI', 'type': 'log', 'dtick': 1}
    >>> axis_ticks("kl", log=True)["tickformat"]
    '~e'
    >>> axis_ticks("index", n=2)
    {'tickformat': 'd', 'tick0': 0, 'dtick': 1}
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    if quantity == "index":
        step = max(1, math.ceil((n or 1) / 10))
        return {"tickformat": "d", "tick0": 0, "dtick": step}
    if quantity == "count" and lo is not None and lo >= 1:
        out: dict = {"tickformat": "~s", "exponentformat": "SI"}
    else:
        out = {"tickformat": _TICK_FORMATS.get(quantity, "~g"), "exponentformat": "e"}
    if log:
        out.update({"type": "log", "dtick": 1})
        if out["tickformat"] == "~g":  # one decade a tick: every label alike, 1e+5 and 1e+6
            out["tickformat"] = "~e"  # ("~g" wrote 100000 beside 1e+6, 0.0001 beside 1e-7)
    return out
