"""reviewer sign-off grants: the release-gate roles an identity may sign under

``reviewers.signoff_roles`` is a JSON list of role names (``safety_lead``,
``release_owner``); every existing identity starts with none, so after this upgrade
nobody may sign a gate decision off until a lead grants the role
(``hilt reviewer grant-signoff ID ROLE``). Stored decision records are not touched.

Revision ID: 0014_reviewer_signoff_roles
Revises: 0013_web_sessions
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014_reviewer_signoff_roles"
down_revision = "0013_web_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a NOT NULL column in place without a default; the
    # server default fills the existing rows with an empty list
    with op.batch_alter_table("reviewers", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "signoff_roles", sa.JSON().with_variant(JSONB(), "postgresql"),
            nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("reviewers", schema=None) as batch_op:
        batch_op.drop_column("signoff_roles")
