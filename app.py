"""calib's Streamlit app: ``streamlit run app.py``.

This entry point only lists the pages, under the names the sidebar shows; each page is a
short script in pages/ over the ``calib.app`` modules. Explore is the default page (its
URL is the site root, so ``/?layer=...`` links keep working).
"""

from __future__ import annotations

import streamlit as st

PAGES = [
    st.Page("pages/0_Explore.py", title="Explore", default=True),
    st.Page("pages/1_Learn.py", title="Learn", url_path="Learn"),
    st.Page("pages/2_Layers.py", title="Layers", url_path="Layers"),
    st.Page("pages/3_Compare.py", title="Compare", url_path="Compare"),
    st.Page("pages/4_Effect.py", title="Effect on the model", url_path="Effect"),
]

st.navigation(PAGES).run()
