"""The command line as a user runs it: a threshold table from a file, and its exports.

`python -m calib bench` (calib.dev.bench) is tested in test_dev_bench.py.
"""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

import calib
from calib.cli import main


@pytest.fixture
def hist_file(tmp_path):
    rng = np.random.default_rng(0)
    hists = {
        "conv1 / relu": calib.Histogram.from_samples(np.maximum(rng.normal(size=20_000), 0)),
        "fc: out [0]": calib.Histogram.from_samples(rng.laplace(size=20_000)),
        "dead layer": calib.Histogram(np.zeros(2048), np.linspace(0, 1, 2049)),
    }
    path = tmp_path / "h.npz"
    calib.save_histograms(path, hists)
    return path, hists


def test_table_csv_and_json_agree_with_calibrate(hist_file, capsys):
    path, hists = hist_file
    assert main([str(path), "--variant", "onnxruntime", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["layer"] for r in rows] == list(hists)
    for r in rows:
        expected = calib.calibrate(hists[r["layer"]], variant="onnxruntime").amax
        assert float(r["amax"]) == pytest.approx(expected, rel=1e-12)
    assert rows[2]["flags"] == "dead" and float(rows[2]["amax"]) == 0.0

    assert main([str(path), "--method", "percentile", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[1]["amax"] == pytest.approx(calib.amax_percentile(hists["fc: out [0]"]))

    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "conv1 / relu" in out and "amax/max" in out.splitlines()[0]


def test_method_takes_a_calibrator_text(hist_file, capsys):
    """--method takes what calib.Spec.parse reads (the same parser as evaluate's --methods
    and convergence); the loose flags go with a bare method name only."""
    path, hists = hist_file
    assert main([str(path), "--method", "entropy:mxnet@4", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    want = calib.calibrate(hists["fc: out [0]"], "entropy", 4, variant="mxnet").amax
    assert data[1]["amax"] == pytest.approx(want, rel=1e-12)
    # the same as the loose flags
    assert main([str(path), "--variant", "mxnet", "--num-bits", "4", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == data
    assert main([str(path), "--method", "entropy:mxnet@4", "--num-bits", "6"]) == 2
    err = capsys.readouterr().err
    assert "says its calibrator whole" in err and "--num-bits" in err
    assert main([str(path), "--method", "entropy:tvm"]) == 2
    err = capsys.readouterr().err
    assert "calibrator 'entropy:tvm'" in err and "variant must be one of" in err


def test_trt_cache_export_round_trips(hist_file, tmp_path, capsys):
    path, hists = hist_file
    cache = tmp_path / "calib.cache"
    assert main([str(path), "--trt-cache", str(cache)]) == 0
    capsys.readouterr()
    back = calib.read_trt_cache(cache)
    assert set(back) == {"conv1 / relu", "fc: out [0]"}  # the dead layer has no scale
    for name, amax in back.items():
        assert amax == pytest.approx(calib.calibrate(hists[name]).amax, rel=1e-6)


def test_bad_files_exit_2_with_a_message(tmp_path, capsys):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    assert main([str(bad)]) == 2
    assert "error:" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.npz")]) == 2


def test_python_dash_m_calib_runs(hist_file):
    path, _ = hist_file
    done = subprocess.run(
        [sys.executable, "-m", "calib", str(path), "--format", "csv"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("layer,bins,max,amax")


def test_ort_json_export_round_trips(hist_file, tmp_path, capsys):
    path, hists = hist_file
    out = tmp_path / "calibration.json"
    assert main([str(path), "--variant", "modelopt", "--ort-json", str(out)]) == 0
    capsys.readouterr()
    back = calib.read_ort_calibration_json(out)
    assert set(back.ranges) == {"conv1 / relu", "fc: out [0]"}  # the dead layer has no range
    for name, (lo, hi) in back.ranges.items():
        amax = calib.calibrate(hists[name], variant="modelopt").amax
        assert hi == pytest.approx(amax, rel=1e-6) and lo == pytest.approx(-amax, rel=1e-6)


def test_an_input_is_never_written_over(hist_file, tmp_path, capsys):
    """Issue 9: ``--trt-cache H.npz`` exited 0 and left a cache where the histograms were."""
    path, _ = hist_file
    before = path.read_bytes()
    link = tmp_path / "link.npz"
    link.symlink_to(path)
    for args in (
        ["--trt-cache", str(path)],
        ["--ort-json", str(link)],
        ["--trt-cache", str(tmp_path / "a"), "--ort-json", str(tmp_path / "a")],
    ):
        assert main([str(path), *args]) == 2
        assert "error:" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert not (tmp_path / "a").exists()


def test_target_bins_0_is_refused_not_the_default(hist_file, capsys):
    path, _ = hist_file
    assert main([str(path), "--target-bins", "0"]) == 2
    assert "levels (target_bins) must be at least 2" in capsys.readouterr().err


def test_json_is_strict_and_names_print_safely(tmp_path, capsys):
    """NaN was written as NaN (strict parsers refuse it); control characters in names went
    to the terminal raw (an ESC starts an escape sequence)."""
    rng = np.random.default_rng(1)
    hists = {
        "red\x1b[31m": calib.Histogram.from_samples(rng.normal(size=2000)),
        "two\nlines\u202e": calib.Histogram.from_samples(rng.normal(size=2000)),
        "dead": calib.Histogram(np.zeros(8), np.arange(9.0)),
    }
    path = tmp_path / "names.npz"
    calib.save_histograms(path, hists)
    assert main([str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))
    assert [r["layer"] for r in doc] == list(hists)  # exact names
    assert doc[2]["KL"] is None and doc[2]["SQNR dB"] is None
    for fmt in ("table", "csv"):
        assert main([str(path), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\u202e" not in out
        assert "red\\x1b[31m" in out and "two\\x0alines\\u202e" in out
    cache = tmp_path / "c.cache"
    assert main([str(path), "--trt-cache", str(cache)]) == 0
    err = capsys.readouterr().err
    assert "leaves out 2 tensors" in err and "\x1b" not in err
    assert list(calib.read_trt_cache(cache)) == ["red\x1b[31m"]  # exact in the file


def test_bench_without_the_maintainers_folder_says_it_needs_a_checkout(monkeypatch, capsys):
    """An installed wheel has no calib/dev: one line on stderr, exit 2, no traceback (the
    wheel itself is tried in tests/test_packaging.py). A module calib/dev needs that is
    missing is still its own error."""
    import importlib

    real = importlib.import_module
    missing = "calib.dev"

    def without(name, *args, **kwargs):
        if name.startswith("calib.dev"):
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without)
    for argv in (["bench"], ["bench", "--quick"], ["bench", "collect", "x"], ["bench", "evaluate"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "checkout" in err, err
    missing = "onnx"
    with pytest.raises(ModuleNotFoundError, match="onnx"):
        main(["bench", "evaluate"])


def test_the_package_runs_as_a_program_in_process(monkeypatch, capsys):
    """``calib/__main__.py`` in this process (``python -m calib`` in a child is tested
    above), with the console script's name in the usage line."""
    import runpy

    monkeypatch.setattr(sys, "argv", ["/venv/bin/calib", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("calib", run_name="__main__")
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage: calib ")


# -- never a traceback, never lost work (issue 21) ----------------------------------------------
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _calib(*args, stdin=None, shell_tail: str = "", **kw) -> subprocess.CompletedProcess:
    cmd = " ".join([sys.executable, "-m", "calib", *args]) + shell_tail
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT,
                          executable="/bin/bash", **kw)  # fmt: skip


def test_a_closed_pipe_ends_quietly(hist_file):
    """``python -m calib FILE | head -1`` (here ``| true``: the reader is gone before the
    table is written) ends without a traceback, with the shell's SIGPIPE status."""
    path, _ = hist_file
    done = _calib(str(path), shell_tail=" | true; exit ${PIPESTATUS[0]}")
    assert done.stderr == "" and done.returncode == 141
    done = _calib(str(path), shell_tail=" | head -1")
    assert done.stdout.startswith("layer") and "Traceback" not in done.stderr


def test_memory_running_out_is_one_line(tmp_path):
    """``--inputs /dev/zero`` reads until memory runs out (here an address-space limit of
    1.5 GiB makes it quick): one line, exit 2, nothing written."""
    from test_sandbox import relu_model

    (tmp_path / "m.onnx").write_bytes(relu_model())
    out = tmp_path / "h.npz"
    done = _calib("collect", str(tmp_path / "m.onnx"), "--inputs", "/dev/zero", "--out",
                  str(out), "--quiet", shell_tail="", env=None,
                  preexec_fn=lambda: __import__("resource").setrlimit(
                      __import__("resource").RLIMIT_AS, (3 * 2**29, 3 * 2**29)))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "out of memory" in done.stderr and not out.exists()


@pytest.mark.parametrize("where", ["folder", "missing", "read-only"])
def test_an_unwritable_out_is_refused_before_the_run(tmp_path, capsys, monkeypatch, where):
    """``--out`` a folder, in a missing folder, or where nothing can be written: refused
    before anything runs (the collector is never called), in one line."""
    from calib import collect

    out = {"folder": str(tmp_path), "missing": str(tmp_path / "no" / "h.npz"),
           "read-only": "/proc/h.npz"}[where]  # fmt: skip
    ran = []
    monkeypatch.setattr(collect, "collect_histograms", lambda *a, **k: ran.append(1))
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "x.npz").write_bytes(b"x")
    code = main(["collect", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npz"),
                 "--out", out])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and not ran
    assert err.startswith("error: --out") and len(err.strip().splitlines()) == 1
    code = main(["evaluate", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npz"),
                 "--histograms", str(tmp_path / "x.npz"), "--out", out])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --out")


def test_an_unwritable_export_is_refused_before_the_table(hist_file, tmp_path, capsys):
    path, _ = hist_file
    assert main([str(path), "--trt-cache", str(tmp_path / "no" / "t.cache")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "does not exist" in captured.err


def test_converge_prints_method_names_without_terminal_escapes(tmp_path, capsys):
    from calib.convergence import Trace

    h = calib.Histogram.from_samples(np.arange(10.0), 16)
    evil = "max\x1b]0;pwned\x07\x1b[31m"
    t = Trace(np.array([4, 8]), {evil: np.array([1.0, 2.0])})
    calib.save_histograms(tmp_path / "t.npz", {"a": h}, traces={"a": t})
    assert main(["converge", str(tmp_path / "t.npz")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "max\\x1b]0;pwned\\x07\\x1b[31m" in out
