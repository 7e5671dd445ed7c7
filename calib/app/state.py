"""What a page keeps for the session, and the link that reproduces its view.

One home for three things every page (Layers, Compare, Effect, Learn) needs:

- **Widget values** survive a visit to another page: each kept widget is made with
  Streamlit's ``persist_state="session"`` (Streamlit otherwise drops a widget's value on a
  run that does not draw it, which a page change is).
- **Uploads** survive it too: a file uploader forgets its file when its page is left, so
  :func:`file_uploader` keeps the last file of each uploader (its name, id and bytes) under
  a non-widget session key, one per uploader, replaced by the next upload and dropped when
  the user removes the file. Results computed from an upload are kept by the page under a
  non-widget key (Layers' ``layers_last_good``, Effect's ``effect_result``).
- **The view in the URL**: ``calib.app.links.LINKS`` says, per page, which query
  parameter holds which widget's value and how it is read back; :func:`sync`, first
  thing on a page, applies a query string that is new (a link) and writes the view back,
  :func:`write` at the end of the page writes what the run settled. A link to an upload
  carries only its settings (the file stays in the browser session), and the sidebar
  says so under the uploader.

The link format itself, every page's (which parameter, which widget, how it is read), is
``calib.app.links``; :func:`explore_method` reads what Explore needs to show a
non-entropy method's clip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import streamlit as st

from calib.app.links import LINKS
from calib.app.text import plain
from calib.explore import CLIP_METHODS, DEFAULT_LAYER
from calib.models import DEFAULT_MODEL
from calib.numbers import fmt, fmt_db, fmt_pct

__all__ = [
    "KEEP",
    "LINK_NOTE",
    "Kept",
    "apply",
    "explore_method",
    "file_uploader",
    "follow_explore",
    "kept_upload",
    "last",
    "link",
    "stale",
    "sync",
    "write",
]

KEEP = "session"
"""Every kept widget's ``persist_state``: its value outlives a visit to another page."""


# --------------------------------------------------------------------------------------
# the view in the URL (the link format itself: calib.app.links)
# --------------------------------------------------------------------------------------
def _written_key(page: str) -> str:
    return f"calib_link_{page}"


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def link(page: str, state: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The query parameters of ``page``'s view, from the session (or ``state``): one per
    widget value the session holds (a widget not made yet is left out)."""
    s = st.session_state if state is None else state
    q = {}
    for p in LINKS[page]:
        v = s.get(p.key, s.get(_last_key(p.key)))
        if v is not None:
            q[p.name] = _text(v)
    for p in LINKS[page]:  # a parameter of one kind of view only (the model's)
        if p.when is not None and q.get(p.when[0]) != p.when[1]:
            q.pop(p.name, None)
    return q


def apply(page: str, params: Mapping[str, str]) -> list[str]:
    """Set the widgets of ``page`` from query parameters; a message per ignored value."""
    s = st.session_state
    bad = []
    for p in LINKS[page]:
        if p.name not in params:
            continue
        try:
            value = p.read(params[p.name])
        except ValueError:
            bad.append(f"Ignored {p.name}={params[p.name]!r} from the link: expected {p.expects}.")
            continue
        s[_last_key(p.key)] = value
        if p.widget:
            s[p.key] = value
    return bad


def _last_key(key: str) -> str:
    return f"calib_last_{key}"


def last(key: str, fallback: Any) -> Any:
    """The value a widget Streamlit does not keep (``st.tabs``) had when the page last ran
    (or a link set), for its ``default=``; ``fallback`` when there is none."""
    s = st.session_state
    v = s.get(key, s.get(_last_key(key)))
    return fallback if v is None else v


def write(page: str) -> None:
    """Write ``page``'s view into the URL (and remember it as the page's own)."""
    s = st.session_state
    for p in LINKS[page]:
        if s.get(p.key) is not None:
            s[_last_key(p.key)] = s[p.key]
    q = link(page)
    if q != st.query_params.to_dict():
        st.query_params.from_dict(q)
    st.session_state[_written_key(page)] = q


def sync(page: str) -> None:
    """Keep ``page``'s view in the URL, the way Explore keeps its own: call it first thing.

    A query string the page did not write itself (a link, or a page sending the user
    here) sets the widgets; an empty one (the sidebar's link to the page) leaves them as
    the session kept them. Then the view is written back (the start of a run already
    holds this rerun's widget values, so a page that stops early still has them in the
    URL); :func:`write` at the end of the page adds what the run itself settled.
    """
    s = st.session_state
    names = {p.name for p in LINKS[page]}
    url = st.query_params.to_dict()
    params = {} if stale(page, url) else {k: v for k, v in url.items() if k in names}
    written = s.get(_written_key(page))
    if params and params != written:
        for message in apply(page, params):
            st.warning(plain(message))  # a link's values are anyone's text: never markdown
    write(page)


def stale(page: str, url: Mapping[str, str]) -> bool:
    """Whether ``url`` (a query string) is exactly what another page last wrote: left over
    from it, not a link to ``page`` (a browser clears the query string on a page change;
    Streamlit's AppTest, and any client that keeps it, do not)."""
    if not url:
        return False
    s = st.session_state
    mine = _written_key(page)
    others = [s[k] for k in list(s.keys()) if str(k).startswith("calib_link_") and k != mine]
    if page != "explore":
        others.append(s.get("explore_query_written"))
    return any(o and dict(url) == o for o in others)


def follow_explore(page: str) -> None:
    """Open ``page`` on the layer Explore last showed, unless the user picked one here.

    Reads Explore's last written view (``explore_query_written``: src, layer, demo) and,
    when this page shows what it last copied from Explore (or has never been opened),
    copies it again. A link to this page wins (it is applied after this)."""
    s = st.session_state
    explore = s.get("explore_query_written") or {}
    src = explore.get("src")
    if src not in ("model", "demo", "layers"):
        return
    want = {f"{page}_kind": src}
    if src == "model":
        want[f"{page}_model"] = explore.get("model", DEFAULT_MODEL)
        want[f"{page}_model_layer"] = explore.get("layer", DEFAULT_LAYER)
    elif src == "layers" and explore.get("layer"):
        want[f"{page}_layers_layer"] = explore["layer"]
    elif src == "demo" and explore.get("demo"):
        want[f"{page}_demo"] = explore["demo"]
    followed = s.get(f"calib_follow_{page}")
    current = {k: s.get(k) for k in want}
    never = _written_key(page) not in s
    if never or (followed is not None and {k: s.get(k) for k in followed} == followed):
        if current != want:
            for k, v in want.items():
                s[k] = v
        s[f"calib_follow_{page}"] = want


# --------------------------------------------------------------------------------------
# uploads kept for the session
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Kept:
    """An upload held in the session: what the pages read of a Streamlit UploadedFile."""

    name: str
    file_id: str
    data: bytes = dataclasses.field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    def getvalue(self) -> bytes:
        return self.data


LINK_NOTE = "The page's link carries its settings, not this file: it stays in this session."


def _kept_key(key: str) -> str:
    return f"calib_kept_{key}"


def kept_upload(key: str) -> Kept | None:
    """The file last uploaded with the uploader ``key`` in this session, if any."""
    return st.session_state.get(_kept_key(key))


def _on_upload_change(key: str) -> None:
    if st.session_state.get(key) is None:  # the user removed the file
        st.session_state.pop(_kept_key(key), None)


def file_uploader(where: Any, label: str, *, key: str, **kwargs: Any) -> Any:
    """``where.file_uploader(label, key=key, ...)`` whose file outlives a page change.

    Returns the uploaded file, or (after a visit to another page, when the uploader
    shows no file) the one kept from earlier in the session, with a caption saying so.
    The next upload replaces it; removing the file from the uploader forgets it."""
    upload = where.file_uploader(label, key=key, on_change=_on_upload_change, args=(key,), **kwargs)
    if upload is not None:
        st.session_state[_kept_key(key)] = Kept(upload.name, upload.file_id, upload.getvalue())
        where.caption(LINK_NOTE)
        return upload
    kept = kept_upload(key)
    if kept is not None:
        where.caption(
            f"Using **{plain(kept.name)}**, uploaded earlier in this session; upload "
            f"another file to replace it. {LINK_NOTE}"
        )
    return kept


# --------------------------------------------------------------------------------------
# Explore: a row ranked under another method
# --------------------------------------------------------------------------------------
def explore_method(key: str = "explore") -> str | None:
    """The method a link asked Explore to show (``method=mse``): None for entropy."""
    method = st.session_state.get(f"{key}_method")
    return method if method in CLIP_METHODS else None


def _show_entropy(key: str) -> None:
    st.session_state[f"{key}_method"] = "entropy"


def method_clip(view: Any, num_bits: int, key: str = "explore") -> None:
    """On Explore, the clip of the method a row was ranked under (``method=mse`` in the
    link), before the entropy sweep's: its amax and metrics, and the picked candidate
    moved to the sweep's candidate nearest it (the histogram's dashed line, the "Picked"
    P and Q), once per source and method. A button goes back to the sweep alone."""
    method = explore_method(key)
    if method is None or view.result.dead:
        return
    clip = next((o for o in view.methods if o.name == method), None)
    if clip is None or clip.note or clip.metrics is None:
        why = clip.note if clip is not None else "not computed"
        st.warning(f"The row was ranked under {method}, which cannot run here: {why}.")
        return
    m = clip.metrics
    pct = " (ModelOpt's 99.99th)" if method == "percentile" else ""
    st.info(
        f"**Ranked under {method}**{pct}: its clip is **amax {fmt(clip.amax)}** "
        f"({fmt(clip.calibration.ratio_to(view.max_abs), 3)} of max |x|), "
        f"{fmt_pct(m.clipped_fraction)} clipped, SQNR {fmt_db(m.sqnr_db)} at {num_bits} bits: "
        f"the {method} line on the histogram, and the picked candidate below is the sweep's "
        f"nearest to it. The entropy sweep ({view.variant}) chooses {fmt(view.result.amax)}."
    )
    st.button(
        f"Show the entropy sweep's clip only (leave {method})", key=f"{key}_method_off",
        on_click=_show_entropy, args=(key,),
    )  # fmt: skip
    s = st.session_state
    shown = (view.source_key, method, clip.amax, view.variant)
    linked = s.pop(f"{key}_candidate_linked", False)  # a link's own pick (links.py) stays
    if s.get(f"{key}_method_picked") != shown:
        s[f"{key}_method_picked"] = shown
        if not linked:
            thresholds = view.result.thresholds
            nearest = int(abs(thresholds - clip.amax).argmin())
            s[f"{key}_candidate"] = int(view.result.candidates[nearest])
