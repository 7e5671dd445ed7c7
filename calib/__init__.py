"""calib: KL-divergence (entropy) INT8 calibration, exact and vectorised.

The core (this package's numerical modules) imports numpy and the standard library only.
"""

from calib.histogram import DEFAULT_BINS, Histogram, as_histogram

__all__ = ["DEFAULT_BINS", "Histogram", "as_histogram"]
