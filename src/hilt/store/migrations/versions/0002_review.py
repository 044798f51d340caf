"""review workflow tables (rubrics, rules, tasks, reviews, adjudication, final labels)

Revision ID: 0002_review
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import hilt.store.tables.base

revision = "0002_review"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalation_rule_sets",
        sa.Column("rule_set_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "spec",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("changelog", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.Column(
            "published_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("rule_set_id", "version", name=op.f("pk_escalation_rule_sets")),
    )
    op.create_index(
        op.f("ix_escalation_rule_sets_active"), "escalation_rule_sets", ["active"], unique=False
    )
    op.create_table(
        "rubric_versions",
        sa.Column("rubric_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column(
            "spec",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("changelog", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.Column(
            "published_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("rubric_id", "version", name=op.f("pk_rubric_versions")),
    )
    op.create_table(
        "review_tasks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("pool", sa.String(length=100), nullable=False),
        sa.Column(
            "required_skills",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("severity", sa.SmallInteger(), nullable=False),
        sa.Column("rubric_id", sa.String(length=100), nullable=False),
        sa.Column("rubric_version", sa.Integer(), nullable=False),
        sa.Column("overlap_k", sa.Integer(), nullable=False),
        sa.Column("n_responses", sa.Integer(), nullable=False),
        sa.Column("open_slots", sa.Integer(), nullable=False),
        sa.Column("reviews_done", sa.Integer(), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column(
            "gold_answers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("uncertainty", sa.Float(), nullable=False),
        sa.Column("reach", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=True),
        sa.Column("representative_id", sa.String(length=64), nullable=True),
        sa.Column("sla_due_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "sla_breached_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("rule_set_id", sa.String(length=100), nullable=True),
        sa.Column("rule_set_version", sa.Integer(), nullable=True),
        sa.Column("rule_name", sa.String(length=200), nullable=True),
        sa.Column(
            "matched",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sampling_probability", sa.Float(), nullable=False),
        sa.Column(
            "policy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "adjudication_reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_review_tasks_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_tasks")),
    )
    op.create_index(
        op.f("ix_review_tasks_cluster_id"), "review_tasks", ["cluster_id"], unique=False
    )
    op.create_index(op.f("ix_review_tasks_event_id"), "review_tasks", ["event_id"], unique=False)
    op.create_index(
        "ix_review_tasks_status_sla", "review_tasks", ["status", "sla_due_at"], unique=False
    )
    op.create_table(
        "adjudications",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("adjudicator_id", sa.String(length=200), nullable=False),
        sa.Column(
            "answers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column(
            "reason",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rubric_id", sa.String(length=100), nullable=False),
        sa.Column("rubric_version", sa.Integer(), nullable=False),
        sa.Column("decided_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["review_tasks.id"], name=op.f("fk_adjudications_task_id_review_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adjudications")),
        sa.UniqueConstraint("task_id", name=op.f("uq_adjudications_task_id")),
    )
    op.create_index(op.f("ix_adjudications_cause"), "adjudications", ["cause"], unique=False)
    op.create_table(
        "final_labels",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("rubric_id", sa.String(length=100), nullable=False),
        sa.Column("rubric_version", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(length=100), nullable=False),
        sa.Column("question_kind", sa.String(length=32), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("provenance", sa.String(length=32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column(
            "review_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("adjudication_id", sa.String(length=64), nullable=True),
        sa.Column("source_task_id", sa.String(length=64), nullable=True),
        sa.Column("policy_version", sa.String(length=200), nullable=True),
        sa.Column("decided_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["review_tasks.id"], name=op.f("fk_final_labels_task_id_review_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_final_labels")),
        sa.UniqueConstraint("task_id", "question_id", name="uq_final_labels_task_question"),
    )
    op.create_index(
        op.f("ix_final_labels_decided_at"), "final_labels", ["decided_at"], unique=False
    )
    op.create_index(op.f("ix_final_labels_event_id"), "final_labels", ["event_id"], unique=False)
    op.create_table(
        "review_assignments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("reviewer_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("claimed_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "lease_expires_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("finished_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["reviewers.id"],
            name=op.f("fk_review_assignments_reviewer_id_reviewers"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["review_tasks.id"],
            name=op.f("fk_review_assignments_task_id_review_tasks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_assignments")),
        sa.UniqueConstraint("task_id", "reviewer_id", name="uq_review_assignments_task_reviewer"),
    )
    op.create_index(
        "ix_review_assignments_active_expiry",
        "review_assignments",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "ix_review_assignments_reviewer",
        "review_assignments",
        ["reviewer_id", "status"],
        unique=False,
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("assignment_id", sa.String(length=64), nullable=False),
        sa.Column("reviewer_id", sa.String(length=200), nullable=False),
        sa.Column("rubric_id", sa.String(length=100), nullable=False),
        sa.Column("rubric_version", sa.Integer(), nullable=False),
        sa.Column(
            "answers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("rewrite", sa.Text(), nullable=True),
        sa.Column("time_spent_s", sa.Float(), nullable=True),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column(
            "submitted_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["review_tasks.id"], name=op.f("fk_reviews_task_id_review_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("assignment_id", name=op.f("uq_reviews_assignment_id")),
    )
    op.create_index(op.f("ix_reviews_reviewer_id"), "reviews", ["reviewer_id"], unique=False)
    op.create_index(op.f("ix_reviews_submitted_at"), "reviews", ["submitted_at"], unique=False)
    op.create_index(op.f("ix_reviews_task_id"), "reviews", ["task_id"], unique=False)

    # A claim reads exactly these rows, best first; expression index written by hand.
    op.create_index(
        "ix_review_tasks_claimable",
        "review_tasks",
        ["pool", sa.text("priority DESC"), "id"],
        unique=False,
        postgresql_where=sa.text("status = 'open' AND open_slots > 0"),
        sqlite_where=sa.text("status = 'open' AND open_slots > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_review_tasks_claimable", table_name="review_tasks")
    op.drop_index(op.f("ix_reviews_task_id"), table_name="reviews")
    op.drop_index(op.f("ix_reviews_submitted_at"), table_name="reviews")
    op.drop_index(op.f("ix_reviews_reviewer_id"), table_name="reviews")
    op.drop_table("reviews")
    op.drop_index("ix_review_assignments_reviewer", table_name="review_assignments")
    op.drop_index(
        "ix_review_assignments_active_expiry",
        table_name="review_assignments",
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.drop_table("review_assignments")
    op.drop_index(op.f("ix_final_labels_event_id"), table_name="final_labels")
    op.drop_index(op.f("ix_final_labels_decided_at"), table_name="final_labels")
    op.drop_table("final_labels")
    op.drop_index(op.f("ix_adjudications_cause"), table_name="adjudications")
    op.drop_table("adjudications")
    op.drop_index("ix_review_tasks_status_sla", table_name="review_tasks")
    op.drop_index(op.f("ix_review_tasks_event_id"), table_name="review_tasks")
    op.drop_index(op.f("ix_review_tasks_cluster_id"), table_name="review_tasks")
    op.drop_table("review_tasks")
    op.drop_table("rubric_versions")
    op.drop_index(op.f("ix_escalation_rule_sets_active"), table_name="escalation_rule_sets")
    op.drop_table("escalation_rule_sets")
