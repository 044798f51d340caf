"""A classifier trained from a ``text: prompt_response`` dataset version reads the prompt
as its context and the response as its text, the shape ``hilt check`` scores."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hilt.data.pipeline import records_of, run_selection
from hilt.data.records import Candidate
from hilt.data.spec import parse_spec
from hilt.errors import InputError
from hilt.review.records import FinalLabelRecord
from hilt.train.from_dataset import classification_texts

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def _candidate(i: int) -> Candidate:
    label = FinalLabelRecord(
        label_id=f"lb{i}", event_id=f"ev{i}", task_id=f"t{i}", rubric_id="harm",
        rubric_version=1, question_id="refusal", question_kind="single_choice",
        value="complies" if i % 2 else "full_refusal", provenance="unanimous",
        confidence=1.0, review_ids=(f"rv{i}",), adjudication_id=None,
        policy_version="p", decided_at=NOW)
    return Candidate(event_id=f"ev{i}", created_at=NOW, consent=frozenset({"train"}),
                     messages=[{"role": "user", "content": f"Question number {i} here?"}],
                     responses=[f"Answer number {i}\nover two lines."], subject_id=None,
                     feedback=[], labels=[label], slice="s", template={},
                     policy_version="p")


def _records(text: str) -> list[dict]:
    spec = parse_spec({"name": "c", "kind": "classification",
                       "classification": {"question_id": "refusal", "text": text},
                       "dedup": {"exact": False, "near": False}})
    return records_of(run_selection([_candidate(i) for i in range(4)], spec, []).examples)


def test_prompt_response_records_train_with_the_prompt_as_context() -> None:
    records = _records("prompt_response")
    rows = classification_texts(records, "v1")
    by_prompt = dict(zip(rows.contexts or [], rows.texts, strict=True))
    assert by_prompt["Question number 1 here?"] == "Answer number 1\nover two lines."
    assert sorted(rows.labels) == ["complies", "complies", "full_refusal", "full_refusal"]


def test_other_text_shapes_have_no_context() -> None:
    rows = classification_texts(_records("response"), "v1")
    assert rows.contexts is None
    assert "Answer number 0\nover two lines." in rows.texts


def test_a_record_whose_text_does_not_start_with_its_prompt_is_refused() -> None:
    records = _records("prompt_response")
    records[1]["text"] = "something else"
    with pytest.raises(InputError) as err:
        classification_texts(records, "v1", lines=[10, 11, 12, 13], file="records.jsonl")
    assert (err.value.line, err.value.field) == (11, "prompt")
