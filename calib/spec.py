"""One calibration, as one frozen record: :class:`Spec`.

A spec says everything that decides a clip: the method, the KL variant and its policy
overrides (entropy), the quantizer (bits, signed or not), the KL levels, and the percentile
(percentile). It is parsed once from what users type, prints back the same way, and is what
:func:`calib.calibrate`, :func:`calib.compare.compare`, :func:`calib.report.layer_table`,
convergence, :func:`calib.evaluate.evaluate`, the command line and the pages take.

The text form
-------------
::

    METHOD[:ARG][@BITS][/KEY=VALUE]...

``METHOD``
    ``max``, ``percentile``, ``mse`` or ``entropy`` (:data:`calib.methods.METHODS`).
``:ARG``
    ``entropy``: the KL variant, one of :data:`calib.policies.VARIANTS` (``entropy`` alone
    is ``entropy:seed``). ``percentile``: the percentile of ``|x|``, in [0, 100]
    (``percentile`` alone is ``DEFAULT_PERCENTILE``, 99.99). The others take none.
``@BITS``
    The quantizer: ``@4`` a signed 4-bit one, ``@u8`` an unsigned 8-bit one (2..16 bits;
    none given: signed 8 bits).
``/KEY=VALUE``
    ``entropy``: ``/levels=N`` (the sweep's ``target_bins``; none given: the variant's own
    for the quantizer, :func:`calib.policies.levels_for`) and any field of
    :class:`calib.policies.Policy` (``/smoothing=none``, ``/eps=1e-05``). ``mse``:
    ``/start_bin=N`` and ``/stride=N`` (:func:`calib.methods.amax_mse`).

``str(spec)`` writes the canonical form: the variant always (``entropy:seed``), the rest
only where it differs from the default (no ``@8``, no ``/levels=128`` for the seed at 8
bits, no override equal to the variant's preset), keys in a fixed order. So
``Spec.parse(str(s)) == s`` for every spec, and two texts that mean the same calibration
give equal specs.

    >>> s = Spec.parse("entropy:mxnet@4")
    >>> s.variant, s.num_bits, s.target_bins, str(s)
    ('mxnet', 4, 15, 'entropy:mxnet@4')
    >>> str(Spec.parse(" entropy ")), str(Spec("percentile", percentile=99.9))
    ('entropy:seed', 'percentile:99.9')
    >>> str(Spec.parse("entropy:onnxruntime@u8/levels=200/smoothing=add_eps"))
    'entropy:onnxruntime@u8/levels=200/smoothing=add_eps'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from calib import limits
from calib.methods import (
    DEFAULT_NUM_BITS,
    DEFAULT_PERCENTILE,
    METHODS,
    _check_int,
    _check_percentile,
    _check_unsigned,
)
from calib.policies import (
    MODELOPT_START_BIN,
    TARGET_BINS_MIN,
    VARIANTS,
    Policy,
    check_num_bits,
    check_variant,
    levels_for,
    resolve_policy,
)

__all__ = ["MSE_OPTIONS", "SYNTAX", "Spec", "as_spec"]

SYNTAX = "METHOD[:ARG][@BITS][/KEY=VALUE]..."
"""The text form of a :class:`Spec` (module docstring)."""

MSE_OPTIONS: dict[str, int] = {"start_bin": MODELOPT_START_BIN, "stride": 1}
"""The overrides ``mse`` takes, and their defaults (:func:`calib.methods.amax_mse`)."""

LEVELS_KEY = "levels"
_POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(Policy))
_POLICY_TYPES = {f.name: type(f.default) for f in dataclasses.fields(Policy)}


def _allowed() -> str:
    """What a calibrator's text may be, for error messages."""
    return (
        f"write {SYNTAX}: METHOD one of {', '.join(METHODS)}; entropy:<variant> with a "
        f"variant of {', '.join(VARIANTS)}; percentile:<0..100>; @<bits> or @u<bits> for "
        "2..16 bits; /levels=N and /<policy>=<value> (entropy), /start_bin=N and "
        "/stride=N (mse)"
    )


def _number(x: float) -> str:
    """A float that parses back to itself, written short: 99.9, 50, 1e-05."""
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _pairs(overrides: Any) -> dict[str, Any]:
    if isinstance(overrides, Mapping):
        return dict(overrides)
    try:
        pairs = [tuple(p) for p in overrides]
    except TypeError:
        pairs = None
    if pairs is None or any(len(p) != 2 or not isinstance(p[0], str) for p in pairs):
        raise ValueError(
            f"overrides must be a mapping or (name, value) pairs, got {overrides!r:.80}"
        )
    return dict(pairs)


@dataclasses.dataclass(frozen=True, repr=False)
class Spec:
    """One calibration: what decides a clip, validated once.

    Parameters
    ----------
    method : str
        ``"max"``, ``"percentile"``, ``"mse"`` or ``"entropy"``.
    variant : str or None
        ``"entropy"`` only: the KL preset (None: ``"seed"``). None for the others.
    num_bits : int
        The quantizer's bits, 2..16.
    unsigned : bool
        Quantize to ``[0, 2**num_bits - 1]``.
    levels : int or None
        ``"entropy"`` only: the sweep's ``target_bins``. None (the default, and what a
        value equal to it becomes) is the variant's own for the quantizer,
        ``levels_for(variant, num_bits, unsigned)``; read the number from
        :attr:`target_bins`.
    percentile : float or None
        ``"percentile"`` only: in [0, 100] (None: ``DEFAULT_PERCENTILE``). None for the
        others.
    overrides : mapping or tuple of (name, value) pairs
        ``"entropy"``: fields of :class:`calib.policies.Policy` that differ from the
        variant's preset (checked by :func:`calib.policies.resolve_policy`); ``"mse"``:
        ``start_bin`` and ``stride``. Stored as pairs in a fixed order, without the values
        the preset already has.

    A parameter that does not apply to the method is refused, not ignored.

    Examples
    --------
    >>> import calib
    >>> s = calib.Spec.parse("entropy:mxnet@4")
    >>> s.method, s.variant, s.num_bits, s.target_bins, str(s)
    ('entropy', 'mxnet', 4, 15, 'entropy:mxnet@4')
    >>> s == calib.Spec("entropy", "mxnet", 4)
    True
    >>> calib.Spec("max", variant="seed")
    Traceback (most recent call last):
        ...
    ValueError: variant applies to method 'entropy' only, got variant='seed' for method 'max'
    """

    method: str = "entropy"
    variant: str | None = None
    num_bits: int = DEFAULT_NUM_BITS
    unsigned: bool = False
    levels: int | None = None
    percentile: float | None = None
    overrides: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        method = self.method
        if not isinstance(method, str) or method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r:.80}")
        put("num_bits", check_num_bits(self.num_bits))
        put("unsigned", _check_unsigned(self.unsigned))
        overrides = _pairs(self.overrides)
        if method == "entropy":
            variant = check_variant("seed" if self.variant is None else self.variant)
            put("variant", variant)
            if "target_bins" in overrides:
                raise ValueError("overrides: give the levels as levels=, not target_bins")
            policy = resolve_policy(variant, overrides)  # names and combinations checked
            preset = VARIANTS[variant]
            put(
                "overrides",
                tuple(
                    (f, getattr(policy, f))
                    for f in _POLICY_FIELDS
                    if getattr(policy, f) != getattr(preset, f)
                ),
            )
            if self.levels is not None:
                levels = self.levels
                if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)):
                    raise ValueError(f"levels must be an integer, got {levels!r:.80}")
                if not TARGET_BINS_MIN <= levels <= limits.MAX_BINS:
                    raise ValueError(
                        f"levels (target_bins) must be at least {TARGET_BINS_MIN} (the levels "
                        f"of a 2-bit quantizer) and at most MAX_BINS = {limits.MAX_BINS}, "
                        f"got {levels}"
                    )
                levels = int(levels)
                own = levels_for(variant, self.num_bits, self.unsigned)
                put("levels", None if levels == own else levels)
        else:
            for name in ("variant", "levels"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name} applies to method 'entropy' only, got {name}="
                        f"{getattr(self, name)!r:.80} for method {method!r}"
                    )
            if method == "mse":
                unknown = sorted(set(overrides) - set(MSE_OPTIONS))
                if unknown:
                    raise ValueError(
                        f"method 'mse' takes overrides {sorted(MSE_OPTIONS)}, got {unknown}"
                    )
                checked = {
                    "start_bin": _check_int(
                        overrides.get("start_bin", MODELOPT_START_BIN), "start_bin", 0
                    ),
                    "stride": _check_int(overrides.get("stride", 1), "stride", 1),
                }
                put("overrides", tuple((k, v) for k, v in checked.items() if v != MSE_OPTIONS[k]))
            elif overrides:
                raise ValueError(f"method {method!r} takes no overrides, got {sorted(overrides)}")
            else:
                put("overrides", ())
        if method == "percentile":
            p = DEFAULT_PERCENTILE if self.percentile is None else self.percentile
            put("percentile", _check_percentile(p))
        elif self.percentile is not None:
            raise ValueError(
                f"percentile applies to method 'percentile' only, got percentile="
                f"{self.percentile!r:.80} for method {method!r}"
            )

    @classmethod
    def build(
        cls,
        method: str,
        variant: str | None = None,
        num_bits: int = DEFAULT_NUM_BITS,
        levels: int | None = None,
        percentile: float | None = None,
        *,
        unsigned: bool = False,
        overrides: Any = (),
    ) -> Spec:
        """A spec from loose settings, as a page's sidebar or a command line holds them
        (a variant chosen while the method is max): those that do not apply to the method
        are dropped, the rest checked. :meth:`parse` takes a text; the constructor refuses
        what does not apply."""
        entropy = method == "entropy"
        return cls(
            method,
            variant if entropy else None,
            num_bits,
            unsigned,
            levels if entropy else None,
            percentile if method == "percentile" else None,
            overrides if method in ("entropy", "mse") else (),
        )

    # -- what the calibrators need ------------------------------------------------------
    @property
    def target_bins(self) -> int | None:
        """The KL sweep's levels (``"entropy"``): :attr:`levels`, else the variant's own
        for the quantizer (:func:`calib.policies.levels_for`); None for other methods."""
        if self.method != "entropy":
            return None
        if self.levels is not None:
            return self.levels
        return levels_for(self.variant, self.num_bits, self.unsigned)

    @property
    def policy(self) -> Policy | None:
        """The variant's preset with the overrides (``"entropy"``), else None."""
        if self.method != "entropy":
            return None
        return resolve_policy(self.variant, dict(self.overrides))

    @property
    def options(self) -> dict[str, Any]:
        """The overrides as keyword arguments (``kl_sweep``'s policies, ``amax_mse``'s)."""
        return dict(self.overrides)

    @property
    def name(self) -> str:
        """``str(self)``: the canonical text."""
        return str(self)

    def with_quantizer(self, num_bits: int, unsigned: bool | None = None) -> Spec:
        """The same calibration for another quantizer (levels the variant's own stay its
        own: they follow the bits)."""
        u = self.unsigned if unsigned is None else unsigned
        return dataclasses.replace(self, num_bits=num_bits, unsigned=u)

    def at_bits(self, num_bits: int, *, strict: bool = False) -> Spec:
        """This spec for a ``num_bits`` quantizer when it names none of its own (signed 8
        bits, the default): what a room with its own bit width (``compare``'s, an
        evaluation's) does with the specs it is given. A spec that names its own bits keeps
        them; ``strict``: it is a ValueError unless they are ``num_bits`` (signed)."""
        num_bits = check_num_bits(num_bits)
        if self.num_bits == DEFAULT_NUM_BITS and not self.unsigned:
            return self.with_quantizer(num_bits)
        if strict and (self.num_bits != num_bits or self.unsigned):
            raise ValueError(
                f"calibrator {str(self)!r} names its own quantizer, not the signed "
                f"{num_bits} bits asked for"
            )
        return self

    # -- text -----------------------------------------------------------------------------
    def __repr__(self) -> str:
        """The call that makes it: ``Spec.parse('entropy:mxnet@4')``."""
        return f"Spec.parse({str(self)!r})"

    def __str__(self) -> str:
        text = self.method
        if self.method == "entropy":
            text += f":{self.variant}"
        elif self.method == "percentile" and self.percentile != DEFAULT_PERCENTILE:
            text += f":{_number(self.percentile)}"
        if self.unsigned:
            text += f"@u{self.num_bits}"
        elif self.num_bits != DEFAULT_NUM_BITS:
            text += f"@{self.num_bits}"
        if self.levels is not None:
            text += f"/{LEVELS_KEY}={self.levels}"
        for k, v in self.overrides:
            text += f"/{k}={_number(v) if isinstance(v, float) else v}"
        return text

    @classmethod
    def parse(cls, text: Any) -> Spec:
        """The spec a text names (module docstring); a :class:`Spec` is returned as is.

        Raises
        ------
        ValueError
            Naming the text, and saying what is allowed.
        """
        if isinstance(text, Spec):
            return text
        if not isinstance(text, str):
            raise ValueError(
                f"a calibrator must be a text such as 'entropy:mxnet', got {text!r:.80}"
            )
        if len(text) > limits.MAX_NAME_CHARS:
            raise ValueError(limits.exceeds("a calibrator's text is", len(text), "MAX_NAME_CHARS"))
        try:
            return cls._parse(text.strip())
        except ValueError as exc:
            raise ValueError(f"calibrator {text.strip()!r:.120}: {exc}; {_allowed()}") from None

    @classmethod
    def _parse(cls, text: str) -> Spec:
        head, *options = text.split("/")
        head, at, bits = head.partition("@")
        method, colon, arg = head.partition(":")
        method, arg = method.strip(), arg.strip()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        kw: dict[str, Any] = {"method": method}
        if colon:
            if method == "entropy":
                kw["variant"] = arg
            elif method == "percentile":
                kw["percentile"] = _float(arg, "the percentile")
            else:
                raise ValueError(f"method {method!r} takes no ':' argument")
        if at:
            bits = bits.strip()
            kw["unsigned"] = bits.startswith("u")
            kw["num_bits"] = _int(bits[1:] if kw["unsigned"] else bits, "the bits")
        overrides: dict[str, Any] = {}
        for option in options:
            key, eq, value = option.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key:
                raise ValueError(f"option {option!r} is not KEY=VALUE")
            if key in overrides or (key == LEVELS_KEY and "levels" in kw):
                raise ValueError(f"option {key!r} given twice")
            if key == LEVELS_KEY and method == "entropy":
                kw["levels"] = _int(value, "levels")
            elif method == "entropy" and key in _POLICY_TYPES:
                overrides[key] = _typed(value, _POLICY_TYPES[key], key)
            elif method == "mse" and key in MSE_OPTIONS:
                overrides[key] = _int(value, key)
            else:
                raise ValueError(f"method {method!r} takes no option {key!r}")
        return cls(**kw, overrides=overrides)


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {text!r}") from None


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a number, got {text!r}")
    return value


def _typed(text: str, kind: type, key: str) -> Any:
    if kind is int:
        return _int(text, key)
    if kind is float:
        return _float(text, key)
    return text


def as_spec(value: Any) -> Spec:
    """A :class:`Spec` from a spec or its text (:meth:`Spec.parse`)."""
    return Spec.parse(value)
