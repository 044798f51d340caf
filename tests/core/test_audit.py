"""The audit chain detects edited, deleted, inserted and reordered entries."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.canonical import canonical_json, sha256_hex
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.pg_locks import SCHEMA_KEY, lock_params
from hilt.store.tables.core import AuditHeadRow, AuditRow

_text = st.text(st.characters(blacklist_categories=("Cs",)))  # no lone surrogates
_json = st.recursive(st.none() | st.booleans() | st.integers() | _text
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_text, inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(seq=st.integers(min_value=1, max_value=2**62), at=st.datetimes(timezones=st.just(UTC)),
       actor=_text, action=_text, entity_type=_text, entity_id=_text,
       payload=st.dictionaries(_text, _json, max_size=4), prev=_text)
def test_entry_hash_is_the_hash_of_the_canonical_entry(
        seq: int, at: datetime, actor: str, action: str, entity_type: str, entity_id: str,
        payload: dict[str, object], prev: str) -> None:
    # The entry's text is assembled around the payload's canonical JSON; it must be the
    # very text canonical_json gives for the whole entry, or old chains stop verifying.
    body = {"seq": seq, "at": at.isoformat(), "actor": actor, "action": action,
            "entity_type": entity_type, "entity_id": entity_id, "payload": payload,
            "prev_hash": prev}
    assert audit.entry_hash(seq, at, actor, action, entity_type, entity_id, payload,
                            prev) == sha256_hex(canonical_json(body))


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


def test_rows_after_the_head_are_detected(engine: Engine) -> None:
    fill(engine)
    with engine.begin() as conn:
        six = conn.execute(sa.select(AuditRow).where(AuditRow.seq == 6)).one()
        conn.execute(sa.insert(AuditRow).values(
            seq=7, at=six.at, actor="x", action="thing.change", entity_type="thing",
            entity_id="forged", payload={}, prev_hash=six.hash, hash="0" * 64))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 7
    assert "after the head" in (result.problem or "")
    with engine.begin() as conn:
        conn.execute(sa.delete(AuditHeadRow))
    result = verify(engine)
    assert not result.ok and result.problem == "chain head missing"


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


def _pending(engine: Engine) -> int:
    with transaction(engine) as s:
        return audit.pending_count(s)


def test_entries_written_in_a_transaction_are_visible_and_sealed_after_commit(
        engine: Engine) -> None:
    with transaction(engine) as s:
        audit.append(s, actor="t", action="a", entity_type="e", entity_id="x")
        (entry,) = audit.entries(s, entity_id="x")
        # PostgreSQL: pending until the commit; SQLite: chained at once.
        assert entry.action == "a"
        assert (entry.seq is None) == (engine.dialect.name == "postgresql")
    assert _pending(engine) == 0
    with transaction(engine) as s:
        (entry,) = audit.entries(s, entity_id="x")
    assert entry.seq == 1 and entry.hash is not None


def test_seal_chains_in_batches_and_verifies(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains on append")
    with Session(engine) as s, s.begin():  # a session that does not seal after commit
        for i in range(7):
            audit.append(s, actor="t", action="a", entity_type="e", entity_id=str(i))
    assert _pending(engine) == 7
    with transaction(engine) as s:
        assert audit.seal(s, batch=3) == 7
        with engine.connect() as other:  # the chain lock is held until this commits
            assert other.execute(sa.text("SELECT pg_try_advisory_xact_lock("
                                         f":lock_space, {SCHEMA_KEY})"),
                                 lock_params(audit._PG_ADVISORY_KEY)).scalar() is False
    result = verify(engine)
    assert result.ok and result.entries == 7 and result.pending == 0
    with engine.connect() as conn:
        order = conn.execute(sa.select(AuditRow.entity_id).order_by(AuditRow.seq)).scalars()
        assert list(order) == [str(i) for i in range(7)]  # sealing keeps write order


def test_a_failed_seal_leaves_the_entries_pending(engine: Engine,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains on append")
    fill(engine, 2)
    with Session(engine) as s, s.begin():
        audit.append(s, actor="t", action="a", entity_type="e", entity_id="late")

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("sealer died")

    monkeypatch.setattr(audit, "_chain", crash)  # dies after taking the pending rows
    with pytest.raises(RuntimeError):
        audit.seal_after_commit(engine, wait=True)
    monkeypatch.undo()
    result = verify(engine)
    assert result.ok and result.entries == 2 and result.pending == 1
    assert audit.seal_after_commit(engine, wait=True) == 1
    assert verify(engine).entries == 3



def test_a_writer_whose_sealing_fails_still_succeeds(engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The change and its entry committed; a lost connection while sealing afterwards
    leaves the entry pending instead of failing the write."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains on append")
    fill(engine, 1)

    def lost(*args: object, **kwargs: object) -> None:
        raise sa.exc.OperationalError("SELECT pg_try_advisory_xact_lock", {},
                                      Exception("server closed the connection"))

    monkeypatch.setattr(audit, "seal", lost)
    with transaction(engine) as s:  # seals after its commit, through after_commit
        audit.append(s, actor="t", action="a", entity_type="e", entity_id="kept")
    monkeypatch.undo()
    result = verify(engine)
    assert result.ok and result.entries == 1 and result.pending == 1
    assert audit.seal_after_commit(engine, wait=True) == 1
    assert verify(engine).entries == 2

def _writer(url: str, worker: int, n: int) -> None:
    from hilt.store.db import make_engine

    engine = make_engine(url, pool_size=1, max_overflow=0)
    for i in range(n):
        with transaction(engine) as s:
            audit.append(s, actor=f"w{worker}", action="a", entity_type="e",
                         entity_id=f"{worker}-{i}")
    engine.dispose()


@pytest.mark.slow
def test_concurrent_writers_lose_and_duplicate_nothing(db_url: str, engine: Engine) -> None:
    workers, n = 8, 25
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_url, w, n)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    # A writer that found the chain lock busy leaves its entry to the next sealer.
    audit.seal_after_commit(engine, wait=True)
    result = verify(engine)
    assert result.ok and result.pending == 0 and result.entries == workers * n
    with engine.connect() as conn:
        ids = conn.execute(sa.select(AuditRow.entity_id)).scalars().all()
    assert sorted(ids) == sorted(f"{w}-{i}" for w in range(workers) for i in range(n))


def test_a_background_sealer_takes_sealing_off_the_writers(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains on append")
    with audit.BackgroundSealer(engine, interval_s=60):
        with transaction(engine) as s:
            audit.append(s, actor="t", action="a", entity_type="e", entity_id="x")
        assert _pending(engine) == 1  # the writer left it to the sealer
    assert _pending(engine) == 0  # sealed on the way out
    with audit.BackgroundSealer(engine, interval_s=0.05):
        with transaction(engine) as s:
            audit.append(s, actor="t", action="b", entity_type="e", entity_id="y")
        for _ in range(200):
            if _pending(engine) == 0:
                break
            time.sleep(0.01)
        assert _pending(engine) == 0  # sealed by the thread, not on the way out
    assert verify(engine).entries == 2


def _sealer(url: str, stop_after_s: float) -> None:
    from hilt.store.db import make_engine

    engine = make_engine(url, pool_size=1, max_overflow=0)
    deadline = time.monotonic() + stop_after_s
    while time.monotonic() < deadline:
        audit.seal_after_commit(engine, wait=True)
    engine.dispose()


@pytest.mark.slow
def test_concurrent_sealers_never_chain_an_entry_twice(db_url: str, engine: Engine) -> None:
    """Sealers that queue on the chain lock must not chain what the holder just sealed."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains on append")
    ctx = mp.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(db_url, w, 40)) for w in range(4)]
    sealers = [ctx.Process(target=_sealer, args=(db_url, 6.0)) for _ in range(4)]
    for p in writers + sealers:
        p.start()
    for p in writers + sealers:
        p.join(120)
        assert p.exitcode == 0
    audit.seal_after_commit(engine, wait=True)
    result = verify(engine)
    with engine.connect() as conn:
        ids = conn.execute(sa.select(AuditRow.entity_id)).scalars().all()
    assert len(ids) == len(set(ids)) == 4 * 40
    assert result.ok and result.pending == 0


def test_chain_copy_types_match_the_migrated_table(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains on append")
    from hilt.store.audit import _CHAIN_COLUMNS, CHAIN_COPY_TYPES
    from tests.conftest import copy_type_names

    types = copy_type_names(engine, "audit_log")
    assert set(types) == set(_CHAIN_COLUMNS)
    assert tuple(types[c] for c in _CHAIN_COLUMNS) == CHAIN_COPY_TYPES


def test_entries_read_while_a_sealer_commits_lists_each_entry_once(engine: Engine) -> None:
    """A sealer committing while the entries are read moves an entry from the pending
    table to the chain: the reader must see it in one place, not in both."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains on append")
    with Session(engine) as s, s.begin():  # a session that does not seal after commit
        audit.append(s, actor="t", action="a", entity_type="e", entity_id="moving")
    sealed: list[int] = []

    def seal_first(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "audit_log" in statement and not sealed:  # the chain is about to be read
            sealed.append(audit.seal_after_commit(engine, wait=True))

    sa.event.listen(engine, "before_cursor_execute", seal_first)
    try:
        with transaction(engine) as s:
            found = audit.entries(s, entity_id="moving")
    finally:
        sa.event.remove(engine, "before_cursor_execute", seal_first)
    assert sealed == [1]
    assert len(found) == 1 and found[0].seq == 1


def test_verify_while_a_sealer_commits_is_not_a_false_alarm(engine: Engine) -> None:
    """On a live system entries are sealed while the chain is walked: one sealed before
    each read of the head (the moments the old walk got wrong) must not look like
    tampering."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite chains on append")
    fill(engine)
    busy: list[bool] = []
    sealed: list[int] = []

    def seal_one(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM audit_head" not in statement or busy:
            return
        busy.append(True)  # the sealing below reads the head too
        try:
            with Session(engine) as other, other.begin():
                audit.append(other, actor="t", action="late", entity_type="e",
                             entity_id=str(len(sealed)))
            sealed.append(audit.seal_after_commit(engine, wait=True))
        finally:
            busy.clear()

    sa.event.listen(engine, "before_cursor_execute", seal_one)
    try:
        result = verify(engine)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seal_one)
    assert sealed and set(sealed) == {1}
    assert result.ok, result.problem
    assert verify(engine).entries == 6 + len(sealed)


def test_a_tail_cut_off_with_its_head_is_caught_by_an_expected_entry(engine: Engine) -> None:
    fill(engine)
    intact = verify(engine)
    assert intact.ok and intact.head is not None and intact.head[0] == 6
    with engine.begin() as conn:
        four = conn.execute(sa.select(AuditRow.hash).where(AuditRow.seq == 4)).scalar_one()
        conn.execute(sa.delete(AuditRow).where(AuditRow.seq > 4))
        conn.execute(sa.update(AuditHeadRow).values(seq=4, hash=four))
    assert verify(engine).ok  # the chain alone cannot tell
    with transaction(engine) as s:
        cut = audit.verify(s, expect=[intact.head])
        assert not cut.ok and cut.first_bad_seq == 5 and "before the expected entry 6" in (
            cut.problem or "")
        assert audit.verify(s, expect=[(4, four)]).ok
        wrong = audit.verify(s, expect=[(4, "f" * 64)])
        assert not wrong.ok and wrong.first_bad_seq == 4


def test_an_emptied_log_in_a_database_with_audited_rows_is_caught(engine: Engine) -> None:
    from hilt.events.ingest import ingest_events

    assert verify(engine).ok  # a fresh database: empty log, no rows
    ingest_events(engine, [{"id": "e1", "interaction": {"prompt": "p"},
                            "responses": [{"text": "r"}]}])
    with engine.begin() as conn:
        conn.execute(sa.delete(AuditRow))
        conn.execute(sa.delete(AuditHeadRow))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 1
    assert "empty but table events has rows" in (result.problem or "")


def test_parse_anchor_reads_what_verify_prints() -> None:
    assert audit.parse_anchor(f"12:{'AB' * 32}") == (12, "ab" * 32)
    for bad in ["12", "x:" + "a" * 64, "0:" + "a" * 64, "3:abc"]:
        with pytest.raises(ValueError, match="SEQ:HASH"):
            audit.parse_anchor(bad)


def test_cli_verify_prints_the_head_and_checks_expected_entries(db_url: str,
                                                               engine: Engine) -> None:
    import json

    from typer.testing import CliRunner

    from hilt.cli import app

    fill(engine)
    runner = CliRunner()
    first = runner.invoke(app, ["audit", "verify", "--db", db_url])
    assert first.exit_code == 0, first.output
    head = json.loads(first.output)["head"]
    anchor = f"{head['seq']}:{head['hash']}"
    assert runner.invoke(app, ["audit", "verify", "--db", db_url, "--expect", anchor]
                         ).exit_code == 0
    with engine.begin() as conn:
        conn.execute(sa.delete(AuditRow).where(AuditRow.seq == head["seq"]))
        conn.execute(sa.update(AuditHeadRow).values(
            seq=head["seq"] - 1, hash=conn.execute(sa.select(AuditRow.hash).where(
                AuditRow.seq == head["seq"] - 1)).scalar_one()))
    cut = runner.invoke(app, ["audit", "verify", "--db", db_url, "--expect", anchor])
    assert cut.exit_code == 1 and json.loads(cut.output)["ok"] is False


def test_cli_verify_does_not_hold_up_writers(tmp_path: object, db_url: str,
                                             engine: Engine,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the walk reads a snapshot: a write from elsewhere commits while it runs."""
    import threading

    from typer.testing import CliRunner

    from hilt.cli import app

    if engine.dialect.name != "sqlite":
        pytest.skip("the write lock question is SQLite's")
    fill(engine)
    walking, release = threading.Event(), threading.Event()
    real = audit.verify

    def slow_verify(session: Session, *args: object, **kwargs: object) -> audit.VerifyResult:
        result = real(session, *args, **kwargs)  # type: ignore[arg-type]
        walking.set()
        release.wait(10)
        return result

    monkeypatch.setattr(audit, "verify", slow_verify)
    cli = threading.Thread(target=lambda: CliRunner().invoke(app, ["audit", "verify",
                                                                   "--db", db_url]))
    cli.start()
    try:
        assert walking.wait(10)
        writer = threading.Thread(target=fill, args=(engine, 1))
        writer.start()
        writer.join(timeout=5)
        done = not writer.is_alive()
    finally:
        release.set()
        cli.join()
    writer.join()
    assert done, "a write waited for audit verify"
