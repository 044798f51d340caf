"""Preference pairs with an empty reply: an empty chosen reply is not made into a pair
(it would teach saying nothing), an empty rejected one is; both are counted."""

from __future__ import annotations

from typing import Any

from data_factories import make_candidate, make_label

from hilt.data.examples import EMPTY_CHOSEN_SKIPPED, EMPTY_REJECTED, candidate_examples
from hilt.data.spec import SelectionSpec

PREF = SelectionSpec(name="p", kind="preference")


def _examples(c: Any) -> tuple[list[tuple[str, str | None, str | None]],
                               dict[str, dict[str, int]], dict[str, int]]:
    empty: dict[str, dict[str, int]] = {}
    skipped: dict[str, int] = {}
    found = candidate_examples(c, PREF, skipped=skipped, empty=empty)
    return [(ex.key, ex.chosen, ex.rejected) for ex in found], empty, skipped


def test_an_empty_chosen_reply_makes_no_pair_and_is_counted() -> None:
    # as hh-1360 of the HH harmless pairs: nothing preferred to a harmful answer
    c = make_candidate("e1", "What is her home address?", ["", "Sure, the address is ..."],
                       labels=[make_label("e1", {"chosen": 0, "rejected": 1})])
    made, empty, skipped = _examples(c)
    assert made == []
    assert empty == {EMPTY_CHOSEN_SKIPPED: {"label_preference": 1}}
    assert skipped == {}


def test_white_space_alone_is_an_empty_reply() -> None:
    c = make_candidate("e1", "Say something", [" \n ", "Ok"],
                       feedback=[{"kind": "preference", "chosen": 0, "rejected": 1}])
    made, empty, _ = _examples(c)
    assert made == []
    assert empty == {EMPTY_CHOSEN_SKIPPED: {"event_preference": 1}}


def test_an_empty_rejected_reply_makes_a_pair_and_is_counted() -> None:
    c = make_candidate("e1", "Can you help me?", ["Ok", ""],
                       labels=[make_label("e1", {"chosen": 0, "rejected": 1})])
    made, empty, _ = _examples(c)
    assert made == [("pref:e1:helpful/pref:0-1", "Ok", "")]
    assert empty == {EMPTY_REJECTED: {"label_preference": 1}}


def test_a_ranking_keeps_the_pairs_without_an_empty_chosen_reply() -> None:
    c = make_candidate("e1", "Tell me a joke", ["A good joke", "", "A poor joke"],
                       labels=[make_label("e1", [0, 1, 2], kind="ranking", question="rank")])
    made, empty, _ = _examples(c)
    assert made == [("pref:e1:helpful/rank:0-1", "A good joke", ""),
                    ("pref:e1:helpful/rank:0-2", "A good joke", "A poor joke")]
    assert empty == {EMPTY_REJECTED: {"label_ranking": 1},
                     EMPTY_CHOSEN_SKIPPED: {"label_ranking": 1}}


def test_an_empty_edit_makes_no_pair_and_an_edit_of_an_empty_reply_does() -> None:
    c = make_candidate("e1", "Greet me", ["", "Hi"],
                       feedback=[{"kind": "edit", "response_index": 1, "text": ""},
                                 {"kind": "edit", "response_index": 0, "text": "Hello!"}])
    made, empty, _ = _examples(c)
    assert made == [("pref:e1:edit#1:0", "Hello!", "")]
    assert empty == {EMPTY_CHOSEN_SKIPPED: {"event_edit": 1},
                     EMPTY_REJECTED: {"event_edit": 1}}


def test_two_empty_replies_are_an_identical_pair_only() -> None:
    c = make_candidate("e1", "Anything?", ["", " "],
                       labels=[make_label("e1", {"chosen": 0, "rejected": 1})])
    made, empty, skipped = _examples(c)
    assert made == [] and empty == {}
    assert skipped == {"label_preference": 1}


def test_pairs_without_empty_replies_are_made_as_before() -> None:
    c = make_candidate("e1", "How do I boil an egg?", ["Ten minutes in water.", "No."],
                       labels=[make_label("e1", {"chosen": 0, "rejected": 1})])
    made, empty, skipped = _examples(c)
    assert made == [("pref:e1:helpful/pref:0-1", "Ten minutes in water.", "No.")]
    assert empty == {} and skipped == {}


def test_the_examples_step_reports_both_counts_and_drops_the_silent_candidate() -> None:
    from hilt.data.pipeline import make_examples

    cands = [make_candidate(ev, "Q", replies,
                            labels=[make_label(ev, {"chosen": 0, "rejected": 1})])
             for ev, replies in (("silent", ["", "Sure, it is ..."]),
                                 ("curt", ["Ok", ""]),
                                 ("plain", ["Ten minutes.", "No."]))]
    _, report = make_examples(cands, PREF)
    assert report.notes[EMPTY_CHOSEN_SKIPPED] == {"label_preference": 1}
    assert report.notes[EMPTY_REJECTED] == {"label_preference": 1}
    assert report.removed_ids == {"no_preference_example": ["silent"]}
    _, plain = make_examples(cands[2:], PREF)
    assert plain.notes == {"examples": 1}
