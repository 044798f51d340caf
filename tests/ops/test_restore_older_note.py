"""A restored backup of an older schema: `restore` says that it needs `hilt init`, which
every other command asks for before it touches the database."""

from __future__ import annotations

from pathlib import Path

from hilt.ops.backup import backup
from hilt.store.db import head_revision, known_revisions
from tests.conftest import older_sqlite

from .climain import run_hilt
from .helpers import live_sqlite


def test_restoring_an_older_schema_says_how_to_upgrade_it(tmp_path: Path) -> None:
    made = tmp_path / "b.db"
    backup(older_sqlite(tmp_path / "old.db"), made)
    target = f"sqlite:///{tmp_path / 'r.db'}"
    done = run_hilt(["restore", str(made), "--db", target])
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"note: the backup's schema is revision {known_revisions()[-2]}, older than this "
        f"hilt's ({head_revision()}); upgrade it before use with: hilt init --db {target}")
    assert run_hilt(["init", "--db", target]).returncode == 0
    assert run_hilt(["jobs", "list", "--db", target]).stdout == "no jobs\n"


def test_a_current_backup_gets_no_such_note(tmp_path: Path) -> None:
    made = tmp_path / "b.db"
    backup(live_sqlite(str(tmp_path / "live.db")), made)
    done = run_hilt(["restore", str(made), "--db", f"sqlite:///{tmp_path / 'r.db'}"])
    assert done.returncode == 0, done.stderr
    assert "hilt init" not in done.stderr and done.stderr.startswith("note: the restored")
