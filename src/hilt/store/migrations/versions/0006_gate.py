"""eval runs and gate decisions

Revision ID: 0006_gate
Revises: 0005_registry
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import hilt.store.tables.base

revision = "0006_gate"
down_revision = "0005_registry"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "eval_suites",
        sa.Column("id", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("heldout", sa.Boolean(), nullable=False),
        sa.Column("prompt_template", sa.String(length=200), nullable=True),
        sa.Column("role_format", sa.String(length=200), nullable=True),
        sa.Column("language", sa.String(length=50), nullable=True),
        sa.Column("variant_of", sa.String(length=300), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["variant_of"], ["eval_suites.id"], name=op.f("fk_eval_suites_variant_of_eval_suites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_suites")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_eval_suites_name")),
    )
    with op.batch_alter_table("eval_suites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_suites_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_eval_suites_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_eval_suites_variant_of"), ["variant_of"], unique=False)

    op.create_table(
        "gate_decisions",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("policy_id", sa.String(length=200), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=False),
        sa.Column("suite_id", sa.String(length=300), nullable=True),
        sa.Column("candidate_id", sa.String(length=300), nullable=True),
        sa.Column("reference_id", sa.String(length=300), nullable=True),
        sa.Column("supersedes", sa.String(length=64), nullable=True),
        sa.Column("stored_by", sa.String(length=200), nullable=False),
        sa.Column("record", _json(), nullable=False),
        sa.ForeignKeyConstraint(["supersedes"], ["gate_decisions.hash"], name=op.f("fk_gate_decisions_supersedes_gate_decisions")),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_gate_decisions")),
    )
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gate_decisions_candidate_id"), ["candidate_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gate_decisions_created_at"), ["created_at"], unique=False)

    op.create_table(
        "eval_suite_items",
        sa.Column("suite_id", sa.String(length=300), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("slice", sa.String(length=200), nullable=False),
        sa.Column("expect", sa.String(length=20), nullable=False),
        sa.Column("reference_answer", sa.Text(), nullable=True),
        sa.Column("rubric", sa.String(length=200), nullable=True),
        sa.Column("extra", _json(), nullable=False),
        sa.ForeignKeyConstraint(["suite_id"], ["eval_suites.id"], name=op.f("fk_eval_suite_items_suite_id_eval_suites")),
        sa.PrimaryKeyConstraint("suite_id", "item_id", name=op.f("pk_eval_suite_items")),
    )
    op.create_table(
        "gate_signoffs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("decision_hash", sa.String(length=64), nullable=False),
        sa.Column("resulting_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=100), nullable=False),
        sa.Column("signed_by", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["decision_hash"], ["gate_decisions.hash"], name=op.f("fk_gate_signoffs_decision_hash_gate_decisions")),
        sa.ForeignKeyConstraint(["resulting_hash"], ["gate_decisions.hash"], name=op.f("fk_gate_signoffs_resulting_hash_gate_decisions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_signoffs")),
    )
    with op.batch_alter_table("gate_signoffs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gate_signoffs_decision_hash"), ["decision_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gate_signoffs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_signoffs_decision_hash"))
    op.drop_table("gate_signoffs")
    op.drop_table("eval_suite_items")
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_decisions_created_at"))
        batch_op.drop_index(batch_op.f("ix_gate_decisions_candidate_id"))
    op.drop_table("gate_decisions")
    with op.batch_alter_table("eval_suites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_suites_variant_of"))
        batch_op.drop_index(batch_op.f("ix_eval_suites_name"))
        batch_op.drop_index(batch_op.f("ix_eval_suites_content_hash"))
    op.drop_table("eval_suites")
