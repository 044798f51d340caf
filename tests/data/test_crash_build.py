"""A build killed before it moves its records into place leaves a staging folder that
no erasure would find; the next build into the same data folder removes it, and never
one whose build is still running."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from data_factories import garden_events
from sqlalchemy.engine import Engine

from hilt.data.build import build_version
from hilt.data.spec import parse_spec
from hilt.review.records import FinalLabelRecord
from hilt.store.db import transaction
from hilt.store.tables.datasets import DatasetVersionRow

SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}
MARK = "wombatgrove"  # in every event's text

KILLED_BUILD = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from data_factories import make_label
    from hilt.data import build
    from hilt.data.spec import parse_spec
    from hilt.store.db import make_engine, transaction
    url, directory = sys.argv[1], sys.argv[2]
    write = build.write_records
    def write_then_die(*args, **kwargs):
        write(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # the records are written, not moved
    build.write_records = write_then_die
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(4)]
    with transaction(make_engine(url)) as session:
        build.build_version(session, parse_spec(json.loads(sys.argv[4])), actor="killed",
                            label_source=lambda _s, **_k: labels, directory=directory)
""")


@pytest.fixture
def labels(engine: Engine) -> list[FinalLabelRecord]:
    return garden_events(engine, MARK)


def _build(engine: Engine, labels: list[FinalLabelRecord], directory: Path) -> Any:
    with transaction(engine) as session:
        return build_version(session, parse_spec(SPEC), actor="tester",
                             label_source=lambda _s, **_k: labels, directory=directory)


def _hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_a_build_killed_before_its_move_leaves_staging_that_the_next_build_removes(
        db_url: str, engine: Engine, labels: list[FinalLabelRecord], tmp_path: Path) -> None:
    directory = tmp_path / "ds"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD, db_url, str(directory),
         str(Path(__file__).parent), json.dumps(SPEC)], capture_output=True, text=True,
        timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = [p for p in directory.iterdir() if p.name.startswith(".tmp-") and p.is_dir()]
    assert len(left) == 1 and MARK in (left[0] / "records.jsonl").read_text()
    with transaction(engine) as session:
        assert session.execute(sa.select(DatasetVersionRow)).first() is None

    result = _build(engine, labels, directory)

    assert _hidden(directory) == []  # the staging folder and its lock file are gone
    assert sorted(p.name for p in directory.iterdir()) == [result.version_id]
    assert result.created and list(result.stale_removed) == [str(left[0])]


def test_the_sweep_leaves_staging_folders_of_running_builds(
        engine: Engine, labels: list[FinalLabelRecord], tmp_path: Path) -> None:
    from hilt.data.build import UNLOCKED_STALE_AFTER_S, lock_file, sweep_stale

    directory = tmp_path / "ds"
    directory.mkdir()
    # A build in progress elsewhere holds its staging folder's lock.
    running = directory / f".tmp-{'a' * 32}"
    running.mkdir()
    held = os.open(lock_file(running), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    # Left by a hilt that wrote no lock files: removed only once it is old.
    recent, old = directory / f".tmp-{'b' * 32}", directory / f".tmp-{'c' * 32}"
    for folder in (recent, old):
        folder.mkdir()
        (folder / "records.jsonl").write_text(f"{MARK}\n")
    past = time.time() - UNLOCKED_STALE_AFTER_S - 60
    os.utime(old, (past, past))
    # Moved aside by a take-over that was killed before it removed it.
    aside = directory / f".stale-{'d' * 32}"
    aside.mkdir()
    # A lock file whose folder is gone and whose process died.
    (directory / f".tmp-{'e' * 32}.lock").write_text("")
    try:
        result = _build(engine, labels, directory)
        assert sorted(result.stale_removed) == sorted([str(old), str(aside)])
        assert _hidden(directory) == sorted([running.name, lock_file(running).name,
                                             recent.name])
    finally:
        os.close(held)
    # Once its process is gone, the folder is stale too.
    assert sweep_stale(directory, lambda name: name.startswith(".tmp-")) == [str(running)]
    assert _hidden(directory) == [recent.name]
