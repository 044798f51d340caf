"""drift monitors, alerts and bridge sets

Revision ID: 0008_drift
Revises: 0007_ops
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import hilt.store.tables.base

revision = "0008_drift"
down_revision = "0007_ops"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def _time() -> hilt.store.tables.base.UTCDateTime:
    return hilt.store.tables.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drift_alerts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("monitor", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(length=500), nullable=False),
        sa.Column("group", _json(), nullable=False),
        sa.Column("window_start", _time(), nullable=False),
        sa.Column("window_end", _time(), nullable=False),
        sa.Column("reference_start", _time(), nullable=False),
        sa.Column("test", sa.String(length=32), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("effect_name", sa.String(length=32), nullable=False),
        sa.Column("effect", sa.Float(), nullable=False),
        sa.Column("min_effect", sa.Float(), nullable=False),
        sa.Column("n_current", sa.Integer(), nullable=False),
        sa.Column("n_reference", sa.Integer(), nullable=False),
        sa.Column("n_tests", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("acknowledged_at", _time(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_alerts")),
    )
    op.create_index("ix_drift_alerts_monitor_window", "drift_alerts",
                    ["monitor", "window_start"], unique=False)
    op.create_index(op.f("ix_drift_alerts_status"), "drift_alerts", ["status"], unique=False)
    op.create_table(
        "bridge_sets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("rubric_id", sa.String(length=100), nullable=False),
        sa.Column("old_version", sa.Integer(), nullable=False),
        sa.Column("new_version", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(length=100), nullable=False),
        sa.Column("per_stratum", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("strata", _json(), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bridge_sets")),
    )
    op.create_index(op.f("ix_bridge_sets_rubric_id"), "bridge_sets", ["rubric_id"],
                    unique=False)
    op.create_table(
        "bridge_items",
        sa.Column("bridge_id", sa.String(length=40), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("old_label_id", sa.String(length=64), nullable=False),
        sa.Column("old_value", _json(), nullable=False),
        sa.Column("stratum", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["bridge_id"], ["bridge_sets.id"],
                                name=op.f("fk_bridge_items_bridge_id_bridge_sets")),
        sa.ForeignKeyConstraint(["task_id"], ["review_tasks.id"],
                                name=op.f("fk_bridge_items_task_id_review_tasks")),
        sa.PrimaryKeyConstraint("bridge_id", "task_id", name=op.f("pk_bridge_items")),
    )
    op.create_index(op.f("ix_bridge_items_task_id"), "bridge_items", ["task_id"],
                    unique=False)
    op.create_table(
        "rubric_compat_decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("rubric_id", sa.String(length=100), nullable=False),
        sa.Column("old_version", sa.Integer(), nullable=False),
        sa.Column("new_version", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("mapping", _json(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("bridge_id", sa.String(length=40), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubric_compat_decisions")),
    )
    op.create_index("ix_rubric_compat_decisions_pair", "rubric_compat_decisions",
                    ["rubric_id", "old_version", "new_version"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_rubric_compat_decisions_pair", table_name="rubric_compat_decisions")
    op.drop_table("rubric_compat_decisions")
    op.drop_index(op.f("ix_bridge_items_task_id"), table_name="bridge_items")
    op.drop_table("bridge_items")
    op.drop_index(op.f("ix_bridge_sets_rubric_id"), table_name="bridge_sets")
    op.drop_table("bridge_sets")
    op.drop_index(op.f("ix_drift_alerts_status"), table_name="drift_alerts")
    op.drop_index("ix_drift_alerts_monitor_window", table_name="drift_alerts")
    op.drop_table("drift_alerts")
