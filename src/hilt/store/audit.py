"""Append-only, hash-chained audit log.

Each entry's hash is sha256 over the canonical JSON of its fields and the previous
entry's hash, so editing, deleting, inserting or reordering any entry breaks the chain
from that point on. A separate head row (last seq and hash) catches truncation of the
tail. Entries are written inside the caller's transaction: the record of a change
commits or rolls back with the change itself.

Where the chain is extended depends on the database:

- SQLite: every hilt transaction already holds the database write lock (``BEGIN
  IMMEDIATE``), so :func:`append` extends the chain directly.
- PostgreSQL: extending the chain in the writer's transaction would hold one global lock
  from the append to the commit, serialising every write in the system. Instead
  :func:`append` inserts into ``audit_pending`` (no lock), and :func:`seal` moves the
  committed pending entries into the chain in short transactions of their own, in
  batches, under the chain lock. Who seals: the writer, right after its commit
  (:func:`after_commit`, a non-blocking try: if another process is sealing, that one or
  the next picks the entry up); in ``hilt serve`` and ``hilt worker`` processes a
  :class:`BackgroundSealer` every 0.2 s instead, so that requests and jobs do not pay
  for it. An entry waits in ``audit_pending`` for well under a second. Chain order
  is sealing order; each entry keeps the time it was written (``at``). This is the
  queue-then-sequence design of transparency logs (e.g. Trillian). Until it is sealed a
  pending entry is not yet tamper-evident; :func:`verify` reports how many are waiting
  and :func:`entries` shows them.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.canonical import canonical_json, sha256_hex
from hilt.store.bulk_copy import copy_rows
from hilt.store.pg_locks import SCHEMA_KEY, lock_params
from hilt.store.tables.base import UTCDateTime, utcnow
from hilt.store.tables.core import AuditHeadRow, AuditPendingRow, AuditRow

log = logging.getLogger("hilt.store.audit")

GENESIS = "0" * 64
# Any constant works; it only has to be the same for every writer of one schema (the
# lock's second key names the schema: see hilt.store.pg_locks).
_PG_ADVISORY_KEY = 0x68696C74  # "hilt"
# Set on a session whose transaction wrote pending entries (see seal_after_commit).
PENDING_FLAG = "hilt.audit.pending"
SEAL_BATCH = 5000


def entry_hash(seq: int, at: datetime, actor: str, action: str, entity_type: str,
               entity_id: str, payload: dict[str, Any], prev_hash: str) -> str:
    """sha256 of the canonical JSON of the entry's fields and the previous hash."""
    return _hash(seq, at, actor, action, entity_type, entity_id, canonical_json(payload),
                 prev_hash)


_quote = json.encoder.encode_basestring  # json.dumps of a str with ensure_ascii=False


def _hash(seq: int, at: datetime, actor: str, action: str, entity_type: str,
          entity_id: str, payload_json: str, prev_hash: str) -> str:
    """:func:`entry_hash` given the payload's canonical JSON. The entry's text is
    assembled around it — the very text ``canonical_json`` gives for the whole entry
    (tested) — so the sealer, which also writes that payload text into the log, encodes
    each payload once."""
    return sha256_hex(
        f'{{"action":{_quote(action)},"actor":{_quote(actor)},'
        f'"at":{_quote(at.isoformat())},"entity_id":{_quote(entity_id)},'
        f'"entity_type":{_quote(entity_type)},"payload":{payload_json},'
        f'"prev_hash":{_quote(prev_hash)},"seq":{int(seq)}}}')


_INSERT_PENDING = sa.insert(AuditPendingRow)
_INSERT_CHAINED = sa.insert(AuditRow)
_ITEM_FIELDS = ("at", "actor", "action", "entity_type", "entity_id", "payload")


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def append(session: Session, *, actor: str, action: str, entity_type: str, entity_id: str,
           payload: dict[str, Any] | None = None) -> None:
    """Record one entry in the current transaction."""
    # Round-trip through canonical JSON so the stored payload hashes identically later.
    item: Item = (utcnow(), actor, action, entity_type, entity_id,
                  json.loads(canonical_json(payload or {})))
    if _is_pg(session):
        session.connection().execute(_INSERT_PENDING, dict(zip(_ITEM_FIELDS, item,
                                                                strict=True)))
        mark_pending(session)
        return
    _chain(session, session.get(AuditHeadRow, 1), [item])


def pending_insert_sql(entity_id: str, source: str, *, driver: bool = False,
                       prefix: str = "audit") -> str:
    """An ``INSERT ... SELECT`` of one pending entry per row of ``source``, to embed as a
    data-modifying CTE on PostgreSQL so that a hot write path records its audit entry in
    the same round trip; bind :func:`pending_params` (with the same ``prefix``: one per
    entry a statement writes) and call :func:`mark_pending` (or
    :func:`after_autocommit`). ``driver``: psycopg's ``%(name)s`` placeholders instead of
    SQLAlchemy's ``:name``."""
    at, actor, action, entity_type, payload = (
        f"%({prefix}_{n})s" if driver else f":{prefix}_{n}"
        for n in ("at", "actor", "action", "entity_type", "payload"))
    return ("INSERT INTO audit_pending (at, actor, action, entity_type, entity_id, payload) "
            f"SELECT {at}, {actor}, {action}, {entity_type}, {entity_id}, "
            f"CAST({payload} AS jsonb) FROM {source} RETURNING id")


PENDING_BINDS = (sa.bindparam("audit_at", type_=UTCDateTime()),)


def pending_params(*, actor: str, action: str, entity_type: str,
                   payload: dict[str, Any], prefix: str = "audit") -> dict[str, Any]:
    return {f"{prefix}_at": utcnow(), f"{prefix}_actor": actor,
            f"{prefix}_action": action, f"{prefix}_entity_type": entity_type,
            f"{prefix}_payload": canonical_json(payload)}


def mark_pending(session: Session) -> None:
    session.info[PENDING_FLAG] = True


# An entry before it is chained: at, actor, action, entity_type, entity_id, payload.
Item = tuple[datetime, str, str, str, str, Any]


def _link(seq: int, prev: str, items: list[Item]) -> list[tuple[Any, ...]]:
    """Chain ``items`` after entry ``seq`` with hash ``prev``: a tuple per entry, in
    :data:`_CHAIN_COLUMNS` order, whose payload is its canonical JSON text."""
    rows = []
    for at, actor, action, entity_type, entity_id, payload in items:
        seq += 1
        text = canonical_json(payload)
        digest = _hash(seq, at, actor, action, entity_type, entity_id, text, prev)
        rows.append((seq, at, actor, action, entity_type, entity_id, text, prev, digest))
        prev = digest
    return rows


def _chain(session: Session, head: AuditHeadRow | None, items: list[Item]) -> int:
    """Extend the chain after ``head`` with ``items`` (the caller holds the chain lock)."""
    rows = _link(head.seq if head else 0, head.hash if head else GENESIS, items)
    if not rows:
        return 0
    if _is_pg(session):
        _copy_chained(session, rows)
    else:
        session.connection().execute(_INSERT_CHAINED, [
            {**dict(zip(_CHAIN_COLUMNS, row, strict=True)), "payload": item[-1]}
            for row, item in zip(rows, items, strict=True)])
    seq, prev = rows[-1][0], rows[-1][-1]
    if head is None:
        session.add(AuditHeadRow(id=1, seq=seq, hash=prev))
    else:
        head.seq, head.hash = seq, prev
    session.flush()
    return len(rows)


_CHAIN_COLUMNS = ("seq", "at", "actor", "action", "entity_type", "entity_id", "payload",
                  "prev_hash", "hash")
# Binary COPY must be told the column types; a test compares them with the table.
CHAIN_COPY_TYPES = ("int8", "timestamptz", "varchar", "varchar", "varchar", "varchar",
                    "jsonb", "varchar", "varchar")
_PAYLOAD = _CHAIN_COLUMNS.index("payload")


def _copy_chained(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: the sealed entries in one binary COPY, in the sealing transaction. An
    INSERT per entry (what executemany sends) cost the sealer about three times as much
    per entry, in Python and in the server; sealing runs after every write. The payload
    goes as the canonical text already made for the hash (``Jsonb(text, str)``: sent as
    is, not encoded again)."""
    conn: Any = session.connection().connection.driver_connection
    with conn.cursor() as cur:
        copy_rows(cur, "audit_log", _CHAIN_COLUMNS, CHAIN_COPY_TYPES,
                  (row[:_PAYLOAD] + (Jsonb(row[_PAYLOAD], str),) + row[_PAYLOAD + 1:]
                   for row in rows))


# Losing a sealing commit in a crash loses nothing: the pending rows are still there.
_LOCK_WAIT = sa.text(  # pg_advisory_xact_lock returns void; a FROM item is always run
    "SELECT true, set_config('synchronous_commit', 'off', true) "
    f"FROM (SELECT pg_advisory_xact_lock(:lock_space, {SCHEMA_KEY})) AS w")
_LOCK_TRY = sa.text(f"SELECT pg_try_advisory_xact_lock(:lock_space, {SCHEMA_KEY}), "
                    "set_config('synchronous_commit', 'off', true)")
# Take the oldest pending entries by deleting them: a row another sealer has already
# taken (and committed) is skipped by the delete, so no entry can be chained twice even
# if two sealers read the same rows. The lock then keeps the chain itself in order.
# A statement of its own after the lock: its snapshot must postdate the previous
# holder's commit.
# Through psycopg directly: SQLAlchemy's result rows cost the sealer a fifth of its time.
_TAKE = ("DELETE FROM audit_pending WHERE id IN "
         "(SELECT id FROM audit_pending ORDER BY id LIMIT %(n)s) "
         "RETURNING id, at, actor, action, entity_type, entity_id, payload")


def seal(session: Session, *, wait: bool = True, batch: int = SEAL_BATCH) -> int:
    """Chain the pending entries this transaction can see; returns how many.

    With ``wait=False`` it returns 0 at once if another transaction holds the chain lock
    (that sealer, or the next one, will take these entries)."""
    if not _is_pg(session):
        return 0  # SQLite chains on append
    conn = session.connection()
    got = conn.execute(_LOCK_WAIT if wait else _LOCK_TRY,
                       lock_params(_PG_ADVISORY_KEY)).scalar()
    if not got:
        return 0
    sealed = 0
    driver: Any = conn.connection.driver_connection
    while True:
        with driver.cursor() as cur:
            taken = sorted(cur.execute(_TAKE, {"n": batch}).fetchall())  # by id
        if not taken:
            return sealed
        head = session.get(AuditHeadRow, 1, populate_existing=True)
        # psycopg gives times in the connection's zone; the chain hashes them in UTC.
        sealed += _chain(session, head, [(at.astimezone(UTC), *rest)
                                         for _, at, *rest in taken])
        if len(taken) < batch:
            return sealed


def seal_after_commit(engine: Engine, *, wait: bool = False) -> int:
    """Seal in a short transaction of its own (called once a writer has committed)."""
    with Session(engine) as session, session.begin():
        return seal(session, wait=wait)


def after_commit(session: Session, engine: Engine) -> None:
    """Seal what the session's committed transaction left pending, unless a background
    sealer looks after this engine (then the writer does not pay for it)."""
    if session.info.pop(PENDING_FLAG, False) and engine not in _BACKGROUND:
        _seal_for_writer(engine)


def after_autocommit(engine: Engine) -> None:
    """The same, for a single statement that committed on its own and left an entry."""
    if engine not in _BACKGROUND:
        _seal_for_writer(engine)


def _seal_for_writer(engine: Engine) -> None:
    """The writer's change has committed with its entry: a database error while sealing
    (a lost connection, say) must not report that change as failed. The entries stay
    pending, and the next sealing takes them, whoever does it."""
    try:
        seal_after_commit(engine, wait=False)
    except sa.exc.DBAPIError:
        log.warning("sealing the audit log after a commit failed; the entries stay "
                    "pending until the next sealing", exc_info=True)


_BACKGROUND: weakref.WeakSet[Engine] = weakref.WeakSet()


class BackgroundSealer:
    """Seal every ``interval_s`` seconds in a daemon thread (every ``hilt serve`` and
    ``hilt worker`` process runs one on PostgreSQL). While it runs, writers on the
    engine skip sealing after their commits, which takes a transaction off every write;
    a busy chain lock in another process just means that process is sealing. On SQLite
    it does nothing."""

    def __init__(self, engine: Engine, interval_s: float = 0.2) -> None:
        self.engine, self.interval_s = engine, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BackgroundSealer:
        if self.engine.dialect.name == "postgresql":
            _BACKGROUND.add(self.engine)
            self._thread = threading.Thread(target=self._run, name="hilt-audit-sealer",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        _BACKGROUND.discard(self.engine)
        seal_after_commit(self.engine, wait=True)  # leave nothing behind on shutdown

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                seal_after_commit(self.engine, wait=False)
            except Exception:  # a lost connection: try again next time
                log.exception("sealing the audit log failed")


def pending_count(session: Session) -> int:
    if not _is_pg(session):
        return 0
    return int(session.execute(sa.select(sa.func.count()).select_from(AuditPendingRow))
               .scalar_one())


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    # Entries written but not yet sealed into the chain (PostgreSQL; see the module doc).
    pending: int = 0
    # The chain's head as verified, (seq, hash): record it outside the database and pass
    # it back later (``expect``) to detect a chain cut back to an earlier entry.
    head: tuple[int, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "first_bad_seq": self.first_bad_seq,
                "problem": self.problem, "pending": self.pending,
                "head": None if self.head is None else
                {"seq": self.head[0], "hash": self.head[1]}}


def _head(session: Session) -> tuple[int, str] | None:
    head = session.get(AuditHeadRow, 1, populate_existing=True)
    return None if head is None else (head.seq, head.hash)


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as printed by ``hilt audit verify``) -> ``(seq, hash)``."""
    seq_text, _, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if not seq_text.strip().isdigit() or int(seq_text) < 1 or len(digest) != 64 \
            or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"expected SEQ:HASH (a positive entry number and a 64-digit hex "
                         f"sha256), got {text!r}")
    return int(seq_text), digest


# Tables that a database with an empty audit log cannot have rows in: every change to
# them is recorded in the log, so rows there with no log mean the log was removed.
AUDITED_TABLES = ("events", "review_tasks", "reviews", "final_labels", "api_tokens")


def _audited_rows(session: Session) -> str | None:
    """The first audited table that has rows, if any."""
    inspector = sa.inspect(session.connection())
    for name in AUDITED_TABLES:
        if inspector.has_table(name) and session.execute(
                sa.select(sa.literal(1)).select_from(sa.table(name)).limit(1)).first():
            return name
    return None


# The raw columns of an entry: the stored time and payload are decoded per row (below),
# so one unreadable entry is reported as a bad entry instead of ending the walk.
_RAW = sa.select(AuditRow.seq, sa.type_coerce(AuditRow.at, sa.types.NullType()),
                 AuditRow.actor, AuditRow.action, AuditRow.entity_type, AuditRow.entity_id,
                 sa.type_coerce(AuditRow.payload, sa.types.NullType()),
                 AuditRow.prev_hash, AuditRow.hash)


def _decoder(session: Session) -> Any:
    """A function decoding one raw row's time and payload as the ORM would."""
    dialect = session.get_bind().dialect
    cols = AuditRow.__table__.c
    at_proc = cols.at.type.dialect_impl(dialect).result_processor(dialect, None)
    payload_proc = cols.payload.type.dialect_impl(dialect).result_processor(dialect, None)

    def decode(row: Any) -> tuple[Any, ...]:
        seq, at, actor, action, entity_type, entity_id, payload, prev, digest = row
        at = at_proc(at) if at_proc else at
        payload = payload_proc(payload) if payload_proc else payload
        if not isinstance(at, datetime) or not isinstance(payload, dict):
            raise ValueError("time or payload of the wrong type")
        return seq, at, actor, action, entity_type, entity_id, payload, prev, digest
    return decode


def verify(session: Session, batch: int = 5000,
           expect: Sequence[tuple[int, str]] = ()) -> VerifyResult:
    """Walk the chain in order and name the first entry that does not fit.

    The walk ends at the head as read first. A sealer commits its entries and the head
    together, so every entry up to that head is there to check, and entries sealed while
    the walk runs (a live system) are left for the next run instead of being taken for
    a chain that ends after its head; rows past the head are then looked for against a
    head read after them.

    The chain alone cannot show that its tail was cut off together with the head row
    (or that both tables were emptied): ``expect`` names entries recorded earlier outside
    the database, ``(seq, hash)``, that the chain must still contain; and an empty
    chain in a database whose audited tables have rows is reported as removed."""
    first = _head(session)
    end, end_hash = first if first is not None else (0, GENESIS)
    prev_hash, expected_seq, count = GENESIS, 1, 0
    last_seq = 0
    decode = _decoder(session)
    anchors, seen = dict(expect), set()
    while True:
        raw = session.execute(_RAW.where(AuditRow.seq > last_seq, AuditRow.seq <= end)
                              .order_by(AuditRow.seq).limit(batch)).all()
        if not raw:
            break
        for raw_row in raw:
            count += 1
            try:
                row = _Entry(*decode(raw_row))
            except (ValueError, TypeError) as exc:
                return VerifyResult(False, count, raw_row[0],
                                    f"entry unreadable (time or payload edited: {exc})")
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
            if row.seq in anchors:
                if row.hash != anchors[row.seq]:
                    return VerifyResult(False, count, row.seq,
                                        "entry does not have the expected hash (the chain "
                                        "was rewritten from here or earlier)")
                seen.add(row.seq)
            prev_hash, expected_seq, last_seq = row.hash, row.seq + 1, row.seq
    if last_seq != end or prev_hash != end_hash:
        return VerifyResult(False, count, last_seq + 1,
                            f"chain ends at seq {last_seq} but head says {end} "
                            "(tail deleted or head edited)")
    if set(anchors) - seen:
        return VerifyResult(False, count, last_seq + 1,
                            f"chain ends at seq {last_seq}, before the expected entry "
                            f"{min(set(anchors) - seen)} (tail and head removed)")
    if count == 0 and pending_count(session) == 0:
        table = _audited_rows(session)
        if table is not None:
            return VerifyResult(False, 0, 1, f"the audit log is empty but table {table} "
                                "has rows (log removed)")
    # Read in this order: any row a sealer committed is covered by the head read after.
    highest = session.execute(sa.select(sa.func.max(AuditRow.seq))).scalar() or 0
    later = _head(session)
    if highest > (later[0] if later is not None else 0):
        problem = "chain head missing" if later is None else (
            f"entries after the head (seq {later[0]})")
        return VerifyResult(False, count, 1 if later is None else later[0] + 1, problem)
    return VerifyResult(True, count, pending=pending_count(session),
                        head=None if first is None else first)


@dataclass(frozen=True)
class _Entry:
    seq: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditEntry:
    """One entry as read back; ``seq`` and ``hash`` are ``None`` while it is pending."""

    seq: int | None
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    payload: dict[str, Any]
    hash: str | None


def entries(session: Session, *, entity_id: str | None = None, action: str | None = None,
            limit: int = 100) -> list[AuditEntry]:
    """The newest entries first: pending ones (PostgreSQL, not yet sealed), then the chain.

    On PostgreSQL both tables are read by one statement: each statement of a READ
    COMMITTED transaction has its own snapshot, so with two a sealer committing in
    between would show an entry twice (pending, then chained) or not at all."""
    def part(n: int, table: Any, order: Any, seq: Any, hash_: Any) -> Any:
        q = sa.select(sa.literal(n).label("part"), order.label("ord"), seq.label("seq"),
                      table.at, table.actor, table.action, table.entity_type,
                      table.entity_id, table.payload, hash_.label("hash"))
        if entity_id:
            q = q.where(table.entity_id == entity_id)
        if action:
            q = q.where(table.action == action)
        # Each table's newest first, on its own index, before the two are merged.
        return sa.select(q.order_by(order.desc()).limit(limit).subquery())

    filtered = [part(1, AuditRow, AuditRow.seq, AuditRow.seq, AuditRow.hash)]
    if _is_pg(session):
        none_seq = sa.cast(sa.null(), AuditRow.seq.type)
        none_hash = sa.cast(sa.null(), AuditRow.hash.type)
        filtered.insert(0, part(0, AuditPendingRow, AuditPendingRow.id, none_seq, none_hash))
    rows = sa.union_all(*filtered).subquery()
    query = (sa.select(rows.c.seq, rows.c.at, rows.c.actor, rows.c.action, rows.c.entity_type,
                       rows.c.entity_id, rows.c.payload, rows.c.hash)
             .order_by(rows.c.part, rows.c.ord.desc()).limit(limit))
    return [AuditEntry(*row) for row in session.execute(query)]

