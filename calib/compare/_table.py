"""Every variant and every method on one histogram, as rows."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import numpy as np

from calib.compare._attribution import attribute_all
from calib.compare._results import Comparison, Row
from calib.compare._sweeper import Sweeper, _check_variants, _levels, _undefined_note
from calib.histogram import Histogram, as_histogram
from calib.methods import DEFAULT_NUM_BITS, METHODS, Calibration, clip_metrics, try_calibrate
from calib.policies import VARIANTS, check_num_bits
from calib.spec import Spec
from calib.sweep import SweepResult


def _variant_row(
    h: Histogram, spec: Spec, result: SweepResult | None, note: str, num_bits: int
) -> Row:
    """A variant's line: its sweep as a :class:`Calibration` of ``spec``, or the refusal."""
    if result is None:
        return Row(spec.variant, "variant", Calibration.refused(spec, note), h.max_abs, note)
    amax = float(result.amax)
    metrics = clip_metrics(h, amax, num_bits) if amax > 0 and not h.is_dead else None
    cal = Calibration(
        spec=spec, amax=amax, metrics=metrics, note=note, sweep=result, dead=h.is_dead
    )
    return Row(spec.variant, "variant", cal, h.max_abs, note)


def _method_spec(method: Any, num_bits: int, target_bins: int | None) -> Spec:
    """A method row's spec: its text, at ``num_bits`` and ``target_bins`` unless it says."""
    spec = Spec.parse(method).at_bits(num_bits)
    if spec.method == "entropy" and target_bins is not None and spec.levels is None:
        spec = dataclasses.replace(spec, levels=target_bins)
    return spec


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
        Levels for every variant (and the entropy method); None gives each its own for
        ``num_bits`` (:func:`calib.policies.levels_for`: at 8 bits 255 for MXNet, 128 for
        the others).
    variants, methods : iterables of str
        Which rows to compute: names from ``VARIANTS``, and calibrators (``METHODS``, or
        any :class:`calib.Spec` or its text, ``"percentile:99.9"``; one that names no bits
        is at ``num_bits``).
    num_bits : int
        The quantizer: the metrics, the "mse" method and every variant's levels
        (``levels_for(variant, num_bits)`` unless ``target_bins`` is given).
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
    num_bits = check_num_bits(num_bits)
    _levels("seed", target_bins)  # checks target_bins
    specs = [(m, _method_spec(m, num_bits, target_bins)) for m in methods]
    sw = Sweeper(h, workers)
    # the attributions' sweeps include every variant's own: run them all in one batch
    attributions = (
        attribute_all(h, target_bins, variants=variants, num_bits=num_bits, sweeper=sw)
        if explain
        else {}
    )
    sw.prefetch((VARIANTS[v], _levels(v, target_bins, num_bits)) for v in variants)
    rows, sweeps = [], {}
    for name in variants:
        spec = Spec("entropy", name, num_bits, levels=_levels(name, target_bins, num_bits))
        run = sw.run(VARIANTS[name], spec.target_bins)
        if run.result is not None:
            sweeps[name] = run.result
        rows.append(_variant_row(h, spec, run.result, run.note, num_bits))
    for method, spec in specs:
        c = try_calibrate(h, spec)
        note = c.error or (_undefined_note(c.sweep) if c.sweep is not None else "")
        rows.append(Row(str(method), "method", c, h.max_abs, note))
    return Comparison(
        histogram=h,
        max_abs=h.max_abs,
        rows=tuple(rows),
        sweeps=MappingProxyType(sweeps),
        attributions=MappingProxyType(attributions),
        n_sweeps=sw.n_sweeps,
    )


def histogram_digest(hist: Histogram) -> str:
    """A short digest of a histogram's counts and edges: a primitive cache key."""
    d = hashlib.blake2b(digest_size=16)
    for a in (hist.counts, hist.edges):
        d.update(str(a.dtype).encode())
        d.update(np.ascontiguousarray(a).tobytes())
    return d.hexdigest()
