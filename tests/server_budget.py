"""Measure issue 21's cases after the change (time, peak memory): run as

    PYTHONPATH=. python tests/server_budget.py layers|compare|relu-chain

Each case runs in this fresh process; peak memory is this process's (and, for the
sandbox, its child's) maximum resident set size.
"""

from __future__ import annotations

import io
import resource
import sys
import time
from pathlib import Path

import numpy as np

import calib

ROOT = Path(__file__).resolve().parents[1]
LAYERS = 250  # issue 21 had 500 layers of 65,536 bins: past 255 they unpack past MAX_UNPACKED_BYTES


def _npz(hists) -> bytes:
    buf = io.BytesIO()
    calib.save_histograms(buf, hists)
    return buf.getvalue()


def _peak_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def relu_chain(n: int = 3000) -> bytes:
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", [f"t{i}" if i else "x"], [f"t{i + 1}" if i + 1 < n else "y"])
             for i in range(n)]  # fmt: skip
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def layers() -> None:
    import zipfile

    from streamlit.testing.v1 import AppTest

    counts = np.floor(1e6 * np.exp(-np.arange(2**16) / 3000.0)) + 1  # smooth: compresses
    h = calib.Histogram(counts, np.arange(2**16 + 1, dtype=float))  # edges that compress
    plain = io.BytesIO(_npz({f"layer{i}": h for i in range(LAYERS)}))
    packed = io.BytesIO()  # the same members, deflated: a small upload
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as z:
        for name in src.namelist():
            z.writestr(name, src.read(name))
    data = packed.getvalue()
    at = AppTest.from_file(str(ROOT / "pages" / "2_Layers.py"), default_timeout=600).run()
    at.radio(key="layers_src").set_value("upload").run()
    at.file_uploader(key="layers_file").set_value(("big.npz", data, "x"))
    t0 = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t0
    error = at.error[0].value[:160] if at.error else None
    print(f"Layers, {LAYERS} x 65,536 bins ({len(data) / 2**20:.1f} MiB): {dt:.1f} s, "
          f"peak {_peak_mb():.0f} MB; error: {error}")  # fmt: skip


def compare() -> None:
    from streamlit.testing.v1 import AppTest

    h = calib.Histogram.from_samples(np.random.default_rng(1).laplace(size=200_000), 2**16)
    at = AppTest.from_file(str(ROOT / "pages" / "3_Compare.py"), default_timeout=600).run()
    at.radio(key="compare_kind").set_value("histogram").run()
    at.file_uploader(key="compare_histogram_file").set_value(("h.npz", _npz({"x": h}), "x"))
    t0 = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t0
    print(f"Compare, one 65,536-bin histogram (run at "
          f"{at.select_slider(key='compare_hist_bins').value} bins): {dt:.1f} s, "
          f"peak {_peak_mb():.0f} MB")  # fmt: skip


def chain() -> None:
    from calib import sandbox

    x = io.BytesIO()
    np.savez(x, x=np.random.default_rng(2).standard_normal((256, 16)).astype(np.float32))
    model = relu_chain()
    t0 = time.perf_counter()
    try:
        found = sandbox.collect_upload(model, x.getvalue())
        what = f"{len(found.histograms)} histograms"
    except ValueError as exc:
        what = f"refused: {exc}"
    dt = time.perf_counter() - t0
    print(f"Collect from an ONNX model, 3,000 Relus ({len(model) / 1024:.0f} KiB): {dt:.1f} s, "
          f"child peak {_peak_mb(resource.RUSAGE_CHILDREN):.0f} MB; {what[:200]}")  # fmt: skip


def keypress() -> None:
    """A second session's key press on Explore (calib.dev.browser.keypress_redraw_ms), alone
    and while a first session's Layers page collects from the 3,000-Relu chain."""
    import statistics
    import tempfile

    from playwright.sync_api import sync_playwright

    from calib.dev import browser

    with tempfile.TemporaryDirectory() as d, sync_playwright() as pw:
        tmp = Path(d)
        (tmp / "chain.onnx").write_bytes(relu_chain())
        x = io.BytesIO()
        np.savez(x, x=np.random.default_rng(2).standard_normal((256, 16)).astype(np.float32))
        (tmp / "x.npz").write_bytes(x.getvalue())
        with browser.streamlit_server(tmp / "server.log") as url:
            chrome = browser.chromium(pw)
            alone = browser.keypress_redraw_ms(chrome, url, presses=7)
            page = chrome.new_page(viewport=browser.VIEWPORT)
            page.set_default_timeout(browser.TIMEOUT_MS)
            page.goto(f"{url}/Layers")
            page.wait_for_function(browser.PAGE_READY["Layers"], timeout=browser.TIMEOUT_MS)
            page.get_by_text("Collect from an ONNX model").click()
            inputs = page.locator('[data-testid="stSidebar"] input[type="file"]')
            inputs.nth(1).wait_for(state="attached")
            inputs.nth(0).set_input_files(str(tmp / "chain.onnx"))
            inputs.nth(1).set_input_files(str(tmp / "x.npz"))
            page.get_by_text("Collecting").first.wait_for(timeout=120_000)  # the child runs
            t0 = time.perf_counter()
            during = browser.keypress_redraw_ms(chrome, url, presses=7)
            still = page.get_by_text("Collecting").count() > 0
            chrome.close()
    print(f"Explore key press, a second session: alone median {statistics.median(alone):.0f} ms "
          f"(max {max(alone):.0f}); during a collection median {statistics.median(during):.0f} "
          f"ms (max {max(during):.0f}), measured over {time.perf_counter() - t0:.0f} s, "
          f"collection still running at the end: {still}")  # fmt: skip


if __name__ == "__main__":
    cases = {"layers": layers, "compare": compare, "relu-chain": chain, "keypress": keypress}
    cases[sys.argv[1]]()
