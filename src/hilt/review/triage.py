"""Triage: the priority of open tasks, near-duplicate clusters and SLA breaches.

Priority (higher is served first), with every term in [0, 1]:

    priority = w_severity    · (3 − severity) / 3
             + w_sla         · urgency,       urgency = 1 if overdue (past due, or
                                              ever past an SLA deadline: see Breaches),
                                              else exp(−hours_left / sla_tau_hours)
             + w_uncertainty · clip(uncertainty, 0, 1)
             + w_reach       · log2(reach) / (1 + log2(reach))

``reach`` is the size of the task's near-duplicate cluster, so a representative whose
decision settles many items rises. The weights and ``sla_tau_hours`` are a
:class:`TriageConfig`; the defaults make one severity step (1.33) worth about the
urgency gained in the last few hours before a deadline.

Near-duplicates: each open, untouched task's item text (prompt and responses) is
split into words as the data stage does (:func:`hilt.data.ngrams.words`: NFKC,
accents dropped, look-alike letters mapped to Latin, case-folded, ``\\w+`` runs in
any script, one word per Han, kana, Hangul, Thai, ... character, so such text gets
character shingles), cut into word 3-shingles and
summarised by a MinHash signature (Broder, 1997); locality-sensitive hashing proposes
pairs and a pair joins a cluster when its estimated Jaccard similarity is at least
``dup_threshold``. A text without a single word is never clustered: having nothing in
common says nothing about two items.
Only tasks reviewed the same way are clustered: the same pool, rubric version, required
skills, overlap k and adjudication policy (:func:`cluster_key`).
One representative per cluster is reviewed; the others wait as ``clustered`` and receive
its final labels with provenance ``cluster_propagated``.

Breaches: a task not resolved by its SLA deadline is re-escalated once — one severity
step up (sev3 → sev2 …) with a deadline for the new severity (its default SLA, or the
window the task was first given when that was shorter) — and the breach is written to
the audit log. ``sla_breached_at`` keeps the deadline it first missed, and from then on
the task counts as overdue in its priority (urgency 1), whatever deadline it holds: at
equal uncertainty and reach, a task that missed its SLA never ranks below on-time work
of its severity. A task that
misses an escalated deadline too is escalated again (a repeat breach, reported apart
from first breaches); a sev0 task has no step left, so it keeps the deadline it missed
and is not counted again at every run, and :func:`overdue_hours` says how late it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.store import audit
from hilt.store.tables.base import as_utc
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import ReviewTaskRow

# The most MinHash permutations a triage run may use (the default is 64).
MAX_NUM_PERM = 1024


@dataclass(frozen=True)
class TriageConfig:
    w_severity: float = 4.0
    w_sla: float = 2.0
    w_uncertainty: float = 1.0
    w_reach: float = 1.0
    sla_tau_hours: float = 4.0
    dup_threshold: float = 0.8
    num_perm: int = 64

    def __post_init__(self) -> None:
        # Checked here, not where the values are used, so that a bad setting is refused
        # with its name before triage touches the database (not as a TypeError,
        # ZeroDivisionError or datasketch ValueError halfway through a run).
        from hilt.errors import InputError

        for name in ("w_severity", "w_sla", "w_uncertainty", "w_reach", "sla_tau_hours",
                     "dup_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise InputError(f"must be a finite number, not {value!r}", field=name)
        for name in ("w_severity", "w_sla", "w_uncertainty", "w_reach"):
            if getattr(self, name) < 0:
                raise InputError("a weight must be ≥ 0", field=name)
        if self.sla_tau_hours <= 0:  # the urgency term divides by it
            raise InputError("must be > 0 (hours)", field="sla_tau_hours")
        if not 0 <= self.dup_threshold <= 1:
            raise InputError("must be between 0 and 1 (a Jaccard similarity)",
                             field="dup_threshold")
        # MinHash LSH needs at least two permutations; every open task's signature
        # holds num_perm hashes, so a run with millions would exhaust memory and time
        if isinstance(self.num_perm, bool) or not isinstance(self.num_perm, int) \
                or not 2 <= self.num_perm <= MAX_NUM_PERM:
            raise InputError(f"must be an integer from 2 to {MAX_NUM_PERM}, not "
                             f"{self.num_perm!r}", field="num_perm")
        # LSH must be able to split the signature into at least two bands at this
        # threshold (0.99 with 64 permutations cannot). The defaults can, which spares
        # importing datasketch whenever a default configuration is made.
        if (self.dup_threshold, self.num_perm) != (0.8, 64):
            from datasketch import MinHashLSH

            try:
                MinHashLSH(threshold=self.dup_threshold, num_perm=self.num_perm)
            except ValueError as exc:
                raise InputError(
                    f"{self.dup_threshold} is too high for num_perm {self.num_perm} "
                    f"({exc}); lower it or raise num_perm", field="dup_threshold") from None

    @classmethod
    def from_dict(cls, data: Any, *, file: str | None = None,
                  line_of: Callable[[tuple[Any, ...]], int | None] | None = None
                  ) -> TriageConfig:
        """The configuration from a mapping of setting to value (every key optional);
        errors name ``file``, the setting and, with ``line_of`` (key path to line, as
        :func:`hilt.review.yamlio.load_yaml` gives), its line."""
        from hilt.errors import InputError

        def line(*loc: Any) -> int | None:
            return line_of(loc) if line_of is not None else None

        data = {} if data is None else data
        if not isinstance(data, dict):
            raise InputError(f"triage settings must be a mapping of setting: value, not "
                             f"{type(data).__name__}", file=file, line=line())
        unknown = [k for k in data if k not in cls.__dataclass_fields__]
        if unknown:
            raise InputError(f"unknown triage setting {str(unknown[0])!r}", file=file,
                             line=line(unknown[0]), field=str(unknown[0]))
        try:
            return cls(**data)
        except InputError as exc:
            raise InputError(exc.reason, file=file,
                             line=line(exc.field) if exc.field else None,
                             field=exc.field) from None


def priority(severity: int, hours_left: float, uncertainty: float, reach: int,
             config: TriageConfig = TriageConfig(), *, overdue: bool = False) -> float:
    """The documented priority formula (see the module docstring); ``overdue`` (a task
    that has missed an SLA deadline, whatever deadline it holds now) takes urgency 1."""
    urgency = 1.0 if overdue or hours_left <= 0 \
        else math.exp(-hours_left / config.sla_tau_hours)
    reach_term = math.log2(max(reach, 1)) / (1.0 + math.log2(max(reach, 1)))
    return (config.w_severity * (3 - severity) / 3 + config.w_sla * urgency
            + config.w_uncertainty * min(max(uncertainty, 0.0), 1.0)
            + config.w_reach * reach_term)


def hours_left(due: datetime, now: datetime) -> float:
    return (as_utc(due) - as_utc(now)).total_seconds() / 3600.0


def overdue_hours(sla_due_at: datetime, sla_breached_at: datetime | None, now: datetime
                  ) -> float | None:
    """How many hours a task is past the first SLA deadline it missed (``None`` while it
    is within its SLA). An escalated task holds a later deadline, so the first missed
    one (``sla_breached_at``) is what tells a lead how late the work is."""
    missed = sla_breached_at if sla_breached_at is not None else sla_due_at
    late = -hours_left(missed, now)
    return late if late > 0 or sla_breached_at is not None else None


def refresh_priorities(session: Session, now: datetime,
                       config: TriageConfig = TriageConfig()) -> int:
    """Recompute the priority of every open task (urgency grows as deadlines near, and
    stays at its overdue value once a task has missed its SLA)."""
    now = as_utc(now)
    rows = session.execute(sa.select(
        ReviewTaskRow.id, ReviewTaskRow.severity, ReviewTaskRow.sla_due_at,
        ReviewTaskRow.sla_breached_at, ReviewTaskRow.uncertainty, ReviewTaskRow.reach)
        .where(ReviewTaskRow.status.in_(("open", "needs_adjudication")))).all()
    updates = [{"id": r.id, "priority": priority(
        r.severity, hours_left(r.sla_due_at, now), r.uncertainty, r.reach, config,
        overdue=r.sla_breached_at is not None)} for r in rows]
    if updates:  # ORM bulk update by primary key: one executemany
        session.execute(sa.update(ReviewTaskRow), updates)
    return len(updates)


# --- near-duplicate clustering ------------------------------------------------------

def shingles(text: str, n: int = 3) -> set[str]:
    """Word n-shingles of the normalised text (the whole text when it is shorter; no
    shingle when it has no word)."""
    from hilt.data.ngrams import words

    found = words(text)
    if not found:
        return set()
    if len(found) <= n:
        return {" ".join(found)}
    return {" ".join(found[i:i + n]) for i in range(len(found) - n + 1)}


def near_duplicate_groups(texts: dict[str, str], threshold: float = 0.8,
                          num_perm: int = 64) -> list[list[str]]:
    """Groups (size ≥ 2) of keys whose texts are near-duplicates (MinHash + LSH)."""
    from datasketch import MinHash, MinHashLSH

    shingled = {k: shingles(texts[k]) for k in sorted(texts)}
    keys = [k for k, found in shingled.items() if found]
    sets = [[s.encode() for s in shingled[k]] for k in keys]
    signatures = MinHash.bulk(sets, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    parent = {k: k for k in keys}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    signature_of = dict(zip(keys, signatures, strict=True))
    for key, sig in signature_of.items():
        for other in lsh.query(sig):
            if sig.jaccard(signature_of[other]) >= threshold:
                parent[find(key)] = find(other)
        lsh.insert(key, sig)
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(find(k), []).append(k)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def _item_text(payload: dict[str, Any] | str) -> str:
    from hilt.review.rules import prompt_text, response_text

    data = payload if isinstance(payload, dict) else json.loads(payload)
    return prompt_text(data) + "\n" + response_text(data)


def cluster_key(task: ReviewTaskRow) -> tuple[Any, ...]:
    """What two tasks must share to be clustered. The representative's reviews settle
    every member, so they must be reviewed the same way: same pool and rubric version,
    the same reviewers (required skills), as many of them (overlap k) and the same
    adjudication policy. Otherwise a one-review task would settle a task that asked for
    five reviews by medical reviewers."""
    skills = tuple(sorted(set(task.required_skills or [])))
    policy = json.dumps(task.policy or {}, sort_keys=True)
    return (task.pool, task.rubric_id, task.rubric_version, skills, task.overlap_k, policy)


def cluster_open_tasks(session: Session, now: datetime, *, actor: str = "triage",
                       config: TriageConfig = TriageConfig()) -> int:
    """Cluster near-duplicate open tasks; returns how many tasks became members."""
    now = as_utc(now)
    t = ReviewTaskRow
    rows = session.execute(
        sa.select(t, EventRow.payload).join(EventRow, EventRow.id == t.event_id)
        .where(t.is_gold.is_(False), t.status.in_(("open", "needs_adjudication")),
               t.representative_id.is_(None))).all()
    by_group: dict[tuple[Any, ...], dict[str, tuple[ReviewTaskRow, str]]] = {}
    for task, payload in rows:
        by_group.setdefault(cluster_key(task), {})[task.id] = (task, _item_text(payload))
    joined = 0
    for tasks in by_group.values():
        if len(tasks) < 2:
            continue
        groups = near_duplicate_groups({k: v[1] for k, v in tasks.items()},
                                       config.dup_threshold, config.num_perm)
        for group in groups:
            members = [tasks[k][0] for k in group]
            # Keep an existing representative; otherwise the task already worked on, then
            # the highest priority.
            rep = max(members, key=lambda m: (m.cluster_id == m.id, m.reviews_done > 0
                                              or m.open_slots < m.overlap_k, m.priority,
                                              m.id))
            fresh = [m for m in members if m is not rep and m.reviews_done == 0
                     and m.open_slots == m.overlap_k and m.status == "open"]
            if not fresh:
                continue
            # A fresh member may itself represent an earlier cluster (two clusters merge
            # through an item near both). Its members move with it: they are only
            # resolved through their representative_id, so left on it they would never
            # be reviewed, labelled or checked against their SLA.
            fresh_ids = [m.id for m in fresh]
            moved = session.execute(sa.select(t).where(
                t.representative_id.in_(fresh_ids), t.status == "clustered")).scalars().all()
            for m in moved:
                m.cluster_id, m.representative_id = rep.id, rep.id
            for m in fresh:
                m.status, m.cluster_id, m.representative_id = "clustered", rep.id, rep.id
                m.open_slots, m.reach = 0, 1
            # The representative's review settles every member, so it takes the most
            # severe severity and the earliest deadline among them, and a member's
            # missed SLA (the earliest) with its escalations: the item is as late as
            # its most overdue member, and must not lose its overdue urgency by merging.
            for m in [*fresh, *moved]:
                rep.severity = min(rep.severity, m.severity)
                rep.sla_due_at = min(rep.sla_due_at, m.sla_due_at)
                if m.sla_breached_at is not None:
                    rep.sla_breached_at = min(rep.sla_breached_at or m.sla_breached_at,
                                              m.sla_breached_at)
                    rep.escalation_level = max(rep.escalation_level, m.escalation_level)
            rep.cluster_id = rep.id
            session.flush()
            rep.reach = 1 + session.execute(sa.select(sa.func.count()).where(
                t.representative_id == rep.id)).scalar_one()
            rep.priority = priority(rep.severity, hours_left(rep.sla_due_at, now),
                                    rep.uncertainty, rep.reach, config,
                                    overdue=rep.sla_breached_at is not None)
            joined += len(fresh)
            session.flush()
            audit.append(session, actor=actor, action="triage.cluster",
                         entity_type="review_task", entity_id=rep.id,
                         payload={"members": [m.id for m in fresh],
                                  "moved_members": [m.id for m in moved],
                                  "reach": rep.reach, "threshold": config.dup_threshold})
    return joined


# --- SLA ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SlaBreaches:
    """The tasks one run found past their SLA: ``new`` missed their first deadline,
    ``repeat`` had been escalated for a breach before and missed that deadline too."""

    new: list[str]
    repeat: list[str]


def _escalated_window(task: ReviewTaskRow) -> float:
    """Hours the task gets at its new severity: the severity's default SLA, but never
    more than the window it was first given (a rule's own ``sla_hours``): escalating
    must not grant a task more time than it had."""
    from hilt.review.rules import DEFAULT_SLA_HOURS

    default = DEFAULT_SLA_HOURS[task.severity]
    first_deadline = task.sla_breached_at or task.sla_due_at
    given = (first_deadline - task.created_at).total_seconds() / 3600.0 \
        if task.created_at is not None else 0.0
    # a representative may carry a member's deadline from before its own creation
    return min(default, given) if given > 0 else default


def record_sla_breaches(session: Session, now: datetime, *, actor: str = "triage",
                        config: TriageConfig = TriageConfig()) -> SlaBreaches:
    """Escalate every unresolved task that has missed a deadline not yet acted on.

    A breach is acted on once: the task moves one severity step up with a deadline for
    its new severity, and is taken up again only if it misses that one too. A sev0 task
    has no step left: it keeps the deadline it missed (so it shows how late it is) and
    is not taken up again. ``sla_breached_at`` keeps the first deadline missed; the
    task's urgency stays at its overdue value from then on.
    """
    now = as_utc(now)
    t = ReviewTaskRow
    late = session.execute(sa.select(t).where(
        t.status.in_(("open", "needs_adjudication")), t.sla_due_at < now,
        sa.or_(t.sla_breached_at.is_(None), t.severity > 0))
        .order_by(t.id).with_for_update(skip_locked=True)).scalars().all()
    new: list[str] = []
    repeat: list[str] = []
    for task in late:
        missed = task.sla_due_at
        before = {"severity": task.severity, "sla_due_at": missed.isoformat()}
        is_repeat = task.sla_breached_at is not None
        (repeat if is_repeat else new).append(task.id)
        task.sla_breached_at = task.sla_breached_at or missed
        task.escalation_level += 1
        if task.severity > 0:
            task.severity -= 1
            task.sla_due_at = now + timedelta(hours=_escalated_window(task))
        task.priority = priority(task.severity, hours_left(task.sla_due_at, now),
                                 task.uncertainty, task.reach, config, overdue=True)
        audit.append(session, actor=actor, action="task.sla_breach", entity_type="review_task",
                     entity_id=task.id, payload={
                         "before": before, "severity": task.severity,
                         "sla_due_at": task.sla_due_at.isoformat(),
                         "escalation_level": task.escalation_level,
                         "repeat": is_repeat,
                         "sla_breached_at": task.sla_breached_at.isoformat(),
                         "overdue_hours": overdue_hours(task.sla_due_at,
                                                        task.sla_breached_at, now)})
    return SlaBreaches(new=new, repeat=repeat)


def escalate_sla_breaches(session: Session, now: datetime, *, actor: str = "triage",
                          config: TriageConfig = TriageConfig()) -> list[str]:
    """The ids of the tasks :func:`record_sla_breaches` escalates in this run, first
    breaches then repeat ones."""
    found = record_sla_breaches(session, now, actor=actor, config=config)
    return [*found.new, *found.repeat]


def run_triage(session: Session, now: datetime, *, actor: str = "triage",
               config: TriageConfig = TriageConfig()) -> dict[str, int]:
    """The scheduled job: expire leases, cluster, re-escalate breaches, refresh priority.

    ``sla_breaches`` counts tasks that missed their first SLA in this run,
    ``sla_repeat_breaches`` escalated tasks that missed their escalated deadline too."""
    from hilt.review.queue import expire_leases

    now = as_utc(now)
    expired = expire_leases(session, now, actor=actor)
    clustered = cluster_open_tasks(session, now, actor=actor, config=config)
    breached = record_sla_breaches(session, now, actor=actor, config=config)
    refreshed = refresh_priorities(session, now, config)
    return {"leases_expired": expired, "tasks_clustered": clustered,
            "sla_breaches": len(breached.new), "sla_repeat_breaches": len(breached.repeat),
            "priorities_refreshed": refreshed}
