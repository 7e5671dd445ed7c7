"""An uploaded model's work ends with its page, in a real browser (issue 21).

A `streamlit run app.py` server and headless Chromium (``calib.dev.browser``): the Layers
page collects from a model that loops (a Loop of 10**15 iterations, 271 bytes), and the
child process running it is found in /proc (its command line names the sandbox's
bootstrap and the server's pid). Leaving the page (the sidebar's navigation: a rerun of
the same session on another page) and closing the browser tab (the session ends) must each
leave no child behind. Without the fix the children ran on to their CPU limit.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import pytest

from calib.dev import browser

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
GONE_S = 15.0  # the app checks every half second; the rest is a busy 2-core machine


def _children(server: int) -> list[int]:
    """Live sandbox children of the process ``server``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_sandbox import _children_of

    return _children_of(server)


def _server_pid(port: str) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"streamlit" in b" ".join(argv) and port.encode() in argv:
                return int(entry)
    raise AssertionError(f"no streamlit server on port {port}")


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def _upload_loop(page, url: str, tmp: Path) -> None:
    from test_sandbox import ONE, loop_model

    (tmp / "loop.onnx").write_bytes(loop_model())
    (tmp / "x.npz").write_bytes(ONE)
    page.goto(f"{url}/Layers")
    page.wait_for_function(browser.PAGE_READY["Layers"], timeout=browser.TIMEOUT_MS)
    page.get_by_text("Collect from an ONNX model").click()
    inputs = page.locator('[data-testid="stSidebar"] input[type="file"]')
    inputs.nth(1).wait_for(state="attached")
    inputs.nth(0).set_input_files(str(tmp / "loop.onnx"))
    inputs.nth(1).set_input_files(str(tmp / "x.npz"))


@contextlib.contextmanager
def _server(tmp: Path):
    if not browser.CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    with browser.streamlit_server(tmp / "server.log") as url:
        yield url, _server_pid(url.rsplit(":", 1)[1])


def test_a_looping_upload_leaves_no_child_after_leaving_or_closing_the_page(tmp_path):
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests"))
    with _server(tmp_path) as (url, pid), sync_playwright() as pw:
        chrome = browser.chromium(pw)
        try:
            page = chrome.new_page(viewport=browser.VIEWPORT)
            page.set_default_timeout(browser.TIMEOUT_MS)
            # 1. navigate away (the sidebar: the same session, another page)
            _upload_loop(page, url, tmp_path)
            assert _wait(lambda: _children(pid), 60), "the model never started"
            page.locator('[data-testid="stSidebarNav"] a', has_text="Learn").click()
            assert _wait(lambda: not _children(pid), GONE_S), "a child outlived its page"
            # 2. close the tab (the session ends)
            _upload_loop(page, url, tmp_path)
            assert _wait(lambda: _children(pid), 60), "the model never started"
            assert len(_children(pid)) == 1  # one upload's work at a time
            page.close()
            assert _wait(lambda: not _children(pid), GONE_S), "a child outlived its session"
            # 3. the browser gone: nothing left either
            page = chrome.new_page(viewport=browser.VIEWPORT)
            _upload_loop(page, url, tmp_path)
            assert _wait(lambda: _children(pid), 60), "the model never started"
        finally:
            chrome.close()
        assert _wait(lambda: not _children(pid), GONE_S), "a child outlived the browser"
