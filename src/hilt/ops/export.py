"""Export of reviewed items: each task with its event and every review, as JSON lines.

Streams in pages of ``page`` tasks (keyset pagination on the task id, three queries per
page: tasks with their events, reviews, final labels), so memory stays flat and the
first line leaves before the last page is read.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.store.tables.core import EventRow
from hilt.store.tables.review import FinalLabelRow, ReviewRow, ReviewTaskRow


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def iter_reviewed_items(session: Session, *, status: str | None = None, page: int = 2000
                        ) -> Iterator[dict[str, Any]]:
    """One dict per task: the event payload, the task's state, its reviews and labels."""
    t, r, lbl = ReviewTaskRow, ReviewRow, FinalLabelRow
    after = ""
    while True:
        q = (sa.select(t.id, t.event_id, t.status, t.pool, t.severity, t.rubric_id,
                       t.rubric_version, t.overlap_k, t.is_gold, t.created_at,
                       t.resolved_at, EventRow.payload)
             .join(EventRow, EventRow.id == t.event_id)
             .where(t.id > after).order_by(t.id).limit(page))
        if status:
            q = q.where(t.status == status)
        tasks = session.execute(q).all()
        if not tasks:
            return
        ids = [row.id for row in tasks]
        reviews: dict[str, list[dict[str, Any]]] = {}
        for rv in session.execute(sa.select(r.task_id, r.id, r.reviewer_id, r.answers,
                                            r.confidence, r.rationale, r.late,
                                            r.submitted_at)
                                  .where(r.task_id.in_(ids)).order_by(r.submitted_at, r.id)):
            reviews.setdefault(rv.task_id, []).append({
                "review_id": rv.id, "reviewer_id": rv.reviewer_id, "answers": rv.answers,
                "confidence": rv.confidence, "rationale": rv.rationale, "late": rv.late,
                "submitted_at": _iso(rv.submitted_at)})
        labels: dict[str, dict[str, Any]] = {}
        for lb in session.execute(sa.select(lbl.task_id, lbl.question_id, lbl.value,
                                            lbl.provenance, lbl.confidence)
                                  .where(lbl.task_id.in_(ids))):
            labels.setdefault(lb.task_id, {})[lb.question_id] = {
                "value": lb.value, "provenance": lb.provenance, "confidence": lb.confidence}
        for row in tasks:
            yield {"task_id": row.id, "event_id": row.event_id, "status": row.status,
                   "pool": row.pool, "severity": row.severity,
                   "rubric": f"{row.rubric_id}@{row.rubric_version}",
                   "overlap_k": row.overlap_k, "is_gold": row.is_gold,
                   "created_at": _iso(row.created_at), "resolved_at": _iso(row.resolved_at),
                   "item": row.payload, "reviews": reviews.get(row.id, []),
                   "final_labels": labels.get(row.id, {})}
        after = ids[-1]


def iter_jsonl(session: Session, *, status: str | None = None) -> Iterator[bytes]:
    """The export as UTF-8 JSON lines, in chunks of a page each."""
    chunk: list[str] = []
    for item in iter_reviewed_items(session, status=status):
        chunk.append(json.dumps(item, ensure_ascii=False, default=str))
        if len(chunk) >= 1000:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()


def write_jsonl(session: Session, out: str | Path, *, status: str | None = None) -> int:
    """Write the export to ``out`` atomically (temporary file, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    count = 0
    try:
        with open(tmp, "wb") as fh:
            for item in iter_reviewed_items(session, status=status):
                fh.write(json.dumps(item, ensure_ascii=False, default=str).encode() + b"\n")
                count += 1
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return count
