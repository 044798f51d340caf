"""The audit chain detects edited, deleted, inserted and reordered entries."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import AuditHeadRow, AuditRow


def fill(engine: Engine, n: int = 6) -> None:
    with transaction(engine) as s:
        for i in range(n):
            audit.append(s, actor="t", action="thing.change", entity_type="thing",
                         entity_id=str(i), payload={"i": i, "note": "é"})


def verify(engine: Engine) -> audit.VerifyResult:
    with transaction(engine) as s:
        return audit.verify(s)


def test_intact_chain_verifies(engine: Engine) -> None:
    fill(engine)
    result = verify(engine)
    assert result.ok and result.entries == 6


def test_edit_is_detected(engine: Engine) -> None:
    fill(engine)
    with engine.begin() as conn:
        conn.execute(sa.update(AuditRow).where(AuditRow.seq == 3)
                     .values(payload={"i": 99, "note": "é"}))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 3 and "edited" in (result.problem or "")


def test_delete_in_the_middle_is_detected(engine: Engine) -> None:
    fill(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(AuditRow).where(AuditRow.seq == 4))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 5


def test_deleting_the_tail_is_detected(engine: Engine) -> None:
    fill(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(AuditRow).where(AuditRow.seq == 6))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 6


def test_reorder_is_detected(engine: Engine) -> None:
    fill(engine)
    with engine.begin() as conn:
        rows = {r.seq: r for r in conn.execute(sa.select(AuditRow)).all()}
        # Swap the content of entries 2 and 3 but keep their positions.
        for seq, other in ((2, 3), (3, 2)):
            src = rows[other]
            conn.execute(sa.update(AuditRow).where(AuditRow.seq == seq).values(
                at=src.at, actor=src.actor, action=src.action, entity_id=src.entity_id,
                payload=src.payload, prev_hash=src.prev_hash, hash=src.hash))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 2


def test_inserted_entry_with_valid_own_hash_is_detected(engine: Engine) -> None:
    fill(engine, 3)
    with engine.begin() as conn:
        # Make room at seq 2 by shifting 2..3 up, then forge a self-consistent entry.
        for seq in (3, 2):
            conn.execute(sa.update(AuditRow).where(AuditRow.seq == seq)
                         .values(seq=seq + 1))
        first = conn.execute(sa.select(AuditRow).where(AuditRow.seq == 1)).one()
        at = first.at
        forged = audit.entry_hash(2, at, "mallory", "x", "thing", "f", {}, first.hash)
        conn.execute(sa.insert(AuditRow).values(
            seq=2, at=at, actor="mallory", action="x", entity_type="thing", entity_id="f",
            payload={}, prev_hash=first.hash, hash=forged))
        conn.execute(sa.update(AuditHeadRow).values(seq=4))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 3


@pytest.mark.parametrize("n", [1, 2])
def test_rollback_leaves_no_entry(engine: Engine, n: int) -> None:
    fill(engine, n)
    with pytest.raises(RuntimeError), transaction(engine) as s:
        audit.append(s, actor="t", action="a", entity_type="e", entity_id="x")
        raise RuntimeError("boom")
    result = verify(engine)
    assert result.ok and result.entries == n
