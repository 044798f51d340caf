"""The escalation_rule_hits monitor counts an event as a trial of the rule-set version
that live escalation ran on it: the version active when the event was ingested, and
only events with review consent that are not erased. Switching, deactivating or
publishing without activation is no drift; a real change of the hit rate under one
active version still is."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import Engine

import hilt.data.forget
import hilt.events.ingest
import hilt.review.escalation
import hilt.review.rubrics
import hilt.review.tasks
import hilt.store.audit
from hilt.data.forget import erase_subject
from hilt.events.ingest import ingest_events
from hilt.quality.drift.activation import ActiveSpan, activation_timeline
from hilt.quality.drift.alerts import Alert
from hilt.quality.drift.runner import collect, evaluate_monitors
from hilt.quality.drift.windows import DriftConfig
from hilt.review.escalation import activate_rule_set, publish_rule_set
from hilt.review.rubrics import publish_rubric
from hilt.review.rules import parse_rule_set
from hilt.store.db import transaction
from hilt.store.tables import base

from . import scenario

T0 = datetime(2030, 1, 7, tzinfo=UTC)  # midnight UTC: day d is daily window d
DAYS = 7
SWITCH_DAY = 4
PER_DAY = 120
CONFIG = DriftConfig(lookback_windows=DAYS, reference_windows=2,
                     enabled=("escalation_rule_hits",))
END = T0 + timedelta(days=DAYS)
# the modules that stamp the times this test depends on: ingest time, publication,
# activation (audit entry), task creation, erasure
_CLOCKED = (hilt.events.ingest, hilt.review.escalation, hilt.review.rubrics,
            hilt.review.tasks, hilt.store.audit, hilt.data.forget)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """A settable clock for every loaded hilt module that reads the time, so ingest,
    publication and activation happen on the test's days."""
    now = [T0]
    real = base.utcnow
    for mod in _CLOCKED:
        assert getattr(mod, "utcnow", None) is real, mod.__name__
    # base itself keeps the real clock: a module imported later binds that one
    for name, mod in list(sys.modules.items()):
        if (name.startswith("hilt") and mod is not base
                and getattr(mod, "utcnow", None) is real):
            monkeypatch.setattr(mod, "utcnow", lambda: now[0])
    return now


def rules(rule_set_id: str, *, threshold: float = 0.5, changelog: str = "") -> Any:
    return parse_rule_set({
        "id": rule_set_id, "changelog": changelog,
        "defaults": {"rubric": "simple", "pool": "default", "overlap": 1,
                     "severity": "sev2"},
        "rules": [{"name": "hi", "when": {"score": "x", "gte": threshold}},
                  {"name": "audit", "audit_rate": 0.2}]})


def setup(engine: Engine, clock: list[datetime], *, publish_r1: bool = True) -> None:
    clock[0] = T0 + timedelta(minutes=30)
    with transaction(engine) as s:
        publish_rubric(s, scenario.rubric(), actor="lead")
        if publish_r1:
            publish_rule_set(s, rules("r1"), actor="lead")


def ingest_day(engine: Engine, clock: list[datetime], day: int, rng: np.random.Generator,
               *, high_share: float = 0.5, consented_share: float = 1.0,
               subject: Callable[[int], str | None] = lambda i: None) -> list[str]:
    """PER_DAY events one hour into ``day``; score x ≥ 0.5 with ``high_share``. Returns
    the ids of the events with review consent."""
    clock[0] = T0 + timedelta(days=day, hours=1)
    events, consented = [], []
    for i in range(PER_DAY):
        high = rng.random() < high_share
        x = 0.5 + 0.5 * rng.random() if high else 0.5 * rng.random()
        review = rng.random() < consented_share
        event_id = f"d{day}e{i:03d}"
        context: dict[str, Any] = {"consent": ["review", "train"] if review else ["train"],
                                   "source": "sim"}
        if subject(i):
            context["subject_id"] = subject(i)
        events.append({"id": event_id, "interaction": {"prompt": f"prompt {day} {i}"},
                       "responses": [{"text": "answer"}], "created_at": clock[0].isoformat(),
                       "context": context, "scores": {"x": x}})
        if review:
            consented.append(event_id)
    ingest_events(engine, events, actor="service")
    return consented


def rule_alerts(engine: Engine) -> list[Alert]:
    with transaction(engine) as s:
        return [a for a in evaluate_monitors(s, now=END, config=CONFIG)
                if a.monitor == "escalation_rule_hits"]


def trials(engine: Engine) -> Counter[tuple[str, str]]:
    """Trials per (rule_set@version, rule) over the whole stream."""
    with transaction(engine) as s:
        obs = collect(s, T0, END)
    return Counter((dict(o.group)["rule_set"], dict(o.group)["rule"]) for o in obs.rule_hits)


def _publish_r2(engine: Engine) -> None:
    with transaction(engine) as s:
        publish_rule_set(s, rules("r2"), actor="lead")


def _deactivate_r1(engine: Engine) -> None:
    with transaction(engine) as s:
        activate_rule_set(s, "r1", 0, actor="lead")


def _activate_r2(engine: Engine) -> None:
    with transaction(engine) as s:
        activate_rule_set(s, "r2", 1, actor="lead")


@pytest.mark.parametrize("switch", ["publish_r2", "deactivate_r1", "activate_r2"])
def test_a_rule_set_switched_off_raises_no_alert(engine: Engine, clock: list[datetime],
                                                 switch: str) -> None:
    setup(engine, clock)
    if switch == "activate_r2":  # published from the start, but not running
        with transaction(engine) as s:
            publish_rule_set(s, rules("r2"), actor="lead", activate=False)
    rng = np.random.default_rng(11)
    for day in range(DAYS):
        if day == SWITCH_DAY:
            clock[0] = T0 + timedelta(days=day, minutes=30)
            {"publish_r2": _publish_r2, "deactivate_r1": _deactivate_r1,
             "activate_r2": _activate_r2}[switch](engine)
        ingest_day(engine, clock, day, rng)

    switched = T0 + timedelta(days=SWITCH_DAY, minutes=30)
    r2_running = switch != "deactivate_r1"
    with transaction(engine) as s:
        spans = activation_timeline(s).spans()
    assert spans == [ActiveSpan("r1", 1, T0 + timedelta(minutes=30), switched)] + (
        [ActiveSpan("r2", 1, switched, None)] if r2_running else [])
    # r1 ran on the first four days only, r2 on the rest (if at all)
    counted = trials(engine)
    assert counted[("r1@1", "hi")] == SWITCH_DAY * PER_DAY
    assert counted[("r2@1", "hi")] == ((DAYS - SWITCH_DAY) * PER_DAY if r2_running else 0)
    assert rule_alerts(engine) == []


def test_a_version_published_without_activation_has_no_trials_until_activated(
        engine: Engine, clock: list[datetime]) -> None:
    setup(engine, clock)
    rng = np.random.default_rng(12)
    for day in range(DAYS):
        if day == 1:  # r1@2 waits, published but not running; r1@1 goes on
            clock[0] = T0 + timedelta(days=day, minutes=30)
            with transaction(engine) as s:
                publish_rule_set(s, rules("r1", threshold=0.6, changelog="stricter"),
                                 actor="lead", activate=False)
        if day == SWITCH_DAY:
            clock[0] = T0 + timedelta(days=day, minutes=30)
            with transaction(engine) as s:
                activate_rule_set(s, "r1", 2, actor="lead")
        ingest_day(engine, clock, day, rng)

    counted = trials(engine)
    assert counted[("r1@1", "hi")] == SWITCH_DAY * PER_DAY
    assert counted[("r1@2", "hi")] == (DAYS - SWITCH_DAY) * PER_DAY
    assert rule_alerts(engine) == []


def test_a_hit_rate_shift_under_the_active_version_still_alerts(
        engine: Engine, clock: list[datetime]) -> None:
    setup(engine, clock)
    rng = np.random.default_rng(13)
    for day in range(DAYS):
        ingest_day(engine, clock, day, rng, high_share=0.8 if day >= SWITCH_DAY else 0.5)

    alerts = rule_alerts(engine)
    hi = [a for a in alerts if a.group == {"rule_set": "r1@1", "rule": "hi"}]
    assert [a.window_start for a in hi] == [T0 + timedelta(days=d)
                                             for d in range(SWITCH_DAY, DAYS)]
    for alert in hi:
        assert alert.detail["reference_rate"] < 0.6 < 0.7 < alert.detail["current_rate"]
        assert alert.detail["change_ci"][0] > 0.1  # the interval of the rise
    # the audit draw does not depend on the scores: it did not move
    assert [a for a in alerts if a.group["rule"] == "audit"] == []


def forgotten(i: int) -> str | None:
    """The subject of the first ten events of a day, who later asks to be forgotten."""
    return "gone" if i < 10 else None


def test_events_escalation_never_ran_on_are_not_trials(engine: Engine,
                                                       clock: list[datetime]) -> None:
    setup(engine, clock)
    rng = np.random.default_rng(14)
    consented: list[str] = []
    for day in range(DAYS):
        # from the switch day on, half the subjects withhold review consent: the rules
        # never run on their events, which must not read as a falling hit rate
        consented += ingest_day(
            engine, clock, day, rng, consented_share=0.5 if day >= SWITCH_DAY else 1.0,
            subject=forgotten if day == 2 else lambda i: None)
    clock[0] = T0 + timedelta(days=DAYS, hours=1)
    with transaction(engine) as s:
        erase_subject(s, "gone", actor="lead")
    kept = [e for e in consented if not (e.startswith("d2e") and int(e[3:]) < 10)]

    counted = trials(engine)
    assert counted[("r1@1", "hi")] == counted[("r1@1", "audit")] == len(kept)
    assert len(kept) < DAYS * PER_DAY - 10 - 100  # many events were left out
    assert rule_alerts(engine) == []
