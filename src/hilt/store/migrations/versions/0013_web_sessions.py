"""page sessions: the sign-in cookie holds a session id, not the API token

Each sign-in stores the sha256 of a fresh random session id with the token it stands
for and an expiry; sign-out deletes the row, so a copied cookie stops working.

Revision ID: 0013_web_sessions
Revises: 0012_gate_supersedes_unique
"""

import sqlalchemy as sa
from alembic import op

import hilt.store.tables.base

revision = "0013_web_sessions"
down_revision = "0012_gate_supersedes_unique"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", hilt.store.tables.base.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column("expires_at", hilt.store.tables.base.UTCDateTime(timezone=True),
                  nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["api_tokens.id"],
                                name=op.f("fk_web_sessions_token_id_api_tokens")),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_token_id"), "web_sessions", ["token_id"],
                    unique=False)
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_sessions_expires_at"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_token_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
