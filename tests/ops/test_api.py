"""The ops HTTP surface: /metrics behind a token, request ids, jobs, exports, webhooks."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.ops import install, jobs
from hilt.ops.logs import JsonFormatter
from hilt.review.queue import claim_next
from hilt.store.db import transaction

from .helpers import reviewers, workload


@pytest.fixture
def client(engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with transaction(engine) as s:
        tokens = {role: create_token(s, role=role)[1] for role in ("service", "admin")}
    app = install(create_app(engine), scheduler=False, json_logs=False)
    with TestClient(app) as c:
        yield c, {k: f"Bearer {v}" for k, v in tokens.items()}


def test_metrics_need_a_token_and_count_the_queue(
        client: tuple[TestClient, dict[str, str]], engine: Engine) -> None:
    c, auth = client
    reviewers(engine, ["ann", "bob"])
    workload(engine, 4, overlap=2)
    with transaction(engine) as s:
        assert claim_next(s, "ann") is not None
    assert c.get("/metrics").status_code == 401
    r = c.get("/metrics", headers={"Authorization": auth["service"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert 'hilt_queue_depth{pool="default",severity="sev2"} 4.0' in lines
    assert "hilt_active_leases 1.0" in lines
    assert "hilt_claim_latency_seconds_count 1.0" in lines
    assert any(line.startswith("hilt_audit_entries_total") for line in lines)


def test_request_id_is_echoed_and_logged(client: tuple[TestClient, dict[str, str]],
                                         caplog: pytest.LogCaptureFixture) -> None:
    c, _ = client
    with caplog.at_level(logging.INFO, logger="hilt.http"):
        r = c.get("/healthz", headers={"X-Request-ID": "abc-123"})
        generated = c.get("/healthz").headers["x-request-id"]
    assert r.headers["x-request-id"] == "abc-123" and len(generated) == 32
    record = next(rec for rec in caplog.records if rec.name == "hilt.http")
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request" and line["path"] == "/healthz"
    assert line["status"] == 200 and "duration_ms" in line


def test_export_job_and_streamed_export(client: tuple[TestClient, dict[str, str]],
                                        engine: Engine, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_EXPORT_DIR", str(tmp_path))
    c, auth = client
    workload(engine, 3)
    r = c.post("/v1/jobs", json={"kind": "export.reviews"},
               headers={"Authorization": auth["service"]})
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    assert c.post("/v1/jobs", json={"kind": "quality.snapshot"},
                  headers={"Authorization": auth["service"]}).status_code == 422
    assert jobs.run_next(engine, "w") == "succeeded"
    shown = c.get(f"/v1/jobs/{job_id}", headers={"Authorization": auth["service"]}).json()
    assert shown["status"] == "succeeded" and shown["result"]["items"] == 3
    lines = Path(shown["result"]["path"]).read_text().splitlines()
    streamed = c.get("/v1/exports/reviews.jsonl", headers={"Authorization": auth["service"]})
    assert streamed.text.splitlines() == lines
    assert {json.loads(x)["event_id"] for x in lines} == {"ev00000", "ev00001", "ev00002"}
    # a misspelt status filter is an error, not an empty export
    typo = c.get("/v1/exports/reviews.jsonl?status=resolvd",
                 headers={"Authorization": auth["service"]})
    assert typo.status_code == 422 and "needs_adjudication" in typo.text
    queued = c.post("/v1/jobs", json={"kind": "export.reviews", "params": {"status": "x"}},
                    headers={"Authorization": auth["service"]})
    assert queued.status_code == 422 and "params.status" in queued.text


def test_training_job_parameters_are_checked(client: tuple[TestClient, dict[str, str]]
                                             ) -> None:
    c, auth = client
    h = {"Authorization": auth["admin"]}
    bad = c.post("/v1/jobs", json={"kind": "train.reward", "params": {"pairs": "p"}},
                 headers=h)
    assert bad.status_code == 422 and "out" in bad.text
    flag = c.post("/v1/jobs", json={"kind": "train.reward",
                                    "params": {"pairs": "--evil", "out": "o"}}, headers=h)
    assert flag.status_code == 422
    ok = c.post("/v1/jobs", json={"kind": "train.reward",
                                  "params": {"pairs": "p.jsonl", "out": "rm"}}, headers=h)
    assert ok.status_code == 202
    cancel = c.post(f"/v1/jobs/{ok.json()['job_id']}/cancel", headers=h)
    assert cancel.json()["status"] == "cancelled"
    # export parameters are checked when queued too, not first in a worker
    for params, field in [({"status": 123}, "params.status"), ({"bogus": 1}, "params.bogus"),
                          ({"x": float("nan")}, None)]:
        body = json.dumps({"kind": "export.reviews", "params": params})
        refused = c.post("/v1/jobs", content=body, headers={**h, "Content-Type":
                                                            "application/json"})
        assert refused.status_code == 422, refused.text
        if field:
            assert refused.json()["error"]["field"] == field


def test_webhook_endpoints(client: tuple[TestClient, dict[str, str]]) -> None:
    c, auth = client
    h = {"Authorization": auth["admin"]}
    assert c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x",
                                        "event_types": ["item.resolved"]},
                  headers={"Authorization": auth["service"]}).status_code == 403
    made = c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x",
                                        "event_types": ["item.resolved"]}, headers=h)
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    listed = c.get("/v1/webhooks", headers=h).json()
    assert listed[0]["id"] == made.json()["id"] and "secret" not in listed[0]
    assert c.delete(f"/v1/webhooks/{made.json()['id']}", headers=h).status_code == 200
    assert c.get("/v1/webhooks/deliveries", headers=h).json() == []
