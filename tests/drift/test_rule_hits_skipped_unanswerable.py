"""A matched event whose rubric cannot be answered on it (a required preference question,
one response) gets no task: escalation lists it under ``skipped_unanswerable`` with the
rules that matched. The escalation_rule_hits monitor counts it as a hit for those rules,
so a growing share of such events is no fall of the hit rate; entries that do not name
the matched rules leave their events out of the trials, and the run reports how many."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import Engine

import hilt.review.escalation
from hilt.events.ingest import ingest_events
from hilt.quality.drift.alerts import Alert
from hilt.quality.drift.runner import RULES_NOT_RECORDED, collect, monitor_run
from hilt.quality.drift.windows import DriftConfig
from hilt.review.escalation import publish_rule_set
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import publish_rubric
from hilt.review.rules import audit_draw, parse_rule_set
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables import base
from hilt.store.tables.core import EventRow

T0 = datetime(2030, 1, 7, tzinfo=UTC)  # midnight UTC: day d is daily window d
DAYS = 7
SHIFT_DAY = 4
PER_DAY = 120
CONFIG = DriftConfig(lookback_windows=DAYS, reference_windows=2,
                     enabled=("escalation_rule_hits",))
END = T0 + timedelta(days=DAYS)
AUDIT_RATE = 0.2


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """A settable clock for every loaded hilt module that reads the time (ingest,
    publication, activation, audit entries)."""
    now = [T0]
    real = base.utcnow
    for name, mod in list(sys.modules.items()):
        if (name.startswith("hilt") and mod is not base
                and getattr(mod, "utcnow", None) is real):
            monkeypatch.setattr(mod, "utcnow", lambda: now[0])
    return now


def setup(engine: Engine, clock: list[datetime]) -> None:
    clock[0] = T0 + timedelta(minutes=30)
    with transaction(engine) as s:
        publish_rubric(s, parse_rubric({
            "id": "pairs", "title": "Pairs", "changelog": "first version",
            "guidelines": "Pick the better response.",
            "questions": [{"id": "better", "kind": "preference", "prompt": "Better?"}]},
            file="test"), actor="lead")
        publish_rule_set(s, parse_rule_set({
            "id": "r1", "defaults": {"rubric": "pairs", "pool": "default", "overlap": 1,
                                     "severity": "sev2"},
            "rules": [{"name": "hi", "when": {"score": "x", "gte": 0.5}},
                      {"name": "audit", "audit_rate": AUDIT_RATE}]}), actor="lead")


@dataclass
class Truth:
    """What the stream holds: per event, the rules that truly match it and whether it
    has a single response."""

    matched: dict[str, set[str]] = field(default_factory=dict)
    single: set[str] = field(default_factory=set)

    def hits(self, rule: str) -> int:
        return sum(rule in rules for rules in self.matched.values())


def ingest_day(engine: Engine, clock: list[datetime], day: int, rng: np.random.Generator,
               truth: Truth, *, high_share: float, single_share: float) -> None:
    """PER_DAY events one hour into ``day``: score x ≥ 0.5 with ``high_share``, one
    response (so the pairwise rubric cannot be answered) with ``single_share``."""
    clock[0] = T0 + timedelta(days=day, hours=1)
    events = []
    for i in range(PER_DAY):
        event_id = f"d{day}e{i:03d}"
        high = rng.random() < high_share
        x = 0.5 + 0.5 * rng.random() if high else 0.5 * rng.random()
        single = rng.random() < single_share
        events.append({"id": event_id, "interaction": {"prompt": f"prompt {day} {i}"},
                       "responses": [{"text": "a"}] if single else
                       [{"text": "a"}, {"text": "b"}], "created_at": clock[0].isoformat(),
                       "context": {"consent": ["review", "train"], "source": "sim"},
                       "scores": {"x": x}})
        truth.matched[event_id] = {"hi"} if high else set()
        if audit_draw(event_id, "r1", 1, "audit") < AUDIT_RATE:
            truth.matched[event_id].add("audit")
        if single:
            truth.single.add(event_id)
    ingest_events(engine, events, actor="service")


def stream(engine: Engine, clock: list[datetime], *, high_after: float = 0.5) -> Truth:
    """A week of events: before SHIFT_DAY one in ten has a single response, from then
    on seven in ten; the share with x ≥ 0.5 goes from one half to ``high_after``."""
    setup(engine, clock)
    rng = np.random.default_rng(21)
    truth = Truth()
    for day in range(DAYS):
        after = day >= SHIFT_DAY
        ingest_day(engine, clock, day, rng, truth, high_share=high_after if after else 0.5,
                   single_share=0.7 if after else 0.1)
    clock[0] = END + timedelta(hours=1)
    return truth


def skipped_entries(engine: Engine) -> list[list[Any]]:
    with transaction(engine) as s:
        return [item for action in ("escalation.tasks", "escalation.skipped")
                for e in audit.entries(s, action=action, limit=1000)
                for item in e.payload.get("skipped_unanswerable", [])]


def counted(engine: Engine) -> tuple[Counter[str], Counter[str], dict[str, int]]:
    """Trials and hits per rule over the whole stream, and the left-out events."""
    with transaction(engine) as s:
        obs = collect(s, T0, END)
    trials: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for o in obs.rule_hits:
        rule = dict(o.group)["rule"]
        trials[rule] += 1
        hits[rule] += o.success
    return trials, hits, obs.rule_hits_left_out


def rule_alerts(engine: Engine) -> list[Alert]:
    with transaction(engine) as s:
        return [a for a in monitor_run(s, END, config=CONFIG, store=False).alerts
                if a.monitor == "escalation_rule_hits"]


def test_matches_skipped_as_unanswerable_count_as_hits(engine: Engine,
                                                      clock: list[datetime]) -> None:
    truth = stream(engine, clock)
    skipped = skipped_entries(engine)
    # every matched single-response event, and only those, was skipped, with its rules
    assert {item[0]: set(item[3]) for item in skipped} == {
        e: rules for e, rules in truth.matched.items() if rules and e in truth.single}
    assert all(item[1:3] == ["pairs@1", ["better"]] for item in skipped)
    assert len(skipped) > 150  # a growing share of the matches got no task

    trials, hits, left_out = counted(engine)
    assert trials["hi"] == trials["audit"] == len(truth.matched) == DAYS * PER_DAY
    # the counted hit rate is the share of events the rule matched, task or not
    assert hits["hi"] == truth.hits("hi")
    assert hits["audit"] == truth.hits("audit")
    assert left_out == {}
    assert rule_alerts(engine) == []


def test_a_hit_rate_shift_alerts_while_matches_are_skipped(engine: Engine,
                                                          clock: list[datetime]) -> None:
    stream(engine, clock, high_after=0.8)
    hi = [a for a in rule_alerts(engine) if a.group == {"rule_set": "r1@1", "rule": "hi"}]
    assert [a.window_start for a in hi] == [T0 + timedelta(days=d)
                                             for d in range(SHIFT_DAY, DAYS)]
    for alert in hi:
        assert alert.detail["reference_rate"] < 0.6 < 0.7 < alert.detail["current_rate"]


def _without_rules(event_id: str, row: dict[str, Any], questions: list[str]) -> list[Any]:
    """A skipped event as entries written before the matched rules were recorded."""
    return [event_id, f"{row['rubric_id']}@{row['rubric_version']}", questions]


def test_entries_without_rule_names_run_the_rules_again(
        engine: Engine, clock: list[datetime], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hilt.review.escalation, "_skipped_entry", _without_rules)
    truth = stream(engine, clock)
    skipped = skipped_entries(engine)
    assert len(skipped) > 150 and all(len(item) == 3 for item in skipped)

    trials, hits, left_out = counted(engine)
    assert trials["hi"] == trials["audit"] == len(truth.matched)
    assert (hits["hi"], hits["audit"]) == (truth.hits("hi"), truth.hits("audit"))
    assert left_out == {}
    assert rule_alerts(engine) == []

    # events the rules no longer match as stored (here: a score rewritten) are left
    # out of the trials, neither hits nor misses, and the run says how many
    changed = sorted(item[0] for item in skipped if truth.matched[item[0]] == {"hi"})[:5]
    with transaction(engine) as s:
        for event_id in changed:
            row = s.get(EventRow, event_id)
            assert row is not None
            row.payload = {**row.payload, "scores": {"x": 0.1}}
    trials, hits, left_out = counted(engine)
    assert left_out == {"r1@1": len(changed)} == {"r1@1": 5}
    assert trials["hi"] == len(truth.matched) - 5
    assert hits["hi"] == truth.hits("hi") - 5
    with transaction(engine) as s:
        run = monitor_run(s, END, config=CONFIG)
        (entry,) = audit.entries(s, action="drift.run")
    expected = [{"monitor": "escalation_rule_hits", "group": {"rule_set": "r1@1"},
                 "events": 5, "reason": RULES_NOT_RECORDED}]
    assert run.left_out == entry.payload["left_out"] == expected
    assert run.alerts == []
