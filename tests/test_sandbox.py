"""calib.sandbox: an uploaded model runs in a child process under a time and memory budget.

The hostile models are issue 9's: a Loop of 10**15 iterations (271 bytes), an Expand to
one huge tensor (178 bytes). Each case starts a fresh interpreter (about a second).
"""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from calib import limits, sandbox
from calib.limits import CollectBudget

pytest.importorskip("onnxruntime")


def _model(nodes, inits, out_shape=None) -> bytes:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def relu_model() -> bytes:
    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    return _model(nodes, [numpy_helper.from_array(w, "W")], ["N", 3])


def loop_model() -> bytes:
    """y = x + 1, 10**15 times."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )  # fmt: skip
    inits = [numpy_helper.from_array(np.array(10**15, np.int64), "M"),
             numpy_helper.from_array(np.array(True), "c")]  # fmt: skip
    return _model([helper.make_node("Loop", ["M", "c", "x"], ["y"], body=body)], inits)


def expand_model(rows: int) -> bytes:
    """y = x expanded to (rows, 1, 4): 16 * rows bytes of float32 from one sample."""
    shape = numpy_helper.from_array(np.array([rows, 1, 4], np.int64), "shape")
    return _model([helper.make_node("Expand", ["x", "shape"], ["y"])], [shape])


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


X = npz(x=np.random.default_rng(1).standard_normal((64, 4)).astype(np.float32))
ONE = npz(x=np.ones((1, 4), np.float32))


def test_a_model_is_collected_in_the_child_and_read_back_without_pickle():
    seen = []
    found = sandbox.collect_upload(relu_model(), X, budget=CollectBudget(60, 2**30),
                                   progress=seen.append)  # fmt: skip
    assert list(found.histograms) == ["x", "h", "y"] and found.n_samples == 64
    assert found.histograms["y"].total == 64 * 3
    assert seen and seen[-1].fraction == 1.0 and "64 of 64" in seen[-1].text


@pytest.mark.slow
def test_a_model_that_loops_is_stopped_at_its_time_budget():
    t0 = time.monotonic()
    with pytest.raises(sandbox.BudgetExceeded, match=r"stopped after 3 s.*APP_COLLECT_SECONDS"):
        sandbox.collect_upload(loop_model(), ONE, budget=CollectBudget(3, 2**30))
    assert time.monotonic() - t0 < 20


@pytest.mark.slow
def test_a_model_past_its_memory_budget_is_stopped_with_what_was_exceeded():
    # 3.2 GB in one tensor against 1 GiB of address space
    with pytest.raises(sandbox.BudgetExceeded, match=r"memory budget, 1 GiB.*APP_COLLECT_BYTES"):
        sandbox.collect_upload(expand_model(200_000_000), ONE, budget=CollectBudget(60, 2**30))
    # a 400 MB tensor fits 1 GiB: the collector counts it in chunks (its float64 and
    # index copies would take 1.6 GB more; the 800 MB tensor of issue 9 peaked at 4.4 GB)
    found = sandbox.collect_upload(expand_model(25_000_000), ONE, budget=CollectBudget(120, 2**30))
    assert found.histograms["y"].total == 100_000_000


@pytest.mark.slow
def test_the_collectors_own_refusals_come_back_as_value_errors():
    with pytest.raises(ValueError, match="not an ONNX model"):
        sandbox.collect_upload(b"not onnx", X, budget=CollectBudget(60, 2**30))
    with pytest.raises(ValueError, match=r"not an \.npz of named arrays"):
        buf = io.BytesIO()
        np.save(buf, np.ones((4, 4), np.float32))
        sandbox.collect_upload(relu_model(), buf.getvalue(), budget=CollectBudget(60, 2**30))


def test_the_budget_is_a_setting_with_documented_defaults(monkeypatch):
    monkeypatch.delenv("CALIB_APP_COLLECT_SECONDS", raising=False)
    monkeypatch.delenv("CALIB_APP_COLLECT_BYTES", raising=False)
    assert limits.app_collect_budget() == CollectBudget(
        limits.APP_COLLECT_SECONDS, limits.APP_COLLECT_BYTES
    )
    monkeypatch.setenv("CALIB_APP_COLLECT_SECONDS", "7.5")
    monkeypatch.setenv("CALIB_APP_COLLECT_BYTES", "3e9")
    assert limits.app_collect_budget() == CollectBudget(7.5, 3_000_000_000)
    monkeypatch.setenv("CALIB_APP_COLLECT_BYTES", "lots")
    with pytest.raises(ValueError, match="CALIB_APP_COLLECT_BYTES='lots' is not a number"):
        limits.app_collect_budget()


@pytest.mark.slow
def test_the_layers_page_shows_the_budget_and_stays_usable(monkeypatch):
    """The page's collection runs in the sandbox: a model that loops ends in st.error
    naming the budget, and the page keeps the last good table."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CALIB_APP_COLLECT_SECONDS", "3")
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "pages" / "2_Layers.py"), default_timeout=120).run()
    at.radio(key="layers_src").set_value("onnx").run()
    at.file_uploader(key="layers_onnx_model").set_value(("loop.onnx", loop_model(), "x"))
    at.file_uploader(key="layers_onnx_inputs").set_value(("x.npz", ONE, "x"))
    at.run()
    assert not at.exception
    assert at.error and "stopped after 3 s" in at.error[0].value
    assert "CALIB_APP_COLLECT_SECONDS" in at.error[0].value
    assert at.dataframe  # the model's table, still shown


# -- the child ends with the call that started it (issue 21) ------------------------------------
def _children_of(parent: int) -> list[int]:
    """Sandbox children of ``parent`` still alive: their command line names the bootstrap
    (``calib.sandbox import _child``), and their parent is ``parent`` or their command line
    ends with its pid (an orphan's parent is init)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state, ppid = f.read().rsplit(b")", 1)[1].split()[:2]
        except OSError:
            continue
        ours = int(ppid) == parent or str(parent).encode() in argv
        if state != b"Z" and any(b"_child" in a for a in argv) and ours:
            found.append(int(entry))
    return found


class _Rerun(Exception):
    """Stands for Streamlit's RerunException (a BaseException-free control-flow raise)."""


def _cancel_once_running(seen: list[int], exc: BaseException):
    def cancel() -> None:
        seen[:] = sandbox.running()
        if seen and time.monotonic() > seen_at.setdefault("t", time.monotonic() + 2):
            raise exc

    seen_at: dict[str, float] = {}
    return cancel


@pytest.mark.parametrize("exc", [_Rerun(), KeyboardInterrupt()], ids=["rerun", "stop"])
def test_a_looping_child_is_killed_when_its_caller_is_interrupted(exc):
    """A rerun or a stop (Streamlit raises its Rerun/StopException in the script thread,
    which the app's cancel check re-raises) ends the call, and the child with it."""
    seen: list[int] = []
    with pytest.raises(type(exc)):
        sandbox.collect_upload(loop_model(), ONE, budget=CollectBudget(60, 2**30),
                               cancel=_cancel_once_running(seen, exc))  # fmt: skip
    assert seen, "the child never started"
    assert sandbox.running() == []
    assert _children_of(os.getpid()) == []
    for pid in seen:
        assert not os.path.exists(f"/proc/{pid}"), pid


def test_a_child_whose_progress_handler_raises_is_killed():
    """The page's progress bar is where Streamlit raises its RerunException when the
    child reports progress: that way out kills the child too."""

    def progress(p) -> None:
        raise _Rerun()

    with pytest.raises(_Rerun):
        sandbox.collect_upload(relu_model(), X, budget=CollectBudget(60, 2**30), progress=progress)
    assert sandbox.running() == [] and _children_of(os.getpid()) == []


def test_a_child_dies_with_its_server():
    """The server killed outright (SIGKILL: no finally, no atexit) takes its children with
    it: the parent-death signal (and the child's watch on its parent) end them."""
    script = (
        "import sys, numpy as np, io; sys.path.insert(0, sys.argv[1]);"
        "from calib import sandbox; from calib.limits import CollectBudget;"
        "sandbox.collect_upload(open(sys.argv[2], 'rb').read(), open(sys.argv[3], 'rb').read(),"
        " budget=CollectBudget(60, 2**30))"
    )
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "m.onnx").write_bytes(loop_model())
        (Path(d) / "x.npz").write_bytes(ONE)
        server = subprocess.Popen([sys.executable, "-c", script, str(root), f"{d}/m.onnx",
                                   f"{d}/x.npz"])  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not _children_of(server.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            children = _children_of(server.pid)
            assert children, "the child never started"
        finally:
            server.kill()
            server.wait()
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{c}") for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        # the dead child is reaped by init; a zombie shows no command line any more
        assert _children_of(server.pid) == []


def test_a_server_that_exits_kills_its_children_at_exit():
    """The server stopping (its script threads are daemons: no finally runs) leaves no
    child: atexit kills them (and the parent-death signal, as the thread that started the
    child dies with the interpreter)."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    script = (
        "import sys, threading, time; sys.path.insert(0, sys.argv[1]);"
        "from calib import sandbox; from calib.limits import CollectBudget;"
        "run = lambda: sandbox.collect_upload(open(sys.argv[2], 'rb').read(),"
        " open(sys.argv[3], 'rb').read(), budget=CollectBudget(60, 2**30));"
        "threading.Thread(target=run, daemon=True).start();"
        "t = time.monotonic() + 60\n"
        "while not sandbox.running() and time.monotonic() < t: time.sleep(0.1)\n"
        "print(sandbox.running()[0], flush=True)"
    )
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "m.onnx").write_bytes(loop_model())
        (Path(d) / "x.npz").write_bytes(ONE)
        argv = [sys.executable, "-c", script, str(root), f"{d}/m.onnx", f"{d}/x.npz"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    child = int(done.stdout.split()[0])

    def alive() -> bool:  # a zombie waiting for init to reap it is dead
        try:
            with open(f"/proc/{child}/stat", "rb") as f:
                return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive()


def test_uploaded_models_past_the_server_cap_wait_in_a_queue(monkeypatch):
    """MAX_APP_MODEL_RUNS children at once: the next call waits, says so, and can be
    cancelled while it waits (no child started)."""
    import threading

    monkeypatch.setattr(sandbox, "_SLOTS", threading.BoundedSemaphore(1))
    sandbox._SLOTS.acquire()  # the one slot is taken by another visitor
    said = []
    calls = []

    def cancel() -> None:
        calls.append(1)
        if len(calls) > 2:
            raise _Rerun()

    with pytest.raises(_Rerun):
        sandbox.collect_upload(relu_model(), X, budget=CollectBudget(60, 2**30),
                               progress=said.append, cancel=cancel)  # fmt: skip
    assert said and said[0].stage == "queued" and "MAX_APP_MODEL_RUNS" in said[0].text
    assert sandbox.running() == []
    sandbox._SLOTS.release()
    found = sandbox.collect_upload(relu_model(), X, budget=CollectBudget(60, 2**30))
    assert found.n_samples == 64


def test_a_collection_whose_metadata_is_long_is_read_back():
    """A real model's aliases and not-activations (all-MiniLM-L6-v2: 7,125 characters)
    come back whole: the child writes them as their own JSON document."""
    names = [f"{'n' * 300}{i}" for i in range(8)]  # 8 aliases of 300 characters: 2.4 KB
    nodes = [helper.make_node("Relu", ["x"], ["h"])]
    nodes += [helper.make_node("Identity", ["h"], [n]) for n in names]
    nodes.append(helper.make_node("Relu", [names[-1]], ["y"]))
    found = sandbox.collect_upload(_model(nodes, []), X, budget=CollectBudget(60, 2**30))
    assert found.n_samples == 64 and "y" in found.histograms
    assert sum(len(k) + len(v) for k, v in found.aliases.items()) > limits.MAX_NAME_CHARS


def test_an_upload_past_the_unpacked_bound_is_named_as_the_user_knows_it(tmp_path, monkeypatch):
    """The real EfficientNet-Lite0 calibration set (256 images, 154 MB of float32) is past
    MAX_UNPACKED_BYTES once widened; the page said "'inputs.npz' unpacks...", a name only
    the child's work folder has."""
    (tmp_path / "inputs.npz").write_bytes(npz(x=np.ones((64, 4), np.float32)))
    (tmp_path / "eval.npz").write_bytes(npz(x=np.ones((64, 4), np.float32)))
    monkeypatch.setattr(limits, "MAX_UNPACKED_BYTES", 1024)  # 64 x 4 x 8 bytes is 2,048
    for name, said in (("inputs.npz", "the calibration inputs"), ("eval.npz", "the evaluation")):
        with pytest.raises(ValueError, match=f"inputs: {said}") as caught:
            sandbox._uploaded_inputs(tmp_path, name)
        assert "unpacks" in str(caught.value) and repr(name) not in str(caught.value)
    monkeypatch.setattr(limits, "MAX_UNPACKED_BYTES", 4096)
    assert sandbox._uploaded_inputs(tmp_path, "inputs.npz")["x"].shape == (64, 4)
