"""The feedback event: validation rules and content-derived ids."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hilt.errors import InputError
from hilt.events.model import FeedbackEvent
from hilt.events.validate import parse_event

text = st.text(min_size=0, max_size=40)


@st.composite
def events(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 3))
    record: dict = {
        "interaction": draw(st.one_of(
            st.builds(lambda p: {"prompt": p}, text),
            st.builds(lambda ms: {"messages": ms}, st.lists(
                st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                       "content": text}), min_size=1, max_size=4)))),
        "responses": [{"text": draw(text)} for _ in range(n)],
        "context": {"consent": draw(st.lists(st.sampled_from(["review", "train", "eval"]),
                                             unique=True)),
                    "decoder": {"temperature": draw(st.floats(0, 2)),
                                "seed": draw(st.integers(0, 2**31))}},
    }
    if n >= 2:
        record["feedback"] = [{"kind": "preference", "chosen": 1, "rejected": 0}]
    return record


@settings(max_examples=60, deadline=None)
@given(events())
def test_valid_events_round_trip_and_ids_are_stable(record: dict) -> None:
    event = parse_event(record)
    again = parse_event(event.model_dump(mode="json", exclude={"id"}))
    assert event.id == again.id and event.id and event.id.startswith("ev_")
    assert FeedbackEvent.model_validate(event.model_dump(mode="json")) == event


@settings(max_examples=60, deadline=None)
@given(events(), st.sampled_from(["interaction", "responses", "context"]))
def test_any_change_of_content_changes_the_derived_id(record: dict, part: str) -> None:
    event = parse_event(record)
    changed = dict(record)
    if part == "interaction":
        changed["interaction"] = {"prompt": "changed:" + str(record["interaction"])}
    elif part == "responses":
        changed["responses"] = [*record["responses"], {"text": "another"}]
    else:
        changed["context"] = {**record["context"], "source": "elsewhere"}
    assert parse_event(changed).id != event.id


@pytest.mark.parametrize(("record", "field"), [
    ({"interaction": {}}, "interaction"),
    ({"interaction": {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}},
     "interaction"),
    ({"interaction": {"messages": [{"role": "robot", "content": "b"}]}},
     "interaction.messages[0].role"),
    ({"interaction": {"prompt": "a"}, "feedback": [{"kind": "rating", "value": 7}]},
     "feedback[0].value"),
    ({"interaction": {"prompt": "a"}, "feedback": [{"kind": "nope"}]}, "feedback[0]"),
    ({"interaction": {"prompt": "a"}, "context": {"consent": ["sell"]}}, "context.consent[0]"),
    ({"interaction": {"prompt": "a"}, "context": {"decoder": {"top_p": 3}}},
     "context.decoder.top_p"),
    ({"interaction": {"prompt": "a"}, "responses": [{"text": "x"}],
      "feedback": [{"kind": "preference", "chosen": 0, "rejected": 1}]},
     "feedback[0].rejected"),
    ({"interaction": {"prompt": "a"}, "surprise": 1}, "surprise"),
])
def test_invalid_events_name_the_field(record: dict, field: str) -> None:
    with pytest.raises(InputError) as err:
        parse_event(record, file="f.jsonl", line=7)
    assert err.value.file == "f.jsonl" and err.value.line == 7
    assert err.value.field == field


def test_schema_documents_every_feedback_kind() -> None:
    from hilt.events.model import event_json_schema

    schema = event_json_schema()
    kinds = {d["properties"]["kind"]["const"] for name, d in schema["$defs"].items()
             if name.endswith("Feedback")}
    assert kinds == {"rating", "thumbs", "flag", "preference", "label", "text", "edit"}


def test_batch_body_is_validated_in_one_pass_with_index_and_field() -> None:
    from hilt.events.validate import MAX_BATCH, parse_batch_json

    records = [{"interaction": {"prompt": f"p{i}"}} for i in range(3)]
    events = parse_batch_json(json.dumps({"events": records}).encode(), file="request")
    assert events == [parse_event(r) for r in records]  # ids filled in as one by one
    records.append({"interaction": {"prompt": "p3"}, "responses": [{"txt": "typo"}]})
    cases = {
        json.dumps({"events": records}): (3, "responses[0].text", "Field required"),
        json.dumps({"events": [*records[:2], 7]}): (2, None, "must be a JSON object"),
        '{"events": [': (None, None, "invalid JSON"),
        "[]": (None, None, 'JSON object {"events"'),
        "{}": (None, "events", "Field required"),
        json.dumps({"events": records[:1] * (MAX_BATCH + 1)}): (
            None, "events", f"at most {MAX_BATCH}"),
    }
    for body, (line, field, reason) in cases.items():
        with pytest.raises(InputError) as err:
            parse_batch_json(body, file="request")
        assert (err.value.file, err.value.line, err.value.field) == ("request", line, field)
        assert reason in str(err.value)
