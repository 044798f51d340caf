"""A preference pair whose replies differ only in personal data is removed once
redaction makes them equal, and counted."""

from __future__ import annotations

from typing import Any

from data_factories import make_candidate, make_label

from hilt.data.pipeline import handle_pii, make_examples, run_selection
from hilt.data.spec import parse_spec

PREF = {"chosen": 0, "rejected": 1}


def _spec(action: str = "redact") -> Any:
    return parse_spec({"name": "p", "kind": "preference", "pii": {"action": action},
                       "dedup": {"exact": False, "near": False}})


def _cands() -> list[Any]:
    return [
        # the replies differ only in the address: one text once redacted
        make_candidate("same", "Who do I write to about my order?",
                       ["Write to orders@shop.example.", "Write to help@shop.example."],
                       labels=[make_label("same", PREF)]),
        # an invisible character in one address changes nothing
        make_candidate("hidden", "Which number do I call?",
                       ["Call +1 415 555 0100 ", "Call +1 415\u200b555 0199"],
                       labels=[make_label("hidden", PREF)]),
        # the replies differ in more than the address: the pair stays, redacted
        make_candidate("differ", "How do I reach support?",
                       ["Mail support@shop.example and they reply in a day.",
                        "Mail bob@shop.example."],
                       labels=[make_label("differ", PREF)]),
    ]


def test_pairs_equal_after_redaction_are_removed_and_counted() -> None:
    examples, examples_report = make_examples(_cands(), _spec())
    assert examples_report.notes["examples"] == 3  # all differed before redaction
    kept, report = handle_pii(examples, _spec())
    assert [ex.event_id for ex in kept] == ["differ"]
    assert kept[0].chosen == "Mail [EMAIL] and they reply in a day."
    assert kept[0].rejected == "Mail [EMAIL]."
    assert report.reasons == {"pair_equal_after_redaction": 2}
    assert report.as_dict()["removed_ids"] == {"pair_equal_after_redaction": [
        "pref:hidden:helpful/pref:0-1", "pref:same:helpful/pref:0-1"]}
    assert report.notes["redacted"] == 1
    assert report.as_dict()["output"] == 1


def test_the_build_steps_report_them() -> None:
    result = run_selection(_cands(), _spec(), [])
    pii = next(s for s in result.steps if s.step == "pii")
    assert pii.reasons == {"pair_equal_after_redaction": 2}
    assert [ex.event_id for ex in result.examples] == ["differ"]
    assert all(ex.chosen != ex.rejected for ex in result.examples)


def test_excluding_counts_them_as_personal_data() -> None:
    result = run_selection(_cands(), _spec("exclude"), [])
    pii = next(s for s in result.steps if s.step == "pii")
    assert pii.reasons == {"pii:email": 2, "pii:phone": 1}
    assert result.examples == []
