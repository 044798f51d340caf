"""A task that missed its SLA stays overdue: it ranks above on-time work of its severity,
is escalated once per missed deadline (a sev0 task, with no step left, once only), keeps
the deadline it missed so a lead sees how late it is, and repeat breaches are reported
apart from first ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.review.queue import QueueConfig, claim_next
from hilt.review.tasks import create_task
from hilt.review.triage import TriageConfig, overdue_hours, priority, run_triage
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import add_reviewers, event, ingest, publish_examples

T0 = datetime(2030, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
TOPICS = ["tides and the moon", "sourdough starters", "bicycle gear ratios",
          "the history of the printing press"]


def _events(engine: Engine, n: int) -> None:
    publish_examples(engine)
    ingest(engine, [event(i, f"tell me about {TOPICS[i]} please", response=f"facts {i}")
                    for i in range(n)])


def _task(engine: Engine, i: int, severity: str, at: datetime,
          sla_hours: float | None = None) -> str:
    with transaction(engine) as s:
        return create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead",
                           severity=severity, overlap_k=1, sla_hours=sla_hours, now=at)


def _get(engine: Engine, task_id: str) -> ReviewTaskRow:
    with transaction(engine) as s:
        task = s.get(ReviewTaskRow, task_id)
        assert task is not None
        s.expunge(task)
        return task


def _triage(engine: Engine, at: datetime) -> dict[str, int]:
    with transaction(engine) as s:
        return run_triage(s, at)


def test_a_breached_task_ranks_above_on_time_work_of_its_severity(engine: Engine) -> None:
    _events(engine, 2)
    late = _task(engine, 0, "sev1", T0)  # due T0 + 4 h
    first = _triage(engine, T0 + 5 * H)
    assert (first["sla_breaches"], first["sla_repeat_breaches"]) == (1, 0)
    task = _get(engine, late)
    assert (task.severity, task.escalation_level) == (0, 1)
    assert task.sla_due_at == T0 + 6 * H  # the sev0 SLA: 1 h from the escalation

    on_time = _task(engine, 1, "sev0", T0 + 6 * H + 20 * timedelta(minutes=1))
    # an hour after the escalation: the escalated task is past its sev0 deadline too,
    # with no step left; the fresh sev0 task has 20 minutes left
    second = _triage(engine, T0 + 7 * H)
    task, fresh = _get(engine, late), _get(engine, on_time)
    assert (task.severity, fresh.severity, task.uncertainty, task.reach) == \
        (0, 0, fresh.uncertainty, fresh.reach)
    assert task.priority > fresh.priority
    assert (second["sla_breaches"], second["sla_repeat_breaches"]) == (0, 0)
    assert task.sla_breached_at == T0 + 4 * H  # the deadline it missed
    assert task.priority == pytest.approx(priority(0, -1.0, 0.0, 1))  # urgency 1
    assert task.escalation_level == 1
    assert task.sla_due_at == T0 + 6 * H  # never a deadline in the future while late
    assert overdue_hours(task.sla_due_at, task.sla_breached_at, T0 + 7 * H) == 3.0
    with transaction(engine) as s:  # the claim order follows
        claim = claim_next(s, _reviewer(engine), now=T0 + 7 * H,
                           config=QueueConfig(gold_rate=0))
        assert claim is not None and claim.task_id == late


def _reviewer(engine: Engine) -> str:
    add_reviewers(engine, ["r"])
    return "r"


def test_a_sev0_breach_is_counted_once_and_keeps_its_deadline(engine: Engine) -> None:
    _events(engine, 1)
    tid = _task(engine, 0, "sev0", T0)  # due T0 + 1 h
    runs = [_triage(engine, T0 + h * H) for h in (2, 3, 10, 80)]
    assert [(r["sla_breaches"], r["sla_repeat_breaches"]) for r in runs] == \
        [(1, 0), (0, 0), (0, 0), (0, 0)]
    task = _get(engine, tid)
    assert (task.severity, task.escalation_level) == (0, 1)
    assert task.sla_due_at == task.sla_breached_at == T0 + H
    assert overdue_hours(task.sla_due_at, task.sla_breached_at, T0 + 80 * H) == 79.0
    assert task.priority == pytest.approx(priority(0, 0.0, 0.0, 1))
    with transaction(engine) as s:
        assert len(audit.entries(s, action="task.sla_breach")) == 1


def test_a_missed_escalated_deadline_is_a_repeat_breach(engine: Engine) -> None:
    _events(engine, 1)
    # the rule's own 2 h window is kept at each step: escalating never gives more time
    tid = _task(engine, 0, "sev3", T0, sla_hours=2)
    assert _triage(engine, T0 + 3 * H)["sla_breaches"] == 1
    task = _get(engine, tid)
    assert (task.severity, task.sla_due_at, task.sla_breached_at) == \
        (2, T0 + 5 * H, T0 + 2 * H)
    # overdue from the first breach on, though its new deadline lies ahead
    assert overdue_hours(task.sla_due_at, task.sla_breached_at, T0 + 4 * H) == 2.0
    assert task.priority == pytest.approx(priority(2, 1.0, 0.0, 1, overdue=True))
    assert (_triage(engine, T0 + 4 * H)["sla_breaches"],
            _triage(engine, T0 + 4 * H)["sla_repeat_breaches"]) == (0, 0)
    again = _triage(engine, T0 + 6 * H)
    assert (again["sla_breaches"], again["sla_repeat_breaches"]) == (0, 1)
    task = _get(engine, tid)
    assert (task.severity, task.escalation_level, task.sla_due_at, task.sla_breached_at) == \
        (1, 2, T0 + 8 * H, T0 + 2 * H)
    with transaction(engine) as s:
        entries = audit.entries(s, action="task.sla_breach")
    assert [e.payload["repeat"] for e in entries] == [True, False]  # newest first


def test_a_default_sla_shorter_than_the_rules_window_is_taken(engine: Engine) -> None:
    _events(engine, 1)
    tid = _task(engine, 0, "sev2", T0, sla_hours=48)
    assert _triage(engine, T0 + 49 * H)["sla_breaches"] == 1
    assert _get(engine, tid).sla_due_at == T0 + 53 * H  # sev1: 4 h, not 48


def test_a_representative_takes_a_members_breach(engine: Engine) -> None:
    publish_examples(engine)
    text = "please explain in detail how the old steam engine in the museum works"
    ingest(engine, [event(i, text, response="it burns coal") for i in range(2)])
    late = _task(engine, 0, "sev1", T0)
    assert _triage(engine, T0 + 5 * H)["sla_breaches"] == 1
    add_reviewers(engine, ["a"], pools=["default"])
    rep = _task(engine, 1, "sev1", T0 + 5 * H)
    with transaction(engine) as s:  # the task already worked on represents the cluster
        s.execute(sa.update(ReviewTaskRow).where(ReviewTaskRow.id == late)
                  .values(priority=-1.0))
        claim = claim_next(s, "a", now=T0 + 5 * H, config=QueueConfig(gold_rate=0))
        assert claim is not None and claim.task_id == rep
    assert _triage(engine, T0 + 5 * H)["tasks_clustered"] == 1
    task = _get(engine, rep)
    assert _get(engine, late).representative_id == rep
    assert (task.sla_breached_at, task.escalation_level, task.severity) == \
        (T0 + 4 * H, 1, 0)
    assert task.priority == pytest.approx(priority(
        0, 1.0, 0.0, 2, TriageConfig(), overdue=True))
