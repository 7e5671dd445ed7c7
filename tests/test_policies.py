"""calib.policies: the presets, and the one rule for the number of levels at a bit width."""

import contextlib
import io
import json

import numpy as np
import pytest

import calib
import calib.explore
from calib import report
from calib.cli import main
from calib.histogram import Histogram
from calib.methods import calibrate
from calib.policies import DEFAULT_TARGET_BINS, VARIANTS, check_num_bits, levels_for
from calib.sweep import kl_sweep

# By hand: a signed b-bit quantizer has 2**(b-1) levels of one sign, MXNet counts both
# signs' (2**b - 1), an unsigned one has 2**b.
EXPECTED = {
    ("seed", 8, False): 128,
    ("mxnet", 8, False): 255,
    ("mxnet", 4, False): 15,
    ("onnxruntime", 4, False): 8,
    ("modelopt", 8, True): 256,
    ("ncnn", 2, False): 2,
    ("seed", 12, False): 2048,
}


@pytest.mark.parametrize(("key", "levels"), EXPECTED.items())
def test_levels_for_a_bit_width(key, levels):
    assert levels_for(*key) == levels


def test_int8_levels_are_the_presets_defaults():
    assert DEFAULT_TARGET_BINS == {v: levels_for(v, 8) for v in VARIANTS}
    assert DEFAULT_TARGET_BINS["mxnet"] == 255 and DEFAULT_TARGET_BINS["seed"] == 128


@pytest.mark.parametrize("bad", [1, 17, 8.0, True, "8", None])
def test_bad_bit_widths_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="num_bits"):
        check_num_bits(bad)
    with pytest.raises(ValueError, match="num_bits"):
        levels_for("seed", bad)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        levels_for("tensorrt")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("num_bits", [4, 6, 8])
def test_every_caller_uses_the_same_levels(tmp_path, variant, num_bits):
    """calibrate, the Layers table, the command line and Explore clip where the sweep does
    at levels_for(variant, num_bits): the rule has one home, and no caller drifts from it.
    (MXNet at 4 bits once got 15 levels on Explore and 8 everywhere else.)"""
    rng = np.random.default_rng(num_bits)
    h = Histogram.from_samples(rng.laplace(size=20_000), bins=512)
    want = kl_sweep(h, levels_for(variant, num_bits), variant).amax
    assert calibrate(h, "entropy", num_bits, variant=variant).amax == want
    row = report.layer_table({"t": h}, "entropy", variant, num_bits)[0]
    assert row.amax == want
    assert calib.explore.build_view(h, variant, num_bits=num_bits).result.amax == want
    path = tmp_path / "h.npz"
    calib.save_histograms(path, {"t": h})
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main([str(path), "--variant", variant, "--num-bits", str(num_bits), "--format",
                     "json"])  # fmt: skip
    assert code == 0
    assert json.loads(buf.getvalue())[0]["amax"] == pytest.approx(want, rel=1e-12)
