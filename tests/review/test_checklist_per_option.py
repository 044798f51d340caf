"""A checklist (multi-select) is decided option by option: the label holds the options
more than half of the panel ticked (an unticked submission counts as ``[]``), its
confidence is the weakest option's agreeing share, and an option ticked by exactly half
leaves the question to an adjudicator, who is told which option."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from hilt.review import work
from hilt.review.adjudication import adjudicate
from hilt.review.aggregation import (
    AdjudicationPolicy,
    Aggregate,
    Answer,
    decide,
    majority_aggregator,
)
from hilt.review.queue import QueueConfig
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubric_spec import Question, RubricSpec
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_task
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import add_reviewers, event, final_labels, ingest, spy_fast_resolutions

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NO_GOLD = QueueConfig(gold_rate=0.0, lease_seconds=600, resume_active=False)
# The rubric lists "tone" before "facts": not the order of a stored answer (sorted).
ISSUES = Question(id="issues", kind="multi_choice", prompt="problems?",
                  options=["tone", "facts", "length"], required=False)
# A 2–1 split on a single choice passes this policy (agreement 1/3), as in the
# simulator's rules; so does a checklist whose every option is decided 2–1 or better.
POLICY = AdjudicationPolicy(mode="agreement_below", min_agreement=0.3)


def _answers(*ticks: list[str]) -> list[Answer]:
    return [Answer(f"rv{i}", f"r{i}", list(t)) for i, t in enumerate(ticks)]


def _decide(*ticks: list[str], policy: AdjudicationPolicy = POLICY,
            panel: int | None = None) -> Any:
    members = None if panel is None else [Answer(f"rv{i}", f"r{i}", None)
                                          for i in range(panel)]
    (outcome,) = decide([ISSUES], {"issues": _answers(*ticks)}, 3, policy, panel=members)
    return outcome


def test_each_option_is_decided_by_the_panel_on_its_own() -> None:
    # No two reviewers gave the same selection, but two of three ticked each option.
    got = majority_aggregator(ISSUES, _answers(["tone"], ["facts", "tone"], ["facts"]))
    assert got == Aggregate(["facts", "tone"], pytest.approx(2 / 3), "majority")
    outcome = _decide(["tone"], ["facts", "tone"], ["facts"])
    assert outcome.aggregate == got and not outcome.adjudicate
    # the policy reads the agreement on the most contested option: a 2–1 split
    assert outcome.agreement == pytest.approx(1 / 3)
    assert _decide(["tone"], ["facts", "tone"], ["facts"],
                   policy=AdjudicationPolicy(mode="any_disagreement")).adjudicate


def test_confidence_is_the_weakest_options_agreeing_share() -> None:
    # tone 4 of 5, facts 2 of 5 (3 agree it is absent), length nobody
    got = majority_aggregator(ISSUES, _answers(["tone"], ["tone"], ["facts", "tone"],
                                               ["facts", "tone"], []))
    assert got == Aggregate(["tone"], pytest.approx(3 / 5), "majority")
    # each option ticked by one reviewer of three is rejected 2–1
    none = majority_aggregator(ISSUES, _answers(["tone"], ["facts"], ["length"]))
    assert none == Aggregate([], pytest.approx(2 / 3), "majority")


def test_unanimous_only_when_every_answer_is_the_same_selection() -> None:
    same = majority_aggregator(ISSUES, _answers(["facts", "tone"], ["tone", "facts"],
                                                ["facts", "tone"]))
    assert same == Aggregate(["facts", "tone"], 1.0, "unanimous")
    assert majority_aggregator(ISSUES, _answers([], [], [])) == Aggregate([], 1.0,
                                                                          "unanimous")
    almost = majority_aggregator(ISSUES, _answers(["tone"], ["tone"], ["tone", "length"]))
    assert almost == Aggregate(["tone"], pytest.approx(2 / 3), "majority")


def test_an_option_ticked_by_exactly_half_has_no_decision_and_is_named() -> None:
    assert majority_aggregator(ISSUES, _answers(["tone"], ["facts"])) is None
    outcome = _decide(["tone"], ["facts"])
    assert outcome.aggregate is None and outcome.adjudicate
    assert outcome.reason == "no majority on options 'tone', 'facts'"  # rubric order
    # four reviewers: tone is decided (3 of 4), facts is tied (2 of 4)
    outcome = _decide(["tone"], ["facts", "tone"], ["facts", "tone"], [])
    assert outcome.aggregate is None
    assert outcome.reason == "no majority on option 'facts'"


def test_an_unticked_submission_counts_as_the_empty_selection() -> None:
    # rv2 submitted without ticking: tone 2 of 3, facts 1 of 3
    outcome = _decide(["tone"], ["facts", "tone"], panel=3)
    assert outcome.aggregate == Aggregate(["tone"], pytest.approx(2 / 3), "majority")
    assert outcome.review_ids == ("rv0", "rv1", "rv2")
    # two of four ticked tone, the others nothing: tied on tone
    outcome = _decide(["tone"], ["tone"], panel=4)
    assert outcome.adjudicate and outcome.reason == "no majority on option 'tone'"


def test_the_label_is_in_the_form_of_a_stored_answer() -> None:
    """Whatever the rubric's order and the order reviewers ticked in, the label equals
    the stored answer of a reviewer who ticked exactly its options, so comparing
    answers with labels as wholes (reviewer agreement, gold scoring) holds."""
    got = majority_aggregator(ISSUES, _answers(["length", "tone"], ["tone", "length"],
                                               ["facts"]))
    assert got is not None and got.value == ["length", "tone"]
    assert got.value == ISSUES.check_answer(["tone", "length"], 1)


RUBRIC: dict[str, Any] = {"id": "checks", "title": "Checklist", "questions": [
    {"id": "verdict", "kind": "single_choice", "prompt": "ok?", "options": ["safe", "harmful"]},
    ISSUES.model_dump(mode="json")]}


def test_resolution_writes_the_per_option_label_on_both_paths(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = spy_fast_resolutions(monkeypatch)
    with transaction(engine) as s:
        publish_rubric(s, RubricSpec.model_validate(RUBRIC), actor="lead")
    ingest(engine, [event(i) for i in range(3)])
    reviewers = ["a", "b", "c"]
    add_reviewers(engine, reviewers)
    with transaction(engine) as s:
        tids = [create_task(s, event_id=f"ev{i:05d}", rubric="checks", actor="lead",
                            severity="sev3", overlap_k=3, policy=POLICY, now=T0)
                for i in range(3)]
    for rid in reviewers:
        for _ in tids:
            assert work.next_task(engine, rid, now=T0, config=NO_GOLD) is not None
    via_work, via_session, one_tick = tids
    ticks = [["tone"], ["facts", "tone"], ["facts"]]
    for rid, issues in zip(reviewers, ticks, strict=True):
        sub = Submission({"verdict": "safe", "issues": issues})
        work.submit(engine, via_work, rid, sub, now=T0)
        with transaction(engine) as s:
            submit_review(s, via_session, rid, sub, now=T0)
    # "a" ticks tone, "b" nothing, "c" leaves the checklist out: tone 1 of 3 is rejected
    for rid, extra in zip(reviewers, [{"issues": ["tone"]}, {"issues": []}, {}],
                          strict=True):
        work.submit(engine, one_tick, rid, Submission({"verdict": "safe", **extra}), now=T0)
    for tid in (via_work, via_session):
        assert final_labels(engine, tid) == {"verdict": ("safe", "unanimous", 1.0, 3),
                                        "issues": (["facts", "tone"], "majority",
                                                   round(2 / 3, 9), 3)}
    assert final_labels(engine, one_tick)["issues"] == ([], "majority", round(2 / 3, 9), 3)
    # On PostgreSQL the tasks submitted through work were resolved in one statement.
    assert fast == (["resolved"] * 2 if engine.dialect.name == "postgresql" else [])


def test_a_tied_option_goes_to_an_adjudicator_who_decides_the_checklist(
        engine: Engine) -> None:
    with transaction(engine) as s:
        publish_rubric(s, RubricSpec.model_validate(RUBRIC), actor="lead")
    ingest(engine, [event(1)])
    add_reviewers(engine, ["a", "b"])
    add_reviewers(engine, ["adj"], role="adjudicator")
    with transaction(engine) as s:
        tid = create_task(s, event_id="ev00001", rubric="checks", actor="lead",
                          severity="sev3", overlap_k=2, policy=POLICY, now=T0)
    for rid, issues in (("a", ["facts", "tone"]), ("b", ["tone"])):
        assert work.next_task(engine, rid, now=T0, config=NO_GOLD) is not None
        work.submit(engine, tid, rid, Submission({"verdict": "safe", "issues": issues}),
                    now=T0)
    with transaction(engine) as s:
        task = s.get_one(ReviewTaskRow, tid)
        assert task.status == "needs_adjudication"
        assert task.adjudication_reasons == {"issues": "no majority on option 'facts'"}
    with transaction(engine) as s:
        adjudicate(s, tid, "adj", answers={"issues": ["tone", "facts"]},
                   rationale="both problems are there", cause="reviewer_error", now=T0)
    assert final_labels(engine, tid) == {"verdict": ("safe", "unanimous", 1.0, 2),
                                    "issues": (["facts", "tone"], "adjudicated", 1.0, 2)}
