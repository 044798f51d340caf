"""label quality tables (gold, calibration)

Revision ID: 0003_quality
Revises: 0002_review
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_quality"
down_revision = "0002_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # this stage has no tables yet


def downgrade() -> None:
    pass
