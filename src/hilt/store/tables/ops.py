"""Operations tables: the job queue, webhook subscriptions, the delivery log and cursors.

``ops_jobs`` is the queue and the record of every background run at once: a worker claims
a row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the ``BEGIN IMMEDIATE`` write lock on
SQLite), holds it under a lease it renews while running, and marks it finished in the
same transaction that applies the job's effect. ``dedupe_key`` is unique, so a periodic
job enqueued by several API workers for the same period exists once.

Webhook deliveries are keyed by ``(subscription_id, audit_seq)``: the audit log is the
outbox, and one audit entry is delivered to one subscription at most once per replay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hilt.store.tables.base import Base, JSONType, UTCDateTime, utcnow


class JobRow(Base):
    """One background job (status: queued, running, succeeded, failed, cancelled)."""

    __tablename__ = "ops_jobs"
    __table_args__ = (
        sa.Index("ix_ops_jobs_ready", "status", "run_after"),
        sa.Index("ix_ops_jobs_kind_created", "kind", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16))
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    priority: Mapped[int] = mapped_column(sa.Integer, default=0)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer, default=3)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(sa.String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    progress: Mapped[float] = mapped_column(sa.Float, default=0.0)
    progress_note: Mapped[str | None] = mapped_column(sa.String(500))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    # Every worker that ran an attempt, in order (shows a job surviving a worker crash).
    workers: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookSubscriptionRow(Base):
    """Where to send which event types. The secret signs payloads (HMAC-SHA256), so it
    is stored as given; it is shown once when created and never returned again."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    secret: Mapped[str] = mapped_column(sa.String(200))
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    description: Mapped[str] = mapped_column(sa.String(500), default="")
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDeliveryRow(Base):
    """One event for one subscription (status: pending, delivered, failed)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "audit_seq",
                            name="uq_webhook_deliveries_subscription_seq"),
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    audit_seq: Mapped[int] = mapped_column(sa.BigInteger)
    event_type: Mapped[str] = mapped_column(sa.String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A sender holds the row while its request is in flight, so no other sender posts it.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OpsCursorRow(Base):
    """A named position in the audit log (the webhook dispatcher's outbox cursor)."""

    __tablename__ = "ops_cursors"

    name: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    position: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
