"""``hilt serve`` and ``hilt worker`` check the database before they listen or work: a
missing database, or one at an older schema revision, stops them with one ``error:``
line and exit 2, as every other command, instead of a server answering 503 and a job
poll logging a traceback every second."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hilt.store.db import head_revision, known_revisions
from tests.conftest import older_sqlite
from tests.ops.receiver import free_port

from .procs import REPO, child_env

COMMANDS = {"serve": lambda: ["serve", "--port", str(free_port())],
            "worker": lambda: ["worker", "--poll", "0.2"]}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_missing_database_stops_it_with_one_line(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "hilt.db"
    done = subprocess.run([sys.executable, "-m", "hilt", *COMMANDS[name](), "--db",
                           f"sqlite:///{missing}"], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env=child_env(f"sqlite:///{missing}"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: field '--db': no hilt schema at {missing}: the database file does not "
        "exist; create it with: hilt init --db URL"]
    assert not missing.parent.exists()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_outdated_schema_stops_it_with_one_line(name: str, tmp_path: Path) -> None:
    url = older_sqlite(tmp_path / 'old.db')
    done = subprocess.run([sys.executable, "-m", "hilt", *COMMANDS[name](), "--db", url],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=child_env(url))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "error: field '--db': the database's schema is older than this hilt (revision "
        f"{known_revisions()[-2]}, this hilt needs {head_revision()}); upgrade it with: "
        "hilt init --db URL"]
