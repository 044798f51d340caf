"""Stored drift alerts: writing a run's new alerts, listing them a page at a time, and
acknowledging them.

Several runs may evaluate the same window at once (a scheduled job beside a
``hilt drift run``, two API workers). An alert's id hashes monitor, group and window
start, and each is inserted with ``ON CONFLICT DO NOTHING``: the run that stores an
alert first writes its ``drift.alert`` audit entry, the others skip it, and none fails
on the primary key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hilt.errors import InputError, NotFound
from hilt.quality.drift.alerts import Alert, alert_intervals
from hilt.quality.drift.windows import MONITORS
from hilt.store import audit
from hilt.store.keyset import keyset
from hilt.store.tables.base import utcnow
from hilt.store.tables.drift import DriftAlertRow


def jsonable(value: Any) -> Any:
    """Tuples to lists and non-finite floats to None, so JSON columns and the audit
    chain's canonical JSON accept the detail."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return jsonable(value.item())
    return value


def store_alerts(session: Session, alerts: Sequence[Alert], *, actor: str) -> list[Alert]:
    """Insert the alerts not stored before, each with a ``drift.alert`` audit entry;
    returns those this call stored (an alert another run stored first is skipped)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    new = []
    for alert in alerts:
        stmt = insert(DriftAlertRow).values(
            id=alert.id, monitor=alert.monitor, group_key=alert.group_key[:500],
            group=alert.group, window_start=alert.window_start, window_end=alert.window_end,
            reference_start=alert.reference_start, test=alert.test, p_value=alert.p_value,
            alpha=alert.alpha, effect_name=alert.effect_name, effect=alert.effect,
            min_effect=alert.min_effect, n_current=alert.n_current,
            n_reference=alert.n_reference, n_tests=alert.n_tests, message=alert.message,
            detail=jsonable(alert.detail), status="open", created_at=now)
        stmt = stmt.on_conflict_do_nothing(index_elements=["id"])
        if session.execute(stmt.returning(DriftAlertRow.id)).first() is None:
            continue
        new.append(alert)
        audit.append(session, actor=actor, action="drift.alert", entity_type="drift_alert",
                     entity_id=alert.id, payload={
                         "monitor": alert.monitor, "group": alert.group,
                         "window_start": alert.window_start.isoformat(),
                         "p_value": alert.p_value, "alpha": alert.alpha,
                         "effect": alert.effect, "message": alert.message})
    return new


def alert_row_dict(row: DriftAlertRow) -> dict[str, Any]:
    return {"id": row.id, "monitor": row.monitor, "group": row.group,
            "window_start": row.window_start.isoformat(),
            "window_end": row.window_end.isoformat(),
            "reference_start": row.reference_start.isoformat(), "test": row.test,
            "p_value": row.p_value, "alpha": row.alpha, "effect_name": row.effect_name,
            "effect": row.effect, "min_effect": row.min_effect, "n_current": row.n_current,
            "n_reference": row.n_reference, "n_tests": row.n_tests, "message": row.message,
            "intervals": alert_intervals(row.effect_name, row.detail),
            "status": row.status, "created_at": row.created_at.isoformat(),
            "acknowledged_by": row.acknowledged_by,
            "acknowledged_at": (row.acknowledged_at.isoformat() if row.acknowledged_at
                                else None),
            "note": row.note, "detail": row.detail}


ALERT_STATUSES = ("open", "acknowledged")


# Newest window first; alerts of one window by monitor, then id.
ALERT_ORDER = keyset((DriftAlertRow.window_start, True), (DriftAlertRow.monitor, False),
                     (DriftAlertRow.id, False))


def list_alerts(session: Session, *, monitor: str | None = None, status: str | None = None,
                since: datetime | None = None, limit: int = 200,
                after: str | None = None) -> list[dict[str, Any]]:
    return [alert_row_dict(r) for r in alert_rows(session, monitor=monitor, status=status,
                                                  since=since, limit=limit, after=after)]


def alert_rows(session: Session, *, monitor: str | None = None, status: str | None = None,
               since: datetime | None = None, limit: int = 200,
               after: str | None = None) -> list[DriftAlertRow]:
    """Stored alerts in :data:`ALERT_ORDER`; ``after``: the cursor of the previous
    page's last alert (``ALERT_ORDER.cursor``)."""
    # An unknown monitor or status would match no alert: an empty list that reads as
    # "all clear".
    if monitor is not None and monitor not in MONITORS:
        raise InputError(f"unknown monitor {monitor!r}; one of: {', '.join(MONITORS)}",
                         field="monitor")
    if status is not None and status not in ALERT_STATUSES:
        raise InputError(f"must be one of {list(ALERT_STATUSES)}, got {status!r}",
                         field="status")
    q = sa.select(DriftAlertRow).order_by(*ALERT_ORDER.order_by())
    if monitor:
        q = q.where(DriftAlertRow.monitor == monitor)
    if status:
        q = q.where(DriftAlertRow.status == status)
    if since is not None:
        q = q.where(DriftAlertRow.window_start >= since)
    if after:
        q = q.where(ALERT_ORDER.after(after))
    return list(session.execute(q.limit(limit)).scalars())


def acknowledge(session: Session, alert_id: str, *, actor: str, note: str = ""
                ) -> dict[str, Any]:
    """Mark an alert as seen (with a note saying what was done about it).

    Acknowledging an acknowledged alert keeps who acknowledged it first and when, and
    appends the new note (``[actor, time] note``) rather than replacing the first; both
    are audited (``drift.acknowledge``, the later one with ``"again": true``). The row
    is locked while it is read, so of two acknowledgements at once the later one sees
    the first and appends to it."""
    row = session.get(DriftAlertRow, alert_id, with_for_update=True)
    if row is None:
        raise NotFound(f"drift alert {alert_id!r} does not exist")
    now = utcnow()
    again = row.status == "acknowledged"
    if not again:
        row.status, row.acknowledged_by, row.acknowledged_at = "acknowledged", actor, now
        row.note = note or None
    elif note:
        later = f"[{actor}, {now.isoformat(timespec='seconds')}] {note}"
        row.note = f"{row.note}\n{later}" if row.note else later
    audit.append(session, actor=actor, action="drift.acknowledge", entity_type="drift_alert",
                 entity_id=alert_id, payload={"note": note, "again": again})
    return alert_row_dict(row)
