"""Core tables: feedback events, the audit chain, reviewers and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hilt.store.tables.base import Base, JSONType, UTCDateTime, utcnow


class EventRow(Base):
    """One feedback event. Filtered/joined fields are columns; the full record is JSON."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    subject_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    model_version: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    policy_version: Mapped[str | None] = mapped_column(sa.String(200))
    prompt_template_id: Mapped[str | None] = mapped_column(sa.String(200))
    prompt_template_version: Mapped[str | None] = mapped_column(sa.String(200))
    role_format: Mapped[str | None] = mapped_column(sa.String(200))
    # ",review,train," so that one LIKE '%,train,%' filters by scope on every backend.
    consent_scopes: Mapped[str] = mapped_column(sa.String(200), default=",")
    ingest_batch: Mapped[str | None] = mapped_column(sa.String(64))
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)


class AuditRow(Base):
    """Append-only, hash-chained log of every state change (see ``hilt.store.audit``)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(100), index=True)
    entity_type: Mapped[str] = mapped_column(sa.String(100))
    entity_id: Mapped[str] = mapped_column(sa.String(200), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditPendingRow(Base):
    """An entry written by a committed (or in-flight) transaction on PostgreSQL, waiting
    to be chained into ``audit_log`` by :func:`hilt.store.audit.seal`."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(100))
    entity_type: Mapped[str] = mapped_column(sa.String(100))
    entity_id: Mapped[str] = mapped_column(sa.String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)


class AuditHeadRow(Base):
    """The chain's head (last seq and hash), so that truncating the tail is detected."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    hash: Mapped[str] = mapped_column(sa.String(64))


class ReviewerRow(Base):
    __tablename__ = "reviewers"

    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(32))
    pools: Mapped[list[str]] = mapped_column(JSONType, default=list)
    skills: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Release-gate sign-off roles this identity may sign under (hilt.access.grant_signoff;
    # enforced by hilt.gate.store.sign_off). Empty: it may sign nothing.
    signoff_roles: Mapped[list[str]] = mapped_column(JSONType, default=list,
                                                     server_default=sa.text("'[]'"))
    # Calibration status (onboarding -> calibrated -> probation -> suspended); hilt.quality.
    status: Mapped[str] = mapped_column(sa.String(32), default="onboarding")
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TokenRow(Base):
    """API tokens, stored only as sha256 hashes of the secret.

    ``expires_at`` is None for a token that never expires. ``last_used_at`` is when the
    token last authenticated, written at most about once a minute per token
    (:func:`hilt.access.record_use`), so it may lag the latest request by that much.
    """

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[str] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(200))
    reviewer_id: Mapped[str | None] = mapped_column(
        sa.String(200), sa.ForeignKey("reviewers.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebSessionRow(Base):
    """Signed-in page sessions, stored only as sha256 hashes of the cookie's session id.

    A session stands for the token it was opened with; it ends at ``expires_at``, at
    sign-out (the row is deleted), or as soon as that token is revoked.
    """

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("api_tokens.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
