"""A backtest evaluates exactly the events live escalation evaluates: events without
review consent, and erased ones, are counted but never escalated, so the backtest of
the live version reproduces the live tasks and their audit sample exactly."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.review.escalation import backtest, publish_rule_set
from hilt.review.rules import parse_rule_set, severity_number
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import ReviewTaskRow

from .helpers import event, ingest, publish_examples

RULES = {"id": "bt", "defaults": {"rubric": "harm"}, "rules": [
    {"name": "guardrail-high", "severity": "sev1", "when": {"score": "guardrail", "gte": 0.7}},
    {"name": "audit", "severity": "sev3", "audit_rate": 0.3}]}


def _events(n: int) -> list[dict]:
    rng = random.Random(3)
    out = []
    for i in range(n):
        ev = event(i, scores={"guardrail": rng.random()})
        ev["context"]["consent"] = [["review", "train"], ["train"], [], ["review"]][i % 4]
        out.append(ev)
    return out


def _live(engine: Engine) -> tuple[Counter[str | None], Counter[int]]:
    with transaction(engine) as s:
        tasks = list(s.execute(sa.select(ReviewTaskRow)).scalars())
    return Counter(t.rule_name for t in tasks), Counter(t.severity for t in tasks)


def test_backtest_reproduces_live_escalation_and_its_audit_sample(engine: Engine) -> None:
    publish_examples(engine)
    rules = parse_rule_set(RULES)
    with transaction(engine) as s:
        publish_rule_set(s, rules, actor="lead")
    created = ingest(engine, _events(400))
    by_rule, by_severity = _live(engine)
    assert created == sum(by_rule.values()) and by_rule["audit"] > 0
    with transaction(engine) as s:
        (entry,) = audit.entries(s, action="escalation.tasks")
        report = backtest(s, rules, version=1)
    assert entry.payload["without_review_consent"] == 200
    assert (report["events"], report["without_review_consent"], report["erased"]) == \
        (400, 200, 0)
    assert report["escalated"] == created
    assert {r["rule"]: r["creates_tasks"] for r in report["rules"]} == dict(by_rule)
    assert {severity_number(k): v for k, v in report["by_severity"].items()} == \
        dict(by_severity)


def test_erased_events_are_counted_and_not_escalated(engine: Engine) -> None:
    publish_examples(engine)
    rules = parse_rule_set(RULES)
    with transaction(engine) as s:
        publish_rule_set(s, rules, actor="lead")
    hot = [event(i, scores={"guardrail": 0.9}) for i in range(6)]
    hot[5]["context"]["consent"] = ["train"]
    assert ingest(engine, hot) == 5
    with transaction(engine) as s:
        s.execute(sa.update(EventRow).where(EventRow.id.in_(["ev00000", "ev00001"]))
                  .values(erased_at=datetime(2030, 1, 1, tzinfo=UTC)))
    with transaction(engine) as s:
        report = backtest(s, rules, version=1)
    assert (report["events"], report["erased"], report["without_review_consent"],
            report["escalated"]) == (4, 2, 1, 3)
    assert report["rules"][0]["fires"] == 3
