"""The rejects file of `hilt ingest --skip-invalid`: two runs on one file never share a
temporary file, and a run killed right after its commit has its rejects in place."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.events import ingest
from hilt.events.ingest import IngestResult, ingest_file
from hilt.store import audit
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.core import EventRow


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(EventRow)).scalar_one())


def _events_with_bad_lines(path: Path, n: int = 12) -> Path:
    lines = []
    for i in range(n):
        lines.append("{not json" if i % 4 == 3 else json.dumps(
            {"interaction": {"prompt": f"prompt {i}"}, "responses": [{"text": f"a {i}"}],
             "context": {"consent": ["review"], "subject_id": "s1", "model_version": "m1"}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _rejected_lines(target: Path) -> list[int]:
    return [json.loads(line)["line"] for line in target.read_text().splitlines()]


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_second_run_on_the_file_right_after_the_first_commits_leaves_both_whole(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _events_with_bad_lines(tmp_path / "ev.jsonl")
    real_transaction = ingest.transaction
    second: list[IngestResult] = []
    started: list[bool] = []

    @contextmanager
    def then_another_run(bind: Engine) -> Iterator[Any]:
        with real_transaction(bind) as session:
            yield session
        if not started:  # the first run has committed: a second run of the file now
            started.append(True)
            second.append(ingest_file(engine, events, skip_invalid=True))

    monkeypatch.setattr(ingest, "transaction", then_another_run)
    first = ingest_file(engine, events, skip_invalid=True)
    assert (first.new, first.rejected) == (9, 3)
    assert (second[0].new, second[0].duplicates, second[0].rejected) == (0, 9, 3)
    assert _rejected_lines(tmp_path / "ev.jsonl.rejects.jsonl") == [4, 8, 12]
    assert _temporaries(tmp_path) == [] and _count(engine) == 9
    with transaction(engine) as session:
        assert len(audit.entries(session, action="events.ingest")) == 2


def test_a_run_killed_right_after_its_commit_has_its_rejects_in_place(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hilt.db'}"
    engine = make_engine(url)
    migrate(engine)
    events = _events_with_bad_lines(tmp_path / "ev.jsonl")
    script = f"""
        import os, signal
        from contextlib import contextmanager
        from hilt.events import ingest
        from hilt.store.db import make_engine
        real_transaction = ingest.transaction
        @contextmanager
        def killed_after_commit(bind):
            with real_transaction(bind) as session:
                yield session
            os.kill(os.getpid(), signal.SIGKILL)
        ingest.transaction = killed_after_commit
        ingest.ingest_file(make_engine({url!r}), {str(events)!r}, skip_invalid=True)
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert _count(engine) == 9
    assert _rejected_lines(tmp_path / "ev.jsonl.rejects.jsonl") == [4, 8, 12]
    assert _temporaries(tmp_path) == []
    engine.dispose()


def test_a_run_that_fails_before_its_commit_leaves_no_temporary_file(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _events_with_bad_lines(tmp_path / "ev.jsonl")

    def failing_store(*args: Any, **kwargs: Any) -> IngestResult:
        raise RuntimeError("connection lost")

    monkeypatch.setattr(ingest, "store_events", failing_store)
    with pytest.raises(RuntimeError, match="connection lost"):
        ingest_file(engine, events, skip_invalid=True)
    assert not (tmp_path / "ev.jsonl.rejects.jsonl").exists()
    assert _temporaries(tmp_path) == [] and _count(engine) == 0
