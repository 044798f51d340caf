"""A check folder re-checked after it was moved or copied: the input files that travelled
with it are found by name beside the decision, the file checked is named, and a copy that
differs is reported even while the original files its record names are intact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer
from hilt.cli import app
from hilt.store.db import transaction
from tests.gate.tiny_check import ten_item_check, verify_inputs


def _check(folder: Path, inputs_in_out: bool) -> Path:
    """A passing check whose policy asks for a release owner; its inputs are kept in
    the output folder or beside it. Returns the output folder."""
    out = folder / "out"
    out.mkdir(parents=True)
    where = out if inputs_in_out else folder
    ten_item_check(where / "suite.jsonl", where / "cand.jsonl", where / "ref.jsonl", out)
    assert (out / "decision.json").is_file() and (where / "suite.jsonl").is_file()
    return out


def signed_off(engine: Engine, db_url: str, decision: Path) -> Any:
    """``hilt gate signoff`` of ``decision`` (a file or its folder) by ana, a lead who
    may sign as release owner; the reply."""
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
    signed = CliRunner().invoke(app, ["gate", "signoff", str(decision),
                                      "--role", "release_owner", "--by", "ana",
                                      "--db", db_url])
    assert signed.exit_code == 0, signed.output
    return json.loads(signed.stdout)


def test_a_moved_folder_rechecks_and_signs_off(db_url: str, engine: Engine,
                                              tmp_path: Path) -> None:
    out = _check(tmp_path / "ci", inputs_in_out=True)
    shutil.move(tmp_path / "ci", tmp_path / "downloaded")
    moved = tmp_path / "downloaded" / "out"
    code, report = verify_inputs(moved / "decision.json")
    assert code == 0, report
    assert report["inputs"]["files"] == {
        key: str(moved / name) for key, name in
        (("suite", "suite.jsonl"), ("candidate", "cand.jsonl"), ("reference", "ref.jsonl"))}
    assert not out.exists()
    reply = signed_off(engine, db_url, moved / "decision.json")
    assert reply["outcome"] == "pass"
    assert reply["inputs"]["files"]["candidate"] == str(moved / "cand.jsonl")


def test_inputs_in_the_folder_above_are_found_after_a_move(tmp_path: Path) -> None:
    _check(tmp_path / "ci", inputs_in_out=False)
    shutil.move(tmp_path / "ci", tmp_path / "moved")
    code, report = verify_inputs(tmp_path / "moved" / "out" / "decision.json")
    assert code == 0, report
    assert report["inputs"]["files"]["suite"] == str(tmp_path / "moved" / "suite.jsonl")


def test_an_edited_copy_is_checked_not_the_original(tmp_path: Path) -> None:
    _check(tmp_path / "ci", inputs_in_out=False)
    shutil.copytree(tmp_path / "ci", tmp_path / "copy")
    edited = tmp_path / "copy" / "cand.jsonl"
    data = bytearray(edited.read_bytes())
    data[data.index(b"comply")] = ord("C")  # one byte
    edited.write_bytes(bytes(data))
    code, report = verify_inputs(tmp_path / "copy" / "out" / "decision.json")
    assert code == 1
    assert report["inputs"]["files"]["candidate"] == str(edited)
    problem = report["inputs"]["problems"][0]
    assert f"{edited} does not hold the recorded sha256" in problem
    assert str(tmp_path / "ci" / "cand.jsonl") in problem  # the original, untouched
    # the original folder still verifies on its own files
    code, report = verify_inputs(tmp_path / "ci" / "out" / "decision.json")
    assert code == 0 and report["inputs"]["files"]["candidate"] \
        == str(tmp_path / "ci" / "cand.jsonl")


def test_inputs_dir_names_the_folder_to_check(tmp_path: Path) -> None:
    _check(tmp_path / "ci", inputs_in_out=False)
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("suite.jsonl", "cand.jsonl", "ref.jsonl"):
        shutil.copy(tmp_path / "ci" / name, archive / name)
    result = CliRunner().invoke(app, ["gate", "verify", str(tmp_path / "ci" / "out"),
                                      "--inputs-dir", str(archive)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inputs"]["files"]["reference"] \
        == str(archive / "ref.jsonl")
    (archive / "ref.jsonl").write_text("")
    result = CliRunner().invoke(app, ["gate", "verify", str(tmp_path / "ci" / "out"),
                                      "--inputs-dir", str(archive)])
    assert result.exit_code == 1
    assert "reference file changed since the check" in \
        json.loads(result.stdout)["inputs"]["problems"][0]
