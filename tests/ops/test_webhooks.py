"""Webhooks: signatures, the audit outbox, retries with backoff, the delivery log, replay."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.ops import webhooks
from hilt.ops.signing import sign_headers, verify
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow

from .helpers import workload
from .receiver import Receiver

SECRET = "whsec_test_secret_0123456789"


def test_signature_matches_an_independent_hmac_and_rejects_tampering() -> None:
    body = b'{"type":"item.resolved"}'
    headers = sign_headers(SECRET, body, now=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Hilt-Signature"] == "v1=" + expected
    ts, sig = headers["X-Hilt-Timestamp"], headers["X-Hilt-Signature"]
    assert verify(SECRET, body, ts, sig, now=1_700_000_010)
    assert not verify(SECRET, body + b" ", ts, sig, now=1_700_000_010)
    assert not verify("other-secret", body, ts, sig, now=1_700_000_010)
    assert not verify(SECRET, body, ts, sig, now=1_700_000_000 + 301)  # too old
    assert not verify(SECRET, body, None, sig)


def test_backoff_doubles_and_is_capped() -> None:
    rng = random.Random(0)
    delays = [webhooks.backoff_seconds(n, base=10, cap=100, rng=rng) for n in range(1, 6)]
    for n, delay in enumerate(delays, start=1):
        nominal = min(100, 10 * 2 ** (n - 1))
        assert 0.9 * nominal <= delay <= 1.1 * nominal


def test_subscription_input_is_checked(engine: Engine) -> None:
    with pytest.raises(InputError, match="url"), transaction(engine) as s:
        webhooks.subscribe(s, url="ftp://x", event_types=["item.resolved"], actor="t")
    with pytest.raises(InputError, match="event_types"), transaction(engine) as s:
        webhooks.subscribe(s, url="http://127.0.0.1:1/x", event_types=["nope"], actor="t")
    # a broken host or port is an input error, not a ValueError from urlparse
    for url in ("http://[::1/x", "http://h:99999/x", "http://h:0/x", "http://h/x\x00y",
                "http:///x"):
        with pytest.raises(InputError, match="url"), transaction(engine) as s:
            webhooks.subscribe(s, url=url, event_types=["*"], actor="t")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(SECRET)
    yield rec
    rec.stop()


def _dispatch(engine: Engine) -> dict:
    with transaction(engine) as s:
        return webhooks.dispatch(s, utcnow())


def test_outbox_delivery_down_receiver_retry_and_replay(
        engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_WEBHOOK_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("HILT_WEBHOOK_MAX_ATTEMPTS", "3")
    with transaction(engine) as s:
        sub_id, _ = webhooks.subscribe(s, url=receiver.url, secret=SECRET, actor="lead",
                                       event_types=["task.escalated", "events.ingested"])
    workload(engine, 3, overlap=1)  # one ingest batch + three manual tasks
    assert _dispatch(engine)["deliveries"] == 4
    assert _dispatch(engine)["deliveries"] == 0  # the cursor moved: nothing twice

    # The receiver is down: every delivery is kept and retried later, in order: the
    # first one's failure holds the others back until its retry.
    assert webhooks.deliver_due(engine) == {"delivered": 0, "retry": 1, "failed": 0,
                                            "deferred": 3}
    with transaction(engine) as s:
        log = sorted(webhooks.list_deliveries(s, subscription_id=sub_id),
                     key=lambda d: d.audit_seq)
        assert all(d.status == "pending" for d in log)
        assert [d.attempts for d in log] == [1, 0, 0, 0] and log[0].last_error
    receiver.start()
    receiver.fail_next = 1
    later = utcnow() + timedelta(seconds=5)
    assert webhooks.deliver_due(engine, now=later) == {"delivered": 0, "retry": 1,
                                                       "failed": 0, "deferred": 3}
    assert webhooks.deliver_due(engine, now=later + timedelta(seconds=5))["delivered"] == 4
    assert receiver.bad_signatures == 0
    kinds = sorted(r["type"] for r in receiver.received)
    assert kinds == ["events.ingested"] + ["task.escalated"] * 3
    seqs = [r["audit"]["seq"] for r in receiver.received]
    assert seqs == sorted(set(seqs))  # each audit entry once, in order

    # A delivery that fails max_attempts times is marked failed (and no longer holds
    # up the next one); replay sends it again.
    workload(engine, 1, overlap=1, start=10)
    _dispatch(engine)
    receiver.fail_next = 10
    t = utcnow()
    for step in range(6):
        webhooks.deliver_due(engine, now=t + timedelta(seconds=10 * (step + 1)))
    with transaction(engine) as s:
        failed = webhooks.list_deliveries(s, status="failed")
        assert len(failed) == 2 and all(d.attempts == 3 for d in failed)
        assert all(d.last_status_code == 500 for d in failed)
        for d in failed:
            webhooks.replay(s, d.id, actor="lead")
    receiver.fail_next = 0
    assert webhooks.deliver_due(engine, now=t + timedelta(minutes=5))["delivered"] == 2
    assert len(receiver.received) == 6


def test_subscription_hears_only_later_events(engine: Engine, receiver: Receiver) -> None:
    workload(engine, 2, overlap=1)
    with transaction(engine) as s:
        webhooks.subscribe(s, url=receiver.url, secret=SECRET, actor="lead",
                           event_types=["*"])
    assert _dispatch(engine)["deliveries"] == 0


def test_a_failing_receivers_body_is_never_stored(engine: Engine, receiver: Receiver) -> None:
    receiver.start()
    receiver.fail_next = 1
    receiver.fail_body = b"internal secret: db password hunter2"
    with transaction(engine) as s:
        webhooks.subscribe(s, url=receiver.url, secret=SECRET, actor="lead",
                           event_types=["events.ingested"])
    workload(engine, 1)
    _dispatch(engine)
    assert webhooks.deliver_due(engine)["retry"] == 1
    with transaction(engine) as s:
        (tried,) = webhooks.list_deliveries(s)
        assert tried.last_status_code == 500
        assert tried.last_error == "HTTP 500 Internal Server Error"


def test_the_host_allow_list_limits_subscriptions_and_posts(
        engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver.start()
    with transaction(engine) as s:  # subscribed before the list was set
        webhooks.subscribe(s, url=receiver.url, secret=SECRET, actor="lead",
                           event_types=["events.ingested"])
    monkeypatch.setenv("HILT_WEBHOOK_ALLOWED_HOSTS", "hooks.example.com, *.partner.org")
    with transaction(engine) as s, pytest.raises(InputError, match="ALLOWED_HOSTS"):
        webhooks.subscribe(s, url="http://169.254.169.254/latest", secret=SECRET,
                           actor="lead", event_types=["*"])
    assert webhooks.host_allowed("a.partner.org", webhooks.allowed_hosts())
    assert not webhooks.host_allowed("partner.org", webhooks.allowed_hosts())
    assert webhooks.host_allowed("HOOKS.example.com.", webhooks.allowed_hosts())
    workload(engine, 1)
    _dispatch(engine)
    assert webhooks.deliver_due(engine)["retry"] == 1
    assert receiver.received == []
    monkeypatch.setenv("HILT_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    assert webhooks.deliver_due(engine, now=utcnow() + timedelta(minutes=5))["delivered"] == 1


def test_a_registered_model_version_is_delivered_as_model_registered(
        engine: Engine, receiver: Receiver) -> None:
    from hilt.store import audit
    from hilt.train.registry import register_model_version

    with transaction(engine) as s:
        webhooks.subscribe(s, url=receiver.url, secret=SECRET, actor="lead",
                           event_types=["model.registered"])
    manifest = {"kind": "reward", "base_model": "m", "seed": 0, "config": {},
                "data": {"path": "p.jsonl", "hash": "ab" * 32, "records": 1},
                "code_version": "hilt 0.1.0", "metrics": {"accuracy": 0.7}}
    with transaction(engine) as s:
        version = register_model_version(s, manifest=manifest, artifact_path="/tmp/rm",
                                         actor="trainer")
    with transaction(engine) as s:
        audit.seal(s)
    assert _dispatch(engine)["deliveries"] == 1
    receiver.start()
    assert webhooks.deliver_due(engine)["delivered"] == 1
    (delivered,) = receiver.received
    assert delivered["type"] == "model.registered"
    assert delivered["entity"] == {"type": "model_version", "id": version.id}


def test_every_event_type_maps_only_to_audit_actions_hilt_writes() -> None:
    import re
    from pathlib import Path

    import hilt

    source = "\n".join(p.read_text() for p in Path(hilt.__file__).parent.rglob("*.py"))
    written = set(re.findall(r'action="([a-z_]+\.[a-z_]+)"', source))
    for event_type, actions in webhooks.EVENT_TYPES.items():
        assert set(actions) <= written, (event_type, set(actions) - written)
