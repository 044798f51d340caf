"""Ctrl-C and SIGTERM stop ``hilt worker`` and ``hilt jobs work`` cleanly: a line saying
so and no traceback, a running short job finished, a training child terminated with its
job failed in one line, and the conventional exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hilt.ops import job_views, jobs
from hilt.store.db import make_engine, transaction

from . import job_kinds  # noqa: F401  (registers the test kinds)
from .helpers import migrated_sqlite
from .procs import REPO, child_env

pytestmark = pytest.mark.slow

WORKER = ["worker", "--no-periodic", "--poll", "0.2", "--name", "stopper"]
# (command, signal, exit status): a worker exits 0 after SIGTERM (a service manager's
# stop), `jobs work` 143 (it may leave jobs queued); both 130 after Ctrl-C.
CASES = [(WORKER, signal.SIGINT, 130), (WORKER, signal.SIGTERM, 0),
         (["jobs", "work"], signal.SIGINT, 130), (["jobs", "work"], signal.SIGTERM, 143)]
IDS = ["worker-SIGINT", "worker-SIGTERM", "jobs-work-SIGINT", "jobs-work-SIGTERM"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return migrated_sqlite(str(tmp_path / "jobs.db"))


def _enqueue(url: str, kind: str, params: dict[str, object]) -> str:
    engine = make_engine(url)
    try:
        with transaction(engine) as s:
            job_id = jobs.enqueue(s, kind, params, actor="test")
    finally:
        engine.dispose()
    assert job_id is not None
    return job_id


def _job(url: str, job_id: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        with transaction(engine) as s:
            return job_views.job_view(jobs.get_job(s, job_id))
    finally:
        engine.dispose()


def _wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped running


def _hilt(args: list[str], url: str, tmp_path: Path, **extra: str
          ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hilt", *args],
        env=child_env(url, HILT_HOME=str(tmp_path), HILT_LOG_FORMAT="text", **extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)


def _stop_with(proc: subprocess.Popen[bytes], sig: signal.Signals) -> tuple[str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running a minute after {sig.name}: {err.decode()}")
    return out.decode(), err.decode()


@pytest.mark.parametrize(("command", "sig", "status"), CASES, ids=IDS)
def test_a_running_short_job_finishes_and_the_process_stops_cleanly(
        command: list[str], sig: signal.Signals, status: int, sqlite_url: str,
        tmp_path: Path) -> None:
    marker = tmp_path / "running.txt"
    job_id = _enqueue(sqlite_url, "test.slow_write", {
        "reviewer_id": "finisher", "sleep_s": 2, "marker_file": str(marker)})
    later = _enqueue(sqlite_url, "test.slow_write", {"reviewer_id": "later"})
    proc = _hilt(command, sqlite_url, tmp_path)
    try:
        assert _wait_for(marker.exists, 60), "the job did not start"
        out, err = _stop_with(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err and "Traceback" not in out, err
    assert f"stopping ({sig.name})" in err, err
    assert proc.returncode == status, err
    done = _job(sqlite_url, job_id)
    # a short job commits as a whole: it is finished, and no lease is left held
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    assert done["lease"] is None
    # nothing new was taken once the signal came
    assert _job(sqlite_url, later)["status"] == "queued"
    if command[0] == "jobs":
        assert job_id in out and "test.slow_write" in out and "succeeded" in out, out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups, /proc")
@pytest.mark.parametrize(("command", "sig", "status"), CASES, ids=IDS)
def test_a_training_child_is_terminated_and_its_job_fails_in_one_line(
        command: list[str], sig: signal.Signals, status: int, sqlite_url: str,
        tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "launcher.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 120\n")
    script.chmod(0o755)
    job_id = _enqueue(sqlite_url, "train.reward", {"pairs": "p.jsonl", "out": "rm"})
    proc = _hilt(command, sqlite_url, tmp_path, HILT_TRAIN_LAUNCHER=str(script))
    child = 0
    try:
        assert _wait_for(lambda: pid_file.exists() and bool(pid_file.read_text().strip()),
                         60), "the training child did not start"
        child = int(pid_file.read_text())
        running = _job(sqlite_url, job_id)
        assert running["status"] == "running"
        out, err = _stop_with(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert proc.returncode == status, err
    assert not _alive(child), "the training child outlived the stop"
    done = _job(sqlite_url, job_id)
    assert done["status"] == "failed" and done["lease"] is None, done
    assert done["error"] == (f"train.reward: child process {child} stopped because the "
                             "worker shut down")
