"""Did the calibration set suffice? When each tensor's threshold settled, from the traces a
collection records (``collect(..., convergence=True)``, :func:`calib.load_convergence`).

A tensor has *settled* for a method after batch ``j`` when that method's amax stays within
``tol`` (relative) of its final value at every batch from ``j`` on. The share of tensors
settled after each batch only grows; the samples after which it reaches a share (95%, all)
is the figure to read: more calibration data past it would not move those thresholds.

    >>> import numpy as np
    >>> from calib.io import Trace
    >>> t = Trace(np.array([32, 64, 96, 128]), {"max": np.array([1.0, 2.0, 2.01, 2.0])})
    >>> settled_at(t, "max")  # within 1% of 2.0 from the second batch on
    1
    >>> samples_to_settle({"a": t}, "max", share=1.0)
    64
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from calib.histogram import Histogram
from calib.io.histograms import Trace
from calib.methods import amax_of
from calib.spec import Spec

__all__ = [
    "CONVERGENCE_METHODS",
    "DEFAULT_TOL",
    "Settling",
    "Trace",
    "amax_row",
    "check_methods",
    "samples_to_settle",
    "settled_at",
    "settled_share",
    "settling_table",
]

DEFAULT_TOL = 0.01
"""Within 1% of the final amax counts as settled."""

CONVERGENCE_METHODS = ("max", "percentile", "entropy:seed", "entropy:onnxruntime")  # canonical
"""What a collection traces by default after each batch: max, ModelOpt's percentile (the
default 99.99), and the entropy clip of the seed (on ``|x|``) and of ONNX Runtime (signed)."""


def check_methods(convergence: Any) -> tuple[str, ...]:
    """The calibrators to trace, as canonical texts (:class:`calib.Spec`):
    :data:`CONVERGENCE_METHODS` for True, none for False, or the specs given (any
    calibrator, read by :meth:`calib.Spec.parse`; ``"entropy"`` is ``"entropy:seed"``)."""
    if convergence is False or convergence is None:
        return ()
    if convergence is True:
        return CONVERGENCE_METHODS
    if isinstance(convergence, (str, Spec)) or not all(
        isinstance(m, (str, Spec)) for m in convergence
    ):
        raise ValueError(
            f"convergence must be True, False or a list of methods, got {convergence!r:.120}"
        )
    try:
        return tuple(dict.fromkeys(str(Spec.parse(m)) for m in convergence))
    except ValueError as exc:
        raise ValueError(f"convergence: {exc}") from None


def amax_row(h: Histogram | None, methods: tuple[str, ...]) -> tuple[float, ...]:
    """Each calibrator's amax on ``h`` (:func:`calib.methods.amax_of`; 0 for a tensor
    that has held only zeros so far; NaN where the calibrator cannot run on it, such as
    fewer bins than the variant's levels)."""
    if h is None or h.is_dead:
        return (0.0,) * len(methods)
    out = []
    for spec in _specs(tuple(methods)):
        try:
            out.append(amax_of(h, spec))
        except ValueError:  # fewer bins than the variant's levels: no answer
            out.append(math.nan)
    return tuple(out)


@functools.lru_cache(maxsize=32)
def _specs(methods: tuple[str, ...]) -> tuple[Spec, ...]:
    """The specs of a collection's traced methods, read once, not after every batch."""
    return tuple(Spec.parse(m) for m in methods)


def _check_tol(tol: float) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise ValueError(f"tol must be a number in [0, 1), got {tol!r}")
    return float(tol)


def settled_at(trace: Trace, method: str, tol: float = DEFAULT_TOL) -> int | None:
    """The first batch index from which ``method``'s amax stays within ``tol`` of its final
    value; None when the final value is 0 or undefined (a dead tensor, a method that could
    not run)."""
    tol = _check_tol(tol)
    if method not in trace.amax:
        raise ValueError(f"method {method!r} was not traced; traced: {sorted(trace.amax)}")
    a = np.asarray(trace.amax[method], dtype=np.float64)
    final = float(a[-1]) if a.size else math.nan
    if not math.isfinite(final) or final == 0:
        return None
    off = ~(np.abs(a - final) <= tol * abs(final))  # NaN counts as off
    bad = np.flatnonzero(off)
    return int(bad[-1] + 1) if bad.size else 0


def settled_share(
    traces: Mapping[str, Trace], method: str, tol: float = DEFAULT_TOL
) -> tuple[np.ndarray, np.ndarray]:
    """Samples after each batch, and the share of tensors settled by then (of those with a
    defined final amax)."""
    if not traces:
        raise ValueError("traces: none (collect with convergence=True to record them)")
    samples = np.asarray(next(iter(traces.values())).samples)
    at = [settled_at(t, method, tol) for t in traces.values()]
    at = np.array([j for j in at if j is not None], dtype=np.int64)
    if at.size == 0:
        return samples, np.full(samples.size, math.nan)
    share = (at[None, :] <= np.arange(samples.size)[:, None]).mean(axis=1)
    return samples, share


def samples_to_settle(
    traces: Mapping[str, Trace], method: str, share: float = 0.95, tol: float = DEFAULT_TOL
) -> int | None:
    """The samples after which at least ``share`` of the tensors have settled (None if no
    batch gets there, which only happens for a share no tensor can reach)."""
    samples, got = settled_share(traces, method, tol)
    ok = np.flatnonzero(got >= share - 1e-12)
    return int(samples[ok[0]]) if ok.size else None


@dataclasses.dataclass(frozen=True)
class Settling:
    """One method's row of :func:`settling_table`."""

    method: str
    tensors: int  # with a defined final amax
    samples_95: int | None  # samples until 95% of them settled
    samples_all: int | None  # until every one did
    total_samples: int


def settling_table(traces: Mapping[str, Trace], tol: float = DEFAULT_TOL) -> list[Settling]:
    """For every traced method: how many samples until 95% and all tensors settled."""
    if not traces:
        raise ValueError("traces: none (collect with convergence=True to record them)")
    first = next(iter(traces.values()))
    rows = []
    for method in first.amax:
        n = sum(settled_at(t, method, tol) is not None for t in traces.values())
        rows.append(
            Settling(
                method=method,
                tensors=n,
                samples_95=samples_to_settle(traces, method, 0.95, tol),
                samples_all=samples_to_settle(traces, method, 1.0, tol),
                total_samples=int(first.samples[-1]),
            )
        )
    return rows
