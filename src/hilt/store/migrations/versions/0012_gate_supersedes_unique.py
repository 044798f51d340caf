"""one successor per gate decision: a unique index on gate_decisions.supersedes

Two sign-offs of the same record at the same time each stored a record superseding it;
the chain forked and one sign-off was lost to whoever followed it. With the index the
second insert fails (and the sign-off is retried on the newest record). A database whose
chain already forked cannot take the index: the upgrade stops and names the records.

Revision ID: 0012_gate_supersedes_unique
Revises: 0011_claimable_index_hot
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from hilt.errors import InputError

revision = "0012_gate_supersedes_unique"
down_revision = "0011_claimable_index_hot"
branch_labels = None
depends_on = None


def upgrade() -> None:
    forks = op.get_bind().execute(sa.text(
        "SELECT supersedes, hash FROM gate_decisions WHERE supersedes IN ("
        "SELECT supersedes FROM gate_decisions WHERE supersedes IS NOT NULL "
        "GROUP BY supersedes HAVING COUNT(*) > 1) ORDER BY supersedes, created_at, hash")
    ).all()
    if forks:
        raise InputError(_fork_advice(forks), field="--db")
    op.create_index("uq_gate_decisions_supersedes", "gate_decisions", ["supersedes"],
                    unique=True)


def _fork_advice(forks: Sequence[Any]) -> str:
    """What the operator is to do about decisions superseded more than once: keep the
    first successor of each, remove the others with their sign-off rows, sign again."""
    successors: dict[str, list[str]] = {}
    for decided, successor in forks:
        successors.setdefault(decided, []).append(successor)
    named = "; ".join(f"{decided} ({len(later)} successors: keep {later[0]}, remove "
                      f"{', '.join(later[1:])})"
                      for decided, later in list(successors.items())[:10])
    return ("cannot upgrade: gate decisions superseded more than once (two sign-offs at "
            "once forked the chain and one sign-off was hidden): " + named + ". Back the "
            "database up, then for each successor to remove delete its gate_signoffs rows "
            "(resulting_hash = it) and its gate_decisions row, run hilt init again, and "
            "sign the removed sign-offs off again on the kept decision")


def downgrade() -> None:
    op.drop_index("uq_gate_decisions_supersedes", table_name="gate_decisions")
