"""``quality aggregate --out L.csv --report R.json`` writes both files or neither: when
the second rename fails, the first file is put back and no stray file is left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.quality import csv_io
from hilt.quality.csv_io import OutputFiles
from hilt.quality.files import aggregate_file


def _fail_renaming_onto(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Path]:
    """Make ``os.replace`` in the writer fail for targets called ``name``; returns the
    targets it renamed onto."""
    real = os.replace
    renamed: list[Path] = []

    def replace(source: str | Path, target: str | Path) -> None:
        if Path(target).name == name and str(source).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        renamed.append(Path(target))
        real(source, target)

    monkeypatch.setattr(csv_io.os, "replace", replace)
    return renamed


def _answers(folder: Path) -> Path:
    answers = folder / "answers.csv"
    answers.write_text("item,reviewer,label\ni1,a,x\ni1,b,x\ni2,a,y\ni2,b,y\n")
    return answers


def test_crash_quality_failed_report_rename_keeps_the_old_pair(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = _answers(tmp_path)
    out, report = tmp_path / "out" / "labels.csv", tmp_path / "out" / "report.json"
    out.parent.mkdir()
    out.write_text("old labels\n")
    report.write_text("old report\n")
    renamed = _fail_renaming_onto(monkeypatch, "report.json")
    with pytest.raises(InputError) as caught:
        aggregate_file(answers, "mv", out, report_path=report)
    assert caught.value.file == str(report) and caught.value.field == "--report"
    assert "No space left on device" in caught.value.reason
    assert out in renamed  # the labels file had been replaced before the failure
    assert out.read_text() == "old labels\n" and report.read_text() == "old report\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["labels.csv", "report.json"]


def test_crash_quality_failed_report_rename_leaves_no_new_labels_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = _answers(tmp_path)
    out, report = tmp_path / "labels.csv", tmp_path / "report.json"
    _fail_renaming_onto(monkeypatch, "report.json")
    with pytest.raises(InputError):
        aggregate_file(answers, "mv", out, report_path=report)
    assert not out.exists() and not report.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.csv"]


def test_crash_quality_commit_without_hard_links_keeps_a_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.json"
    first.write_text("old a\n")
    second.write_text("old b\n")

    def no_links(*_: object, **__: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(csv_io.os, "link", no_links)
    _fail_renaming_onto(monkeypatch, "b.json")
    with OutputFiles() as outputs:
        outputs.add_text(first, "new a\n")
        outputs.add_text(second, "new b\n")
        with pytest.raises(InputError):
            outputs.commit()
    assert first.read_text() == "old a\n" and second.read_text() == "old b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.json"]


def test_crash_quality_successful_commit_replaces_both_and_keeps_nothing_else(
        tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.json"
    first.write_text("old a\n")
    with OutputFiles() as outputs:
        outputs.add_text(first, "new a\n")
        outputs.add_text(second, "new b\n")
        outputs.commit()
    assert first.read_text() == "new a\n" and second.read_text() == "new b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.json"]


def test_crash_quality_failed_commit_puts_back_a_symbolic_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old a\n")
    first, second = tmp_path / "a.csv", tmp_path / "b.json"
    first.symlink_to(real.name)
    _fail_renaming_onto(monkeypatch, "b.json")
    with OutputFiles() as outputs:
        outputs.add_text(first, "new a\n")
        outputs.add_text(second, "new b\n")
        with pytest.raises(InputError):
            outputs.commit()
    assert first.is_symlink() and os.readlink(first) == "real.csv"
    assert real.read_text() == "old a\n" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "real.csv"]
