"""label quality tables: aggregation models, reviewer status history

Revision ID: 0003_quality
Revises: 0002_review
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import hilt.store.tables.base

revision = "0003_quality"
down_revision = "0002_review"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def _time() -> hilt.store.tables.base.UTCDateTime:
    return hilt.store.tables.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quality_aggregation_models",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("rubric_id", sa.String(length=100), nullable=False),
        sa.Column("question_id", sa.String(length=100), nullable=False),
        sa.Column("rubric_versions", _json(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("classes", _json(), nullable=False),
        sa.Column("reviewers", _json(), nullable=False),
        sa.Column("confusion", _json(), nullable=False),
        sa.Column("priors", _json(), nullable=False),
        sa.Column("reviewer_answers", _json(), nullable=False),
        sa.Column("reviewer_expected_correct", _json(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("n_answers", sa.Integer(), nullable=False),
        sa.Column("n_gold_items", sa.Integer(), nullable=False),
        sa.Column("n_iter", sa.Integer(), nullable=False),
        sa.Column("converged", sa.Boolean(), nullable=False),
        sa.Column("config", _json(), nullable=False),
        sa.Column("fitted_by", sa.String(length=200), nullable=False),
        sa.Column("fitted_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_aggregation_models")),
    )
    op.create_index("ix_quality_aggregation_models_question", "quality_aggregation_models",
                    ["rubric_id", "question_id", "fitted_at"], unique=False)
    op.create_table(
        "quality_reviewer_status",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("reviewer_id", sa.String(length=200), nullable=False),
        sa.Column("old_status", sa.String(length=32), nullable=True),
        sa.Column("new_status", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("effective_from", _time(), nullable=False),
        sa.Column("n_gold", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("changed_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["reviewer_id"], ["reviewers.id"],
                                name=op.f("fk_quality_reviewer_status_reviewer_id_reviewers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_reviewer_status")),
    )
    op.create_index("ix_quality_reviewer_status_reviewer", "quality_reviewer_status",
                    ["reviewer_id", "changed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_quality_reviewer_status_reviewer", table_name="quality_reviewer_status")
    op.drop_table("quality_reviewer_status")
    op.drop_index("ix_quality_aggregation_models_question",
                  table_name="quality_aggregation_models")
    op.drop_table("quality_aggregation_models")
