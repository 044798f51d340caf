"""Tables of the regression check and the release gate.

Eval suites are versioned and content-addressed; a variant (the same item ids under
another prompt template, role format or language) is a suite of its own that names its
base. Gate decisions are stored whole (the record is its own proof, see
``hilt.gate.decision``); sign-offs are rows that point at the decision they signed and
at the record that superseded it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hilt.store.tables.base import Base, JSONType, UTCDateTime, utcnow


class EvalSuiteRow(Base):
    __tablename__ = "eval_suites"
    __table_args__ = (sa.UniqueConstraint("name", "version"),)

    id: Mapped[str] = mapped_column(sa.String(300), primary_key=True)  # "name@version"
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    version: Mapped[str] = mapped_column(sa.String(100))
    content_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    heldout: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    prompt_template: Mapped[str | None] = mapped_column(sa.String(200))
    role_format: Mapped[str | None] = mapped_column(sa.String(200))
    language: Mapped[str | None] = mapped_column(sa.String(50))
    variant_of: Mapped[str | None] = mapped_column(
        sa.String(300), sa.ForeignKey("eval_suites.id"), nullable=True, index=True)
    item_count: Mapped[int] = mapped_column(sa.Integer)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalSuiteItemRow(Base):
    __tablename__ = "eval_suite_items"

    suite_id: Mapped[str] = mapped_column(
        sa.String(300), sa.ForeignKey("eval_suites.id"), primary_key=True)
    item_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    position: Mapped[int] = mapped_column(sa.Integer)
    prompt: Mapped[str] = mapped_column(sa.Text)
    slice: Mapped[str] = mapped_column(sa.String(200))
    expect: Mapped[str] = mapped_column(sa.String(20))
    reference_answer: Mapped[str | None] = mapped_column(sa.Text)
    rubric: Mapped[str | None] = mapped_column(sa.String(200))
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class GateDecisionRow(Base):
    __tablename__ = "gate_decisions"
    # one successor per record: two would fork the chain (migration 0012)
    __table_args__ = (sa.Index("uq_gate_decisions_supersedes", "supersedes", unique=True),)

    hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    outcome: Mapped[str] = mapped_column(sa.String(20))
    policy_id: Mapped[str] = mapped_column(sa.String(200))
    policy_version: Mapped[str] = mapped_column(sa.String(100))
    suite_id: Mapped[str | None] = mapped_column(sa.String(300))
    candidate_id: Mapped[str | None] = mapped_column(sa.String(300), index=True)
    reference_id: Mapped[str | None] = mapped_column(sa.String(300))
    supersedes: Mapped[str | None] = mapped_column(
        sa.String(64), sa.ForeignKey("gate_decisions.hash"), nullable=True)
    stored_by: Mapped[str] = mapped_column(sa.String(200))
    record: Mapped[dict[str, Any]] = mapped_column(JSONType)


class GateSignoffRow(Base):
    __tablename__ = "gate_signoffs"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    decision_hash: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("gate_decisions.hash"), index=True)
    resulting_hash: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("gate_decisions.hash"))
    role: Mapped[str] = mapped_column(sa.String(100))
    signed_by: Mapped[str] = mapped_column(sa.String(200))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
