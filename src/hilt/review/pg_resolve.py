"""Resolving a task whose k reviews are in, in at most two statements on PostgreSQL: one
read (the task, its event's policy version, its reviews and the rubric's recent model
fits) and one conditional write (the task resolved, its final labels and the audit
entry). The read is usually done already: the statement that records a task's k-th
review returns it (:mod:`hilt.review.pg_fast`).

Only the common case is handled here: an open task that was never resolved before, has
no near-duplicate members, whose aggregation models (if any) are already parsed in this
process, and whose reviews need no adjudicator. Anything else returns ``None`` and the
caller runs :func:`hilt.review.reviews.resolve_if_complete` in a transaction, which
decides it the same way (both go through :func:`hilt.review.aggregation.decide` and
:mod:`hilt.review.labels`).

The write only applies while the task is still open, unresolved and unclustered, so two
resolvers (the submitter and the sweep) or a clustering in between can never write
labels twice: the loser's statement writes nothing and reports it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hilt.review.aggregation import AdjudicationPolicy, Aggregator, decide
from hilt.review.labels import label_row, resolve_payload
from hilt.review.reviews import answers_by_question, labels_from, spec_if_cached
from hilt.store import audit

if TYPE_CHECKING:
    from hilt.store.pg_statements import Statements


def read_columns(own_review: str = "") -> str:
    """What resolving a task reads, given its row as ``t``: severity, adjudication
    policy, rubric, event, cluster, earlier resolution, the event's policy version, its
    reviews in submission order and the rubric's recent model fits. ``own_review``: a
    query of the same review columns to add to the stored ones (the submission statement
    adds the review it inserts, which its own snapshot cannot see)."""
    extra = f" UNION ALL {own_review}" if own_review else ""
    return f"""t.severity, t.policy, t.rubric_id, t.rubric_version, t.event_id, t.cluster_id,
           t.resolved_at,
           (SELECT e.policy_version FROM events e WHERE e.id = t.event_id),
           (SELECT coalesce(json_agg(json_build_array(x.id, x.reviewer_id, x.answers,
                                                      x.confidence)
                                     ORDER BY x.submitted_at, x.id), '[]')
              FROM (SELECT rv.id, rv.reviewer_id, rv.answers, rv.confidence, rv.submitted_at
                      FROM reviews rv WHERE rv.task_id = t.id{extra}) x),
           (SELECT coalesce(json_agg(json_build_array(m.id, m.question_id, m.rubric_versions)
                                     ORDER BY m.n), '[]')
              FROM (SELECT id, question_id, rubric_versions,
                           row_number() OVER (PARTITION BY question_id
                                              ORDER BY fitted_at DESC, id DESC) AS n
                      FROM quality_aggregation_models WHERE rubric_id = t.rubric_id) m
             WHERE m.n <= %(recent)s)"""


_READ = f"""
    SELECT t.status, t.is_gold, t.reviews_done, t.overlap_k, {read_columns()}
      FROM review_tasks t WHERE t.id = %(task_id)s"""

_WRITE = f"""
    WITH upd AS (
      UPDATE review_tasks SET status = 'resolved', resolved_at = %(now)s
      WHERE id = %(task_id)s AND status = 'open' AND resolved_at IS NULL
        AND cluster_id IS NULL
      RETURNING id),
    lab AS (
      INSERT INTO final_labels (id, task_id, event_id, rubric_id, rubric_version,
        question_id, question_kind, value, provenance, confidence, review_ids,
        adjudication_id, source_task_id, policy_version, decided_at)
      SELECT v.id, v.task_id, v.event_id, v.rubric_id, v.rubric_version, v.question_id,
        v.question_kind, v.value, v.provenance, v.confidence, v.review_ids,
        v.adjudication_id, v.source_task_id, v.policy_version, v.decided_at
      FROM upd, jsonb_to_recordset(CAST(%(labels)s AS jsonb)) AS v(
        id text, task_id text, event_id text, rubric_id text, rubric_version int,
        question_id text, question_kind text, value jsonb, provenance text,
        confidence float8, review_ids jsonb, adjudication_id text, source_task_id text,
        policy_version text, decided_at timestamptz)
      RETURNING id),
    audited AS ({audit.pending_insert_sql("upd.id", "upd", driver=True)})
    -- No WAL flush wait: a resolution lost in a crash is made again from the durable
    -- reviews (the task stays open with all its reviews for the review.resolve_complete
    -- sweep), and any later synchronous commit that read it flushes it too.
    SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM lab),
           set_config('synchronous_commit', 'off', true)"""


def resolve(stmts: Statements, task_id: str, *, now: datetime, actor: str,
            aggregator: Aggregator | None = None, known: tuple[Any, ...] | None = None
            ) -> str | None:
    """Resolve the task if it is the common case; its status afterwards, or ``None`` for
    "take the general path" (nothing was written). ``known``: the task's row as
    :data:`_READ` gives it, already read by the statement that recorded its k-th review
    (used only if it holds all ``reviews_done`` reviews: a review committed by another
    reviewer after that statement's snapshot was taken would be missing)."""
    from hilt.quality.aggregation_store import RECENT_FITS, aggregator_from_fits

    row = known
    if row is None or len(row[-2]) != row[2]:
        row = stmts.run(_READ, {"task_id": task_id, "recent": RECENT_FITS})
    if row is None:
        return None
    (status, is_gold, done, k, severity, policy, rubric_id, rubric_version, event_id,
     cluster_id, resolved_at, policy_version, reviews, fits) = row
    if status != "open" or is_gold or done < k:
        return str(status)
    spec = spec_if_cached(stmts.engine, rubric_id, rubric_version)
    if cluster_id is not None or resolved_at is not None or spec is None:
        return None
    chosen = aggregator or aggregator_from_fits(spec, rubric_version, fits, load=None)
    if chosen is None:  # a model this process has not parsed yet
        return None
    panel, answers = answers_by_question(reviews)
    outcomes = decide(spec.questions, answers, severity,
                      AdjudicationPolicy.model_validate(policy or {}), chosen, panel=panel)
    if any(o.adjudicate for o in outcomes):
        return None
    labels = labels_from(spec, outcomes, answers)
    rows = [label_row(task_id, event_id, rubric_id, rubric_version, lbl, lbl.provenance,
                      None, policy_version, now) for lbl in labels]
    params = {"task_id": task_id, "now": now,
              "labels": json.dumps([{**r, "decided_at": now.isoformat()} for r in rows]),
              **audit.pending_params(actor=actor, action="task.resolve",
                                     entity_type="review_task",
                                     payload=resolve_payload(labels, []))}
    written = stmts.run(_WRITE, params)
    if written is None or written[0] == 0:
        return None  # resolved, clustered or reopened meanwhile: let the general path see
    return "resolved"
