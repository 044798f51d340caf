"""The naive baselines differ from hilt only in the claim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import queue as queue_bench
from hilt.review import work
from hilt.review.queue import QueueConfig
from hilt.store.db import make_engine

REPO = Path(__file__).resolve().parents[2]


def _counting_submit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = work.submit

    def submit(engine: Any, task_id: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(task_id)
        return real(engine, task_id, *args, **kwargs)

    monkeypatch.setattr(work, "submit", submit)
    return calls


def test_naive_queue_method_submits_through_hilts_submit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    queue_bench._prepare(url, 4, 1)
    calls = _counting_submit(monkeypatch)
    engine = make_engine(url)
    claims: list[float] = []
    cycles, conflicts = queue_bench._loop(engine, "w00", "naive",
                                          QueueConfig(gold_rate=0.0, resume_active=False),
                                          claims, [])
    engine.dispose()
    assert cycles == 4 and conflicts == 0
    assert len(calls) == 4


def test_naive_http_server_submits_through_hilts_submit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from benchmarks.http import prepare, seed_tasks

    url = f"sqlite:///{tmp_path / 'h.db'}"
    engine, tokens, _ = prepare(url, 1)
    seed_tasks(engine, 2, "t", overlap=1)
    monkeypatch.setenv("HILT_DATABASE_URL", url)
    sys.modules.pop("benchmarks.naive_http", None)
    import benchmarks.naive_http as naive_http

    calls = _counting_submit(monkeypatch)
    client = TestClient(naive_http.app)
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    task = client.post("/v1/queue/next", headers=headers).json()["task"]
    response = client.post(f"/v1/queue/tasks/{task['task_id']}/submit",
                           json={"answers": {"verdict": "safe"}}, headers=headers)
    assert response.status_code == 200 and response.json()["review_id"]
    assert calls == [task["task_id"]]
    naive_http._engine.dispose()
    engine.dispose()
    sys.modules.pop("benchmarks.naive_http", None)


def test_naive_http_server_loads_the_aggregator_at_start(tmp_path: Path) -> None:
    """A fresh worker must not import it during a measured phase (on a k-th review)."""
    code = ("import sys, benchmarks.naive_http; "
            "print('hilt.quality.store' in sys.modules, "
            "'hilt.quality.aggregation_store' in sys.modules)")
    env = {**os.environ, "HILT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True", "True"]
