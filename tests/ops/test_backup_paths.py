"""A backup or restore to a place that cannot be written: one line naming it, no
traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from .climain import run_main
from .helpers import live_sqlite


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return live_sqlite(str(tmp_path / "live.db"))


@pytest.mark.parametrize("below", ["", "sub/"])
def test_a_backup_below_a_file_is_refused_naming_the_file(
        sqlite_url: str, tmp_path: Path, below: str) -> None:
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "afile" / f"{below}hilt.db"
    code, text = run_main("backup", str(out), "--db", sqlite_url)
    assert code == 2, text
    assert text.strip() == (f"error: field 'out': cannot write {out} ({tmp_path / 'afile'} "
                            "is a file, not a folder); nothing was written")


def test_a_restore_below_a_file_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    backup = tmp_path / "b.db"
    assert run_main("backup", str(backup), "--db", sqlite_url)[0] == 0
    (tmp_path / "afile").write_text("not a folder")
    target = tmp_path / "afile" / "hilt.db"
    code, text = run_main("restore", str(backup), "--db", f"sqlite:///{target}")
    assert code == 2, text
    assert text.strip() == (f"error: field '--db': cannot write {target} "
                            f"({tmp_path / 'afile'} is a file, not a folder); nothing was "
                            "written")
    assert (tmp_path / "afile").read_text() == "not a folder"
