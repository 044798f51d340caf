"""``restore`` refuses a backup made by a newer hilt before writing anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.ops.backup import backup, restore

from .climain import run_main
from .helpers import live_sqlite


@pytest.fixture
def future_backup(tmp_path: Path) -> Path:
    out = tmp_path / "b.db"
    backup(live_sqlite(str(tmp_path / "live.db")), out)
    con = sqlite3.connect(out)
    con.execute("UPDATE alembic_version SET version_num = '0099_future'")
    con.commit()
    con.close()
    return out


def test_restore_force_refuses_and_keeps_the_target(future_backup: Path,
                                                   tmp_path: Path) -> None:
    target = tmp_path / "live.db"
    before = target.read_bytes()
    with pytest.raises(InputError, match="newer hilt .*0099_future") as caught:
        restore(future_backup, f"sqlite:///{target}", force=True)
    assert caught.value.file == str(future_backup)
    assert target.read_bytes() == before


def test_cli_exit_2(future_backup: Path, tmp_path: Path) -> None:
    target = tmp_path / "live.db"
    before = target.read_bytes()
    code, output = run_main("restore", str(future_backup), "--force",
                            "--db", f"sqlite:///{target}")
    assert code == 2, output
    assert output.startswith("error: ") and "made by a newer hilt" in output
    assert target.read_bytes() == before
