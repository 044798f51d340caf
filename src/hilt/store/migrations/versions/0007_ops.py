"""jobs, webhooks and deliveries

Revision ID: 0007_ops
Revises: 0006_gate
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0007_ops"
down_revision = "0006_gate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # this stage has no tables yet


def downgrade() -> None:
    pass
