"""One-statement transactions on PostgreSQL through psycopg directly, on connections of
the engine's pool that are kept checked out between calls.

The review path's claim and submission are each one prepared statement in autocommit
mode (:mod:`hilt.review.pg_fast`). Checking a connection out of SQLAlchemy's pool and
back in, and switching it into and out of autocommit, cost more Python than the
statement itself does; so up to half the pool's size of these connections stay checked
out, idle, in autocommit mode with their cursor, on a per-engine stack (last in, first
out: the warmest is reused). They are closed when the engine is disposed or collected.
Only sized pools take part (a pool without a size, e.g. ``NullPool``, gets a fresh
checkout every time).

Statements are written with psycopg's ``%(name)s`` placeholders and sent with
PostgreSQL's own ``$n`` ones through a :class:`psycopg.RawCursor`, converted once per
statement (:func:`native`): psycopg caches its own conversion only for queries of up to
4,096 bytes and 50 parameters, and re-parses longer ones on every execution (a fifth of
the workers' time in the benchmark's "submit and next" statement, 5.3 kB).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import weakref
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%|\$")


@functools.lru_cache(maxsize=512)
def native(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with PostgreSQL's ``$n`` placeholders, and the parameter name of each
    ``n`` (a name used twice is one parameter); ``%%`` is a literal ``%``."""
    names: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        if m.group(0) == "$":
            raise ValueError("a statement for psycopg placeholders must not contain '$'")
        return f"${names.setdefault(m.group(1), len(names) + 1)}"

    return _PLACEHOLDER.sub(number, sql), tuple(names)


class _Kept:
    """The idle connections kept for one engine, in one process."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.pid = os.getpid()
        self.items: list[tuple[Any, Any]] = []  # (pool fairy, its cursor)
        self.lock = threading.Lock()

    def pop(self) -> tuple[Any, Any] | None:
        with self.lock:
            return self.items.pop() if self.items else None

    def push(self, item: tuple[Any, Any]) -> bool:
        with self.lock:
            if len(self.items) >= self.cap:
                return False
            self.items.append(item)
            return True

    def drain(self) -> None:
        """Close the kept connections (the engine was disposed or collected: their pool
        is gone, so giving them back would leave them open). Never in a forked child:
        closing would end the parent's sessions on the sockets they share."""
        if os.getpid() != self.pid:
            return
        with self.lock:
            items, self.items = self.items, []
        for fairy, _ in items:
            fairy.invalidate()
            fairy.close()


_KEPT: weakref.WeakKeyDictionary[Engine, _Kept] = weakref.WeakKeyDictionary()
_KEPT_LOCK = threading.Lock()
# Stacks inherited through fork: their connections belong to the parent; they are kept
# referenced so that collecting them never closes a socket the parent still uses.
_INHERITED: list[_Kept] = []


def _kept(engine: Engine) -> _Kept:
    kept = _KEPT.get(engine)
    if kept is not None and kept.pid == os.getpid():
        return kept
    with _KEPT_LOCK:
        kept = _KEPT.get(engine)
        if kept is not None and kept.pid == os.getpid():
            return kept
        if kept is not None:
            _INHERITED.append(kept)
        size = getattr(engine.pool, "size", None)
        fresh = _Kept(size() // 2 if callable(size) else 0)
        _KEPT[engine] = fresh
        event.listen(engine, "engine_disposed", lambda _engine: fresh.drain())
        weakref.finalize(engine, fresh.drain)
        return fresh


def _give_back(fairy: Any) -> None:
    """Back to the pool, out of autocommit mode (SQLAlchemy's sessions expect a
    connection that opens transactions)."""
    try:
        conn = fairy.driver_connection
        if conn is not None and not conn.closed and not conn.broken:
            if conn.info.transaction_status != _IDLE:  # e.g. a statement that said BEGIN
                conn.rollback()
            conn.autocommit = False
    finally:
        fairy.close()


def _usable(fairy: Any) -> bool:
    conn = fairy.driver_connection
    return bool(conn is not None and not conn.closed and not conn.broken
                and conn.info.transaction_status == _IDLE)


class Statements:
    """A connection held for a few one-statement transactions in a row (a claim, or a
    submission and its task's resolution): a kept connection, or one checked out of the
    pool and switched to autocommit, with one reusable cursor. psycopg errors come out
    as SQLAlchemy's, like everywhere else; a connection that broke (server restart, a
    terminated backend) is invalidated instead of being kept or going back to the pool.

    Use as a context manager; a connection is only taken by the first :meth:`run`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._fairy: Any = None
        self._cursor: Any = None

    def __enter__(self) -> Statements:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _checkout(self) -> Any:
        item = _kept(self.engine).pop()
        if item is not None:
            self._fairy, self._cursor = item
            return self._cursor
        fairy = self.engine.raw_connection()
        conn: Any = fairy.driver_connection
        try:
            if conn.info.transaction_status != _IDLE:  # e.g. a connect hook's query
                conn.rollback()
            conn.autocommit = True
            # The cursor lives as long as its connection; re-made only after a reconnect.
            cached = fairy.info.get("hilt_cursor")
            if cached is None or cached.connection is not conn or cached.closed:
                cached = fairy.info["hilt_cursor"] = psycopg.RawCursor(conn)
        except Exception:
            fairy.invalidate()
            fairy.close()
            raise
        self._fairy, self._cursor = fairy, cached
        return cached

    def run(self, sql: str, params: dict[str, Any], *, many: bool = False) -> Any:
        """One statement as its own transaction: the first row (or all, ``many``)."""
        cur = self._cursor if self._fairy is not None else self._checkout()
        query, names = native(sql)
        try:
            cur.execute(query, [params[name] for name in names], prepare=True)
            return cur.fetchall() if many else cur.fetchone()
        except Exception as exc:
            conn = self._fairy.driver_connection
            broken = bool(conn.closed or conn.broken)
            if broken:
                fairy, self._fairy, self._cursor = self._fairy, None, None
                fairy.invalidate(exc)
                fairy.close()
            if isinstance(exc, psycopg.Error):
                raise sa.exc.DBAPIError.instance(sql, params, exc, psycopg.Error,
                                                 connection_invalidated=broken) from exc
            raise

    def close(self) -> None:
        """Keep the connection for the next caller, or give it back to the pool when
        enough are kept (or it is not in a state to be reused)."""
        fairy, cursor = self._fairy, self._cursor
        self._fairy = self._cursor = None
        if fairy is None:
            return
        kept = _kept(self.engine)
        if not (_usable(fairy) and kept.push((fairy, cursor))):
            _give_back(fairy)


def run_statement(engine: Engine, sql: str, params: dict[str, Any], *, many: bool = False
                  ) -> Any:
    """One statement in autocommit mode on a kept or pooled connection (see
    :class:`Statements`)."""
    with Statements(engine) as stmts:
        return stmts.run(sql, params, many=many)
