"""The built-in background work: periodic sweeps and the job kinds users can start.

Periodic (every process fires them; each runs once per period across processes):

========================  ========  ==================================================
task                      every     effect
========================  ========  ==================================================
review.expire_leases      30 s      return the slots of lapsed leases (review.queue)
review.resolve_complete   10 s      resolve tasks left with all reviews (review.work)
review.sla_breaches       60 s      re-escalate tasks past their SLA (review.triage)
review.priorities         5 min     recompute triage priorities as deadlines near
quality.snapshot          10 min    queue a ``quality.snapshot`` job (agreement, gold)
quality.statuses          2 min     reviewer statuses from gold answers (calibration)
quality.refresh           30 min    refit Dawid-Skene, refresh model labels, statuses
drift.monitors            15 min    label/agreement/gold/rate drift alerts (drift.runner)
webhooks.dispatch         2 s       audit entries -> delivery rows (the outbox)
webhooks.deliver          2 s       post due deliveries (batches of 50, for up to 1.5 s)
========================  ========  ==================================================

Job kinds (``ops_jobs``): ``quality.snapshot`` and ``export.reviews`` (transactional),
``train.reward``, ``eval.reward``, ``train.classifier`` and ``eval.check`` (long: they run
the fixed CLI contracts in a child process, so a cancellation can stop them at once and
GPU training can go through ``accelerate launch``; see :mod:`hilt.ops.commands`).
"""

from __future__ import annotations

import math
import os
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.config import env_float, hilt_home
from hilt.errors import InputError
from hilt.ops.jobs import JobContext, enqueue, job_kind
from hilt.ops.periodic import PeriodicTask
from hilt.store import audit


def _expire_leases(session: Session, now: datetime) -> dict[str, Any]:
    from hilt.review.queue import expire_leases

    return {"leases_expired": expire_leases(session, now, actor="scheduler")}


def _resolve_complete(session: Session, now: datetime) -> dict[str, Any]:
    from hilt.review.work import resolve_complete_tasks

    return {"tasks_resolved": resolve_complete_tasks(session, now)}


def _sla_breaches(session: Session, now: datetime) -> dict[str, Any]:
    from hilt.review.triage import record_sla_breaches

    found = record_sla_breaches(session, now, actor="scheduler")
    return {"sla_breaches": len(found.new), "sla_repeat_breaches": len(found.repeat)}


def _priorities(session: Session, now: datetime) -> dict[str, Any]:
    from hilt.review.triage import refresh_priorities

    return {"priorities_refreshed": refresh_priorities(session, now)}


def _queue_snapshot(session: Session, now: datetime) -> dict[str, Any]:
    period = int(now.timestamp() // 600)
    job = enqueue(session, "quality.snapshot", {}, actor="scheduler",
                  dedupe_key=f"quality.snapshot:{period}")
    return {"job": job}


def _reviewer_statuses(session: Session, now: datetime) -> dict[str, Any]:
    # Often, so that a reviewer who passes onboarding gets production work soon.
    from hilt.quality.store import update_reviewer_statuses

    return {"status_changes": len(update_reviewer_statuses(session, now=now,
                                                           actor="scheduler"))}


def _quality_refresh(session: Session, now: datetime) -> dict[str, Any]:
    from hilt.quality.store import refresh_all

    result = refresh_all(session, now=now, actor="scheduler")
    return {"rubrics": len(result["rubrics"]), "status_changes": len(result["status_changes"])}


def _drift_monitors(session: Session, now: datetime) -> dict[str, Any]:
    from hilt.quality.drift.runner import run_monitors

    # Idempotent per window: a re-run or a catch-up stores no alert twice.
    return {"drift_alerts": len(run_monitors(session, now, actor="scheduler"))}


def _dispatch(session: Session, now: datetime) -> dict[str, Any]:
    from hilt.ops.webhooks import dispatch

    audit.seal(session, wait=False)  # so that what was just written is delivered now
    return dispatch(session, now)


# A delivery run keeps taking batches for up to this share of its period, so that one
# process sends as fast as its receivers answer (not one batch per period) and the run
# still ends before the next firing.
DELIVER_BUDGET_SHARE = 0.75
DELIVER_BATCH = 50


def _deliver(engine: Engine, now: datetime) -> dict[str, Any]:
    from hilt.ops.webhooks import deliver_due

    budget_s = DELIVER_BUDGET_SHARE * _interval("webhooks.deliver", 2)
    started = time.monotonic()
    totals: dict[str, int] = {}
    while True:
        elapsed = time.monotonic() - started
        counts = deliver_due(engine, now=now + timedelta(seconds=elapsed),
                             limit=DELIVER_BATCH)
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        # A batch that was not full left nothing due. A deferred delivery means a
        # receiver timed out, and a batch with nothing delivered means receivers are
        # failing: their rows wait for the next run (and their backoff), not this loop.
        if sum(counts.values()) < DELIVER_BATCH or counts["deferred"] \
                or not counts["delivered"] or time.monotonic() - started >= budget_s:
            return dict(totals)


def _interval(name: str, default: float) -> float:
    # HILT_PERIOD_<NAME>=seconds, e.g. HILT_PERIOD_WEBHOOKS_DISPATCH=0.5 in tests.
    key = "HILT_PERIOD_" + name.upper().replace(".", "_")
    return env_float(key, default, above=0)


def periodic_tasks() -> list[PeriodicTask]:
    return [
        PeriodicTask("review.expire_leases", _interval("review.expire_leases", 30),
                     _expire_leases),
        PeriodicTask("review.resolve_complete", _interval("review.resolve_complete", 10),
                     _resolve_complete),
        PeriodicTask("review.sla_breaches", _interval("review.sla_breaches", 60),
                     _sla_breaches),
        PeriodicTask("review.priorities", _interval("review.priorities", 300), _priorities),
        PeriodicTask("quality.snapshot", _interval("quality.snapshot", 600), _queue_snapshot),
        PeriodicTask("quality.statuses", _interval("quality.statuses", 120),
                     _reviewer_statuses),
        PeriodicTask("quality.refresh", _interval("quality.refresh", 1800), _quality_refresh),
        PeriodicTask("drift.monitors", _interval("drift.monitors", 900), _drift_monitors),
        PeriodicTask("webhooks.dispatch", _interval("webhooks.dispatch", 2), _dispatch),
        PeriodicTask("webhooks.deliver", _interval("webhooks.deliver", 2), _deliver,
                     own_transactions=True),
    ]


# --- job kinds --------------------------------------------------------------------

# The longest window a snapshot looks back over (a hundred years).
_LONGEST_WINDOW_H = 100 * 365 * 24


def _window_hours(params: dict[str, Any]) -> float:
    """A snapshot job's one parameter, ``window_hours`` (default 24): a number of hours
    above 0, or its text (``hilt jobs start quality.snapshot -p window_hours=48``).
    Checked when the job is queued: a typo would otherwise be ignored, or fail in the
    worker on every attempt with a traceback."""
    unknown = sorted(set(params) - {"window_hours"})
    if unknown:
        raise InputError(f"unknown parameter {unknown[0]!r}; quality.snapshot takes: "
                         "window_hours", field=f"params.{unknown[0]}")
    raw = params.get("window_hours", 24)
    try:
        hours = float(raw) if isinstance(raw, str | int | float) \
            and not isinstance(raw, bool) else math.nan
    except ValueError:
        hours = math.nan
    if not 0 < hours <= _LONGEST_WINDOW_H:  # NaN fails this too
        raise InputError(f"window_hours must be a number of hours above 0 and at most "
                         f"{_LONGEST_WINDOW_H}, got {raw!r}", field="params.window_hours")
    return hours


def _snapshot_params(params: dict[str, Any]) -> None:
    _window_hours(params)


@job_kind("quality.snapshot", max_attempts=2, check_params=_snapshot_params)
def quality_snapshot_job(ctx: JobContext, session: Session | None) -> dict[str, Any]:
    """Agreement per pool and gold accuracy per reviewer, with intervals."""
    from hilt.ops.snapshot import quality_snapshot
    from hilt.store.tables.base import utcnow

    assert session is not None
    return quality_snapshot(session, utcnow(), window_hours=_window_hours(ctx.params))


def export_dir() -> Path:
    return Path(os.environ.get("HILT_EXPORT_DIR", str(hilt_home() / "exports")))


def _export_params(params: dict[str, Any]) -> None:
    unknown = sorted(set(params) - {"status"})
    if unknown:
        raise InputError(f"unknown parameter {unknown[0]!r}; export.reviews takes: status",
                         field=f"params.{unknown[0]}")
    status = params.get("status")
    if status is not None and not isinstance(status, str):
        raise InputError("status must be a string", field="params.status")
    from hilt.ops.export import check_status

    check_status(status, field="params.status")


def _exported_items(params: dict[str, Any]) -> sa.Select[str]:
    """The events an ``export.reviews`` job with ``params`` writes: the same as
    ``GET /v1/exports/reviews.jsonl`` with that status holds, so the same blind-review
    refusal applies to starting the job (its file is read by whoever started it)."""
    from hilt.ops.export import exported_events

    _export_params(params)
    return exported_events(params.get("status"))


@job_kind("export.reviews", user_startable=True, check_params=_export_params,
          shows_items=_exported_items)
def export_reviews_job(ctx: JobContext, session: Session | None) -> dict[str, Any]:
    """Write every task with its item, reviews and final labels as JSON lines."""
    from hilt.ops.export import write_jsonl
    from hilt.staging import sweep_stale_outputs

    assert session is not None
    _export_params(ctx.params)
    status = ctx.params.get("status")
    # Absolute: the result (and the job.finished webhook) is read by processes that do
    # not share this worker's working folder, where HILT_HOME's default lies.
    out = export_dir().resolve() / f"reviews-{ctx.job_id}.jsonl"
    # each job writes its own file, so no later export writes a killed one's name again
    # and sweeps its temporary: every export sweeps those of all
    sweep_stale_outputs(out.parent, "reviews-", ".tmp")
    count = write_jsonl(session, out, status=status)
    return {"path": str(out), "items": count}


def _contract_params(kind: str, params: dict[str, Any]) -> None:
    """A child-process job's parameters, paths included, are checked when it is queued
    (from any caller), not first when a worker runs it."""
    from hilt.ops.commands import build_argv

    build_argv(kind, params)


def _train_reward_params(params: dict[str, Any]) -> None:
    """As :func:`_contract_params`; and, as ``hilt train reward`` does, the split's
    parameters are refused with ``eval_pairs`` (nothing is drawn then)."""
    _contract_params("train.reward", params)
    if params.get("eval_pairs") is not None:
        for name in ("held_out", "split_seed"):
            if params.get(name) is not None:
                raise InputError(f"{name} sets the held-out split of the training pairs; "
                                 "with eval_pairs nothing is drawn", field=name)


@job_kind("train.reward", transactional=False, max_attempts=1, user_startable=True,
          check_params=_train_reward_params)
def train_reward_job(ctx: JobContext, _session: Session | None) -> dict[str, Any]:
    """``hilt train reward --pairs P --out DIR`` in a child process (parameters:
    ``pairs`` or ``dataset``, ``out``, and optionally ``eval_pairs``, ``epochs``,
    ``seed``, ``held_out``, ``split_seed``, ``override_revoked``)."""
    from hilt.ops.commands import run_contract

    return run_contract(ctx, "train.reward")


@job_kind("eval.reward", transactional=False, max_attempts=1, user_startable=True,
          check_params=partial(_contract_params, "eval.reward"))
def eval_reward_job(ctx: JobContext, _session: Session | None) -> dict[str, Any]:
    """``hilt eval reward --model DIR --pairs P`` in a child process."""
    from hilt.ops.commands import run_contract

    return run_contract(ctx, "eval.reward")


@job_kind("train.classifier", transactional=False, max_attempts=1, user_startable=True,
          check_params=partial(_contract_params, "train.classifier"))
def train_classifier_job(ctx: JobContext, _session: Session | None) -> dict[str, Any]:
    """``hilt train classifier --data D --text-field F --label-field L --out DIR``."""
    from hilt.ops.commands import run_contract

    return run_contract(ctx, "train.classifier")


@job_kind("eval.check", transactional=False, max_attempts=1, user_startable=True,
          check_params=partial(_contract_params, "eval.check"))
def eval_check_job(ctx: JobContext, _session: Session | None) -> dict[str, Any]:
    """``hilt check --suite S --candidate C --reference R --out DIR [--gate G]``."""
    from hilt.ops.commands import run_contract

    return run_contract(ctx, "eval.check")
