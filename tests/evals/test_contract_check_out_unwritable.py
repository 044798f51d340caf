"""``hilt check --out DIR`` whose folder cannot be written in is refused before any
work, naming ``--out`` as given (exit 2, nothing written), not with an error about a
temporary folder after the scoring."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.check import run_check


def _world(tmp_path: Path, jsonl: Any) -> dict[str, Path]:
    suite = [{"id": f"q{i}", "prompt": f"p{i}", "slice": "x",
              "expect": "comply" if i < 3 else "refuse"} for i in range(6)]
    resp = [{"id": f"q{i}", "response": "r", "judgment": "comply" if i < 3 else "refuse"}
            for i in range(6)]
    return {"suite": jsonl(tmp_path / "s.jsonl", suite),
            "cand": jsonl(tmp_path / "c.jsonl", resp),
            "ref": jsonl(tmp_path / "r.jsonl", resp)}


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_contract_check_out_in_an_unwritable_folder_exits_2_naming_out(
        tmp_path: Path, jsonl: Any) -> None:
    files = _world(tmp_path, jsonl)
    # /proc takes no new entries, whoever asks (root included)
    result = CliRunner().invoke(app, [
        "check", "--suite", str(files["suite"]), "--candidate", str(files["cand"]),
        "--reference", str(files["ref"]), "--out", "/proc/hilt-check-out"])
    assert result.exit_code == 2, result.output
    assert ("error: /proc/hilt-check-out, field '--out': the output folder cannot be "
            "made: cannot write in /proc") in result.output
    assert "FileNotFoundError" not in result.output
    assert ".hilt-check-out." not in result.output  # no temporary folder named
    assert "gate:" not in result.output


def test_contract_check_out_unwritable_is_refused_before_any_work(
        tmp_path: Path, jsonl: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.train import manifest

    files = _world(tmp_path, jsonl)

    def never(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the inputs were read")

    def refuse(path: Any, *_args: Any) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("hilt.evals.check.parse_suite", never)
    monkeypatch.setattr(manifest.os, "mkdir", refuse)
    out = tmp_path / "new" / "out"
    with pytest.raises(InputError) as caught:
        run_check(suite=files["suite"], candidate=files["cand"], reference=files["ref"],
                  out=out)
    assert caught.value.field == "--out" and caught.value.file == str(out)
    assert f"cannot write in {tmp_path} (Permission denied)" in str(caught.value)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["c.jsonl", "r.jsonl", "s.jsonl"]
