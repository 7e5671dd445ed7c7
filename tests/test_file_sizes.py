"""Every size read from a file is bounded before it sizes a loop or an allocation, and an
archive holding two members of one name is refused (issue 21, items 3 and 5)."""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pytest

import calib
from calib import limits
from calib.collect import load_inputs


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a))
    return buf.getvalue()


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": the point of the file
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


# -- inputs: batch keys ---------------------------------------------------------------------
def test_a_huge_batch_index_is_refused_by_its_key(tmp_path):
    """A 576-byte file once built range(10**20) (4.7 GB, then a MemoryError)."""
    path = tmp_path / "bomb.npz"
    path.write_bytes(npz_bytes(x__b0=np.ones(2), x__b99999999999999999999=np.ones(2)))
    with pytest.raises(ValueError, match=r"batch 9999.*MAX_BATCHES = 1,048,576"):
        load_inputs(path)
    with pytest.raises(ValueError, match="MAX_BATCHES"):  # a long run of digits too
        load_inputs(io.BytesIO(npz_bytes(x__b0=np.ones(2), **{"x__b" + "9" * 5000: np.ones(2)})))


def test_a_gap_in_the_batches_is_named_without_building_a_range():
    data = npz_bytes(x__b0=np.ones(2), x__b1=np.ones(2), x__b1000000=np.ones(2))
    with pytest.raises(ValueError, match="has no batch 2 "):
        load_inputs(io.BytesIO(data))


def test_more_arrays_than_batches_allow_are_refused(monkeypatch):
    monkeypatch.setattr(limits, "MAX_BATCHES", 3)
    data = npz_bytes(**{f"x__b{k}": np.ones(1) for k in range(4)})
    with pytest.raises(ValueError, match="holds 4 arrays, more than MAX_BATCHES = 3"):
        load_inputs(io.BytesIO(data))


# -- duplicate archive members --------------------------------------------------------------
def test_inputs_with_two_members_of_one_name_are_refused():
    data = zip_of([("x.npy", npy_bytes(np.zeros(2))), ("x.npy", npy_bytes(np.ones(2)))])
    with pytest.raises(ValueError, match="two arrays named 'x'"):
        load_inputs(io.BytesIO(data))
    data = zip_of([("x", npy_bytes(np.zeros(2))), ("x.npy", npy_bytes(np.ones(2)))])
    with pytest.raises(ValueError, match="two arrays named 'x'"):  # numpy's one key for both
        load_inputs(io.BytesIO(data))


def test_a_histogram_file_with_two_members_of_one_name_is_refused(tmp_path):
    good = tmp_path / "h.npz"
    calib.save_histograms(good, {"a": calib.Histogram.from_counts([1, 2, 3])})
    with zipfile.ZipFile(good) as zf:
        members = [(n, zf.read(n)) for n in zf.namelist()]
    other = npy_bytes(np.array([9, 9, 9]))
    for bad in ([*members, ("counts_0.npy", other)], [("counts_0.npy", other), *members]):
        path = tmp_path / "dup.npz"
        path.write_bytes(zip_of(bad))
        for read in (calib.load_histograms, calib.load_histograms_meta, calib.load_convergence):
            with pytest.raises(ValueError, match="two arrays named 'counts_0'"):
                read(path)
    plain = zip_of([("a.npy", npy_bytes([1, 2])), ("a.npy", npy_bytes([3, 4]))])
    with pytest.raises(ValueError, match="duplicate archive members"):
        calib.load_histogram_file(io.BytesIO(plain), "plain.npz")


# -- convergence traces ---------------------------------------------------------------------
def trace_file(methods, samples=(4, 8), amax=None) -> io.BytesIO:
    methods = np.array(methods, dtype=str)
    samples = np.asarray(samples, dtype=np.int64)
    if amax is None:
        amax = np.ones((methods.size, samples.size))
    data = npz_bytes(
        format=np.array("calib-histograms"), version=np.array(1, dtype=np.int64),
        names=np.array(["a"]), counts_0=np.array([1, 2, 3]), edges_0=np.arange(4.0),
        trace_samples=samples, trace_methods=methods, trace_0=amax,
    )  # fmt: skip
    return io.BytesIO(data)


def test_a_trace_naming_100000_methods_is_refused_before_any_loop():
    """100,000 names once held converge 12 s and Layers 123 s (3 million: past 300 s)."""
    methods = [f"entropy:m{k}" for k in range(100_000)]
    f = trace_file(methods, samples=[4], amax=np.ones((100_000, 1)))
    with pytest.raises(ValueError, match="100,000 methods, more than MAX_TRACE_METHODS = 64"):
        calib.load_convergence(f)


def test_a_trace_names_each_method_once_and_counts_samples_up():
    with pytest.raises(ValueError, match="names 'max' twice"):
        calib.load_convergence(trace_file(["max", "percentile", "max"]))
    with pytest.raises(ValueError, match="never decrease"):
        calib.load_convergence(trace_file(["max"], samples=[8, 4]))
    traces = calib.load_convergence(trace_file(["max", "percentile"]))
    assert list(traces["a"].amax) == ["max", "percentile"]


def test_a_trace_longer_than_max_batches_is_refused(monkeypatch):
    monkeypatch.setattr(limits, "MAX_BATCHES", 3)
    with pytest.raises(ValueError, match="4 batches, more than MAX_BATCHES = 3"):
        calib.load_convergence(trace_file(["max"], samples=[1, 2, 3, 4]))


def test_an_array_declaring_more_than_its_member_holds_is_refused_before_numpy_allocates():
    """On the command line (no byte budget) too: a 200-byte member whose header declares a
    terabyte made numpy allocate it before reading a byte."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2**37,)}
    )
    data = zip_of([("x.npy", header.getvalue() + b"\0" * 64)])
    with pytest.raises(ValueError, match="declares shape"):
        load_inputs(io.BytesIO(data))
    # and a directory that lies about the unpacked size (2 GB) does not make it look present:
    # 100 deflated bytes unpack to at most 1032 times as many
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2**27,)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", header.getvalue() + b"\0" * 64)
    raw = bytearray(buf.getvalue())
    for sig, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        i = raw.find(sig)
        raw[i + offset : i + offset + 4] = (2**31).to_bytes(4, "little")
    with pytest.raises(ValueError, match="declares shape"):
        load_inputs(io.BytesIO(bytes(raw)))
    # an honest archive loads as it did
    assert load_inputs(io.BytesIO(npz_bytes(x=np.arange(3.0))))["x"].tolist() == [0, 1, 2]
