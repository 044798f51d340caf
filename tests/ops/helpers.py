"""A small review workload: one rubric, calibrated reviewers, events with open tasks."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.events.ingest import ingest_events
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_task
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from tests.conftest import migrated_sqlite  # also imported from here by the ops tests

RUBRIC: dict[str, Any] = {
    "id": "simple", "title": "Simple", "questions": [
        {"id": "verdict", "kind": "single_choice", "prompt": "ok?",
         "options": ["safe", "harmful", "borderline"]}]}


def event(i: int) -> dict[str, Any]:
    return {"id": f"ev{i:05d}",
            "interaction": {"prompt": f"question {i} about topic {i * 7919}"},
            "responses": [{"text": f"answer to {i}"}],
            "context": {"policy_version": "pol-1", "consent": ["review"]}}


def reviewers(engine: Engine, ids: list[str], *, tokens: bool = False) -> dict[str, str]:
    """Calibrated reviewers (optionally with API tokens: id -> secret)."""
    out = {}
    with transaction(engine) as s:
        for rid in ids:
            add_reviewer(s, reviewer_id=rid, role="reviewer")
            s.flush()
            row = s.get(ReviewerRow, rid)
            assert row is not None
            row.status = "calibrated"
            if tokens:
                out[rid] = create_token(s, role="reviewer", reviewer_id=rid)[1]
    return out


def workload(engine: Engine, n_events: int, *, overlap: int = 2, start: int = 0
             ) -> list[str]:
    """Publish the rubric (once), ingest events and open one task per event."""
    with transaction(engine) as s:
        from hilt.review.rubrics import latest_version

        if latest_version(s, "simple") is None:
            publish_rubric(s, parse_rubric(RUBRIC), actor="lead")
    ingest_events(engine, [event(i) for i in range(start, start + n_events)], actor="svc")
    with transaction(engine) as s:
        return [create_task(s, event_id=f"ev{i:05d}", rubric="simple", actor="lead",
                            overlap_k=overlap) for i in range(start, start + n_events)]


def live_sqlite(path: str) -> str:
    """A migrated SQLite database at ``path`` with two reviewers and five events under
    review (what the backup tests copy); returns its URL."""
    from hilt.store.db import make_engine

    url = migrated_sqlite(path)
    engine = make_engine(url)
    reviewers(engine, ["ann", "bob"])
    workload(engine, 5)
    engine.dispose()
    return url


# (audit seq, status, age in days) of the deliveries `prunable_deliveries` stores: of
# these only the first is delivered and old enough to prune at 30 days.
PRUNE_DELIVERIES = [(1, "delivered", 40), (2, "delivered", 1), (3, "failed", 40),
                    (4, "pending", 40)]


def prunable_deliveries(session: Any, now: Any) -> None:
    """One webhook subscription and the deliveries of :data:`PRUNE_DELIVERIES`."""
    from datetime import timedelta

    from hilt.store.tables.ops import WebhookDeliveryRow, WebhookSubscriptionRow

    session.add(WebhookSubscriptionRow(id="wh_1", url="http://h/x", secret="s" * 20,
                                       event_types=["*"], description="", active=True,
                                       created_by="t", created_at=now))
    session.flush()
    for seq, status, days in PRUNE_DELIVERIES:
        session.add(WebhookDeliveryRow(
            id=f"whd_{seq}", subscription_id="wh_1", audit_seq=seq, event_type="x",
            payload={}, status=status, attempts=1, next_attempt_at=now,
            delivered_at=now - timedelta(days=days) if status == "delivered" else None,
            created_at=now - timedelta(days=days)))
