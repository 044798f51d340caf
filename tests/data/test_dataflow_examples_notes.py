"""The examples step's notes: labels of one event that contradict each other under one
record key (``conflicting_labels``), and preference pairs not made because both replies
are the same text (``identical_pairs_skipped``), which training would refuse."""

from __future__ import annotations

from data_factories import make_candidate, make_label

from hilt.data.pipeline import LISTED_MAX, make_examples
from hilt.data.spec import SelectionSpec
from hilt.review.records import FinalLabelRecord

CLS = SelectionSpec(name="c", kind="classification")
PREF = SelectionSpec(name="p", kind="preference")


def _harm(event: str, value: str, version: int) -> FinalLabelRecord:
    return make_label(event, value, kind="single_choice", question="harm", version=version,
                      n=version)


def test_dataflow_examples_contradicting_labels_of_one_event_are_listed() -> None:
    cands = [make_candidate("e1", "how do I cook rice", ["boil it"],
                            labels=[_harm("e1", "safe", 1), _harm("e1", "unsafe", 2)]),
             make_candidate("e2", "how do I fry an egg", ["in a pan"],
                            labels=[_harm("e2", "safe", 1), _harm("e2", "safe", 2)]),
             make_candidate("e3", "how do I bake bread", ["in an oven"],
                            labels=[_harm("e3", "safe", 1)])]
    examples, report = make_examples(cands, CLS)
    assert len(examples) == 5
    assert report.notes["conflicting_labels"] == {"count": 1,
                                                  "keys": ["cls:e1:helpful/harm:prompt"]}


def test_dataflow_examples_opposite_preferences_of_one_event_are_listed() -> None:
    first = make_label("e1", {"chosen": 0, "rejected": 1})
    second = make_label("e1", {"chosen": 1, "rejected": 0}, version=2, n=2)
    c = make_candidate("e1", "say hi", ["hello", "go away"], labels=[first, second])
    _, report = make_examples([c], PREF)
    assert report.notes["conflicting_labels"] == {"count": 1,
                                                  "keys": ["pref:e1:helpful/pref:0-1"]}


def test_dataflow_examples_no_conflict_note_when_labels_agree() -> None:
    c = make_candidate("e1", "how do I cook rice", ["boil it"],
                       labels=[_harm("e1", "safe", 1), _harm("e1", "safe", 2)])
    examples, report = make_examples([c], CLS)
    assert len(examples) == 2 and "conflicting_labels" not in report.notes


def test_dataflow_examples_conflict_list_is_bounded_and_the_count_complete() -> None:
    n = LISTED_MAX + 5
    cands = [make_candidate(f"e{i:04d}", f"question number {i}", ["answer"],
                            labels=[_harm(f"e{i:04d}", "safe", 1),
                                    _harm(f"e{i:04d}", "unsafe", 2)]) for i in range(n)]
    _, report = make_examples(cands, CLS)
    note = report.notes["conflicting_labels"]
    assert note["count"] == n and len(note["keys"]) == LISTED_MAX
    assert note["keys"] == sorted(note["keys"]) and note["keys"][0] == \
        "cls:e0000:helpful/harm:prompt"


def test_dataflow_examples_event_preference_between_two_equal_replies_is_skipped() -> None:
    c = make_candidate("e1", "say hi", ["hello", "hello ", "go away"],
                       feedback=[{"kind": "preference", "chosen": 0, "rejected": 1},
                                 {"kind": "preference", "chosen": 0, "rejected": 2}])
    examples, report = make_examples([c], PREF)
    assert [(ex.chosen, ex.rejected) for ex in examples] == [("hello", "go away")]
    assert report.notes["identical_pairs_skipped"] == {"event_preference": 1}


def test_dataflow_examples_ranking_pairs_of_equal_replies_are_skipped() -> None:
    rank = make_label("e1", [0, 1, 2], kind="ranking", question="rank")
    c = make_candidate("e1", "say hi", ["hello", "go away", "hello"], labels=[rank])
    examples, report = make_examples([c], PREF)
    assert sorted((ex.chosen, ex.rejected) for ex in examples) == [
        ("go away", "hello"), ("hello", "go away")]
    assert report.notes["identical_pairs_skipped"] == {"label_ranking": 1}


def test_dataflow_examples_a_candidate_with_only_equal_replies_gives_no_pair() -> None:
    c = make_candidate("e1", "say hi", ["hello", "hello"],
                       feedback=[{"kind": "preference", "chosen": 1, "rejected": 0}])
    examples, report = make_examples([c], PREF)
    assert examples == [] and report.removed_ids == {"no_preference_example": ["e1"]}
    assert report.notes["identical_pairs_skipped"] == {"event_preference": 1}
