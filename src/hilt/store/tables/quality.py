"""Label-quality tables: fitted aggregation models and reviewer status history.

``quality_aggregation_models`` keeps every Dawid–Skene fit of one rubric question
(append-only; the latest fit of a question is the one the review workflow uses), with
the parameters needed to compute a task's posterior later and the decision settings
that were in force, so that any model-aggregated label can be recomputed from its row.

``quality_reviewer_status`` is the append-only history of reviewer status changes,
both from the calibration status machine (``source = 'calibration'``) and by a person
(``source = 'manual'``). The latest manual (or initial) entry of a reviewer is the
baseline from which the status machine replays that reviewer's gold answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hilt.store.tables.base import Base, JSONType, UTCDateTime, utcnow


class AggregationModelRow(Base):
    """One fit of a Dawid–Skene model over all reviews of one rubric question."""

    __tablename__ = "quality_aggregation_models"
    __table_args__ = (sa.Index("ix_quality_aggregation_models_question", "rubric_id",
                               "question_id", "fitted_at"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    rubric_id: Mapped[str] = mapped_column(sa.String(100))
    question_id: Mapped[str] = mapped_column(sa.String(100))
    # Rubric versions whose question has exactly these options (their reviews are pooled).
    rubric_versions: Mapped[list[int]] = mapped_column(JSONType)
    method: Mapped[str] = mapped_column(sa.String(32))
    classes: Mapped[list[str]] = mapped_column(JSONType)
    reviewers: Mapped[list[str]] = mapped_column(JSONType)
    # reviewer × true class × answered class, and the class priors.
    confusion: Mapped[list[Any]] = mapped_column(JSONType)
    priors: Mapped[list[float]] = mapped_column(JSONType)
    # Per reviewer: answers in the fit, and Σ posterior of the answered label.
    reviewer_answers: Mapped[list[int]] = mapped_column(JSONType)
    reviewer_expected_correct: Mapped[list[float]] = mapped_column(JSONType)
    n_items: Mapped[int] = mapped_column(sa.Integer)
    n_answers: Mapped[int] = mapped_column(sa.Integer)
    n_gold_items: Mapped[int] = mapped_column(sa.Integer)
    n_iter: Mapped[int] = mapped_column(sa.Integer)
    converged: Mapped[bool] = mapped_column(sa.Boolean)
    # The ModelAggregationConfig in force (thresholds, pseudo-counts).
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    fitted_by: Mapped[str] = mapped_column(sa.String(200))
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReviewerStatusChangeRow(Base):
    """One change of a reviewer's calibration status (append-only)."""

    __tablename__ = "quality_reviewer_status"
    __table_args__ = (sa.Index("ix_quality_reviewer_status_reviewer", "reviewer_id",
                               "changed_at"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    reviewer_id: Mapped[str] = mapped_column(sa.String(200), sa.ForeignKey("reviewers.id"))
    old_status: Mapped[str | None] = mapped_column(sa.String(32))
    new_status: Mapped[str] = mapped_column(sa.String(32))
    # calibration (the status machine), manual (a person), initial (first baseline).
    source: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.Text)
    # Gold answers only from this moment on count for the status machine after a
    # manual or initial entry; for calibration entries, the gold answer that decided.
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime())
    n_gold: Mapped[int] = mapped_column(sa.Integer, default=0)
    actor: Mapped[str] = mapped_column(sa.String(200))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
