"""SLA deadlines and leases are hours of real time, whatever zone the ``now`` handed
to the Python API is in: a local time across a daylight-saving change, and a naive
time (UTC, as stored times are)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.events.validate import parse_event
from hilt.review.escalation import activate_rule_set, apply_active_rules, publish_rule_set
from hilt.review.queue import QueueConfig, claim_next, heartbeat
from hilt.review.rules import parse_rule_set
from hilt.review.tasks import create_task
from hilt.review.triage import record_sla_breaches, run_triage
from hilt.review.work import next_task
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import add_reviewers, event, ingest, publish_examples

NEW_YORK = ZoneInfo("America/New_York")
# 00:30 EDT on the night clocks go back (02:00 EDT becomes 01:00 EST): 04:30 UTC
BEFORE_FALL_BACK = datetime(2030, 11, 3, 0, 30, tzinfo=NEW_YORK)
# 01:30 EST on the night clocks go forward (02:00 EST becomes 03:00 EDT): 06:30 UTC
BEFORE_SPRING = datetime(2030, 3, 10, 1, 30, tzinfo=NEW_YORK)


def _escalate(engine: Engine, now: datetime, sla_hours: float = 2) -> ReviewTaskRow:
    """One event escalated by a rule with ``sla_hours``, as of ``now``."""
    publish_examples(engine)
    ingest(engine, [event(1)])  # stored before any rule set is active: no task yet
    rules = parse_rule_set({"id": "s", "defaults": {"rubric": "harm"}, "rules": [
        {"name": "all", "audit_rate": 1, "sla_hours": sla_hours, "severity": "sev3"}]})
    with transaction(engine) as s:
        publish_rule_set(s, rules, actor="lead", activate=False)
        activate_rule_set(s, "s", 1, actor="lead")
    with transaction(engine) as s:
        made = apply_active_rules(s, [parse_event(event(1))], actor="t", now=now)
    assert made == 1
    with transaction(engine) as s:
        task = s.execute(sa.select(ReviewTaskRow)).scalar_one()
        s.expunge(task)
        return task


def test_a_deadline_across_the_fall_back_is_two_real_hours(engine: Engine) -> None:
    task = _escalate(engine, BEFORE_FALL_BACK)
    # before: 02:30 on the local wall clock, which is EST by then: three real hours
    assert task.created_at == BEFORE_FALL_BACK.astimezone(UTC)
    assert task.sla_due_at - task.created_at == timedelta(hours=2)
    assert task.sla_due_at == datetime(2030, 11, 3, 6, 30, tzinfo=UTC)


def test_an_escalated_deadline_across_spring_forward_is_real_hours(engine: Engine) -> None:
    task = _escalate(engine, BEFORE_SPRING - timedelta(hours=3))
    with transaction(engine) as s:
        found = record_sla_breaches(s, BEFORE_SPRING)
    assert found.new == [task.id]
    with transaction(engine) as s:
        after = s.get(ReviewTaskRow, task.id)
        assert after is not None and after.severity == 2
        # sev2 would get 24 h; the rule gave 2 h, and escalation never gives more.
        # Before: 03:30 on the wall clock, EDT by then: one real hour
        assert after.sla_due_at == datetime(2030, 3, 10, 8, 30, tzinfo=UTC)


def test_triage_takes_a_naive_now_as_utc(engine: Engine) -> None:
    task = _escalate(engine, datetime(2030, 1, 1, tzinfo=UTC))
    # before: TypeError, an aware deadline minus a naive now
    with transaction(engine) as s:
        counts = run_triage(s, datetime(2030, 1, 1, 3))
    assert counts["sla_breaches"] == 1 and counts["priorities_refreshed"] == 1
    with transaction(engine) as s:
        after = s.get(ReviewTaskRow, task.id)
        assert after is not None
        assert after.sla_breached_at == datetime(2030, 1, 1, 2, tzinfo=UTC)


def test_a_lease_across_the_fall_back_lasts_its_seconds(engine: Engine) -> None:
    _escalate(engine, BEFORE_FALL_BACK)
    add_reviewers(engine, ["ann"])
    config = QueueConfig(gold_rate=0.0, lease_seconds=3600)
    at = datetime(2030, 11, 3, 1, 30, tzinfo=NEW_YORK)  # 05:30 UTC, the first 01:30
    with transaction(engine) as s:
        claim = claim_next(s, "ann", now=at, config=config)
    assert claim is not None
    # before: 02:30 on the wall clock, EST: 07:30 UTC, two hours
    assert claim.lease_expires_at == datetime(2030, 11, 3, 6, 30, tzinfo=UTC)
    with transaction(engine) as s:
        expiry = heartbeat(s, claim.task_id, "ann", now=at + timedelta(minutes=10),
                           config=config)
    assert expiry == datetime(2030, 11, 3, 6, 40, tzinfo=UTC)


def test_a_task_made_by_hand_across_the_fall_back_has_real_hours(engine: Engine) -> None:
    publish_examples(engine)
    ingest(engine, [event(1)])
    with transaction(engine) as s:
        task_id = create_task(s, event_id=event(1)["id"], rubric="harm", actor="lead",
                              sla_hours=2, now=BEFORE_FALL_BACK)
    with transaction(engine) as s:
        task = s.get(ReviewTaskRow, task_id)
        assert task is not None
        # before: 02:30 on the wall clock, EST by then: three real hours
        assert task.sla_due_at == datetime(2030, 11, 3, 6, 30, tzinfo=UTC)


def test_a_lease_from_the_work_api_across_the_fall_back_lasts_its_seconds(
        engine: Engine) -> None:
    _escalate(engine, BEFORE_FALL_BACK)
    add_reviewers(engine, ["ann"])
    at = datetime(2030, 11, 3, 1, 30, tzinfo=NEW_YORK)  # 05:30 UTC, the first 01:30
    found = next_task(engine, "ann", config=QueueConfig(gold_rate=0.0, lease_seconds=3600),
                      now=at)
    assert found is not None
    # before: 02:30 on the wall clock, EST: 07:30 UTC, two hours
    assert found.claim.lease_expires_at == datetime(2030, 11, 3, 6, 30, tzinfo=UTC)
