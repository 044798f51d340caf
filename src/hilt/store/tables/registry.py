"""Model registry: every trained reward model, SFT model and classifier, as a version.

A version records what is needed to reproduce and judge it: the base model, the hash
of the data it was trained on, the full config, the seed, the code version, its
held-out metrics, where its files are, and the version it replaces (``previous_id``:
the newest earlier version with the same kind and name).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hilt.store.tables.base import Base, JSONType, UTCDateTime, utcnow


class ModelVersionRow(Base):
    __tablename__ = "model_versions"

    id: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32), index=True)  # reward | sft | classifier
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    base_model: Mapped[str] = mapped_column(sa.String(500))
    dataset_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    seed: Mapped[int] = mapped_column(sa.Integer)
    code_version: Mapped[str] = mapped_column(sa.String(200))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    artifact_path: Mapped[str] = mapped_column(sa.String(1000))
    manifest_hash: Mapped[str] = mapped_column(sa.String(64))
    previous_id: Mapped[str | None] = mapped_column(
        sa.String(80), sa.ForeignKey("model_versions.id"), nullable=True)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
