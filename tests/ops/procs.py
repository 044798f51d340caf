"""Starting hilt server and worker processes for the multi-process tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]


def child_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HILT_DATABASE_URL": db_url, "PYTHONPATH": str(REPO),
           "HILT_JOB_MODULES": "tests.ops.job_kinds", "HILT_JOB_LEASE_SECONDS": "3",
           "HILT_JOB_POLL_SECONDS": "0.2", "HILT_PERIOD_WEBHOOKS_DISPATCH": "0.3",
           "HILT_PERIOD_WEBHOOKS_DELIVER": "0.3", "HILT_WEBHOOK_BACKOFF_SECONDS": "0.5"}
    env.update(extra)
    return env


def start_server(db_url: str, port: int, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "hilt.api.asgi:app", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log"],
            env=child_env(db_url, **extra), stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)


def start_worker(db_url: str, log: Path, name: str, **extra: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "hilt", "worker", "--no-periodic", "--poll", "0.2",
             "--name", name], env=child_env(db_url, **extra), stdout=fh,
            stderr=subprocess.STDOUT, cwd=REPO)


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server on {port} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def truncate_all(engine: sa.Engine) -> None:
    from tests.conftest import empty_tables

    empty_tables(engine)
