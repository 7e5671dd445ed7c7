"""Tests of calib.io: every format round-trips, every bad input is a clear ValueError."""

from __future__ import annotations

import ast
import io
import json
import math
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib import io as cio
from calib import limits
from calib.histogram import Histogram
from calib.io import (
    _safe,
    load_histogram_file,
    load_histograms,
    load_histograms_meta,
    load_samples_file,
    read_ort_calibration_cache,
    read_ort_calibration_json,
    read_trt_cache,
    read_trt_cache_full,
    save_histograms,
    write_ort_calibration_cache,
    write_ort_calibration_json,
    write_trt_cache,
)

FAST = settings(max_examples=40, deadline=None)

# Names a user may give a layer: spaces, slashes, ': ', brackets, emoji, blanks.
NASTY_NAMES = [
    "conv1",
    "a b",
    "x/y/z",
    "tensor: 0",
    "(Unnamed Layer* 3) [Convolution]_output",
    "🙂",
    " ",
    "",
    "\u200b",
    "counts_0",
    "names",
]


def npz_bytes(**arrays: np.ndarray) -> io.BytesIO:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    return buf


def calib_arrays(**override: np.ndarray) -> dict[str, np.ndarray]:
    """A valid two-layer version-1 file, with some keys replaced (None drops a key)."""
    arrays = {
        "format": np.array("calib-histograms"),
        "version": np.array(1),
        "names": np.array(["a", "b"]),
        "counts_0": np.array([1, 2, 3]),
        "edges_0": np.array([0.0, 1.0, 2.0, 3.0]),
        "counts_1": np.array([4.0, 5.0]),
        "edges_1": np.array([-1.0, 0.0, 1.0]),
    }
    arrays.update(override)
    return {k: v for k, v in arrays.items() if v is not None}


def saved(hists: dict, meta: dict | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    save_histograms(buf, hists, meta)
    buf.seek(0)
    return buf


# -- strategies -----------------------------------------------------------------------------

layer_names = st.text(max_size=12).filter(lambda s: not s.endswith("\0"))


@st.composite
def histograms(draw: st.DrawFn) -> Histogram:
    n = draw(st.integers(2, 40))
    # within calib.limits: an int64 total, a float total up to MAX_MAGNITUDE, non-zero
    # float counts from MIN_MAGNITUDE
    if draw(st.booleans()):
        counts = draw(st.lists(st.integers(0, 2**56), min_size=n, max_size=n))
    else:
        count = st.one_of(st.just(0.0), st.floats(1e-99, 1e98))
        counts = draw(st.lists(count, min_size=n, max_size=n))
    start = draw(st.floats(-1e6, 1e6))
    widths = draw(st.lists(st.floats(1e-3, 1e3), min_size=n, max_size=n))
    return Histogram(counts, start + np.concatenate([[0.0], np.cumsum(widths)]))


# -- the project's .npz ---------------------------------------------------------------------


@FAST
@given(st.dictionaries(layer_names, histograms(), min_size=1, max_size=5))
def test_npz_round_trip_any_unicode_names(hists: dict) -> None:
    back = load_histograms(saved(hists))
    assert list(back) == list(hists)  # same names, same order
    for name, h in hists.items():
        assert back[name] == h
        assert back[name].counts.dtype == h.counts.dtype


def test_npz_round_trip_nasty_names_in_given_order(tmp_path: Path) -> None:
    hists = {name: Histogram.from_counts([i, i + 1, 2]) for i, name in enumerate(NASTY_NAMES)}
    hists = dict(reversed(hists.items()))
    path = tmp_path / "layers.npz"
    save_histograms(path, hists)
    back = load_histograms(str(path))
    assert list(back) == list(hists)
    assert all(back[n] == h for n, h in hists.items())


def test_npz_written_under_the_given_name(tmp_path: Path) -> None:
    path = tmp_path / "no_extension"
    save_histograms(path, {"a": Histogram.from_counts([1, 2])})
    assert path.exists() and not (tmp_path / "no_extension.npz").exists()
    with zipfile.ZipFile(path) as zf:  # layer names never become member names
        assert "a.npy" not in zf.namelist()


def test_npz_meta_round_trip_and_default() -> None:
    meta = {"model": "resnet50 ✓", "images": 512, "nested": {"tool": ["calib", 1.5]}}
    h = {"a": Histogram.from_counts([1, 2])}
    assert load_histograms_meta(saved(h, meta)) == meta
    assert load_histograms_meta(saved(h)) == {}


def test_npz_reads_from_bytesio_like_an_upload() -> None:
    class Upload(io.BytesIO):
        name = "model hists.npz"

    upload = Upload(saved({"x": Histogram.from_counts([3, 4])}).getvalue())
    assert load_histogram_file(upload)["x"].counts.tolist() == [3, 4]


@pytest.mark.parametrize(
    ("hists", "meta", "match"),
    [
        ({}, None, "non-empty"),
        ([Histogram.from_counts([1, 2])], None, "non-empty dict"),
        ({1: Histogram.from_counts([1, 2])}, None, "names must be str"),
        ({"a": [1, 2, 3]}, None, "must be a Histogram"),
        ({"a\0": Histogram.from_counts([1, 2])}, None, "NUL"),
        ({"a": Histogram.from_counts([1, 2])}, {"s": {1, 2}}, "JSON-serialisable"),
        ({"a": Histogram.from_counts([1, 2])}, {"x": math.nan}, "JSON-serialisable"),
        ({"a": Histogram.from_counts([1, 2])}, ["not", "a", "dict"], "meta must be a dict"),
    ],
)
def test_save_histograms_refuses(hists: object, meta: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        save_histograms(io.BytesIO(), hists, meta)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"format": np.array("other-format")}, "format is 'other-format', expected"),
        ({"format": np.array(["calib-histograms"])}, "'format' must be a 0-d unicode"),
        ({"version": np.array(2)}, "version 2 is not readable"),
        ({"version": None}, "no 'version'"),
        ({"version": np.array("1")}, "'version' must be a 0-d integer"),
        ({"names": None}, "no 'names'"),
        ({"names": np.array([["a", "b"]])}, "'names' must be a 1-D unicode"),
        ({"names": np.array(["a", "a"])}, "duplicate layer name 'a'"),
        ({"names": np.array([], dtype=str)}, "holds no layers"),
        ({"counts_1": None}, r"layer 'b' \(index 1\) has no 'counts_1'"),
        ({"edges_0": None}, r"layer 'a' \(index 0\) has no 'edges_0'"),
        ({"edges_0": np.array([0.0, 1.0, 2.0])}, "layer 'a': edges must have"),
        ({"counts_1": np.array([1.0, math.nan])}, "layer 'b': counts must be finite"),
        ({"counts_1": np.array(["x", "y"])}, "layer 'b': counts must be a numeric"),
        ({"counts_2": np.array([1, 2])}, r"unexpected keys \['counts_2'\]"),
        ({"meta": np.array("{not json")}, "'meta' is not valid JSON"),
        ({"meta": np.array("[1, 2]")}, "'meta' must hold a JSON object"),
    ],
)
def test_load_histograms_refuses_bad_files(override: dict, match: str) -> None:
    buf = npz_bytes(**calib_arrays(**override))
    with pytest.raises(ValueError, match=match):
        load_histograms(buf)


def test_valid_fixture_loads() -> None:  # so the refusals above are about the override
    hists = load_histograms(npz_bytes(**calib_arrays()))
    assert list(hists) == ["a", "b"]
    assert hists["b"].edges.tolist() == [-1.0, 0.0, 1.0]


_UNPICKLED: list[str] = []


def _mark_unpickled() -> str:
    _UNPICKLED.append("ran")
    return "boom"


class _Payload:
    def __reduce__(self) -> tuple:
        return (_mark_unpickled, ())


def test_pickled_object_npz_is_refused_without_unpickling() -> None:
    names = np.array([_Payload(), _Payload()], dtype=object)
    buf = npz_bytes(**calib_arrays(names=names))
    with pytest.raises(ValueError, match="pickled/object arrays are refused"):
        load_histograms(buf)
    assert _UNPICKLED == []


def test_object_npy_is_refused() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([1, "a", None], dtype=object))
    with pytest.raises(ValueError, match="pickled/object arrays are refused"):
        load_histogram_file(io.BytesIO(buf.getvalue()), "h.npy")
    with pytest.raises(ValueError, match="pickled/object arrays are refused"):
        load_samples_file(io.BytesIO(buf.getvalue()), "x.npy")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "is empty"),
        (b"hello, not a zip", "not an .npz archive"),
    ],
)
def test_not_an_npz(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_histograms(io.BytesIO(data))


def test_npz_with_a_non_npy_member_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("format.npy", b"this is not an npy array")
    with pytest.raises(ValueError, match=r"'format\.npy' is not a readable \.npy array"):
        load_histograms(io.BytesIO(buf.getvalue()))


def test_truncated_npz_is_refused() -> None:
    data = saved({"a": Histogram.from_counts(np.arange(1000))}).getvalue()
    with pytest.raises(ValueError, match=r"not an \.npz archive .*or is truncated"):
        load_histograms(io.BytesIO(data[: len(data) // 2]))


def test_corrupt_npz_member_is_refused() -> None:
    data = bytearray(saved({"a": Histogram.from_counts(np.arange(1000))}).getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("counts_0.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 5 : start + 60] = b"\xff" * 55  # scribble over the deflated data
    with pytest.raises(ValueError, match=r"not a readable"):
        load_histograms(io.BytesIO(bytes(data)))


def test_npy_header_claiming_more_data_than_present_is_refused() -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    buf.write(b"\0" * 64)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_samples_file(io.BytesIO(buf.getvalue()), "x.npy")


def test_file_size_is_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = saved({"a": Histogram.from_counts(np.arange(1, 500))}).getvalue()
    path = tmp_path / "h.npz"
    path.write_bytes(data)
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", len(data) - 1)
    with pytest.raises(ValueError, match="MAX_FILE_BYTES"):
        load_histograms(path)
    with pytest.raises(ValueError, match="MAX_FILE_BYTES"):
        load_histograms(io.BytesIO(data))
    monkeypatch.setattr(limits, "MAX_TEXT_BYTES", len(data) - 1)
    with pytest.raises(ValueError, match="MAX_TEXT_BYTES"):
        read_trt_cache(io.BytesIO(b"TRT-8601-EntropyCalibration2\n" + b"x" * len(data)))
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", len(data))
    assert list(load_histograms(path)) == ["a"]


def test_unpacked_size_is_bounded_after_widening(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, zeros=np.zeros(2**20, np.uint8))  # 1 MiB unpacked, 8 widened
    assert len(buf.getvalue()) < 2**16
    monkeypatch.setattr(limits, "MAX_UNPACKED_BYTES", 4 * 2**20)
    with pytest.raises(ValueError, match=r"unpacks \(widened .*MAX_UNPACKED_BYTES"):
        load_histograms(io.BytesIO(buf.getvalue()))


# -- plain .npz written by other tools ---------------------------------------------------------


def test_plain_npz_bare_counts_and_pairs_in_archive_order() -> None:
    buf = npz_bytes(
        **{
            "conv2": np.array([5, 6, 7]),
            "a/b: c.counts": np.array([1.0, 2.0]),
            "a/b: c.edges": np.array([0.0, 0.5, 2.0]),
            "fc.counts": np.array([3, 4]),
        }
    )
    hists = load_histograms(buf)
    assert list(hists) == ["conv2", "a/b: c", "fc"]
    assert hists["conv2"].edges.tolist() == [0, 1, 2, 3]
    assert hists["a/b: c"].edges.tolist() == [0.0, 0.5, 2.0]
    assert hists["fc"].edges.tolist() == [0, 1, 2]
    assert load_histograms_meta(npz_bytes(conv=np.array([1, 2]))) == {}


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"a": np.array([1, 2]), "a.counts": np.array([1, 2])}, "given both"),
        ({"a.edges": np.array([0.0, 1.0, 2.0])}, "'a.edges' has no matching 'a.counts'"),
        ({"a": np.array([[1, 2], [3, 4]])}, "layer 'a': counts must be 1-D"),
        ({"names": np.array(["a"]), "counts_0": np.array([1, 2])}, "no 'format' key"),
    ],
)
def test_plain_npz_refuses(arrays: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_histograms(npz_bytes(**arrays))


# -- single histograms --------------------------------------------------------------------


def npy(a: np.ndarray) -> io.BytesIO:
    buf = io.BytesIO()
    np.save(buf, a)
    buf.seek(0)
    return buf


def test_npy_counts_are_unit_bins_from_zero() -> None:
    hists = load_histogram_file(npy(np.array([4, 0, 2])), "layer3.npy")
    assert list(hists) == ["layer3"]
    assert hists["layer3"].counts.tolist() == [4, 0, 2]
    assert hists["layer3"].edges.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_npy_lo_hi_count_rows() -> None:
    rows = np.array([[-1.0, 0.0, 5.0], [0.0, 0.5, 6.0], [0.5, 2.0, 7.0]])
    h = load_histogram_file(npy(rows), "r.npy")["r"]
    assert h.edges.tolist() == [-1.0, 0.0, 0.5, 2.0]
    assert h.counts.tolist() == [5.0, 6.0, 7.0]


def test_single_file_from_a_path_takes_its_name(tmp_path: Path) -> None:
    path = tmp_path / "My Layer.NPY"
    path.write_bytes(npy(np.array([1, 2, 3])).getvalue())
    assert list(load_histogram_file(path)) == ["My Layer"]


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((2, 2)), r"got shape \(2, 2\)"),
        (np.zeros((2, 3, 3)), r"got shape \(2, 3, 3\)"),
        (np.array([[0, 1, 1], [2, 3, 1]]), "hi on row 0 .* differs from lo on row 1"),
        (np.array([1.0, np.nan, 2.0]), "counts must be finite"),
        (np.array([1, -2, 3]), "counts must be non-negative"),
        (np.array([5]), "at least 2 bins"),
        (np.array(["1", "2"]), "expected a numeric array"),
    ],
)
def test_npy_histogram_refuses(array: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_histogram_file(npy(array), "h.npy")


@pytest.mark.parametrize(
    ("text", "counts", "edges"),
    [
        ("3\n4\n5\n", [3, 4, 5], [0, 1, 2, 3]),
        ("counts\n3\n4\n", [3, 4], [0, 1, 2]),
        ("Counts , Edges\n3,0\n4,0.5\n,2\n", [3, 4], [0, 0.5, 2]),
        ("edges,counts\r\n0,3\r\n0.5,4\r\n2\r\n", [3, 4], [0, 0.5, 2]),
        ("# counts edges\n# counts,edges\n3,0\n4,1\n,2\n", [3, 4], [0, 1, 2]),
        ("lo,hi,counts\n0,1,3\n\n1,2.5,4\n", [3, 4], [0, 1, 2.5]),
        ("-1,0,2.5\n0,1,3\n", [2.5, 3.0], [-1, 0, 1]),
        ("# comment\n1e3\n2.5\n", [1000.0, 2.5], [0, 1, 2]),
    ],
)
def test_csv_histograms(text: str, counts: list, edges: list) -> None:
    h = load_histogram_file(io.BytesIO(text.encode()), "t.csv")["t"]
    assert h.counts.tolist() == counts
    assert h.edges.tolist() == edges


def test_csv_integer_counts_stay_integer() -> None:
    h = load_histogram_file(io.StringIO("counts\n3\n4\n"), "t.csv")["t"]
    assert h.counts.dtype == np.int64
    h = load_histogram_file(io.StringIO("counts\n3\n4.0\n"), "t.csv")["t"]
    assert h.counts.dtype == np.float64


def test_csv_from_numpy_savetxt(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    np.savetxt(
        path, np.array([[0.0, 1.0, 7.0], [1.0, 3.0, 8.0]]), delimiter=",", header="lo,hi,counts"
    )
    h = load_histogram_file(path)["h"]
    assert h.edges.tolist() == [0.0, 1.0, 3.0]
    assert h.counts.tolist() == [7.0, 8.0]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty"),
        ("counts\n", "no data rows"),
        ("1,2\n3,4\n", "2 columns and no header"),
        ("center,counts\n0.5,1\n1.5,2\n", "is not one of"),
        ("counts,counts\n1,2\n", "is not one of"),
        ("counts\n1\nabc\n4\n", "line 3: counts 'abc' is not a number"),
        ("counts\n1\n2x\n", "line 3: counts '2x' is not a number"),
        ("counts\n1\nnan\n", "counts must be finite"),
        ("counts,edges\n1,0\n2,1\n3,2\n", "leave the counts cell of the last row empty"),
        ("counts,edges\n1,0\n,1\n,2\n", "line 3: the counts cell is empty"),
        ("lo,hi,counts\n0,1,3\n2,3,4\n", "hi on line 2 .* differs from lo on line 3"),
        ("counts\n1\n2,3\n", "line 3 has 2 cells, expected 1"),
        ('counts\n"1\n2\n', "line 3: unexpected end of data"),
        ('counts\n"1"x\n2\n', "line 2: ',' expected"),
    ],
)
def test_csv_histogram_refuses(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_histogram_file(io.BytesIO(text.encode()), "bad.csv")


def test_csv_not_utf8_is_refused() -> None:
    with pytest.raises(ValueError, match="not UTF-8"):
        load_histogram_file(io.BytesIO(b"counts\n\xff\xfe1\n"), "bad.csv")


def test_json_single_and_layers() -> None:
    one = json.dumps({"counts": [1, 2, 3], "edges": [0, 1, 2, 4]})
    h = load_histogram_file(io.StringIO(one), "act.json")
    assert list(h) == ["act"] and h["act"].edges.tolist() == [0, 1, 2, 4]
    unit = load_histogram_file(io.StringIO('{"counts": [1, 2]}'), "u.json")["u"]
    assert unit.edges.tolist() == [0, 1, 2]
    doc = {"layers": {"b: 1": {"counts": [1, 2]}, "a/x": {"counts": [3.5, 4], "edges": [0, 1, 3]}}}
    layers = load_histogram_file(io.StringIO(json.dumps(doc)), "m.json")
    assert list(layers) == ["b: 1", "a/x"]
    assert layers["a/x"].counts.tolist() == [3.5, 4.0]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "not valid JSON"),
        ("[1, 2, 3]", "expected"),
        ('{"lowest": 0, "highest": 1}', "read_ort_calibration_json"),
        ('{"counts": [1, 2], "bins": 2}', r"expected \{'counts'"),
        ('{"counts": "1,2"}', "'counts' must be a list of numbers"),
        ('{"counts": [1, null, 2]}', "'counts' must be a list of numbers"),
        ('{"counts": [true, false]}', "'counts' must be a list of numbers"),
        ('{"counts": [1, NaN]}', "counts must be finite"),
        ('{"counts": [1, 2], "edges": [0, 1]}', "edges must have"),
        ('{"counts": [[1, 2], [3, 4]]}', "counts must be 1-D"),
        ('{"layers": {}}', "'layers' must be a non-empty"),
        ('{"layers": {"a": {"counts": [1, 2]}, "a": {"counts": [3, 4]}}}', "duplicate key 'a'"),
        ('{"layers": {"a": {"counts": [1, -2]}}}', "layer 'a': counts must be non-negative"),
    ],
)
def test_json_histogram_refuses(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_histogram_file(io.StringIO(text), "bad.json")


@pytest.mark.parametrize(
    ("src", "name", "match"),
    [
        (io.BytesIO(b"1\n2\n"), "h.txt", "unsupported extension '.txt'"),
        (io.BytesIO(b"1\n2\n"), "h", "unsupported extension '\\(none\\)'"),
        (io.BytesIO(b"1\n2\n"), None, "name is needed"),
        (12, "h.csv", "expected a path or an open file"),
    ],
)
def test_histogram_file_dispatch_refuses(src: object, name: str | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_histogram_file(src, name)


def test_bytesio_read_to_its_end_reports_empty() -> None:
    buf = io.BytesIO(b"1\n2\n")
    buf.read()
    with pytest.raises(ValueError, match="already read to its end"):
        load_histogram_file(buf, "h.csv")


# -- samples ------------------------------------------------------------------------------------


def test_samples_npy_any_shape_and_csv() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5
    got = load_samples_file(npy(x), "acts.npy")
    assert got.dtype == np.float64 and got.shape == (24,)
    np.testing.assert_array_equal(got, x.ravel())
    text = "activation\n1.5, -2\n\n# skipped\n3e-1,\n"
    assert load_samples_file(io.StringIO(text), "acts.csv").tolist() == [1.5, -2.0, 0.3]


@pytest.mark.parametrize(
    ("src", "name", "match"),
    [
        (io.BytesIO(b""), "x.csv", "is empty"),
        (io.BytesIO(b"value\n"), "x.csv", "holds no samples"),
        (io.BytesIO(b"1\n2\nthree\n"), "x.csv", "line 3: 'three' is not a number"),
        (io.BytesIO(b"1\nnan\ninf\n"), "x.csv", "2 non-finite values"),
        (npy(np.zeros((0, 3))), "x.npy", "holds no samples"),
        (npy(np.array(["a", "b"])), "x.npy", "must be a numeric array"),
        (npy(np.array([1 + 2j])), "x.npy", "must be a numeric array"),
        (io.BytesIO(b"not an npy"), "x.npy", "not a readable .npy"),
        (io.BytesIO(b"1 2 3"), "x.json", "unsupported extension"),
    ],
)
def test_samples_refuse(src: io.BytesIO, name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_samples_file(src, name)


# -- TensorRT calibration cache -------------------------------------------------------------

TRT_EXAMPLE = """TRT-8601-EntropyCalibration2
data: 3c008912
(Unnamed Layer* 0) [Convolution]_output: 3d1ee0a9
model/conv 1/Relu:0: 3e000000
weird: name: with: colons: 3f800000
"""


def test_trt_published_example() -> None:
    cache = read_trt_cache_full(io.StringIO(TRT_EXAMPLE))
    # by hand: 0x3c008912 is sign 0, exponent 0x78 - 127 = -7, mantissa 0x008912 / 2**23;
    # exact in float64 too, so the decoded scale equals it exactly (0.0078451801...)
    assert cache.scales["data"] == 2.0**-7 * (1 + 0x008912 / 2**23)
    assert cache.amax["data"] == pytest.approx(0.9963, abs=1e-4)  # 127 * scale
    assert (cache.header, cache.version, cache.algorithm) == (
        "TRT-8601-EntropyCalibration2",
        8601,
        "EntropyCalibration2",
    )
    assert cache.problems == ()


def test_trt_names_split_on_the_last_colon_space() -> None:
    amax = read_trt_cache(io.BytesIO(TRT_EXAMPLE.encode()))
    assert list(amax) == [
        "data",
        "(Unnamed Layer* 0) [Convolution]_output",
        "model/conv 1/Relu:0",
        "weird: name: with: colons",
    ]
    assert amax["model/conv 1/Relu:0"] == 0.125 * 127
    assert amax["weird: name: with: colons"] == 127.0


def test_trt_crlf_bom_blank_lines_and_short_hex(tmp_path: Path) -> None:
    path = tmp_path / "calib.cache"
    path.write_bytes(b"\xef\xbb\xbfTRT-8400-MinMaxCalibration\r\ndata: 3c008912\r\n\r\ndead: 0\r\n")
    cache = read_trt_cache_full(path)
    assert cache.version == 8400 and cache.algorithm == "MinMaxCalibration"
    assert list(cache.amax) == ["data", "dead"]
    assert cache.amax["dead"] == 0.0
    assert len(cache.problems) == 1 and "line 4: 'dead': zero scale" in cache.problems[0]


def test_trt_flags_bad_scales_without_crashing() -> None:
    text = "TRT-8601-Unheard\nz: 00000000\ni: 7f800000\nn: 7fc00000\nneg: bf800000\nok: 3f800000\n"
    cache = read_trt_cache_full(io.StringIO(text))
    assert math.isnan(cache.amax["n"]) and math.isinf(cache.amax["i"])
    assert cache.amax["neg"] == -127.0 and cache.amax["ok"] == 127.0
    flagged = " | ".join(cache.problems)
    for part in (
        "unknown algorithm 'Unheard'",
        "'z': zero",
        "'i': infinite",
        "'n': NaN",
        "'neg': negative",
    ):
        assert part in flagged
    assert "'ok'" not in flagged


def test_trt_header_only_and_non_numeric_version() -> None:
    cache = read_trt_cache_full(io.StringIO("TRT-8.6.1-EntropyCalibration2\n"))
    assert cache.version is None and cache.amax == {}
    assert cache.problems == ("no tensor lines after the header",)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty"),
        (" \n\n", "is empty"),
        ("data: 3c008912\n", "first line must be a TensorRT header"),
        ("\nTRT-8601-EntropyCalibration2\ndata: 3c008912\n", "first line must be"),
        ("TRT-EntropyCalibration2\ndata: 3c008912\n", "first line must be"),
        ("TRT-8601-EntropyCalibration2\ndata: 3c00891g\n", "line 2: '3c00891g' is not a float32"),
        ("TRT-8601-EntropyCalibration2\na: 1\nb: 3c0089123\n", "line 3: '3c0089123' is not"),
        ("TRT-8601-EntropyCalibration2\na: \n", "line 2: '' is not a float32"),
        ("TRT-8601-EntropyCalibration2\na: 1\ndata 3c008912\n", "line 3: expected '<tensor"),
        ("TRT-8601-EntropyCalibration2\n: 3c008912\n", "line 2: empty tensor name"),
        ("TRT-8601-EntropyCalibration2\na: 1\nb: 2\na: 3\n", "line 4: tensor 'a' is already on"),
    ],
)
def test_trt_refuses(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_trt_cache_full(io.StringIO(text))


trt_names = st.text(min_size=1, max_size=15).filter(lambda s: "\n" not in s and "\r" not in s)


@FAST
@given(st.dictionaries(trt_names, st.floats(0, 1e30), max_size=6))
def test_trt_round_trip(amax: dict) -> None:
    buf = io.BytesIO()
    write_trt_cache(buf, amax)
    back = read_trt_cache_full(io.BytesIO(buf.getvalue()))
    assert list(back.amax) == list(amax)
    for name, value in amax.items():
        scale32 = struct.unpack(">f", struct.pack(">f", value / 127))[0]
        assert back.scales[name] == scale32
        assert back.amax[name] == pytest.approx(value, rel=1e-6, abs=1e-40)


def test_trt_writer_format(tmp_path: Path) -> None:
    path = tmp_path / "out.cache"
    # 0.9963378738611937 is 127 * float32(0x3c008912) (the published example above), so its
    # scale amax / 127 is that float32 exactly; 127.0 / 127 is 1.0 = 0x3f800000
    write_trt_cache(
        path,
        {"data": 0.9963378738611937, "a: b": 0.0, "c": np.float32(127.0)},
        header="TRT-8400-MinMaxCalibration",
    )
    assert path.read_text() == (
        "TRT-8400-MinMaxCalibration\ndata: 3c008912\na: b: 00000000\nc: 3f800000\n"
    )


@pytest.mark.parametrize(
    ("amax", "header", "match"),
    [
        ({"a\nb": 1.0}, cio.TRT_DEFAULT_HEADER, "line break"),
        ({"a\r": 1.0}, cio.TRT_DEFAULT_HEADER, "line break"),
        ({"": 1.0}, cio.TRT_DEFAULT_HEADER, "non-empty"),
        ({"a": math.nan}, cio.TRT_DEFAULT_HEADER, "finite and non-negative"),
        ({"a": math.inf}, cio.TRT_DEFAULT_HEADER, "finite and non-negative"),
        ({"a": -0.5}, cio.TRT_DEFAULT_HEADER, "finite and non-negative"),
        ({"a": 1e300}, cio.TRT_DEFAULT_HEADER, "too large for a float32"),
        ({"a": True}, cio.TRT_DEFAULT_HEADER, "must be a real number"),
        ({"a": "1.0"}, cio.TRT_DEFAULT_HEADER, "must be a real number"),
        ({"a": 1.0}, "TRT8601 Entropy", "TensorRT header"),
        ([("a", 1.0)], cio.TRT_DEFAULT_HEADER, "must be a dict"),
    ],
)
def test_trt_writer_refuses(amax: object, header: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_trt_cache(io.BytesIO(), amax, header=header)


# -- ONNX Runtime tables ------------------------------------------------------------------

# The shape json.dumps gives ONNX Runtime's TensorsData (entropy method: edges under "bins").
ORT_JSON = {
    "CLS": "TensorsData",
    "data": {
        "input": {
            "lowest": {"data": -2.5, "dtype": "float32", "CLS": "numpy.array"},
            "highest": {"data": 2.0, "dtype": "float32", "CLS": "numpy.array"},
            "hist": {"data": [1, 5, 3, 0], "dtype": "int64", "CLS": "numpy.array"},
            "bins": {"data": [-3.0, -1.5, 0.0, 1.5, 3.0], "dtype": "float32", "CLS": "numpy.array"},
            "CLS": "TensorData",
        },
        "conv/out:0": {
            "lowest": {"data": [0.0], "dtype": "float32", "CLS": "numpy.array"},
            "highest": {"data": 6.0, "dtype": "float32", "CLS": "numpy.array"},
            "CLS": "TensorData",
        },
    },
    "calibration_method": {"CLS": "CalibrationMethod", "value": "CalibrationMethod.Entropy"},
}


def test_ort_json_real_shape() -> None:
    cal = read_ort_calibration_json(io.StringIO(json.dumps(ORT_JSON)))
    assert cal.ranges == {"input": (-2.5, 2.0), "conv/out:0": (0.0, 6.0)}
    assert cal.method == "Entropy"
    assert list(cal.histograms) == ["input"]
    assert cal.histograms["input"].counts.tolist() == [1, 5, 3, 0]
    assert cal.histograms["input"].edges.tolist() == [-3.0, -1.5, 0.0, 1.5, 3.0]
    assert cal.problems == ()


def test_ort_json_old_and_plain_forms() -> None:
    old = read_ort_calibration_json(io.StringIO('{"a": [-1, 2.5], "b": [0.0, 0.0]}'))
    assert old.ranges == {"a": (-1.0, 2.5), "b": (0.0, 0.0)}
    assert old.method is None and old.histograms == {}
    plain = read_ort_calibration_json(io.StringIO('{"a": {"lowest": -1, "highest": 1}}'))
    assert plain.ranges == {"a": (-1.0, 1.0)}


def test_ort_json_histogram_without_edges_is_flagged() -> None:
    doc = {"a": {"lowest": 0, "highest": 1, "hist": [1, 2, 3], "bins": 3}}
    cal = read_ort_calibration_json(io.StringIO(json.dumps(doc)))
    assert cal.ranges == {"a": (0.0, 1.0)} and cal.histograms == {}
    assert "'hist' without 'hist_edges'" in cal.problems[0]


ort_values = st.floats(-1e6, 1e6)


@FAST
@given(
    st.dictionaries(
        st.text(max_size=10), st.tuples(ort_values, ort_values), min_size=1, max_size=5
    ),
    st.sampled_from([None, *cio.ORT_METHODS]),
)
def test_ort_json_round_trip(ranges: dict, method: str | None) -> None:
    ranges = {k: (min(v), max(v)) for k, v in ranges.items()}
    first = next(iter(ranges))
    hist = Histogram([1, 2, 3], [-1.0, 0.1, 0.2, 3.0])
    buf = io.StringIO()
    write_ort_calibration_json(buf, ranges, {first: hist}, method)
    cal = read_ort_calibration_json(io.StringIO(buf.getvalue()))
    f32 = np.float32
    assert cal.ranges == {k: (float(f32(lo)), float(f32(hi))) for k, (lo, hi) in ranges.items()}
    assert cal.method == method
    assert list(cal.histograms) == [first]
    assert cal.histograms[first].counts.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(cal.histograms[first].edges, hist.edges.astype(np.float32))


def test_ort_json_written_in_onnxruntime_shape(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    write_ort_calibration_json(path, {"x": (-1.0, 0.5)}, method="MinMax")
    doc = json.loads(path.read_text())
    assert doc["CLS"] == "TensorsData"
    assert doc["data"]["x"] == {
        "lowest": {"data": -1.0, "dtype": "float32", "CLS": "numpy.array"},
        "highest": {"data": 0.5, "dtype": "float32", "CLS": "numpy.array"},
        "CLS": "TensorData",
    }
    assert doc["calibration_method"] == {
        "CLS": "CalibrationMethod",
        "value": "CalibrationMethod.MinMax",
    }


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("[]", "expected a JSON object"),
        ("{}", "no tensors"),
        ('{"CLS": "TensorsData", "data": {}}', "no tensors"),
        ('{"a": {"lowest": 0}}', "tensor 'a': no 'highest'"),
        ('{"a": {"lowest": [0, 1], "highest": [2, 3]}}', "per-channel ranges are not supported"),
        ('{"a": {"lowest": 2, "highest": 1}}', "lowest 2.0 is above highest 1.0"),
        ('{"a": {"lowest": "0", "highest": 1}}', "'lowest' must be a real number"),
        ('{"a": {"lowest": NaN, "highest": 1}}', "'lowest' must be finite"),
        ('{"a": {"lowest": {"data": 0}, "highest": 1}}', "'CLS': 'numpy.array'"),
        ('{"a": {"lowest": 0, "highest": 1, "CLS": "Other"}}', "expected a TensorData"),
        ('{"a": [1, 2, 3]}', "expected a TensorData"),
        ('{"a": [0, 1], "a": [0, 2]}', "duplicate key 'a'"),
        ('{"a": {"lowest": 0, "highest": 1, "hist": [1], "hist_edges": [0, 1]}}', "at least 2"),
        ('{"a": {"lowest": 0, "highest": 1, "hist": [1, 2], "hist_edges": [0, 1]}}', "edges must"),
    ],
)
def test_ort_json_refuses(doc: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_ort_calibration_json(io.StringIO(doc))


@pytest.mark.parametrize(
    ("ranges", "hists", "method", "match"),
    [
        ({"a": (1.0, 0.0)}, None, None, "lowest <= highest"),
        ({"a": (0.0, math.inf)}, None, None, "finite"),
        ({"a": (0.0, 1e300)}, None, None, "too large for float32"),
        ({"a": 1.0}, None, None, "must be a pair"),
        ({"a": (0.0, 1.0)}, {"b": Histogram.from_counts([1, 2])}, None, "no range: \\['b'\\]"),
        ({"a": (0.0, 1.0)}, {"a": [1, 2]}, None, "must be a Histogram"),
        ({"a": (0.0, 1.0)}, {"a": Histogram([1, 2], [1e8, 1e8 + 1, 1e8 + 2])}, None, "float32"),
        ({"a": (0.0, 1.0)}, None, "KL", "method must be one of"),
    ],
)
def test_ort_json_writer_refuses(ranges: dict, hists: dict, method: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_ort_calibration_json(io.StringIO(), ranges, hists, method)


def test_ort_cache_reads_onnxruntime_output() -> None:
    text = "conv/out:0 6.0\ninput 2.5\nname with spaces 1e-05\r\n\n"
    assert read_ort_calibration_cache(io.StringIO(text)) == {
        "conv/out:0": 6.0,
        "input": 2.5,
        "name with spaces": 1e-05,
    }


cache_names = st.text(min_size=1, max_size=12).filter(
    lambda s: "\n" not in s and "\r" not in s and s.strip() and s == s.rstrip()
)


@FAST
@given(st.dictionaries(cache_names, st.floats(allow_nan=False, allow_infinity=False), max_size=6))
def test_ort_cache_round_trip(values: dict) -> None:
    buf = io.BytesIO()
    write_ort_calibration_cache(buf, values)
    if values:
        assert read_ort_calibration_cache(io.BytesIO(buf.getvalue())) == values


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty"),
        ("a 1.0\nlonely\n", "line 2: expected '<tensor name> <value>'"),
        ("a 1.0\nb one\n", "line 2: 'one' is not a number"),
        ("a nan\n", "line 1: value of 'a' is nan, not finite"),
        ("a 1\nb 2\na 3\n", "line 3: tensor 'a' is already on line 1"),
    ],
)
def test_ort_cache_refuses(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_ort_calibration_cache(io.StringIO(text))


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"a\nb": 1.0}, "line break"),
        ({"": 1.0}, "non-empty"),
        ({"a ": 1.0}, "ends in whitespace"),
        ({"a": math.nan}, "must be finite"),
        ({"a": None}, "must be a real number"),
    ],
)
def test_ort_cache_writer_refuses(values: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_ort_calibration_cache(io.StringIO(), values)


# -- the module's own hygiene -----------------------------------------------------------------


def test_io_never_unpickles_or_evals() -> None:
    """Every module of the calib.io package, not only its __init__."""
    paths = sorted(Path(cio.__file__).parent.rglob("*.py"))
    assert {p.name for p in paths} >= {"__init__.py", "_safe.py", "histograms.py", "trt.py"}
    loads = 0
    imported = set()
    for node in (n for p in paths for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if isinstance(func, ast.Name):
                assert name not in ("eval", "exec", "compile", "__import__")
            if name == "load":
                loads += 1
                kw = {k.arg: k.value for k in node.keywords}
                assert "allow_pickle" in kw and getattr(kw["allow_pickle"], "value", 1) is False
    assert loads >= 2  # the .npy and the .npz readers were seen
    assert not imported & {"pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
    assert imported <= {
        "__future__",
        "csv",
        "dataclasses",
        "io",
        "json",
        "math",
        "numbers",
        "os",
        "re",
        "struct",
        "tempfile",
        "zipfile",
        "zlib",
        "collections",
        "pathlib",
        "typing",
        "numpy",
        "calib",
    }


def test_writes_are_atomic_and_leave_no_temporary_file(tmp_path, monkeypatch):
    """A write that fails half-way leaves the old file as it was, and no temporary file."""
    path = tmp_path / "calib.cache"
    write_trt_cache(path, {"a": 1.0})
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise KeyboardInterrupt  # Ctrl-C between writing and renaming

    monkeypatch.setattr(_safe.os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        write_trt_cache(path, {"b": 2.0})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.cache"]
