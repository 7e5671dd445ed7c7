"""calib.app.jobs: one upload's work at a time per session; the cancel check outside a
Streamlit run does nothing (the sandbox's own tests kill children through it)."""

from __future__ import annotations

import pytest

from calib.app import jobs


def test_a_session_runs_one_uploads_work_at_a_time(monkeypatch):
    monkeypatch.setattr(jobs, "_session_check", lambda: ("session-1", lambda: None))
    with jobs.page_work():
        with pytest.raises(ValueError, match="one at a time"):
            with jobs.page_work():
                pass
    with jobs.page_work():  # released when the first ended
        pass
    monkeypatch.setattr(jobs, "_session_check", lambda: ("session-2", lambda: None))
    with jobs.page_work():  # another session is not held up
        pass


def test_outside_a_streamlit_run_the_check_does_nothing():
    with jobs.page_work() as cancel:
        cancel()
