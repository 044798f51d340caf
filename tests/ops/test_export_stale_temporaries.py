"""An export job sweeps the temporaries that killed exports left in the export folder:
each job writes a file of its own name, so no later export writes a killed one's name
again, which is what sweeps a temporary elsewhere. A temporary a live process holds, and
files that are not an export's temporaries, stay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hilt.ops.jobs import enqueue, run_next
from hilt.staging import PrivateFile, host_tag
from hilt.store.db import transaction


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_an_export_sweeps_what_killed_exports_left(
        sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    monkeypatch.setenv("HILT_EXPORT_DIR", str(folder))
    pid = _dead_pid()
    left = [folder / f".reviews-job_{k}.jsonl.{pid}-{host_tag()}-0000000{k}.tmp"
            for k in range(2)]
    for path in left:
        path.write_text("half an export")
    other_host = folder / f".reviews-job_9.jsonl.{pid}-ffffffff-00000009.tmp"
    other_host.write_text("another host's: it cannot tell whether that process lives")
    unrelated = folder / "notes.txt"
    unrelated.write_text("mine")
    with PrivateFile(folder / "reviews-job_live.jsonl", ".tmp") as live:
        with transaction(sqlite_engine) as s:
            enqueue(s, "export.reviews", {}, actor="t")
        assert run_next(sqlite_engine, "w") == "succeeded"
        assert not any(path.exists() for path in left)
        assert live.path.exists() and other_host.exists() and unrelated.exists()
