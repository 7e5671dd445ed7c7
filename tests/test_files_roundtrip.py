"""Every file calib writes, every calib reader that takes it reads back (issue 17, item 1).

Property: for collections of 1 to ``MAX_LAYERS`` tensors named as exporters name them
(``/bert/encoder/layer.11/attention/self/Reshape_3_output_0``, padded up to
``MAX_NAME_CHARS``), with Reshape/Transpose aliases and masks in the provenance and with
or without convergence traces, the histogram file, the TensorRT cache and the ONNX Runtime
calibration.json / calibration.cache written from it, and the table's CSV and JSON, are all
read back whole by every reader. The default run draws a few small examples in seconds;
``-m slow`` sweeps up to ``MAX_LAYERS`` tensors of ``MAX_NAME_CHARS`` characters.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import calib
from calib import limits, report
from calib.collect import Collection, collect_meta
from calib.convergence import CONVERGENCE_METHODS
from calib.io.histograms import Trace, load_histograms_and_meta

OPS = ("Reshape", "Transpose", "MatMul", "Add", "Softmax", "Mul", "Div", "Erf")
PAD = "abcdefghijklmnopqrstuvwxyz0123456789._-/:[] "  # what exporters' scopes are made of
MASK_WHY = (
    "holds -3.4e+38 at 'batch 0': an additive mask (values of magnitude 1e+30 or more), "
    "not an activation to quantize"
)


def exporter_name(i: int, length: int, pad: str) -> str:
    """Tensor ``i``'s name as an exporter writes it, padded with scope text to ``length``
    characters (at most MAX_NAME_CHARS), unique by ``i``."""
    tail = f"/encoder/layer.{i % 12}/attention/self/{OPS[i % len(OPS)]}_{i}_output_0"
    room = max(0, min(length, limits.MAX_NAME_CHARS) - len(tail) - len("/bert"))
    scope = (pad * (room // max(len(pad), 1) + 1))[:room] if pad else ""
    return ("/bert" + scope + tail)[: limits.MAX_NAME_CHARS]


@st.composite
def collections(draw, most: int):
    """A collection as ``collect`` hands it to ``save_histograms``: histograms, aliases,
    masks left out, optionally traces; and the provenance ``collect_meta`` writes."""
    n = draw(st.integers(1, most))
    length = draw(st.sampled_from([40, 60, 120, 400, limits.MAX_NAME_CHARS]))
    pad = draw(st.text(alphabet=PAD, min_size=0, max_size=24))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    names = [exporter_name(i, length, pad) for i in range(n)]
    hists = {}
    for name in names:
        bins = int(rng.integers(1, 33))
        counts = rng.integers(0, 1000, 2 * bins)
        m = float(rng.uniform(1e-3, 100))
        hists[name] = calib.Histogram(counts, np.linspace(-m, m, 2 * bins + 1))
    # every tensor a view of the one before it: the most aliases a collection can list
    aliases = {names[i]: names[i - 1] for i in range(1, n) if draw(st.booleans()) or n > 64}
    masks = {exporter_name(n + k, length, pad): MASK_WHY for k in range(draw(st.integers(0, 3)))}
    traced = draw(st.booleans())
    traces = {}
    if traced:
        batches = draw(st.integers(1, 6))
        samples = np.cumsum(rng.integers(1, 64, batches))
        traces = {
            name: Trace(samples, {m: rng.uniform(0, 10, batches) for m in CONVERGENCE_METHODS})
            for name in names
        }
    found = Collection(hists, masks, aliases, int(samples[-1]) if traced else 64, 2, traces)
    meta = collect_meta(
        "model.onnx", found.n_samples, inputs="calib.npz", bins=16, signed=True,
        tensors=None, op_types=None, batches=found.n_batches, aliases=found.aliases,
        not_activations=found.not_activations,
    )  # fmt: skip
    return found, meta


def check_round_trip(tmp_path, found, meta) -> None:
    h = tmp_path / "H.npz"
    calib.save_histograms(h, found.histograms, meta=meta, traces=found.traces or None)

    # the histogram file: every reader, whole
    hists = calib.load_histograms(h)
    assert list(hists) == list(found.histograms)
    for name, want in found.histograms.items():
        np.testing.assert_array_equal(hists[name].counts, want.counts)
        np.testing.assert_array_equal(hists[name].edges, want.edges)
    assert calib.load_histograms_meta(h) == json.loads(json.dumps(meta))
    assert list(calib.load_histogram_file(h)) == list(found.histograms)
    assert load_histograms_and_meta(h)[1]["aliases"] == found.aliases
    with open(h, "rb") as f:  # a file object, as the app hands an upload over
        assert list(calib.load_histogram_file(f, "upload.npz")) == list(found.histograms)
    traces = calib.load_convergence(h)
    assert set(traces) == (set(found.traces) if found.traces else set())
    for name, t in traces.items():
        np.testing.assert_array_equal(t.samples, found.traces[name].samples)
        assert list(t.amax) == list(found.traces[name].amax)

    # the exports of its thresholds (max: the sweep is not what is tested here)
    rows = report.layer_table(hists, "max", "seed", 8)
    trt_text, skipped = report.trt_cache_text(rows)
    (tmp_path / "cache.trt").write_text(trt_text)
    amax = calib.read_trt_cache(tmp_path / "cache.trt")
    assert list(amax) == [r.layer for r in rows if r.layer not in skipped]
    ort_text, _ = report.ort_json_text(rows, "max")
    (tmp_path / "calibration.json").write_text(ort_text)
    table = calib.read_ort_calibration_json(tmp_path / "calibration.json")
    assert list(table.ranges) == list(amax)
    highest = {n: hi for n, (_, hi) in table.ranges.items()}
    calib.write_ort_calibration_cache(tmp_path / "calibration.cache", highest)
    assert calib.read_ort_calibration_cache(tmp_path / "calibration.cache") == highest
    calib.write_trt_cache(tmp_path / "again.trt", amax)
    assert calib.read_trt_cache(tmp_path / "again.trt") == pytest.approx(amax, rel=1e-6)

    # the table's CSV and JSON exports parse back to the same rows
    recs = report.records(rows)
    got = list(csv.DictReader(io.StringIO(report.records_csv(recs))))
    assert [r["layer"] for r in got] == list(hists)
    doc = json.loads(report.records_json(recs, {"method": "max"}))
    assert [r["layer"] for r in doc["layers"]] == list(hists)


FIXTURE = [HealthCheck.function_scoped_fixture]  # tmp_path is written over by each example


@settings(max_examples=6, deadline=None, suppress_health_check=FIXTURE)
@given(case=collections(most=48))
def test_every_file_written_is_read_back(tmp_path, case):
    check_round_trip(tmp_path, *case)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURE)
@given(case=collections(most=limits.MAX_LAYERS))
def test_every_file_written_is_read_back_up_to_max_layers(tmp_path, case):
    check_round_trip(tmp_path, *case)


def test_long_provenance_is_a_document_not_a_name(tmp_path):
    """The provenance of an exported transformer, thousands of aliases long, reads back
    (on main: "'meta.npy' holds strings of ... characters, more than MAX_NAME_CHARS")."""
    names = [exporter_name(i, 90, "") for i in range(1000)]
    aliases = {f"{n}/Reshape_output_0": n for n in names}
    meta = collect_meta("model.onnx", 8, aliases=aliases)
    assert len(json.dumps(meta)) > 100 * limits.MAX_NAME_CHARS
    h = tmp_path / "H.npz"
    calib.save_histograms(h, {n: calib.Histogram.from_counts([1, 2, 3]) for n in names}, meta)
    assert calib.load_histograms_meta(h)["aliases"] == aliases
    assert len(calib.load_histograms(h)) == 1000


def test_metadata_past_its_bound_is_refused_by_the_writer_and_the_reader(tmp_path, monkeypatch):
    h = tmp_path / "H.npz"
    hists = {"x": calib.Histogram.from_counts([1, 2])}
    monkeypatch.setattr(limits, "MAX_META_CHARS", 1000)
    with pytest.raises(ValueError, match="MAX_META_CHARS = 1,000"):
        calib.save_histograms(h, hists, meta={"note": "x" * 1000})
    calib.save_histograms(h, hists, meta={"note": "x" * 900})
    monkeypatch.setattr(limits, "MAX_META_CHARS", 500)
    with pytest.raises(ValueError, match=r"'meta\.npy' holds strings of .* MAX_META_CHARS = 500"):
        calib.load_histograms(h)


@pytest.mark.slow
def test_the_largest_collection_reads_back(tmp_path):
    """MAX_LAYERS tensors of MAX_NAME_CHARS characters, every one an alias, with traces."""
    n, length = limits.MAX_LAYERS, limits.MAX_NAME_CHARS
    names = [exporter_name(i, length, "/very/long/scope") for i in range(n)]
    hists = {nm: calib.Histogram.from_counts([1, 2, 3, 4]) for nm in names}
    aliases = {names[i]: names[i - 1] for i in range(1, n)}
    samples = np.array([4, 8])
    traces = {nm: Trace(samples, {"max": np.array([1.0, 2.0])}) for nm in names}
    found = Collection(hists, {}, aliases, 8, 2, traces)
    meta = collect_meta("model.onnx", 8, aliases=aliases, not_activations={})
    check_round_trip(tmp_path, found, meta)
