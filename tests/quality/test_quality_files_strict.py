"""Answer and gold files are read strictly, and ``quality aggregate`` writes its outputs
together, with ordinary file modes, or not at all."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.quality.csv_io import read_answers, read_gold, write_text_atomic

runner = CliRunner()
GOOD = "item,reviewer,label\ni1,r1,a\ni1,r2,a\ni2,r1,b\ni2,r2,a\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _aggregate(*args: str) -> object:
    return runner.invoke(app, ["quality", "aggregate", *args, "--method", "mv"]).exception


@pytest.mark.parametrize(("content", "line", "field", "reason"), [
    # The quote opened on line 2 is never closed: it used to swallow every later row
    # into one label.
    ('item,reviewer,label\ni1,r1,"a\ni1,r2,a\ni2,r1,b\ni2,r2,a\n', 2, "label",
     "never closed"),
    ('item,reviewer,label\ni1,r1,a\n"i2,r1,b\ni3,r1,b\n', 3, "item", "never closed"),
    ('item,reviewer,label,note\ni1,r1,a,"x\n', 2, "note", "never closed"),
    ('item,reviewer,label\ni1,r1,"a"b\n', 2, "label", "after the closing quote"),
    # A quoted value over two lines is a label no rubric has.
    ('item,reviewer,label\ni1,r1,"a\nb"\ni2,r1,b\n', 2, "label", "several lines"),
    ('item,reviewer,label\ni1,"r\n1",a\n', 2, "reviewer", "several lines"),
])
def test_malformed_quotes_name_file_line_and_field(tmp_path: Path, content: str, line: int,
                                                   field: str, reason: str) -> None:
    answers = _write(tmp_path / "answers.csv", content)
    with pytest.raises(InputError) as caught:
        read_answers(answers)
    error = caught.value
    assert (error.file, error.line, error.field) == (str(answers), line, field)
    assert reason in error.reason
    out = tmp_path / "labels.csv"
    assert isinstance(_aggregate(str(answers), "--out", str(out)), InputError)
    assert not out.exists()


def test_unterminated_quote_in_gold_and_header(tmp_path: Path) -> None:
    gold = _write(tmp_path / "gold.csv", 'item,label\ni1,"a\ni2,b\n')
    with pytest.raises(InputError) as caught:
        read_gold(gold)
    assert (caught.value.line, caught.value.field) == (2, "label")
    header = _write(tmp_path / "h.csv", 'item,"reviewer,label\ni1,r1,a\n')
    with pytest.raises(InputError) as caught:
        read_answers(header)
    assert (caught.value.line, caught.value.field) == (1, "column 2")


def test_unterminated_quote_exits_2_through_the_cli(tmp_path: Path) -> None:
    answers = _write(tmp_path / "a.csv", 'item,reviewer,label\ni1,r1,"a\ni1,r2,a\n')
    result = runner.invoke(app, ["quality", "agreement", str(answers), "--metric", "percent"])
    assert isinstance(result.exception, InputError)
    assert "line 2, field 'label'" in str(result.exception)


def test_a_report_that_cannot_be_written_leaves_no_labels(tmp_path: Path) -> None:
    answers = _write(tmp_path / "a.csv", GOOD)
    out, folder = tmp_path / "labels.csv", tmp_path / "folder"
    folder.mkdir()
    error = _aggregate(str(answers), "--out", str(out), "--report", str(folder))
    assert isinstance(error, InputError)
    assert (error.file, error.field) == (str(folder), "--report")
    assert not out.exists() and list(folder.iterdir()) == []
    # The labels file as a folder is refused before the report is written.
    report = tmp_path / "report.json"
    error = _aggregate(str(answers), "--out", str(folder), "--report", str(report))
    assert isinstance(error, InputError) and error.field == "--out"
    assert not report.exists()
    error = _aggregate(str(answers), "--out", str(out), "--report", str(out))
    assert isinstance(error, InputError) and error.field == "--report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "folder"]


def test_unwritable_report_folder_is_an_input_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    answers = _write(tmp_path / "a.csv", GOOD)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = tmp_path / "labels.csv"
    error = _aggregate(str(answers), "--out", str(out), "--report", str(locked / "r.json"))
    assert isinstance(error, InputError) and error.field == "--report"
    assert not out.exists()


def test_labels_and_report_are_written_together(tmp_path: Path) -> None:
    answers = _write(tmp_path / "a.csv", GOOD)
    out, report = tmp_path / "sub" / "labels.csv", tmp_path / "sub" / "report.json"
    result = runner.invoke(app, ["quality", "aggregate", str(answers), "--method", "mv",
                                 "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads(report.read_text())["n_items"] == 2
    assert out.read_text().splitlines()[0] == "item,label,confidence"
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_mode_the_umask_gives(tmp_path: Path, mask: int, mode: int) -> None:
    answers = _write(tmp_path / "a.csv", GOOD)
    out, report = tmp_path / "labels.csv", tmp_path / "report.json"
    os.umask(mask)
    result = runner.invoke(app, ["quality", "aggregate", str(answers), "--method", "mv",
                                 "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert stat.S_IMODE(report.stat().st_mode) == mode
    text = tmp_path / "t.txt"
    write_text_atomic(text, "x")
    assert stat.S_IMODE(text.stat().st_mode) == mode
