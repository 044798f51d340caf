"""Running the monitors on the store: read the review tables over windows, evaluate, and
persist the alerts (idempotent per window) with an audit entry each.

:func:`run_monitors` is what a scheduled job calls (e.g. hourly); it evaluates the
complete windows among the last ``lookback_windows`` and stores only alerts it has not
stored before, so running it twice, or after a missed run, neither duplicates nor loses
alerts. What each monitor reads:

=====================  ==================================================  ==============
monitor                observations                                        group
=====================  ==================================================  ==============
label_shift            final labels of single-choice questions (not gold,  rubric@version,
                       not cluster-propagated, not bridge re-reviews)      question, pool
reviewer_label_shift   each reviewer's answers to single-choice questions  rubric@version,
                       (not gold, not bridge re-reviews)                   question,
                                                                           reviewer
prompt_mix_shift       first tag of each incoming event (``untagged``)     source
agreement              answers of items reviewed at least twice            rubric@version,
                                                                           question, pool
gold_accuracy          gold answers, right or wrong, per question          reviewer,
                                                                           question
adjudication_rate      resolved tasks that needed an adjudicator           rubric@version,
                                                                           pool
guideline_gap_rate     resolved tasks adjudicated with cause               rubric@version,
                       ``guideline_gap``                                   pool
escalation_rule_hits   events the active rule-set version ran on           rule_set@version,
                       (ingested while it was active, review consent, not  rule
                       erased), matched by each rule or not (matches
                       skipped as unanswerable included)
=====================  ==================================================  ==============

Events a monitor must leave out because the store does not say what they were are
counted, never dropped silently: :attr:`MonitorRun.left_out`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import InputError
from hilt.quality.drift.activation import (
    RuleSetKey,
    activation_timeline,
    evaluated_events,
    skipped_events,
)
from hilt.quality.drift.alerts import Alert, group_key
from hilt.quality.drift.monitors import (
    Categorical,
    Group,
    Outcome,
    Rating,
    Untested,
    detect_agreement_drop,
    detect_rate_change,
    detect_shift,
    gold_cusum_context,
)
from hilt.quality.drift.stored import (  # noqa: F401  (re-exported: callers import them from here)
    ALERT_ORDER,
    ALERT_STATUSES,
    acknowledge,
    alert_row_dict,
    alert_rows,
    jsonable,
    list_alerts,
    store_alerts,
)
from hilt.quality.drift.windows import DriftConfig, last_complete_window, window_start
from hilt.review.escalation import rules_matched, stored_rule_set
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.drift import BridgeItemRow
from hilt.store.tables.review import (
    AdjudicationRow,
    FinalLabelRow,
    ReviewRow,
    ReviewTaskRow,
    RubricVersionRow,
    RuleSetVersionRow,
)


@dataclass
class Observations:
    """Everything the monitors read, as plain records."""

    labels: list[Categorical] = field(default_factory=list)
    label_categories: dict[Group, list[str]] = field(default_factory=dict)
    reviewer_answers: list[Categorical] = field(default_factory=list)
    prompt_topics: list[Categorical] = field(default_factory=list)
    ratings: list[Rating] = field(default_factory=list)
    gold: list[Outcome] = field(default_factory=list)
    adjudicated: list[Outcome] = field(default_factory=list)
    guideline_gaps: list[Outcome] = field(default_factory=list)
    rule_hits: list[Outcome] = field(default_factory=list)
    # rule_set@version -> events it ran on that are no trials: skipped as unanswerable
    # by an entry that does not name the matched rules, which no longer match when run
    # again on the stored event
    rule_hits_left_out: dict[str, int] = field(default_factory=dict)


def evaluate(obs: Observations, windows: list[int], config: DriftConfig, *,
             untested: list[Untested] | None = None) -> list[Alert]:
    """Run every enabled monitor over ``windows`` (pure); groups with data that a monitor
    could not test in a window are appended to ``untested``."""
    on = set(config.enabled)
    alerts: list[Alert] = []
    if "label_shift" in on:
        alerts += detect_shift("label_shift", obs.labels, windows, config,
                               obs.label_categories, untested=untested)
    if "reviewer_label_shift" in on:
        reviewer_cats = {g: obs.label_categories.get(
            tuple(p for p in g if p[0] != "reviewer"), []) for g in
            {a.group for a in obs.reviewer_answers}}
        alerts += detect_shift("reviewer_label_shift", obs.reviewer_answers, windows, config,
                               reviewer_cats, untested=untested)
    if "prompt_mix_shift" in on:
        alerts += detect_shift("prompt_mix_shift", obs.prompt_topics, windows, config,
                               untested=untested)
    if "agreement" in on:
        alerts += detect_agreement_drop("agreement", obs.ratings, windows, config,
                                        untested=untested)
    if "gold_accuracy" in on:
        alerts += detect_rate_change("gold_accuracy", obs.gold, windows, config, "decrease",
                                     min_window_n=config.min_gold_window_n,
                                     min_reference_n=config.min_gold_reference_n,
                                     context=gold_cusum_context(obs.gold, config),
                                     untested=untested)
    if "adjudication_rate" in on:
        alerts += detect_rate_change("adjudication_rate", obs.adjudicated, windows, config,
                                     "increase", untested=untested)
    if "guideline_gap_rate" in on:
        alerts += detect_rate_change("guideline_gap_rate", obs.guideline_gaps, windows,
                                     config, "increase", untested=untested)
    if "escalation_rule_hits" in on:
        alerts += detect_rate_change("escalation_rule_hits", obs.rule_hits, windows, config,
                                     "two-sided", untested=untested)
    return alerts


def untested_summary(records: Sequence[Untested], config: DriftConfig
                     ) -> list[dict[str, Any]]:
    """One entry per monitor and group that could not be tested in some evaluated window
    where it had data: how many windows, why (reason -> windows), and the newest such
    window with its current and reference sizes."""
    by_group: dict[tuple[str, Group], list[Untested]] = defaultdict(list)
    for record in records:
        by_group[(record.monitor, record.group)].append(record)
    out = []
    for (monitor, group), found in sorted(by_group.items(),
                                          key=lambda kv: (kv[0][0], group_key(kv[0][1]))):
        reasons: dict[str, int] = defaultdict(int)
        for record in found:
            reasons[record.reason] += 1
        last = max(found, key=lambda r: r.window)
        out.append({"monitor": monitor, "group": dict(group), "windows": len(found),
                    "reasons": dict(reasons),
                    "last_window_start": window_start(last.window, config.width).isoformat(),
                    "last_reason": last.reason, "last_n_current": last.n_current,
                    "last_n_reference": last.n_reference})
    return out


def _choice_questions(session: Session) -> dict[tuple[str, int], dict[str, list[str]]]:
    """(rubric, version) -> single-choice question id -> its options."""
    out: dict[tuple[str, int], dict[str, list[str]]] = {}
    for row in session.execute(sa.select(RubricVersionRow)).scalars():
        out[(row.rubric_id, row.version)] = {
            q["id"]: [o["value"] if isinstance(o, dict) else str(o) for o in q["options"]]
            for q in row.spec.get("questions", []) if q.get("kind") == "single_choice"}
    return out


def collect(session: Session, since: datetime, until: datetime) -> Observations:
    """Read the observations of ``[since, until)`` from the review and event tables."""
    obs = Observations()
    choices = _choice_questions(session)
    bridge_tasks = set(session.execute(sa.select(BridgeItemRow.task_id)).scalars())
    f, t = FinalLabelRow, ReviewTaskRow
    for rubric_id, version, question, value, at, task_id, pool in session.execute(
            sa.select(f.rubric_id, f.rubric_version, f.question_id, f.value, f.decided_at,
                      f.task_id, t.pool).join(t, t.id == f.task_id)
            .where(f.decided_at >= since, f.decided_at < until,
                   f.question_kind == "single_choice",
                   f.provenance.not_in(["gold", "cluster_propagated"]))):
        if task_id in bridge_tasks:
            continue
        group: Group = (("rubric", f"{rubric_id}@{version}"), ("question", question),
                        ("pool", pool))
        obs.labels.append(Categorical(at, group, str(value)))
        obs.label_categories.setdefault(group, choices.get((rubric_id, version), {}).get(
            question, []))
    r = ReviewRow
    for reviewer, rubric_id, version, answers, at, task_id, is_gold, pool, gold in \
            session.execute(sa.select(r.reviewer_id, r.rubric_id, r.rubric_version, r.answers,
                                      r.submitted_at, r.task_id, r.is_gold, t.pool,
                                      t.gold_answers).join(t, t.id == r.task_id)
                            .where(r.submitted_at >= since, r.submitted_at < until)):
        rubric = f"{rubric_id}@{version}"
        for question, options in choices.get((rubric_id, version), {}).items():
            if question not in (answers or {}):
                continue
            value = str(answers[question])
            if is_gold:
                if gold and question in gold:
                    obs.gold.append(Outcome(at, (("reviewer", reviewer),
                                                 ("question", question)),
                                            value == str(gold[question])))
                continue
            if task_id in bridge_tasks:
                # A bridge samples equally per old label: its answers have a label mix of
                # their own, which would read as the reviewer's labels shifting.
                continue
            base: Group = (("rubric", rubric), ("question", question))
            obs.reviewer_answers.append(Categorical(at, base + (("reviewer", reviewer),),
                                                    value))
            obs.label_categories.setdefault(base, options)
            obs.ratings.append(Rating(at, base + (("pool", pool),), task_id, reviewer, value))
    a = AdjudicationRow
    for task_id, rubric_id, version, pool, at, cause in session.execute(
            sa.select(t.id, t.rubric_id, t.rubric_version, t.pool, t.resolved_at, a.cause)
            .outerjoin(a, a.task_id == t.id)
            .where(t.status == "resolved", t.is_gold.is_(False),
                   t.representative_id.is_(None), t.resolved_at >= since,
                   t.resolved_at < until)):
        if task_id in bridge_tasks or at is None:
            continue
        group = (("rubric", f"{rubric_id}@{version}"), ("pool", pool))
        obs.adjudicated.append(Outcome(at, group, cause is not None))
        obs.guideline_gaps.append(Outcome(at, group, cause == "guideline_gap"))
    _events(session, since, until, obs)
    return obs


def _events(session: Session, since: datetime, until: datetime, obs: Observations) -> None:
    e = EventRow
    for at, source, payload in session.execute(
            sa.select(e.created_at, e.source, e.payload).where(
                e.created_at >= since, e.created_at < until, e.erased_at.is_(None))):
        tags = ((payload or {}).get("context") or {}).get("tags") or []
        obs.prompt_topics.append(Categorical(at, (("source", source or "none"),),
                                             str(tags[0]) if tags else "untagged"))
    _rule_hits(session, since, until, obs)


def _rule_hits(session: Session, since: datetime, until: datetime, obs: Observations
               ) -> None:
    """Rule hits: an event is a trial for each rule of the rule-set version that live
    escalation ran on it, and a hit for the rules that version matched on it.

    That version is the one its task names or, for an event that matched nothing, the
    one active when it was ingested (:mod:`.activation`). Events ingested while no
    version was active, without review consent, or erased since are no trials: the
    rules never ran on them (or they are gone). A version replaced, deactivated or
    published without activation therefore gets no trials while it is not running.

    The matched rules are those its task records or, for a matched event that got no
    task because its rubric cannot be answered on it, those its ``skipped_unanswerable``
    audit entry names: counted as misses, a rising share of such events would read as
    a falling hit rate. Entries written before the rule names were recorded list only
    the event; its rules are then run again on the stored event, as a backtest does
    (the audit draw is keyed by event id, so it is the live one). An event they match
    nothing on is no trial (it did match: a miss would be wrong for the rule that did,
    and leaving out only these would still bias the rate down) and is counted in
    ``obs.rule_hits_left_out``."""
    timeline = activation_timeline(session)
    if not timeline.starts:
        return
    versions = {(row.rule_set_id, row.version): row
                for row in session.execute(sa.select(RuleSetVersionRow)).scalars()}
    rules_of = {key: [str(rule.get("name")) for rule in row.spec.get("rules", [])]
                for key, row in versions.items()}
    e, t = EventRow, ReviewTaskRow
    ran: dict[str, RuleSetKey] = {}
    hits: dict[str, set[str]] = defaultdict(set)
    for event_id, rule_set_id, version, matches in session.execute(
            sa.select(t.event_id, t.rule_set_id, t.rule_set_version, t.matched)
            .join(e, e.id == t.event_id)
            .where(t.rule_set_id.is_not(None), t.rule_set_version.is_not(None),
                   e.ingested_at >= since, e.ingested_at < until)):
        ran[event_id] = (rule_set_id, version)
        hits[event_id].update(str(m.get("rule")) for m in matches or [])
    evaluated = evaluated_events(session, since, until)
    skipped = {event_id: skip for event_id, skip in skipped_events(session, since).items()
               if event_id not in ran}
    for event_id, skip in skipped.items():
        ran[event_id] = skip.key
        if skip.rules is not None:
            hits[event_id].update(skip.rules)
    unnamed = [event_id for event_id, _ in evaluated
               if event_id in skipped and skipped[event_id].rules is None]
    hits.update(_matched_again(session, unnamed, ran, versions))
    left_out: dict[str, int] = defaultdict(int)
    for event_id, at in evaluated:
        key = ran.get(event_id) or timeline.active_at(at)
        if key is None or key not in rules_of:
            continue
        matched = hits.get(event_id, set())
        ref = f"{key[0]}@{key[1]}"
        if event_id in skipped and not matched:
            left_out[ref] += 1
            continue
        for rule in rules_of[key]:
            obs.rule_hits.append(Outcome(at, (("rule_set", ref), ("rule", rule)),
                                         rule in matched))
    obs.rule_hits_left_out = dict(sorted(left_out.items()))


def _matched_again(session: Session, event_ids: list[str], ran: dict[str, RuleSetKey],
                   versions: dict[RuleSetKey, RuleSetVersionRow], batch: int = 1000
                   ) -> dict[str, set[str]]:
    """The rules the version that ran on each event matches on it as stored."""
    out: dict[str, set[str]] = {}
    for lo in range(0, len(event_ids), batch):
        for event_id, payload in session.execute(sa.select(EventRow.id, EventRow.payload)
                                                 .where(EventRow.id.in_(
                                                     event_ids[lo:lo + batch]))):
            key = ran[event_id]
            row = versions.get(key)
            if row is None:
                continue
            if not isinstance(payload, dict):
                payload = json.loads(payload)
            out[event_id] = set(rules_matched(stored_rule_set(row), key[1], event_id,
                                              payload))
    return out


def _windows(now: datetime, config: DriftConfig) -> tuple[list[int], datetime, datetime]:
    last = last_complete_window(now, config.width)
    windows = list(range(last - config.lookback_windows + 1, last + 1))
    back = (config.history_windows if config.reference == "baseline"
            else config.lookback_windows + config.reference_windows)
    return (windows, window_start(last - back + 1, config.width),
            window_start(last + 1, config.width))


def run_windows(now: datetime, config: DriftConfig) -> tuple[list[int], datetime, datetime]:
    """The windows a run at ``now`` evaluates and the span ``[since, until)`` it reads.
    A ``now`` whose windows (back over the config's history, and the current one) reach
    outside the times a datetime (and so the store) can hold is the caller's error,
    raised as :class:`InputError` naming ``now``, as the CLI and the HTTP API report it,
    rather than an ``OverflowError`` naming nothing."""
    try:
        return _windows(now, config)
    except OverflowError:
        raise InputError(
            f"the windows of a run at {now.isoformat()} ({config.window_hours:g}-hour "
            "windows, back over the config's history) reach outside years 1 to 9999 (UTC)",
            field="now") from None


@dataclass(frozen=True)
class MonitorRun:
    """The outcome of one run: alerts (the new ones when stored, else all found), the
    groups that had data but could not be tested (:func:`untested_summary`), and the
    events a monitor left out of the windows it read because the store does not say
    what they were (:func:`left_out_summary`)."""

    alerts: list[Alert]
    untested: list[dict[str, Any]]
    left_out: list[dict[str, Any]] = field(default_factory=list)


RULES_NOT_RECORDED = ("matched, but skipped as unanswerable by an audit entry that does "
                      "not name the matched rules, and the rules run again on the stored "
                      "event match none")


def left_out_summary(obs: Observations, config: DriftConfig) -> list[dict[str, Any]]:
    """One entry per enabled monitor and group with events left out of its trials:
    ``events`` (how many, over every window read) and ``reason``."""
    if "escalation_rule_hits" not in config.enabled:
        return []
    return [{"monitor": "escalation_rule_hits", "group": {"rule_set": ref}, "events": n,
             "reason": RULES_NOT_RECORDED} for ref, n in obs.rule_hits_left_out.items()]


# A run lists every untested group in its output; its audit entry keeps the first ones.
AUDIT_UNTESTED_LIMIT = 200


def monitor_run(session: Session, now: datetime | None = None, *,
                config: DriftConfig | None = None, actor: str = "drift",
                store: bool = True) -> MonitorRun:
    """Evaluate the monitors over the recent complete windows. With ``store``, store the
    alerts not stored before (each with a ``drift.alert`` audit entry) and write one
    ``drift.run`` entry for the run, listing the untested groups and the left-out
    events."""
    cfg = config or DriftConfig()
    moment = now or utcnow()
    windows, since, until = run_windows(moment, cfg)
    records: list[Untested] = []
    obs = collect(session, since, until)
    alerts = evaluate(obs, windows, cfg, untested=records)
    untested = untested_summary(records, cfg)
    left_out = left_out_summary(obs, cfg)
    if not store:
        return MonitorRun(alerts, untested, left_out)
    new = store_alerts(session, alerts, actor=actor)
    session.flush()
    audit.append(session, actor=actor, action="drift.run", entity_type="drift_run",
                 entity_id=moment.isoformat(), payload={
                     "windows": [window_start(w, cfg.width).isoformat() for w in windows],
                     "alerts": len(alerts), "new_alerts": len(new),
                     "untested_groups": len(untested),
                     "untested": jsonable(untested[:AUDIT_UNTESTED_LIMIT]),
                     "left_out": left_out, "config": jsonable(cfg.as_dict())})
    return MonitorRun(new, untested, left_out)


def evaluate_monitors(session: Session, *, now: datetime | None = None,
                      config: DriftConfig | None = None) -> list[Alert]:
    """Every alert of the recent complete windows, stored or not (writes nothing)."""
    return monitor_run(session, now, config=config, store=False).alerts


def run_monitors(session: Session, now: datetime | None = None, *,
                 config: DriftConfig | None = None, actor: str = "drift") -> list[Alert]:
    """Evaluate the monitors and store the alerts not stored before; returns those new
    alerts. Each new alert gets an audit entry (``drift.alert``); the run itself one
    more (``drift.run``, with the groups that could not be tested)."""
    return monitor_run(session, now, config=config, actor=actor).alerts
