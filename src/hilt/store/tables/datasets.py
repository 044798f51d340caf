"""Dataset versions, the lineage of their records, and their exports.

A version's id is the sha256 of its canonical records file, so it names its content;
the records themselves live as files under the data directory, the database keeps the
manifest and, per record, the links back to events, labels, reviews and adjudications.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hilt.store.tables.base import Base, JSONType, UTCDateTime, utcnow


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    record_count: Mapped[int] = mapped_column(sa.Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSONType)
    code_version: Mapped[str] = mapped_column(sa.String(200))
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    data_path: Mapped[str] = mapped_column(sa.String(1000))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(sa.String(200))
    revoked_reason: Mapped[str | None] = mapped_column(sa.Text)


class DatasetRecordRow(Base):
    """One record of a version, with its lineage (what it was made from)."""

    __tablename__ = "dataset_records"

    version_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("dataset_versions.id"), primary_key=True)
    record_key: Mapped[str] = mapped_column(sa.String(512), primary_key=True)
    record_hash: Mapped[str] = mapped_column(sa.String(64))
    event_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    split: Mapped[str] = mapped_column(sa.String(16))
    label_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    review_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    adjudication_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    rubrics: Mapped[list[str]] = mapped_column(JSONType, default=list)
    policy_versions: Mapped[list[str]] = mapped_column(JSONType, default=list)


class DatasetExportRow(Base):
    """An export written from a version; flagged when the version is later revoked."""

    __tablename__ = "dataset_exports"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    version_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("dataset_versions.id"), index=True)
    format: Mapped[str] = mapped_column(sa.String(16))
    shape: Mapped[str] = mapped_column(sa.String(40))
    path: Mapped[str] = mapped_column(sa.String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    override_reason: Mapped[str | None] = mapped_column(sa.Text)
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    flag_reason: Mapped[str | None] = mapped_column(sa.Text)
