"""model registry

Revision ID: 0005_registry
Revises: 0004_datasets
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import hilt.store.tables.base

revision = "0005_registry"
down_revision = "0004_datasets"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("base_model", sa.String(length=500), nullable=False),
        sa.Column("dataset_hash", sa.String(length=64), nullable=False),
        sa.Column("config", _json(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("code_version", sa.String(length=200), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("artifact_path", sa.String(length=1000), nullable=False),
        sa.Column("manifest_hash", sa.String(length=64), nullable=False),
        sa.Column("previous_id", sa.String(length=80), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["previous_id"], ["model_versions.id"],
            name=op.f("fk_model_versions_previous_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_versions_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_versions_name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_model_versions_dataset_hash"), ["dataset_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_model_versions_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_versions_created_at"))
        batch_op.drop_index(batch_op.f("ix_model_versions_dataset_hash"))
        batch_op.drop_index(batch_op.f("ix_model_versions_name"))
        batch_op.drop_index(batch_op.f("ix_model_versions_kind"))
    op.drop_table("model_versions")
