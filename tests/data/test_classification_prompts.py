"""Classification examples keep their event's prompt: a prompt-grouped split keeps every
example of one prompt on one side whatever part of the event the text holds, and
decontamination checks the prompt and the response of a ``prompt_response`` text as
fields of their own, at build time and when a version's facts are re-checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from data_factories import make_candidate, make_label
from sqlalchemy.engine import Engine

from hilt.data.balance import assign_splits
from hilt.data.build import build_version
from hilt.data.pipeline import run_selection
from hilt.data.spec import SplitSpec, parse_spec
from hilt.data.versions import dataset_facts
from hilt.events.ingest import ingest_events
from hilt.store.db import transaction


def _spec(text: str, **extra: Any) -> Any:
    return parse_spec({"name": "cls", "kind": "classification",
                       "classification": {"question_id": "harm", "text": text},
                       "split": {"validation_fraction": 0.5, "group_by": "prompt"},
                       "dedup": {"near": False}, **extra})


def _candidates(prompts: int, per_prompt: int) -> list[Any]:
    out = []
    for p in range(prompts):
        for r in range(per_prompt):
            eid = f"e{p}-{r}"
            out.append(make_candidate(
                eid, f"Shared question number {p} about gardens?",
                [f"Answer {r} to question {p}, with its own words {r * 7 + p}."],
                labels=[make_label(eid, "safe" if r % 2 else "unsafe", kind="single_choice",
                                   question="harm")]))
    return out


def _sides_per_prompt(examples: list[Any]) -> dict[str, set[str]]:
    sides: dict[str, set[str]] = {}
    for ex in examples:
        sides.setdefault(ex.event_id.split("-")[0], set()).add(ex.split)
    return sides


@pytest.mark.parametrize("text", ["prompt_response", "response"])
def test_prompt_grouped_split_keeps_a_prompt_on_one_side(text: str) -> None:
    result = run_selection(_candidates(40, 3), _spec(text), [])
    assert len(result.examples) == 120
    sides = _sides_per_prompt(result.examples)
    assert all(len(s) == 1 for s in sides.values()), sides
    assert {next(iter(s)) for s in sides.values()} == {"train", "validation"}


def test_assign_splits_without_precomputed_units_groups_by_the_prompt() -> None:
    examples = run_selection(_candidates(40, 3), _spec("prompt_response"), []).examples
    assign_splits(examples, SplitSpec(validation_fraction=0.5, group_by="prompt"))
    assert all(len(s) == 1 for s in _sides_per_prompt(examples).values())


def test_short_heldout_prompt_is_found_in_a_prompt_response_text() -> None:
    cands = [make_candidate("e1", "What is suicide?", ["A long and careful answer here."],
                            labels=[make_label("e1", "unsafe", kind="single_choice",
                                               question="harm")]),
             make_candidate("e2", "How do plants grow?", ["With light and water."],
                            labels=[make_label("e2", "safe", kind="single_choice",
                                               question="harm")])]
    result = run_selection(cands, _spec("prompt_response"), [("suite", "i1",
                                                               "what is suicide")])
    assert [ex.event_id for ex in result.examples] == ["e2"]
    step = next(s for s in result.steps if s.step == "decontaminate")
    assert step.removed_ids == {"heldout:suite": ["cls:e1:helpful/harm:prompt_response"]}


def test_a_short_heldout_text_inside_a_longer_prompt_is_not_matched() -> None:
    cands = [make_candidate("e1", "Tell me: what is suicide prevention about?", ["Help."],
                            labels=[make_label("e1", "safe", kind="single_choice",
                                               question="harm")])]
    result = run_selection(cands, _spec("prompt_response"), [("suite", "i1",
                                                               "what is suicide")])
    assert len(result.examples) == 1


def test_version_facts_recheck_the_prompt_of_a_prompt_response_text(
        engine: Engine, tmp_path: Path) -> None:
    events = [{"id": f"ev{i}", "interaction": {"prompt": prompt},
               "responses": [{"text": f"A long and careful answer number {i}."}],
               "context": {"consent": ["train"]}}
              for i, prompt in enumerate(["What is suicide?", "How do plants grow?"])]
    ingest_events(engine, events, actor="test")
    labels = [make_label(f"ev{i}", "safe", kind="single_choice", question="harm")
              for i in range(2)]
    with transaction(engine) as session:
        built = build_version(session, _spec("prompt_response"), actor="tester",
                              label_source=lambda _s, **_k: labels,
                              heldout_source=lambda _s: [], directory=tmp_path)
        facts = dataset_facts(session, built.version_id,
                              heldout=[("suite", "i1", "What is suicide?")])
    assert facts.contaminated is True
    assert facts.contaminating_items == [{"record_key": "cls:ev0:helpful/harm:prompt_response",
                                          "suite_id": "suite", "item_id": "i1"}]


def test_the_prompt_written_with_a_prompt_response_text_is_redacted() -> None:
    cands = [make_candidate("e1", "Write to me at bob.smith@example.com today", ["Sure."],
                            labels=[make_label("e1", "safe", kind="single_choice",
                                               question="harm")])]
    [ex] = run_selection(cands, _spec("prompt_response", pii={"action": "redact"}),
                         []).examples
    record = ex.to_record()
    assert "bob.smith@example.com" not in f"{record['prompt']} {record['text']}"
    assert record["text"] == f"{record['prompt']}\nSure."
