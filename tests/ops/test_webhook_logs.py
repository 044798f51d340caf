"""What webhook sending writes to the logs: a subscription's URL often is its secret."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.engine import Engine

from hilt.ops import webhooks
from hilt.ops.logs import JsonFormatter
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow

from .helpers import workload
from .receiver import Receiver

SECRET = "whsec_test_secret_0123456789"


def test_the_request_log_line_shows_only_the_receivers_origin(
        sqlite_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver(SECRET).start()
    try:
        # Chat and CI webhooks carry their key in the path or the query, some a password.
        url = (f"http://hook:pa55word@127.0.0.1:{receiver.port}/services/T0/B0/PATHKEY"
               "?token=QUERYKEY")
        with transaction(sqlite_engine) as s:
            webhooks.subscribe(s, url=url, secret=SECRET, actor="lead",
                               event_types=["events.ingested"])
        workload(sqlite_engine, 1)
        with transaction(sqlite_engine) as s:
            webhooks.dispatch(s, utcnow())
        with caplog.at_level(logging.DEBUG):
            assert webhooks.deliver_due(sqlite_engine)["delivered"] == 1
    finally:
        receiver.stop()
    lines = [JsonFormatter().format(r) for r in caplog.records]
    sent = [line for line in lines if "HTTP Request" in line]
    assert sent and f"http://127.0.0.1:{receiver.port}/…" in sent[0]
    for secret in ("PATHKEY", "QUERYKEY", "pa55word", "services/T0"):
        assert not any(secret in line for line in lines), secret


def test_url_origin_keeps_scheme_host_and_port() -> None:
    assert webhooks.url_origin("https://u:p@Hooks.example.com/a/b?c=d") == \
        "https://hooks.example.com/…"
    assert webhooks.url_origin("http://[::1]:8080/x") == "http://[::1]:8080/…"
