"""Erasing a data subject's content from the review stage's tables.

The right to be forgotten (:func:`hilt.data.forget.forget`) erases events; copies of
their content made during review must go too. For every review task of the given
events this removes:

- reviews: the rationale, the rewrite, and the answers to text questions (``free_text``
  and ``rewrite`` kinds of the task's rubric version);
- adjudications: the rationale (replaced by a fixed note, the column is required) and
  the answers to text questions;
- final labels of the events whose value is text (``free_text``, ``rewrite``): the
  value becomes ``{"erased": true}``;
- tasks: gold answers to text questions, and the values the escalation rules read from
  the event (``matched[*].values`` may hold quoted content).

Rows, ids, choice answers, scores and label values that are not text stay, so
agreement statistics, lineage and the audit chain keep working. Runs in the caller's
transaction; returns how many rows of each kind changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.review.rubrics import rubric_spec
from hilt.store.tables.review import AdjudicationRow, FinalLabelRow, ReviewRow, ReviewTaskRow

TEXT_KINDS = frozenset({"free_text", "rewrite"})
ERASED_RATIONALE = "[erased: right to be forgotten]"
_CHUNK = 500


def _text_questions(session: Session, cache: dict[tuple[str, int], frozenset[str]],
                    rubric_id: str, version: int) -> frozenset[str]:
    key = (rubric_id, version)
    if key not in cache:
        try:
            spec = rubric_spec(session, rubric_id, version)
            cache[key] = frozenset(q.id for q in spec.questions if q.kind in TEXT_KINDS)
        except Exception:  # an unknown rubric: no question is known to be non-text
            cache[key] = frozenset()
    return cache[key]


def _without(answers: dict[str, Any] | None, keys: frozenset[str]) -> dict[str, Any] | None:
    if not answers or not keys & set(answers):
        return None
    return {k: v for k, v in answers.items() if k not in keys}


def erase_subject_content(session: Session, event_ids: Sequence[str],
                          copied_labels: list[FinalLabelRow] | None = None
                          ) -> dict[str, int]:
    """Erase review-stage copies of the content of ``event_ids`` (see module docstring).

    Text labels that a cluster representative's review wrote onto other people's events
    (provenance ``cluster_propagated``, ``source_task_id`` one of these events' tasks)
    quote the same text: they are erased too, and appended to ``copied_labels`` so that
    the dataset versions holding them can be revoked."""
    counts = {"reviews": 0, "adjudications": 0, "final_labels": 0, "tasks": 0,
              "propagated_labels": 0}
    subject_tasks: list[str] = []
    text_qs: dict[tuple[str, int], frozenset[str]] = {}
    ids = sorted(set(event_ids))
    for lo in range(0, len(ids), _CHUNK):
        chunk = ids[lo:lo + _CHUNK]
        tasks = list(session.execute(sa.select(ReviewTaskRow).where(
            ReviewTaskRow.event_id.in_(chunk)).with_for_update()).scalars())
        by_id = {t.id: t for t in tasks}
        subject_tasks.extend(by_id)
        for task in tasks:
            texts = _text_questions(session, text_qs, task.rubric_id, task.rubric_version)
            changed = False
            gold = _without(task.gold_answers, texts)
            if gold is not None:
                task.gold_answers, changed = gold, True
            if any(m.get("values") for m in task.matched or []):
                task.matched = [{**m, "values": {}} for m in task.matched]
                changed = True
            counts["tasks"] += changed
        if by_id:
            for review in session.execute(sa.select(ReviewRow).where(
                    ReviewRow.task_id.in_(list(by_id))).with_for_update()).scalars():
                task = by_id[review.task_id]
                texts = _text_questions(session, text_qs, task.rubric_id,
                                        task.rubric_version)
                answers = _without(review.answers, texts)
                if answers is not None or review.rationale or review.rewrite:
                    if answers is not None:
                        review.answers = answers
                    review.rationale, review.rewrite = None, None
                    counts["reviews"] += 1
            for adj in session.execute(sa.select(AdjudicationRow).where(
                    AdjudicationRow.task_id.in_(list(by_id))).with_for_update()).scalars():
                task = by_id[adj.task_id]
                texts = _text_questions(session, text_qs, task.rubric_id,
                                        task.rubric_version)
                answers = _without(adj.answers, texts)
                if answers is not None or adj.rationale != ERASED_RATIONALE:
                    if answers is not None:
                        adj.answers = answers
                    adj.rationale = ERASED_RATIONALE
                    counts["adjudications"] += 1
        for label in session.execute(sa.select(FinalLabelRow).where(
                FinalLabelRow.event_id.in_(chunk),
                FinalLabelRow.question_kind.in_(sorted(TEXT_KINDS))).with_for_update()
                ).scalars():
            if label.value != {"erased": True}:
                label.value = {"erased": True}
                counts["final_labels"] += 1
    for lo in range(0, len(subject_tasks), _CHUNK):
        for label in session.execute(sa.select(FinalLabelRow).where(
                FinalLabelRow.source_task_id.in_(subject_tasks[lo:lo + _CHUNK]),
                FinalLabelRow.question_kind.in_(sorted(TEXT_KINDS))).with_for_update()
                ).scalars():
            if copied_labels is not None:
                copied_labels.append(label)
            if label.value != {"erased": True}:
                label.value = {"erased": True}
                counts["propagated_labels"] += 1
    session.flush()
    return counts
