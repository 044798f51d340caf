"""``hilt labels export``: a filter value no label can have, or an ``--out`` that cannot
be written, is refused (exit 2, naming the option) before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from tests.conftest import migrated_sqlite
from tests.core.helpers import cli_input_error


@pytest.fixture
def db(tmp_path: Path) -> str:
    # in a folder of its own: the tests list what an export left in tmp_path
    return migrated_sqlite(tmp_path / "store" / "h.db")


def _error(db: str, *args: str) -> InputError:
    return cli_input_error(db, "labels", "export", *args)


@pytest.mark.parametrize(("args", "field"), [
    (["--provenance", "Gold"], "--provenance"),
    (["--provenance", "gold", "--provenance", "bogus"], "--provenance"),
    (["--min-confidence", "nan"], "--min-confidence"),
    (["--min-confidence", "2"], "--min-confidence"),
    (["--min-confidence", "-0.1"], "--min-confidence"),
])
def test_badinput_review_labels_export_refuses_filters_no_label_can_pass(
        db: str, args: list[str], field: str) -> None:
    assert _error(db, *args).field == field


def test_badinput_review_labels_export_accepts_known_filters(db: str) -> None:
    result = CliRunner().invoke(app, ["labels", "export", "--provenance", "gold",
                                      "--provenance", "adjudicated", "--min-confidence",
                                      "1", "--db", db])
    assert result.exit_code == 0 and result.output == ""


def test_badinput_review_labels_export_refuses_a_folder_as_out(db: str,
                                                               tmp_path: Path) -> None:
    folder = tmp_path / "somedir"
    folder.mkdir()
    exc = _error(db, "--out", str(folder))
    assert (exc.file, exc.field) == (str(folder), "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somedir", "store"]


def test_badinput_review_labels_export_refuses_a_missing_folder(db: str,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "nosuch" / "dir" / "l.jsonl"
    exc = _error(db, "--out", str(out))
    assert (exc.file, exc.field) == (str(out), "--out") and "does not exist" in exc.reason
    assert not (tmp_path / "nosuch").exists()


def test_badinput_review_labels_export_writes_through_a_temporary_of_its_own(
        db: str, tmp_path: Path) -> None:
    out = tmp_path / "l.jsonl"
    # a file under the name a fixed temporary would have is left alone
    stray = tmp_path / "l.jsonl.tmp"
    stray.write_text("someone else's\n")
    result = CliRunner().invoke(app, ["labels", "export", "--out", str(out), "--db", db])
    assert result.exit_code == 0, result.output
    assert out.read_text() == "" and stray.read_text() == "someone else's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.jsonl", "l.jsonl.tmp",
                                                          "store"]
