"""A reader that closes stdout early (``hilt check ... | head -3``, ``| true``) does not
change a command's exit status: check 0 pass, 1 block, 2 error; verify 0 agrees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    # 30 prompts of each kind: the built-in policy judges a metric on no fewer
    expect = ["comply" if i < 30 else "refuse" for i in range(60)]
    return {
        "suite": _write(tmp_path / "suite.jsonl", [
            {"id": f"q{i}", "prompt": f"p{i}", "slice": "x", "expect": e}
            for i, e in enumerate(expect)]),
        "good": _write(tmp_path / "good.jsonl", [
            {"id": f"q{i}", "response": "r", "judgment": e} for i, e in enumerate(expect)]),
        # refuses the benign prompts too: a significant increase, so the gate blocks
        "refuses": _write(tmp_path / "refuses.jsonl", [
            {"id": f"q{i}", "response": "no", "judgment": "refuse"} for i in range(60)]),
    }


def hilt_reader_gone(*args: str, cwd: Path) -> tuple[int, str]:
    """Run ``hilt ARGS`` with its stdout a pipe whose reading end is closed before the
    command writes anything; returns the exit status and stderr."""
    env = dict(os.environ, HILT_DATABASE_URL=f"sqlite:///{cwd / 'unused.db'}")
    proc = subprocess.Popen([sys.executable, "-m", "hilt", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is printed
    stderr = proc.stderr.read()
    return proc.wait(timeout=120), stderr


def _check(files: dict[str, Path], candidate: str, out: Path) -> list[str]:
    return ["check", "--suite", str(files["suite"]), "--candidate", str(files[candidate]),
            "--reference", str(files["good"]), "--out", str(out)]


def test_a_passing_check_exits_0_when_stdout_is_closed(files: dict[str, Path],
                                                        tmp_path: Path) -> None:
    code, stderr = hilt_reader_gone(*_check(files, "good", tmp_path / "o"), cwd=tmp_path)
    assert code == 0, stderr
    assert "BrokenPipe" not in stderr and "error" not in stderr
    assert json.loads((tmp_path / "o" / "decision.json").read_text())["outcome"] == "pass"


def test_a_blocking_check_exits_1_when_stdout_is_closed(files: dict[str, Path],
                                                         tmp_path: Path) -> None:
    code, stderr = hilt_reader_gone(*_check(files, "refuses", tmp_path / "o"),
                                    cwd=tmp_path)
    assert code == 1, stderr
    assert "BrokenPipe" not in stderr and "error" not in stderr


def test_gate_verify_of_an_agreeing_record_exits_0_when_stdout_is_closed(
        files: dict[str, Path], tmp_path: Path) -> None:
    checked = subprocess.run([sys.executable, "-m", "hilt",
                              *_check(files, "good", tmp_path / "o")],
                             capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert checked.returncode == 0, checked.stderr
    code, stderr = hilt_reader_gone("gate", "verify", str(tmp_path / "o"), cwd=tmp_path)
    assert code == 0, stderr
    assert stderr == ""


def test_an_error_still_exits_2_when_stdout_is_closed(files: dict[str, Path],
                                                       tmp_path: Path) -> None:
    code, stderr = hilt_reader_gone("check", "--suite", str(tmp_path / "missing.jsonl"),
                                    "--candidate", str(files["good"]), "--reference",
                                    str(files["good"]), "--out", str(tmp_path / "o"),
                                    cwd=tmp_path)
    assert code == 2
    assert "missing.jsonl" in stderr and "BrokenPipe" not in stderr
