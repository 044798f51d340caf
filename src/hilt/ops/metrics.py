"""Prometheus metrics, computed from the database at scrape time.

Every number is read from the shared database when Prometheus scrapes, not counted in
process memory, so it is the same whichever API worker answers and survives restarts
(this is what makes it safe with several worker processes; ``prometheus_client``'s
multiprocess mode is not needed). Exposed with the standard client library's text format.

=============================================  =========================================
metric                                         meaning
=============================================  =========================================
hilt_queue_depth{pool,severity}                open tasks with a free review slot
hilt_tasks{status}                             tasks by status
hilt_sla_breached_open{pool}                   unresolved tasks past their SLA
hilt_sla_breaches_total                        tasks ever re-escalated for their SLA
hilt_claim_latency_seconds{quantile}           task created -> first claim, for tasks
                                               first claimed in the last hour
hilt_reviews_last_hour                         reviews submitted in the last hour
hilt_active_leases                             unexpired leases
hilt_agreement{pool,bound}                     pairwise agreement (value, ci_low, ci_high)
                                               from the latest quality snapshot
hilt_drift_alerts                              drift alerts (when the drift stage has them)
hilt_jobs{kind,status}                         background jobs by kind and status
hilt_job_failures_total{kind}                  failed jobs and failed periodic runs
hilt_webhook_deliveries{status}                webhook deliveries by status
hilt_audit_entries_total                       length of the audit chain
=============================================  =========================================
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.review.rules import SEVERITIES
from hilt.store.db import read_only_engine
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import AuditHeadRow
from hilt.store.tables.ops import JobRow, WebhookDeliveryRow
from hilt.store.tables.review import AssignmentRow, ReviewRow, ReviewTaskRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def quantiles(values: list[float], probs: tuple[float, ...] = (0.5, 0.9, 0.99)
              ) -> dict[float, float]:
    """Empirical quantiles (linear interpolation, numpy's default 'linear' method)."""
    import numpy as np

    if not values:
        return {}
    arr = np.asarray(values, dtype=float)
    return {p: float(np.quantile(arr, p)) for p in probs}


def _severity_name(level: int) -> str:
    return SEVERITIES[level] if 0 <= level < len(SEVERITIES) else str(level)


class DatabaseCollector:
    """A ``prometheus_client`` custom collector reading one database per scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Any]:
        return []  # computed per scrape; no fixed description at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily

        now = utcnow()
        t, a, r, j, d = ReviewTaskRow, AssignmentRow, ReviewRow, JobRow, WebhookDeliveryRow
        # Read-only: a scrape must not take SQLite's write lock (see hilt.store.db).
        with read_only_engine(self.engine).connect() as conn:
            depth = GaugeMetricFamily("hilt_queue_depth", "open tasks with a free slot",
                                      labels=["pool", "severity"])
            for pool, sev, n in conn.execute(
                    sa.select(t.pool, t.severity, sa.func.count())
                    .where(t.status == "open", t.open_slots > 0)
                    .group_by(t.pool, t.severity)):
                depth.add_metric([pool, _severity_name(sev)], n)
            yield depth

            by_status = GaugeMetricFamily("hilt_tasks", "tasks by status", labels=["status"])
            for status, n in conn.execute(sa.select(t.status, sa.func.count())
                                          .group_by(t.status)):
                by_status.add_metric([status], n)
            yield by_status

            overdue = GaugeMetricFamily("hilt_sla_breached_open",
                                        "unresolved tasks past their SLA", labels=["pool"])
            for pool, n in conn.execute(
                    sa.select(t.pool, sa.func.count())
                    # an escalated task holds a later deadline but stays past its SLA
                    .where(t.status.in_(("open", "needs_adjudication")),
                           sa.or_(t.sla_breached_at.is_not(None), t.sla_due_at < now))
                    .group_by(t.pool)):
                overdue.add_metric([pool], n)
            yield overdue

            breaches = conn.execute(sa.select(sa.func.count())
                                    .where(t.sla_breached_at.is_not(None))).scalar_one()
            yield GaugeMetricFamily("hilt_sla_breaches_total",
                                    "tasks ever re-escalated for missing their SLA",
                                    value=breaches)

            hour_ago = now - timedelta(hours=1)
            # A task's first claim over all its assignments; the task counts when that
            # first claim falls in the last hour (a later reviewer's claim never does).
            first_claim = sa.func.min(a.claimed_at)
            waits = [(claimed - created).total_seconds() for claimed, created in conn.execute(
                sa.select(first_claim, t.created_at)
                .join(t, t.id == a.task_id)
                .where(a.task_id.in_(sa.select(a.task_id).where(a.claimed_at >= hour_ago)))
                .group_by(a.task_id, t.created_at)
                .having(first_claim >= hour_ago))]
            latency = SummaryMetricFamily(
                "hilt_claim_latency_seconds",
                "time from task creation to its first claim (tasks first claimed in "
                "the last hour)",
                count_value=len(waits), sum_value=sum(waits))
            yield latency
            q = GaugeMetricFamily("hilt_claim_latency_seconds_quantile",
                                  "quantiles of the claim latency, last hour",
                                  labels=["quantile"])
            for p, v in quantiles(waits).items():
                q.add_metric([str(p)], v)
            yield q

            reviews = conn.execute(sa.select(sa.func.count())
                                   .where(r.submitted_at >= hour_ago)).scalar_one()
            yield GaugeMetricFamily("hilt_reviews_last_hour",
                                    "reviews submitted in the last hour", value=reviews)
            leases = conn.execute(sa.select(sa.func.count()).where(
                a.status == "active", a.lease_expires_at > now)).scalar_one()
            yield GaugeMetricFamily("hilt_active_leases", "unexpired leases", value=leases)

            yield from self._agreement(conn)
            yield from self._drift(conn)

            jobs = GaugeMetricFamily("hilt_jobs", "background jobs", labels=["kind", "status"])
            failures = GaugeMetricFamily("hilt_job_failures_total",
                                         "failed jobs and failed periodic runs",
                                         labels=["kind"])
            for kind, status, n in conn.execute(sa.select(j.kind, j.status, sa.func.count())
                                                .group_by(j.kind, j.status)):
                jobs.add_metric([kind, status], n)
                if status == "failed":
                    failures.add_metric([kind], n)
            yield jobs
            yield failures

            hooks = GaugeMetricFamily("hilt_webhook_deliveries", "webhook deliveries",
                                      labels=["status"])
            for status, n in conn.execute(sa.select(d.status, sa.func.count())
                                          .group_by(d.status)):
                hooks.add_metric([status], n)
            yield hooks
            head = conn.execute(sa.select(AuditHeadRow.seq)).scalar()
            yield GaugeMetricFamily("hilt_audit_entries_total", "length of the audit chain",
                                    value=head or 0)

    def _agreement(self, conn: sa.Connection) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        j = JobRow
        snapshot = conn.execute(sa.select(j.result).where(
            j.kind == "quality.snapshot", j.status == "succeeded")
            .order_by(j.finished_at.desc()).limit(1)).scalar()
        family = GaugeMetricFamily("hilt_agreement",
                                   "pairwise agreement on tasks resolved in the snapshot "
                                   "window, with its 95% interval (see ci_method in the "
                                   "snapshot job's result)",
                                   labels=["pool", "bound"])
        for pool, entry in ((snapshot or {}).get("agreement") or {}).items():
            if entry.get("value") is None:
                continue
            family.add_metric([pool, "value"], entry["value"])
            family.add_metric([pool, "ci_low"], entry["ci_low"])
            family.add_metric([pool, "ci_high"], entry["ci_high"])
        yield family

    def _drift(self, conn: sa.Connection) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        # The drift stage's alerts table, when it exists; otherwise the metric is absent.
        inspector = sa.inspect(conn)
        if inspector.has_table("drift_alerts"):
            n = conn.execute(sa.text("SELECT count(*) FROM drift_alerts")).scalar_one()
            yield GaugeMetricFamily("hilt_drift_alerts", "drift alerts raised", value=n)


def render(engine: Engine) -> bytes:
    """The Prometheus text exposition of every metric, read now."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine))
    return generate_latest(registry)
