"""A build killed at any point leaves no records that an erasure cannot find, and no
recorded version without its records (SQLite and PostgreSQL).

The records stay in the build's staging folder until the transaction that records the
version has committed, and are moved into the version's folder after it. A child process
building a version is killed:

- ``written``: the records are written, nothing is recorded;
- ``recorded``: the version's row and record rows are added, not committed;
- ``committed``: the transaction has committed, the records are not moved into place.

The next build into the same data folder, a read of the version and a subject's erasure
each settle what the killed build left: the records of a committed version end up in its
folder, any other copy is removed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from data_factories import garden_events
from sqlalchemy.engine import Engine

from hilt.data.build import build_version, lock_file
from hilt.data.forget import forget
from hilt.data.spec import parse_spec
from hilt.data.versions import read_records
from hilt.review.records import FinalLabelRecord
from hilt.store.db import transaction
from hilt.store.tables.datasets import DatasetRecordRow, DatasetVersionRow

SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}
MARK = "numbatfern"  # in every event's text
FORGOTTEN = f"Question 0 {MARK}"  # subject s0's text only
POINTS = ("written", "recorded", "committed")

KILLED_BUILD = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from data_factories import make_label
    from hilt.data import build
    from hilt.store.db import make_engine, transaction
    from hilt.data.spec import parse_spec
    url, directory, point = sys.argv[1], sys.argv[2], sys.argv[5]

    def die(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def after(function):
        def run(*args, **kwargs):
            out = function(*args, **kwargs)
            die()
            return out
        return run

    if point == "written":  # the records are written, nothing is recorded
        build.write_records = after(build.write_records)
    elif point == "recorded":  # the rows are added, the audit entry is next
        build.audit.append = die
    else:  # committed, the records are still in the staging folder
        build._move_into_place = die
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(4)]
    with transaction(make_engine(url)) as session:
        build.build_version(session, parse_spec(json.loads(sys.argv[4])), actor="killed",
                            label_source=lambda _s, **_k: labels, directory=directory)
""")


@pytest.fixture
def labels(engine: Engine) -> list[FinalLabelRecord]:
    return garden_events(engine, MARK)


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current data folder ($HILT_HOME/datasets), where forget looks first."""
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "datasets"


def _kill_build(db_url: str, directory: Path, point: str) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD, db_url, str(directory),
         str(Path(__file__).parent), json.dumps(SPEC), point],
        capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def _build(engine: Engine, labels: list[FinalLabelRecord], directory: Path) -> Any:
    with transaction(engine) as session:
        return build_version(session, parse_spec(SPEC), actor="tester",
                             label_source=lambda _s, **_k: labels, directory=directory)


def _versions(engine: Engine) -> list[str]:
    with transaction(engine) as session:
        return list(session.execute(sa.select(DatasetVersionRow.id)).scalars())


def _holding(directory: Path, text: str) -> list[str]:
    """Every file under ``directory`` that holds ``text``."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and text in p.read_text(encoding="utf-8", errors="replace"))


def _staging(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(".tmp-") and p.is_dir())


def _records(engine: Engine, version_id: str) -> list[dict[str, Any]]:
    with transaction(engine) as session:
        return list(read_records(session.get(DatasetVersionRow, version_id)))


def _left_by(point: str, db_url: str, engine: Engine, directory: Path) -> list[str]:
    """Kill a build at ``point``; returns the versions recorded (one when committed)."""
    _kill_build(db_url, directory, point)
    left = _staging(directory)
    assert len(left) == 1 and _holding(left[0], MARK) == ["records.jsonl"]
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) == []
    recorded = _versions(engine)
    assert len(recorded) == (1 if point == "committed" else 0)
    return recorded


@pytest.mark.parametrize("point", POINTS)
def test_the_next_build_settles_what_a_killed_build_left(
        point: str, db_url: str, engine: Engine, labels: list[FinalLabelRecord],
        directory: Path) -> None:
    recorded = _left_by(point, db_url, engine, directory)
    left = _staging(directory)[0]

    result = _build(engine, labels, directory)

    # Nothing is left outside the version's folder, and that folder is the version's.
    assert sorted(p.name for p in directory.iterdir()) == [result.version_id]
    assert _versions(engine) == [result.version_id]
    assert len(_records(engine, result.version_id)) == result.record_count == 4
    manifest = json.loads((directory / result.version_id / "manifest.json").read_text())
    if point == "committed":
        # The killed build's version: moved into place, reused, not removed.
        assert recorded == [result.version_id] and not result.created
        assert manifest["built_by"] == "killed" and list(result.stale_removed) == []
    else:
        assert result.created and manifest["built_by"] == "tester"
        assert list(result.stale_removed) == [str(left)]


@pytest.mark.parametrize("point", POINTS)
def test_forget_finds_the_subject_in_whatever_a_killed_build_left(
        point: str, db_url: str, engine: Engine, labels: list[FinalLabelRecord],
        directory: Path) -> None:
    _kill_build(db_url, directory, point)
    recorded = _versions(engine)
    assert len(recorded) == (1 if point == "committed" else 0)
    assert _holding(directory, FORGOTTEN) != []

    result = forget(engine, "s0", actor="lead")

    assert result.ok, result.as_dict()
    assert result.versions_revoked == recorded
    assert _holding(directory, FORGOTTEN) == []
    if point == "committed":
        version_id, = recorded
        assert result.files_deleted == [str(directory.resolve() / version_id /
                                             "records.jsonl")]
        assert (directory / version_id / "REVOKED.json").is_file()
    else:
        assert _holding(directory, MARK) == []  # no copy of anyone's records is left
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []


def test_reading_a_version_whose_build_was_killed_before_its_move_finishes_it(
        db_url: str, engine: Engine, labels: list[FinalLabelRecord],
        directory: Path) -> None:
    version_id, = _left_by("committed", db_url, engine, directory)

    records = _records(engine, version_id)

    assert len(records) == 4 and all(MARK in r["prompt"] for r in records)
    assert sorted(p.name for p in directory.iterdir()) == [version_id]
    manifest = json.loads((directory / version_id / "manifest.json").read_text())
    assert manifest["built_by"] == "killed"


def test_a_version_folder_without_a_row_is_removed_by_the_next_build_and_by_forget(
        db_url: str, engine: Engine, labels: list[FinalLabelRecord],
        directory: Path) -> None:
    # What a hilt that moved the folder into place before its commit left when it was
    # killed before the commit: the version's folder, with no row.
    _kill_build(db_url, directory, "recorded")
    for staged in _staging(directory):
        lock_file(staged).unlink()
        staged.rename(directory / json.loads((staged / "manifest.json").read_text())[
            "version_id"])
    orphan, = (p for p in directory.iterdir() if not p.name.startswith("."))
    assert _versions(engine) == [] and _holding(orphan, FORGOTTEN) == ["records.jsonl"]
    copy = directory / ("f" * 64)  # the same, for a version of other records
    shutil.copytree(orphan, copy)
    kept = directory / ("e" * 64)  # holds something no build writes: not hilt's
    kept.mkdir()
    (kept / "notes.txt").write_text(MARK)

    result = forget(engine, "s0", actor="lead")
    assert result.versions_revoked == [] and result.ok
    assert sorted(p.name for p in directory.iterdir()) == [kept.name]

    # The next build into the folder removes one too (here with records cut short).
    cut = directory / ("d" * 64)
    cut.mkdir()
    (cut / "records.jsonl").write_text(f"{FORGOTTEN}\n")
    built = _build(engine, labels, directory)
    assert built.created and list(built.stale_removed) == [str(cut)]
    assert len(_records(engine, built.version_id)) == 3  # s0's event is erased
    assert sorted(p.name for p in directory.iterdir()) == sorted([kept.name,
                                                                  built.version_id])


def test_a_reader_waits_for_the_build_moving_the_version_into_place(
        engine: Engine, labels: list[FinalLabelRecord], directory: Path) -> None:
    first = _build(engine, labels, directory)
    folder = directory / first.version_id
    # The version's build has committed and is about to move its folder into place.
    staged = directory / f".tmp-{'a' * 32}"
    held = os.open(lock_file(staged), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    folder.rename(staged)
    out: dict[str, Any] = {}

    def read() -> None:
        out["records"] = _records(engine, first.version_id)

    reader = threading.Thread(target=read)
    try:
        reader.start()
        reader.join(timeout=1.0)
        assert reader.is_alive()  # waits for the build, rather than failing
        staged.rename(folder)
        lock_file(staged).unlink()
    finally:
        os.close(held)
    reader.join(timeout=30)
    assert len(out["records"]) == 4
    with transaction(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(DatasetRecordRow)
                               ).scalar_one() == 4


def test_a_build_that_does_not_commit_leaves_no_folder(
        engine: Engine, labels: list[FinalLabelRecord], directory: Path) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction(engine) as session:
        left = build_version(session, parse_spec(SPEC), actor="crashed",
                             label_source=lambda _s, **_k: labels, directory=directory)
        # Read in its own transaction before the commit, from the staging folder.
        assert len(list(read_records(session.get(DatasetVersionRow, left.version_id)))) == 4
        raise Abort
    assert list(directory.iterdir()) == [] and _versions(engine) == []
    # A folder by the version's id holding more than a build writes is not removed as
    # stale; the build that records the version replaces it as a whole.
    folder = directory / left.version_id
    folder.mkdir()
    (folder / "records.jsonl").write_text("cut short")
    (folder / "stray.txt").write_text("x")
    first = _build(engine, labels, directory)
    assert (first.version_id, first.created) == (left.version_id, True)
    assert sorted(p.name for p in directory.iterdir()) == [first.version_id]
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "records.jsonl"]
    assert len(_records(engine, first.version_id)) == 4
