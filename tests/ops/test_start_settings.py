"""A bad setting of the background work stops `hilt worker` and `hilt serve` before they
start, with one line: read first in a job poll or a periodic run, it let them run and
fail every second, each failure a traceback in the log and a failed job row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hilt.api.app import create_app
from hilt.errors import InputError
from hilt.ops import install
from hilt.ops.job_views import list_jobs
from hilt.store.db import transaction
from tests.conftest import migrated_sqlite
from tests.ops.receiver import free_port

from .procs import REPO, child_env

BAD = [("HILT_JOB_LEASE_SECONDS", "abc", "'abc' is not a number"),
       ("HILT_WEBHOOK_TIMEOUT_SECONDS", "0", "0 must be greater than 0"),
       ("HILT_WEBHOOK_MAX_ATTEMPTS", "x", "'x' is not a whole number"),
       ("HILT_WEBHOOK_BACKOFF_SECONDS", "-1", "-1 is below the minimum 0")]
COMMANDS = {"serve": lambda: ["serve", "--port", str(free_port())],
            "worker": lambda: ["worker", "--poll", "0.2"]}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_bad_webhook_or_lease_setting_stops_it_with_one_line(
        name: str, tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "hilt.db")
    env = child_env(url, HILT_WEBHOOK_TIMEOUT_SECONDS="abc", HILT_LOG_FORMAT="json")
    done = subprocess.run([sys.executable, "-m", "hilt", *COMMANDS[name](), "--db", url],
                          capture_output=True, text=True, timeout=30, cwd=REPO, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == \
        "error: field 'HILT_WEBHOOK_TIMEOUT_SECONDS': 'abc' is not a number"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_installing_operations_refuses_each_setting(
        sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, name: str, value: str,
        message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError) as caught:
        install(create_app(sqlite_engine), scheduler=True, json_logs=False)
    assert str(caught.value) == f"field '{name}': {message}"
    install(create_app(sqlite_engine), scheduler=False, json_logs=False)  # not read
    with transaction(sqlite_engine) as s:
        assert list_jobs(s) == []
