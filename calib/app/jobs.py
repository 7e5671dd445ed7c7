"""An uploaded model's work belongs to the page run that started it.

``calib.sandbox`` runs the model in a child process and kills it on every way out of the
call. This module gives it the app's ways out: :func:`page_work` is a context manager
around one upload's work that

- holds the session's one slot: a session runs one upload's work at a time (a second is
  refused with what to do);
- yields the ``cancel`` check the sandbox calls every half second while the child runs: it
  raises Streamlit's own ``RerunException`` / ``StopException`` as soon as the session asks
  for a rerun (a click, a page change) or a stop (the browser closed, the server stopping),
  and ``StopException`` when the session is no longer connected to the server.

The server-wide cap (``calib.limits.MAX_APP_MODEL_RUNS``, a queue) lives in the sandbox.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["page_work"]

_BUSY: set[str] = set()
_BUSY_LOCK = threading.Lock()


def _session_check() -> tuple[str, Callable[[], None]]:
    """This run's session id and its cancel check (a no-op outside a Streamlit run)."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None:
        return "", lambda: None
    session_id = ctx.session_id

    def cancel() -> None:
        ctx.yield_check()  # raises on a pending rerun or stop request of this session
        if Runtime.exists() and not Runtime.instance().is_active_session(session_id):
            raise StopException()  # the visitor is gone

    return session_id, cancel


@contextlib.contextmanager
def page_work() -> Iterator[Callable[[], None]]:
    """One upload's work in this session; yields the sandbox's ``cancel`` check."""
    session_id, cancel = _session_check()
    with _BUSY_LOCK:
        if session_id and session_id in _BUSY:
            raise ValueError(
                "this session is already running an uploaded model (one at a time): wait "
                "for it to finish, or reload the page to stop it"
            )
        _BUSY.add(session_id)
    try:
        yield cancel
    finally:
        with _BUSY_LOCK:
            _BUSY.discard(session_id)
