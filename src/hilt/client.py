"""A small HTTP client for a running ``hilt serve``.

    from hilt.client import HiltClient
    with HiltClient("http://127.0.0.1:8000", token="hilt_...") as hilt:
        print(hilt.ingest([{"interaction": {"prompt": "hi"}, "responses": [{"text": "yo"}]}]))

Events are sent in batches of ``batch_size`` (``concurrency`` of them at once); each
batch is all-or-nothing on the server.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx


def _batches(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _add(totals: dict[str, int], out: dict[str, Any]) -> None:
    for key in totals:
        totals[key] += int(out.get(key, 0))


class HiltError(RuntimeError):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


class HiltClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 http: httpx.Client | None = None) -> None:
        """``http`` may be any ``httpx.Client`` (for example a test client)."""
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self._http.headers["Authorization"] = f"Bearer {token}"

    def __enter__(self) -> HiltClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json()
            except ValueError:
                detail = response.text
            raise HiltError(response.status_code, detail)
        return response.json() if response.content else None

    def ingest(self, events: Iterable[dict[str, Any]], *, batch_size: int = 1000,
               concurrency: int = 1) -> dict[str, int]:
        """Send events in batches; returns summed counts (received, new, duplicates).

        ``concurrency`` batches are in flight at once, each on a connection of its own
        (a server with several worker processes stores them side by side). Each batch
        is all-or-nothing; after a failed batch no further batch is sent, and the error
        is raised once the batches already sent have been answered. Batches sent
        before it may be stored: re-sending the events is safe, ingest is idempotent.
        """
        totals = {"received": 0, "new": 0, "duplicates": 0, "escalated": 0}
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        with ThreadPoolExecutor(concurrency, thread_name_prefix="hilt-ingest") as pool:
            in_flight: deque[Future[dict[str, Any]]] = deque()
            try:
                for batch in _batches(events, batch_size):
                    if len(in_flight) >= concurrency:  # bounded: a large iterable streams
                        _add(totals, in_flight.popleft().result())
                    in_flight.append(pool.submit(
                        self.request, "POST", "/v1/events", json={"events": batch}))
                while in_flight:
                    _add(totals, in_flight.popleft().result())
            finally:  # after a failure: batches not yet started are not sent
                for future in in_flight:
                    future.cancel()
        return totals

    def event(self, event_id: str) -> dict[str, Any]:
        # quoted whole: an id may hold "/", "?" or "#", which would end the path
        result: dict[str, Any] = self.request("GET", f"/v1/events/{quote(event_id, safe='')}")
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/healthz")
        return result
