"""Which escalation rule-set version was active when, from the store's own record.

Live escalation runs only the active rule-set version on an event, at ingest, and only
when the event's subject consented to review. The rule-set table keeps only the current
``active`` flag; the history is in the audit log, where every switch
(:func:`hilt.review.escalation.activate_rule_set`: publishing with activation, another
set's activation, deactivation with version 0) writes one ``rules.activate`` entry in
the same transaction as the switch itself. Its entity is ``id@version`` and its payload
says whether a version became active (``"active": true``) or none did. Publishing
without activation writes no such entry, so that version never holds an interval.

An event the active version matched gets a task naming the version and the matched
rules, except when its rubric cannot be answered on it (a required preference or
ranking question, fewer than two responses): then the ``escalation.tasks`` or
``escalation.skipped`` audit entry of its ingest lists it under
``skipped_unanswerable``, with the matched rule names since they were recorded
(:func:`skipped_events`).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.review.escalation import ESCALATED
from hilt.store import audit
from hilt.store.tables.core import AuditPendingRow, AuditRow, EventRow

RuleSetKey = tuple[str, int]
"""(rule set id, version)."""


# Activations are rare (one per publish or switch): every one is read.
_ALL_ENTRIES = 2**31 - 1


@dataclass(frozen=True)
class ActiveSpan:
    """One stretch of time during which ``version`` of ``rule_set_id`` was the active
    rule set: ``[start, end)``, ``end`` None while it still is."""

    rule_set_id: str
    version: int
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class ActivationTimeline:
    """The active rule-set version as a step function of time: from ``starts[i]`` (until
    the next start) ``states[i]`` was active, None meaning no rule set was."""

    starts: tuple[datetime, ...]
    states: tuple[RuleSetKey | None, ...]

    def active_at(self, at: datetime) -> RuleSetKey | None:
        """The version active at ``at`` (a switch at exactly ``at`` counts as done)."""
        i = bisect_right(self.starts, at) - 1
        return self.states[i] if i >= 0 else None

    def spans(self) -> list[ActiveSpan]:
        """The intervals during which some version was active, oldest first."""
        out: list[ActiveSpan] = []
        for i, state in enumerate(self.states):
            if state is None:
                continue
            end = self.starts[i + 1] if i + 1 < len(self.starts) else None
            last = out[-1] if out else None
            if last is not None and last.end == self.starts[i] and (
                    last.rule_set_id, last.version) == state:
                out[-1] = replace(last, end=end)  # activated again while active
            else:
                out.append(ActiveSpan(state[0], state[1], self.starts[i], end))
        return out


def _parse_key(entity_id: str) -> RuleSetKey:
    rule_set_id, _, version = entity_id.rpartition("@")
    return rule_set_id, int(version)


def activation_timeline(session: Session) -> ActivationTimeline:
    """Read every ``rules.activate`` audit entry (pending ones on PostgreSQL included)
    into the timeline of the active version."""
    entries = audit.entries(session, action="rules.activate", limit=_ALL_ENTRIES)
    # newest first, in chain order: reversed, then by time (stable, so entries written
    # at the same instant keep the order they were chained in)
    ordered = sorted(reversed(entries), key=lambda e: e.at)
    starts: list[datetime] = []
    states: list[RuleSetKey | None] = []
    for entry in ordered:
        state = _parse_key(entry.entity_id) if (entry.payload or {}).get("active") else None
        if starts and starts[-1] == entry.at:
            states[-1] = state  # the later of two switches at one instant is what held
            continue
        starts.append(entry.at)
        states.append(state)
    return ActivationTimeline(tuple(starts), tuple(states))


def evaluated_events(session: Session, since: datetime, until: datetime
                     ) -> list[tuple[str, datetime]]:
    """(id, ingested_at) of the events ingested in ``[since, until)`` that live
    escalation would have evaluated: review consent, not erased, not a regression
    check's review sample (stored without escalation)."""
    e = EventRow
    return [(r.id, r.ingested_at) for r in session.execute(
        sa.select(e.id, e.ingested_at).where(
            e.ingested_at >= since, e.ingested_at < until, e.erased_at.is_(None),
            ESCALATED))]


@dataclass(frozen=True)
class SkippedEvent:
    """A matched event live escalation made no task for, because its rubric could not
    be answered on it: the version that ran on it and the rules that matched, None in
    entries written before the matched rules were recorded."""

    key: RuleSetKey
    rules: frozenset[str] | None


# the audit entries of an ingest's escalation that can list skipped events
_SKIP_ACTIONS = ("escalation.tasks", "escalation.skipped")


def skipped_events(session: Session, since: datetime) -> dict[str, SkippedEvent]:
    """The events listed under ``skipped_unanswerable`` by the audit entries written
    since ``since`` (pending ones on PostgreSQL included), by event id.

    An entry is written in the ingest's transaction, after the events' ``ingested_at``,
    so the entries of every event ingested since ``since`` are read. Only the two
    payload keys are fetched: an ``escalation.tasks`` payload also lists every task."""
    def part(table: Any) -> Any:
        return sa.select(table.payload["rule_set"].label("rule_set"),
                         table.payload["skipped_unanswerable"].label("skipped")).where(
            table.action.in_(_SKIP_ACTIONS), table.at >= since)

    parts = [part(AuditRow)]
    if session.get_bind().dialect.name == "postgresql":
        # one statement: with two, a sealer committing between them could move an
        # entry from pending to the chain unseen by both
        parts.append(part(AuditPendingRow))
    out: dict[str, SkippedEvent] = {}
    for rule_set, skipped in session.execute(sa.union_all(*parts)):
        if not skipped or not isinstance(rule_set, str) or "@" not in rule_set:
            continue
        key = _parse_key(rule_set)
        for item in skipped:
            rules = frozenset(str(r) for r in item[3]) if len(item) > 3 else None
            out[str(item[0])] = SkippedEvent(key, rules)
    return out
