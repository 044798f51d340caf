"""Operations commands: worker, jobs, webhook, backup, restore, metrics."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from hilt.cli import job_text
from hilt.cli.core import (
    DbOption,
    check_database,
    echo_json,
    engine_for,
    options_named,
    shown_url,
)
from hilt.cli.paging import AFTER_NAMED, AfterOption, note_more

JobId = Annotated[str, typer.Argument(help="job id")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
log = logging.getLogger("hilt.worker")

jobs_app = typer.Typer(help="Background jobs: start, list, show, cancel, retry, prune, "
                            "run periodic tasks.", no_args_is_help=True)
webhook_app = typer.Typer(help="Webhook subscriptions and the delivery log.",
                          no_args_is_help=True)


# Ctrl-C and SIGTERM stop a worker (and `hilt jobs work`) the same way.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _stop_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM while the block runs (main thread only)."""
    previous: dict[int, Any] = {}
    try:
        for sig in _STOP_SIGNALS:
            with suppress(ValueError):  # not the main thread: leave signals alone
                previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def _second_signal_stops_at_once() -> None:
    # The default action ends the process by the signal, without Python's clean-up: a
    # short job in progress rolls back with its transaction and is claimed again when
    # its lease lapses; a child process gets SIGTERM from the kernel (PR_SET_PDEATHSIG).
    for sig in _STOP_SIGNALS:
        with suppress(ValueError):
            signal.signal(sig, signal.SIG_DFL)


def _stopping_note(signum: int) -> str:
    again = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    return (f"stopping ({signal.Signals(signum).name}): no new job is taken; a running "
            "short job (an export, a snapshot) finishes, a training or evaluation child "
            "process is terminated (its job fails: the worker shut down); "
            f"{again} again stops at once")


def worker(concurrency: Annotated[int, typer.Option(
               min=0, help="job threads (0: periodic tasks only)")] = 1,
           periodic: Annotated[bool, typer.Option(
               help="also fire the periodic tasks (each still runs once per period "
                    "across all processes)")] = True,
           poll: Annotated[float, typer.Option(
               min=0.1, help="seconds between queue polls")] = 1.0,
           name: Annotated[str | None, typer.Option(
               help="worker name in job records (shown as NAME@HOST:PID)")] = None,
           db: DbOption = None) -> None:
    """Run background jobs until stopped; start as many as you like.

    Ctrl-C or SIGTERM stops it cleanly: it takes no new job, lets a running short job
    (an export, a snapshot) finish, terminates training and evaluation child processes
    (their jobs fail: "the worker shut down"), then exits with status 130 after Ctrl-C
    and 0 after SIGTERM (a service manager's stop). A second signal stops it at once."""
    import threading

    from hilt.ops.logs import configure_from_env, log_settings
    from hilt.ops.scheduler import Scheduler, check_settings
    from hilt.store.audit import BackgroundSealer

    caught: list[int] = []
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        caught.append(signum)
        stop.set()

    with _stop_signals(on_signal):
        configure_from_env()  # a bad HILT_LOG_LEVEL/FORMAT: one error line, exit 2
        check_settings(api=False)  # likewise a bad lease, webhook or period setting
        json_logs = log_settings()[1]

        def say(message: str, **extra: Any) -> None:
            # A line of the JSON log stream when there is one, else plain text: stderr
            # must stay one JSON object per line for the log collector.
            if json_logs:
                log.info(message, extra=extra)
            else:
                typer.echo(message, err=True)

        check_database(db)  # before any thread polls it
        engine = engine_for(db)
        with BackgroundSealer(engine):  # as in every `hilt serve` worker (PostgreSQL)
            sched = Scheduler(engine, name=name, periodic=periodic,
                              job_threads=concurrency, poll_s=poll).start()
            try:
                while not stop.wait(0.5):  # a timeout, so signals are seen at once
                    pass
                _second_signal_stops_at_once()
                say(_stopping_note(caught[0]), worker=sched.name)
            finally:
                sched.shutdown(wait=True)
        say("worker stopped", worker=sched.name)
    if caught and caught[0] == signal.SIGINT:
        raise typer.Exit(130)


def _param_options(kind: str, params: dict[str, str]) -> dict[str, str]:
    """Job parameter -> the option that gives it (``--param out``), for errors: the job
    functions name a parameter as the HTTP API does (``out``, ``params.status``)."""
    from hilt.ops.commands import CONTRACTS

    _, required, optional = CONTRACTS.get(kind, ([], (), ()))
    options = {"params": "--param"}
    for name in {*params, *required, *optional}:
        options[f"params.{name}"] = f"--param {name}"
        if name != "kind":  # field 'kind' is the KIND argument (an unknown job kind)
            options[name] = f"--param {name}"
    return options


@jobs_app.command("start")
def jobs_start(kind: Annotated[str, typer.Argument(
                   help="job kind, e.g. train.reward, eval.reward, train.classifier, "
                        "eval.check")],
               param: Annotated[list[str] | None, typer.Option(
                   "--param", "-p", help="NAME=VALUE (repeatable)")] = None,
               db: DbOption = None) -> None:
    """Queue a job, e.g. 'hilt jobs start train.reward -p pairs=P.jsonl -p out=RM';
    prints its id."""
    from hilt.errors import InputError
    from hilt.ops.commands import CONTRACTS, build_argv, check_inputs
    from hilt.ops.jobs import enqueue
    from hilt.store.db import transaction

    params: dict[str, str] = {}
    for item in param or []:
        if "=" not in item:
            raise InputError(f"expected NAME=VALUE, got {item!r}", field="--param")
        key, value = item.split("=", 1)
        if key in params:  # the last would silently win
            raise InputError(f"parameter {key!r} is given twice ({key}={params[key]} and "
                             f"{key}={value})", field=f"--param {key}")
        params[key] = value
    with options_named(_param_options(kind, params)):
        if kind in CONTRACTS:
            build_argv(kind, params)
            check_inputs(kind, params)  # a misspelt file: refused now, not in the worker
        with transaction(engine_for(db)) as session:
            job_id = enqueue(session, kind, params, actor="cli")
    echo_json({"job_id": job_id, "status": "queued"})


@jobs_app.command("list")
def jobs_list(status: Annotated[str | None, typer.Option(
                  help="queued, running, succeeded, failed or cancelled")] = None,
              kind: Annotated[str | None, typer.Option(help="only this job kind")] = None,
              limit: Annotated[int, typer.Option(min=1, help="at most this many jobs")
                               ] = 20,
              after: AfterOption = None,
              as_json: JsonOption = False, db: DbOption = None) -> None:
    """Jobs, newest first: a table with each running job's lease (which worker, as
    NAME@HOST:PID/THREAD, holds it and until when); --json for the full records. When
    more jobs follow, stderr says how to list them: 'more: --after CURSOR'."""
    from hilt.ops.job_views import JOB_ORDER, check_kind_filter, job_view, list_jobs
    from hilt.store.db import read_snapshot

    with options_named({"status": "--status", "kind": "--kind", **AFTER_NAMED}), \
            read_snapshot(engine_for(db)) as session:
        if kind is not None:
            check_kind_filter(session, kind)
        rows, more = JOB_ORDER.page(list_jobs(session, status=status, kind=kind,
                                              limit=limit + 1, after=after), limit)
        views = [job_view(r) for r in rows]
    if as_json:
        echo_json(views)
    else:
        typer.echo(job_text.jobs_table(views) if views else "no jobs")
    note_more(more)


@jobs_app.command("show")
def jobs_show(job_id: JobId, as_json: JsonOption = False, db: DbOption = None) -> None:
    """One job: parameters, status, progress, lease (worker, host, pid, until when),
    result or error."""
    from hilt.ops.job_views import job_view
    from hilt.ops.jobs import get_job
    from hilt.store.db import read_snapshot

    with read_snapshot(engine_for(db)) as session:
        view = job_view(get_job(session, job_id))
    if as_json:
        echo_json(view)
    else:
        typer.echo(job_text.job_record(view))


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobId, db: DbOption = None) -> None:
    """Cancel a queued job now; a running long job (training, evaluation) stops at its
    next progress report; a running short job cannot be interrupted (exit 2)."""
    from hilt.ops.job_views import job_view
    from hilt.ops.jobs import cancel
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        echo_json(job_view(cancel(session, job_id, actor="cli")))


@jobs_app.command("retry")
def jobs_retry(job_id: JobId, db: DbOption = None) -> None:
    """Queue a failed or cancelled job again (same id and parameters, its kind's number
    of attempts anew; audited). Prints the job as JSON."""
    from hilt.ops.job_views import job_view
    from hilt.ops.jobs import retry
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        echo_json(job_view(retry(session, job_id, actor="cli")))


@jobs_app.command("prune")
def jobs_prune(older_than: Annotated[str, typer.Option(
                   "--older-than", metavar="DURATION",
                   help="delete what finished longer ago than this: 30d, 12h, 90m, 45s")],
               db: DbOption = None) -> None:
    """Delete finished jobs (succeeded, failed, cancelled) and delivered webhook
    deliveries older than DURATION; queued and running jobs and pending or failed
    deliveries stay. Audited (ops.prune); prints the counts as JSON."""
    from hilt.ops.jobs import prune_older_than
    from hilt.store.db import transaction

    with options_named({"older_than": "--older-than"}), \
            transaction(engine_for(db)) as session:
        echo_json(prune_older_than(session, older_than, actor="cli"))


@jobs_app.command("run-periodic")
def jobs_run_periodic(name: Annotated[str | None, typer.Argument(
                          help="task name (default: all)")] = None,
                      db: DbOption = None) -> None:
    """Run periodic tasks once now (cron-style deployments without a scheduler).

    Prints each task's result as JSON (null: another process was running it). A task
    that fails is recorded as a failed job, as under the scheduler, and named on stderr
    with its error's last line; the command then exits 1."""
    from hilt.errors import InputError
    from hilt.ops.builtin import periodic_tasks
    from hilt.ops.periodic import PeriodicFailure, run_periodic

    engine = engine_for(db)
    tasks = [t for t in periodic_tasks() if name in (None, t.name)]
    if not tasks:
        raise InputError(f"no periodic task {name!r}", field="name")
    failures: list[PeriodicFailure] = []
    results: dict[str, Any] = {}
    for task in tasks:
        results[task.name] = run_periodic(engine, task, force=True, failures=failures)
    for failed in failures:
        results[failed.task] = {"failed": failed.error, "job_id": failed.job_id}
    echo_json(results)
    for failed in failures:
        recorded = f" (recorded as job {failed.job_id})" if failed.job_id else ""
        typer.echo(f"error: periodic task {failed.task} failed: {failed.error}{recorded}",
                   err=True)
    if failures:
        raise typer.Exit(1)


@jobs_app.command("work")
def jobs_work(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Run queued jobs until the queue is empty, then exit; prints each job it ran (id,
    kind, how it ended), or "no queued jobs". Exits 1 when a job it ran failed (or an
    attempt failed and the job was queued again), each named on stderr.

    Ctrl-C or SIGTERM stops it as it stops `hilt worker`: no further job is started,
    a running short job finishes, a training or evaluation child process is terminated;
    then it prints what ran and exits with status 130 (Ctrl-C) or 143 (SIGTERM), since
    jobs may be left in the queue. A second signal stops it at once."""
    import threading

    from hilt.ops.commands import stop_children
    from hilt.ops.jobs import claim, get_job, run_claimed
    from hilt.ops.scheduler import worker_name
    from hilt.store.db import read_snapshot

    engine, worker_id = engine_for(db), worker_name()
    caught: list[int] = []
    ran: list[dict[str, Any]] = []

    def stopping(signum: int) -> None:
        typer.echo(_stopping_note(signum), err=True)
        stop_children()  # its job then fails ("the worker shut down") in the main thread

    def on_signal(signum: int, _frame: Any) -> None:
        caught.append(signum)
        _second_signal_stops_at_once()
        # Not here: a handler that wrote to stderr while the interrupted code was
        # writing there would fail (reentrant call), and stop_children waits.
        threading.Thread(target=stopping, args=(signum,), daemon=True).start()

    with _stop_signals(on_signal):
        while not caught and (job := claim(engine, worker_id)) is not None:
            outcome = run_claimed(engine, job, worker_id)
            with read_snapshot(engine) as session:
                row = get_job(session, job.id)
                ran.append({"id": job.id, "kind": job.kind, "outcome": outcome,
                            "status": row.status, "attempt": job.attempt,
                            "max_attempts": row.max_attempts, "error": row.error})
    counts: dict[str, int] = {}
    for done in ran:
        counts[done["outcome"]] = counts.get(done["outcome"], 0) + 1
    stopped_by = signal.Signals(caught[0]).name if caught else None
    if as_json:
        echo_json({"ran": len(ran), "counts": counts, "jobs": ran,
                   "stopped_by": stopped_by})
    elif not ran:
        typer.echo("no queued jobs" if not caught else "no job ran")
    else:
        jobs = len({j["id"] for j in ran})
        tries = f" ({len(ran)} attempts)" if len(ran) != jobs else ""
        typer.echo(f"ran {jobs} job{'s' if jobs != 1 else ''}{tries}:")
        typer.echo(job_text.table(["ID", "KIND", "OUTCOME"],
                                  [[j["id"], j["kind"], job_text.outcome_text(j)]
                                   for j in ran]))
    failed = [j for j in ran if j["outcome"] in ("failed", "queued")]
    for bad in failed:
        typer.echo(f"error: job {bad['id']} ({bad['kind']}) {job_text.outcome_text(bad)}",
                   err=True)
    if caught:
        if not as_json:
            typer.echo(f"stopped by {stopped_by}; jobs still queued are left for the next "
                       "run", err=True)
        raise typer.Exit(130 if caught[0] == signal.SIGINT else 143)
    if failed:
        raise typer.Exit(1)


@webhook_app.command("add")
def webhook_add(url: Annotated[str, typer.Argument(help="where events are POSTed")],
                event: Annotated[list[str], typer.Option(
                    "--event", "-e", help="event type or '*' (repeatable)")],
                secret: Annotated[str | None, typer.Option(
                    help="signing secret, 16 to 200 characters (default: generated)")
                ] = None,
                description: Annotated[str, typer.Option(help="free text")] = "",
                db: DbOption = None) -> None:
    """Subscribe URL to event types; prints the signing secret once."""
    from hilt.ops.webhooks import subscribe
    from hilt.store.db import transaction

    with options_named({"event_types": "--event", "secret": "--secret",
                        "description": "--description"}), \
            transaction(engine_for(db)) as session:
        sub_id, secret = subscribe(session, url=url, event_types=event, actor="cli",
                                   secret=secret, description=description)
    echo_json({"id": sub_id, "secret": secret})


@webhook_app.command("list")
def webhook_list(db: DbOption = None) -> None:
    """Every subscription: URL, event types, active or not (never the secret)."""
    from hilt.ops.webhooks import list_subscriptions
    from hilt.store.db import read_snapshot

    with read_snapshot(engine_for(db)) as session:
        echo_json(list_subscriptions(session))


@webhook_app.command("remove")
def webhook_remove(sub_id: Annotated[str, typer.Argument(help="subscription id")],
                   db: DbOption = None) -> None:
    """Deactivate a subscription; nothing more is sent to it."""
    from hilt.ops.webhooks import unsubscribe
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        unsubscribe(session, sub_id, actor="cli")
    typer.echo(f"deactivated {sub_id}")


@webhook_app.command("deliveries")
def webhook_deliveries(subscription: Annotated[str | None, typer.Option(
                           help="only this subscription id")] = None,
                       status: Annotated[str | None, typer.Option(
                           help="pending, delivered or failed")] = None,
                       limit: Annotated[int, typer.Option(
                           min=1, help="at most this many deliveries")] = 50,
                       after: AfterOption = None, db: DbOption = None) -> None:
    """The delivery log (status, attempts, last error), newest audit entries first. When
    more deliveries follow, stderr says how to list them: 'more: --after CURSOR'."""
    from hilt.ops.webhooks import DELIVERY_ORDER, delivery_view, list_deliveries
    from hilt.store.db import read_snapshot

    with options_named({"status": "--status", **AFTER_NAMED}), \
            read_snapshot(engine_for(db)) as session:
        rows, more = DELIVERY_ORDER.page(list_deliveries(
            session, subscription_id=subscription, status=status, limit=limit + 1,
            after=after), limit)
        echo_json([delivery_view(r) for r in rows])
    note_more(more)


@webhook_app.command("replay")
def webhook_replay(delivery_id: Annotated[str, typer.Argument(help="delivery id")],
                   db: DbOption = None) -> None:
    """Send a delivery again (at the next delivery run)."""
    from hilt.ops.webhooks import delivery_view, replay
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        echo_json(delivery_view(replay(session, delivery_id, actor="cli")))


WaitOption = Annotated[float, typer.Option(
    "--wait", min=0, help="seconds to wait for a lock another connection holds on the "
    "database before giving up")]


def backup(out: Annotated[str, typer.Argument(
               help="backup file to create (a checksum file OUT.sha256 is written beside "
                    "it); 'verify FILE' checks a backup instead", metavar="OUT")],
           file: Annotated[Path | None, typer.Argument(
               help="with 'verify': the backup file to check", show_default=False)
           ] = None,
           wait: WaitOption = 60.0,
           db: DbOption = None) -> None:
    """Copy the SQLite database with the online backup API (safe while serving), or
    check a backup: 'hilt backup verify FILE'.

    The copy is verified before it is given its name, then OUT.sha256 (sha256sum
    format) is written beside it. Exits 1 if the copy's audit chain does not verify or
    an event no longer matches its content hash: the file is kept (as evidence), but
    `hilt restore` refuses it. A copy that is not an intact hilt database is not kept
    (exit 2, naming the database).

    'hilt backup verify FILE' only reads FILE (opened immutable: no lock, no journal,
    no change of mode): its checksum file, SQLite's integrity check, the schema
    revision, every event's content hash and the audit chain; it prints them and exits
    1 if any of them fails, the checksum file missing included."""
    from hilt.config import database_url
    from hilt.errors import InputError
    from hilt.ops.backup import backup as run_backup

    if out == "verify":
        if file is None:
            raise InputError("name the backup to check: hilt backup verify FILE (to back "
                             "up to a file named verify, write ./verify)", field="FILE")
        _verify_backup(file)
        return
    if file is not None:
        raise InputError(f"unexpected argument {str(file)!r}: hilt backup OUT makes one "
                         "backup; hilt backup verify FILE checks one", field="FILE")
    result = run_backup(db or database_url(), out, wait_s=wait)
    echo_json(result)
    if not result["audit"]["ok"] or result["events_bad"]:
        raise typer.Exit(1)


def _verify_backup(file: Path) -> None:
    from hilt.ops.backup import verify_backup

    result = verify_backup(file)
    echo_json(result)
    if result["checksum"] != "ok":
        typer.echo(f"{file}: checksum {result['checksum']} ({result['checksum_file']})",
                   err=True)
    if not result["ok"]:
        raise typer.Exit(1)


def restore(backup_file: Annotated[Path, typer.Argument(help="a file from hilt backup")],
            force: Annotated[bool, typer.Option(help="overwrite an existing database")
                             ] = False,
            without_checksum: Annotated[bool, typer.Option(
                "--without-checksum", help="restore a backup that has no checksum file "
                "(BACKUP_FILE.sha256; backups of older hilt versions); a checksum that "
                "does not match is refused all the same")] = False,
            wait: WaitOption = 60.0,
            db: DbOption = None) -> None:
    """Restore a SQLite backup (its checksum file, schema revision, event content hashes
    and audit chain are checked before, and the copy verified after).

    The restored audit log ends at the backup's last entry, followed by one
    store.restored entry naming the backup (its file name, sha256 and last audit entry)
    and who restored it, which webhooks deliver like any other event. The entries after
    it hand out the replaced database's sequence numbers again, so webhook receivers
    must not deduplicate on audit.seq alone (stderr says so; see docs/operations.md)."""
    from hilt.config import database_url
    from hilt.ops.backup import restore as run_restore
    from hilt.store.db import head_revision

    result = run_restore(backup_file, db or database_url(), force=force,
                         without_checksum=without_checksum, wait_s=wait)
    echo_json(result)
    typer.echo(_reused_seq_note(result), err=True)
    if result["schema_revision"] != head_revision():  # a newer one is refused before
        # Every other command refuses the restored database until it is upgraded.
        typer.echo(f"note: the backup's schema is revision {result['schema_revision']}, "
                   f"older than this hilt's ({head_revision()}); upgrade it before use "
                   f"with: hilt init --db {shown_url(db or database_url())}", err=True)
    if not result["audit"]["ok"]:
        raise typer.Exit(1)


def _reused_seq_note(result: dict[str, Any]) -> str:
    after, replaced = result["audit_seq_reused_after"], result["replaced_audit_head"]
    entry = result.get("restored_entry")
    gone = (f"; the database it replaced had entries up to seq {replaced}"
            if replaced is not None and replaced > after else "")
    recorded = (f", then this restore's own entry (store.restored, seq {entry['seq']})"
                if entry else "")
    return (f"note: the restored audit log ends at seq {after}{recorded}{gone}. New audit "
            f"entries take the sequence numbers after {after} again, so webhook events "
            "sent before the restore may share audit.seq with new ones: tell receivers "
            "that deduplicate on audit.seq alone to use X-Hilt-Delivery (or audit.seq "
            "with audit.hash)")


def metrics(db: DbOption = None) -> None:
    """Print the Prometheus metrics (what GET /metrics serves)."""
    from hilt.ops.metrics import render

    typer.echo(render(engine_for(db)).decode(), nl=False)


def check_can_listen(host: str, port: int) -> None:
    """Refuse to serve on an address that cannot be listened on (a port in use, an
    address this machine does not have) with one line, before the app starts.

    uvicorn would find out only after starting the app (and its scheduler), then log the
    error as a JSON line and exit 3 (1 with several workers); here it is a start-up
    error like any other: ``error: ...`` on stderr and exit 2. The probe binds as
    uvicorn does (SO_REUSEADDR, IPv6 sockets IPv6-only), every address ``host`` names,
    and closes at once."""
    import errno
    import socket

    from hilt.errors import HiltError

    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise HiltError(f"cannot listen on {host!r}: not an address or known host name "
                        f"({exc}); see --host") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                with suppress(OSError):
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise HiltError(
                        f"port {port} on {host} is in use (another 'hilt serve' or another "
                        "program listens there); stop it or choose another with --port"
                    ) from None
                raise HiltError(f"cannot listen on port {port} on {host}: "
                                f"{exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command()(worker)
    app.command()(backup)
    app.command()(restore)
    app.command()(metrics)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(webhook_app, name="webhook")

