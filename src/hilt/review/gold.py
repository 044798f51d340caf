"""Gold items across rubric revisions: which the queue serves, and what the lead is told.

A gold task is pinned to the rubric version its known answers were given under, and a
reviewer's task view shows that version. Once a pool's work moves on to a new version,
a gold item still at the old one would be the only task showing it: recognisable as
gold, which defeats calibration. So the queue serves a gold task only while its version
is the newest version of its rubric among the open tasks of its pool, or while its pool
has no open task of that rubric (:data:`SERVED_SQL`); the others are *held back* until
open work under their version comes back, and the gold set must be answered again under
the new version (``hilt task gold``, ``POST /v1/tasks/gold``). Nothing is re-pinned: the
known answers were given under the old version's questions and guidelines; where those
did not change, :mod:`hilt.review.gold_carry` makes a copy at the new version, after
which the old item no longer counts as held back.

The lead is told when publishing a version (:func:`publish_notice`, in the output of
``hilt rubric publish`` and ``POST /v1/rubrics``) and, while any are held back, in the
queue statistics (:func:`held_back_by_pool`: ``gold_held_back`` beside the task counts
of ``hilt queue stats``, ``GET /v1/queue/stats`` and the lead's dashboard).

Who may know which items are gold, and their answers: adjudicators also review, and
gold items calibrate them, so gold labels are left out of what they read
(:func:`closed_to`), and reads that name items and what their labels did (a dataset
version's manifest, lineage and diff) are refused to them whole while they hold or name
a gold item (:func:`refuse_if_gold`). Leads and service tokens read them; counts that
name no item stay open to everyone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from hilt.errors import Forbidden
from hilt.store.tables.review import ReviewTaskRow

# Roles to whom gold items are not shown: they review, and gold items calibrate them.
GOLD_CLOSED_TO = ("adjudicator",)
# A gold task is ``gold`` until its event is erased (``cancelled``); the item stays a
# gold item, and its non-text gold labels stay (:mod:`hilt.review.erasure`).
_GOLD_STATUSES = ("gold", "cancelled")

# The claim's condition on a gold candidate ``t`` (its pools bound as ``:pools``): no
# open task of its rubric in its pool has another newest version. The newest versions
# are one aggregate over the open tasks of the reviewer's pools, computed once per
# claim, not once per candidate.
SERVED_SQL = (
    "NOT EXISTS (SELECT 1 FROM (SELECT o.pool, o.rubric_id, "
    "max(o.rubric_version) AS newest FROM review_tasks o "
    "WHERE o.status = 'open' AND o.pool IN :pools GROUP BY o.pool, o.rubric_id) n "
    "WHERE n.pool = t.pool AND n.rubric_id = t.rubric_id "
    "AND n.newest <> t.rubric_version)")


def _newest_open() -> Any:
    t = ReviewTaskRow
    return (sa.select(t.pool, t.rubric_id, sa.func.max(t.rubric_version).label("newest"))
            .where(t.status == "open").group_by(t.pool, t.rubric_id).subquery("newest"))


def held_back(session: Session) -> list[dict[str, Any]]:
    """Gold items the queue holds back, per pool, rubric and pinned version, with the
    newest version the pool's open tasks use."""
    g, n, r = aliased(ReviewTaskRow), _newest_open(), aliased(ReviewTaskRow)
    # an item whose event already has gold in its pool at the version served there
    # (answered again, or carried by hilt.review.gold_carry) waits for nothing
    replaced = (sa.select(r.id).where(r.event_id == g.event_id, r.pool == g.pool,
                                      r.rubric_id == g.rubric_id, r.status == "gold",
                                      r.rubric_version == n.c.newest).exists())
    rows = session.execute(
        sa.select(g.pool, g.rubric_id, g.rubric_version, n.c.newest, sa.func.count())
        .join(n, sa.and_(n.c.pool == g.pool, n.c.rubric_id == g.rubric_id))
        .where(g.status == "gold", n.c.newest != g.rubric_version, ~replaced)
        .group_by(g.pool, g.rubric_id, g.rubric_version, n.c.newest)
        .order_by(g.pool, g.rubric_id, g.rubric_version)).all()
    return [{"pool": pool, "rubric": f"{rubric_id}@{version}",
             "open_tasks_use": f"{rubric_id}@{newest}", "gold_tasks": count}
            for pool, rubric_id, version, newest, count in rows]


def held_back_by_pool(session: Session) -> dict[str, int]:
    """How many gold items the queue holds back in each pool (pools with none left out)."""
    out: dict[str, int] = {}
    for row in held_back(session):
        out[row["pool"]] = out.get(row["pool"], 0) + row["gold_tasks"]
    return out


def publish_notice(session: Session, rubric_id: str, version: int) -> dict[str, Any]:
    """After publishing ``rubric_id@version``: ``{"gold": ...}`` counting the rubric's
    gold items pinned to earlier versions (by version), with what to do; ``{}`` when
    there are none. An item whose event has newer gold in its pool (answered again, or
    carried over) is not counted: the newer one is the one to carry or answer again."""
    t, r = ReviewTaskRow, aliased(ReviewTaskRow)
    newer = (sa.select(r.id).where(r.event_id == t.event_id, r.pool == t.pool,
                                   r.rubric_id == t.rubric_id, r.status == "gold",
                                   r.rubric_version > t.rubric_version).exists())
    rows = session.execute(
        sa.select(t.rubric_version, sa.func.count())
        .where(t.rubric_id == rubric_id, t.status == "gold", t.rubric_version < version,
               ~newer)
        .group_by(t.rubric_version).order_by(t.rubric_version)).all()
    if not rows:
        return {}
    return {"gold": {
        "pinned_to_earlier_versions": {str(v): n for v, n in rows},
        "note": (f"the queue serves a gold item only at the newest version of its rubric "
                 f"that its pool's open tasks use: once tasks under {rubric_id}@{version} "
                 "are open in their pool, these gold items are held back. First carry "
                 f"over those whose questions did not change (hilt task gold-carry "
                 f"--rubric {rubric_id}@{version}, POST /v1/tasks/gold/carry; --dry-run "
                 "shows which), then answer the rest again under "
                 f"{rubric_id}@{version} (hilt task gold, POST /v1/tasks/gold)")}}


def closed_to(role: str) -> bool:
    """Whether gold items and their labels are withheld from a caller of ``role``."""
    return role in GOLD_CLOSED_TO


def gold_event_ids(session: Session, made_by: datetime | None = None) -> set[str]:
    """Every event that is a gold item (made at or before ``made_by`` when given); one
    query on the status index: gold sets are small."""
    t = ReviewTaskRow
    query = (sa.select(t.event_id).distinct()
             .where(t.status.in_(_GOLD_STATUSES), t.is_gold.is_(True)))
    if made_by is not None:
        query = query.where(t.created_at <= made_by)
    return set(session.execute(query).scalars())


def gold_among(session: Session, among: sa.Select[str]) -> set[str]:
    """The gold items among the events ``among`` selects (a select of event ids, any
    number of rows)."""
    t = aliased(ReviewTaskRow)
    return set(session.execute(
        sa.select(t.event_id).distinct()
        .where(t.is_gold.is_(True), t.status.in_(_GOLD_STATUSES),
               t.event_id.in_(among.correlate(None)))).scalars())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def gold_named(document: Any, gold: set[str]) -> set[str]:
    """The gold items (of ``gold``) that a JSON document names: as a string of their
    own (an event id a step removed) or as the event part of a record key
    (``sft:<event id>:<question>:...``, the event id ending at any later ``:``)."""
    found: set[str] = set()
    if not gold:
        return found
    for text in _strings(document):
        if text in gold:
            found.add(text)
        _, sep, rest = text.partition(":")
        end = rest.find(":") if sep else -1
        while end != -1:
            if rest[:end] in gold:
                found.add(rest[:end])
            end = rest.find(":", end + 1)
        if sep and rest in gold:
            found.add(rest)
    return found


def refuse_if_gold(session: Session, role: str, *, among: sa.Select[str],
                   document: Any = None, written_at: datetime | None = None,
                   what: str) -> None:
    """Raise :class:`Forbidden` to a caller of ``role`` from whom gold is withheld
    (:func:`closed_to`) when the events ``among`` selects include gold items, or when
    ``document`` (written at ``written_at``) names items that were gold items by then
    (:func:`gold_named`): what it says of an item made gold later comes from the
    item's other labels, if any. The message says how many and who may read ``what``."""
    if not closed_to(role):
        return
    held = gold_among(session, among)
    if document is not None:
        held |= gold_named(document, gold_event_ids(session, made_by=written_at))
    if held:
        items = "1 gold item" if len(held) == 1 else f"{len(held)} gold items"
        raise Forbidden(
            f"{what} holds or names {items}; it stays closed to {role}s, who also "
            "review and whom gold items calibrate (GET /v1/labels leaves gold labels "
            "out for them too): leads and service tokens may read it, and counts that "
            "name no item stay open")
