"""Built-in demo activations: the typical shapes and failure modes of a calibration.

Each demo is seeded raw samples (so the histogram size is a real choice), except the seed's
own ramp, which is a histogram by definition. numpy only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from calib.histogram import DEFAULT_BINS, Histogram

__all__ = ["DEMOS", "Demo", "demo_histogram", "demo_samples"]

_N = 200_000


@dataclasses.dataclass(frozen=True)
class Demo:
    name: str
    what: str  # one line: what it shows
    make: Callable[[np.random.Generator], np.ndarray] | None  # samples; None for the ramp


def _relu_spike(rng: np.random.Generator) -> np.ndarray:
    x = np.maximum(rng.standard_normal(_N), 0.0)  # half the values exactly zero
    return np.concatenate([x, rng.uniform(6.0, 12.0, 20)])


def _gelu(rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal(_N) * 1.5
    # the tanh form of GELU, as most frameworks compute it
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def _bimodal(rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(1.0, 0.25, _N // 2)
    b = rng.normal(4.0, 0.5, _N // 2)
    return np.concatenate([a, b]) * np.where(rng.random(_N) < 0.5, -1.0, 1.0)


def _uniform_outlier(rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.uniform(-1.0, 1.0, _N), [25.0]])


DEMOS: dict[str, Demo] = {
    d.name: d
    for d in (
        Demo("Seed ramp", "The seed's own example: counts rising linearly over 2048 bins. "
             "The seed keeps 2047 bins.", None),
        Demo("Half-normal", "|N(0, 1)|: a smooth tail, the textbook case.",
             lambda r: r.standard_normal(_N)),
        Demo("Laplace", "A heavier tail than a Gaussian, as in many conv outputs.",
             lambda r: r.laplace(0.0, 1.0, _N)),
        Demo("ReLU with zero spike", "Half the values exactly zero plus 20 far outliers: "
             "the spike drags the seed's clip down.", _relu_spike),
        Demo("GELU", "A transformer FFN activation: a small negative lobe, a long positive "
             "side.", _gelu),
        Demo("Bimodal", "Two clusters: does the clip keep the outer one? The seed's does "
             "not.", _bimodal),
        Demo("Uniform + one outlier", "Flat values in [-1, 1] and one value at 25: max "
             "calibration wastes 96% of the range.", _uniform_outlier),
        Demo("Dead layer", "Every count zero: no clip is defined, amax is 0.",
             lambda r: np.zeros(_N)),
    )
}  # fmt: skip


def demo_samples(name: str, seed: int = 0) -> np.ndarray | None:
    """The demo's raw samples (None for the seed ramp, which is a histogram)."""
    if name not in DEMOS:
        raise ValueError(f"demo must be one of {tuple(DEMOS)}, got {name!r}")
    make = DEMOS[name].make
    return None if make is None else make(np.random.default_rng(seed))


def demo_histogram(name: str, bins: int = DEFAULT_BINS, seed: int = 0) -> Histogram:
    """The demo as a histogram of |x| with ``bins`` bins."""
    if name == "Seed ramp":
        ramp = np.arange(2048, dtype=np.float64)
        h = Histogram(ramp / ramp.sum(), np.arange(2049, dtype=np.float64))
        return h if bins >= h.n_bins else h.rebin(bins)
    if name == "Dead layer":
        return Histogram(np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1))
    return Histogram.from_samples(demo_samples(name, seed), bins=bins)
