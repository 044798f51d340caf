"""drift monitors, alerts and bridge sets

Revision ID: 0008_drift
Revises: 0007_ops
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0008_drift"
down_revision = "0007_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # this stage has no tables yet


def downgrade() -> None:
    pass
