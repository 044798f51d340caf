"""claimable-task index without the slot counter, room for in-place updates

Every claim decrements ``open_slots`` and every review increments ``reviews_done``. With
``open_slots`` in the claimable index's predicate, each claim wrote a new index entry and
left a dead one at the head of the queue, which the next claims had to step over until
vacuum ran. With the predicate on ``status`` only, neither counter is indexed, so both
updates can be heap-only (HOT) when the page has room: ``fillfactor = 80`` on PostgreSQL
keeps a fifth of each page free for them. Tasks whose slots are all leased stay in the
index until they are resolved; the claim checks ``open_slots > 0`` on the row.

Revision ID: 0011_claimable_index_hot
Revises: 0010_assignment_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_claimable_index_hot"
down_revision = "0010_assignment_index"
branch_labels = None
depends_on = None

_OPEN = sa.text("status = 'open'")
_CLAIMABLE = sa.text("status = 'open' AND open_slots > 0")


def upgrade() -> None:
    op.drop_index("ix_review_tasks_claimable", table_name="review_tasks")
    op.create_index("ix_review_tasks_claimable", "review_tasks",
                    ["pool", sa.text("priority DESC"), "id"], unique=False,
                    postgresql_where=_OPEN, sqlite_where=_OPEN)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE review_tasks SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE review_tasks RESET (fillfactor)")
    op.drop_index("ix_review_tasks_claimable", table_name="review_tasks")
    op.create_index("ix_review_tasks_claimable", "review_tasks",
                    ["pool", sa.text("priority DESC"), "id"], unique=False,
                    postgresql_where=_CLAIMABLE, sqlite_where=_CLAIMABLE)
