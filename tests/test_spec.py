"""calib.Spec: one record of a calibration, parsed once, printed back the same."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs

import calib
from calib.methods import DEFAULT_PERCENTILE, METHODS
from calib.policies import POLICY_CHOICES, VARIANTS, levels_for
from calib.spec import Spec


@pytest.mark.parametrize(
    "text, method, variant, bits, target_bins, canonical",
    [
        ("max", "max", None, 8, None, "max"),
        ("mse", "mse", None, 8, None, "mse"),
        ("percentile", "percentile", None, 8, None, "percentile"),
        ("percentile:99.9", "percentile", None, 8, None, "percentile:99.9"),
        ("entropy", "entropy", "seed", 8, 128, "entropy:seed"),
        ("entropy:seed", "entropy", "seed", 8, 128, "entropy:seed"),
        ("entropy:mxnet", "entropy", "mxnet", 8, 255, "entropy:mxnet"),
        ("entropy:onnxruntime@4", "entropy", "onnxruntime", 4, 8, "entropy:onnxruntime@4"),
        ("entropy:mxnet@4", "entropy", "mxnet", 4, 15, "entropy:mxnet@4"),
        ("entropy:modelopt@u8", "entropy", "modelopt", 8, 256, "entropy:modelopt@u8"),
        (" entropy : ncnn @ 8 ", "entropy", "ncnn", 8, 128, "entropy:ncnn"),
        ("entropy@13", "entropy", "seed", 13, 4096, "entropy:seed@13"),
        ("entropy/levels=128", "entropy", "seed", 8, 128, "entropy:seed"),  # its own: dropped
        ("entropy/levels=100", "entropy", "seed", 8, 100, "entropy:seed/levels=100"),
        ("entropy:seed/smoothing=none", "entropy", "seed", 8, 128, "entropy:seed"),  # preset
        ("percentile:99.99", "percentile", None, 8, None, "percentile"),
        ("mse@4/start_bin=0", "mse", None, 4, None, "mse@4/start_bin=0"),
    ],
)
def test_parse(text, method, variant, bits, target_bins, canonical):
    s = Spec.parse(text)
    assert (s.method, s.variant, s.num_bits, s.target_bins) == (method, variant, bits, target_bins)
    assert str(s) == canonical and Spec.parse(canonical) == s


def test_fields_and_defaults():
    s = Spec.parse("entropy:onnxruntime@4/smoothing=add_eps/eps=1e-05")
    assert s.overrides == (("smoothing", "add_eps"), ("eps", 1e-05))  # Policy field order
    assert s.policy == calib.policies.resolve_policy(
        "onnxruntime", {"smoothing": "add_eps", "eps": 1e-05}
    )
    assert s.levels is None and s.target_bins == levels_for("onnxruntime", 4) == 8
    assert str(s) == "entropy:onnxruntime@4/smoothing=add_eps/eps=1e-05"
    assert Spec("percentile").percentile == DEFAULT_PERCENTILE
    assert Spec("max").percentile is None and Spec("max").policy is None
    # overrides as a mapping or as pairs: the same record, hashable
    a = Spec("entropy", "mxnet", overrides={"ties": "last"})
    b = Spec("entropy", "mxnet", overrides=(("ties", "last"),))
    assert a == b and hash(a) == hash(b) and calib.Spec is Spec


def test_levels_follow_the_bits():
    """Levels left to the variant are the variant's own at every width (a spec moved to
    other bits does not keep 8-bit levels); levels set stay set."""
    s = Spec.parse("entropy:mxnet")
    assert s.with_quantizer(4).target_bins == 15
    assert dataclasses.replace(s, num_bits=13).target_bins == 2**13 - 1
    assert Spec.parse("entropy/levels=100").with_quantizer(4).target_bins == 100


@pytest.mark.parametrize(
    "text, says",
    [
        ("entropy:tvm", "variant must be one of"),
        ("kl", "unknown method 'kl'"),
        ("max:3", "takes no ':' argument"),
        ("percentile:abc", "must be a number"),
        ("percentile:101", "percentile must be a number in"),
        ("entropy@1", "num_bits must be an integer in 2..16"),
        ("entropy@x", "the bits must be an integer"),
        ("entropy/foo=1", "takes no option 'foo'"),
        ("mse/levels=3", "takes no option 'levels'"),
        ("max/stride=2", "takes no option 'stride'"),
        ("entropy/smoothing=bogus", "smoothing must be one of"),
        ("entropy:seed/merge=whole/remainder=orphan", "needs normalize='pq'"),
        ("entropy/levels=0", "levels (target_bins) must be at least 2"),
        ("entropy/levels=1", "levels (target_bins) must be at least 2"),
        ("entropy/levels", "is not KEY=VALUE"),
        ("entropy/levels=3/levels=4", "given twice"),
        ("", "unknown method ''"),
    ],
)
def test_errors_name_the_text_and_what_is_allowed(text, says):
    with pytest.raises(ValueError) as info:
        Spec.parse(text)
    msg = str(info.value)
    assert says in msg and repr(text.strip()) in msg
    assert "METHOD[:ARG][@BITS][/KEY=VALUE]" in msg and "max, percentile, mse, entropy" in msg


def test_refuses_what_does_not_apply():
    for kw in ({"variant": "seed"}, {"levels": 128}, {"percentile": 99.0}):
        with pytest.raises(ValueError, match="applies to method"):
            Spec("max", **kw)
    with pytest.raises(ValueError, match="takes no overrides"):
        Spec("percentile", overrides={"stride": 2})
    with pytest.raises(ValueError, match="levels="):
        Spec("entropy", overrides={"target_bins": 64})
    with pytest.raises(ValueError, match="unknown policy"):
        Spec("entropy", overrides={"colour": "red"})
    with pytest.raises(ValueError, match="calibrator"):
        Spec.parse(["entropy"])
    with pytest.raises(ValueError, match="MAX_NAME_CHARS"):
        Spec.parse("entropy" + "/x=1" * 1000)


# -- the round trip, over generated specs --------------------------------------------------
_policy_values = {
    **{k: hs.sampled_from(v) for k, v in POLICY_CHOICES.items()},
    "start_bin": hs.integers(1, 4096),
    "stride": hs.integers(1, 64),
    "eps": hs.floats(1e-9, 0.5, allow_nan=False).filter(lambda x: 0 < x < 1),
}


@hs.composite
def specs(draw) -> Spec:
    method = draw(hs.sampled_from(METHODS))
    kw = {"num_bits": draw(hs.integers(2, 16)), "unsigned": draw(hs.booleans())}
    if method == "entropy":
        kw["variant"] = draw(hs.sampled_from(tuple(VARIANTS)))
        kw["levels"] = draw(hs.none() | hs.integers(2, 8192))
        keys = draw(hs.lists(hs.sampled_from(sorted(_policy_values)), max_size=3, unique=True))
        kw["overrides"] = {k: draw(_policy_values[k]) for k in keys}
    elif method == "percentile":
        kw["percentile"] = draw(hs.none() | hs.floats(0, 100))
    elif method == "mse":
        kw["overrides"] = draw(
            hs.fixed_dictionaries({}, optional={"start_bin": hs.integers(0, 4096),
                                                "stride": hs.integers(1, 64)})
        )  # fmt: skip
    try:
        return Spec(method, **kw)
    except ValueError:  # a policy combination the variant refuses
        return Spec(method, **{k: v for k, v in kw.items() if k != "overrides"})


@given(specs())
def test_parse_of_str_is_the_spec(s):
    text = str(s)
    assert Spec.parse(text) == s
    assert str(Spec.parse(text)) == text
    assert Spec.parse(s) is s
    assert repr(s) == f"Spec.parse({text!r})"  # the call that makes it


@given(specs())
def test_target_bins_come_from_levels_for(s):
    if s.method != "entropy":
        assert s.target_bins is None and s.levels is None
    elif s.levels is None:
        assert s.target_bins == levels_for(s.variant, s.num_bits, s.unsigned)
    else:
        assert s.target_bins == s.levels != levels_for(s.variant, s.num_bits, s.unsigned)


# -- calibrate takes it ------------------------------------------------------------------
def _hist():
    rng = np.random.default_rng(3)
    return calib.Histogram.from_samples(rng.laplace(size=50_000), bins=2048)


@pytest.mark.parametrize(
    "text, call",
    [
        ("entropy:mxnet@4", {"method": "entropy", "num_bits": 4, "variant": "mxnet"}),
        ("entropy:seed/levels=64", {"method": "entropy", "target_bins": 64}),
        ("percentile:99.9@u8", {"method": "percentile", "percentile": 99.9, "unsigned": True}),
        ("mse@6/start_bin=0", {"method": "mse", "num_bits": 6, "start_bin": 0}),
        ("max", {"method": "max"}),
    ],
)
def test_calibrate_takes_a_spec_or_its_text_or_the_old_keywords(text, call):
    h = _hist()
    by_spec = calib.calibrate(h, Spec.parse(text))
    by_text = calib.calibrate(h, text)
    by_keywords = calib.calibrate(h, **call)
    assert by_spec.spec == by_text.spec == by_keywords.spec == Spec.parse(text)
    assert by_spec.amax == by_text.amax == by_keywords.amax
    assert by_spec.name == str(Spec.parse(text))


def test_calibrate_refuses_keywords_that_contradict_the_spec():
    with pytest.raises(ValueError, match="contradicts"):
        calib.calibrate(_hist(), "entropy@4", num_bits=6)
    with pytest.raises(ValueError, match="variant='ncnn' contradicts the spec 'entropy:mxnet'"):
        calib.calibrate(_hist(), "entropy:mxnet", variant="ncnn")
    with pytest.raises(ValueError, match="contradicts"):
        calib.calibrate(_hist(), "percentile:99.9", percentile=50.0)
    # the same width, or the default, leaves the spec alone
    assert calib.calibrate(_hist(), "entropy@4", num_bits=4).spec.num_bits == 4
    assert calib.calibrate(_hist(), "entropy@4").sweep.target_bins == 8


def test_try_calibrate_keeps_a_refusal_as_a_record():
    h = calib.Histogram(np.ones(64), np.linspace(0, 1, 65))
    c = calib.methods.try_calibrate(h, "entropy")  # 128 levels on 64 bins
    assert np.isnan(c.amax) and c.metrics is None and "target_bins" in c.error
    assert c.name == "entropy:seed" and np.isnan(c.kl) and np.isnan(c.sqnr_db)
    ok = calib.methods.try_calibrate(h, "max")
    assert ok.amax == 1.0 and ok.error == "" and ok.metrics is not None
