"""A check over a whole event or feedback item names the field at fault, as every other
refusal does, and says it without pydantic's "Value error, " before hilt's message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.events.readers import read_records
from hilt.events.validate import parse_all, parse_batch_json

BASE = {"interaction": {"prompt": "p"}, "responses": [{"text": "a"}, {"text": "b"}]}


@pytest.mark.parametrize(("feedback", "field", "reason"), [
    ({"kind": "preference", "chosen": 0, "rejected": 2}, "feedback[1].rejected",
     "feedback[1] points at response 2, but the event has 2 response(s)"),
    ({"kind": "preference", "chosen": 5, "rejected": 0}, "feedback[1].chosen",
     "feedback[1] points at response 5, but the event has 2 response(s)"),
    ({"kind": "thumbs", "up": True, "response_index": 2}, "feedback[1].response_index",
     "feedback[1] points at response 2, but the event has 2 response(s)"),
    ({"kind": "rating", "value": 7}, "feedback[1].value", "rating 7.0 outside [1, 5]"),
])
def test_feedback_checks_name_their_field(tmp_path: Path, feedback: dict, field: str,
                                          reason: str) -> None:
    event = {**BASE, "feedback": [{"kind": "text", "text": "fine"}, feedback]}
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps(BASE) + "\n" + json.dumps(event) + "\n")
    with pytest.raises(InputError) as err:
        parse_all(read_records(f), file=str(f))
    assert (err.value.line, err.value.field, err.value.reason) == (2, field, reason)

    with pytest.raises(InputError) as err:
        parse_batch_json(json.dumps({"events": [BASE, event]}), file="request")
    assert (err.value.line, err.value.field, err.value.reason) == (1, field, reason)


def test_a_rule_of_the_interaction_is_said_without_pydantics_prefix() -> None:
    both = {**BASE, "interaction": {"prompt": "p", "messages": [{"role": "user",
                                                                 "content": "p"}]}}
    with pytest.raises(InputError) as err:
        parse_batch_json(json.dumps({"events": [both]}), file="request")
    assert (err.value.field, err.value.reason) == (
        "interaction", "give exactly one of 'prompt' or 'messages'")


@pytest.mark.parametrize(("text", "hint"), [
    ("[" + json.dumps(BASE) + "]\n", "the line opens a JSON array"),
    ("[\n  " + json.dumps(BASE) + "\n]\n", "the line opens a JSON array"),
    (json.dumps(BASE, indent=2) + "\n", "each event must be on one line of its own"),
])
def test_a_json_file_that_is_not_json_lines_says_what_is_expected(
        tmp_path: Path, text: str, hint: str) -> None:
    f = tmp_path / "events.json"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        parse_all(read_records(f), file=str(f))
    assert err.value.line == 1 and hint in err.value.reason
