"""Append-only, hash-chained audit log.

Each entry's hash is sha256 over the canonical JSON of its fields and the previous
entry's hash, so editing, deleting, inserting or reordering any entry breaks the chain
from that point on. A separate head row (last seq and hash) catches truncation of the
tail. Entries are appended inside the caller's transaction: the record of a change
commits or rolls back with the change itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import canonical_json, sha256_hex
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import AuditHeadRow, AuditRow

GENESIS = "0" * 64
# Any constant works; it only has to be the same for every writer of one database.
_PG_ADVISORY_KEY = 0x68696C74  # "hilt"


def entry_hash(seq: int, at: datetime, actor: str, action: str, entity_type: str,
               entity_id: str, payload: dict[str, Any], prev_hash: str) -> str:
    body = {"seq": seq, "at": at.isoformat(), "actor": actor, "action": action,
            "entity_type": entity_type, "entity_id": entity_id, "payload": payload,
            "prev_hash": prev_hash}
    return sha256_hex(canonical_json(body))


def _lock_chain(session: Session) -> None:
    """Serialise appenders so two transactions never extend the same head."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_ADVISORY_KEY})
    # SQLite: every hilt transaction already holds the write lock (BEGIN IMMEDIATE).


def append(session: Session, *, actor: str, action: str, entity_type: str, entity_id: str,
           payload: dict[str, Any] | None = None) -> AuditRow:
    """Add one entry to the chain in the current transaction."""
    _lock_chain(session)
    head = session.get(AuditHeadRow, 1, with_for_update=True)
    seq = (head.seq + 1) if head else 1
    prev = head.hash if head else GENESIS
    at = utcnow()
    # Round-trip through canonical JSON so the stored payload hashes identically later.
    clean = json.loads(canonical_json(payload or {}))
    digest = entry_hash(seq, at, actor, action, entity_type, entity_id, clean, prev)
    row = AuditRow(seq=seq, at=at, actor=actor, action=action, entity_type=entity_type,
                   entity_id=entity_id, payload=clean, prev_hash=prev, hash=digest)
    session.add(row)
    if head is None:
        session.add(AuditHeadRow(id=1, seq=seq, hash=digest))
    else:
        head.seq, head.hash = seq, digest
    session.flush()
    return row


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "first_bad_seq": self.first_bad_seq,
                "problem": self.problem}


def verify(session: Session, batch: int = 5000) -> VerifyResult:
    """Walk the chain in order and name the first entry that does not fit."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = session.execute(
            sa.select(AuditRow).where(AuditRow.seq > last_seq).order_by(AuditRow.seq)
            .limit(batch)).scalars().all()
        if not rows:
            break
        for row in rows:
            count += 1
            if row.seq != expected_seq:
                kind = "deleted" if row.seq > expected_seq else "duplicated"
                return VerifyResult(False, count, row.seq,
                                    f"entry {expected_seq} missing ({kind}); found seq {row.seq}")
            if row.prev_hash != prev_hash:
                return VerifyResult(False, count, row.seq,
                                    "prev_hash does not match the previous entry "
                                    "(inserted, deleted or reordered)")
            recomputed = entry_hash(row.seq, row.at, row.actor, row.action, row.entity_type,
                                    row.entity_id, row.payload, row.prev_hash)
            if recomputed != row.hash:
                return VerifyResult(False, count, row.seq, "content does not match its hash "
                                    "(edited)")
            prev_hash, expected_seq, last_seq = row.hash, row.seq + 1, row.seq
        session.expunge_all()
    head = session.get(AuditHeadRow, 1)
    if head is None and count:
        return VerifyResult(False, count, 1, "chain head missing")
    if head is not None and (head.seq != last_seq or head.hash != prev_hash):
        return VerifyResult(False, count, last_seq + 1,
                            f"chain ends at seq {last_seq} but head says {head.seq} "
                            "(tail deleted or head edited)")
    return VerifyResult(True, count)


def entries(session: Session, *, entity_id: str | None = None, action: str | None = None,
            limit: int = 100) -> list[AuditRow]:
    q = sa.select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit)
    if entity_id:
        q = q.where(AuditRow.entity_id == entity_id)
    if action:
        q = q.where(AuditRow.action == action)
    return list(session.execute(q).scalars())
