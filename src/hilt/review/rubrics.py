"""Rubric versions: publish (immutable), look up, diff, and proposals for the next version.

Publishing never changes an existing version: a changed rubric becomes version n+1 with
a changelog, and republishing identical content is refused. Reviews and final labels
record the ``(rubric_id, version)`` they answered, so labels made under different
versions are never silently mixed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import content_hash
from hilt.errors import Conflict, InputError, NotFound
from hilt.jsonl import non_finite_path
from hilt.review.rubric_spec import RubricSpec, parse_rubric
from hilt.review.yamlio import load_yaml
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.review import AdjudicationRow, ReviewTaskRow, RubricVersionRow


def load_rubric_file(path: str | Path) -> RubricSpec:
    data, line_of = load_yaml(path)
    return parse_rubric(data, file=str(path), line_of=line_of)


def publish_rubric(session: Session, spec: RubricSpec, *, actor: str) -> RubricVersionRow:
    """Store ``spec`` as the next version of its rubric; returns the new version row."""
    latest = latest_version(session, spec.id)
    file, line_of = spec.source
    try:
        digest = content_hash(spec.content())
    except ValueError:  # NaN or infinity that the rubric's own checks let through
        loc = non_finite_path(spec.content()) or ()
        raise InputError("must be a finite number", file=file,
                         line=line_of(loc) if line_of and loc else None,
                         field=".".join(str(p) for p in loc) or None) from None
    if latest is not None:
        if latest.content_hash == digest:
            raise Conflict(f"rubric {spec.id!r} version {latest.version} already has this "
                           "content; nothing to publish")
        if not spec.changelog.strip():
            # a blank changelog has a line; a missing one is named by the field alone
            raise InputError(f"version {latest.version + 1} of rubric {spec.id!r} needs a "
                             "changelog saying what changed", file=file,
                             line=line_of(("changelog",)) if line_of and
                             "changelog" in spec.model_fields_set else None,
                             field="changelog")
    version = (latest.version + 1) if latest else 1
    row = RubricVersionRow(rubric_id=spec.id, version=version, title=spec.title,
                           spec=spec.model_dump(mode="json"),
                           changelog=spec.changelog.strip() or "first version",
                           content_hash=digest, published_by=actor, published_at=utcnow())
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="rubric.publish", entity_type="rubric",
                 entity_id=f"{spec.id}@{version}",
                 payload={"content_hash": digest, "changelog": row.changelog})
    return row


def latest_version(session: Session, rubric_id: str) -> RubricVersionRow | None:
    return session.execute(
        sa.select(RubricVersionRow).where(RubricVersionRow.rubric_id == rubric_id)
        .order_by(RubricVersionRow.version.desc()).limit(1)).scalar_one_or_none()


# The largest version number the store holds (a 32-bit integer column).
MAX_VERSION = 2**31 - 1


def parse_ref(ref: str, *, field: str = "rubric") -> tuple[str, int | None]:
    """``"harm@2"`` -> ``("harm", 2)``; ``"harm"`` -> ``("harm", None)`` (latest).

    The version is ASCII digits: ``str.isdigit`` also accepts ``"²"``, which ``int``
    cannot read. An empty id (``"@2"``) or version (``"harm@"``, which would otherwise
    quietly mean the latest version) is refused naming ``field``; a version past what the
    store holds is simply not published."""
    name, at, version = ref.partition("@")
    if not name.strip() or (at and not (version.isascii() and version.isdigit())):
        raise InputError(f"bad rubric reference {ref!r}; use ID or ID@VERSION",
                         field=field)
    if not at:
        return name, None
    if int(version) > MAX_VERSION:
        raise NotFound(f"rubric {name}@{version} is not published")
    return name, int(version)


def get_version(session: Session, rubric_id: str, version: int | None = None
                ) -> RubricVersionRow:
    row = (latest_version(session, rubric_id) if version is None
           else session.get(RubricVersionRow, (rubric_id, version)))
    if row is None:
        which = f"{rubric_id}@{version}" if version is not None else rubric_id
        raise NotFound(f"rubric {which} is not published")
    return row


_SPEC_CACHE: dict[tuple[str, int, str], RubricSpec] = {}


def spec_of(row: RubricVersionRow) -> RubricSpec:
    """The parsed spec of a version (cached: published versions never change)."""
    key = (row.rubric_id, row.version, row.content_hash)
    spec = _SPEC_CACHE.get(key)
    if spec is None:
        spec = RubricSpec.model_validate(row.spec)
        _SPEC_CACHE[key] = spec
    return spec


def rubric_spec(session: Session, rubric_id: str, version: int) -> RubricSpec:
    return spec_of(get_version(session, rubric_id, version))


def list_rubrics(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(sa.select(RubricVersionRow).order_by(
        RubricVersionRow.rubric_id, RubricVersionRow.version)).scalars()
    return [{"id": r.rubric_id, "version": r.version, "title": r.title,
             "changelog": r.changelog, "content_hash": r.content_hash,
             "published_at": r.published_at.isoformat(), "published_by": r.published_by}
            for r in rows]


def diff_specs(a: RubricSpec, b: RubricSpec) -> dict[str, Any]:
    """What changed from ``a`` to ``b``: questions added, removed and changed field by
    field; option lists; guideline text as a unified diff; examples added/removed."""
    qa = {q.id: q.model_dump(mode="json") for q in a.questions}
    qb = {q.id: q.model_dump(mode="json") for q in b.questions}
    changed: dict[str, dict[str, Any]] = {}
    for qid in sorted(set(qa) & set(qb)):
        fields = {f: {"from": qa[qid][f], "to": qb[qid][f]} for f in qa[qid]
                  if qa[qid][f] != qb[qid][f]}
        if fields:
            changed[qid] = fields
    guideline_diff = list(difflib.unified_diff(
        a.guidelines.splitlines(), b.guidelines.splitlines(), "a", "b", lineterm=""))
    ex_a = {content_hash(e.model_dump(mode="json")): e.title for e in a.examples}
    ex_b = {content_hash(e.model_dump(mode="json")): e.title for e in b.examples}
    return {
        "questions_added": sorted(set(qb) - set(qa)),
        "questions_removed": sorted(set(qa) - set(qb)),
        "questions_changed": changed,
        "title_changed": a.title != b.title,
        "guidelines_diff": guideline_diff,
        "examples_added": [ex_b[h] for h in ex_b if h not in ex_a],
        "examples_removed": [ex_a[h] for h in ex_a if h not in ex_b],
        "identical": a.content() == b.content(),
    }


def diff_refs(session: Session, ref_a: str, ref_b: str) -> dict[str, Any]:
    """Diff two published versions, e.g. ``harm@1`` and ``harm@2`` (a bad reference is
    named as ``a`` or ``b``, the names of the two references on the command line and in
    ``GET /v1/rubrics/diff``)."""
    rows = [get_version(session, *parse_ref(r, field=f))
            for r, f in ((ref_a, "a"), (ref_b, "b"))]
    out = diff_specs(spec_of(rows[0]), spec_of(rows[1]))
    out["from"] = f"{rows[0].rubric_id}@{rows[0].version}"
    out["to"] = f"{rows[1].rubric_id}@{rows[1].version}"
    out["changelog"] = rows[1].changelog
    return out


def guideline_proposals(session: Session, rubric_id: str) -> list[dict[str, Any]]:
    """Adjudications whose cause was a guideline gap, newest first: the material for the
    next version's guidelines and worked examples."""
    rows = session.execute(
        sa.select(AdjudicationRow, ReviewTaskRow.event_id)
        .join(ReviewTaskRow, ReviewTaskRow.id == AdjudicationRow.task_id)
        .where(AdjudicationRow.rubric_id == rubric_id,
               AdjudicationRow.cause == "guideline_gap")
        .order_by(AdjudicationRow.decided_at.desc())).all()
    return [{"adjudication_id": adj.id, "task_id": adj.task_id, "event_id": event_id,
             "rubric_version": adj.rubric_version, "decision": adj.answers,
             "rationale": adj.rationale, "adjudicator": adj.adjudicator_id,
             "decided_at": adj.decided_at.isoformat()} for adj, event_id in rows]
