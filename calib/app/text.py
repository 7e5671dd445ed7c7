"""Text from files and links, shown by Streamlit as text, never as markdown.

``st.error``, ``st.warning``, ``st.caption`` and ``st.markdown`` render markdown, so a link
(``?variant=[x](https://evil)``) could otherwise put links, images (a request to any
server, from the visitor's browser), colours or LaTeX on the page of whoever opens it.
What a link carries goes through :func:`plain` (Explore's "Ignored ..." warnings; every
other value of a link is checked against a list before it is used), and so does every
piece of text that comes from a file: upload and layer names, tensor names and headers
of a calibration cache, trace method names, an uploaded model's names in its report. A
file travels (a cache from a colleague, a model from a hub): its names are not the
visitor's own words.

Errors are shown through :func:`error` only: the message as text, with the server's own
paths (temporary folders, the install) cut to the file's name.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["error", "error_text", "plain"]

# what opens markdown that is not text: links and images ([ ]), HTML and autolinks (< >),
# Streamlit's :colour[...] directives ([ ]), maths ($), code (`), emphasis (* ~), mail
# autolinks (@), and the escape itself; "://" and "www." (GFM's bare-URL links) below
_MARKUP = re.compile(r"([\\`*~\[\]<>$@])")
_BARE_URL = re.compile(r"(?i)(:)(//)|\b(www)(\.)")


def plain(text: Any) -> str:
    """``text`` as literal characters in Streamlit markdown: the characters that open
    links, images, HTML, autolinks, directives, maths, code and emphasis backslash-escaped
    (CommonMark's character escapes), bare URLs broken (``http:\\/\\/``, ``www\\.``), line
    breaks made spaces (no new block). Everything else is left as it is, so a message
    reads the same in the page's source (``target_bins``, ``(2048)``) as on the page.

    >>> plain("[x](http://evil) ![i](www.evil.org/a.png) <b>")
    '\\\\[x\\\\](http:\\\\/\\\\/evil) !\\\\[i\\\\](www\\\\.evil.org/a.png) \\\\<b\\\\>'
    """
    out = _MARKUP.sub(r"\\\1", str(text))
    out = _BARE_URL.sub(lambda m: f"{m[1]}\\/\\/" if m[1] else f"{m[3]}\\.", out)
    return out.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


_INSTALL = str(Path(__file__).resolve().parents[2])  # the folder holding the calib package


def _server_paths() -> re.Pattern:
    roots = {tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir()), _INSTALL,
             os.path.expanduser("~")} - {"", "/"}  # fmt: skip
    alternatives = "|".join(re.escape(r.rstrip("/")) for r in sorted(roots, key=len, reverse=True))
    # a root, then path characters up to a quote, a space, a colon or the end
    return re.compile(rf"(?:{alternatives})(?:/[^\s'\":,;)]*)?")


def error_text(exc: BaseException | str) -> str:
    """An error's message as the page shows it: the server's own paths (a temporary
    folder, where calib is installed, the home folder) cut to their last part, the rest as
    text (:func:`plain`)."""
    message = str(exc)
    message = _server_paths().sub(lambda m: os.path.basename(m.group(0).rstrip("/")) or "…",
                                  message)  # fmt: skip
    return plain(message)


def error(lead: str, exc: BaseException | str | None = None, tail: str = "") -> None:
    """The one place an app error is shown: ``lead`` (markdown the page wrote; put file
    names through :func:`plain`), the error as text (:func:`error_text`), ``tail``."""
    import streamlit as st

    st.error(lead + ("" if exc is None else f": {error_text(exc)}") + tail)
