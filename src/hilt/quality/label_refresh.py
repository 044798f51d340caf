"""Refreshing labels after a refit: re-aggregate the tasks waiting for an adjudicator and
the automatically resolved ones with the new models (see :mod:`hilt.quality.store`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import canonical_json
from hilt.quality.aggregation_store import _fit_all, _Review, _rubric_reviews
from hilt.quality.calibration import CalibrationConfig
from hilt.quality.model_aggregator import ModelAggregationConfig, ModelAggregator
from hilt.quality.reviewer_store import update_reviewer_statuses
from hilt.review.aggregation import (
    AdjudicationPolicy,
    Aggregate,
    Aggregator,
    Answer,
    answer_key,
    decide,
)
from hilt.review.labels import finalize
from hilt.review.reviews import answers_by_question, cached_spec, labels_from
from hilt.review.rubric_spec import RubricSpec
from hilt.review.rubrics import get_version
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import AdjudicationRow, FinalLabelRow, ReviewRow, ReviewTaskRow

# Labels a refit may recompute: those no person decided.
AUTOMATIC_PROVENANCE = ("unanimous", "majority", "model_aggregated")


@dataclass
class RefreshResult:
    """What :func:`refresh_labels` did."""

    rubric_id: str
    models: list[dict[str, Any]] = field(default_factory=list)
    labels_changed: int = 0
    confidences_updated: int = 0
    tasks_resolved: int = 0
    tasks_reopened: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _by_task(reviews: Sequence[_Review]
             ) -> dict[str, tuple[list[Answer], dict[str, list[Answer]]]]:
    """Per production task: its panel (one entry per review, a review that answered no
    question included, as at resolution: see :func:`hilt.review.aggregation.decide`) and
    every question's answers, in submission order."""
    rows: dict[str, list[tuple[str, str, dict[str, Any], float | None]]] = {}
    for r in reviews:
        if not r.is_gold:
            rows.setdefault(r.task_id, []).append((r.id, r.reviewer_id, r.answers,
                                                   r.confidence))
    return {task: answers_by_question(given) for task, given in rows.items()}


def refresh_labels(session: Session, rubric_id: str,
                   config: ModelAggregationConfig = ModelAggregationConfig(), *,
                   now: datetime | None = None, actor: str = "quality") -> RefreshResult:
    """Refit the rubric's models and re-aggregate waiting and automatically resolved
    tasks with them (see the module docstring for what may change). Raises
    :class:`hilt.errors.NotFound` when no version of the rubric is published."""
    # An unknown rubric id (a typo) would otherwise refit nothing and report success.
    get_version(session, rubric_id)
    now = now or utcnow()
    result = RefreshResult(rubric_id)
    reviews = _rubric_reviews(session, rubric_id)
    fitted = _fit_all(session, rubric_id, reviews, config, actor=actor, now=now)
    for group, model in fitted:
        result.models.append({"question_id": group.question_id, "model_id": model.model_id,
                              "versions": list(group.versions),
                              "n_reviewers": len(model.reviewers)})
    if not fitted:
        return result
    answers = _by_task(reviews)
    t, f = ReviewTaskRow, FinalLabelRow
    # A task an adjudicator has decided is settled: its labels stand even where the
    # adjudicator left a question to the model (one adjudication per task).
    decided = sa.exists().where(AdjudicationRow.task_id == t.id)
    # An erased event's task is left alone: reopening it would wait for an adjudication
    # that erasure refuses, and its labels no longer feed anything.
    erased = sa.exists().where(EventRow.id == t.event_id, EventRow.erased_at.is_not(None))
    tasks = session.execute(sa.select(t).where(
        t.rubric_id == rubric_id, t.is_gold.is_(False), ~decided, ~erased,
        t.status.in_(("resolved", "needs_adjudication"))).order_by(t.id)).scalars().all()
    labels = {(row.task_id, row.question_id): row for row in session.execute(
        sa.select(f).where(f.rubric_id == rubric_id, f.source_task_id.is_(None))).scalars()}
    aggregators: dict[int, ModelAggregator] = {}
    confidence_updates: list[list[Any]] = []
    for task in tasks:
        version = task.rubric_version
        if version not in aggregators:
            aggregators[version] = ModelAggregator(
                {g.question_id: mdl for g, mdl in fitted if version in g.versions})
        spec = cached_spec(session, rubric_id, version)
        panel, given = answers.get(task.id, ([], {}))
        if task.status == "needs_adjudication":
            result.tasks_resolved += _retry_waiting(session, task, spec, given, panel,
                                                    aggregators[version], now, actor,
                                                    result)
        else:
            _refresh_resolved(session, task, spec, given, panel, aggregators[version],
                              labels, config, result, confidence_updates, now, actor)
    audit.append(session, actor=actor, action="quality.refresh", entity_type="rubric",
                 entity_id=rubric_id,
                 payload={**{k: v for k, v in result.as_dict().items() if k != "rubric_id"},
                          "confidence_updates": confidence_updates})
    return result


def _retry_waiting(session: Session, task: ReviewTaskRow, spec: RubricSpec,
                   given: dict[str, list[Answer]], panel: Sequence[Answer],
                   aggregator: Aggregator, now: datetime, actor: str,
                   result: RefreshResult) -> int:
    """Resolve a task waiting for an adjudicator if the refitted model now decides it.

    The task is decided over all of its reviews, as at resolution: a review that
    answered nothing still scales the confidence of the optional answers others gave.

    A task an earlier refresh reopened still has its labels; where this resolution
    changes one, the change is audited (``label.refresh``, old and new) and counted, as
    for a resolved task."""
    policy = AdjudicationPolicy.model_validate(task.policy or {})
    outcomes = decide(spec.questions, given, task.severity, policy, aggregator,
                      panel=panel)
    if any(o.adjudicate for o in outcomes):
        return 0
    f = FinalLabelRow
    own = (f.task_id == task.id, f.source_task_id.is_(None))
    before = {row.question_id: {"value": row.value, "provenance": row.provenance,
                                "confidence": row.confidence}
              for row in session.execute(sa.select(f).where(*own)).scalars()}
    finalize(session, task, labels_from(spec, outcomes, given), now=now, actor=actor)
    task.adjudication_reasons = None
    session.flush()
    models = getattr(aggregator, "models", {})
    # populate_existing: the rows read above are in the session; finalize updated them
    # with statements, and the comparison must see the stored values
    for row in session.execute(sa.select(f).where(*own).execution_options(
            populate_existing=True)).scalars():
        old = before.get(row.question_id)
        if old is None or (canonical_json(old["value"]) == canonical_json(row.value)
                           and old["provenance"] == row.provenance):
            continue
        result.labels_changed += 1
        model = models.get(row.question_id)
        audit.append(session, actor=actor, action="label.refresh",
                     entity_type="final_label", entity_id=row.id,
                     payload={"task": task.id, "question": row.question_id, "old": old,
                              "new": {"value": row.value, "provenance": row.provenance,
                                      "confidence": row.confidence},
                              "model": model.model_id if model is not None else None})
    return 1


def _refresh_resolved(session: Session, task: ReviewTaskRow, spec: RubricSpec,
                      given: dict[str, list[Answer]], panel: Sequence[Answer],
                      aggregator: ModelAggregator,
                      labels: dict[tuple[str, str], FinalLabelRow],
                      config: ModelAggregationConfig, result: RefreshResult,
                      confidence_updates: list[list[Any]], now: datetime, actor: str) -> None:
    """Re-aggregate the automatic labels of a resolved task's model-aggregated questions.

    Each question is decided over the task's whole panel, as at resolution: an optional
    answer that only some reviewers gave keeps its confidence scaled by their share, so
    a refit does not turn one reviewer's answer into a confident label."""
    policy = AdjudicationPolicy.model_validate(task.policy or {})
    reopen: dict[str, str] = {}
    for q in spec.questions:
        row = labels.get((task.id, q.id))
        # Models are fitted for single choices only (never a checklist, whose unticked
        # answers decide() would fill in); one that nobody answered has no label.
        if q.id not in aggregator.models or row is None or \
                row.provenance not in AUTOMATIC_PROVENANCE or not given.get(q.id):
            continue
        (outcome,) = decide([q], {q.id: given[q.id]}, task.severity, policy, aggregator,
                            panel=panel)
        if outcome.adjudicate or outcome.aggregate is None:
            reopen[q.id] = f"after model refit: {outcome.reason}"
            continue
        new = _kept_unanimous(row, outcome.aggregate, given[q.id], len(panel))
        if canonical_json(new.value) != canonical_json(row.value) or \
                new.provenance != row.provenance:
            old = {"value": row.value, "provenance": row.provenance,
                   "confidence": row.confidence}
            _set_label(session, row, new.value, new.confidence, new.provenance, now)
            result.labels_changed += 1
            audit.append(session, actor=actor, action="label.refresh",
                         entity_type="final_label", entity_id=row.id,
                         payload={"task": task.id, "question": q.id, "old": old,
                                  "new": {"value": new.value, "provenance": new.provenance,
                                          "confidence": new.confidence},
                                  "model": aggregator.models[q.id].model_id})
        elif abs(new.confidence - row.confidence) > 1e-9:
            confidence_updates.append([row.id, row.confidence, new.confidence])
            _set_label(session, row, row.value, new.confidence, row.provenance, now)
            result.confidences_updated += 1
    if reopen and config.reopen_low_confidence:
        task.status = "needs_adjudication"
        task.adjudication_reasons = reopen
        result.tasks_reopened += 1
        audit.append(session, actor=actor, action="task.needs_adjudication",
                     entity_type="review_task", entity_id=task.id,
                     payload={"reasons": reopen, "cause": "model refit"})


def _kept_unanimous(row: FinalLabelRow, new: Aggregate, answers: Sequence[Answer],
                    reviewers: int) -> Aggregate:
    """A unanimous label stays unanimous when the model keeps its value.

    Every reviewer gave that answer, and that is what ``unanimous`` says; the model only
    re-weighs how sure the label is. Renaming it ``model_aggregated`` would drop it from
    dataset specs that select agreed labels (``provenance: [unanimous, ...]``) though
    nothing about the answers changed. A label some of the ``reviewers`` abstained from
    is not unanimous (a label stored as such before abstentions counted loses it)."""
    agreed = len(answers) >= reviewers and \
        {answer_key(a.value) for a in answers} == {answer_key(row.value)}
    if row.provenance == "unanimous" and agreed and \
            canonical_json(new.value) == canonical_json(row.value):
        return Aggregate(row.value, new.confidence, "unanimous", new.min_confidence)
    return new


def _set_label(session: Session, row: FinalLabelRow, value: Any, confidence: float,
               provenance: str, now: datetime) -> None:
    row.value, row.confidence, row.provenance, row.decided_at = value, confidence, \
        provenance, now
    f = FinalLabelRow
    session.execute(sa.update(f).where(f.source_task_id == row.task_id,
                                       f.question_id == row.question_id)
                    .values(value=value, confidence=confidence, decided_at=now))


def refresh_all(session: Session, *, config: ModelAggregationConfig = ModelAggregationConfig(),
                calibration: CalibrationConfig = CalibrationConfig(),
                now: datetime | None = None, actor: str = "quality") -> dict[str, Any]:
    """Refit and refresh every rubric with reviews, then update reviewer statuses."""
    now = now or utcnow()
    rubrics = session.execute(sa.select(ReviewRow.rubric_id).distinct()
                              .order_by(ReviewRow.rubric_id)).scalars().all()
    refreshed = [refresh_labels(session, rubric, config, now=now, actor=actor).as_dict()
                 for rubric in rubrics]
    changes = update_reviewer_statuses(session, calibration, now=now,
                                       actor=actor)
    return {"rubrics": refreshed, "status_changes": changes}
