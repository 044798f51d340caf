"""An export job names its file by an absolute path, whatever folder its worker ran in."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hilt.ops.jobs import enqueue, get_job, run_next
from hilt.store.db import transaction


def test_the_result_path_does_not_depend_on_the_workers_folder(
        sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HILT_EXPORT_DIR", raising=False)
    monkeypatch.delenv("HILT_HOME", raising=False)  # the default: .hilt in the folder
    monkeypatch.chdir(tmp_path)
    with transaction(sqlite_engine) as s:
        job_id = enqueue(s, "export.reviews", {}, actor="t")
    assert run_next(sqlite_engine, "w") == "succeeded"
    with transaction(sqlite_engine) as s:
        path = Path(get_job(s, job_id).result["path"])
    assert path.is_absolute()
    assert path == tmp_path.resolve() / ".hilt" / "exports" / f"reviews-{job_id}.jsonl"
    assert path.is_file()
