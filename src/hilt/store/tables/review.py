"""Review workflow tables: rubrics, escalation rule sets, tasks, leases, reviews,
adjudications and final labels.

A task's free review slots are a counter on the task row (``open_slots``), so that a
claim is one conditional update of one row; the partial index ``ix_review_tasks_claimable``
covers exactly the rows a claim may pick. ``(task_id, reviewer_id)`` is unique in
``review_assignments``: the database itself guarantees nobody reviews a task twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hilt.store.tables.base import Base, JSONType, UTCDateTime, utcnow

# Not on open_slots: the counters change on every claim and review, and should not
# touch an index (see migration 0011).
_CLAIMABLE = sa.text("status = 'open'")


class RubricVersionRow(Base):
    """One published, immutable version of a rubric (the YAML spec as JSON)."""

    __tablename__ = "rubric_versions"

    rubric_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(sa.String(300))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    changelog: Mapped[str] = mapped_column(sa.Text)
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    published_by: Mapped[str] = mapped_column(sa.String(200))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RuleSetVersionRow(Base):
    """One published version of an escalation rule set; at most one version is active."""

    __tablename__ = "escalation_rule_sets"

    rule_set_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    changelog: Mapped[str] = mapped_column(sa.Text)
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)
    published_by: Mapped[str] = mapped_column(sa.String(200))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Every status a review task can have (see ReviewTaskRow); filters check against it.
TASK_STATUSES = ("open", "clustered", "needs_adjudication", "resolved", "gold", "cancelled")


class ReviewTaskRow(Base):
    """A unit of review work on one event (status: open, clustered, needs_adjudication,
    resolved, gold for a gold item, or cancelled when its event was erased before it was
    resolved)."""

    __tablename__ = "review_tasks"
    __table_args__ = (
        # The claim's order within a pool (hilt.review.queue.CLAIM_ORDER; migration 0016)
        sa.Index("ix_review_tasks_claimable", "pool", sa.text("priority DESC"),
                 "sla_due_at", "created_at", "id",
                 postgresql_where=_CLAIMABLE, sqlite_where=_CLAIMABLE),
        sa.Index("ix_review_tasks_status_sla", "status", "sla_due_at"),
    )  # fillfactor 80 on PostgreSQL: set by migration 0011

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(128), sa.ForeignKey("events.id"),
                                          index=True)
    status: Mapped[str] = mapped_column(sa.String(32))
    pool: Mapped[str] = mapped_column(sa.String(100))
    required_skills: Mapped[list[str]] = mapped_column(JSONType, default=list)
    severity: Mapped[int] = mapped_column(sa.SmallInteger)
    rubric_id: Mapped[str] = mapped_column(sa.String(100))
    rubric_version: Mapped[int] = mapped_column(sa.Integer)
    overlap_k: Mapped[int] = mapped_column(sa.Integer)
    # How many responses the event has (answers to preference/ranking are checked against
    # it without reading the event).
    n_responses: Mapped[int] = mapped_column(sa.Integer, default=1)
    open_slots: Mapped[int] = mapped_column(sa.Integer)
    reviews_done: Mapped[int] = mapped_column(sa.Integer, default=0)
    is_gold: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # Known answers of a gold task; never shown to reviewers.
    gold_answers: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    priority: Mapped[float] = mapped_column(sa.Float, default=0.0)
    uncertainty: Mapped[float] = mapped_column(sa.Float, default=0.0)
    reach: Mapped[int] = mapped_column(sa.Integer, default=1)
    cluster_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    representative_id: Mapped[str | None] = mapped_column(sa.String(64))
    sla_due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sla_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalation_level: Mapped[int] = mapped_column(sa.Integer, default=0)
    # Provenance of the escalation: rule set, version, rule, the input values it read,
    # and the probability that this event was sampled (1.0 for deterministic rules).
    rule_set_id: Mapped[str | None] = mapped_column(sa.String(100))
    rule_set_version: Mapped[int | None] = mapped_column(sa.Integer)
    rule_name: Mapped[str | None] = mapped_column(sa.String(200))
    matched: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    sampling_probability: Mapped[float] = mapped_column(sa.Float, default=1.0)
    policy: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Why the reviews went to an adjudicator: question id -> reason.
    adjudication_reasons: Mapped[dict[str, Any] | None] = mapped_column(JSONType,
                                                                         nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AssignmentRow(Base):
    """A reviewer's lease on a task (status: active, submitted, expired, released)."""

    __tablename__ = "review_assignments"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "reviewer_id", name="uq_review_assignments_task_reviewer"),
        sa.Index("ix_review_assignments_active_expiry", "lease_expires_at",
                 postgresql_where=sa.text("status = 'active'"),
                 sqlite_where=sa.text("status = 'active'")),
        # Only active leases are looked up reviewer-first (see migration 0010).
        sa.Index("ix_review_assignments_reviewer_active", "reviewer_id",
                 postgresql_where=sa.text("status = 'active'"),
                 sqlite_where=sa.text("status = 'active'")),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("review_tasks.id"))
    reviewer_id: Mapped[str] = mapped_column(sa.String(200), sa.ForeignKey("reviewers.id"))
    status: Mapped[str] = mapped_column(sa.String(32))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReviewRow(Base):
    """One reviewer's submitted answers to one task, under one rubric version."""

    __tablename__ = "reviews"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("review_tasks.id"),
                                         index=True)
    assignment_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    reviewer_id: Mapped[str] = mapped_column(sa.String(200), index=True)
    rubric_id: Mapped[str] = mapped_column(sa.String(100))
    rubric_version: Mapped[int] = mapped_column(sa.Integer)
    answers: Mapped[dict[str, Any]] = mapped_column(JSONType)
    confidence: Mapped[float | None] = mapped_column(sa.Float)
    rationale: Mapped[str | None] = mapped_column(sa.Text)
    rewrite: Mapped[str | None] = mapped_column(sa.Text)
    time_spent_s: Mapped[float | None] = mapped_column(sa.Float)
    is_gold: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    late: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AdjudicationRow(Base):
    """An adjudicator's decision on a task whose reviews disagreed."""

    __tablename__ = "adjudications"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("review_tasks.id"),
                                         unique=True)
    adjudicator_id: Mapped[str] = mapped_column(sa.String(200))
    answers: Mapped[dict[str, Any]] = mapped_column(JSONType)
    rationale: Mapped[str] = mapped_column(sa.Text)
    cause: Mapped[str] = mapped_column(sa.String(32), index=True)
    reason: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    rubric_id: Mapped[str] = mapped_column(sa.String(100))
    rubric_version: Mapped[int] = mapped_column(sa.Integer)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FinalLabelRow(Base):
    """The resolved answer to one question of one task, with its provenance."""

    __tablename__ = "final_labels"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "question_id", name="uq_final_labels_task_question"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("review_tasks.id"))
    event_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    rubric_id: Mapped[str] = mapped_column(sa.String(100))
    rubric_version: Mapped[int] = mapped_column(sa.Integer)
    question_id: Mapped[str] = mapped_column(sa.String(100))
    question_kind: Mapped[str] = mapped_column(sa.String(32))
    value: Mapped[Any] = mapped_column(JSONType)
    provenance: Mapped[str] = mapped_column(sa.String(32))
    confidence: Mapped[float] = mapped_column(sa.Float)
    review_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    adjudication_id: Mapped[str | None] = mapped_column(sa.String(64))
    source_task_id: Mapped[str | None] = mapped_column(sa.String(64))
    policy_version: Mapped[str | None] = mapped_column(sa.String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
