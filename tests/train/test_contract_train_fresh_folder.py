"""Contracts 4 and 5 as written: ``hilt train classifier|reward`` from a file works in a
fresh folder (no database: trained, not registered, with a note), a database that was
named or asked for is still required, and an ``--out`` whose folder cannot be made is
refused up front, naming ``--out`` (exit 2, nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from tests.ops.climain import run_hilt

ROWS = [("I cannot help with that.", "refuse"), ("Sure, here it is.", "comply"),
        ("I won't do that.", "refuse"), ("The answer is 4.", "comply"),
        ("No, sorry, not that.", "refuse"), ("Paris is the capital.", "comply")]


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder with no database named anywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HILT_DATABASE_URL", raising=False)
    monkeypatch.delenv("HILT_HOME", raising=False)
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in ROWS))
    (tmp_path / "pairs.jsonl").write_text(json.dumps(
        {"prompt": "p", "chosen": "No.", "rejected": "Sure, here is how."}) + "\n")
    return tmp_path


CLASSIFIER = ["train", "classifier", "--data", "train.jsonl", "--text-field", "text",
              "--label-field", "label"]
REWARD = ["train", "reward", "--pairs", "pairs.jsonl"]


def _hilt(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("HILT_DATABASE_URL", "HILT_HOME")}
    return run_hilt(args, cwd=cwd, env={**environ, **env})


def _never(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("training started")


def test_contract_classifier_trains_in_a_fresh_folder_without_registering(
        fresh: Path, hash_encoder: None) -> None:
    done = CliRunner().invoke(app, [*CLASSIFIER, "--out", "clf"])
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    assert printed["model_version"] is None
    assert "not registered" in printed["not_registered"]
    assert "hilt init" in printed["not_registered"]
    assert done.stderr.count("note: the model is not registered") == 1
    assert (fresh / "clf" / "manifest.json").is_file()
    assert not (fresh / ".hilt" / "hilt.db").exists()  # no database made for it


def test_contract_default_registers_once_the_default_database_exists(
        fresh: Path, hash_encoder: None) -> None:
    assert CliRunner().invoke(app, ["init"]).exit_code == 0
    done = CliRunner().invoke(app, [*CLASSIFIER, "--out", "clf"])
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    assert printed["model_version"].startswith("classifier-")
    assert "not_registered" not in printed and "note:" not in done.stderr


def test_contract_explicit_register_or_named_database_still_requires_it(
        fresh: Path) -> None:
    missing = fresh / "missing.db"
    for extra, env in (
            (["--register"], {}),
            (["--db", f"sqlite:///{missing}"], {}),
            ([], {"HILT_DATABASE_URL": f"sqlite:///{missing}"})):
        done = _hilt([*CLASSIFIER, "--out", "clf", *extra], fresh, **env)
        assert done.returncode == 2, (extra, env, done.stderr)
        assert "field '--db': no hilt schema" in done.stderr, (extra, env)
        assert "Traceback" not in done.stderr
        assert not (fresh / "clf").exists() and not missing.exists()
        assert not (fresh / ".hilt" / "hilt.db").exists()


def test_contract_no_register_stays_silent_in_a_fresh_folder(
        fresh: Path, hash_encoder: None) -> None:
    done = CliRunner().invoke(app, [*CLASSIFIER, "--out", "clf", "--no-register"])
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    assert "model_version" not in printed and "not_registered" not in printed
    assert "note:" not in done.stderr


@pytest.mark.parametrize("command", [CLASSIFIER, pytest.param(REWARD, marks=pytest.mark.slow)],
                         ids=["classifier", "reward"])
def test_contract_training_out_under_a_file_exits_2_naming_out(
        fresh: Path, command: list[str]) -> None:
    (fresh / "afile").write_text("keep")
    before = sorted(p.name for p in fresh.iterdir())
    for out in ("afile/model", "afile/sub/model"):
        done = _hilt([*command, "--out", out], fresh)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert (f"error: {out}, field '--out': the output folder cannot be made: afile is "
                "an existing file") in done.stderr
    assert (fresh / "afile").read_text() == "keep"
    assert sorted(p.name for p in fresh.iterdir()) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("command", [CLASSIFIER, pytest.param(REWARD, marks=pytest.mark.slow)],
                         ids=["classifier", "reward"])
def test_contract_training_out_in_an_unwritable_folder_exits_2_naming_out(
        fresh: Path, command: list[str]) -> None:
    # /proc takes no new entries, whoever asks (root included)
    done = _hilt([*command, "--out", "/proc/hilt-model"], fresh)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "error: /proc/hilt-model, field '--out': the output folder cannot be made: " \
           "cannot write in /proc" in done.stderr
    assert ".clf-" not in done.stderr and ".rm-" not in done.stderr


def test_contract_bad_out_is_refused_before_training(
        fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.errors import InputError
    from hilt.train import manifest

    monkeypatch.setattr("hilt.train.classifier_refresh.refresh_classifier", _never)
    (fresh / "afile").write_text("keep")
    done = CliRunner().invoke(app, [*CLASSIFIER, "--out", "afile/clf", "--no-register"])
    assert isinstance(done.exception, InputError), done.output
    assert done.exception.field == "--out"

    def refuse(path: Any, *_args: Any) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(manifest.os, "mkdir", refuse)
    done = CliRunner().invoke(app, [*CLASSIFIER, "--out", "sub/clf", "--no-register"])
    assert isinstance(done.exception, InputError), done.output
    assert done.exception.field == "--out" and done.exception.file == "sub/clf"
    assert "cannot write in . (Permission denied)" in str(done.exception)
    assert not (fresh / "sub").exists()
