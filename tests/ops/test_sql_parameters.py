"""A database error quotes its statement's bound values; neither the JSON log nor a
failed job's error may carry them (a webhook's signing secret, say)."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.access import create_token
from hilt.ops.jobs import JobContext, enqueue, get_job, job_kind, run_next
from hilt.ops.logs import JsonFormatter
from hilt.store.db import make_engine, transaction
from tests.conftest import migrated_sqlite

from .procs import start_server, stop, wait_healthy
from .receiver import free_port

SECRET = "whsec_never_in_a_log_0123"


def test_a_failed_subscription_insert_logs_no_secret(tmp_path: Path) -> None:
    """The real path: `hilt serve`'s app, JSON logs, an insert the database refuses."""
    url = migrated_sqlite(tmp_path / "hilt.db")
    engine = make_engine(url)
    with transaction(engine) as s:
        token = create_token(s, role="lead")[1]
    engine.dispose()
    con = sqlite3.connect(tmp_path / "hilt.db")
    con.execute("CREATE TRIGGER refuse BEFORE INSERT ON webhook_subscriptions "
                "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    con.commit()
    con.close()
    port, log = free_port(), tmp_path / "serve.log"
    server = start_server(url, port, log, HILT_SCHEDULER="0", HILT_LOG_FORMAT="json")
    try:
        wait_healthy(port, server)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/webhooks", timeout=30,
                            headers={"Authorization": f"Bearer {token}"},
                            json={"url": "http://127.0.0.1:9/x", "event_types": ["*"],
                                  "secret": SECRET})
    finally:
        stop(server)
    assert answer.status_code == 500
    text = log.read_text()
    failed = [json.loads(line) for line in text.splitlines()
              if line.startswith("{") and "refused by a trigger" in line]
    assert failed and "parameters hidden" in failed[0]["exception"]
    assert "INSERT INTO webhook_subscriptions" in failed[0]["exception"]
    assert SECRET not in text


@job_kind("test.sql_error", max_attempts=1)
def sql_error(ctx: JobContext, session: Session | None) -> dict[str, Any]:
    """A statement that fails while it carries a secret value."""
    assert session is not None
    session.execute(sa.text("INSERT INTO no_such_table VALUES (:secret)"),
                    {"secret": ctx.params["secret"]})
    return {}


def test_a_failed_job_records_and_logs_no_bound_value(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    with transaction(engine) as s:
        job_id = enqueue(s, "test.sql_error", {"secret": SECRET}, actor="t")
    with caplog.at_level(logging.WARNING, logger="hilt.ops.jobs"):
        assert run_next(engine, "w") == "failed"
    with transaction(engine) as s:
        error = get_job(s, job_id).error
    assert error is not None and "no_such_table" in error
    assert "parameters hidden" in error and SECRET not in error
    logged = [JsonFormatter().format(r) for r in caplog.records]
    assert logged and not any(SECRET in line for line in logged)
