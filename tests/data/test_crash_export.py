"""An export's folder appears only with its committed row: a kill before the commit
leaves no folder at ``--out`` (and the next export there removes its staging folder), a
kill between the commit and the move leaves the export where an erasure finds it, and a
rollback leaves nothing."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from data_factories import garden_event, make_label
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.data.build import build_version
from hilt.data.export import export_version
from hilt.data.forget import forget
from hilt.data.spec import parse_spec
from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.datasets import DatasetExportRow

MARK = "quokkaberry"  # only in bob's texts
SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}

# Runs `hilt dataset export` and SIGKILLs it at a chosen call: argv[1] names it.
KILLED_EXPORT = textwrap.dedent("""
    import os, pathlib, signal, sys
    point, args = sys.argv[1], sys.argv[2:]
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
    if point == "after-audit":  # the export's audit entry is written, not committed
        from hilt.data import export
        append = export.audit.append
        def append_then_die(*a, **k):
            append(*a, **k)
            if k.get("action") == "dataset.export":
                die()
        export.audit.append = append_then_die
    elif point == "before-move":  # just before the export folder is moved to --out
        rename = pathlib.Path.rename
        def die_before_move(self, target):
            if str(target).endswith("/exp") and ".tmp-" in self.name:
                die()
            return rename(self, target)
        pathlib.Path.rename = die_before_move
    sys.argv = ["hilt", *args]
    from hilt.cli import main
    main()
""")


def _event(i: int, subject: str) -> dict[str, Any]:
    return garden_event(i, subject, marked="bob", mark=MARK)


@pytest.fixture
def version_id(engine: Engine, tmp_path: Path) -> str:
    ingest_events(engine, [_event(0, "bob"), _event(1, "amy"), _event(2, "amy")],
                  actor="test")
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(3)]
    with transaction(engine) as session:
        return build_version(session, parse_spec(SPEC), actor="tester",
                             label_source=lambda _s, **_k: labels,
                             directory=tmp_path / "ds").version_id


def _killed_export(db_url: str, point: str, version_id: str, out: Path) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_EXPORT, point, "dataset", "export", version_id,
         "--out", str(out), "--db", db_url], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr


def _exports(engine: Engine) -> list[DatasetExportRow]:
    with transaction(engine) as session:
        return list(session.execute(sa.select(DatasetExportRow)).scalars())


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_an_export_killed_before_its_commit_leaves_no_folder_and_the_path_reusable(
        db_url: str, engine: Engine, version_id: str, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    _killed_export(db_url, "after-audit", version_id, out)
    assert not out.exists()  # no folder without its row
    assert _exports(engine) == []
    staged = [p for p in tmp_path.iterdir() if p.name.startswith(".exp.tmp-") and p.is_dir()]
    assert len(staged) == 1  # what the killed export wrote, beside the folder

    with transaction(engine) as session:
        again = export_version(session, version_id, out)

    assert again["placed"] and again["stale_removed"] == [str(staged[0])]
    assert _hidden(tmp_path) == []
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "train.jsonl"]
    assert [e.id for e in _exports(engine)] == [again["export_id"]]


def test_an_export_killed_between_its_commit_and_the_move_is_found_by_forget(
        db_url: str, engine: Engine, version_id: str, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    _killed_export(db_url, "before-move", version_id, out)
    (row,) = _exports(engine)  # committed, and audited
    with transaction(engine) as session:
        assert [e.payload["export_id"] for e in audit.entries(
            session, action="dataset.export")] == [row.id]
    assert not out.exists() and row.path == str(out.resolve())
    staged = tmp_path / f".exp.tmp-{row.id.removeprefix('dx_')}"
    assert MARK in (staged / "train.jsonl").read_text()

    result = forget(engine, "bob", actor="dpo")

    assert result.ok and result.exports_flagged == [row.id]
    assert str(staged / "train.jsonl") in result.files_deleted
    assert sorted(p.name for p in staged.iterdir()) == ["REVOKED.json", "export.json"]
    marker = json.loads((staged / "REVOKED.json").read_text())
    assert marker["version_id"] == version_id and "records_deleted_at" in marker
    # The next export to the same folder (here of a version without bob) removes it.
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in (1, 2)]
    with transaction(engine) as session:
        other = build_version(session, parse_spec({**SPEC, "name": "amy"}), actor="tester",
                              label_source=lambda _s, **_k: labels,
                              directory=tmp_path / "ds").version_id
        again = export_version(session, other, out)
    assert again["placed"] and again["stale_removed"] == [str(staged)]
    assert _hidden(tmp_path) == []


def test_an_export_appears_at_the_commit_and_not_after_a_rollback(
        engine: Engine, version_id: str, tmp_path: Path) -> None:
    class Abort(Exception):
        pass

    out = tmp_path / "exp"
    with pytest.raises(Abort), transaction(engine) as session:
        export_version(session, version_id, out)
        assert not out.exists()
        raise Abort
    assert not out.exists() and _hidden(tmp_path) == [] and _exports(engine) == []

    with transaction(engine) as session:
        result = export_version(session, version_id, out)
        assert not out.exists() and not result["placed"]  # moved by the commit
        with pytest.raises(InputError, match="already exists"):
            export_version(session, version_id, out)  # taken by the first one
    assert result["placed"] and (out / "train.jsonl").exists()
    assert json.loads((out / "export.json").read_text())["export_id"] == result["export_id"]
    assert _hidden(tmp_path) == []


def test_an_export_that_cannot_be_moved_after_its_commit_says_so_and_exits_1(
        db_url: str, engine: Engine, version_id: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.cli import app

    out = tmp_path / "exp"
    rename = Path.rename

    def refuse_move(self: Path, target: Any) -> Any:
        if Path(target) == out.resolve():
            raise PermissionError(13, "Permission denied", str(target))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", refuse_move)
    ran = CliRunner().invoke(app, ["dataset", "export", version_id, "--out", str(out),
                                   "--db", db_url])
    assert ran.exit_code == 1, ran.output
    shown = json.loads(ran.stdout)
    assert shown["placed"] is False and "PermissionError" in shown["error"]
    assert "could not be moved into place" in ran.stderr
    staged = Path(shown["staging"])
    assert (staged / "train.jsonl").exists() and not out.exists()
    assert [e.id for e in _exports(engine)] == [shown["export_id"]]


def test_forget_waits_for_an_export_being_moved_into_place(
        engine: Engine, version_id: str, tmp_path: Path) -> None:
    from hilt.data.build import lock_file
    from hilt.data.versions import export_folders

    out = tmp_path / "exp"
    with transaction(engine) as session:
        export_id = export_version(session, version_id, out)["export_id"]
        (export,) = export_folders(session, version_id)
    # As the exporting process sees it between its commit and the move.
    staged = tmp_path / f".exp.tmp-{export_id.removeprefix('dx_')}"
    out.rename(staged)
    held = os.open(lock_file(staged), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    found: list[list[Path]] = []
    reader = threading.Thread(target=lambda: found.append(export.split_files()))
    reader.start()
    reader.join(timeout=0.5)
    assert reader.is_alive()  # waits rather than reading a folder about to move
    staged.rename(out)
    lock_file(staged).unlink()
    os.close(held)
    reader.join(timeout=10)
    assert found == [[out / "train.jsonl"]]
