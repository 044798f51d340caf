"""A job thread busy with a long job does not log a warning at every poll."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from hilt.ops import scheduler as scheduler_module
from hilt.ops.scheduler import Scheduler


def test_skipped_polls_while_a_job_runs_log_no_warning(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES

    finished = threading.Event()
    calls = {"n": 0}

    def slow_job(_engine: Any, _worker_id: str) -> str | None:
        calls["n"] += 1
        if calls["n"] == 1:  # one job that outlasts several poll intervals
            time.sleep(1.5)
            finished.set()
            return "succeeded"
        return None

    monkeypatch.setattr(scheduler_module, "run_next", slow_job)
    skips: list[object] = []
    caplog.set_level(logging.WARNING)
    sched = Scheduler(object(), periodic=False, job_threads=1, poll_s=0.2)  # type: ignore[arg-type]
    sched.start()
    try:
        sched._scheduler.add_listener(skips.append, EVENT_JOB_MAX_INSTANCES)
        assert finished.wait(10)
    finally:
        sched.shutdown(wait=True)
    assert len(skips) >= 3  # the poller fired (and was skipped) while the job ran
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]
