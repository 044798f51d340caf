"""Optional answers in the quality stage, as in resolution (hilt.review.aggregation):
a refresh after a refit decides over every review of the task, so an optional answer
few reviewers gave keeps a confidence scaled by their share; gold scoring and agreement
with final labels read a checklist left unticked as the empty selection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.events.ingest import ingest_events
from hilt.quality import CalibrationConfig
from hilt.quality.model_aggregator import ModelAggregationConfig
from hilt.quality.store import refresh_labels, reviewer_quality_report, task_aggregator
from hilt.review import work
from hilt.review.aggregation import AdjudicationPolicy, Answer
from hilt.review.queue import QueueConfig
from hilt.review.reviews import Submission
from hilt.review.rubric_spec import RubricSpec
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_gold_task, create_task
from hilt.review.workflow import work_queue
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import FinalLabelRow, ReviewTaskRow

T0 = datetime(2031, 3, 1, tzinfo=UTC)
RUBRIC: dict[str, Any] = {"id": "opt", "title": "Optional answers", "questions": [
    {"id": "tone", "kind": "single_choice", "prompt": "tone", "options": ["warm", "cold"],
     "required": False},
    {"id": "issues", "kind": "multi_choice", "prompt": "issues", "options": ["tone", "facts"],
     "required": False}]}
TONE = RubricSpec.model_validate(RUBRIC).questions[0]
# A split vote goes to an adjudicator only on a tie or a low confidence.
LENIENT = AdjudicationPolicy(mode="severity_at_or_above", severity="sev0")
NO_GOLD = QueueConfig(gold_rate=0.0, lease_seconds=600, resume_active=False)
REFIT = ModelAggregationConfig(min_reviewer_answers=1, min_confidence=0.0)
W, C = {"tone": "warm"}, {"tone": "cold"}


def _setup(engine: Engine, reviewers: list[str], *, status: str = "calibrated") -> None:
    with transaction(engine) as s:
        publish_rubric(s, RubricSpec.model_validate(RUBRIC), actor="lead")
        for rid in reviewers:
            add_reviewer(s, reviewer_id=rid, actor="lead")
            s.flush()
            s.get_one(ReviewerRow, rid).status = status


def _events(engine: Engine, n: int) -> list[str]:
    ids = [f"ev{i:05d}" for i in range(n)]
    ingest_events(engine, [{"id": e, "interaction": {"prompt": f"prompt {e}"},
                            "responses": [{"text": f"response {e}"}],
                            "context": {"policy_version": "pol-1", "consent": ["review"]}}
                           for e in ids], actor="service")
    return ids


def _review_all(engine: Engine, given: list[list[dict[str, Any]]],
                reviewers: list[str]) -> list[str]:
    """One production task per entry of ``given``, reviewed by ``reviewers`` with the
    answers listed for it (in reviewer order); the task ids."""
    with transaction(engine) as s:
        tids = [create_task(s, event_id=e, rubric="opt", actor="lead", severity="sev3",
                            overlap_k=len(reviewers), policy=LENIENT, now=T0)
                for e in _events(engine, len(given))]
    for rid in reviewers:
        for _ in tids:
            assert work.next_task(engine, rid, now=T0, config=NO_GOLD) is not None
    for tid, answers in zip(tids, given, strict=True):
        for rid, extra in zip(reviewers, answers, strict=True):
            work.submit(engine, tid, rid, Submission(dict(extra)), now=T0)
    return tids


def _label(engine: Engine, tid: str, question: str) -> tuple[Any, str, float, int]:
    with transaction(engine) as s:
        row = s.execute(sa.select(FinalLabelRow).where(
            FinalLabelRow.task_id == tid, FinalLabelRow.question_id == question)
        ).scalar_one()
        return row.value, row.provenance, row.confidence, len(row.review_ids)


def test_refresh_scales_an_optional_answer_by_the_whole_panel(engine: Engine) -> None:
    reviewers = ["a", "b", "c"]
    _setup(engine, reviewers)
    # Six tasks every reviewer answered (b wrong twice), for the model to learn from;
    # then: only a answered tone (b ticked an issue, c answered nothing), twice; and a
    # tone split between a and b beside c's empty review, a tie for the majority vote.
    warmup = [[W, W, W], [C, C, C], [W, C, W], [C, C, C], [W, W, W], [C, W, C]]
    alone = [W, {"issues": ["facts"]}, {}]
    tids = _review_all(engine, [*warmup, alone, alone, [W, C, {}]], reviewers)
    single, legacy, split = tids[-3:]
    assert _label(engine, single, "tone") == ("warm", "majority", pytest.approx(1 / 3), 1)
    with transaction(engine) as s:
        assert s.get_one(ReviewTaskRow, split).status == "needs_adjudication"
        # a label stored before abstentions counted: one answer made it unanimous
        s.execute(sa.update(FinalLabelRow).where(FinalLabelRow.task_id == legacy,
                                                 FinalLabelRow.question_id == "tone")
                  .values(provenance="unanimous", confidence=1.0))
    with transaction(engine) as s:
        result = refresh_labels(s, "opt", REFIT)
        model = task_aggregator(s, "opt", 1)
    assert [m["question_id"] for m in result.models] == ["tone"]
    alone_agg = model(TONE, [Answer("x", "a", "warm")])
    split_agg = model(TONE, [Answer("x", "a", "warm"), Answer("y", "b", "cold")])
    assert alone_agg is not None and split_agg is not None
    assert alone_agg.provenance == split_agg.provenance == "model_aggregated"
    # the posterior of one answer, scaled by the one reviewer of three who gave it
    for tid in (single, legacy):
        assert _label(engine, tid, "tone") == (
            "warm", "model_aggregated", pytest.approx(alone_agg.confidence / 3), 1)
    # the waiting task resolves over its three reviews, c's empty one included
    assert result.tasks_resolved == 1
    assert _label(engine, split, "tone") == (
        split_agg.value, "model_aggregated", pytest.approx(split_agg.confidence * 2 / 3), 2)
    assert _label(engine, split, "issues") == ([], "unanimous", 1.0, 3)


def _gold_task(engine: Engine, event_id: str, known: dict[str, Any]) -> str:
    with transaction(engine) as s:
        return create_gold_task(s, event_id=event_id, rubric="opt", answers=known,
                                actor="lead")


def test_an_unticked_gold_checklist_is_scored_as_the_empty_selection(
        engine: Engine) -> None:
    _setup(engine, ["r1"], status="onboarding")
    first, second = _events(engine, 2)
    # The first item's checklist is left out of the known answers: its gold is [].
    gold = {_gold_task(engine, first, W): W,
            _gold_task(engine, second, {"tone": "cold", "issues": ["facts"]}): C}
    # r1 answers the tone of both and ticks nothing: right on the first checklist,
    # wrong on the second.
    done = work_queue(engine, "r1", lambda view: Submission(dict(gold[view["task_id"]])),
                      config=NO_GOLD)
    assert done == 2
    with transaction(engine) as s:
        (row,) = [r for r in reviewer_quality_report(s, CalibrationConfig())
                  if r["reviewer"] == "r1"]
    assert (row["n_gold"], row["gold_correct"], row["n_gold_items"]) == (4, 3, 2)
    assert row["gold_accuracy"] == pytest.approx(0.75)
    assert row["gold_ci_low"] < 0.75 < row["gold_ci_high"]
    # the metrics snapshot scores gold the same way
    from hilt.ops.snapshot import quality_snapshot

    with transaction(engine) as s:
        snapshot = quality_snapshot(s, datetime.now(UTC))["reviewers"]["r1"]
    assert (snapshot["n_gold"], snapshot["n_gold_items"]) == (4, 2)
    assert snapshot["gold_accuracy"] == pytest.approx(0.75)


def test_agreement_with_final_labels_reads_an_unticked_checklist_as_empty(
        engine: Engine) -> None:
    reviewers = ["a", "b", "c"]
    _setup(engine, reviewers)
    # a ticked "facts", b and c ticked nothing: the label is [] by 2/3.
    (tid,) = _review_all(engine, [[{**W, "issues": ["facts"]}, W, W]], reviewers)
    assert _label(engine, tid, "issues") == ([], "majority", pytest.approx(2 / 3), 3)
    with transaction(engine) as s:
        rows = {r["reviewer"]: r for r in reviewer_quality_report(s, CalibrationConfig())}
    assert {r: (rows[r]["n_compared"], rows[r]["final_label_agreement"])
            for r in reviewers} == {"a": (2, 0.5), "b": (2, 1.0), "c": (2, 1.0)}
    assert rows["b"]["agreement_ci_low"] < 1.0
