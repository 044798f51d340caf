"""one successor per gate decision: a unique index on gate_decisions.supersedes

Two sign-offs of the same record at the same time each stored a record superseding it;
the chain forked and one sign-off was lost to whoever followed it. With the index the
second insert fails (and the sign-off is retried on the newest record). A database whose
chain already forked cannot take the index: the upgrade stops and names the records.

Revision ID: 0012_gate_supersedes_unique
Revises: 0011_claimable_index_hot
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_gate_supersedes_unique"
down_revision = "0011_claimable_index_hot"
branch_labels = None
depends_on = None


def upgrade() -> None:
    forks = op.get_bind().execute(sa.text(
        "SELECT supersedes, COUNT(*) FROM gate_decisions WHERE supersedes IS NOT NULL "
        "GROUP BY supersedes HAVING COUNT(*) > 1")).all()
    if forks:
        named = ", ".join(f"{row[0]} ({row[1]} successors)" for row in forks[:10])
        raise RuntimeError(
            "gate_decisions: these decisions are superseded more than once, so the chain "
            f"forked and a sign-off was hidden: {named}. Keep one successor of each (and "
            "its gate_signoffs row), sign the others off again on it, then upgrade.")
    op.create_index("uq_gate_decisions_supersedes", "gate_decisions", ["supersedes"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("uq_gate_decisions_supersedes", table_name="gate_decisions")
