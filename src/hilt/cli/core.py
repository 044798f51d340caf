"""Core commands: init, ingest, schema, audit, token, reviewer, serve."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import Engine

from hilt.canonical import output_json
from hilt.config import database_url

audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (stored only as hashes).", no_args_is_help=True)
reviewer_app = typer.Typer(help="Reviewer identities.", no_args_is_help=True)
schema_app = typer.Typer(help="JSON Schemas of hilt's records.", no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option("--db", help="database URL (default: "
                     "$HILT_DATABASE_URL, else sqlite:///$HILT_HOME/hilt.db, HILT_HOME "
                     "defaulting to .hilt)")]


def engine_for(db: str | None) -> Engine:
    from hilt.store.db import make_engine

    return make_engine(db or database_url())


def check_database(db: str | None) -> None:
    """Connect once, in the command's own thread, before serving or working: a missing
    database, one without hilt's schema or at another revision, or a server that cannot
    be reached stops the command with one ``error:`` line (exit 2) as every other
    command does, rather than a server that listens with an unusable database and
    background threads that log the same traceback on every poll."""
    engine = engine_for(db)
    try:
        with engine.connect():
            pass  # the schema is checked on the first connection (hilt.cli)
    finally:
        engine.dispose()


def iso_times(value: Any) -> Any:
    """``value`` with every date and time in it written in ISO 8601
    (``2026-12-07T11:57:23+00:00``), as the HTTP API writes them, rather than as
    ``str()`` writes a datetime (a space between date and time)."""
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, dict):
        return {k: iso_times(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [iso_times(v) for v in value]
    return value


def echo_json(value: object) -> None:
    """Print a result as strict JSON: undefined numbers (NaN) as null, never bare NaN;
    times in ISO 8601 (:func:`iso_times`)."""
    typer.echo(output_json(iso_times(value)))


def as_options(exc: Exception, options: Mapping[str, str]) -> Exception:
    """The error with a field renamed to the command's option (``sla_hours`` →
    ``--sla-hours``, ``pool.0`` → ``--pool``), so that the message names what the user
    typed rather than the name the library (and the HTTP API) gives it. Errors about a
    file keep their field: it names a place in that file."""
    from hilt.errors import InputError

    if not isinstance(exc, InputError) or exc.file is not None or exc.field is None:
        return exc
    option = options.get(exc.field) or options.get(exc.field.split(".", 1)[0])
    if option is None:
        return exc
    return InputError(exc.reason, line=exc.line, field=option)


@contextmanager
def options_named(options: Mapping[str, str]) -> Iterator[None]:
    """Raise the InputErrors of the block with their fields named as ``options`` say
    (:func:`as_options`)."""
    from hilt.errors import InputError

    try:
        yield
    except InputError as exc:
        renamed = as_options(exc, options)
        if renamed is exc:
            raise
        raise renamed from None


def init(db: DbOption = None) -> None:
    """Create the database or migrate it to the newest schema."""
    from hilt.store.db import current_revision, migrate

    given = db or database_url()
    engine = engine_for(given)
    migrate(engine)
    typer.echo(f"database ready at {shown_url(given)} (schema {current_revision(engine)})")


def shown_url(url: str) -> str:
    """``url`` as the user gave it, its password masked."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def ingest(file: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet file")],
           skip_invalid: Annotated[bool, typer.Option(
               "--skip-invalid", help="store the good lines; write bad ones to a rejects "
               "file instead of failing the batch")] = False,
           rejects: Annotated[Path | None, typer.Option(
               help="rejects file (default: FILE.rejects.jsonl)")] = None,
           db: DbOption = None) -> None:
    """Ingest feedback events; all-or-nothing unless --skip-invalid. Prints JSON counts."""
    from hilt.events.ingest import ingest_file

    result = ingest_file(engine_for(db), file, actor="cli", skip_invalid=skip_invalid,
                         rejects_path=rejects)
    echo_json(result.as_dict())


@schema_app.command("event")
def schema_event() -> None:
    """Print the JSON Schema of a feedback event."""
    from hilt.events.model import event_json_schema

    echo_json(event_json_schema())


@audit_app.command("verify")
def audit_verify(db: DbOption = None,
                 expect: Annotated[list[str] | None, typer.Option(
                     "--expect", metavar="SEQ:HASH",
                     help="an entry the chain must contain, as printed in an earlier "
                     "run's head (repeatable): detects a chain cut back with its head")
                 ] = None,
                 events: Annotated[bool, typer.Option(
                     "--events", help="also hash every stored event's payload again and "
                     "compare it with its content_hash (streamed in batches)")] = False
                 ) -> None:
    """Check the whole chain; exit 1 and name the first bad entry if it was tampered with.

    Prints the head (seq, hash): keep it outside the database and pass it back with
    --expect. Pending entries (PostgreSQL) are sealed into the chain first; the walk
    itself only reads (on SQLite it holds up no writer).

    With --events every event is checked too (`events`: how many were checked, and
    the first few whose payload does not match its content hash, by id); events erased
    by `hilt forget`, which the audit log records, are not mismatches. Exit 1 if the
    chain or an event does not verify."""
    from hilt.errors import InputError
    from hilt.store import audit, event_hashes
    from hilt.store.db import read_snapshot

    try:
        anchors = [audit.parse_anchor(text) for text in expect or []]
    except ValueError as exc:
        raise InputError(str(exc), field="--expect") from None
    engine = engine_for(db)
    audit.seal_after_commit(engine, wait=True)
    with read_snapshot(engine) as session:
        result = audit.verify(session, expect=anchors)
        checked = event_hashes.verify_events(session) if events else None
    report = result.as_dict()
    if checked is not None:
        report["events"] = checked.as_dict()
    echo_json(report)
    if not result.ok or (checked is not None and not checked.ok):
        raise typer.Exit(1)


def audit_entity(entity_type: str, entity_id: str) -> str:
    """``TYPE:ID`` as ``hilt audit show`` prints an entry's entity. Subject entries of
    older stores hold ``subject:HASH`` as their id (kept: entries are hashed into the
    chain), which prints as ``subject:HASH`` too rather than with the type twice."""
    if entity_type == "subject" and entity_id.startswith("subject:"):
        return entity_id
    return f"{entity_type}:{entity_id}"


def _is_subject_hash(text: str) -> bool:
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


def _subject_spellings(entity: str) -> list[str]:
    """The entity ids under which ``--entity`` finds a subject's entries: its hash
    prefix alone (as written now) and with ``subject:`` before it (older stores)."""
    bare = entity.removeprefix("subject:")
    return [bare, f"subject:{bare}"]


@audit_app.command("show")
def audit_show(entity: Annotated[str | None, typer.Option(help="entity id")] = None,
               action: Annotated[str | None, typer.Option(
                   help="only this action, e.g. task.resolve")] = None,
               limit: Annotated[int, typer.Option(help="at most this many entries")] = 20,
               db: DbOption = None) -> None:
    """Print the newest audit entries."""
    from hilt.store import audit
    from hilt.store.db import read_snapshot

    with read_snapshot(engine_for(db)) as session:
        rows = audit.entries(session, entity_id=entity, action=action, limit=limit)
        if entity is not None and _is_subject_hash(entity.removeprefix("subject:")):
            # a subject's hash prefix, written with or without `subject:` (as printed):
            # entries of either spelling, newest first (pending ones, then by seq)
            found = {(r.seq, r.at, r.entity_id): r for spelling in
                     _subject_spellings(entity) if spelling != entity
                     for r in audit.entries(session, entity_id=spelling, action=action,
                                            limit=limit) if r.entity_type == "subject"}
            found.update({(r.seq, r.at, r.entity_id): r for r in rows})
            rows = sorted(found.values(), key=lambda r: (
                r.seq is not None, -(r.seq or 0), -r.at.timestamp()))[:limit]
        echo_json([{"seq": r.seq, "at": r.at, "actor": r.actor, "action": r.action,
                    "entity": audit_entity(r.entity_type, r.entity_id),
                    "payload": r.payload}
                   for r in rows])


@token_app.command("create")
def token_create(role: Annotated[str, typer.Option(help="admin, lead, adjudicator, "
                                                   "reviewer or service")],
                 name: Annotated[str, typer.Option(help="a label for people")] = "",
                 reviewer: Annotated[str | None, typer.Option(
                     help="reviewer id (required for reviewer and adjudicator tokens)")
                 ] = None,
                 expires_in: Annotated[str, typer.Option(
                     "--expires-in", metavar="DURATION",
                     help="the token stops working this long from now: 45s, 90m, 12h, "
                          "30d, 2w (at most 366d); 'never' (the default): it works until "
                          "revoked")] = "never",
                 db: DbOption = None) -> None:
    """Create an API token. The secret is printed once and stored only as a hash; the
    output says when the token expires (``never`` without --expires-in)."""
    from hilt.access import create_token, token_lifetime
    from hilt.store.db import transaction
    from hilt.store.tables.core import TokenRow

    # checked before the database is opened: a bad value changes nothing
    lifetime = token_lifetime(expires_in, "--expires-in")
    with options_named({"role": "--role", "reviewer": "--reviewer", "name": "--name",
                        "expires_in": "--expires-in"}), \
            transaction(engine_for(db)) as session:
        token_id, secret = create_token(session, role=role, name=name, reviewer_id=reviewer,
                                        expires_in=lifetime)
        expires_at = session.get_one(TokenRow, token_id).expires_at
    echo_json({"id": token_id, "role": role, "token": secret,
               "expires_at": expires_at.isoformat() if expires_at else "never"})


@token_app.command("list")
def token_list(db: DbOption = None) -> None:
    """Every token (never the secret) as JSON, oldest first: id, role, name, reviewer,
    status (active, expired or revoked), created_at, expires_at (``never`` for a token
    without expiry), last_used_at (null if not used yet; written at most about once
    a minute, so it may lag by that much), revoked and revoked_at."""
    from hilt.access import list_tokens
    from hilt.store.db import read_snapshot

    with read_snapshot(engine_for(db)) as session:
        echo_json(list_tokens(session))


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="token id")],
                 db: DbOption = None) -> None:
    """Revoke a token; API workers refuse it within HILT_AUTH_CACHE_S seconds (default 5).
    A token already revoked is left as it is (its revocation time and the audit log
    unchanged)."""
    from hilt.access import revocation_message, revoke_token
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        result = revoke_token(session, token_id)
    typer.echo(revocation_message(result))


@token_app.command("expire")
def token_expire(token_id: Annotated[str, typer.Argument(help="token id")],
                 expires_in: Annotated[str, typer.Option(
                     "--expires-in", metavar="DURATION",
                     help="the token's new lifetime, counted from now: 45s, 90m, 12h, "
                          "30d, 2w (at most 366d), or 'never'")],
                 db: DbOption = None) -> None:
    """Give a token a new expiry, counted from now (``never``: it works until revoked).
    A token that has expired may be given a new lifetime (the output says it had
    expired); a revoked one may not. API workers see the new expiry within
    HILT_AUTH_CACHE_S seconds (default 5)."""
    from hilt.access import expiry_message, set_token_expiry, token_lifetime
    from hilt.store.db import transaction

    # checked before the database is opened: a bad value changes nothing
    lifetime = token_lifetime(expires_in, "--expires-in")
    with transaction(engine_for(db)) as session:
        result = set_token_expiry(session, token_id, lifetime)
    typer.echo(expiry_message(result))


@reviewer_app.command("add")
def reviewer_add(reviewer_id: Annotated[str, typer.Argument(help="reviewer id")],
                 name: Annotated[str | None, typer.Option(help="display name")] = None,
                 role: Annotated[str, typer.Option(
                     help="reviewer, adjudicator or lead")] = "reviewer",
                 pool: Annotated[list[str] | None, typer.Option(help="pool (repeatable)")
                                 ] = None,
                 skill: Annotated[list[str] | None, typer.Option(help="skill (repeatable)")
                                  ] = None,
                 may_sign: Annotated[list[str] | None, typer.Option(
                     "--may-sign", metavar="ROLE",
                     help="a release-gate sign-off role this lead or admin may sign "
                          "under, e.g. safety_lead (repeatable)")] = None,
                 db: DbOption = None) -> None:
    """Add a reviewer identity (reviewer, adjudicator or lead)."""
    from hilt.access import add_reviewer
    from hilt.store.db import transaction

    with options_named({"display_name": "--name", "role": "--role", "pool": "--pool",
                        "skill": "--skill"}), transaction(engine_for(db)) as session:
        row = add_reviewer(session, reviewer_id=reviewer_id, display_name=name, role=role,
                           pools=pool, skills=skill, may_sign=may_sign)
        echo_json({"id": row.id, "role": row.role, "pools": row.pools,
                   "status": row.status, "signoff_roles": row.signoff_roles})


SignoffRoleArg = Annotated[str, typer.Argument(
    help="a sign-off role a gate policy requires (signoffs: role), e.g. safety_lead")]


@reviewer_app.command("grant-signoff")
def reviewer_grant_signoff(reviewer_id: Annotated[str, typer.Argument(help="reviewer id")],
                           role: SignoffRoleArg, db: DbOption = None) -> None:
    """Let a lead or admin sign gate decisions off under ROLE (audited). Prints JSON."""
    from hilt.access import grant_signoff
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        echo_json(grant_signoff(session, reviewer_id, role))


@reviewer_app.command("revoke-signoff")
def reviewer_revoke_signoff(reviewer_id: Annotated[str, typer.Argument(help="reviewer id")],
                            role: SignoffRoleArg, db: DbOption = None) -> None:
    """Withdraw a sign-off grant (audited); sign-offs already given stay. Prints JSON."""
    from hilt.access import revoke_signoff
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        echo_json(revoke_signoff(session, reviewer_id, role))


@reviewer_app.command("deactivate")
def reviewer_deactivate(reviewer_id: Annotated[str, typer.Argument(help="reviewer id")],
                        reason: Annotated[str, typer.Option(help="why, for the audit log")
                                          ] = "",
                        db: DbOption = None) -> None:
    """Deactivate a reviewer: their tokens stop working, their page sessions and leases
    end (the tasks go back to the queue). Prints JSON."""
    from hilt.access import set_reviewer_active
    from hilt.store.db import transaction

    with options_named({"reason": "--reason"}), transaction(engine_for(db)) as session:
        echo_json(set_reviewer_active(session, reviewer_id, False, reason=reason))


@reviewer_app.command("reactivate")
def reviewer_reactivate(reviewer_id: Annotated[str, typer.Argument(help="reviewer id")],
                        reason: Annotated[str, typer.Option(help="why, for the audit log")
                                          ] = "",
                        db: DbOption = None) -> None:
    """Reactivate a deactivated reviewer (their tokens work again). Prints JSON."""
    from hilt.access import set_reviewer_active
    from hilt.store.db import transaction

    with options_named({"reason": "--reason"}), transaction(engine_for(db)) as session:
        echo_json(set_reviewer_active(session, reviewer_id, True, reason=reason))


def serve(host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
          workers: Annotated[int, typer.Option(help="API worker processes (use "
                                               "PostgreSQL for more than one)")] = 1,
          forwarded_allow_ips: Annotated[str, typer.Option(
              envvar="FORWARDED_ALLOW_IPS",
              help="comma-separated addresses or networks (10.0.0.0/8) of proxies "
                   "whose X-Forwarded-Proto/-For headers are trusted; name a TLS proxy "
                   "on another host, or the session cookie never gets Secure. '*' "
                   "trusts any client")] = "127.0.0.1,::1",
          db: DbOption = None) -> None:
    """Serve the HTTP API (and pages) with uvicorn."""
    import os

    import uvicorn

    from hilt.cli import Terminated
    from hilt.cli.ops import check_can_listen  # here: cli.ops imports this module
    from hilt.ops.logs import log_settings

    # a bad HILT_LOG_LEVEL/HILT_LOG_FORMAT: one error line and exit 2 here, rather than a
    # traceback from inside uvicorn's import of the app
    log_settings()
    if os.environ.get("HILT_SCHEDULER", "1") != "0":
        from hilt.ops.scheduler import check_settings

        # likewise a bad background-work setting: read here, not once in each of
        # several uvicorn workers, which uvicorn would keep restarting
        check_settings()
    check_database(db)  # likewise a missing or outdated database
    check_can_listen(host, port)  # a port in use: likewise, before the app starts
    if db:
        os.environ["HILT_DATABASE_URL"] = db
    try:
        uvicorn.run("hilt.api.asgi:app", host=host, port=port, workers=workers,
                    log_level="info", proxy_headers=True,
                    forwarded_allow_ips=forwarded_allow_ips)
    except Terminated:
        # uvicorn shut down on SIGTERM, logged it, and raised the signal again for the
        # handler it found: a service manager's stop, exit 0 as for `hilt worker`, and
        # no plain-text line in the JSON log
        return
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(ingest)
    app.command()(serve)
    app.add_typer(schema_app, name="schema")
    app.add_typer(audit_app, name="audit")
    app.add_typer(token_app, name="token")
    app.add_typer(reviewer_app, name="reviewer")
