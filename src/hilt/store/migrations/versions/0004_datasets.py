"""dataset versions and held-out registry

Revision ID: 0004_datasets
Revises: 0003_quality
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004_datasets"
down_revision = "0003_quality"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # this stage has no tables yet


def downgrade() -> None:
    pass
