"""Webhook delivery with slow receivers: every POST has a wall-clock deadline, a receiver
that never finishes answering holds up no other subscription, and nothing is posted
once its lease is too short to finish."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.ops import webhooks
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.ops import WebhookDeliveryRow

from .climain import run_main
from .helpers import workload
from .receiver import Receiver

SECRET = "whsec_test_secret_0123456789"


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    drip, healthy = Receiver(SECRET), Receiver(SECRET)
    drip.drip_s = 0.2  # a byte every 0.2 s: no single read ever waits long
    drip.start()
    healthy.start()
    yield drip, healthy
    drip.stop()
    healthy.stop()


def _subscribe(engine: Engine, url: str) -> str:
    with transaction(engine) as s:
        sub_id, _ = webhooks.subscribe(s, url=url, secret=SECRET, actor="lead",
                                       event_types=["task.escalated"])
    return sub_id


def _deliveries(engine: Engine, sub_id: str) -> list[WebhookDeliveryRow]:
    with transaction(engine) as s:
        return webhooks.list_deliveries(s, subscription_id=sub_id)


def test_a_trickling_receiver_times_out_and_holds_up_no_other(
        engine: Engine, receivers: tuple[Receiver, Receiver]) -> None:
    drip, healthy = receivers
    drip_sub = _subscribe(engine, drip.url)
    healthy_sub = _subscribe(engine, healthy.url)
    workload(engine, 3, overlap=1)
    with transaction(engine) as s:
        assert webhooks.dispatch(s, utcnow())["deliveries"] == 6

    outcome: list[dict[str, int]] = []
    started = time.monotonic()
    sender = threading.Thread(
        target=lambda: outcome.append(webhooks.deliver_due(engine, timeout_s=1.0)),
        daemon=True)
    sender.start()
    sender.join(8)
    elapsed = time.monotonic() - started
    assert outcome, "delivery is stuck on the trickling receiver"
    assert elapsed < 6
    assert len(healthy.delivered) == 3  # its deliveries went out, undelayed
    assert outcome[0] == {"delivered": 3, "retry": 1, "failed": 0, "deferred": 2}

    slow = sorted(_deliveries(engine, drip_sub), key=lambda d: d.attempts)
    # The first POST ran into its deadline and is retried later, with backoff; the
    # receiver's other deliveries were not tried on this run and are due again now.
    assert [d.attempts for d in slow] == [0, 0, 1]
    tried = slow[-1]
    assert tried.status == "pending" and "timed out" in (tried.last_error or "")
    assert tried.next_attempt_at > utcnow() + timedelta(seconds=5)
    assert all(d.status == "pending" and d.locked_until is None for d in slow)
    assert all(d.status == "delivered" for d in _deliveries(engine, healthy_sub))


def test_nothing_is_posted_once_the_lease_could_run_out(
        engine: Engine, receivers: tuple[Receiver, Receiver]) -> None:
    _, healthy = receivers
    healthy.delay_s = 1.0
    sub_id = _subscribe(engine, healthy.url)
    workload(engine, 5, overlap=1)
    with transaction(engine) as s:
        webhooks.dispatch(s, utcnow())
    # Each POST takes 1 s and may take 1.5 s; the lease is 3 s: two POSTs fit, a third
    # could end after the lease, when another sender may already have taken the row.
    counts = webhooks.deliver_due(engine, timeout_s=1.5, lease_s=3.0)
    assert counts == {"delivered": 2, "retry": 0, "failed": 0, "deferred": 3}
    assert len(healthy.received) == 2
    rows = _deliveries(engine, sub_id)
    assert sorted(d.status for d in rows) == ["delivered"] * 2 + ["pending"] * 3
    assert all(d.attempts == 0 and d.locked_until is None
               for d in rows if d.status == "pending")
    # The deferred ones go out on the next run, in order.
    healthy.delay_s = 0.0
    assert webhooks.deliver_due(engine)["delivered"] == 3
    seqs = [r["audit"]["seq"] for r in healthy.received]
    assert seqs == sorted(seqs)


def test_signing_secret_needs_16_characters(engine: Engine, tmp_path: object) -> None:
    with pytest.raises(InputError, match="secret") as err, transaction(engine) as s:
        webhooks.subscribe(s, url="http://127.0.0.1:9/x", secret="x", actor="t",
                           event_types=["*"])
    assert err.value.field == "secret"
    with transaction(engine) as s:
        assert webhooks.list_subscriptions(s) == []


def test_cli_refuses_a_short_secret(tmp_path: object) -> None:
    from pathlib import Path

    url = f"sqlite:///{Path(str(tmp_path)) / 'h.db'}"
    assert run_main("init", "--db", url)[0] == 0
    code, output = run_main("webhook", "add", "http://127.0.0.1:9/x", "-e", "*",
                            "--secret", "x", "--db", url)
    assert code == 2 and output.strip().startswith("error: field '--secret'"), output
    code, output = run_main("webhook", "add", "http://127.0.0.1:9/x", "-e", "*",
                            "--secret", "s" * 16, "--db", url)
    assert code == 0 and '"secret": "ssssssssssssssss"' in output
