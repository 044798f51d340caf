"""An ``--out`` whose path runs through a symbolic link loop is refused naming ``--out``
(exit 2, nothing written), as a symbolic link ``--out`` is, not a traceback from
resolving the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.train.manifest import check_out_folder
from tests.ops.climain import run_hilt


def _loop(tmp_path: Path) -> Path:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return tmp_path / "a"


@pytest.mark.parametrize("below", ["", "model"])
def test_check_out_folder_refuses_a_loop(tmp_path: Path, below: str) -> None:
    out = _loop(tmp_path) / below if below else _loop(tmp_path)
    with pytest.raises(InputError) as err:
        check_out_folder(out, "reward")
    assert err.value.field == "--out" and "loop" in err.value.reason


@pytest.mark.parametrize("command", [
    ["train", "reward", "--pairs", "PAIRS"],
    ["train", "classifier", "--data", "DATA", "--text-field", "text", "--label-field",
     "label"],
    ["train", "sft", "--data", "DATA"],
])
def test_train_commands_refuse_a_loop(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "t", "label": "x"}\n')
    args = [str(data) if part in ("PAIRS", "DATA") else part for part in command]
    done = run_hilt([*args, "--out", str(_loop(tmp_path) / "m"), "--no-register",
                     "--no-progress"])
    assert done.returncode == 2, done.stderr
    assert "field '--out'" in done.stderr and "loop" in done.stderr
    assert "Traceback" not in done.stderr
