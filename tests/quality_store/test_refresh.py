"""The Dawid–Skene aggregator in the workflow: resolution with the stored model, refresh
after a refit, and what a refresh may never touch."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.access import add_reviewer
from hilt.quality.model_aggregator import ModelAggregationConfig
from hilt.quality.store import latest_models, refresh_labels, task_aggregator
from hilt.review.aggregation import AdjudicationPolicy, majority_aggregator
from hilt.review.queue import QueueConfig
from hilt.review.tasks import insert_tasks, task_row
from hilt.review.workflow import adjudicate_all, work_round_robin
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow
from hilt.store.tables.quality import AggregationModelRow
from hilt.store.tables.review import FinalLabelRow, ReviewTaskRow

from .helpers import CLASSES, POOL, T0, Operation, setup_operation

FIT = ModelAggregationConfig(min_reviewer_answers=5)
SMALL_POOL = tuple(p for p in POOL if p.name in ("rev-ada", "rev-ben", "rev-eli", "rev-fox"))
REVIEWERS = [p.name for p in SMALL_POOL]


def _labels(engine: Engine) -> dict[str, tuple[str, str, str, float]]:
    """task id -> (label id, value, provenance, confidence) of the verdict question."""
    f = FinalLabelRow
    with transaction(engine) as s:
        return {t: (i, v, p, c) for t, i, v, p, c in s.execute(
            sa.select(f.task_id, f.id, f.value, f.provenance, f.confidence)
            .where(f.question_id == "verdict"))}


def _add_lead(engine: Engine) -> None:
    """The identity that adjudicates (adjudication needs an adjudicator or lead)."""
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lead", role="lead", actor="test")


def _work(engine: Engine, op: Operation) -> None:
    random.seed(1)
    work_round_robin(engine, REVIEWERS, op.answer, config=QueueConfig(gold_rate=0.3))


def test_resolution_uses_the_stored_model_once_fitted(engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=24, n_gold=6, seed=3, pool=SMALL_POOL)
    with transaction(engine) as s:
        assert task_aggregator(s, "verdicts", 1) is majority_aggregator  # nothing fitted
    _work(engine, op)
    assert {p for _, _, p, _ in _labels(engine).values()} <= {"unanimous", "majority", "gold"}
    with transaction(engine) as s:
        result = refresh_labels(s, "verdicts", FIT, actor="scheduler")
        (model,) = latest_models(s, "verdicts")
        # Written in this transaction: on PostgreSQL still pending, entries() shows them.
        fits = [e.entity_id for e in audit.entries(s, action="quality.model_fit")]
    assert fits == [model["model_id"]] == [result.models[0]["model_id"]]
    assert model["n_items"] == 30 and model["n_gold_items"] == 6 and model["converged"]
    assert {r["reviewer"] for r in model["reviewers"]} == set(REVIEWERS)
    # New tasks are now resolved by the model when their reviewers are known to it.
    with transaction(engine) as s:
        rows = [task_row(event_id=f"ev{i:05d}", pool="default", severity=2,
                         rubric_id="verdicts", rubric_version=1, overlap_k=3, now=T0)
                for i in range(24)]  # the same items again, as new tasks
        insert_tasks(s, rows, actor="lead", action="task.create", payload={"rule": "t"})
    random.seed(2)
    work_round_robin(engine, REVIEWERS, op.answer, config=QueueConfig(gold_rate=0.0))
    new = {r["id"] for r in rows}
    provenance = {lbl[2] for t, lbl in _labels(engine).items() if t in new}
    assert provenance == {"model_aggregated"}
    with transaction(engine) as s:
        waiting = s.execute(sa.select(ReviewTaskRow.adjudication_reasons).where(
            ReviewTaskRow.id.in_(new), ReviewTaskRow.status == "needs_adjudication")
        ).scalars().all()
    # Only low posteriors wait for an adjudicator, never a mere disagreement.
    assert all(reason["verdict"].startswith("confidence") for reason in waiting)


def test_refresh_rewrites_only_automatic_labels(engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=24, n_gold=6, seed=4, pool=SMALL_POOL)
    _work(engine, op)

    def contrary(case: dict) -> tuple[dict, str, str]:
        # A deliberately unusual decision, so that any overwrite would show.
        truth = op.truth[case["item"]["event_id"]]
        return {"verdict": CLASSES[(truth + 1) % 3]}, "house rule", "subjective"

    _add_lead(engine)
    adjudicate_all(engine, "lead", contrary)
    before = _labels(engine)
    adjudicated = {t: v for t, v in before.items() if v[2] == "adjudicated"}
    gold = {t: v for t, v in before.items() if v[2] == "gold"}
    assert adjudicated and gold
    with transaction(engine) as s:
        result = refresh_labels(s, "verdicts", ModelAggregationConfig(
            min_reviewer_answers=5, min_confidence=0.0))
    after = _labels(engine)
    assert {t: after[t] for t in adjudicated} == adjudicated
    assert {t: after[t] for t in gold} == gold
    assert set(after) == set(before)  # same label rows, ids kept
    assert all(after[t][0] == before[t][0] for t in before)
    changed = [t for t in before if before[t][1:3] != after[t][1:3]]
    assert len(changed) == result.labels_changed
    # the automatic labels were refreshed (unanimous ones keep their value and provenance)
    assert result.labels_changed + result.confidences_updated > 0
    with transaction(engine) as s:
        entries = [(e.entity_id, e.payload)
                   for e in audit.entries(s, action="label.refresh", limit=1000)]
        assert audit.verify(s).ok
    assert {e for e, _ in entries} == {before[t][0] for t in changed}
    for _, payload in entries:
        assert payload["old"]["provenance"] in ("unanimous", "majority")
        assert payload["new"]["provenance"] == "model_aggregated"


def test_refresh_keeps_unanimous_labels_unanimous(engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=24, n_gold=6, seed=4, pool=SMALL_POOL)
    _work(engine, op)
    before = _labels(engine)
    unanimous = {t for t, v in before.items() if v[2] == "unanimous"}
    assert unanimous
    with transaction(engine) as s:
        refresh_labels(s, "verdicts", ModelAggregationConfig(
            min_reviewer_answers=5, min_confidence=0.0))
    after = _labels(engine)
    kept = {t for t in unanimous if after[t][1] == before[t][1]}
    assert kept
    # every reviewer agreed and the model kept the value: only the confidence moves
    assert {after[t][2] for t in kept} == {"unanimous"}
    assert any(after[t][3] < 1.0 for t in kept)


def test_low_confidence_after_refit_goes_back_to_adjudication(engine: Engine) -> None:
    # 2–1 splits resolve by majority (pairwise agreement 1/3 ≥ 0.3): labels a strict
    # model threshold will not accept.
    op = setup_operation(engine, n_tasks=20, n_gold=6, seed=6, pool=SMALL_POOL,
                         policy=AdjudicationPolicy(min_agreement=0.3))
    _work(engine, op)
    _add_lead(engine)
    adjudicate_all(engine, "lead", op.decide)
    before = _labels(engine)
    with transaction(engine) as s:
        strict = ModelAggregationConfig(min_reviewer_answers=5, min_confidence=0.999)
        result = refresh_labels(s, "verdicts", strict)
        reopened = s.execute(sa.select(ReviewTaskRow.id).where(
            ReviewTaskRow.status == "needs_adjudication")).scalars().all()
    assert result.tasks_reopened == len(reopened) > 0
    assert adjudicate_all(engine, "lead", op.decide) == len(reopened)
    after = _labels(engine)
    for task in reopened:  # decided again: same label row, now adjudicated
        assert after[task][0] == before[task][0] and after[task][2] == "adjudicated"
    # A refit with a lenient threshold resolves nothing that a person decided.
    with transaction(engine) as s:
        again = refresh_labels(s, "verdicts", FIT)
        assert s.execute(sa.select(sa.func.count()).select_from(AggregationModelRow)
                         ).scalar_one() == 2
    assert again.tasks_reopened == 0
    assert all(_labels(engine)[t][2] == "adjudicated" for t in reopened)


def test_a_reopened_task_resolved_by_a_later_refresh_audits_its_label_changes(
        engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=30, n_gold=6, seed=4, pool=SMALL_POOL,
                         policy=AdjudicationPolicy(min_agreement=0.3))
    _work(engine, op)
    before = _labels(engine)
    with transaction(engine) as s:
        strict = ModelAggregationConfig(min_reviewer_answers=5, min_confidence=0.999)
        assert refresh_labels(s, "verdicts", strict).tasks_reopened > 0
    reopened_labels = _labels(engine)
    with transaction(engine) as s:
        lenient = refresh_labels(s, "verdicts",
                                 ModelAggregationConfig(min_reviewer_answers=5,
                                                        min_confidence=0.0))
        audited = {e.entity_id: e.payload for e in audit.entries(
            s, action="label.refresh", limit=10_000)}
    assert lenient.tasks_resolved > 0
    after = _labels(engine)
    changed = [t for t in after if t in reopened_labels
               and after[t][1:3] != reopened_labels[t][1:3]]
    assert changed  # the lenient refresh did change labels of the reopened tasks
    assert lenient.labels_changed >= len(changed)
    for task in changed:
        label_id = after[task][0]
        assert label_id in audited
        assert audited[label_id]["old"]["value"] == reopened_labels[task][1]
        assert audited[label_id]["new"]["value"] == after[task][1]
    assert set(before) <= set(after)  # no label row lost (waiting tasks gained some)


def test_refresh_leaves_the_tasks_of_erased_events_alone(engine: Engine) -> None:
    op = setup_operation(engine, n_tasks=20, n_gold=6, seed=6, pool=SMALL_POOL,
                         policy=AdjudicationPolicy(min_agreement=0.3))
    _work(engine, op)
    _add_lead(engine)
    adjudicate_all(engine, "lead", op.decide)
    strict = ModelAggregationConfig(min_reviewer_answers=5, min_confidence=0.999)
    # Which tasks a strict refit reopens, measured on a rolled-back transaction.
    with engine.connect() as conn:
        trial = conn.begin()
        s = Session(bind=conn)
        refresh_labels(s, "verdicts", strict)
        would_reopen = s.execute(sa.select(ReviewTaskRow.id, ReviewTaskRow.event_id).where(
            ReviewTaskRow.status == "needs_adjudication")).all()
        s.close()
        trial.rollback()
    assert would_reopen
    erased = {event for _, event in would_reopen}
    with transaction(engine) as s:
        s.execute(sa.update(EventRow).where(EventRow.id.in_(erased))
                  .values(erased_at=datetime(2026, 1, 1, tzinfo=UTC)))
    with transaction(engine) as s:
        result = refresh_labels(s, "verdicts", strict)
        reopened = s.execute(sa.select(ReviewTaskRow.event_id).where(
            ReviewTaskRow.status == "needs_adjudication")).scalars().all()
    assert not erased & set(reopened)
    assert result.tasks_reopened == len(reopened)
