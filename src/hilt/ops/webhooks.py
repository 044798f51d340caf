"""Webhooks with the audit log as the transactional outbox.

Every state change already appends an audit entry in its own transaction, so an event
exists for webhooks exactly when the change committed — no dual write, nothing sent for
a rolled-back change, and no user request ever waits on a receiver. Two periodic steps:

1. **dispatch** reads audit entries after a stored cursor (``ops_cursors['webhooks']``)
   up to the chain head, maps actions to event types, and inserts one delivery row per
   matching subscription, advancing the cursor in the same transaction. Audit sequence
   numbers are handed out under a lock held to commit, so every entry up to the head is
   already visible: the cursor never skips a late committer.
2. **deliver** leases due deliveries (``FOR UPDATE SKIP LOCKED``), posts them outside any
   transaction, and records the outcome: ``delivered`` on 2xx; otherwise ``attempts`` + 1
   and the next try after an exponential backoff ``base · 2^(attempts−1)`` (capped, ±10 %
   jitter), until ``max_attempts``, then ``failed``. ``replay`` sends a delivery again.

   Each POST has a wall-clock deadline (``HILT_WEBHOOK_TIMEOUT_SECONDS``) for the whole
   exchange up to the response's status: httpx's timeouts bound each read, so a receiver
   that trickles its answer a byte at a time would otherwise hold the sender for ever.
   Subscriptions are posted to concurrently, each one's deliveries in order; after a
   failure or a timeout the rest of that subscription's batch is left for the next
   run, and nothing is posted once the lease could lapse before the deadline
   (another sender may take a row whose lease lapsed). Deliveries left over are
   released at once, not counted as attempts.

A delivery records the receiver's status code and reason phrase, never its body: the
deliveries are readable by leads over HTTP, and a body (an internal service's error
page, say) would turn a subscription into a way to read what the server can reach.
``HILT_WEBHOOK_ALLOWED_HOSTS`` (comma-separated host names, ``*.example.com`` for a
domain's hosts; unset: any host) limits where subscriptions may point; it is checked
when subscribing and again before every POST, and redirects are never followed. The
URL itself is shown to leads only: logs name its origin (:func:`url_origin`).

Each subscription's deliveries are posted in audit order: one that fails holds the later
ones of its subscription back until its retry (see :func:`_lease_due`).

Delivery is at least once (a sender may die after the receiver answered but before the
outcome committed); receivers deduplicate on ``X-Hilt-Delivery``, or on ``audit.seq``
with ``audit.hash``: a restored backup hands out the sequence numbers after its last
entry again, and says so with a ``store.restored`` event (the restore's own audit
entry, the first after the backup's).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import random
import secrets
import time
import uuid
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.config import env_float, env_int
from hilt.errors import InputError, NotFound
from hilt.ops.signing import sign_headers
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.keyset import keyset
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import AuditHeadRow, AuditRow
from hilt.store.tables.ops import OpsCursorRow, WebhookDeliveryRow, WebhookSubscriptionRow

log = logging.getLogger("hilt.ops.webhooks")

# Event type -> the audit actions that produce it.
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "events.ingested": ("events.ingest",),
    "task.escalated": ("escalation.tasks", "task.create"),
    "sla.breached": ("task.sla_breach",),
    "item.resolved": ("task.resolve",),
    "adjudication.needed": ("task.needs_adjudication",),
    "drift.alert": ("drift.alert",),
    "dataset.built": ("dataset.build",),
    "dataset.revoked": ("dataset.revoke",),
    "model.registered": ("model_version.register",),
    "gate.decided": ("gate.decision_stored", "gate.signed_off"),
    "job.finished": ("job.succeeded", "job.failed", "job.cancelled"),
    # The store was replaced by a backup: the audit seqs after the backup's are reused.
    "store.restored": ("store.restored",),
}
ACTION_TO_EVENT = {action: event for event, actions in EVENT_TYPES.items()
                   for action in actions}
CURSOR = "webhooks"
DELIVERY_STATUSES = ("pending", "delivered", "failed")


def _backoff_base() -> float:
    return env_float("HILT_WEBHOOK_BACKOFF_SECONDS", 10.0, minimum=0)


def _max_attempts() -> int:
    return env_int("HILT_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)


def _timeout() -> float:
    return env_float("HILT_WEBHOOK_TIMEOUT_SECONDS", 10.0, above=0)


def delivery_settings() -> tuple[float, int, float]:
    """``HILT_WEBHOOK_BACKOFF_SECONDS``, ``HILT_WEBHOOK_MAX_ATTEMPTS`` and
    ``HILT_WEBHOOK_TIMEOUT_SECONDS``, each checked."""
    return _backoff_base(), _max_attempts(), _timeout()


def allowed_hosts() -> list[str] | None:
    """The hosts webhooks may be sent to (``HILT_WEBHOOK_ALLOWED_HOSTS``); ``None``: any."""
    raw = os.environ.get("HILT_WEBHOOK_ALLOWED_HOSTS", "")
    hosts = [h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip()]
    return hosts or None


def host_allowed(host: str, allowed: list[str] | None) -> bool:
    """Exact names, or ``*.domain`` for any host below the domain (not the domain)."""
    if allowed is None:
        return True
    host = host.lower().rstrip(".")
    return any(host == a or (a.startswith("*.") and host.endswith(a[1:])) for a in allowed)


def _url_host(url: str) -> str:
    try:
        return urlparse(url).hostname or ""
    except ValueError:
        return ""


def url_origin(url: Any) -> str:
    """``scheme://host[:port]/…`` of a URL: what may be shown of a webhook URL where
    leads are not the only readers (logs). The rest, user information, path and query,
    often is the receiver's secret (``https://hooks.example.com/services/T0/B0/KEY``,
    ``?token=…``)."""
    try:
        parsed = urlparse(str(url))
        port = f":{parsed.port}" if parsed.port else ""
        host = parsed.hostname or ""
    except ValueError:
        return "(a URL hilt cannot read)"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{parsed.scheme}://{host}{port}/…"


class _WithoutUrlSecrets(logging.Filter):
    """httpx logs every request at INFO with its whole URL (``HTTP Request: POST URL
    …``); a JSON log at INFO, hilt's default, would carry each webhook's secret URL to
    the log collector. The record keeps the URL's origin only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(url_origin(arg) if type(arg).__name__ == "URL" else arg
                                for arg in record.args)
        return True


# On the logger itself, so that whatever handlers a deployment configures never see the
# whole URL (added once: the module is imported once).
logging.getLogger("httpx").addFilter(_WithoutUrlSecrets())

LEASE_SECONDS = 60.0
SECRET_LENGTH = (16, 200)  # the signing secret's length (CLI and HTTP)
URL_LENGTH, DESCRIPTION_LENGTH = 2000, 500  # as webhook_subscriptions stores them


def backoff_seconds(attempts: int, *, base: float, cap: float = 3600.0,
                    rng: random.Random | None = None) -> float:
    """Delay before try ``attempts + 1``: ``base · 2^(attempts−1)``, capped, ±10 %."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return delay * (0.9 + 0.2 * (rng or random).random())


# --- subscriptions ------------------------------------------------------------------

def subscribe(session: Session, *, url: str, event_types: list[str], actor: str,
              secret: str | None = None, description: str = "") -> tuple[str, str]:
    """Create a subscription; returns ``(id, secret)`` (the secret is shown only here)."""
    try:  # urlparse and .port raise ValueError on a broken host or port
        parsed = urlparse(url)
        usable = (parsed.scheme in {"http", "https"} and bool(parsed.hostname)
                  and (parsed.port is None or parsed.port > 0)
                  and not any(c.isspace() or ord(c) < 32 for c in url))
    except ValueError:
        usable = False
    if not usable:
        raise InputError(f"webhook URL must be http(s)://host[:port]/..., got {url!r}",
                         field="url")
    # The columns' sizes: PostgreSQL refuses a longer value without naming it, SQLite
    # would keep it.
    for name, value, longest in (("url", url, URL_LENGTH),
                                 ("description", description, DESCRIPTION_LENGTH)):
        if len(value) > longest:
            raise InputError(f"at most {longest} characters, got {len(value)}", field=name)
    if not host_allowed(_url_host(url), allowed_hosts()):
        raise InputError(f"webhook host {_url_host(url)!r} is not in "
                         "HILT_WEBHOOK_ALLOWED_HOSTS", field="url")
    if secret is not None and not SECRET_LENGTH[0] <= len(secret) <= SECRET_LENGTH[1]:
        raise InputError(f"the signing secret must be {SECRET_LENGTH[0]} to {SECRET_LENGTH[1]} "
                         f"characters long, got {len(secret)}", field="secret")
    unknown = sorted(set(event_types) - set(EVENT_TYPES) - {"*"})
    if unknown or not event_types:
        raise InputError(f"unknown event types {unknown}; known: {sorted(EVENT_TYPES)} "
                         "or '*'", field="event_types")
    sub_id = "wh_" + uuid.uuid4().hex[:16]
    secret = secret or "whsec_" + secrets.token_urlsafe(32)
    session.add(WebhookSubscriptionRow(id=sub_id, url=url, secret=secret,
                                       event_types=sorted(set(event_types)),
                                       description=description, active=True,
                                       created_by=actor, created_at=utcnow()))
    session.flush()
    audit.append(session, actor=actor, action="webhook.subscribe",
                 entity_type="webhook_subscription", entity_id=sub_id,
                 payload={"url": url, "event_types": sorted(set(event_types))})
    return sub_id, secret


def unsubscribe(session: Session, sub_id: str, *, actor: str) -> None:
    row = session.get(WebhookSubscriptionRow, sub_id)
    if row is None:
        raise NotFound(f"webhook subscription {sub_id!r} does not exist")
    row.active = False
    audit.append(session, actor=actor, action="webhook.unsubscribe",
                 entity_type="webhook_subscription", entity_id=sub_id, payload={})


def subscription_view(row: WebhookSubscriptionRow) -> dict[str, Any]:
    return {"id": row.id, "url": row.url, "event_types": row.event_types,
            "description": row.description, "active": row.active,
            "created_by": row.created_by, "created_at": row.created_at.isoformat()}


def list_subscriptions(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(sa.select(WebhookSubscriptionRow)
                           .order_by(WebhookSubscriptionRow.created_at)).scalars()
    return [subscription_view(r) for r in rows]


# --- dispatch (outbox -> delivery rows) ---------------------------------------------

def event_body(entry: AuditRow, event_type: str) -> dict[str, Any]:
    return {"type": event_type, "occurred_at": entry.at.isoformat(), "actor": entry.actor,
            "entity": {"type": entry.entity_type, "id": entry.entity_id},
            "data": entry.payload, "audit": {"seq": entry.seq, "hash": entry.hash}}


def dispatch(session: Session, now: datetime, *, batch: int = 1000) -> dict[str, Any]:
    """Turn audit entries after the cursor into delivery rows (one transaction)."""
    cursor = session.get(OpsCursorRow, CURSOR, with_for_update=True)
    if cursor is None:
        cursor = OpsCursorRow(name=CURSOR, position=0, updated_at=now)
        session.add(cursor)
        session.flush()
    head = session.get(AuditHeadRow, 1)
    head_seq = head.seq if head else 0
    subs = session.execute(sa.select(WebhookSubscriptionRow)
                           .where(WebhookSubscriptionRow.active.is_(True))).scalars().all()
    entries = session.execute(
        sa.select(AuditRow).where(AuditRow.seq > cursor.position, AuditRow.seq <= head_seq,
                                  AuditRow.action.in_(list(ACTION_TO_EVENT)))
        .order_by(AuditRow.seq).limit(batch)).scalars().all() if subs else []
    rows = []
    for entry in entries:
        event_type = ACTION_TO_EVENT[entry.action]
        for sub in subs:
            if entry.at < sub.created_at:
                continue  # a subscription hears about what happens after it was made
            if "*" not in sub.event_types and event_type not in sub.event_types:
                continue
            rows.append({"id": "whd_" + uuid.uuid4().hex[:20], "subscription_id": sub.id,
                         "audit_seq": entry.seq, "event_type": event_type,
                         "payload": event_body(entry, event_type), "status": "pending",
                         "attempts": 0, "next_attempt_at": now, "created_at": now})
    if rows:
        session.execute(sa.insert(WebhookDeliveryRow), rows)
    full = len(entries) == batch
    cursor.position = entries[-1].seq if full else head_seq
    cursor.updated_at = now
    return {"entries": len(entries), "deliveries": len(rows), "cursor": cursor.position}


# --- delivery ---------------------------------------------------------------------

def _lease_due(engine: Engine, now: datetime, limit: int, lease_s: float
               ) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due deliveries, oldest audit entry first, keeping each
    subscription's deliveries in order: none is leased while an older one of its
    subscription waits for a retry or is in flight. A leased row's ``next_attempt_at``
    moves to the lease's end, so "waiting" is one index range (pending rows not yet
    due), and a row whose sender died is due again when its lease lapses."""
    d, s = WebhookDeliveryRow, WebhookSubscriptionRow
    with transaction(engine) as session:
        # The subscriptions first, each held by one sender at a time (SKIP LOCKED: the
        # others go on with the rest); the next statement, started once they are held,
        # sees every lease another sender committed on them.
        mine = session.execute(sa.select(s.id).order_by(s.id)
                               .with_for_update(skip_locked=True)).scalars().all()
        if not mine:
            return []
        waiting = (sa.select(d.subscription_id, sa.func.min(d.audit_seq).label("seq"))
                   .where(d.status == "pending", d.next_attempt_at > now)
                   .group_by(d.subscription_id).subquery())
        due = session.execute(
            sa.select(d).outerjoin(waiting, waiting.c.subscription_id == d.subscription_id)
            .where(d.status == "pending", d.next_attempt_at <= now,
                   d.subscription_id.in_(mine),
                   sa.or_(d.locked_until.is_(None), d.locked_until < now),
                   sa.or_(waiting.c.seq.is_(None), d.audit_seq < waiting.c.seq))
            .order_by(d.audit_seq, d.id).limit(limit)
            .with_for_update(of=d, skip_locked=True)).scalars().all()
        if not due:
            return []
        subs = {row.id: row for row in session.execute(
            sa.select(s).where(s.id.in_({x.subscription_id for x in due}))).scalars()}
        lease_until = now + timedelta(seconds=lease_s)
        out = []
        for row in due:
            sub = subs[row.subscription_id]
            out.append({"id": row.id, "subscription_id": sub.id, "url": sub.url,
                        "secret": sub.secret, "active": sub.active,
                        "event_type": row.event_type, "payload": row.payload,
                        "attempts": row.attempts, "lease": lease_until,
                        "due_at": row.next_attempt_at})
            row.locked_until = row.next_attempt_at = lease_until
        return out


async def _post(client: Any, item: dict[str, Any], timeout_s: float
                ) -> tuple[int | None, str | None, bool]:
    """POST one delivery within ``timeout_s`` of wall-clock time: (status code, error,
    timed out)."""
    import httpx

    body = json.dumps({"delivery_id": item["id"], **item["payload"]}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "hilt-webhooks",
               "X-Hilt-Delivery": item["id"], "X-Hilt-Event": item["event_type"],
               **sign_headers(item["secret"], body)}
    if not host_allowed(_url_host(item["url"]), allowed_hosts()):
        # Subscribed before the allow-list was set (or narrowed): not sent.
        return None, "host not in HILT_WEBHOOK_ALLOWED_HOSTS", False
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", item["url"], content=body,
                                     headers=headers) as response:
                # The status is the answer: the body is never read, and never stored
                # (see the module doc).
                code, reason = response.status_code, response.reason_phrase
    except (TimeoutError, httpx.TimeoutException):
        return None, f"timed out: no answer within {timeout_s:g} s", True
    except Exception as exc:  # refused, reset, DNS: all mean "try again later"
        return None, f"{type(exc).__name__}: {exc}"[:1000], False
    if 200 <= code < 300:
        return code, None, False
    # Never followed: HILT_WEBHOOK_ALLOWED_HOSTS names where deliveries may go, and a
    # redirect would take them (and their signatures) anywhere.
    moved = " (redirects are not followed: subscribe the URL it points to)" \
        if 300 <= code < 400 else ""
    return code, f"HTTP {code} {reason}".strip()[:200] + moved, False


async def _post_all(items: list[dict[str, Any]], timeout_s: float, post_by: float
                    ) -> dict[str, tuple[int | None, str | None]]:
    """Post each subscription's items in order, subscriptions concurrently. Items left
    out of the answer were not tried."""
    import httpx

    outcomes: dict[str, tuple[int | None, str | None]] = {}
    queues: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        queues.setdefault(item["subscription_id"], []).append(item)

    async def one_subscription(client: Any, queue: list[dict[str, Any]]) -> None:
        for item in queue:
            if not item["active"]:
                outcomes[item["id"]] = (None, "subscription inactive")
                continue
            if time.monotonic() > post_by:
                return  # the lease could lapse before this POST's deadline
            code, error, _timed_out = await _post(client, item, timeout_s)
            outcomes[item["id"]] = (code, error)
            if error is not None:
                # The rest wait for this one's retry: each subscription's deliveries go
                # out in order (and a receiver that just timed out would hold them up).
                return

    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
        await asyncio.gather(*(one_subscription(client, q) for q in queues.values()))
    return outcomes


def _run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop: run on a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def deliver_due(engine: Engine, *, now: datetime | None = None, limit: int = 50,
                timeout_s: float | None = None, lease_s: float = LEASE_SECONDS
                ) -> dict[str, int]:
    """Send every due delivery once; returns counts by outcome (``deferred``: leased but
    not tried on this run, due again at once)."""
    now = now or utcnow()
    # A deadline longer than the lease would leave no time to post anything.
    timeout_s = min(_timeout() if timeout_s is None else timeout_s, lease_s / 2)
    leased_at = time.monotonic()
    items = _lease_due(engine, now, limit, lease_s)
    counts = {"delivered": 0, "retry": 0, "failed": 0, "deferred": 0}
    if not items:
        return counts
    outcomes = _run_async(_post_all(items, timeout_s, leased_at + lease_s - timeout_s))
    base, max_attempts = _backoff_base(), _max_attempts()
    finished = utcnow()
    with transaction(engine) as session:
        for item in items:
            row = session.get(WebhookDeliveryRow, item["id"], with_for_update=True)
            if row is None or row.locked_until != item["lease"]:
                continue  # our lease lapsed and another sender took it over
            row.locked_until = None
            if item["id"] not in outcomes:
                row.next_attempt_at = item["due_at"]  # not tried: due again at once
                counts["deferred"] += 1
                continue
            code, error = outcomes[item["id"]]
            row.attempts += 1
            row.last_status_code, row.last_error = code, error
            if error is None:
                row.status, row.delivered_at = "delivered", finished
                counts["delivered"] += 1
            elif row.attempts >= max_attempts or not item["active"]:
                row.status = "failed"
                counts["failed"] += 1
            else:
                row.next_attempt_at = finished + timedelta(
                    seconds=backoff_seconds(row.attempts, base=base))
                counts["retry"] += 1
    return counts


def replay(session: Session, delivery_id: str, *, actor: str) -> WebhookDeliveryRow:
    """Queue a delivery to be sent again now (a failed one, or a delivered one)."""
    row = session.get(WebhookDeliveryRow, delivery_id, with_for_update=True)
    if row is None:
        raise NotFound(f"delivery {delivery_id!r} does not exist")
    before = row.status
    row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
    row.locked_until = None
    audit.append(session, actor=actor, action="webhook.replay", entity_type="webhook_delivery",
                 entity_id=delivery_id, payload={"status_before": before,
                                                 "audit_seq": row.audit_seq})
    return row


def delivery_view(row: WebhookDeliveryRow) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"id": row.id, "subscription_id": row.subscription_id,
            "audit_seq": row.audit_seq, "event_type": row.event_type, "status": row.status,
            "attempts": row.attempts, "next_attempt_at": iso(row.next_attempt_at),
            "last_status_code": row.last_status_code, "last_error": row.last_error,
            "delivered_at": iso(row.delivered_at), "created_at": iso(row.created_at)}


# Newest audit entry first; one entry's deliveries (one per subscription) by id.
DELIVERY_ORDER = keyset((WebhookDeliveryRow.audit_seq, True), (WebhookDeliveryRow.id, False))


def list_deliveries(session: Session, *, subscription_id: str | None = None,
                    status: str | None = None, limit: int = 100,
                    after: str | None = None) -> list[WebhookDeliveryRow]:
    """Deliveries in :data:`DELIVERY_ORDER`; ``after``: the cursor of the previous
    page's last delivery (``DELIVERY_ORDER.cursor``)."""
    if status and status not in DELIVERY_STATUSES:
        raise InputError(f"unknown delivery status {status!r}; one of: "
                         f"{', '.join(DELIVERY_STATUSES)}", field="status")
    d = WebhookDeliveryRow
    q = sa.select(d).order_by(*DELIVERY_ORDER.order_by()).limit(limit)
    if after:
        q = q.where(DELIVERY_ORDER.after(after))
    if subscription_id:
        q = q.where(d.subscription_id == subscription_id)
    if status:
        q = q.where(d.status == status)
    return list(session.execute(q).scalars())
