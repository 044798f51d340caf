"""Training children never outlive the process that runs their job: a serving process
that stops terminates them, and a worker killed outright takes them with it (Linux)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hilt.api.app import create_app
from hilt.ops import install, jobs
from hilt.store.db import make_engine, transaction

from .helpers import migrated_sqlite
from .procs import start_worker, stop


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped running


def _wait_for(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A stand-in for ``accelerate launch -m``: records its pid, then "trains" for two
    minutes."""
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "launcher.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 120\n")
    script.chmod(0o755)
    yield script, pid_file
    if pid_file.exists():  # never leave one behind, whatever the outcome
        pid = int(pid_file.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return migrated_sqlite(str(tmp_path / "jobs.db"))


def _start_training(url: str) -> str:
    engine = make_engine(url)
    try:
        with transaction(engine) as s:
            job_id = jobs.enqueue(s, "train.reward", {"pairs": "p.jsonl", "out": "rm"},
                                  actor="test")
    finally:
        engine.dispose()
    assert job_id is not None
    return job_id


def test_stopping_a_serving_process_terminates_its_training_child(
        sqlite_url: str, launcher: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
        ) -> None:
    script, pid_file = launcher
    monkeypatch.setenv("HILT_TRAIN_LAUNCHER", str(script))
    monkeypatch.setenv("HILT_JOB_POLL_SECONDS", "0.2")
    for task in ("REVIEW_EXPIRE_LEASES", "REVIEW_RESOLVE_COMPLETE", "REVIEW_SLA_BREACHES",
                 "REVIEW_PRIORITIES", "QUALITY_SNAPSHOT", "QUALITY_STATUSES",
                 "QUALITY_REFRESH", "DRIFT_MONITORS", "WEBHOOKS_DISPATCH",
                 "WEBHOOKS_DELIVER"):
        monkeypatch.setenv(f"HILT_PERIOD_{task}", "3600")
    job_id = _start_training(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        app = install(create_app(engine), scheduler=True, json_logs=False)
        with TestClient(app):
            assert _wait_for(pid_file.exists, 20), "the training child did not start"
            assert _wait_for(lambda: pid_file.read_text().strip(), 5)
            pid = int(pid_file.read_text())
            assert _alive(pid)
        # The app has stopped (what SIGTERM to `hilt serve` does): the child is gone.
        assert _wait_for(lambda: not _alive(pid), 15), "the training child outlived it"

        def finished() -> bool:
            with transaction(engine) as s:
                return jobs.get_job(s, job_id).status in jobs.FINISHED

        assert _wait_for(finished, 15)
        with transaction(engine) as s:
            row = jobs.get_job(s, job_id)
        assert row.status == "failed" and "worker shut down" in (row.error or "")
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
def test_a_killed_worker_takes_its_training_child_with_it(
        sqlite_url: str, launcher: tuple[Path, Path], tmp_path: Path) -> None:
    script, pid_file = launcher
    worker = start_worker(sqlite_url, tmp_path / "worker.log", "w-kill",
                          HILT_TRAIN_LAUNCHER=str(script))
    try:
        _start_training(sqlite_url)
        assert _wait_for(pid_file.exists, 60), (tmp_path / "worker.log").read_text()
        assert _wait_for(lambda: pid_file.read_text().strip(), 5)
        pid = int(pid_file.read_text())
        assert _alive(pid)
        worker.send_signal(signal.SIGKILL)  # no shutdown at all
        worker.wait(10)
        assert _wait_for(lambda: not _alive(pid), 10), "the training child was orphaned"
    finally:
        stop(worker)


def test_a_training_child_uses_the_database_its_job_came_from(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = tmp_path / "child-database.txt"
    script = tmp_path / "record-db.sh"
    script.write_text(f'#!/bin/sh\nprintf %s "$HILT_DATABASE_URL" > {seen}\n')
    script.chmod(0o755)
    monkeypatch.setenv("HILT_TRAIN_LAUNCHER", str(script))
    # what the child would otherwise register into: the worker's own default
    monkeypatch.setenv("HILT_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    job_id = _start_training(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        assert jobs.run_next(engine, "w1") == "succeeded"
        with transaction(engine) as s:
            assert jobs.get_job(s, job_id).status == "succeeded"
    finally:
        engine.dispose()
    assert seen.read_text() == sqlite_url
