"""Where selection's inputs come from in the store: events, final labels, held-out texts.

Final labels come from the review stage (``hilt.review.labels.iter_final_labels``),
held-out texts from the eval registry (``hilt.evals.registry.heldout_texts``); both are
injectable so that callers (and tests) can supply their own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.data.records import Candidate
from hilt.data.spec import SelectionSpec
from hilt.review.records import FinalLabelRecord
from hilt.store.tables.core import EventRow

LabelSource = Callable[..., Iterable[FinalLabelRecord]]
HeldoutSource = Callable[[Session], Iterable[tuple[str, str, str]]]
_CHUNK = 1000


def default_label_source() -> LabelSource | None:
    try:
        from hilt.review.labels import iter_final_labels
    except ImportError:
        return None
    return iter_final_labels


def default_heldout_source() -> HeldoutSource:
    from hilt.evals.registry import heldout_texts

    return heldout_texts


def _event_dict(row: EventRow) -> dict[str, Any]:
    return {"id": row.id, **(row.payload or {})}


def _candidate(row: EventRow, labels: list[FinalLabelRecord], spec: SelectionSpec
               ) -> Candidate:
    erased = row.erased_at is not None
    cand = Candidate.from_event(_event_dict(row) if not erased else {"id": row.id},
                                labels=labels, slice_key=spec.labels.slice_key,
                                created_at=row.created_at, erased=erased)
    # Columns are authoritative for what selection filters on (they survive erasure).
    cand.consent = frozenset(s for s in row.consent_scopes.split(",") if s)
    cand.subject_id = row.subject_id
    return cand


def load_candidates(session: Session, spec: SelectionSpec, *,
                    label_source: LabelSource | None) -> Iterator[Candidate]:
    """Events with final labels matching the spec, plus, when event-level feedback is
    selectable, every event in the time range (those without feedback are filtered out
    by the pipeline's first step)."""
    filt = spec.labels
    by_event: dict[str, list[FinalLabelRecord]] = defaultdict(list)
    if label_source is not None:
        for label in label_source(session, since=filt.since, until=filt.until,
                                  rubric_ids=filt.rubric_ids,
                                  rubric_versions=filt.rubric_versions,
                                  provenance=filt.provenance,
                                  min_confidence=filt.min_confidence or None):
            by_event[label.event_id].append(label)
    # Event-level feedback is selectable only without rubric/provenance/confidence
    # filters (see ``event_feedback_selected``); then every event in range is a candidate.
    scan_all = (filt.rubric_ids is None and filt.rubric_versions is None
                and filt.provenance is None and not filt.min_confidence)
    seen: set[str] = set()
    if scan_all:
        query = sa.select(EventRow).order_by(EventRow.id)
        if filt.since is not None:
            query = query.where(EventRow.created_at >= filt.since)
        if filt.until is not None:
            query = query.where(EventRow.created_at < filt.until)
        for row in session.execute(query.execution_options(yield_per=_CHUNK)).scalars():
            seen.add(row.id)
            yield _candidate(row, by_event.get(row.id, []), spec)
    rest = sorted(set(by_event) - seen)
    for lo in range(0, len(rest), _CHUNK):
        ids = rest[lo:lo + _CHUNK]
        rows = session.execute(sa.select(EventRow).where(EventRow.id.in_(ids))
                               .order_by(EventRow.id)).scalars()
        for row in rows:
            yield _candidate(row, by_event[row.id], spec)

