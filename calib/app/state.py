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
- **The view in the URL**: :data:`LINKS` says, per page, which query parameter holds which
  widget's value and how it is read back; :func:`sync`, first thing on a page, applies a
  query string that is new (a link) and writes the view back, :func:`write` at the end of
  the page writes what the run settled. A link to an upload carries only its settings (the
  file stays in the browser session), and the sidebar says so under the uploader.

Explore keeps its own link format (``calib.explore.parse_explore_query``); :func:`explore_method`
reads what Explore needs to show a non-entropy method's clip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from calib.app.text import plain
from calib.demos import DEMOS
from calib.explore import DEFAULT_LAYER, SOURCE_KINDS
from calib.methods import METHODS
from calib.policies import NUM_BITS_CHOICES, TARGET_BINS_MAX, TARGET_BINS_MIN, VARIANTS

__all__ = [
    "KEEP",
    "LINKS",
    "LINK_NOTE",
    "Kept",
    "Param",
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
# the link format: one table per page
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Param:
    """One query parameter: its ``name`` in the URL, the widget ``key`` it sets, how the
    text is read (``read`` returns the value or raises ValueError), what it expects
    (for the warning a bad link gets)."""

    name: str
    key: str
    read: Callable[[str], Any]
    expects: str
    widget: bool = True  # False: st.tabs, which a page opens through ``default=`` (see last)


def _one_of(options: Sequence[Any]) -> Callable[[str], Any]:
    by_text = {str(o): o for o in options}

    def read(text: str) -> Any:
        if text not in by_text:
            raise ValueError(text)
        return by_text[text]

    return read


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def read(text: str) -> int:
        v = int(text)
        if not lo <= v <= hi:
            raise ValueError(text)
        return v

    return read


def _float_in(lo: float, hi: float) -> Callable[[str], float]:
    def read(text: str) -> float:
        v = float(text)
        if not lo <= v <= hi:  # NaN fails too
            raise ValueError(text)
        return v

    return read


def _bool(text: str) -> bool:
    t = text.lower()
    if t not in ("true", "1", "false", "0"):
        raise ValueError(text)
    return t in ("true", "1")


def _any_text(text: str) -> str:
    return text  # checked where it is used (a layer of the file shown)


def _choice(name: str, key: str, options: Sequence[Any]) -> Param:
    return Param(name, key, _one_of(options), "one of " + ", ".join(map(str, options)))


def _learn_choice(name: str, key: str, what: str) -> Param:
    """A choice among calib.app.learn's lessons or questions (read when a link comes)."""

    def read(text: str) -> str:
        from calib.app import learn  # it imports this module

        options = [*learn.learn.LESSONS, learn.OTHER] if what == "lesson" else list(learn.QUESTIONS)
        return _one_of(options)(text)

    return Param(name, key, read, f"a {what} of the Learn page", widget=what != "question")


def _source_params(page: str) -> tuple[Param, ...]:
    """The histogram source of a page built on ``calib.app.sources.histogram_source``."""
    return (
        _choice("src", f"{page}_kind", list(SOURCE_KINDS)),
        Param("layer", f"{page}_model_layer", _any_text, "a layer of the real model"),
        Param("layers_layer", f"{page}_layers_layer", _any_text, "a layer of the file"),
        _choice("demo", f"{page}_demo", list(DEMOS)),
    )


LINKS: dict[str, tuple[Param, ...]] = {
    "layers": (
        _choice("src", "layers_src", ["model", "upload", "onnx"]),
        _choice("method", "layers_method", METHODS),
        _choice("variant", "layers_variant", list(VARIANTS)),
        _choice("bits", "layers_bits", NUM_BITS_CHOICES),
        Param("target_bins", "layers_target_bins", _int_in(TARGET_BINS_MIN, 2**14), "an integer"),
        Param("percentile", "layers_percentile", _float_in(0.0, 100.0), "a number in 0..100"),
    ),
    "compare": (
        *_source_params("compare"),
        Param("hist_bins", "compare_hist_bins", _int_in(2, 2**20), "an integer"),
        Param("same_levels", "compare_same_levels", _bool, "true or false"),
        Param(
            "target_bins",
            "compare_target_bins",
            _int_in(TARGET_BINS_MIN, TARGET_BINS_MAX),
            "an integer",
        ),
        Param("log_y", "compare_log_y", _bool, "true or false"),
        dataclasses.replace(
            _choice("why", "compare_why_tab", [v for v in VARIANTS if v != "seed"]), widget=False
        ),
    ),
    "effect": (
        _choice("src", "effect_src", ["shipped", "upload"]),
        Param("target", "effect_target", _float_in(0.0, 120.0), "0..120 dB"),
        Param("weights", "effect_weights", _bool, "true or false"),
    ),
    "learn": (
        _learn_choice("lesson", "learn_lesson", "lesson"),
        *_source_params("learn"),
        Param("hist_bins", "learn_hist_bins", _int_in(2, 2**20), "an integer"),
        _choice("variant", "learn_variant", list(VARIANTS)),
        Param("target_bins", "learn_target_bins", _int_in(1, 2**14), "an integer"),
        Param("candidate", "learn_candidate", _int_in(0, 2**20), "an integer"),
        _learn_choice("question", "learn_question", "question"),
    ),
}
"""Each page's query parameters (the link format of every page but Explore's)."""


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
    return method if method in METHODS and method != "entropy" else None


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
        f"**Ranked under {method}**{pct}: its clip is **amax {clip.amax:.4g}** "
        f"({clip.amax / view.max_abs:.3f} of max |x|), {100 * m.clipped_fraction:.3g}% clipped, "
        f"SQNR {m.sqnr_db:.1f} dB at {num_bits} bits: the {method} line on the histogram, and "
        f"the picked candidate below is the sweep's nearest to it. The entropy sweep "
        f"({view.variant}) chooses {view.result.amax:.4g}."
    )
    st.button(
        f"Show the entropy sweep's clip only (leave {method})", key=f"{key}_method_off",
        on_click=_show_entropy, args=(key,),
    )  # fmt: skip
    s = st.session_state
    shown = (view.source_key, method, clip.amax, view.variant)
    if s.get(f"{key}_method_picked") != shown:
        s[f"{key}_method_picked"] = shown
        thresholds = view.result.thresholds
        nearest = int(abs(thresholds - clip.amax).argmin())
        s[f"{key}_candidate"] = int(view.result.candidates[nearest])
