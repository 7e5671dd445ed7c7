"""Hostile inputs (issue 9): every case ends in a clear error or a right answer, within a
memory cap and a time limit.

Each case builds its input (a generated bomb, a crafted file, a bad argument), then runs
the call under ``tracemalloc`` (which sees every numpy and Python allocation) and a clock;
the test fails if the call takes more than ``MEMORY_CAP`` bytes or ``TIME_CAP`` seconds,
or answers anything but the expected refusal (a ``ValueError`` naming the limit) or the
right answer. ``PYTHONPATH=. python tests/test_hostile.py`` runs the cases and prints their
times and peaks as the README's table of refused inputs.

The model cases (loops, huge tensors) run in a child process under a budget:
``tests/test_sandbox.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import re
import struct
import sys
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import calib
import calib.collect
from calib import limits, report
from calib.cli import main as cli
from calib.io import (
    load_histogram_file,
    load_histograms,
    load_samples_file,
    read_ort_calibration_json,
    read_trt_cache,
)

MEMORY_CAP = 128 * 2**20
"""No case may allocate more than this at its peak (the largest refused input, a 32 MiB
text file, is held twice: its bytes and its text)."""
TIME_CAP = 10.0
"""Nor take longer than this, on a 2-core machine shared with other jobs."""


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], object]  # the input, built outside the measurement
    call: Callable[[object], object]  # what a user, a page or the CLI does with it
    refused: str | None  # a regex the ValueError must match; None: check() the answer
    check: Callable[[object], bool] = lambda _: True


# -- builders ------------------------------------------------------------------------------
def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


@functools.cache
def _zip_bomb(n: int = 40_000_000) -> bytes:
    """An .npz of n zero bytes, compressed a megabyte at a time: about n / 1000 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (n,)}
    )
    head = header.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("counts.npy", "w", force_zip64=True) as f:
            f.write(head)
            zero = bytes(1 << 20)
            for _ in range(n >> 20):
                f.write(zero)
            f.write(bytes(n - ((n >> 20) << 20)))
    return buf.getvalue()


def _many_members(n: int = 13_000) -> bytes:
    buf = io.BytesIO()
    small = _npy(np.ones(2))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"k{i}.npy", small)
    return buf.getvalue()


def _lying_directory() -> bytes:
    """A zip whose directory claims 10**15 bytes for a 100-byte member."""
    data = bytearray(_npz(x=np.ones(4)))
    for sig, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        i = data.find(sig)
        data[i + offset : i + offset + 4] = struct.pack("<I", 0xFFFFFFFE)
    return bytes(data)


def _calib_npz(names, counts=None) -> bytes:
    counts = counts if counts is not None else np.ones(4)
    arrays = {
        "format": np.array("calib-histograms"),
        "version": np.array(1),
        "names": np.array(names),
    }
    for i in range(len(names)):
        arrays[f"counts_{i}"] = counts
        arrays[f"edges_{i}"] = np.arange(len(counts) + 1, dtype=np.float64)
    return _npz(**arrays)


def _hist(bins: int = 2048, seed: int = 0) -> calib.Histogram:
    return calib.Histogram.from_samples(np.random.default_rng(seed).standard_normal(50_000), bins)


def _named(data: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f


NAMES = ["", "two\nlines", "tab\tand\x1b[31mesc", "\u202eevil", "[md](https://x) **b**", "é" * 50]


def _round_trip(data: object) -> dict:
    return load_histograms(io.BytesIO(data))


def _tmp_histograms() -> Path:
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="calib-hostile-"))
    calib.save_histograms(d / "H.npz", {"a": _hist(), "b": _hist(seed=1)})
    return d / "H.npz"


# -- the cases -----------------------------------------------------------------------------
CASES = [
    # files: bombs and crafted archives
    Case("npz zip bomb: 40M one-byte counts in 40 KB", _zip_bomb,
         lambda d: load_histogram_file(_named(d, "h.npz")), r"MAX_UNPACKED_BYTES"),
    Case("npz of 13,000 arrays", _many_members,
         lambda d: load_histogram_file(_named(d, "h.npz")), r"MAX_LAYERS"),
    # sizes are read from the .npy headers, never the directory: the lie changes nothing
    Case("npz whose directory claims 4 GB for 100 bytes", _lying_directory,
         lambda d: load_histogram_file(_named(d, "h.npz")), None,
         lambda out: out["x"].total == 4),
    Case("npz name of 5,000 characters", lambda: _calib_npz(["x" * 5000]),
         lambda d: load_histograms(io.BytesIO(d)), r"MAX_NAME_CHARS"),
    Case("npz name with a lone surrogate", lambda: _calib_npz(["ok", "\ud800"]),
         lambda d: load_histograms(io.BytesIO(d)), r"lone surrogate"),
    Case("npz names: empty, line breaks, ESC, RLO, markdown", lambda: _calib_npz(NAMES),
         _round_trip, None, lambda out: list(out) == NAMES),
    Case("npz of 5,000 layers", lambda: _calib_npz([f"l{i}" for i in range(5000)]),
         lambda d: load_histograms(io.BytesIO(d)), r"MAX_LAYERS"),
    Case("npz of 100,000 bins", lambda: _npz(x=np.ones(100_000)),
         lambda d: load_histograms(io.BytesIO(d)), r"MAX_BINS"),
    Case("npy declaring 10**12 samples", lambda: _npy(np.ones(4))[:10] + b"x",
         lambda d: load_samples_file(_named(d, "x.npy")), r"readable|truncated"),
    Case("npy of pickled objects", lambda: _npy(np.array([{"a": 1}], dtype=object)),
         lambda d: load_histogram_file(_named(d, "x.npy")), r"pickle"),
    Case("npz of int64 counts that wrap", lambda: _npz(x=np.array([2**63 - 1, 2**63 - 1, 5])),
         lambda d: load_histograms(io.BytesIO(d)), r"int64"),
    Case("npz of counts near 1e308", lambda: _npz(x=np.array([1e308, 1e308, 1.0])),
         lambda d: load_histograms(io.BytesIO(d)), r"MAX_MAGNITUDE"),
    Case("npz of counts near 1e-310", lambda: _npz(x=np.array([1e-310, 0.0, 0.0])),
         lambda d: load_histograms(io.BytesIO(d)), r"MIN_MAGNITUDE"),
    # text: depth, rows, size, tensors
    Case("json nested 100,000 deep", lambda: b"[" * 100_000 + b"]" * 100_000,
         lambda d: load_histogram_file(_named(d, "h.json")), r"MAX_JSON_DEPTH"),
    Case("ORT calibration.json nested 40 deep",
         lambda: b'{"t": {"lowest": ' + b"[" * 40 + b"1" + b"]" * 40 + b', "highest": 2}}',
         lambda d: read_ort_calibration_json(_named(d, "c.json")), r"MAX_JSON_DEPTH"),
    Case("json of 5,000 layers",
         lambda: json.dumps({"layers": {f"l{i}": {"counts": [1, 2]}
                                        for i in range(5000)}}).encode(),
         lambda d: load_histogram_file(_named(d, "h.json")), r"MAX_LAYERS"),
    Case("json layer name with a lone surrogate",
         lambda: b'{"layers": {"\\ud800": {"counts": [1, 2]}}}',
         lambda d: load_histogram_file(_named(d, "h.json")), r"lone surrogate"),
    Case("csv of 10 million rows", lambda: b"1\n" * 10_000_000,
         lambda d: load_samples_file(_named(d, "x.csv")), r"MAX_CSV_CELLS"),
    Case("csv of 3 million cells on one line", lambda: b",".join([b"1"] * 3_000_000),
         lambda d: load_samples_file(_named(d, "x.csv")), r"MAX_CSV_CELLS"),
    Case("csv of 262,143 rows, at the cap", lambda: b"1\n" * (2**18 - 1),
         lambda d: load_samples_file(_named(d, "x.csv")), None, lambda x: x.size == 2**18 - 1),
    Case("text file of 40 MB", lambda: b"1\n" * (20 * 2**20),
         lambda d: load_histogram_file(_named(d, "x.csv")), r"MAX_TEXT_BYTES"),
    Case("TensorRT cache of 10 million empty lines",
         lambda: b"TRT-8601-EntropyCalibration2\n" + b"\n" * 10_000_000,
         lambda d: report.read_calibration_file(d, "c.cache"), None,
         lambda c: c.amax == {} and "no tensor lines" in c.problems[-1]),
    Case("TensorRT cache of 5,000 tensors",
         lambda: b"TRT-8601-EntropyCalibration2\n" + b"".join(
             b"t%d: 3c008912\n" % i for i in range(5000)),
         lambda d: read_trt_cache(_named(d, "c.cache")), r"MAX_LAYERS"),
    # histograms, sweeps and searches
    Case("Histogram.from_samples(bins=10**9)", lambda: np.ones(3),
         lambda x: calib.Histogram.from_samples(x, bins=10**9), r"MAX_BINS"),
    Case("merge growing to 10**9 bins", lambda: _hist(64),
         lambda h: h.merge(calib.Histogram([1, 1], [0.0, 1e9, 2e9])), r"MAX_BINS"),
    Case("seed sweep of 65,536 bins at 2048 levels", lambda: _hist(2**16),
         lambda h: calib.kl_sweep(h, 2048), r"MAX_SEARCH_CELLS"),
    Case("ONNX Runtime float32 sweep of 32,768 bins", lambda: _hist(2**15),
         lambda h: calib.kl_sweep(h, 255, "onnxruntime", precision="float32"),
         r"MAX_SEARCH_CELLS"),
    Case("MSE search at 16 bits over 65,536 bins", lambda: _hist(2**16),
         lambda h: calib.amax_mse(h, num_bits=16), r"MAX_SEARCH_CELLS"),
    Case("MSE search at 8 bits over 32,768 bins", lambda: _hist(2**15),
         lambda h: calib.amax_mse(h), None, lambda a: 3.0 < a < 5.0),
    Case("target_bins=1", lambda: _hist(), lambda h: calib.kl_sweep(h, 1), r"at least 2"),
    Case("normalised histogram, ONNX Runtime",
         lambda: (lambda h: calib.Histogram(h.counts / h.total, h.edges))(_hist(1024)),
         lambda h: calib.kl_sweep(h, variant="onnxruntime"), r"fractions .*truncate='none'"),
    Case("signed histogram of negative values only, MXNet",
         lambda: calib.Histogram(*np.histogram(-np.abs(np.random.default_rng(0).normal(
             size=10_000)) - 1, 512)),
         lambda h: calib.kl_sweep(h, variant="mxnet"), r"symmetric around 0"),
    Case("seed with ModelOpt's candidates and MXNet's truncation", lambda: _hist(),
         lambda h: (calib.kl_sweep(h, variant="seed", candidates="modelopt", truncate="mass"),
                    calib.kl_sweep(h, variant="seed", candidates="modelopt", truncate="mass",
                                   engine="dense")),
         None, lambda rs: np.array_equal(rs[0].kl, rs[1].kl) and (rs[0].kl >= 0).all()),
    # the API: types and magnitudes
    Case("variant=[...]", lambda: _hist(), lambda h: calib.kl_sweep(h, variant=["seed"]),
         r"variant must be one of"),
    Case("distributions([200])", lambda: calib.kl_sweep(_hist()),
         lambda r: r.distributions([200]), r"candidate must be an integer"),
    Case("clip_metrics(amax=10**400)", lambda: _hist(),
         lambda h: calib.clip_metrics(h, amax=10**400), r"amax must be a finite"),
    Case("stride=10**19", lambda: _hist(),
         lambda h: calib.kl_sweep(h, variant="modelopt", stride=10**19), r"MAX_BINS"),
    # the command line
    Case("--trt-cache over the input", _tmp_histograms,
         lambda p: (cli([str(p), "--trt-cache", str(p)]), Path(str(p)).read_bytes()[:2]),
         None, lambda out: out == (2, b"PK")),
    Case("--target-bins 0", _tmp_histograms,
         lambda p: cli([str(p), "--target-bins", "0"]), None, lambda code: code == 2),
    Case("collect --bins 10**9", lambda: None,
         lambda _: calib.collect.collect_histograms(b"", {}, bins=10**9), r"MAX_BINS"),
    Case("collect inputs given as an .npy", lambda: _npy(np.ones((4, 3), np.float32)),
         lambda d: calib.collect.load_inputs(io.BytesIO(d)), r"not an \.npz of named arrays"),
    Case("collect inputs: a 40 KB bomb of 40M bytes", _zip_bomb,
         lambda d: calib.collect.load_inputs(io.BytesIO(d), max_bytes=limits.MAX_UNPACKED_BYTES),
         r"widened to 8 bytes an element"),
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Measured:
    case: Case
    outcome: str  # "refused: <message>" or "answered"
    seconds: float
    peak_bytes: int


def measure(case: Case) -> Measured:
    data = case.build()
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = case.call(data)
    except ValueError as exc:
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert case.refused is not None, f"{case.name}: refused: {exc}"
        assert _matches(case.refused, str(exc)), f"{case.name}: {exc}"
        return Measured(case, f"refused: {exc}", seconds, peak)
    except BaseException:
        tracemalloc.stop()
        raise
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert case.refused is None, f"{case.name}: answered {out!r:.200}, expected a refusal"
    assert case.check(out), f"{case.name}: a wrong answer: {out!r:.200}"
    return Measured(case, "answered", seconds, peak)


def _matches(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text, re.DOTALL) is not None


@pytest.fixture(autouse=True)
def _quiet(capsys):
    yield
    capsys.readouterr()  # the CLI cases print their tables and errors


@pytest.mark.slow  # 20 large inputs against a wall-time cap: with the slow tests
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_hostile_input_ends_in_a_clear_error_or_a_right_answer(case):
    m = measure(case)
    assert m.peak_bytes <= MEMORY_CAP, f"{case.name}: peak {m.peak_bytes / 2**20:.0f} MiB"
    assert m.seconds <= TIME_CAP, f"{case.name}: {m.seconds:.1f} s"


def test_a_link_cannot_put_markdown_on_explore():
    """Issue 9: a crafted link's value went into Explore's "Ignored" warning as markdown (a
    link, an image from any server, colours)."""
    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "pages" / "0_Explore.py"), default_timeout=60)
    at.query_params.update({"variant": "[x](https://evil.example) ![i](https://t.example/p)"})
    at.run()
    assert not at.exception
    shown = " ".join(w.value for w in at.warning)
    assert "Ignored variant" in shown
    # every bracket escaped, so no link or image can open (calib.app.text.plain)
    assert re.search(r"(?<!\\)[\[\]]", shown) is None
    assert r"\[x\]" in shown and r"!\[i\]" in shown


def test_the_served_app_shows_no_tracebacks():
    """A visitor sees a generic message for an uncaught exception, never its text or
    traceback (server paths): Streamlit's client.showErrorDetails = "none"."""
    import tomllib

    import streamlit.config

    root = Path(__file__).resolve().parents[1]
    with open(root / ".streamlit" / "config.toml", "rb") as f:
        config = tomllib.load(f)
    assert config["client"]["showErrorDetails"] == "none"
    valid = streamlit.config._config_options_template["client.showErrorDetails"]
    assert "none" in (valid.description or "")


if __name__ == "__main__":  # the README's table: PYTHONPATH=. python tests/test_hostile.py
    rows = [measure(c) for c in CASES]
    print("| input | outcome | time | peak |")
    print("|---|---|---|---|")
    for m in rows:
        what = "refused" if m.outcome.startswith("refused") else "answered"
        print(f"| {m.case.name} | {what} | {m.seconds * 1e3:.0f} ms | "
              f"{m.peak_bytes / 2**20:.1f} MiB |")  # fmt: skip
    refused = [m for m in rows if m.outcome.startswith("refused")]
    slow = max(refused, key=lambda m: m.seconds)
    big = max(refused, key=lambda m: m.peak_bytes)
    print(f"\nworst refused time: {slow.seconds:.2f} s ({slow.case.name})")
    print(f"worst refused peak: {big.peak_bytes / 2**20:.1f} MiB ({big.case.name})")
    sys.exit(0)


def test_external_data_outside_the_models_folder_is_a_clear_error(tmp_path):
    """onnx refuses an external-data location outside the model's folder with its own
    ValidationError, which reached the command line as a traceback."""
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 3], [0.0] * 12)
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "48")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    w.ClearField("float_data")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    inputs = {"x": np.ones((2, 4), np.float32)}
    with pytest.raises(ValueError, match="external data cannot be read"):
        calib.collect.collect_histograms(path, inputs)
