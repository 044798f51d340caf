"""Reviewer calibration over the review store: the per-reviewer report and status updates.

Per reviewer, from the store:

- **gold accuracy**: share of gold answers equal to the known answer (one outcome per gold
  question answered; a checklist the reviewer left unticked was answered with the empty
  selection, ``[]``, as in aggregation (:func:`hilt.review.aggregation.decide`), and is
  scored against the gold item's known ``[]`` or ticks), with an item-level Wilson
  interval over the gold tasks (:func:`hilt.quality.calibration.item_wilson_interval`:
  the answers to the questions of one gold task are correlated, so the task is the
  unit; ``n_gold_items`` counts them);
- **agreement with final labels**: share of the reviewer's answers to judged questions of
  resolved production tasks that equal the task's final label (adjudicated, majority or
  model labels; gold and propagated labels excluded; an unticked checklist compared as
  ``[]``), with a Wilson interval. The reviewer's own answer took part in most of these
  labels, so this is optimistic for everybody; it is useful for comparing reviewers, not
  as an accuracy;
- **model accuracy**: the Dawid–Skene estimate from the latest fit of each rubric question
  (:mod:`hilt.quality.store`): the expected share of correct answers,
  ``Σ_answers T_{i, l} / n`` with ``T`` the posterior, pooled over questions, with a Wilson
  interval on that expected count
  (:func:`hilt.quality.calibration.expected_count_interval`);
- **status** from the status machine (:func:`hilt.quality.calibration.replay_status`,
  whose onboarding and probation rounds count gold tasks and are judged on the share of
  their right gold answers, and fail when one gold question is clearly below the bar on
  its own; its rolling window counts gold tasks too) and the CUSUM trend flag
  (:mod:`hilt.quality.trend`).

**Status baselines.** The status machine replays a reviewer's gold answers from a
baseline: the latest manual change (:func:`set_reviewer_status`, e.g. reinstating a
suspended reviewer; only gold answers from then on count), or else the status the
reviewer had when status tracking first saw them (an ``initial`` entry, replaying all
gold answers). :func:`update_reviewer_statuses` writes every status the replay changes to
``reviewers.status`` — which the assignment step obeys
(:func:`hilt.review.eligibility.eligible_work`) — with a history entry in
``quality_reviewer_status`` and a ``reviewer.status`` audit entry. A reviewer who may no
longer take work (suspended), by either path, loses their active leases at once
(:func:`hilt.review.queue.end_reviewer_leases`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import canonical_json
from hilt.errors import InputError, NotFound
from hilt.quality.aggregation_store import row_values
from hilt.quality.calibration import (
    CalibrationConfig,
    ReviewerStatus,
    expected_count_interval,
)
from hilt.quality.reviewers import ReviewerReportRow, ReviewRecord, reviewer_report
from hilt.quality.stored_model import check_stored_model
from hilt.review.reviews import cached_spec
from hilt.review.rubric_spec import AGGREGATED_KINDS
from hilt.review.tasks import new_id
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.quality import AggregationModelRow, ReviewerStatusChangeRow
from hilt.store.tables.review import FinalLabelRow, ReviewRow, ReviewTaskRow

# Replay every gold answer from an initial baseline.
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def _records(session: Session) -> list[ReviewRecord]:
    """One record per non-gold review and one per (gold review, gold question answered);
    the gold task is the record's unit (its questions are answered together) and the
    gold question its question. A gold checklist the reviewer left unticked is answered
    with ``[]``: the reviewer submitted the item and selected nothing, which is right
    when the known answer is ``[]`` and wrong when it has ticks."""
    r, t = ReviewRow, ReviewTaskRow
    rows = session.execute(
        sa.select(r.reviewer_id, r.task_id, r.answers, r.submitted_at, t.is_gold,
                  t.gold_answers, t.rubric_id, t.rubric_version)
        .join(t, t.id == r.task_id).order_by(r.submitted_at, r.id)).all()
    records = []
    checklists: dict[tuple[str, int], frozenset[str]] = {}
    for reviewer, task_id, answers, at, is_gold, gold, rubric_id, version in rows:
        if not is_gold:
            records.append(ReviewRecord(reviewer, task_id, None, False, None, at))
            continue
        if (rubric_id, version) not in checklists:
            checklists[(rubric_id, version)] = checklist_ids(session, rubric_id, version)
        given = with_unticked(answers, checklists[(rubric_id, version)])
        for question, truth in sorted((gold or {}).items()):
            if question in given:
                records.append(ReviewRecord(reviewer, f"{task_id}:{question}",
                                            canonical_json(given[question]), True,
                                            canonical_json(truth), at, task_id,
                                            question))
    return records


def checklist_ids(session: Session, rubric_id: str, version: int) -> frozenset[str]:
    """The ids of the checklist (``multi_choice``) questions of a rubric version."""
    return frozenset(q.id for q in cached_spec(session, rubric_id, version).questions
                     if q.kind == "multi_choice")


def with_unticked(answers: dict[str, Any] | None, checklists: Iterable[str]
                   ) -> dict[str, Any]:
    """A review's answers with every checklist it left unticked answered ``[]`` (see
    :func:`hilt.review.aggregation.panel_answers`)."""
    return {**{q: [] for q in checklists}, **(answers or {})}


def _baselines(session: Session) -> dict[str, tuple[ReviewerStatus, datetime | None]]:
    h = ReviewerStatusChangeRow
    rows = session.execute(sa.select(h.reviewer_id, h.new_status, h.source, h.effective_from)
                           .where(h.source.in_(("manual", "initial")))
                           .order_by(h.changed_at, h.id)).all()
    found: dict[str, tuple[ReviewerStatus, datetime | None]] = {}
    for reviewer, status, source, since in rows:  # later entries win
        found[reviewer] = (ReviewerStatus(status), None if source == "initial" else since)
    return found


def _final_label_agreement(session: Session) -> dict[str, tuple[int, int]]:
    """Per reviewer: (answers equal to the final label, answers compared)."""
    f, r, t = FinalLabelRow, ReviewRow, ReviewTaskRow
    labels: dict[tuple[str, str], str] = {}
    # A checklist's label was voted over every review, an unticked one as [].
    checklists: dict[str, list[str]] = defaultdict(list)
    for task_id, question, kind, value in session.execute(
            sa.select(f.task_id, f.question_id, f.question_kind, f.value).where(
                f.source_task_id.is_(None), f.provenance != "gold",
                f.question_kind.in_(AGGREGATED_KINDS))):
        labels[(task_id, question)] = canonical_json(value)
        if kind == "multi_choice":
            checklists[task_id].append(question)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for reviewer, task_id, answers in session.execute(
            sa.select(r.reviewer_id, r.task_id, r.answers).join(t, t.id == r.task_id)
            .where(t.is_gold.is_(False), t.status == "resolved")):
        for question, value in with_unticked(answers, checklists.get(task_id, ())).items():
            final = labels.get((task_id, question))
            if final is not None:
                counts[reviewer][0] += canonical_json(value) == final
                counts[reviewer][1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def _model_accuracy(session: Session) -> dict[str, tuple[float, int]]:
    """Per reviewer: (expected correct answers, answers) over the latest fit of each
    rubric question."""
    m = AggregationModelRow
    latest: dict[tuple[str, str], str] = {}
    for model_id, rubric, question in session.execute(
            sa.select(m.id, m.rubric_id, m.question_id).order_by(m.fitted_at.desc(),
                                                                 m.id.desc())):
        latest.setdefault((rubric, question), model_id)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    if latest:
        for row in session.execute(sa.select(m).where(m.id.in_(list(latest.values())))
                                   .order_by(m.id)).scalars():
            fit = check_stored_model(row_values(row))
            for reviewer, e, n in zip(fit.reviewers, fit.reviewer_expected_correct.tolist(),
                                      fit.reviewer_answers.tolist(), strict=True):
                totals[reviewer][0] += e
                totals[reviewer][1] += n
    return {k: (v[0], int(v[1])) for k, v in totals.items()}


def _interval(successes: float, trials: int, confidence: float) -> tuple[float | None, float,
                                                                         float]:
    return expected_count_interval(successes, trials, confidence)


def _replayed(session: Session, config: CalibrationConfig) -> dict[str, ReviewerReportRow]:
    rows = reviewer_report(_records(session), config, _baselines(session))
    return {str(row.reviewer): row for row in rows}


def reviewer_quality_report(session: Session,
                            config: CalibrationConfig = CalibrationConfig()
                            ) -> list[dict[str, Any]]:
    """One row per reviewer (sorted by id): stored status and the status the machine
    gives now, gold accuracy (item-level Wilson interval over ``n_gold_items`` gold
    tasks), agreement with final labels and model accuracy (Wilson intervals), each at
    ``config.confidence`` (the row's ``confidence``), rolling accuracy (also with its
    item-level interval) and the trend flag."""
    replayed = _replayed(session, config)
    agreement = _final_label_agreement(session)
    model = _model_accuracy(session)
    out = []
    for reviewer in session.execute(sa.select(ReviewerRow).order_by(ReviewerRow.id)).scalars():
        rep = replayed.get(reviewer.id)
        gold_acc, gold_low, gold_high = ((rep.gold_accuracy, rep.ci_low, rep.ci_high) if rep
                                         else _interval(0, 0, config.confidence))
        agree, compared = agreement.get(reviewer.id, (0, 0))
        final_acc, final_low, final_high = _interval(agree, compared, config.confidence)
        expected, answered = model.get(reviewer.id, (0.0, 0))
        model_acc, model_low, model_high = _interval(expected, answered, config.confidence)
        computed = rep.status if rep else reviewer.status
        alarm_at = rep.trend_alarm_at if rep else None
        out.append({
            "reviewer": reviewer.id, "role": reviewer.role, "active": reviewer.active,
            "status": reviewer.status, "computed_status": computed,
            "may_take_production_tasks": reviewer.active and reviewer.status in (
                s.value for s in ReviewerStatus if s.may_take_production_tasks),
            "n_answers": rep.n_answers if rep else 0,
            "n_gold": rep.n_gold if rep else 0,
            "n_gold_items": rep.n_gold_items if rep else 0,
            "gold_correct": rep.gold_correct if rep else 0,
            "gold_accuracy": gold_acc, "gold_ci_low": gold_low, "gold_ci_high": gold_high,
            "rolling_gold_accuracy": rep.rolling_accuracy if rep else None,
            "rolling_n_gold": rep.rolling_n if rep else 0,
            "rolling_n_gold_items": rep.rolling_n_items if rep else 0,
            "rolling_ci_low": rep.rolling_ci_low if rep else 0.0,
            "rolling_ci_high": rep.rolling_ci_high if rep else 1.0,
            "trend_alarm": bool(rep and rep.trend_alarm),
            "trend_alarm_at": alarm_at.isoformat() if isinstance(alarm_at, datetime)
            else alarm_at,
            "last_change_reason": rep.last_change_reason if rep else None,
            "open_round": rep.open_round if rep else None,
            "n_compared": compared, "final_label_agreement": final_acc,
            "agreement_ci_low": final_low, "agreement_ci_high": final_high,
            "model_n_answers": answered, "model_accuracy": model_acc,
            "model_ci_low": model_low, "model_ci_high": model_high,
            "confidence": config.confidence,
        })
    return out


def _history(session: Session, reviewer: ReviewerRow, new: str, *, source: str, reason: str,
             since: datetime, n_gold: int, actor: str, now: datetime) -> None:
    session.add(ReviewerStatusChangeRow(
        id=new_id("rst"), reviewer_id=reviewer.id,
        old_status=None if source == "initial" else reviewer.status, new_status=new,
        source=source, reason=reason, effective_from=since, n_gold=n_gold, actor=actor,
        changed_at=now))
    audit.append(session, actor=actor,
                 action="reviewer.status_baseline" if source == "initial" else "reviewer.status",
                 entity_type="reviewer", entity_id=reviewer.id,
                 payload={"old": reviewer.status, "new": new, "source": source,
                          "reason": reason, "n_gold": n_gold})


def update_reviewer_statuses(session: Session, config: CalibrationConfig = CalibrationConfig(),
                             *, now: datetime | None = None, actor: str = "quality"
                             ) -> list[dict[str, Any]]:
    """Replay every reviewer's gold answers from their baseline and write the statuses
    that changed; returns the changes (reviewer, old, new, reason, and the gold accuracy
    over all gold answers with its item-level interval at ``config.confidence``). The
    reason quotes the count and interval of the share it rests on."""
    now = now or utcnow()
    reviewers = {r.id: r for r in session.execute(
        sa.select(ReviewerRow).with_for_update()).scalars()}
    tracked = set(session.execute(sa.select(ReviewerStatusChangeRow.reviewer_id)
                                  .distinct()).scalars())
    for untracked in reviewers.values():
        if untracked.id not in tracked:
            _history(session, untracked, untracked.status, source="initial",
                     reason="status when calibration tracking began", since=_BEGINNING,
                     n_gold=0, actor=actor, now=now)
    session.flush()
    changes = []
    for reviewer_id, row in sorted(_replayed(session, config).items()):
        reviewer = reviewers.get(reviewer_id)
        if reviewer is None or row.status == reviewer.status:
            continue
        # An onboarding replay has no transition of its own (nothing leads into
        # onboarding), so a move back to it is explained by the open calibration set.
        reason = row.last_change_reason or row.open_round or "status machine replay"
        _history(session, reviewer, row.status, source="calibration", reason=reason,
                 since=now, n_gold=row.n_gold, actor=actor, now=now)
        changes.append({"reviewer": reviewer_id, "old": reviewer.status, "new": row.status,
                        "reason": reason, "n_gold": row.n_gold,
                        "n_gold_items": row.n_gold_items,
                        "gold_accuracy": row.gold_accuracy, "gold_ci_low": row.ci_low,
                        "gold_ci_high": row.ci_high, "confidence": row.confidence})
        reviewer.status = row.status
        _end_leases_if_barred(session, reviewer, actor=actor, reason=reason, now=now)
    return changes


def _end_leases_if_barred(session: Session, reviewer: ReviewerRow, *, actor: str,
                          reason: str, now: datetime) -> None:
    """A reviewer who may no longer take work (suspended) gives back every task they
    hold, so that their slots go to other reviewers at once instead of at lease expiry."""
    from hilt.review.eligibility import eligible_work
    from hilt.review.queue import end_reviewer_leases

    if eligible_work(reviewer.status, active=reviewer.active) == "none":
        end_reviewer_leases(session, reviewer.id, actor=actor,
                            reason=f"reviewer {reviewer.status}: {reason}", now=now)


def set_reviewer_status(session: Session, reviewer_id: str, status: str, *, actor: str,
                        reason: str, now: datetime | None = None) -> None:
    """A person's decision (e.g. reinstating a suspended reviewer): the status machine
    restarts from ``status`` and counts only gold answers from now on."""
    if status not in {s.value for s in ReviewerStatus}:
        raise InputError(f"status must be one of {[s.value for s in ReviewerStatus]}",
                         field="status")
    if not reason.strip():
        raise InputError("a reason is required", field="reason")
    reviewer = session.get(ReviewerRow, reviewer_id, with_for_update=True)
    if reviewer is None:
        raise NotFound(f"reviewer {reviewer_id!r} does not exist")
    now = now or utcnow()
    _history(session, reviewer, status, source="manual", reason=reason, since=now, n_gold=0,
             actor=actor, now=now)
    reviewer.status = status
    _end_leases_if_barred(session, reviewer, actor=actor, reason=reason, now=now)


def gold_left_for(session: Session, reviewer_id: str) -> int:
    """Gold items the reviewer has not reviewed yet: what the queue can still give an
    onboarding reviewer (it never serves a reviewer the same task twice)."""
    t, r = ReviewTaskRow, ReviewRow
    answered = sa.select(r.task_id).where(r.reviewer_id == reviewer_id)
    return session.scalar(sa.select(sa.func.count()).select_from(t).where(
        t.is_gold.is_(True), t.status == "gold", t.id.not_in(answered))) or 0


def status_note(session: Session, reviewer_id: str, status: str,
                config: CalibrationConfig = CalibrationConfig()) -> str | None:
    """What a person setting ``status`` should know: an onboarding reviewer with fewer
    gold items left to answer than a calibration set holds cannot pass one (only gold
    answers from the decision on count, and the queue serves no task twice), and with
    none left gets no work at all, until new gold items are made."""
    if status != ReviewerStatus.ONBOARDING.value:
        return None
    left, needed = gold_left_for(session, reviewer_id), config.calibration_set_size
    if left >= needed:
        return None
    return (f"{reviewer_id} has {left} gold item(s) left to answer and a calibration set "
            f"holds {needed}, so as onboarding they cannot pass one"
            + (" and get no work" if left == 0 else "") + " until new gold items are "
            "made (hilt task gold, or hilt task gold-carry after a rubric revision)")

