"""Training inputs with a lone UTF-16 surrogate escape (``"\\ud800"``): valid JSON that is
no text. Each reader refuses it naming file, line and field, instead of a traceback
from a tokenizer or encoder deep in training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.train.classifier_eval import read_labelled
from hilt.train.pairs import read_pairs
from hilt.train.sft import read_sft_records
from hilt.train.surrogates import lone_surrogate_path
from tests.ops.climain import run_hilt

GOOD_PAIR = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})


def _lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))  # escapes kept as written
    return path


@pytest.mark.parametrize(("line", "field"), [
    ('{"prompt": "p", "chosen": "a\\ud800", "rejected": "b"}', "chosen"),
    ('{"prompt": "\\udfff", "chosen": "a", "rejected": "b"}', "prompt"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b", "slice": "s\\udc80"}', "slice"),
    ('{"chosen": "\\n\\nHuman: q\\n\\nAssistant: x\\ud800", '
     '"rejected": "\\n\\nHuman: q\\n\\nAssistant: y"}', "chosen"),
])
def test_pair_file_refuses_a_lone_surrogate(tmp_path: Path, line: str, field: str) -> None:
    path = _lines(tmp_path / "pairs.jsonl", GOOD_PAIR, line)
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert (err.value.line, err.value.field) == (2, field)
    assert "surrogate" in err.value.reason


def test_a_surrogate_pair_escape_is_text(tmp_path: Path) -> None:
    # "\ud83d\ude00" is one character (an emoji) written as two escapes: it is text
    path = _lines(tmp_path / "pairs.jsonl",
                  '{"prompt": "p", "chosen": "a \\ud83d\\ude00", "rejected": "b"}')
    assert read_pairs(path)[0].chosen == "a \U0001F600"


@pytest.mark.parametrize(("line", "field"), [
    ('{"prompt": "a\\udc80", "completion": "b"}', "prompt"),
    ('{"messages": [{"role": "user", "content": "q"}, '
     '{"role": "assistant", "content": "\\ud800"}]}', "messages[1].content"),
])
def test_sft_file_refuses_a_lone_surrogate(tmp_path: Path, line: str, field: str) -> None:
    path = _lines(tmp_path / "sft.jsonl", '{"prompt": "p", "completion": "c"}', line)
    with pytest.raises(InputError) as err:
        read_sft_records(path)
    assert (err.value.line, err.value.field) == (2, field)


@pytest.mark.parametrize(("line", "field"), [
    ('{"text": "a\\ud800", "label": "x"}', "text"),
    ('{"text": "a", "label": "x\\udfff"}', "label"),
])
def test_labelled_file_refuses_a_lone_surrogate(tmp_path: Path, line: str,
                                                field: str) -> None:
    path = _lines(tmp_path / "d.jsonl", '{"text": "ok", "label": "x"}', line)
    with pytest.raises(InputError) as err:
        read_labelled(path, "text", "label")
    assert (err.value.line, err.value.field) == (2, field)


def test_labelled_file_ignores_a_surrogate_in_a_field_it_does_not_read(tmp_path: Path
                                                                       ) -> None:
    path = _lines(tmp_path / "d.jsonl", '{"text": "ok", "label": "x", "note": "\\ud800"}')
    assert read_labelled(path, "text", "label").texts == ["ok"]


def test_lone_surrogate_path_names_keys_and_nested_values() -> None:
    assert lone_surrogate_path({"a": [1, {"b": "ok"}, {"c": "\ud800"}]}) == ("a", 2, "c")
    assert lone_surrogate_path({"a": "ok", "b": ["x"]}) is None


def test_train_reward_says_line_and_field_not_a_traceback(tmp_path: Path) -> None:
    pairs = _lines(tmp_path / "pairs.jsonl", GOOD_PAIR,
                   '{"prompt": "p", "chosen": "a\\ud800", "rejected": "b"}')
    done = run_hilt(["train", "reward", "--pairs", str(pairs), "--out",
                     str(tmp_path / "rm"), "--no-register", "--no-progress"])
    assert done.returncode == 2, done.stderr
    assert "line 2, field 'chosen'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "rm").exists()
