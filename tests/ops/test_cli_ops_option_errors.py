"""Errors about what was typed on the job and webhook commands name the option typed
(``--event``, ``--param out``, ``--status``), not the field the library and the HTTP API
call it (``event_types``, ``params.status``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from .climain import run_main


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    # The options are checked before any query: SQLite only.
    return sqlite_engine


@pytest.fixture
def db(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HILT_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("HILT_JOB_ROOT", str(tmp_path / "jobs"))
    return engine.url.render_as_string(hide_password=False)


def _refused(db: str, *args: str) -> str:
    """The one error line ``hilt ARGS`` exits 2 with."""
    code, output = run_main(*args, "--db", db)
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    return lines[0]


def test_an_unknown_webhook_event_names_the_event_option_and_the_known_types(db: str
                                                                            ) -> None:
    line = _refused(db, "webhook", "add", "https://hooks.example/h", "-e", "item.resolvd")
    assert line.startswith("error: field '--event': unknown event types ['item.resolvd']")
    assert "'item.resolved'" in line and "'*'" in line
    assert "event_types" not in line


def test_a_short_webhook_secret_names_the_secret_option(db: str) -> None:
    line = _refused(db, "webhook", "add", "https://hooks.example/h", "-e", "*",
                    "--secret", "short")
    assert line.startswith("error: field '--secret': the signing secret must be 16 to")


def test_a_job_parameter_given_twice_names_param_and_the_parameter(db: str) -> None:
    line = _refused(db, "jobs", "start", "export.reviews", "-p", "out=a", "-p", "out=b")
    assert line == ("error: field '--param out': parameter 'out' is given twice "
                    "(out=a and out=b)")


def test_a_job_parameter_without_a_value_names_param(db: str) -> None:
    line = _refused(db, "jobs", "start", "export.reviews", "-p", "status")
    assert line == "error: field '--param': expected NAME=VALUE, got 'status'"


@pytest.mark.parametrize(("params", "option", "reason"), [
    (["-p", "bogus=1"], "--param bogus", "unknown parameter 'bogus'"),
    (["-p", "status=nosuch"], "--param status", "unknown task status 'nosuch'"),
])
def test_a_bad_export_parameter_names_its_param_option(db: str, params: list[str],
                                                       option: str, reason: str) -> None:
    line = _refused(db, "jobs", "start", "export.reviews", *params)
    assert line.startswith(f"error: field '{option}': {reason}"), line


@pytest.mark.parametrize(("params", "option", "reason"), [
    (["-p", "out=RM"], "--param pairs", "train.reward needs 'pairs' or 'dataset'"),
    (["-p", "pairs=p.jsonl", "-p", "out=/elsewhere/RM"], "--param out",
     "out must be a path inside the job folder"),
    (["-p", "pairs=p.jsonl", "-p", "out=RM", "-p", "view=full"], "--param view",
     "train.reward does not take ['view']"),
])
def test_a_bad_training_parameter_names_its_param_option(db: str, params: list[str],
                                                         option: str, reason: str) -> None:
    line = _refused(db, "jobs", "start", "train.reward", *params)
    assert line.startswith(f"error: field '{option}': {reason}"), line


@pytest.mark.parametrize("command", [["jobs", "list"], ["webhook", "deliveries"]])
def test_an_unknown_status_names_the_status_option(db: str, command: list[str]) -> None:
    line = _refused(db, *command, "--status", "nosuch")
    assert line.startswith("error: field '--status': unknown"), line


@pytest.mark.parametrize("args", [["jobs", "list", "--limit", "0"],
                                  ["webhook", "deliveries", "--limit", "-1"]])
def test_a_limit_below_one_is_refused_naming_the_option(db: str, args: list[str]) -> None:
    code, output = run_main(*args, "--db", db)
    assert code == 2, output
    assert "Invalid value for '--limit'" in output, output


@pytest.mark.parametrize("args", [["--poll", "0"], ["--poll", "-1"],
                                  ["--concurrency", "-1"]])
def test_a_worker_with_an_unusable_poll_or_concurrency_does_not_start(
        db: str, args: list[str]) -> None:
    # In a process of its own: a worker that did start would run until stopped.
    done = subprocess.run([sys.executable, "-m", "hilt", "worker", *args, "--db", db],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"Invalid value for '{args[0]}'" in done.stderr, done.stderr
