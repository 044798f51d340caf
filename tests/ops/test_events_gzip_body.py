"""``POST /v1/events`` refuses a compressed body with 415, naming the encoding."""

from __future__ import annotations

import gzip
import json

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.store.db import transaction

from .helpers import event


def test_gzip_body_is_refused_and_plain_accepted(engine: Engine) -> None:
    with transaction(engine) as s:
        token = create_token(s, role="service")[1]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"events": [event(i) for i in range(3)]}).encode()
    with TestClient(create_app(engine)) as client:
        refused = client.post("/v1/events", content=gzip.compress(body),
                              headers={**auth, "Content-Encoding": "gzip"})
        assert refused.status_code == 415
        assert "Content-Encoding gzip is not supported" in refused.json()["detail"]
        stored = client.post("/v1/events", content=body,
                             headers={**auth, "Content-Encoding": "identity"})
        assert stored.status_code == 200 and stored.json()["new"] == 3
