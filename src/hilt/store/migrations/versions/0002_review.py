"""review workflow tables (rubrics, rules, tasks, reviews, adjudication, final labels)

Revision ID: 0002_review
Revises: 0001_core
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0002_review"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # this stage has no tables yet


def downgrade() -> None:
    pass
