"""reviewer lookups on assignments: only active leases need a reviewer-first index

The claim's "never seen by this reviewer" check probes (task_id, reviewer_id), the
unique index. A general (reviewer_id, status) index invited plans that scan all of a
reviewer's assignments for every candidate task (quadratic in a reviewer's history)
whenever the planner's statistics lag behind a fast-growing table.

Revision ID: 0010_assignment_index
Revises: 0009_audit_pending
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_assignment_index"
down_revision = "0009_audit_pending"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_review_assignments_reviewer", table_name="review_assignments")
    op.create_index("ix_review_assignments_reviewer_active", "review_assignments",
                    ["reviewer_id"], unique=False,
                    postgresql_where=sa.text("status = 'active'"),
                    sqlite_where=sa.text("status = 'active'"))


def downgrade() -> None:
    op.drop_index("ix_review_assignments_reviewer_active", table_name="review_assignments")
    op.create_index("ix_review_assignments_reviewer", "review_assignments",
                    ["reviewer_id", "status"], unique=False)
