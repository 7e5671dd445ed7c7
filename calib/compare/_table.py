"""Every variant and every method on one histogram, as rows."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import numpy as np

from calib.compare._attribution import attribute_all
from calib.compare._results import LEVELS, Comparison, Row
from calib.compare._sweeper import Sweeper, _check_variants, _levels, _undefined_note
from calib.histogram import Histogram, as_histogram
from calib.methods import DEFAULT_NUM_BITS, METHODS, calibrate, clip_metrics
from calib.policies import VARIANTS


def _row(name, kind, h, amax, kl, target_bins, num_bits, note="") -> Row:
    max_abs = h.max_abs
    ratio = amax / max_abs if max_abs > 0 and math.isfinite(amax) else math.nan
    clipped = sqnr_db = math.nan
    if not h.is_dead and math.isfinite(amax) and amax > 0:
        m = clip_metrics(h, amax, num_bits)
        clipped, sqnr_db = m.clipped_fraction, m.sqnr_db
    return Row(
        name=name, kind=kind, amax=amax, ratio=ratio, clipped=clipped, kl=kl,
        sqnr_db=sqnr_db, target_bins=target_bins, note=note,
    )  # fmt: skip


def _refused(name: str, kind: str, target_bins: int | None, why: str) -> Row:
    """The row of a sweep or method the core refused: NaN values and its message."""
    nan = math.nan
    return Row(
        name=name, kind=kind, amax=nan, ratio=nan, clipped=nan, kl=nan, sqnr_db=nan,
        target_bins=target_bins, note=why,
    )  # fmt: skip


def compare(
    hist: Any,
    target_bins: int | None = None,
    *,
    variants: Iterable[str] = tuple(VARIANTS),
    methods: Iterable[str] = METHODS,
    num_bits: int = DEFAULT_NUM_BITS,
    explain: bool = True,
    workers: int = 1,
) -> Comparison:
    """Every variant's KL sweep, every method, and the attribution of each variant's gap.

    Parameters
    ----------
    hist : Histogram or array_like
    target_bins : int, optional
        Levels for every variant (and the entropy method); None gives each its own default
        (``DEFAULT_TARGET_BINS``: 255 for MXNet, 128 for the others).
    variants, methods : iterables of str
        Which rows to compute (names from ``VARIANTS`` and ``METHODS``).
    num_bits : int
        The quantizer the metrics (and the "mse" method) assume.
    explain : bool
        Also attribute every variant's gap to the seed (:func:`attribute`).
    workers : int
        Threads for the sweeps (see :class:`Sweeper`); the answers do not depend on it.

    Returns
    -------
    Comparison
        Variant rows first, then method rows. The metrics are ``clip_metrics`` of the
        input histogram at each amax; ``kl`` is the variant's own minimum (NaN where it is
        undefined, and for max, percentile and mse). A row that cannot run has NaN values
        and the core's message as its note.
    """
    h = as_histogram(hist)
    variants, methods = _check_variants(variants), tuple(methods)
    sw = Sweeper(h, workers)
    # the attributions' sweeps include every variant's own: run them all in one batch
    attributions = attribute_all(h, target_bins, variants=variants, sweeper=sw) if explain else {}
    sw.prefetch((VARIANTS[v], _levels(v, target_bins)) for v in variants)
    rows, sweeps = [], {}
    for name in variants:
        T = _levels(name, target_bins)
        run = sw.run(VARIANTS[name], T)
        r = run.result
        if r is None:
            rows.append(_refused(name, "variant", T, run.note))
            continue
        sweeps[name] = r
        kl = math.nan if r.dead else _finite_or_nan(r.min_kl)
        rows.append(_row(name, "variant", h, r.amax, kl, T, num_bits, run.note))
    for method in methods:
        extra = {} if method != "entropy" or target_bins is None else {LEVELS: target_bins}
        try:
            c = calibrate(h, method, num_bits, **extra)
        except ValueError as exc:
            rows.append(_refused(method, "method", extra.get(LEVELS), str(exc)))
            continue
        s = c.sweep  # entropy on a live histogram
        if s is None:
            rows.append(_row(method, "method", h, c.amax, math.nan, None, num_bits))
        else:
            kl = _finite_or_nan(s.min_kl)
            note = _undefined_note(s)
            rows.append(_row(method, "method", h, c.amax, kl, s.target_bins, num_bits, note))
    return Comparison(
        histogram=h,
        max_abs=h.max_abs,
        rows=tuple(rows),
        sweeps=MappingProxyType(sweeps),
        attributions=MappingProxyType(attributions),
        n_sweeps=sw.n_sweeps,
    )


def _finite_or_nan(x: float) -> float:
    """NaN for an infinite KL: no candidate had a defined one."""
    return float(x) if math.isfinite(x) else math.nan


def histogram_digest(hist: Histogram) -> str:
    """A short digest of a histogram's counts and edges: a primitive cache key."""
    d = hashlib.blake2b(digest_size=16)
    for a in (hist.counts, hist.edges):
        d.update(str(a.dtype).encode())
        d.update(np.ascontiguousarray(a).tobytes())
    return d.hexdigest()
