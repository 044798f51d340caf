"""A webhook receiver on 127.0.0.1 for the tests: verifies every signature."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hilt.ops.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """Records verified deliveries; ``fail_next`` answers that many requests with 500.

    ``delay_s`` waits that long before answering; ``drip_s`` makes it a receiver that
    never finishes answering: it sends its response one byte every ``drip_s`` seconds,
    status line included, until stopped."""

    def __init__(self, secret: str, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.fail_next = 0
        self.fail_body = b""  # what a failing answer carries
        self.delay_s = 0.0
        self.drip_s: float | None = None
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = verify(outer.secret, body, self.headers.get(TIMESTAMP_HEADER),
                            self.headers.get(SIGNATURE_HEADER))
                if outer.drip_s is not None:
                    with outer._lock:
                        outer.received.append({**json.loads(body), "_dripped": True,
                                               "_delivery": self.headers["X-Hilt-Delivery"]})
                    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + \
                        b"x" * 100000
                    self.close_connection = True
                    for byte in answer:
                        if outer._stopping.wait(outer.drip_s):
                            return
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:  # the sender gave up on us
                            return
                    return
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                with outer._lock:
                    if not ok:
                        outer.bad_signatures += 1
                        code = 401
                    elif outer.fail_next > 0:
                        outer.fail_next -= 1
                        code = 500
                    else:
                        outer.received.append({**json.loads(body),
                                               "_delivery": self.headers["X-Hilt-Delivery"]})
                        code = 204
                body = outer.fail_body if code == 500 else b""
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def delivered(self) -> list[dict[str, Any]]:
        """What it accepted (answered with 2xx in full)."""
        with self._lock:
            return [r for r in self.received if not r.get("_dripped")]

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
