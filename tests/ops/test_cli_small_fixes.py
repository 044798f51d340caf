"""Small operator-facing behaviours: the database URL schemes hilt accepts or names,
what ``hilt init`` prints, a token revoked twice, and ``hilt serve`` stopped by
SIGTERM (a service manager's stop)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, empty_pg_schema

from .climain import run_main
from .helpers import migrated_sqlite
from .procs import REPO, child_env, wait_healthy
from .receiver import free_port


@pytest.mark.parametrize("url", ["mysql://root@127.0.0.1/hilt",
                                 "postgresql+psycopg2://u@127.0.0.1/hilt", "hilt.db"])
def test_an_unsupported_database_is_one_line(url: str) -> None:
    code, out = run_main("audit", "verify", "--db", url)
    scheme = url.split("://")[0] + "://" if "://" in url else "hilt.db://"
    assert code == 2, out
    assert out.splitlines() == [
        f"error: field '--db': unsupported database URL scheme {scheme!r}; hilt works with "
        "sqlite:///FILE and postgresql://USER@HOST/DB"]


def test_init_accepts_postgres_urls_and_prints_them_as_given_password_masked() -> None:
    plain = sa.engine.make_url(PG_URL).set(drivername="postgres", password="s3cret")
    with empty_pg_schema("hilt_url") as schema:
        given = plain.render_as_string(hide_password=False) + \
            f"?options=-csearch_path%3D{schema}"
        code, out = run_main("init", "--db", given)
        assert code == 0, out
        shown = plain.render_as_string(hide_password=True)
        assert out.startswith(f"database ready at {shown}?options="), out
        assert "s3cret" not in out and "+psycopg" not in out


def test_revoking_a_token_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "h.db")
    code, out = run_main("token", "create", "--role", "service", "--db", url)
    assert code == 0, out
    token_id = json.loads(out)["id"]
    assert run_main("token", "revoke", token_id, "--db", url) == (0, f"revoked {token_id}\n")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        first = conn.execute(sa.text("SELECT revoked_at FROM api_tokens")).scalar_one()
        audited = conn.execute(sa.text(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'token.revoke'")).scalar_one()
    code, out = run_main("token", "revoke", token_id, "--db", url)
    assert code == 0, out
    assert out.startswith(f"{token_id} was already revoked at ")
    assert out.rstrip().endswith("; nothing changed")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT revoked_at FROM api_tokens")).scalar_one() \
            == first
        assert conn.execute(sa.text(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'token.revoke'")).scalar_one() \
            == audited == 1
    engine.dispose()


def test_serve_stopped_by_sigterm_exits_0_with_only_json_log_lines(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "h.db")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hilt", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=child_env(url, HILT_LOG_FORMAT="json"))
    try:
        wait_healthy(port, proc)  # type: ignore[arg-type]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = err.splitlines()
    assert lines and all(line.startswith("{") for line in lines), err
    assert [json.loads(line) for line in lines][-1]["message"].startswith("Finished server")
