"""Settings from the environment: a bad value is one error naming the variable (exit 2),
and commands that only read never create a database where none was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hilt.config import database_url, env_float, env_int
from hilt.errors import InputError
from hilt.ops import jobs, webhooks
from hilt.ops.builtin import periodic_tasks
from hilt.ops.scheduler import scheduler_from_env
from hilt.store.db import make_engine

from .climain import run_main


def test_numbers_are_parsed_and_bad_ones_name_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_X", " 12 ")
    assert env_int("HILT_X", 1) == 12 and env_float("HILT_X", 1.0) == 12.0
    monkeypatch.setenv("HILT_X", "")
    assert env_int("HILT_X", 7) == 7
    for raw, kind in [("x", "whole number"), ("1.5", "whole number")]:
        monkeypatch.setenv("HILT_X", raw)
        with pytest.raises(InputError, match=kind) as err:
            env_int("HILT_X", 1)
        assert err.value.field == "HILT_X"
    for raw in ["abc", "nan", "inf"]:
        monkeypatch.setenv("HILT_X", raw)
        with pytest.raises(InputError, match="HILT_X"):
            env_float("HILT_X", 1.0)
    monkeypatch.setenv("HILT_X", "0")
    with pytest.raises(InputError, match="greater than 0"):
        env_float("HILT_X", 1.0, above=0)
    with pytest.raises(InputError, match="below the minimum 1"):
        env_int("HILT_X", 1, minimum=1)


@pytest.mark.parametrize("name, read", [
    ("HILT_JOB_LEASE_SECONDS", jobs.lease_seconds),
    ("HILT_WEBHOOK_MAX_ATTEMPTS", webhooks._max_attempts),
    ("HILT_WEBHOOK_TIMEOUT_SECONDS", webhooks._timeout),
    ("HILT_WEBHOOK_BACKOFF_SECONDS", webhooks._backoff_base),
    ("HILT_PERIOD_WEBHOOKS_DELIVER", periodic_tasks),
    ("HILT_JOB_POLL_SECONDS", lambda: scheduler_from_env(None)),  # type: ignore[arg-type]
    ("HILT_JOB_THREADS", lambda: scheduler_from_env(None)),  # type: ignore[arg-type]
    ("HILT_DB_POOL_SIZE", lambda: make_engine("postgresql://x@127.0.0.1:1/none")),
])
def test_each_numeric_setting_refuses_a_bad_value(monkeypatch: pytest.MonkeyPatch,
                                                  name: str, read: object) -> None:
    monkeypatch.setenv(name, "abc")
    with pytest.raises(InputError) as err:
        read()  # type: ignore[operator]
    assert err.value.field == name


def test_a_bad_setting_is_one_error_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_DB_POOL_SIZE", "x")
    code, output = run_main("audit", "verify", "--db", "postgresql://x@127.0.0.1:1/none")
    assert code == 2, output
    assert output.strip().splitlines() == [
        "error: field 'HILT_DB_POOL_SIZE': 'x' is not a whole number"]


def test_a_read_command_on_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "typo" / "deeper" / "hilt.db"
    code, output = run_main("audit", "verify", "--db", f"sqlite:///{target}")
    assert code == 2, output
    assert "does not exist" in output and "hilt init" in output
    assert not (tmp_path / "typo").exists()
    code, output = run_main("init", "--db", f"sqlite:///{target}")
    assert code == 0 and target.exists(), output


def test_the_default_database_is_under_hilt_home(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HILT_DATABASE_URL", raising=False)
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    assert database_url() == f"sqlite:///{tmp_path / 'home' / 'hilt.db'}"


@pytest.mark.postgres
def test_two_inits_at_once_on_a_fresh_postgres_schema_both_succeed() -> None:
    from tests.conftest import empty_pg_schema, pg_url_for

    with empty_pg_schema("hilt_init") as schema:
        # Processes, as two `hilt init` runs are (Alembic's context is one per process).
        argv = [sys.executable, "-m", "hilt", "init", "--db", pg_url_for(schema)]
        runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                for _ in range(2)]
        outputs = [(run.wait(120), run.communicate()[0].decode()) for run in runs]
        assert all(code == 0 for code, _ in outputs), outputs
