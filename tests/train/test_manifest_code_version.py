"""The code version recorded in run manifests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import hilt
from hilt.train import manifest


def test_dirty_flag_covers_the_whole_package(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], Path]] = []

    def fake_run(args: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append((args, Path(cwd)))
        # an uncommitted change outside hilt/train, e.g. in the JSONL reader
        out = "abc123\n" if args[1] == "rev-parse" else " M jsonl.py\n"
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")

    monkeypatch.setattr(manifest.subprocess, "run", fake_run)
    assert manifest.git_commit() == "abc123+dirty"
    status_args, status_cwd = next(c for c in calls if c[0][1] == "status")
    package_root = Path(hilt.__file__).resolve().parent
    assert status_cwd == package_root and status_args[-1] == "."
