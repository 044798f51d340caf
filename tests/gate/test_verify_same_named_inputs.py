"""Inputs of one file name in different subfolders of a check folder: after the folder
is moved, each is found in its own subfolder (by its place relative to the decision),
and a file of that name elsewhere is never taken for one of them unnoticed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from tests.gate.test_verify_moved_folder import signed_off
from tests.gate.tiny_check import ten_item_check, verify_inputs

NAME = "x.jsonl"


def _check(folder: Path) -> None:
    """A passing check in ``folder`` (decision in ``folder/out``) whose suite, candidate
    and reference are all called x.jsonl, in suites/, runs/a/ and runs/b/."""
    for sub in ("suites", "runs/a", "runs/b"):
        (folder / sub).mkdir(parents=True)
    # the reference's response texts differ from the candidate's: another sha256
    ten_item_check(folder / "suites" / NAME, folder / "runs" / "a" / NAME,
                   folder / "runs" / "b" / NAME, folder / "out", responses=("r", "other"))


def test_same_named_inputs_are_each_found_after_a_move(db_url: str, engine: Engine,
                                                       tmp_path: Path) -> None:
    _check(tmp_path / "ci")
    shutil.move(tmp_path / "ci", tmp_path / "moved")
    moved = tmp_path / "moved"
    code, report = verify_inputs(moved / "out" / "decision.json")
    assert code == 0, report
    assert report["inputs"]["files"] == {"suite": str(moved / "suites" / NAME),
                                         "candidate": str(moved / "runs" / "a" / NAME),
                                         "reference": str(moved / "runs" / "b" / NAME)}
    assert signed_off(engine, db_url, moved / "out")["inputs"]["files"]["reference"] \
        == str(moved / "runs" / "b" / NAME)


def test_same_named_inputs_found_in_an_inputs_dir_by_their_subfolders(
        tmp_path: Path) -> None:
    _check(tmp_path / "ci")
    archive = tmp_path / "archive"
    shutil.copytree(tmp_path / "ci" / "runs", archive / "runs")
    shutil.copytree(tmp_path / "ci" / "suites", archive / "suites")
    result = CliRunner().invoke(app, ["gate", "verify", str(tmp_path / "ci" / "out"),
                                      "--inputs-dir", str(archive)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inputs"]["files"]["candidate"] \
        == str(archive / "runs" / "a" / NAME)


def test_a_file_of_the_same_name_is_not_taken_for_another_input(tmp_path: Path) -> None:
    _check(tmp_path / "ci")
    shutil.move(tmp_path / "ci", tmp_path / "moved")
    moved = tmp_path / "moved"
    # the candidate's subfolder is gone; a file of its name at the top holds the reference
    shutil.rmtree(moved / "runs" / "a")
    shutil.copy(moved / "runs" / "b" / NAME, moved / NAME)
    code, report = verify_inputs(moved / "out" / "decision.json")
    assert code == 1
    assert report["inputs"]["files"]["candidate"] == str(moved / NAME)
    assert report["inputs"]["files"]["reference"] == str(moved / "runs" / "b" / NAME)
    [problem] = report["inputs"]["problems"]
    assert (f"candidate file mistaken for another: {moved / NAME} holds the recorded "
            f"reference file ({tmp_path / 'ci' / 'runs' / 'b' / NAME}") in problem
    assert f"the candidate file the check read ({tmp_path / 'ci' / 'runs' / 'a' / NAME}" \
        in problem


def test_an_edited_file_names_the_path_the_check_read(tmp_path: Path) -> None:
    _check(tmp_path / "ci")
    shutil.move(tmp_path / "ci", tmp_path / "moved")
    edited = tmp_path / "moved" / "runs" / "a" / NAME
    edited.write_text(edited.read_text().replace("\"r\"", "\"R\"", 1))
    code, report = verify_inputs(tmp_path / "moved" / "out" / "decision.json")
    assert code == 1
    [problem] = report["inputs"]["problems"]
    assert f"candidate file changed since the check: {edited} does not hold the " \
        "recorded sha256" in problem
    assert problem.endswith(f"; the check read {tmp_path / 'ci' / 'runs' / 'a' / NAME}")
