"""Text from files and links, shown by Streamlit as text, never as markdown.

``st.error``, ``st.warning``, ``st.caption`` and ``st.markdown`` render markdown, so a link
(``?variant=[x](https://evil)``), a file name or a layer name could otherwise put links,
images (a request to any server, from the visitor's browser), colours or LaTeX on the
page. Every untrusted string a page shows goes through :func:`plain`.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["plain"]

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def plain(text: Any) -> str:
    """``text`` as literal characters in Streamlit markdown: each ASCII punctuation
    character backslash-escaped (CommonMark's character escapes, which also stop
    Streamlit's ``:colour[...]`` directives, links, images, autolinks and ``$`` maths)."""
    return _PUNCTUATION.sub(r"\\\1", str(text))
