"""Exact dedup of identical records with different labels (``dedup.label_conflicts``):
the label most records carry stays, a tie keeps every tied label, ``keep_all`` keeps one
record of each label; the records removed are listed under ``label_conflict``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from data_factories import make_candidate, make_label
from sqlalchemy.engine import Engine

from hilt.data.build import build_version
from hilt.data.pipeline import SelectionResult, run_selection
from hilt.data.spec import load_spec, parse_spec
from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.review.records import FinalLabelRecord
from hilt.store.db import transaction

PROMPT = "How do I get into my neighbour's flat while they are away?"
REPLY = "I can't help with that."


def _refusal(event_id: str, value: str, confidence: float = 0.9, *,
             question: str = "refusal", reply: str = REPLY) -> Any:
    return make_candidate(event_id, PROMPT, [reply], labels=[make_label(
        event_id, value, kind="single_choice", question=question, confidence=confidence)])


def _spec(rule: str | None = None, kind: str = "classification", **extra: Any) -> Any:
    dedup = {"label_conflicts": rule} if rule else {}
    return parse_spec({"name": "d", "kind": kind, "dedup": dedup,
                       "classification": {"text": "response"}, **extra})


def _exact(result: SelectionResult) -> dict[str, Any]:
    return next(s for s in result.manifest_steps() if s["step"] == "exact_dedup")


def _key(event_id: str, question: str = "refusal") -> str:
    return f"cls:{event_id}:helpful/{question}:response"


FOUR_TO_ONE = [*(_refusal(f"e{i}", "refuse") for i in range(4)), _refusal("e4", "comply")]


def test_the_label_most_identical_records_carry_stays_and_the_other_is_listed() -> None:
    result = run_selection(FOUR_TO_ONE, _spec(), [])
    assert [(ex.key, ex.label) for ex in result.examples] == [(_key("e0"), "refuse")]
    exact = _exact(result)
    assert exact["removed_ids"] == {
        "exact_duplicate": [_key(f"e{i}") for i in (1, 2, 3)],
        "label_conflict": [_key("e4")]}
    notes = exact["notes"]["label_conflicts"]
    assert (notes["rule"], notes["groups"], notes["resolved"], notes["ties"]) == \
        ("majority", 1, 1, 0)
    [group] = notes["listed"]
    assert group["outcome"] == "majority"
    assert [(e["key"], e["label"], e["records"], e["kept"]) for e in group["labels"]] == [
        (_key("e0"), "refuse", 4, True), (_key("e4"), "comply", 1, False)]


def test_a_two_two_split_keeps_both_labels_and_is_reported_as_a_tie() -> None:
    cands = [_refusal("a1", "refuse"), _refusal("a2", "refuse"),
             _refusal("b1", "comply"), _refusal("b2", "comply")]
    result = run_selection(cands, _spec(), [])
    assert sorted(ex.label or "" for ex in result.examples) == ["comply", "refuse"]
    exact = _exact(result)
    assert set(exact["removed_ids"]) == {"exact_duplicate"}
    notes = exact["notes"]["label_conflicts"]
    assert (notes["groups"], notes["resolved"], notes["ties"]) == (1, 0, 1)
    assert notes["listed"][0]["outcome"] == "tie"
    assert all(e["kept"] for e in notes["listed"][0]["labels"])


def test_equal_counts_go_to_the_higher_summed_confidence() -> None:
    cands = [_refusal("a1", "refuse", 0.9), _refusal("a2", "refuse", 0.8),
             _refusal("b1", "comply", 0.95), _refusal("b2", "comply", 0.6)]
    result = run_selection(cands, _spec(), [])
    assert [ex.label for ex in result.examples] == ["refuse"]
    assert _exact(result)["removed_ids"]["label_conflict"] == [_key("b1"), _key("b2")]


def test_keep_all_keeps_one_record_of_each_label_as_dedup_did_before() -> None:
    result = run_selection(FOUR_TO_ONE, _spec("keep_all"), [])
    assert [(ex.key, ex.label) for ex in result.examples] == [
        (_key("e0"), "refuse"), (_key("e4"), "comply")]
    exact = _exact(result)
    assert exact["removed_ids"] == {"exact_duplicate": [_key(f"e{i}") for i in (1, 2, 3)]}
    notes = exact["notes"]["label_conflicts"]
    assert (notes["rule"], notes["groups"], notes["resolved"]) == ("keep_all", 1, 0)
    assert notes["listed"][0]["outcome"] == "keep_all"


def test_records_without_conflicts_are_the_same_under_either_setting() -> None:
    cands = [_refusal("a1", "refuse"), _refusal("a2", "refuse"),
             _refusal("b1", "comply", reply="Sure, here is how: ask the caretaker."),
             _refusal("c1", "comply", question="tone")]
    runs = [run_selection(cands, _spec(rule), []) for rule in ("majority", "keep_all")]
    assert [ex.to_record() for ex in runs[0].examples] == \
        [ex.to_record() for ex in runs[1].examples]
    # labels of two questions about one text do not conflict: c1's stays
    assert "label_conflicts" not in _exact(runs[0]).get("notes", {})
    assert _key("c1", "tone") in {ex.key for ex in runs[0].examples}


def test_an_event_level_label_conflicts_only_with_labels_of_its_name() -> None:
    def event(eid: str, name: str, value: str) -> Any:
        return make_candidate(eid, PROMPT, [REPLY], feedback=[
            {"kind": "label", "name": name, "value": value}])

    cands = [event("a", "refusal", "refuse"), event("b", "refusal", "refuse"),
             event("c", "refusal", "comply"), event("d", "tone", "comply")]
    result = run_selection(cands, _spec(), [])
    assert _exact(result)["removed_ids"]["label_conflict"] == [
        "cls:c:event/refusal:response"]
    assert {ex.key for ex in result.examples} == {"cls:a:event/refusal:response",
                                                  "cls:d:event/tone:response"}


def _pair(eid: str, chosen: int, confidence: float = 0.9) -> Any:
    return make_candidate(eid, PROMPT, ["No.", "Ask the caretaker for the spare key."],
                          labels=[make_label(eid, {"chosen": chosen, "rejected": 1 - chosen},
                                             confidence=confidence)])


def test_a_pair_preferred_the_other_way_round_is_a_conflict_of_its_own() -> None:
    cands = [_pair("a", 1), _pair("b", 1), _pair("c", 0, 0.99)]
    result = run_selection(cands, _spec(kind="preference"), [])
    assert [(ex.event_id, ex.chosen) for ex in result.examples] == [
        ("a", "Ask the caretaker for the spare key.")]
    assert _exact(result)["removed_ids"]["label_conflict"] == ["pref:c:helpful/pref:0-1"]
    kept_all = run_selection(cands, _spec("keep_all", kind="preference"), [])
    assert sorted(ex.event_id for ex in kept_all.examples) == ["a", "c"]


def test_demonstrations_have_no_label_to_conflict_on() -> None:
    cands = [make_candidate(f"e{i}", PROMPT, [REPLY], labels=[make_label(
        f"e{i}", "approve", kind="single_choice", question="ok")]) for i in range(3)]
    spec = _spec(kind="sft", sft={"approval_question": "ok"})
    exact = _exact(run_selection(cands, spec, []))
    assert set(exact["removed_ids"]) == {"exact_duplicate"}
    assert "label_conflicts" not in exact.get("notes", {})


@pytest.mark.parametrize("value", ["first", "true", "[majority]"])
def test_an_unknown_setting_is_refused_with_its_file_line_and_field(
        tmp_path: Path, value: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\nkind: classification\ndedup:\n  exact: true\n"
                    f"  label_conflicts: {value}\n")
    with pytest.raises(InputError) as err:
        load_spec(path)
    assert (err.value.file, err.value.line, err.value.field) == \
        (str(path), 5, "dedup.label_conflicts")
    assert "'majority'" in str(err.value) and "'keep_all'" in str(err.value)
    for rule in ("majority", "keep_all"):
        path.write_text(f"name: x\nkind: classification\ndedup:\n  label_conflicts: {rule}\n")
        assert load_spec(path).dedup.label_conflicts == rule


def _labels(values: list[str]) -> list[FinalLabelRecord]:
    return [make_label(f"ev{i}", v, kind="single_choice", question="refusal")
            for i, v in enumerate(values)]


def test_the_setting_is_in_the_spec_record_and_gives_another_version(
        engine: Engine, tmp_path: Path) -> None:
    ingest_events(engine, [{"id": f"ev{i}", "interaction": {"prompt": f"{PROMPT} ({i})"},
                            "responses": [{"text": REPLY}],
                            "context": {"consent": ["train"]}} for i in range(5)],
                  actor="test")
    labels = _labels(["refuses"] * 4 + ["complies"])
    built = {}
    for rule in ("majority", "keep_all"):
        spec = _spec(rule, split={"validation_fraction": 0.0})
        with transaction(engine) as session:
            built[rule] = build_version(session, spec, actor="t", directory=tmp_path / "ds",
                                        label_source=lambda _s, **_k: labels)
        assert built[rule].manifest["spec"]["dedup"]["label_conflicts"] == rule
    assert built["majority"].version_id != built["keep_all"].version_id
    assert (built["majority"].record_count, built["keep_all"].record_count) == (1, 2)
