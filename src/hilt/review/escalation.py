"""Escalation: publish and activate rule sets, run the active one on ingested events, and
backtest a rule file against stored events without creating anything.

An event that several rules match gets one task, shaped by the most severe matching rule
(ties: the first in the file); the task records every match with the input values the
rule read, the rule set id and version, and the event's inclusion probability.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import content_hash
from hilt.errors import Conflict, InputError, NotFound
from hilt.events.model import FeedbackEvent
from hilt.jsonl import non_finite_path
from hilt.review.rubrics import get_version, parse_ref, spec_of
from hilt.review.rules import (
    RuleSet,
    match_rules,
    parse_rule_set,
    severity_number,
)
from hilt.review.tasks import insert_tasks, task_row, unanswerable_questions
from hilt.review.yamlio import load_yaml
from hilt.store import audit
from hilt.store.tables.base import as_utc, utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import RuleSetVersionRow


def load_rule_file(path: str | Path) -> RuleSet:
    data, line_of = load_yaml(path)
    return parse_rule_set(data, file=str(path), line_of=line_of)


def _pin_rubrics(session: Session, rule_set: RuleSet) -> RuleSet:
    """Resolve every rubric reference to an exact published version (``id@n``); a
    reference to an unpublished rubric is an error naming the rule's field and line."""
    file, line_of = rule_set.source

    def pin(ref: str | None, loc: tuple[str | int, ...]) -> str | None:
        if ref is None:
            return None
        try:
            row = get_version(session, *parse_ref(ref))
        except (NotFound, InputError) as exc:
            message = exc.reason if isinstance(exc, InputError) else str(exc)
            raise InputError(message, file=file, line=line_of(loc) if line_of else None,
                             field=".".join(str(p) for p in loc)) from None
        return f"{row.rubric_id}@{row.version}"

    rules = [r.model_copy(update={"rubric": pin(r.rubric, ("rules", i, "rubric"))})
             for i, r in enumerate(rule_set.rules)]
    defaults = rule_set.defaults.model_copy(update={"rubric": pin(
        rule_set.defaults.rubric, ("defaults", "rubric"))})
    return rule_set.model_copy(update={"rules": rules, "defaults": defaults})


def _pinned_spec(session: Session, rule_set: RuleSet) -> tuple[dict[str, Any], str]:
    """The spec as it would be stored (rubrics pinned) and its content hash, which
    leaves the changelog out: the same rules are the same rule set."""
    pinned = _pin_rubrics(session, rule_set)
    spec = pinned.model_dump(mode="json", by_alias=True, exclude_none=True)
    try:
        digest = content_hash({k: v for k, v in spec.items() if k != "changelog"})
    except ValueError:  # NaN or infinity that the rule set's own checks let through
        file, line_of = rule_set.source
        loc = non_finite_path(spec) or ()
        raise InputError("must be a finite number", file=file,
                         line=line_of(loc) if line_of and loc else None,
                         field=".".join(str(p) for p in loc) or None) from None
    return spec, digest


def publish_rule_set(session: Session, rule_set: RuleSet, *, actor: str,
                     activate: bool = True) -> RuleSetVersionRow:
    """Store the next version of a rule set (rubrics pinned), optionally activating it."""
    spec, digest = _pinned_spec(session, rule_set)
    latest = session.execute(
        sa.select(RuleSetVersionRow).where(RuleSetVersionRow.rule_set_id == rule_set.id)
        .order_by(RuleSetVersionRow.version.desc()).limit(1)).scalar_one_or_none()
    if latest is not None and latest.content_hash == digest:
        raise Conflict(f"rule set {rule_set.id!r} version {latest.version} already has "
                       "this content")
    if latest is not None and not rule_set.changelog.strip():
        raise InputError("a new version needs a changelog", field="changelog")
    row = RuleSetVersionRow(rule_set_id=rule_set.id, version=(latest.version + 1) if latest
                            else 1, spec=spec, changelog=rule_set.changelog.strip()
                            or "first version", content_hash=digest, active=False,
                            published_by=actor, published_at=utcnow())
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="rules.publish", entity_type="rule_set",
                 entity_id=f"{row.rule_set_id}@{row.version}",
                 payload={"content_hash": digest, "changelog": row.changelog})
    if activate:
        activate_rule_set(session, row.rule_set_id, row.version, actor=actor)
    return row


def activate_rule_set(session: Session, rule_set_id: str, version: int, *, actor: str
                      ) -> str | None:
    """Make one version the only active rule set, or with ``version=0`` deactivate the
    rule set ``rule_set_id`` (which must be the active one). Returns the version that
    was active before (``id@n``), if any; the audit entry names it too."""
    rows = RuleSetVersionRow
    active = session.execute(sa.select(rows.rule_set_id, rows.version)
                             .where(rows.active.is_(True))).all()
    before = ", ".join(f"{a.rule_set_id}@{a.version}" for a in active) or None
    if version:
        if session.get(RuleSetVersionRow, (rule_set_id, version)) is None:
            raise NotFound(f"rule set {rule_set_id}@{version} does not exist")
    else:
        exists = session.execute(sa.select(rows.version).where(
            rows.rule_set_id == rule_set_id).limit(1)).first()
        if exists is None:
            raise NotFound(f"rule set {rule_set_id!r} does not exist")
        if not any(a.rule_set_id == rule_set_id for a in active):
            # deactivating one set must never switch off another
            raise Conflict(f"no version of rule set {rule_set_id!r} is active (active: "
                           f"{before or 'none'}); nothing deactivated")
    session.execute(sa.update(RuleSetVersionRow).where(RuleSetVersionRow.active.is_(True))
                    .values(active=False))
    if version:
        session.execute(sa.update(RuleSetVersionRow).where(
            RuleSetVersionRow.rule_set_id == rule_set_id,
            RuleSetVersionRow.version == version).values(active=True))
    entity = f"{rule_set_id}@{version}" if version else before or rule_set_id
    audit.append(session, actor=actor, action="rules.activate", entity_type="rule_set",
                 entity_id=entity, payload={"active": bool(version),
                                            "previously_active": before})
    return before


_PARSED: dict[str, RuleSet] = {}


def active_rule_set(session: Session) -> tuple[RuleSet, int] | None:
    """The active rule set and its version (one indexed query; parsed specs cached)."""
    row = session.execute(sa.select(
        RuleSetVersionRow.rule_set_id, RuleSetVersionRow.version,
        RuleSetVersionRow.content_hash).where(RuleSetVersionRow.active.is_(True)).limit(1)
    ).first()
    if row is None:
        return None
    parsed = _PARSED.get(row.content_hash)
    if parsed is None:
        spec = session.get(RuleSetVersionRow, (row.rule_set_id, row.version))
        assert spec is not None
        parsed = stored_rule_set(spec)
    return parsed, row.version


def stored_rule_set(row: RuleSetVersionRow) -> RuleSet:
    """A published version's rules as live escalation runs them (parsed specs cached)."""
    parsed = _PARSED.get(row.content_hash)
    if parsed is None:
        # checks added after a version was published do not stop it from running
        parsed = RuleSet.model_validate(row.spec, context={"stored": True})
        _PARSED[row.content_hash] = parsed
    return parsed


def rules_matched(rule_set: RuleSet, version: int, event_id: str,
                  payload: dict[str, Any]) -> list[str]:
    """The names of the rules that version ``version`` of ``rule_set`` matches on a
    stored event (``payload`` as stored), as live escalation matched them at ingest:
    the audit draw is keyed by event id, rule set id, version and rule name."""
    matches, _ = match_rules(rule_set, version, _as_ingested(event_id, payload), event_id)
    return [m["rule"] for m in matches]


def _task_for(rule_set: RuleSet, version: int, event_id: str, matches: list[dict[str, Any]],
              inclusion: float, uncertainty: float, n_responses: int, now: datetime
              ) -> dict[str, Any]:
    lead = min(matches, key=lambda m: severity_number(m["severity"]))
    rule = next(r for r in rule_set.rules if r.name == lead["rule"])
    d = rule_set.defaults
    rubric_id, rubric_version = parse_ref(rule.rubric or d.rubric or "")
    assert rubric_version is not None  # pinned on publish
    policy = (rule.adjudication or d.adjudication).model_dump()
    return task_row(
        event_id=event_id, pool=rule.pool or d.pool, severity=severity_number(
            lead["severity"]), rubric_id=rubric_id, rubric_version=rubric_version,
        overlap_k=rule.overlap or d.overlap, now=now, n_responses=n_responses,
        sla_hours=rule.sla_hours or d.sla_hours, uncertainty=uncertainty,
        skills=rule.skills if rule.skills is not None else d.skills, policy=policy,
        provenance={"rule_set_id": rule_set.id, "version": version, "rule": rule.name,
                    "matched": matches, "sampling_probability": inclusion})


def apply_active_rules(session: Session, events: list[FeedbackEvent], *, actor: str,
                       now: datetime | None = None) -> int:
    """Run the active rule set on newly stored events; returns the number of tasks made.

    Called by ingest in the same transaction. Without an active rule set this is one
    query. Tasks are bulk-inserted with one audit entry per call. A matched event with
    fewer than two responses whose rubric has a required preference or ranking question
    gets no task (nobody could submit it); the audit entry lists it under
    ``skipped_unanswerable`` as ``[event id, rubric@version, question ids, matched rule
    names]`` (its own ``escalation.skipped`` entry when no task was made). The rule
    names are what a task's ``matched`` would have named: without them the rule-hit
    drift monitor could not tell a skipped match from a miss. Entries written before
    they were recorded have only the first three elements.
    """
    active = active_rule_set(session)
    if active is None or not events:
        return 0
    rule_set, version = active
    now = as_utc(now or utcnow())  # deadlines are UTC hours from now (hilt.review.triage)
    unc_key = rule_set.defaults.uncertainty_score
    rows = []
    unanswerable: list[list[Any]] = []
    # people see what is escalated: an event whose subject did not consent to review is
    # never sent to them, whatever the rules say
    reviewable = [e for e in events if "review" in e.context.consent]
    for event in reviewable:
        assert event.id is not None
        matches, inclusion = match_rules(rule_set, version, event, event.id)
        if matches:
            row = _task_for(rule_set, version, event.id, json.loads(json.dumps(
                matches, default=str)), inclusion, event.scores.get(unc_key, 0.0),
                len(event.responses), now)
            # a task nobody could ever submit would only circulate until its SLA broke:
            # it is skipped, and the audit entry names the event and the questions
            questions = _unanswerable(session, row)
            if questions:
                unanswerable.append(_skipped_entry(event.id, row, questions))
            else:
                rows.append(row)
    payload = {"rule_set": f"{rule_set.id}@{version}", "events": len(events),
               "without_review_consent": len(events) - len(reviewable)}
    if unanswerable:
        payload["skipped_unanswerable"] = unanswerable
    if rows:
        insert_tasks(session, rows, actor=actor, action="escalation.tasks", payload=payload)
    elif unanswerable:
        audit.append(session, actor=actor, action="escalation.skipped",
                     entity_type="rule_set", entity_id=f"{rule_set.id}@{version}",
                     payload=payload)
    return len(rows)


def _skipped_entry(event_id: str, row: dict[str, Any], questions: list[str]) -> list[Any]:
    """``[event id, rubric@version, question ids, matched rule names]`` for an event
    skipped as unanswerable. Only the names: the values a rule read may quote the
    event, and the audit chain cannot be erased."""
    return [event_id, f"{row['rubric_id']}@{row['rubric_version']}", questions,
            [m["rule"] for m in row["matched"]]]


def _unanswerable(session: Session, row: dict[str, Any]) -> list[str]:
    """The required questions of the task's rubric that its event cannot answer."""
    version = get_version(session, row["rubric_id"], row["rubric_version"])
    return unanswerable_questions(spec_of(version), row["n_responses"])


def _as_ingested(event_id: str, payload: dict[str, Any]) -> Any:
    """The event as live escalation saw it: the stored payload has no ``id`` and holds
    datetimes as text, so rules on ``id`` or ``created_at`` would differ."""
    from pydantic import ValidationError

    try:
        return FeedbackEvent.model_validate({**payload, "id": event_id})
    except ValidationError:  # stored under an older schema: evaluate what is there
        return {**payload, "id": event_id}


def backtest_version(session: Session, rule_set: RuleSet) -> tuple[int, str]:
    """The version a backtest draws its audit sample with when none is given, and a note
    saying why.

    The draw is keyed by version, so only the version a live run used reproduces its
    sample. When a published version of the file's id has the file's content (rubrics
    pinned as publishing pins them), that version is taken (the newest such one);
    otherwise 0 (a draft), and the note names the version the live sample uses.
    """
    rows = RuleSetVersionRow
    _, digest = _pinned_spec(session, rule_set)
    published = session.execute(sa.select(rows.version, rows.content_hash, rows.active)
                                .where(rows.rule_set_id == rule_set.id)
                                .order_by(rows.version.desc())).all()
    active = next((r.version for r in published if r.active), None)
    same = next((r.version for r in published if r.content_hash == digest), None)
    if same is not None:
        state = "the active version" if same == active else (
            f"not active; active: {rule_set.id}@{active}" if active is not None
            else "not active")
        return same, (f"the file has the content of {rule_set.id}@{same} ({state}): "
                      f"audit draws use version {same}, as its live runs did")
    if not published:
        return 0, (f"rule set {rule_set.id!r} is not published: audit draws use version "
                   "0 (a draft); publishing makes version 1, and --version 1 previews "
                   "the sample it will draw")
    live = active if active is not None else published[0].version
    return 0, (f"no published version of {rule_set.id!r} has this content: audit draws "
               f"use version 0 (a draft), so the audit sample differs from that of "
               f"{rule_set.id}@{live}" + (" (active)" if live == active else "")
               + f"; --version {live} uses its draws, --version "
               f"{published[0].version + 1} those that publishing this file would make")


def backtest(session: Session, rule_set: RuleSet, *, version: int | None = 0,
             since: datetime | None = None, until: datetime | None = None,
             batch: int = 5000) -> dict[str, Any]:
    """How many stored events each rule would escalate; creates nothing.

    Only the events live escalation would run the rules on are evaluated: an event
    without review consent is never sent to people, an erased one is gone, and a
    regression check's review sample is stored without escalation. They are counted
    (``without_review_consent``, ``erased``, ``review_samples``) but match nothing, and
    each rule's ``rate`` is over the ``evaluated`` events (``events`` less those without
    review consent and the review samples), so an ``audit_rate`` can be checked against
    its setting whatever the consent mix. ``version`` enters the audit draw, which is
    keyed by event id alone, so pass the version a live run would use to reproduce its
    sample exactly (0 = a draft not yet published); ``None`` takes
    :func:`backtest_version`, whose note the report gives as ``version_note``.
    """
    _pin_rubrics(session, rule_set)  # the rubrics must be published, as for publishing
    note = None
    if version is None:
        version, note = backtest_version(session, rule_set)
    fired: Counter[str] = Counter()
    lead: Counter[str] = Counter()
    severity: Counter[str] = Counter()
    escalated = 0
    total, erased, without_consent, samples = _event_counts(session, since, until)
    evaluated = total - without_consent - samples
    for payloads in _stored_events(session, since, until, batch):
        for event_id, payload in payloads:
            matches, _ = match_rules(rule_set, version, _as_ingested(event_id, payload),
                                     event_id)
            for m in matches:
                fired[m["rule"]] += 1
            if matches:
                escalated += 1
                top = min(matches, key=lambda m: severity_number(m["severity"]))
                lead[top["rule"]] += 1
                severity[top["severity"]] += 1
    rules = [{"rule": r.name, "fires": fired[r.name], "creates_tasks": lead[r.name],
              "audit_rate": r.audit_rate, **_rate(fired[r.name], evaluated)}
             for r in rule_set.rules]
    return {"rule_set": rule_set.id, "version": version,
            **({"version_note": note} if note is not None else {}), "events": total,
            "evaluated": evaluated, "without_review_consent": without_consent,
            "review_samples": samples, "erased": erased, "escalated": escalated,
            "by_severity": dict(sorted(severity.items())), "rules": rules}


def _rate(fires: int, events: int) -> dict[str, Any]:
    """The share of the evaluated events a rule fires on, with ``n`` (their count) and a
    95 % Wilson interval; all None over no events (nothing was measured, which is not a
    rate of 0)."""
    from hilt.train.stats import wilson_interval  # numpy: not on the ingest path

    if not events:
        return {"rate": None, "n": 0, "ci_low": None, "ci_high": None}
    low, high = wilson_interval(fires, events)
    return {"rate": fires / events, "n": events, "ci_low": low, "ci_high": high}


# "review" in context.consent, as live escalation tests it (ingest stores the scopes
# as ",review,train," in consent_scopes, so that one LIKE filters on every backend)
REVIEWABLE = EventRow.consent_scopes.like("%,review,%")
# A regression check's review sample (hilt.evals.review_loop) is stored without live
# escalation: it is evaluation output with its own tasks, not production traffic.
REVIEW_SAMPLE_SOURCE = "hilt-regression-review"
# The events live escalation runs the rules on: review consent, not a review sample.
ESCALATED = sa.and_(REVIEWABLE, sa.or_(EventRow.source.is_(None),
                                       EventRow.source != REVIEW_SAMPLE_SOURCE))


def _window(q: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        q = q.where(EventRow.created_at >= since)
    if until is not None:
        q = q.where(EventRow.created_at < until)
    return q


def _event_counts(session: Session, since: datetime | None, until: datetime | None
                  ) -> tuple[int, int, int, int]:
    """Stored events in the window that are not erased, erased ones, not erased ones
    without review consent, and not erased review-sample events with it."""
    live = EventRow.erased_at.is_(None)
    row = session.execute(_window(sa.select(
        sa.func.count().filter(live), sa.func.count().filter(EventRow.erased_at.is_not(None)),
        sa.func.count().filter(live, sa.not_(REVIEWABLE)),
        sa.func.count().filter(live, REVIEWABLE, sa.not_(ESCALATED))), since, until)).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def _stored_events(session: Session, since: datetime | None, until: datetime | None,
                   batch: int) -> Iterable[list[tuple[str, dict[str, Any]]]]:
    """The events live escalation would evaluate (not erased, review consent, not a
    review sample), by id."""
    last = ""
    while True:
        q = (sa.select(EventRow.id, EventRow.payload).where(
            EventRow.id > last, EventRow.erased_at.is_(None), ESCALATED)
             .order_by(EventRow.id).limit(batch))
        rows = session.execute(_window(q, since, until)).all()
        if not rows:
            return
        yield [(r.id, r.payload if isinstance(r.payload, dict) else json.loads(r.payload))
               for r in rows]
        last = rows[-1].id
