"""Kill a worker process in the middle of a job: another worker completes it, once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hilt.ops import jobs
from hilt.store import audit
from hilt.store.db import make_engine, transaction
from hilt.store.tables.core import ReviewerRow

from . import job_kinds  # noqa: F401  (registers the test kinds)
from .procs import start_worker, stop, truncate_all

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_killed_worker_job_completes_on_another(_postgres_schema: str, tmp_path: Path) -> None:
    from tests.conftest import pg_url_for

    url = pg_url_for(_postgres_schema)
    engine = make_engine(url)
    truncate_all(engine)
    marker = tmp_path / "running.txt"
    workers = [start_worker(url, tmp_path / f"w{i}.log", f"worker-{i}") for i in range(2)]
    try:
        with transaction(engine) as s:
            job_id = jobs.enqueue(s, "test.slow_write", {
                "reviewer_id": "survivor", "sleep_s": 4, "marker_file": str(marker)},
                actor="test")
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        first_pid = int(marker.read_text().split()[0])
        victim = next(w for w in workers if w.pid == first_pid)
        os.kill(victim.pid, signal.SIGKILL)  # mid-job: inside the job's transaction
        victim.wait(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with transaction(engine) as s:
                row = jobs.get_job(s, job_id)
            if row.status in jobs.FINISHED:
                break
            time.sleep(0.2)
        assert row.status == "succeeded"
        assert row.attempts == 2 and len(row.workers) == 2
        assert row.workers[0].startswith("worker-") and row.workers[0] != row.workers[1]
        assert row.result is not None and row.result["pid"] != first_pid
        runs = marker.read_text().split("\n")
        assert [line.split()[2] for line in runs if line] == ["1", "2"]
        with transaction(engine) as s:
            assert s.get(ReviewerRow, "survivor") is not None
            assert len(audit.entries(s, action="reviewer.create")) == 1  # applied once
            assert audit.verify(s).ok
    finally:
        for w in workers:
            stop(w)
        engine.dispose()
