"""eval runs and gate decisions

Revision ID: 0006_gate
Revises: 0005_registry
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0006_gate"
down_revision = "0005_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # this stage has no tables yet


def downgrade() -> None:
    pass
