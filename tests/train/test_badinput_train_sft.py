"""Demonstration files for ``hilt train sft``: a line holds one form and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hilt.errors import InputError
from hilt.train.sft import read_sft_records

CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
GOOD = {"prompt": "p", "completion": "c"}


def _file(path: Path, *lines: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.parametrize("line,field", [
    # both forms: only messages would be trained on
    ({"messages": CHAT, "prompt": "p", "completion": "c"}, "prompt"),
    ({"messages": CHAT, "completion": "c"}, "completion"),
    # misspelt or unknown keys beside either form
    ({"messages": CHAT, "completon": "c"}, "completon"),
    ({"prompt": "p", "completion": "c", "weight": 2}, "weight"),
    ({"prompt": "p", "completon": "c"}, "completon"),
    # a key of a message besides role and content
    ({"messages": [CHAT[0], {**CHAT[1], "weight": 0.0}]}, "messages[1].weight"),
    ({"messages": [{**CHAT[0], "name": "ann"}, CHAT[1]]}, "messages[0].name"),
])
def test_a_demonstration_that_would_be_cut_down_is_refused(
        tmp_path: Path, line: dict[str, Any], field: str) -> None:
    path = _file(tmp_path / "sft.jsonl", GOOD, line)
    with pytest.raises(InputError) as err:
        read_sft_records(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 2, field)


def test_either_form_alone_is_read_whole(tmp_path: Path) -> None:
    path = _file(tmp_path / "sft.jsonl", GOOD, {"messages": CHAT})
    assert read_sft_records(path) == [GOOD, {"messages": CHAT}]


def test_hilt_train_sft_exits_2_on_a_mixed_line_before_any_work(tmp_path: Path) -> None:
    path = _file(tmp_path / "sft.jsonl", GOOD,
                 {"messages": CHAT, "prompt": "p", "completion": "c"})
    hilt = Path(sys.executable).with_name("hilt")
    env = {**os.environ, "HILT_DATABASE_URL": f"sqlite:///{tmp_path / 'hilt.db'}"}
    done = subprocess.run([str(hilt), "train", "sft", "--data", str(path), "--out",
                           str(tmp_path / "sft"), "--no-register"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {path}, line 2, field 'prompt': a demonstration holds messages or prompt "
        "and completion, not both: only one of them would be trained on"]
    assert not (tmp_path / "sft").exists()
