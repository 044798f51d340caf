"""A receiver that answers with a redirect: not followed, and the delivery log says so."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from hilt.ops import webhooks
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow

from .helpers import workload
from .receiver import free_port

SECRET = "whsec_test_secret_0123456789"


@pytest.fixture
def redirecting() -> Iterator[dict[str, Any]]:
    """A server whose /old answers 308 to /new; it counts the POSTs each path got."""
    hits: dict[str, Any] = {"/old": 0, "/new": 0, "port": free_port()}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hits[self.path] = hits.get(self.path, 0) + 1
            self.send_response(308 if self.path == "/old" else 204)
            self.send_header("Location", f"http://127.0.0.1:{hits['port']}/new")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", hits["port"]), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield hits
    server.shutdown()
    server.server_close()


def test_a_redirect_is_a_failed_attempt_that_says_why(
        sqlite_engine: Engine, redirecting: dict[str, Any]) -> None:
    with transaction(sqlite_engine) as s:
        webhooks.subscribe(s, url=f"http://127.0.0.1:{redirecting['port']}/old",
                           secret=SECRET, actor="lead", event_types=["events.ingested"])
    workload(sqlite_engine, 1)
    with transaction(sqlite_engine) as s:
        webhooks.dispatch(s, utcnow())
    assert webhooks.deliver_due(sqlite_engine)["retry"] == 1
    assert redirecting["/old"] == 1 and redirecting["/new"] == 0
    with transaction(sqlite_engine) as s:
        [delivery] = webhooks.list_deliveries(s)
        assert delivery.last_status_code == 308
        assert delivery.last_error == ("HTTP 308 Permanent Redirect (redirects are not "
                                       "followed: subscribe the URL it points to)")
