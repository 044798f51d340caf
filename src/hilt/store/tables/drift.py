"""Drift tables: alerts raised by the monitors, bridge sets (old labels re-reviewed
under a new rubric version) and recorded decisions on rubric-version compatibility.

An alert's id is a hash of (monitor, group, window start), so re-running the monitors
over the same window never stores the same alert twice. Compatibility decisions are
append-only: the latest one for a (rubric, old version, new version, question) stands.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hilt.store.tables.base import Base, JSONType, UTCDateTime, utcnow


class DriftAlertRow(Base):
    __tablename__ = "drift_alerts"
    __table_args__ = (sa.Index("ix_drift_alerts_monitor_window", "monitor", "window_start"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    monitor: Mapped[str] = mapped_column(sa.String(64))
    group_key: Mapped[str] = mapped_column(sa.String(500))
    group: Mapped[dict[str, Any]] = mapped_column(JSONType)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    reference_start: Mapped[datetime] = mapped_column(UTCDateTime())
    test: Mapped[str] = mapped_column(sa.String(32))
    p_value: Mapped[float] = mapped_column(sa.Float)
    alpha: Mapped[float] = mapped_column(sa.Float)
    effect_name: Mapped[str] = mapped_column(sa.String(32))
    effect: Mapped[float] = mapped_column(sa.Float)
    min_effect: Mapped[float] = mapped_column(sa.Float)
    n_current: Mapped[int] = mapped_column(sa.Integer)
    n_reference: Mapped[int] = mapped_column(sa.Integer)
    n_tests: Mapped[int] = mapped_column(sa.Integer)
    message: Mapped[str] = mapped_column(sa.Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(16), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(200))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(sa.Text)


class BridgeSetRow(Base):
    """A stratified sample of items labelled under ``old_version``, sent for re-review
    under ``new_version``; strata are the old labels of ``question_id``."""

    __tablename__ = "bridge_sets"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    rubric_id: Mapped[str] = mapped_column(sa.String(100), index=True)
    old_version: Mapped[int] = mapped_column(sa.Integer)
    new_version: Mapped[int] = mapped_column(sa.Integer)
    question_id: Mapped[str] = mapped_column(sa.String(100))
    per_stratum: Mapped[int] = mapped_column(sa.Integer)
    seed: Mapped[int] = mapped_column(sa.Integer)
    strata: Mapped[dict[str, Any]] = mapped_column(JSONType)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BridgeItemRow(Base):
    __tablename__ = "bridge_items"

    bridge_id: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("bridge_sets.id"),
                                           primary_key=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("review_tasks.id"),
                                         primary_key=True, index=True)
    event_id: Mapped[str] = mapped_column(sa.String(128))
    old_label_id: Mapped[str] = mapped_column(sa.String(64))
    old_value: Mapped[Any] = mapped_column(JSONType)
    stratum: Mapped[str] = mapped_column(sa.String(200))


class RubricCompatDecisionRow(Base):
    """A person's decision on mixing labels of two rubric versions: a label mapping, a
    relabelling of the old labels, acceptance as they are, or withdrawal of an earlier
    decision."""

    __tablename__ = "rubric_compat_decisions"
    __table_args__ = (sa.Index("ix_rubric_compat_decisions_pair", "rubric_id", "old_version",
                               "new_version"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    rubric_id: Mapped[str] = mapped_column(sa.String(100))
    old_version: Mapped[int] = mapped_column(sa.Integer)
    new_version: Mapped[int] = mapped_column(sa.Integer)
    question_id: Mapped[str | None] = mapped_column(sa.String(100))
    kind: Mapped[str] = mapped_column(sa.String(16))
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    reason: Mapped[str] = mapped_column(sa.Text)
    bridge_id: Mapped[str | None] = mapped_column(sa.String(40))
    decided_by: Mapped[str] = mapped_column(sa.String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
