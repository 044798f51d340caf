"""Each subscription's deliveries go out in order: a failed delivery holds the later ones
of its subscription back until its retry, and a delivery in flight at another sender
keeps them from being leased, while other subscriptions go on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from hilt.ops import webhooks
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow

from .helpers import workload
from .receiver import Receiver

SECRET = "whsec_test_secret_0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(SECRET).start()
    yield rec
    rec.stop()


def _subscribe(engine: Engine, url: str) -> str:
    with transaction(engine) as s:
        return webhooks.subscribe(s, url=url, secret=SECRET, actor="lead",
                                  event_types=["task.escalated"])[0]


def _dispatch(engine: Engine, expected: int) -> None:
    with transaction(engine) as s:
        assert webhooks.dispatch(s, utcnow())["deliveries"] == expected


def test_a_later_delivery_waits_for_the_retry_of_an_earlier_one(
        engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_WEBHOOK_BACKOFF_SECONDS", "30")
    _subscribe(engine, receiver.url)
    workload(engine, 2, overlap=1)  # D and E: two task.create entries
    _dispatch(engine, 2)
    receiver.fail_next = 1  # D's first attempt fails
    assert webhooks.deliver_due(engine) == {"delivered": 0, "retry": 1, "failed": 0,
                                            "deferred": 1}
    assert webhooks.deliver_due(engine)["delivered"] == 0  # E does not overtake D
    assert receiver.received == []
    later = utcnow() + timedelta(minutes=2)  # past D's backoff
    assert webhooks.deliver_due(engine, now=later)["delivered"] == 2
    seqs = [r["audit"]["seq"] for r in receiver.received]
    assert len(seqs) == 2 and seqs[0] < seqs[1]


def test_a_delivery_in_flight_keeps_the_later_ones_of_its_subscription(
        engine: Engine) -> None:
    first = _subscribe(engine, "http://127.0.0.1:9/a")
    workload(engine, 2, overlap=1)
    other = _subscribe(engine, "http://127.0.0.1:9/b")
    workload(engine, 1, overlap=1, start=10)
    _dispatch(engine, 4)  # three for the first subscription, one for the other
    now = utcnow()
    # a sender leases the first subscription's oldest delivery and is posting it
    in_flight = webhooks._lease_due(engine, now, 1, 60.0)
    assert [i["subscription_id"] for i in in_flight] == [first]
    # another sender meanwhile: nothing of the first subscription, the other's one
    leased = webhooks._lease_due(engine, now, 50, 60.0)
    assert [i["subscription_id"] for i in leased] == [other]
