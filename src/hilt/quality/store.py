"""The database side of label quality: Dawid–Skene over the review store, the workflow's
aggregator, refreshing automatic labels after a refit, and (re-exported from
:mod:`hilt.quality.reviewer_store`) reviewer calibration.

**Fitting.** For every single-choice question of a rubric, :func:`fit_question_models`
fits one gold-anchored Dawid–Skene model (:class:`hilt.quality.DawidSkene`) over *all*
reviews of that question in the store — every task, gold tasks included, with gold
tasks clamped to their known answers — so each reviewer's confusion matrix is estimated
from all of their work. Rubric versions in which the question has exactly the same
options are pooled (the question means the same thing); a version that changed the
options gets a model of its own. Each fit is stored in ``quality_aggregation_models``
with the settings in force and audited (``quality.model_fit``).

**Resolving.** :func:`task_aggregator` is what the review workflow uses by default
(:func:`hilt.review.reviews.default_aggregator`): the latest stored model of each
question scores a task's answers (:class:`hilt.quality.model_aggregator.QuestionModel`),
provided each of the task's reviewers has at least ``min_reviewer_answers`` answers in
the fit; otherwise, and before any fit, majority vote. A posterior below
``min_confidence`` sends the question to adjudication.

**Refreshing.** :func:`refresh_labels` (run by ``hilt quality refresh`` or a scheduled
job) refits, then re-aggregates with the new models every task that is waiting for an
adjudicator or was resolved automatically (provenance ``unanimous``, ``majority`` or
``model_aggregated``). Labels set by an adjudicator, gold labels and labels propagated
to near-duplicates are never recomputed here (propagated copies follow their
representative). A waiting task that the model now decides confidently is resolved; a
resolved label whose value or provenance changes is updated in place (same label id)
with a ``label.refresh`` audit entry holding the old and new values; confidence-only
updates are listed in the run's ``quality.refresh`` entry; a resolved task whose label
now falls below the threshold goes back to adjudication (``reopen_low_confidence``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import canonical_json
from hilt.quality.answers import Answers
from hilt.quality.calibration import CalibrationConfig
from hilt.quality.dawid_skene import DawidSkene
from hilt.quality.model_aggregator import (
    MODEL_KINDS,
    ModelAggregationConfig,
    ModelAggregator,
    QuestionModel,
)
from hilt.quality.reviewer_store import (
    reviewer_quality_report,
    set_reviewer_status,
    update_reviewer_statuses,
)
from hilt.review.aggregation import (
    AdjudicationPolicy,
    Aggregator,
    Answer,
    decide,
    majority_aggregator,
)
from hilt.review.labels import finalize
from hilt.review.reviews import cached_spec, labels_from
from hilt.review.rubric_spec import RubricSpec
from hilt.review.tasks import new_id
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.quality import AggregationModelRow
from hilt.store.tables.review import (
    FinalLabelRow,
    ReviewRow,
    ReviewTaskRow,
    RubricVersionRow,
)

__all__ = [
    "AUTOMATIC_PROVENANCE",
    "QuestionGroup",
    "RefreshResult",
    "fit_question_models",
    "question_groups",
    "refresh_all",
    "refresh_labels",
    "reviewer_quality_report",
    "set_reviewer_status",
    "task_aggregator",
    "update_reviewer_statuses",
]

# Labels a refit may recompute: those no person decided.
AUTOMATIC_PROVENANCE = ("unanimous", "majority", "model_aggregated")
# Stored fits never change, so parsed models are cached by id.
_MODELS: dict[str, QuestionModel] = {}


@dataclass(frozen=True)
class QuestionGroup:
    """A single-choice question and the rubric versions in which it has these options."""

    question_id: str
    options: tuple[str, ...]
    versions: tuple[int, ...]


def question_groups(session: Session, rubric_id: str) -> list[QuestionGroup]:
    """The rubric's model-aggregated questions, grouped by identical options."""
    versions = session.execute(sa.select(RubricVersionRow.version).where(
        RubricVersionRow.rubric_id == rubric_id).order_by(RubricVersionRow.version)).scalars()
    grouped: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for version in versions:
        for q in cached_spec(session, rubric_id, version).questions:
            if q.kind in MODEL_KINDS:
                key = (q.id, tuple(o.value for o in q.options))
                grouped.setdefault(key, []).append(version)
    return [QuestionGroup(qid, options, tuple(vs)) for (qid, options), vs in grouped.items()]


@dataclass(frozen=True)
class _Review:
    id: str
    task_id: str
    reviewer_id: str
    rubric_version: int
    answers: dict[str, Any]
    confidence: float | None
    is_gold: bool
    gold_answers: dict[str, Any] | None


def _rubric_reviews(session: Session, rubric_id: str) -> list[_Review]:
    r, t = ReviewRow, ReviewTaskRow
    rows = session.execute(
        sa.select(r.id, r.task_id, r.reviewer_id, r.rubric_version, r.answers, r.confidence,
                  t.is_gold, t.gold_answers)
        .join(t, t.id == r.task_id).where(r.rubric_id == rubric_id)
        .order_by(r.submitted_at, r.id)).all()
    return [_Review(*row) for row in rows]


def _model_from_row(row: AggregationModelRow) -> QuestionModel:
    settings = ModelAggregationConfig.from_dict(row.config)
    return QuestionModel(
        model_id=row.id, classes=tuple(row.classes), reviewers=tuple(row.reviewers),
        confusion=np.asarray(row.confusion, dtype=np.float64).reshape(
            len(row.reviewers), len(row.classes), len(row.classes)),
        priors=np.asarray(row.priors, dtype=np.float64),
        reviewer_answers=np.asarray(row.reviewer_answers, dtype=np.int64),
        min_reviewer_answers=settings.min_reviewer_answers,
        min_confidence=settings.min_confidence)


def _fit_group(session: Session, rubric_id: str, group: QuestionGroup,
               reviews: Sequence[_Review], config: ModelAggregationConfig, *,
               actor: str, now: datetime) -> AggregationModelRow | None:
    """Fit and store one question's model; ``None`` when nobody answered it yet."""
    versions = set(group.versions)
    items, reviewers, labels = [], [], []
    gold: dict[str, str] = {}
    for review in reviews:
        if review.rubric_version not in versions or group.question_id not in review.answers:
            continue
        items.append(review.task_id)
        reviewers.append(review.reviewer_id)
        labels.append(review.answers[group.question_id])
        known = (review.gold_answers or {}).get(group.question_id)
        if review.is_gold and known is not None:
            gold[review.task_id] = known
    if not items:
        return None
    answers = Answers.from_columns(items, reviewers, labels, classes=group.options)
    model = DawidSkene(max_iter=config.max_iter, tol=config.tol,
                       correct_pseudocount=config.correct_pseudocount,
                       error_pseudocount=config.error_pseudocount,
                       prior_pseudocount=config.prior_pseudocount).fit(answers, gold=gold)
    # Σ over a reviewer's answers of the posterior of the label they gave: the model's
    # expected number of correct answers (exact on gold items, which are clamped).
    answered = model.probas_[answers.item_index, answers.label_index]
    expected = np.bincount(answers.reviewer_index, weights=answered,
                           minlength=answers.n_reviewers)
    counts = np.bincount(answers.reviewer_index, minlength=answers.n_reviewers)
    row = AggregationModelRow(
        id=new_id("qm"), rubric_id=rubric_id, question_id=group.question_id,
        rubric_versions=list(group.versions), method="dawid_skene",
        classes=list(group.options), reviewers=[str(r) for r in answers.reviewers],
        confusion=model.confusion_matrices_.tolist(), priors=model.priors_.tolist(),
        reviewer_answers=counts.tolist(), reviewer_expected_correct=expected.tolist(),
        n_items=answers.n_items, n_answers=answers.n_answers,
        n_gold_items=int(len(set(gold) & set(items))), n_iter=model.n_iter_,
        converged=bool(model.converged_), config=config.as_dict(), fitted_by=actor,
        fitted_at=now)
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="quality.model_fit",
                 entity_type="quality_model", entity_id=row.id,
                 payload={"rubric": rubric_id, "question": group.question_id,
                          "versions": list(group.versions), "n_items": row.n_items,
                          "n_answers": row.n_answers, "n_gold_items": row.n_gold_items,
                          "n_iter": row.n_iter, "converged": row.converged,
                          "config": row.config})
    return row


def fit_question_models(session: Session, rubric_id: str,
                        config: ModelAggregationConfig = ModelAggregationConfig(), *,
                        actor: str = "quality", now: datetime | None = None
                        ) -> list[tuple[QuestionGroup, QuestionModel]]:
    """Fit (and store) a Dawid–Skene model for every answered single-choice question."""
    return _fit_all(session, rubric_id, _rubric_reviews(session, rubric_id), config,
                    actor=actor, now=now or utcnow())


def _fit_all(session: Session, rubric_id: str, reviews: Sequence[_Review],
             config: ModelAggregationConfig, *, actor: str, now: datetime
             ) -> list[tuple[QuestionGroup, QuestionModel]]:
    fitted = []
    for group in question_groups(session, rubric_id):
        row = _fit_group(session, rubric_id, group, reviews, config, actor=actor, now=now)
        if row is not None:
            model = _model_from_row(row)
            _MODELS[row.id] = model
            fitted.append((group, model))
    return fitted


def task_aggregator(session: Session, rubric_id: str, rubric_version: int) -> Aggregator:
    """The aggregator for tasks under ``rubric_id@rubric_version``: the latest stored
    model of each single-choice question whose fit covers that version, majority vote
    for the rest (and everywhere when nothing has been fitted)."""
    m = AggregationModelRow
    models: dict[str, QuestionModel] = {}
    for q in cached_spec(session, rubric_id, rubric_version).questions:
        if q.kind not in MODEL_KINDS:
            continue
        recent = session.execute(
            sa.select(m.id, m.rubric_versions).where(m.rubric_id == rubric_id,
                                                     m.question_id == q.id)
            .order_by(m.fitted_at.desc(), m.id.desc()).limit(20)).all()
        model_id = next((mid for mid, versions in recent if rubric_version in versions), None)
        if model_id is None:
            continue
        if model_id not in _MODELS:
            _MODELS[model_id] = _model_from_row(session.get_one(m, model_id))
        models[q.id] = _MODELS[model_id]
    return ModelAggregator(models) if models else majority_aggregator


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


def _by_question(reviews: Sequence[_Review]) -> dict[str, dict[str, list[Answer]]]:
    grouped: dict[str, dict[str, list[Answer]]] = {}
    for r in reviews:
        if r.is_gold:
            continue
        task = grouped.setdefault(r.task_id, {})
        for qid, value in r.answers.items():
            task.setdefault(qid, []).append(Answer(r.id, r.reviewer_id, value, r.confidence))
    return grouped


def refresh_labels(session: Session, rubric_id: str,
                   config: ModelAggregationConfig = ModelAggregationConfig(), *,
                   now: datetime | None = None, actor: str = "quality") -> RefreshResult:
    """Refit the rubric's models and re-aggregate waiting and automatically resolved
    tasks with them (see the module docstring for what may change)."""
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
    answers = _by_question(reviews)
    t, f = ReviewTaskRow, FinalLabelRow
    tasks = session.execute(sa.select(t).where(
        t.rubric_id == rubric_id, t.is_gold.is_(False),
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
        given = answers.get(task.id, {})
        if task.status == "needs_adjudication":
            result.tasks_resolved += _retry_waiting(session, task, spec, given,
                                                    aggregators[version], now, actor)
        else:
            _refresh_resolved(session, task, spec, given, aggregators[version], labels,
                              config, result, confidence_updates, now, actor)
    audit.append(session, actor=actor, action="quality.refresh", entity_type="rubric",
                 entity_id=rubric_id,
                 payload={**{k: v for k, v in result.as_dict().items() if k != "rubric_id"},
                          "confidence_updates": confidence_updates})
    return result


def _retry_waiting(session: Session, task: ReviewTaskRow, spec: RubricSpec,
                   given: dict[str, list[Answer]], aggregator: Aggregator, now: datetime,
                   actor: str) -> int:
    """Resolve a task waiting for an adjudicator if the refitted model now decides it."""
    policy = AdjudicationPolicy.model_validate(task.policy or {})
    outcomes = decide(spec.questions, given, task.severity, policy, aggregator)
    if any(o.adjudicate for o in outcomes):
        return 0
    finalize(session, task, labels_from(spec, outcomes, given), now=now, actor=actor)
    task.adjudication_reasons = None
    return 1


def _refresh_resolved(session: Session, task: ReviewTaskRow, spec: RubricSpec,
                      given: dict[str, list[Answer]], aggregator: ModelAggregator,
                      labels: dict[tuple[str, str], FinalLabelRow],
                      config: ModelAggregationConfig, result: RefreshResult,
                      confidence_updates: list[list[Any]], now: datetime, actor: str) -> None:
    policy = AdjudicationPolicy.model_validate(task.policy or {})
    reopen: dict[str, str] = {}
    for q in spec.questions:
        row = labels.get((task.id, q.id))
        if q.id not in aggregator.models or row is None or \
                row.provenance not in AUTOMATIC_PROVENANCE or not given.get(q.id):
            continue
        (outcome,) = decide([q], {q.id: given[q.id]}, task.severity, policy, aggregator)
        if outcome.adjudicate or outcome.aggregate is None:
            reopen[q.id] = f"after model refit: {outcome.reason}"
            continue
        new = outcome.aggregate
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
