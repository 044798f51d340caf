"""One ``webhooks.deliver`` run keeps taking batches while deliveries are due."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from hilt.ops import webhooks
from hilt.ops.builtin import DELIVER_BATCH, periodic_tasks
from hilt.ops.periodic import run_periodic
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow

from .helpers import workload
from .receiver import Receiver

SECRET = "whsec_test_secret_0123456789"
DUE = 3 * DELIVER_BATCH + 7


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(SECRET).start()
    yield rec
    rec.stop()


def _backlog(engine: Engine, receiver: Receiver) -> None:
    with transaction(engine) as s:
        webhooks.subscribe(s, url=receiver.url, secret=SECRET, actor="lead",
                           event_types=["task.escalated"])
    workload(engine, DUE, overlap=1)  # one task.create entry per event
    with transaction(engine) as s:
        assert webhooks.dispatch(s, utcnow())["deliveries"] == DUE


def _deliver_task() -> object:
    return next(t for t in periodic_tasks() if t.name == "webhooks.deliver")


def test_one_run_delivers_more_than_one_batch(engine: Engine, receiver: Receiver,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # A long period, so the run's time budget cannot end it on a slow machine.
    monkeypatch.setenv("HILT_PERIOD_WEBHOOKS_DELIVER", "120")
    _backlog(engine, receiver)
    result = run_periodic(engine, _deliver_task())  # type: ignore[arg-type]
    assert result == {"delivered": DUE, "retry": 0, "failed": 0, "deferred": 0}
    assert len(receiver.received) == DUE


def test_the_run_stops_when_its_time_budget_is_spent(engine: Engine, receiver: Receiver,
                                                    monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    # A period far shorter than one batch takes: one batch, the rest at the next run.
    monkeypatch.setenv("HILT_PERIOD_WEBHOOKS_DELIVER", "0.000001")
    _backlog(engine, receiver)
    first = run_periodic(engine, _deliver_task())  # type: ignore[arg-type]
    assert first is not None and first["delivered"] == DELIVER_BATCH
