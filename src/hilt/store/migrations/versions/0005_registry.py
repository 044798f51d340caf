"""model registry

Revision ID: 0005_registry
Revises: 0004_datasets
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0005_registry"
down_revision = "0004_datasets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # this stage has no tables yet


def downgrade() -> None:
    pass
