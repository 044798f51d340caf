"""Carrying gold items over to a new rubric version whose questions they answer unchanged.

After a revision the queue holds back gold pinned to an earlier version
(:mod:`hilt.review.gold`) until the gold set is answered again under the new one. A
revision often leaves the questions a gold item answers untouched, and then its known
answers hold under the new version as they stand: :func:`carry_gold` makes a gold task
at the new version with the same event, pool and answers (through
:func:`hilt.review.tasks.create_gold_task`, so every check of a gold item applies), and
leaves the old one as it is, its history with it.

A gold item is carried only when nothing that decides its right answer changed
(:func:`carry_reason`): every question its answers cover and every required question of
the new version must be defined alike in both (kind, prompt, help, options and their
descriptions, scale bounds, step and anchors, whether it is required, length limit), and
the new version may add no question the old answers do not cover that would need one (a
required question, or a checklist, whose known answer would become "nothing ticked").
The rubric-wide guidelines and worked examples explain every question, so a change to
them stops the carry too unless the lead says they do not move any answer
(``ignore_guidelines``). The title and changelog decide no answer and are not compared.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import InputError, NotFound
from hilt.review.rubric_spec import RubricSpec, clean_answers
from hilt.review.rubrics import get_version, parse_ref, spec_of
from hilt.review.tasks import create_gold_task
from hilt.store import audit
from hilt.store.tables.review import ReviewTaskRow


def _question_changes(old: RubricSpec, new: RubricSpec, answers: dict[str, Any],
                      to: str) -> list[str]:
    """Why the questions stop the carry, one reason per question (empty: they do not)."""
    before = {q.id: q.model_dump(mode="json") for q in old.questions}
    after = {q.id: q.model_dump(mode="json") for q in new.questions}
    compared = set(answers) | {q.id for q in new.questions if q.required}
    reasons = []
    for qid in [q.id for q in old.questions if q.id in compared] + sorted(
            compared - set(before)):
        if qid not in after:
            reasons.append(f"question {qid!r}: not in {to}")
        elif qid not in answers:
            reasons.append(f"question {qid!r}: required in {to}, not answered"
                           + ("" if qid in before else f" (new in {to})"))
        elif qid not in before:
            reasons.append(f"question {qid!r}: answered but not in the old version")
        else:
            fields = [f for f in after[qid] if before[qid].get(f) != after[qid][f]]
            if fields:
                reasons.append(f"question {qid!r}: {', '.join(fields)} changed")
    # A checklist left out of the answers would get the known answer "nothing ticked"
    # (create_gold_task), an answer the lead never gave.
    reasons += [f"question {q.id!r}: checklist new in {to}, not answered"
                for q in new.questions
                if q.kind == "multi_choice" and q.id not in answers and q.id not in before]
    return reasons


def carry_reason(old: RubricSpec, new: RubricSpec, answers: dict[str, Any],
                 n_responses: int, *, to: str, ignore_guidelines: bool = False
                 ) -> str | None:
    """Why known ``answers`` given under ``old`` cannot be carried to ``new`` (called
    ``to`` in the reason), or None when they can. Pure: no database."""
    reasons = _question_changes(old, new, answers, to)
    if not ignore_guidelines:
        if old.guidelines != new.guidelines:
            reasons.append("guidelines changed")
        if [e.model_dump(mode="json") for e in old.examples] != \
                [e.model_dump(mode="json") for e in new.examples]:
            reasons.append("worked examples changed")
    if not reasons:
        try:
            clean_answers(new, answers, n_responses, where="gold answers")
        except InputError as exc:  # the same questions: a guard, not an expected path
            reasons.append(f"known answers do not fit {to}: {exc}")
    return "; ".join(reasons) or None


def _target(session: Session, rubric_ref: str) -> tuple[str, int, RubricSpec]:
    """The published version to carry to; a bad or unknown one is named as ``rubric``."""
    try:
        rubric_id, version = parse_ref(rubric_ref)
        row = get_version(session, rubric_id, version)
    except NotFound as exc:
        raise InputError(f"{exc}; carry to a published version ID@N",
                         field="rubric") from None
    return row.rubric_id, row.version, spec_of(row)


def carry_gold(session: Session, rubric_ref: str, *, actor: str, dry_run: bool = False,
               ignore_guidelines: bool = False) -> dict[str, Any]:
    """Carry the gold items of rubric ``ID`` at versions below ``N`` (``rubric_ref`` is
    ``ID@N``; ``ID`` alone means the newest version) to ``N`` where their questions did
    not change (:func:`carry_reason`); skip the others, saying why.

    Only gold items still ``gold`` whose event has no gold item at ``N`` are looked at;
    an event with several is carried from its newest, and its older ones are skipped as
    superseded, so a second run carries nothing new. Each carried item is audited as
    ``task.create_gold``, and the run as one ``gold.carry`` entry (when it carried any).
    ``dry_run`` answers the same without writing (``new_task`` null)."""
    rubric_id, to_version, new_spec = _target(session, rubric_ref)
    to = f"{rubric_id}@{to_version}"
    t = ReviewTaskRow
    done = sa.select(t.event_id).where(t.rubric_id == rubric_id, t.status == "gold",
                                       t.rubric_version == to_version)
    rows = session.execute(
        sa.select(t).where(t.rubric_id == rubric_id, t.status == "gold",
                           t.is_gold.is_(True), t.rubric_version < to_version,
                           t.event_id.not_in(done))
        .order_by(t.event_id, t.rubric_version.desc(), t.created_at, t.id)).scalars().all()
    carried: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    newest: dict[str, ReviewTaskRow] = {}
    specs: dict[int, RubricSpec] = {}  # each earlier version read once
    for row in rows:
        base = {"event_id": row.event_id, "from_version": row.rubric_version}
        kept = newest.setdefault(row.event_id, row)
        if kept is row and row.rubric_version not in specs:
            specs[row.rubric_version] = spec_of(get_version(session, rubric_id,
                                                            row.rubric_version))
        reason = (carry_reason(specs[row.rubric_version], new_spec,
                               dict(row.gold_answers or {}), row.n_responses,
                               to=to, ignore_guidelines=ignore_guidelines)
                  if kept is row else
                  f"superseded by gold item {kept.id} at {rubric_id}@{kept.rubric_version}")
        if reason is not None:
            skipped.append({"task_id": row.id, **base, "reason": reason})
            continue
        new_task = None if dry_run else create_gold_task(
            session, event_id=row.event_id, rubric=to, answers=dict(row.gold_answers or {}),
            actor=actor, pool=row.pool)
        carried.append({"old_task": row.id, "new_task": new_task, **base})
    if carried and not dry_run:
        audit.append(session, actor=actor, action="gold.carry", entity_type="rubric",
                     entity_id=to, payload={
                         "rubric": rubric_id, "to_version": to_version,
                         "from_versions": sorted({c["from_version"] for c in carried}),
                         "carried": [[c["old_task"], c["new_task"]] for c in carried],
                         "skipped": [[s["task_id"], s["reason"]] for s in skipped],
                         "ignore_guidelines": ignore_guidelines})
    return {"rubric": rubric_id, "to_version": to_version, "dry_run": dry_run,
            "carried": carried, "skipped": skipped}
