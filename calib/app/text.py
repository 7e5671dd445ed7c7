"""Text from files and links, shown by Streamlit as text, never as markdown.

``st.error``, ``st.warning``, ``st.caption`` and ``st.markdown`` render markdown, so a link
(``?variant=[x](https://evil)``) could otherwise put links, images (a request to any
server, from the visitor's browser), colours or LaTeX on the page of whoever opens it.
What a link carries goes through :func:`plain` (Explore's "Ignored ..." warnings; every
other value of a link is checked against a list before it is used). The names of a
visitor's own uploads are shown as they are: only they can put markdown there.
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
