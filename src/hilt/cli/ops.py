"""Operations commands: worker, jobs, webhook, backup, restore, metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hilt.cli.core import DbOption, echo_json, engine_for

JobId = Annotated[str, typer.Argument(help="job id")]

jobs_app = typer.Typer(help="Background jobs: start, list, show, cancel, run periodic "
                            "tasks.", no_args_is_help=True)
webhook_app = typer.Typer(help="Webhook subscriptions and the delivery log.",
                          no_args_is_help=True)


def worker(concurrency: Annotated[int, typer.Option(help="job threads")] = 1,
           periodic: Annotated[bool, typer.Option(
               help="also fire the periodic tasks (each still runs once per period "
                    "across all processes)")] = True,
           poll: Annotated[float, typer.Option(help="seconds between queue polls")] = 1.0,
           name: Annotated[str | None, typer.Option(help="worker name in job records")
                           ] = None,
           db: DbOption = None) -> None:
    """Run background jobs until stopped (SIGTERM/Ctrl-C); start as many as you like."""
    import signal
    import threading

    from hilt.ops.logs import configure_from_env
    from hilt.ops.scheduler import Scheduler
    from hilt.store.audit import BackgroundSealer

    configure_from_env()  # a bad HILT_LOG_LEVEL/FORMAT: one error line, exit 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    engine = engine_for(db)
    with BackgroundSealer(engine):  # as in every `hilt serve` worker (PostgreSQL)
        sched = Scheduler(engine, name=name, periodic=periodic, job_threads=concurrency,
                          poll_s=poll).start()
        try:
            stop.wait()
        finally:
            sched.shutdown(wait=True)


@jobs_app.command("start")
def jobs_start(kind: Annotated[str, typer.Argument(
                   help="job kind, e.g. train.reward, eval.reward, train.classifier, "
                        "eval.check")],
               param: Annotated[list[str] | None, typer.Option(
                   "--param", "-p", help="NAME=VALUE (repeatable)")] = None,
               db: DbOption = None) -> None:
    """Queue a job (e.g. ``hilt jobs start train.reward -p pairs=P.jsonl -p out=RM``)."""
    from hilt.errors import InputError
    from hilt.ops.commands import CONTRACTS, build_argv, check_inputs
    from hilt.ops.jobs import enqueue
    from hilt.store.db import transaction

    params: dict[str, str] = {}
    for item in param or []:
        if "=" not in item:
            raise InputError(f"expected NAME=VALUE, got {item!r}", field="param")
        key, value = item.split("=", 1)
        if key in params:  # the last would silently win
            raise InputError(f"parameter {key!r} is given twice ({key}={params[key]} and "
                             f"{key}={value})", field="param")
        params[key] = value
    if kind in CONTRACTS:
        build_argv(kind, params)
        check_inputs(kind, params)  # a file named by mistake: refused now, not in the worker
    with transaction(engine_for(db)) as session:
        job_id = enqueue(session, kind, params, actor="cli")
    echo_json({"job_id": job_id, "status": "queued"})


@jobs_app.command("list")
def jobs_list(status: Annotated[str | None, typer.Option(
                  help="queued, running, succeeded, failed or cancelled")] = None,
              kind: Annotated[str | None, typer.Option(help="only this job kind")] = None,
              limit: Annotated[int, typer.Option(help="at most this many jobs")] = 20,
              db: DbOption = None) -> None:
    """Jobs, newest first."""
    from hilt.ops.jobs import job_view, list_jobs
    from hilt.store.db import read_snapshot

    with read_snapshot(engine_for(db)) as session:
        echo_json([job_view(r) for r in list_jobs(session, status=status, kind=kind,
                                                  limit=limit)])


@jobs_app.command("show")
def jobs_show(job_id: JobId, db: DbOption = None) -> None:
    """One job: parameters, status, progress, result or error."""
    from hilt.ops.jobs import get_job, job_view
    from hilt.store.db import read_snapshot

    with read_snapshot(engine_for(db)) as session:
        echo_json(job_view(get_job(session, job_id)))


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobId, db: DbOption = None) -> None:
    """Cancel a queued job now; a running long job (training, evaluation) stops at its
    next progress report; a running short job cannot be interrupted (exit 2)."""
    from hilt.ops.jobs import cancel, job_view
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        echo_json(job_view(cancel(session, job_id, actor="cli")))


@jobs_app.command("run-periodic")
def jobs_run_periodic(name: Annotated[str | None, typer.Argument(
                          help="task name (default: all)")] = None,
                      db: DbOption = None) -> None:
    """Run periodic tasks once now (cron-style deployments without a scheduler)."""
    from hilt.errors import InputError
    from hilt.ops.builtin import periodic_tasks
    from hilt.ops.periodic import run_periodic

    engine = engine_for(db)
    tasks = [t for t in periodic_tasks() if name in (None, t.name)]
    if not tasks:
        raise InputError(f"no periodic task {name!r}", field="name")
    echo_json({t.name: run_periodic(engine, t, force=True) for t in tasks})


@jobs_app.command("work")
def jobs_work(db: DbOption = None) -> None:
    """Run queued jobs until the queue is empty, then exit."""
    from hilt.ops.jobs import run_next
    from hilt.ops.scheduler import default_worker_name

    engine, ran = engine_for(db), dict[str, int]()
    while (status := run_next(engine, default_worker_name())) is not None:
        ran[status] = ran.get(status, 0) + 1
    echo_json(ran)


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

    with transaction(engine_for(db)) as session:
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
                           help="at most this many deliveries")] = 50, db: DbOption = None) -> None:
    """The delivery log (status, attempts, last error)."""
    from hilt.ops.webhooks import delivery_view, list_deliveries
    from hilt.store.db import read_snapshot

    with read_snapshot(engine_for(db)) as session:
        echo_json([delivery_view(r) for r in list_deliveries(
            session, subscription_id=subscription, status=status, limit=limit)])


@webhook_app.command("replay")
def webhook_replay(delivery_id: Annotated[str, typer.Argument(help="delivery id")],
                   db: DbOption = None) -> None:
    """Send a delivery again (at the next delivery run)."""
    from hilt.ops.webhooks import delivery_view, replay
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        echo_json(delivery_view(replay(session, delivery_id, actor="cli")))


def backup(out: Annotated[Path, typer.Argument(help="backup file to create")],
           db: DbOption = None) -> None:
    """Copy the SQLite database with the online backup API (safe while serving).

    Exits 1 if the copy's audit chain does not verify or an event no longer matches its
    content hash: the file is kept (as evidence), but `hilt restore` refuses it."""
    from hilt.config import database_url
    from hilt.ops.backup import backup as run_backup

    result = run_backup(db or database_url(), out)
    echo_json(result)
    if not result["audit"]["ok"] or result["events_bad"]:
        raise typer.Exit(1)


def restore(backup_file: Annotated[Path, typer.Argument(help="a file from hilt backup")],
            force: Annotated[bool, typer.Option(help="overwrite an existing database")
                             ] = False,
            db: DbOption = None) -> None:
    """Restore a SQLite backup (its schema revision, event content hashes and audit chain
    are checked before, and the copy verified after)."""
    from hilt.config import database_url
    from hilt.ops.backup import restore as run_restore

    result = run_restore(backup_file, db or database_url(), force=force)
    echo_json(result)
    if not result["audit"]["ok"]:
        raise typer.Exit(1)


def metrics(db: DbOption = None) -> None:
    """Print the Prometheus metrics (what GET /metrics serves)."""
    from hilt.ops.metrics import render

    typer.echo(render(engine_for(db)).decode(), nl=False)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command()(worker)
    app.command()(backup)
    app.command()(restore)
    app.command()(metrics)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(webhook_app, name="webhook")

