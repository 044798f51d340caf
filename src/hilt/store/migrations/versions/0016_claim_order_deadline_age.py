"""claimable-task index in the claim's order: priority, then deadline, then age

Among tasks of equal priority (every overdue task of one severity has urgency 1, and
tasks created since the last triage run share theirs) the claim serves the earliest SLA
deadline first, then the oldest task, then the id (``hilt.review.queue.CLAIM_ORDER``).
The index holds that order per pool, so a claim still reads the head of its pool's
queue instead of sorting every ready task. Its predicate stays ``status = 'open'``
(0011): neither slot counter is indexed, and ``sla_due_at`` changes only when a task
breaches its SLA or joins a cluster, so claims and reviews still update in place.

Revision ID: 0016_claim_order_deadline_age
Revises: 0015_token_expiry_last_use
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_claim_order_deadline_age"
down_revision = "0015_token_expiry_last_use"
branch_labels = None
depends_on = None

_OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.drop_index("ix_review_tasks_claimable", table_name="review_tasks")
    op.create_index("ix_review_tasks_claimable", "review_tasks",
                    ["pool", sa.text("priority DESC"), "sla_due_at", "created_at", "id"],
                    unique=False, postgresql_where=_OPEN, sqlite_where=_OPEN)


def downgrade() -> None:
    op.drop_index("ix_review_tasks_claimable", table_name="review_tasks")
    op.create_index("ix_review_tasks_claimable", "review_tasks",
                    ["pool", sa.text("priority DESC"), "id"], unique=False,
                    postgresql_where=_OPEN, sqlite_where=_OPEN)
