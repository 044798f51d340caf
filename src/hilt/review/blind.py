"""Blind review across an item's tasks: what someone who is reviewing an item may not
read about it.

One event can have several tasks: a re-review under a new rubric version (a drift
bridge), a gold item, a task made by hand. Whoever could still submit a review of one of
them must not see the earlier reviews, rationales, decisions or final labels of the
item: they would review it knowing the answers. So the read paths that show those
(the case file, pending adjudications, final labels, guideline proposals, a lead's task
record, the event itself with the feedback it came in with, the review export, dataset
versions) leave the item out, or refuse it, for a caller who is *reviewing* it: who holds
an assignment on one of its tasks that they have not submitted (an active lease, or an
expired or released one, which may still be submitted late) while that task still takes
reviews (``open``, or ``gold``, which always does). Once they have submitted, or the
task has moved on (to adjudication, resolved, cancelled), the item is theirs to read
again.

Reads that answer for many items at once and that a lead builds on (the review export,
a dataset version's manifest, lineage and diff) are refused whole, naming how many of
their items the caller is reviewing (:func:`refuse_if_reviewing_any`): leaving those
items out would hand over a silently incomplete export or manifest. Aggregates that do
not name an item (agreement, a reviewer's accuracy, a fitted aggregation model, drift
alerts, a bridge's transition matrix) stay open.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from hilt.errors import Forbidden
from hilt.store.tables.review import AssignmentRow, ReviewTaskRow

_Column = sa.ColumnElement[str] | InstrumentedAttribute[str]
# Statuses of a task that still takes reviews.
TAKES_REVIEWS = ("open", "gold")
_CHUNK = 500  # event ids per statement (SQLite's host-parameter limit)


def _reviewing(task_id: _Column, reviewer_id: str) -> sa.ColumnElement[bool]:
    """True where ``reviewer_id`` holds an unsubmitted assignment on ``task_id``
    (a unique-index probe on (task_id, reviewer_id))."""
    a = AssignmentRow
    return sa.exists().where(a.task_id == task_id, a.reviewer_id == reviewer_id,
                             a.status != "submitted")


def reviewing_clause(reviewer_id: str, event_id: _Column
                     ) -> sa.ColumnElement[bool]:
    """True where ``reviewer_id`` is reviewing the event ``event_id`` (a column of an
    outer query, which may itself read review_tasks) under any of its tasks."""
    other = aliased(ReviewTaskRow)
    return sa.exists().where(other.event_id == event_id, other.status.in_(TAKES_REVIEWS),
                             _reviewing(other.id, reviewer_id))


def events_under_review(session: Session, reviewer_id: str | None,
                        event_ids: Iterable[str]) -> set[str]:
    """Those of ``event_ids`` that ``reviewer_id`` is reviewing (none without a
    reviewer identity)."""
    if reviewer_id is None:
        return set()
    wanted = sorted(set(event_ids))
    t = ReviewTaskRow
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        found.update(session.execute(
            sa.select(t.event_id).distinct()
            .where(t.event_id.in_(wanted[start:start + _CHUNK]),
                   t.status.in_(TAKES_REVIEWS), _reviewing(t.id, reviewer_id))).scalars())
    return found


class _OfEvent(Protocol):
    @property
    def event_id(self) -> str: ...


R = TypeVar("R", bound=_OfEvent)


def flag_under_review(session: Session, reviewer_id: str | None, records: Iterable[R], *,
                      chunk: int = _CHUNK) -> Iterator[tuple[R, bool]]:
    """Each record (anything with an ``event_id``) with whether ``reviewer_id`` is
    reviewing its event, looked up ``chunk`` records at a time (read ahead of the
    caller by at most that many)."""
    if reviewer_id is None:
        for record in records:
            yield record, False
        return
    buffer: list[R] = []
    for record in records:
        buffer.append(record)
        if len(buffer) >= chunk:
            yield from _flagged(session, reviewer_id, buffer)
            buffer = []
    yield from _flagged(session, reviewer_id, buffer)


def _flagged(session: Session, reviewer_id: str, records: list[R]
             ) -> Iterator[tuple[R, bool]]:
    hidden = events_under_review(session, reviewer_id, (r.event_id for r in records))
    for record in records:
        yield record, record.event_id in hidden


def refuse_if_reviewing(session: Session, reviewer_id: str | None, event_id: str,
                        what: str) -> None:
    """Raise :class:`Forbidden` when ``reviewer_id`` is reviewing ``event_id``."""
    if event_id in events_under_review(session, reviewer_id, [event_id]):
        raise Forbidden(f"{reviewer_id!r} is reviewing this item under another task; "
                        f"{what} stays closed to them until they have submitted that "
                        "review (blind review)")


def count_under_review(session: Session, reviewer_id: str | None,
                       among: sa.Select[str]) -> int:
    """How many of the events ``among`` selects (a select of event ids, any number of
    rows) ``reviewer_id`` is reviewing (none without a reviewer identity)."""
    if reviewer_id is None:
        return 0
    # An alias, and no correlation: ``among`` may itself read review_tasks, and must be
    # evaluated as it stands, not joined to this query's tasks.
    t = aliased(ReviewTaskRow)
    return session.execute(
        sa.select(sa.func.count(sa.distinct(t.event_id)))
        .where(t.status.in_(TAKES_REVIEWS), _reviewing(t.id, reviewer_id),
               t.event_id.in_(among.correlate(None)))).scalar_one()


def refuse_if_reviewing_any(session: Session, reviewer_id: str | None,
                            among: sa.Select[str], what: str) -> None:
    """Raise :class:`Forbidden` when ``reviewer_id`` is reviewing any of the events
    ``among`` selects; the message says how many, and what lifts it."""
    n = count_under_review(session, reviewer_id, among)
    if n:
        items = "1 item" if n == 1 else f"{n} items"
        raise Forbidden(
            f"{reviewer_id!r} is reviewing {items} of {what}; it stays closed to them "
            "until they have submitted those reviews or the tasks no longer take reviews "
            "(blind review: a released or expired lease still counts, since its review "
            "may still be submitted late)")
