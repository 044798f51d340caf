"""The erasure lock: a subject's erasure never overlaps a build or an export.

Forgetting a subject revokes the versions and flags the exports it can see: committed
``dataset_records`` and ``dataset_exports`` rows. A build or an export still running
when the erasure commits would otherwise record content the erasure never saw. On
PostgreSQL every build and export holds this lock shared, from before it reads events or
records until it commits, and every erasure holds it exclusively, so an erasure waits for
running builds and exports (and sees what they recorded), and builds and exports that
start later wait for the erasure (and see the erased store or the revoked version).

Lock order: this lock comes first in every transaction that takes it, before the per
version build lock (:mod:`hilt.data.build`) and the audit chain's lock, so two of these
transactions never wait on each other in a cycle. SQLite needs nothing: every write
transaction already holds the database's write lock.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.store.pg_locks import SCHEMA_KEY, lock_params

# A two-key advisory lock in a key space of its own (see hilt.store.pg_locks; the builds
# take theirs in the space 0x68626C64).
_ERASURE_LOCK_SPACE = 0x68657273


def lock_for_reading(session: Session) -> None:
    """Held to commit by a build or an export (shared: they do not wait on each other)."""
    _lock(session, "pg_advisory_xact_lock_shared")


def lock_for_erasure(session: Session) -> None:
    """Held to commit by an erasure (exclusive: waits for running builds and exports)."""
    _lock(session, "pg_advisory_xact_lock")


def _lock(session: Session, function: str) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(sa.text(f"SELECT {function}(:lock_space, {SCHEMA_KEY})"),
                    lock_params(_ERASURE_LOCK_SPACE))
