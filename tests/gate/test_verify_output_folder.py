"""`hilt gate verify DIR`: a check's output folder stands for its decision.json (as for
`hilt gate update DIR`); a folder without one is bad input naming it, not a hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from tests.gate.tiny_check import tiny_record


def test_verify_takes_the_output_folder(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    record = tiny_record(tmp_path, [])
    # no database anywhere: a folder must not be looked up as a hash
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "nohome"))
    result = CliRunner().invoke(app, ["gate", "verify", str(tmp_path / "o"), "--inputs"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["hash"] == record["hash"] and report["inputs"]["ok"]
    shown = CliRunner().invoke(app, ["gate", "show", str(tmp_path / "o")])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["hash"] == record["hash"]


def test_a_folder_without_a_decision_is_bad_input(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "nohome"))
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["gate", "verify", str(empty)])
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.file == str(empty)
    assert "folder without a decision.json" in str(result.exception)
    assert not (tmp_path / "nohome").exists()  # no database was opened or made
