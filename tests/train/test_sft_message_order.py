"""A ``messages`` demonstration is the last assistant reply and what it answers: a
message after that reply, and a reply with no message before it, are refused naming
the line and the field (the first was dropped unseen, the second stopped training with
a traceback from the chat template)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hilt.errors import InputError
from hilt.train.sft import read_sft_records, to_conversational

USER = {"role": "user", "content": "q"}
ASSISTANT = {"role": "assistant", "content": "a"}
SYSTEM = {"role": "system", "content": "Be brief."}


def _file(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize(("messages", "field"), [
    ([USER, ASSISTANT, USER], "messages[2].role"),
    ([USER, ASSISTANT, SYSTEM], "messages[2].role"),
    ([ASSISTANT, USER], "messages[1].role"),
    ([ASSISTANT], "messages"),
])
def test_refused(tmp_path: Path, messages: list[dict[str, str]], field: str) -> None:
    path = _file(tmp_path / "sft.jsonl", {"prompt": "p", "completion": "c"},
                 {"messages": messages})
    with pytest.raises(InputError) as err:
        read_sft_records(path)
    assert (err.value.line, err.value.field) == (2, field)


@pytest.mark.parametrize("messages", [
    [USER, ASSISTANT],
    [SYSTEM, ASSISTANT],
    [USER, ASSISTANT, USER, ASSISTANT],
    [ASSISTANT, USER, ASSISTANT],
])
def test_accepted_and_nothing_dropped(tmp_path: Path,
                                      messages: list[dict[str, str]]) -> None:
    records = read_sft_records(_file(tmp_path / "sft.jsonl", {"messages": messages}))
    for assistant_only in (True, False):
        example = to_conversational(records, assistant_only)[0]
        seen = example["messages"] if assistant_only else \
            [*example["prompt"], *example["completion"]]
        assert seen == messages  # every message reaches the trainer
        if not assistant_only:
            assert example["prompt"]  # the chat template needs a prompt to apply
