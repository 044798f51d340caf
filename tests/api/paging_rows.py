"""Rows for the paged lists (jobs, webhook deliveries, drift alerts, pending
adjudications, a reviewer's reviews, API tokens), many of them sharing one sort key: ties are where
paging by key goes wrong. Each ``seed_*`` stores its rows and returns them as
``(id, fields)`` in the order the list shows them, computed here from the key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.review import tasks
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from hilt.store.tables.core import TokenRow
from hilt.store.tables.drift import DriftAlertRow
from hilt.store.tables.ops import JobRow, WebhookDeliveryRow, WebhookSubscriptionRow
from hilt.store.tables.review import ReviewRow, ReviewTaskRow
from tests.review.helpers import HARM, event, ingest

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
# Several rows at each instant; two instants a microsecond apart, which a cursor that
# dropped the microseconds would take for one.
INSTANTS = [T0, T0 + timedelta(microseconds=1), T0 + timedelta(seconds=1)]
TIED = [5, 4, 3]


@dataclass(frozen=True)
class Listed:
    """What a list shows: its rows in order, each ``(id, filterable fields)``."""

    rows: list[tuple[str, dict[str, Any]]]

    def ids(self, **only: Any) -> list[str]:
        return [i for i, f in self.rows if all(f[k] == v for k, v in only.items())]


def _newest_first(when: datetime) -> int:
    return -((when - T0) // timedelta(microseconds=1))


def _hex_id(prefix: str) -> str:
    # Same length, lower-case hex: the database's collation orders them as Python does.
    return f"{prefix}_{uuid.uuid4().hex}"


def _ordered(rows: list[tuple[tuple[Any, ...], str, dict[str, Any]]]) -> Listed:
    return Listed([(i, f) for _, i, f in sorted(rows, key=lambda r: (r[0], r[1]))])


def seed_jobs(engine: Engine) -> Listed:
    rows = []
    with transaction(engine) as s:
        for when, n in zip(INSTANTS, TIED, strict=True):
            for k in range(n):
                fields = {"status": ("queued", "failed")[k % 2],
                          "kind": ("x.alpha", "x.beta")[k % 3 == 0]}
                job_id = _hex_id("job")
                s.add(JobRow(id=job_id, params={}, run_after=when, created_by="test",
                             created_at=when, workers=[], **fields))
                rows.append(((_newest_first(when),), job_id, fields))
    return _ordered(rows)


def seed_deliveries(engine: Engine) -> Listed:
    rows = []
    with transaction(engine) as s:
        subs = [_hex_id("sub") for _ in range(3)]
        for sub in subs:
            s.add(WebhookSubscriptionRow(id=sub, url="http://127.0.0.1:9/x", secret="s" * 32,
                                         event_types=["job.enqueue"], created_by="test"))
        s.flush()
        for seq in range(1, 5):
            for k, sub in enumerate(subs):
                fields = {"status": ("pending", "failed")[(seq + k) % 2],
                          "subscription_id": sub}
                delivery_id = _hex_id("whd")
                s.add(WebhookDeliveryRow(id=delivery_id, audit_seq=seq,
                                         event_type="job.enqueue", payload={},
                                         next_attempt_at=T0, **fields))
                rows.append(((-seq,), delivery_id, fields))
    return _ordered(rows)


def seed_alerts(engine: Engine) -> Listed:
    rows = []
    with transaction(engine) as s:
        for w, (when, n) in enumerate(zip(INSTANTS, TIED, strict=True)):
            for k in range(n + 1):
                fields = {"monitor": ("label_shift", "agreement")[k % 2],
                          "status": ("open", "acknowledged")[(w + k) % 2]}
                alert_id = _hex_id("drf")
                s.add(DriftAlertRow(
                    id=alert_id, group_key=f"g{k}", group={"k": f"g{k}"}, window_start=when,
                    window_end=when + timedelta(days=1),
                    reference_start=when - timedelta(days=7), test="chi2", p_value=0.001,
                    alpha=0.05, effect_name="psi", effect=0.3, min_effect=0.1, n_current=50,
                    n_reference=200, n_tests=1, message="shift", detail={}, **fields))
                rows.append(((_newest_first(when), fields["monitor"]), alert_id, fields))
    return _ordered(rows)


def _tasks(engine: Engine, n: int) -> list[str]:
    """``n`` tasks under the harm rubric, one per new event."""
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
    ingest(engine, [event(i) for i in range(n)])
    with transaction(engine) as s:
        return [tasks.create_task(s, event_id=event(i)["id"], rubric="harm", actor="lead",
                                  overlap_k=1) for i in range(n)]


# Equal priorities in runs, one of them below zero (a cursor that starts with '-').
PRIORITIES = [2.5, 2.5, 2.5, 1.0, 1.0, 1.0, 1.0, -0.25, -0.25, -0.25, 1e20]


def seed_pending(engine: Engine) -> Listed:
    rows = []
    ids = _tasks(engine, len(PRIORITIES) + 1)
    with transaction(engine) as s:
        for task_id, priority in zip(ids, PRIORITIES, strict=False):
            task = s.get_one(ReviewTaskRow, task_id)
            task.status, task.priority = "needs_adjudication", priority
            task.adjudication_reasons = {"verdict": "split"}
            # the queue's order: priority, then deadline, then age (then id)
            rows.append(((-priority, task.sla_due_at, task.created_at), task_id, {}))
    return _ordered(rows)  # the last task is still open: not listed


def seed_reviews(engine: Engine, reviewer: str) -> Listed:
    rows = []
    (task_id,) = _tasks(engine, 1)
    with transaction(engine) as s:
        for when, n in zip(INSTANTS, TIED, strict=True):
            for who in (reviewer, "someone-else"):
                for _ in range(n):
                    review_id = _hex_id("rev")
                    s.add(ReviewRow(id=review_id, task_id=task_id,
                                    assignment_id=_hex_id("asg"), reviewer_id=who,
                                    rubric_id="harm", rubric_version=1, answers={},
                                    submitted_at=when))
                    if who == reviewer:
                        rows.append(((_newest_first(when),), review_id, {}))
    return _ordered(rows)


def seed_tokens(engine: Engine) -> Listed:
    """Tokens made at a few shared instants after the ones the test client holds (which
    come first: the list is oldest first)."""
    with transaction(engine) as s:
        held = s.execute(sa.select(TokenRow.created_at, TokenRow.id)).all()
        rows: list[tuple[tuple[Any, ...], str, dict[str, Any]]] = [
            ((when,), token_id, {}) for when, token_id in held]
        for when, n in zip(INSTANTS, TIED, strict=True):
            for k in range(n):
                token_id = _hex_id("tk")
                s.add(TokenRow(id=token_id, token_hash=uuid.uuid4().hex * 2,
                               role=("service", "lead")[k % 2], name=f"t{k}",
                               created_at=when))
                rows.append(((when,), token_id, {}))
    return _ordered(rows)
