"""``/healthz`` reports whether the process can reach its database."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.api.app import DatabaseProbe, create_app

UNREACHABLE = "postgresql+psycopg://hilt:s3cret-pw@127.0.0.1:1/nodb"


def test_ok_with_a_reachable_database(engine: Engine) -> None:
    answer = TestClient(create_app(engine)).get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_503_naming_the_failure_without_secrets() -> None:
    client = TestClient(create_app(url=UNREACHABLE), raise_server_exceptions=False)
    answer = client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "OperationalError"
    assert "s3cret" not in answer.text and "127.0.0.1" not in answer.text


class _HangingEngine:
    """An engine whose connection attempt never finishes until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.attempts = 0

    def connect(self) -> Any:
        self.attempts += 1
        self.release.wait(10)
        raise ConnectionError("gave up")


def test_a_hanging_database_answers_timeout_without_piling_up_queries() -> None:
    hanging = _HangingEngine()
    probe = DatabaseProbe(hanging, timeout_s=0.05)  # type: ignore[arg-type]
    try:
        assert probe.problem() == "timeout"
        assert probe.problem() == "timeout"
        assert hanging.attempts == 1  # the second check waited on the first query
    finally:
        hanging.release.set()
