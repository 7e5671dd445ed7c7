"""Every page runs through the entry point's ``st.navigation`` (app.py), even the first.

Streamlit decides once per server process whether an app uses its legacy ``pages/``
folder mode: until some session has called ``st.navigation``, a ``pages/`` folder next to
the entry point means legacy mode. A fresh server's first visitor who opens a page by its
URL (``/Layers``, ``/Compare``), or follows ``st.switch_page`` there, then gets that page
run under Streamlit's own folder navigation, whose sidebar lists the entry point as an
extra page named "app" (issue 10, problem 10). :func:`ensure_navigation` switches the
process to ``st.navigation`` and reruns, so the entry point's page list is the one shown.
"""

from __future__ import annotations

import streamlit as st

__all__ = ["ensure_navigation"]


def ensure_navigation() -> None:
    """Rerun through app.py's ``st.navigation`` if Streamlit still runs ``pages/`` itself.

    Called first thing by every page script. It reads and clears
    ``PagesManager.uses_pages_directory``, the flag ``st.navigation`` itself clears (a
    Streamlit internal: if it is gone, there is nothing to do).
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without it has no legacy mode to leave
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()
