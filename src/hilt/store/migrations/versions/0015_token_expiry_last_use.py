"""API token expiry and last use

``api_tokens.expires_at`` is when a token stops authenticating (NULL: never, as every
token made before this revision); ``api_tokens.last_used_at`` is when it last
authenticated (NULL: not since this revision). Both start NULL for existing tokens, so
the upgrade changes what no token may do.

Revision ID: 0015_token_expiry_last_use
Revises: 0014_reviewer_signoff_roles
"""

import sqlalchemy as sa
from alembic import op

import hilt.store.tables.base

revision = "0015_token_expiry_last_use"
down_revision = "0014_reviewer_signoff_roles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode, as 0014: nullable columns are added in place on SQLite (no rebuild of
    # the table web_sessions refers to), and the same code serves PostgreSQL
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "expires_at", hilt.store.tables.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column(
            "last_used_at", hilt.store.tables.base.UTCDateTime(timezone=True),
            nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
