"""Optional questions some reviewers left unanswered: a checklist (multi-select) left
unticked selected nothing; any other judged question's missing answer is an abstention,
which scales the label's confidence and never makes it unanimous. SQLite, PostgreSQL's
one-statement resolution and the general path give the same labels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.review import work
from hilt.review.aggregation import AdjudicationPolicy, Answer, decide
from hilt.review.queue import QueueConfig
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubric_spec import Question, RubricSpec
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_gold_task, create_task
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import add_reviewers, event, final_labels, ingest, spy_fast_resolutions

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NO_GOLD_NEW = QueueConfig(gold_rate=0.0, lease_seconds=600, resume_active=False)

QUESTIONS: list[dict[str, Any]] = [
    {"id": "verdict", "kind": "single_choice", "prompt": "ok?", "options": ["safe", "harmful"]},
    {"id": "tone", "kind": "single_choice", "prompt": "tone", "options": ["warm", "cold"],
     "required": False},
    {"id": "score", "kind": "scale", "prompt": "how good", "min": 1, "max": 5,
     "required": False},
    {"id": "issues", "kind": "multi_choice", "prompt": "issues", "options": ["tone", "facts"],
     "required": False},
]
RUBRIC: dict[str, Any] = {"id": "opt", "title": "Optional answers", "questions": QUESTIONS}
# Only a tie or a low confidence among those who answered sends a sev3 task to an
# adjudicator under this policy, so that every case below resolves.
LENIENT = AdjudicationPolicy(mode="severity_at_or_above", severity="sev0")

# Three reviewers' answers beyond the verdict (all "safe"), and the labels expected:
# question -> (value, provenance, confidence, reviews it was decided over), or absent
# for no label.
CASES: dict[str, tuple[list[dict[str, Any]], dict[str, tuple[Any, str, float, int]]]] = {
    "all answered": (
        [{"tone": "warm", "score": 4, "issues": ["tone"]}] * 3,
        {"tone": ("warm", "unanimous", 1.0, 3), "score": (4.0, "unanimous", 1.0, 3),
         "issues": (["tone"], "unanimous", 1.0, 3)}),
    "some answered": (
        [{"tone": "warm", "score": 4, "issues": ["tone"]}, {"score": 4}, {}],
        {"tone": ("warm", "majority", 1 / 3, 1), "score": (4.0, "majority", 2 / 3, 2),
         "issues": ([], "majority", 2 / 3, 3)}),
    "none answered": (
        [{}, {}, {}],
        {"issues": ([], "unanimous", 1.0, 3)}),
}


def _q(**kw: Any) -> Question:
    return Question(prompt="p", **kw)


def test_one_tick_among_three_reviews_is_not_a_unanimous_label() -> None:
    issues = _q(id="issues", kind="multi_choice", options=["tone", "facts"], required=False)
    verdict = _q(id="verdict", kind="single_choice", options=["safe", "harmful"])
    answers = {"verdict": [Answer(f"rv{i}", f"r{i}", "safe") for i in range(3)],
               "issues": [Answer("rv0", "r0", ["tone"])]}
    by_id = {o.question_id: o for o in decide([verdict, issues], answers, 2,
                                               AdjudicationPolicy())}
    agg = by_id["issues"].aggregate
    assert agg is not None and (agg.value, agg.provenance) == ([], "majority")
    assert agg.confidence == pytest.approx(2 / 3)
    assert by_id["issues"].review_ids == ("rv0", "rv1", "rv2")
    # two reviewers selected nothing and one ticked "tone": that is a disagreement
    assert by_id["issues"].adjudicate and by_id["issues"].agreement == pytest.approx(1 / 3)


def test_an_abstention_scales_confidence_but_is_no_disagreement() -> None:
    tone = _q(id="tone", kind="single_choice", options=["warm", "cold"], required=False)
    verdict = _q(id="verdict", kind="single_choice", options=["safe", "harmful"])
    answers = {"verdict": [Answer(f"rv{i}", f"r{i}", "safe") for i in range(3)],
               "tone": [Answer("rv0", "r0", "warm")]}
    (_, out) = decide([verdict, tone], answers, 0, AdjudicationPolicy(mode="any_disagreement"))
    assert out.aggregate is not None and out.aggregate.provenance == "majority"
    assert out.aggregate.confidence == pytest.approx(1 / 3) and not out.adjudicate
    # a review that answered nothing still belongs to the panel when the caller says so
    panel = [Answer(f"rv{i}", f"r{i}", None) for i in range(4)]
    (_, out) = decide([verdict, tone], answers, 0, AdjudicationPolicy(), panel=panel)
    assert out.aggregate is not None and out.aggregate.confidence == pytest.approx(1 / 4)


def test_both_resolution_paths_label_optional_answers_alike(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = spy_fast_resolutions(monkeypatch)
    with transaction(engine) as s:
        publish_rubric(s, RubricSpec.model_validate(RUBRIC), actor="lead")
    n = 2 * len(CASES)
    ingest(engine, [event(i) for i in range(n)])
    with transaction(engine) as s:
        tids = [create_task(s, event_id=f"ev{i:05d}", rubric="opt", actor="lead",
                            severity="sev3", overlap_k=3, policy=LENIENT, now=T0)
                for i in range(n)]
    reviewers = ["a", "b", "c"]
    add_reviewers(engine, reviewers)
    for rid in reviewers:
        for _ in tids:
            assert work.next_task(engine, rid, now=T0, config=NO_GOLD_NEW) is not None
    pairs = list(zip(CASES.items(), zip(tids[::2], tids[1::2], strict=True), strict=True))
    for (_, (given, _)), (via_work, via_session) in pairs:
        for rid, extra in zip(reviewers, given, strict=True):
            sub = Submission({"verdict": "safe", **extra})
            work.submit(engine, via_work, rid, sub, now=T0)
            with transaction(engine) as s:
                submit_review(s, via_session, rid, sub, now=T0)
    for (name, (_, expected)), tasks in pairs:
        for tid in tasks:
            got = final_labels(engine, tid)
            assert got.pop("verdict") == ("safe", "unanimous", 1.0, 3), name
            want = {q: (v, p, round(c, 9), n) for q, (v, p, c, n) in expected.items()}
            assert got == want, (name, tid)
    with transaction(engine) as s:
        statuses = s.execute(sa.select(ReviewTaskRow.status).where(
            ReviewTaskRow.id.in_(tids))).scalars().all()
    assert set(statuses) == {"resolved"}
    # On PostgreSQL each work.submit task was resolved by the one-statement resolution.
    assert fast == (["resolved"] * len(CASES) if engine.dialect.name == "postgresql" else [])


def test_a_gold_item_without_ticks_knows_the_empty_selection(engine: Engine) -> None:
    with transaction(engine) as s:
        publish_rubric(s, RubricSpec.model_validate(RUBRIC), actor="lead")
    ingest(engine, [event(1)])
    with transaction(engine) as s:
        tid = create_gold_task(s, event_id="ev00001", rubric="opt", actor="lead",
                               answers={"verdict": "safe"})
        gold = s.get_one(ReviewTaskRow, tid).gold_answers
    assert gold == {"verdict": "safe", "issues": []}
    labels = final_labels(engine, tid)
    assert labels["issues"] == ([], "gold", 1.0, 0) and "tone" not in labels
