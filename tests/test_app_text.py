"""Text from files is text on every page (issue 21): names in an uploaded cache, its
header, trace method names and upload names never render as links, images or HTML, and
errors show no server paths (``calib.app.text``)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest

import calib
from calib.app.text import error_text, plain
from calib.convergence import Trace

ROOT = Path(__file__).resolve().parents[1]
LINK = "[x](http://evil)"
IMAGE = "![img](http://evil/a.png)"
HTML = "<img src=http://evil/b.png>"


def _markdown(at) -> str:
    """Every piece of markdown the page rendered (text, captions, alerts, headings)."""
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def _assert_inert(rendered: str, *names: str) -> None:
    for name in names:
        assert name not in rendered, f"{name!r} rendered raw"
        assert plain(name) in rendered, f"{name!r} not shown escaped"


def test_plain_escapes_every_markdown_construct():
    for s in (LINK, IMAGE, HTML, "**b**", ":red[x]", "$x$", "`c`", "<http://e>", "a@b.org"):
        escaped = plain(s)
        assert all(escaped[i - 1] == "\\" for i, ch in enumerate(escaped) if ch in "[]<>*`$@")
    assert "://" not in plain("see http://evil") and "www." not in plain("www.evil.org")
    assert "\n" not in plain("a\n\n# heading")


def test_errors_show_no_server_paths():
    tmp = tempfile.gettempdir()
    shown = error_text(f"{tmp}/calib-sandbox-k3j/model.onnx: not an ONNX model")
    assert tmp.strip("/").split("/")[0] not in shown.replace("\\", "")
    assert "calib-sandbox" not in shown and shown.startswith("model.onnx: not")
    shown = error_text(f"cannot read {ROOT}/calib/io/_safe.py")
    assert str(ROOT) not in shown.replace("\\", "") and shown.endswith("cannot read _safe.py")


@pytest.mark.slow
def test_a_cache_with_markdown_names_renders_as_text():
    from streamlit.testing.v1 import AppTest

    cache = (f"TRT-8601-EntropyCalibration2\n{LINK}: 3c008912\n{IMAGE}: 3c008912\n"
             f"{HTML}: 3c008912\n").encode()  # fmt: skip
    at = AppTest.from_file(str(ROOT / "pages" / "2_Layers.py"), default_timeout=120).run()
    at.file_uploader(key="layers_cache_file").set_value((f"{IMAGE}.cache", cache, "text/plain"))
    at.run()
    assert not at.exception
    rendered = _markdown(at)
    assert "evil" in rendered  # the names are shown...
    _assert_inert(rendered, LINK, IMAGE)  # ... as text
    assert HTML not in rendered


@pytest.mark.slow
def test_a_histogram_upload_with_markdown_names_and_methods_renders_as_text():
    """Layer names and trace method names of an uploaded .npz, and its file name."""
    from streamlit.testing.v1 import AppTest

    h = calib.Histogram.from_samples(np.random.default_rng(0).laplace(size=4000), 256)
    trace = Trace(np.array([4, 8]), {"max": np.array([1.0, 2.0]), IMAGE: np.array([1.0, 1.0])})
    buf = io.BytesIO()
    calib.save_histograms(buf, {LINK: h, "b": h}, traces={LINK: trace, "b": trace})
    at = AppTest.from_file(str(ROOT / "pages" / "2_Layers.py"), default_timeout=120).run()
    at.radio(key="layers_src").set_value("upload").run()
    at.file_uploader(key="layers_file").set_value((f"{LINK}.npz", buf.getvalue(), "x"))
    at.run()
    assert not at.exception
    rendered = _markdown(at)
    _assert_inert(rendered, LINK, IMAGE)


@pytest.mark.slow
def test_an_unreadable_upload_error_is_text_without_server_paths():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "2_Layers.py"), default_timeout=120).run()
    at.radio(key="layers_src").set_value("upload").run()
    at.file_uploader(key="layers_file").set_value((f"{IMAGE}.npz", b"PK\x03\x04junk", "x"))
    at.run()
    assert not at.exception and at.error
    message = at.error[0].value
    assert IMAGE not in message and plain(IMAGE) in message
    assert tempfile.gettempdir() not in message.replace("\\", "")
