"""Two API server processes on one PostgreSQL schema: reviewers' claims, background
jobs and webhooks are not duplicated. Slow: real uvicorn subprocesses."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hilt.access import create_token
from hilt.ops import jobs, webhooks
from hilt.store import audit
from hilt.store.db import make_engine, transaction
from hilt.store.tables.ops import JobRow

from . import job_kinds  # noqa: F401  (registers the test kinds)
from .helpers import reviewers, workload
from .procs import start_server, stop, truncate_all, wait_healthy
from .receiver import Receiver, free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
SECRET = "whsec_two_servers_0123456789"


@pytest.fixture(scope="module")
def cluster(_postgres_schema: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Any]]:
    from tests.conftest import pg_url_for

    url = pg_url_for(_postgres_schema)
    engine = make_engine(url)
    truncate_all(engine)
    receiver = Receiver(SECRET).start()
    logs = tmp_path_factory.mktemp("servers")
    ports = [free_port(), free_port()]
    procs = [start_server(url, port, logs / f"server{i}.log") for i, port in enumerate(ports)]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_healthy(port, proc)
        yield {"engine": engine, "ports": ports, "receiver": receiver, "logs": logs,
               "pids": {proc.pid for proc in procs}}
    finally:
        for proc in procs:
            stop(proc)
        receiver.stop()
        engine.dispose()


def _work(base_urls: list[str], token: str, cycles: list[str], errors: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as client:
        for n in range(10_000):
            base = base_urls[n % 2]  # alternate between the two servers
            got = client.post(f"{base}/v1/queue/next", headers=headers)
            if got.status_code != 200:
                errors.append(f"next {got.status_code} {got.text[:200]}")
                return
            task = got.json()["task"]
            if task is None:
                return
            task_id = task["task_id"]
            for _ in range(100):
                sent = client.post(f"{base}/v1/queue/tasks/{task_id}/submit",
                                   headers=headers, json={"answers": {"verdict": "safe"}})
                # The API commits a request's transaction after its response is sent
                # (FastAPI's default dependency scope), so the claim may not be
                # visible yet: wait for it instead of failing.
                if sent.status_code != 404:
                    break
                time.sleep(0.01)
            if sent.status_code == 409 and "already submitted" in sent.text:
                continue  # the same race: next-task resumed a lease whose review was
                # submitted but not yet committed
            if sent.status_code != 200:
                errors.append(f"submit {sent.status_code} {sent.text[:200]}")
                return
            cycles.append(task_id)


def test_two_servers_share_claims_jobs_and_webhooks(cluster: dict[str, Any]) -> None:
    engine, receiver = cluster["engine"], cluster["receiver"]
    tokens = reviewers(engine, [f"rev{i}" for i in range(6)], tokens=True)
    with transaction(engine) as s:
        webhooks.subscribe(s, url=receiver.url, secret=SECRET, actor="lead",
                           event_types=["item.resolved", "task.escalated"])
    task_ids = workload(engine, 30, overlap=2)
    with transaction(engine) as s:
        job_ids = [jobs.enqueue(s, "test.slow_write", {"reviewer_id": f"made-by-job-{i}",
                                                       "sleep_s": 0.2}, actor="test")
                   for i in range(6)]
    bases = [f"http://127.0.0.1:{p}" for p in cluster["ports"]]
    cycles: list[str] = []
    errors: list[str] = []
    threads = [threading.Thread(target=_work, args=(bases, tok, cycles, errors))
               for tok in tokens.values()]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert errors == []
    assert len(cycles) == 60  # 30 tasks x overlap 2, each review once

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with transaction(engine) as s:
            done = s.execute(sa.select(sa.func.count()).select_from(JobRow).where(
                JobRow.id.in_(job_ids), JobRow.status == "succeeded")).scalar_one()
        if done == len(job_ids) and len(receiver.received) >= 60:
            break
        time.sleep(0.3)
    with engine.connect() as conn:
        over = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT t.id FROM review_tasks t JOIN reviews r "
            "ON r.task_id = t.id GROUP BY t.id, t.overlap_k "
            "HAVING count(*) > t.overlap_k) x")).scalar_one()
        twice = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT task_id, reviewer_id FROM reviews "
            "GROUP BY task_id, reviewer_id HAVING count(*) > 1) x")).scalar_one()
        resolved = conn.execute(sa.text(
            "SELECT count(*) FROM review_tasks WHERE status = 'resolved'")).scalar_one()
    assert (over, twice, resolved) == (0, 0, 30)

    with transaction(engine) as s:
        rows = s.execute(sa.select(JobRow).where(JobRow.id.in_(job_ids))).scalars().all()
        assert all(r.status == "succeeded" and r.attempts == 1 for r in rows)
        assert audit.verify(s).ok
    # The jobs ran in the servers' embedded workers (names are host:pid/thread).
    ran_by = {int(r.workers[0].split("/")[0].rsplit(":", 1)[1]) for r in rows}
    assert ran_by <= cluster["pids"]

    by_seq = Counter(r["audit"]["seq"] for r in receiver.received)
    assert max(by_seq.values()) == 1  # no event delivered twice
    types = Counter(r["type"] for r in receiver.received)
    assert types == {"item.resolved": 30, "task.escalated": 30}
    assert receiver.bad_signatures == 0
    assert {r["entity"]["id"] for r in receiver.received
            if r["type"] == "item.resolved"} == set(task_ids)


def test_metrics_agree_across_servers(cluster: dict[str, Any]) -> None:
    engine = cluster["engine"]
    with transaction(engine) as s:
        token = create_token(s, role="service")[1]
    texts = [httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=10,
                       headers={"Authorization": f"Bearer {token}"}).text
             for p in cluster["ports"]]
    pick = [sorted(line for line in t.splitlines()
                   if line.startswith(("hilt_tasks", "hilt_webhook", "hilt_queue")))
            for t in texts]
    assert pick[0] == pick[1] and pick[0]
