"""Where selection's inputs come from in the store: events, final labels, held-out texts.

Final labels come from the review stage (``hilt.review.labels.iter_final_labels``),
held-out texts from the eval registry (``hilt.evals.registry.heldout_texts``); both are
injectable so that callers (and tests) can supply their own.

A label source is asked only for the labels decided in the spec's window
(``labels.since``/``until``): the window bounds how much of the store is read. The other
label filters (rubric ids and versions, provenance, confidence) are applied here, label by
label, so that each one's exclusions are counted as a build step
(:class:`hilt.data.pipeline.LabelFilterCounts`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.data.pipeline import LabelFilterCounts, StepReport
from hilt.data.records import Candidate
from hilt.data.spec import SelectionSpec
from hilt.review.records import FinalLabelRecord
from hilt.store.tables.core import EventRow
from hilt.store.tables.review import FinalLabelRow

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


def count_outside_window(session: Session, since: datetime | None,
                         until: datetime | None) -> tuple[int, int]:
    """The stored final labels decided outside ``[since, until)``, and the events all of
    whose labels were: counted in the database, as reading them would read the store's
    whole history outside the window. ``(0, 0)`` without a window."""
    f = FinalLabelRow
    bounds = ([f.decided_at >= since] if since is not None else []) \
        + ([f.decided_at < until] if until is not None else [])
    if not bounds:
        return 0, 0
    inside = sa.and_(*bounds)
    labels = session.scalar(sa.select(sa.func.count()).select_from(f).where(~inside))
    events_without = (sa.select(f.event_id).group_by(f.event_id)
                      .having(sa.func.max(sa.case((inside, 1), else_=0)) == 0).subquery())
    events = session.scalar(sa.select(sa.func.count()).select_from(events_without))
    return int(labels or 0), int(events or 0)


def load_candidates(session: Session, spec: SelectionSpec, *,
                    label_source: LabelSource | None
                    ) -> tuple[list[StepReport], Iterator[Candidate]]:
    """The label steps' reports, and the candidates: events with final labels passing
    the spec's label filters, plus, when event-level feedback is selectable, every event
    in the time range (those without feedback are filtered out by the pipeline's first
    step).

    The labels are read (in the source's batches) before this returns; the events are
    read as the candidates are consumed. Labels decided outside the window are counted
    in the store when the source is the store's own (:func:`default_label_source`); a
    source of other labels is asked for the window too, and whatever it returns outside
    it is counted as it is read.
    """
    filt = spec.labels
    counts = LabelFilterCounts(filt)
    outside = (0, 0)
    if label_source is not None:
        for label in label_source(session, since=filt.since, until=filt.until):
            counts.add(label)
        if label_source is default_label_source():
            outside = count_outside_window(session, filt.since, filt.until)
    return counts.steps(outside), _candidates(session, spec, counts.kept)


def _candidates(session: Session, spec: SelectionSpec,
                by_event: dict[str, list[FinalLabelRecord]]) -> Iterator[Candidate]:
    filt = spec.labels
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
