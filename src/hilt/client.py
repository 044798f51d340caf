"""A small HTTP client for a running ``hilt serve``.

    from hilt.client import HiltClient
    with HiltClient("http://127.0.0.1:8000", token="hilt_...") as hilt:
        print(hilt.ingest([{"interaction": {"prompt": "hi"}, "responses": [{"text": "yo"}]}]))

Batches larger than ``batch_size`` are split; each batch is all-or-nothing on the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx


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

    def ingest(self, events: Iterable[dict[str, Any]], *, batch_size: int = 1000
               ) -> dict[str, int]:
        """Send events in batches; returns summed counts (received, new, duplicates)."""
        totals = {"received": 0, "new": 0, "duplicates": 0, "escalated": 0}
        batch: list[dict[str, Any]] = []
        for event in events:
            batch.append(event)
            if len(batch) >= batch_size:
                self._send(batch, totals)
                batch = []
        if batch:
            self._send(batch, totals)
        return totals

    def _send(self, batch: list[dict[str, Any]], totals: dict[str, int]) -> None:
        out = self.request("POST", "/v1/events", json={"events": batch})
        for key in totals:
            totals[key] += int(out.get(key, 0))

    def event(self, event_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/v1/events/{event_id}")
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/healthz")
        return result
