"""In-process scheduling on APScheduler: periodic tasks and job-queue workers.

The same :class:`Scheduler` runs inside each ``hilt serve`` process (the embedded
default) and inside ``hilt worker`` processes (teams on PostgreSQL that want training
and exports off the API machines). It fires every periodic task on an interval timer
(each runs once per period across processes, see :mod:`hilt.ops.periodic`) and keeps
``job_threads`` threads draining the job queue (each claim is exclusive, see
:mod:`hilt.ops.jobs`). ``HILT_SCHEDULER=0`` turns it off in an API process, e.g. when
separate workers do all background work; ``HILT_JOB_THREADS=0`` keeps the periodic
tasks but leaves queued jobs to ``hilt worker``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC
from typing import Any

from sqlalchemy.engine import Engine

from hilt.config import env_float, env_int
from hilt.ops.jobs import load_job_modules, run_next
from hilt.ops.periodic import run_periodic

log = logging.getLogger("hilt.ops.scheduler")
STOPPED_JOB_GRACE_S = 15.0


class _ExpectedSkips(logging.Filter):
    """Drops APScheduler's "skipped: maximum number of running instances reached"
    warning. With ``max_instances=1`` a firing that finds the previous run of its job
    still going is skipped by design: a queue drainer busy with a job for an hour, or a
    delivery run waiting on a slow receiver, would otherwise log a warning every poll
    interval and drown the warnings that matter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str)
                    and "skipped: maximum number of running instances" in record.msg)


_EXPECTED_SKIPS = _ExpectedSkips()


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_name(name: str | None = None) -> str:
    """This process's worker id: ``HOST:PID``, or ``NAME@HOST:PID`` for a named worker,
    so that a job's lease always says on which machine and in which process it runs
    (:func:`hilt.ops.job_views.lease_view`); each queue thread appends ``/INDEX``."""
    return f"{name}@{default_worker_name()}" if name else default_worker_name()


class Scheduler:
    """Periodic tasks and queue drainers on one APScheduler ``BackgroundScheduler``."""

    def __init__(self, engine: Engine, *, name: str | None = None, periodic: bool = True,
                 job_threads: int = 1, poll_s: float = 1.0) -> None:
        self.engine = engine
        self.name = worker_name(name)
        self.periodic = periodic
        self.job_threads = job_threads
        self.poll_s = poll_s
        self._stopping = threading.Event()
        self._scheduler: Any = None
        self._draining = 0
        self._drain_done = threading.Condition()

    def start(self) -> Scheduler:
        from apscheduler.schedulers.background import BackgroundScheduler

        from hilt.ops.builtin import periodic_tasks

        load_job_modules()
        logging.getLogger("apscheduler.scheduler").addFilter(_EXPECTED_SKIPS)  # idempotent
        # coalesce + max_instances=1: a slow run is never stacked on itself.
        sched = BackgroundScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
        if self.periodic:
            for task in periodic_tasks():
                sched.add_job(run_periodic, "interval", seconds=task.interval_s,
                              args=(self.engine, task), id=f"periodic:{task.name}",
                              name=task.name)
        for index in range(self.job_threads):
            sched.add_job(self._drain, "interval", seconds=self.poll_s,
                          args=(f"{self.name}/{index}",), id=f"queue:{index}",
                          name=f"queue worker {index}")
        # Each queue drainer and periodic task needs its own thread.
        from apscheduler.executors.pool import ThreadPoolExecutor

        sched.add_executor(ThreadPoolExecutor(max_workers=self.job_threads + 8), "default")
        sched.start()
        self._scheduler = sched
        log.info("scheduler started", extra={"worker": self.name, "periodic": self.periodic,
                                             "job_threads": self.job_threads})
        return self

    def _drain(self, worker_id: str) -> None:
        with self._drain_done:
            self._draining += 1
        try:
            while not self._stopping.is_set():
                try:
                    status = run_next(self.engine, worker_id)
                except Exception:
                    log.exception("job queue poll failed")
                    return
                if status is None:
                    return
        finally:
            with self._drain_done:
                self._draining -= 1
                self._drain_done.notify_all()

    def shutdown(self, wait: bool = True) -> None:
        """Stop firing; terminate training and evaluation children first, whose jobs
        would otherwise run on unattended (and later be marked failed) after this
        process is gone."""
        from hilt.ops.commands import stop_children

        self._stopping.set()
        stopped = stop_children()
        if stopped:
            log.warning("stopped %d job child process(es) at shutdown", stopped)
            # Let their jobs record the outcome before the process goes (uvicorn ends
            # with the signal it caught, so nothing waits for these threads later).
            with self._drain_done:
                self._drain_done.wait_for(lambda: self._draining == 0,
                                          timeout=STOPPED_JOB_GRACE_S)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=wait)
            self._scheduler = None


def check_settings(*, api: bool = True) -> None:
    """Read every setting the background work reads (an :class:`InputError` naming the
    first bad one), before any of it starts: read first in a job thread or a periodic
    task, a typo in ``HILT_WEBHOOK_TIMEOUT_SECONDS`` or ``HILT_JOB_LEASE_SECONDS`` let the
    process start and then fail every poll and every period, each failure a traceback in
    the log and a failed job row. ``api``: also the settings of an API process's own
    scheduler (``HILT_JOB_THREADS``, ``HILT_JOB_POLL_SECONDS``), which ``hilt worker``
    takes as options instead."""
    from hilt.ops.builtin import periodic_tasks
    from hilt.ops.jobs import lease_seconds
    from hilt.ops.webhooks import delivery_settings

    if api:
        env_int("HILT_JOB_THREADS", 1, minimum=0)
        env_float("HILT_JOB_POLL_SECONDS", 1.0, above=0)
    lease_seconds()
    delivery_settings()
    periodic_tasks()  # HILT_PERIOD_<TASK>


def scheduler_from_env(engine: Engine) -> Scheduler | None:
    """The scheduler an API process runs, as configured by the environment."""
    if os.environ.get("HILT_SCHEDULER", "1") == "0":
        return None
    return Scheduler(engine, job_threads=env_int("HILT_JOB_THREADS", 1, minimum=0),
                     poll_s=env_float("HILT_JOB_POLL_SECONDS", 1.0, above=0))
