"""The core CLI end to end in subprocesses: exit codes and messages users see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def hilt(*args: str, db: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HILT_DATABASE_URL=db)
    return subprocess.run([sys.executable, "-m", "hilt", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.mark.slow
def test_init_ingest_verify_and_tokens(db: str, tmp_path: Path) -> None:
    assert hilt("init", db=db, cwd=tmp_path).returncode == 0
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps({"interaction": {"prompt": "hi"}, "responses": [{"text": "yo"}]})
                 + "\n")
    out = hilt("ingest", str(f), db=db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["new"] == 1
    assert json.loads(hilt("ingest", str(f), db=db, cwd=tmp_path).stdout)["new"] == 0
    tok = hilt("token", "create", "--role", "service", db=db, cwd=tmp_path)
    assert json.loads(tok.stdout)["token"].startswith("hilt_")
    rev = hilt("token", "create", "--role", "reviewer", db=db, cwd=tmp_path)
    assert rev.returncode == 2 and "reviewer identity" in rev.stderr
    verify = hilt("audit", "verify", db=db, cwd=tmp_path)
    assert verify.returncode == 0 and json.loads(verify.stdout)["entries"] == 3


def test_bad_line_exits_2_naming_file_line_field(db: str, tmp_path: Path) -> None:
    hilt("init", db=db, cwd=tmp_path)
    f = tmp_path / "bad.jsonl"
    f.write_text('{"interaction": {"prompt": "ok"}}\n{"interaction": {"prompt": 5}}\n')
    out = hilt("ingest", str(f), db=db, cwd=tmp_path)
    assert out.returncode == 2
    assert f"{f}, line 2, field 'interaction.prompt'" in out.stderr
    assert "Traceback" not in out.stderr


def test_schema_event_prints_json_schema(db: str, tmp_path: Path) -> None:
    out = hilt("schema", "event", db=db, cwd=tmp_path)
    assert json.loads(out.stdout)["title"] == "FeedbackEvent"


def test_a_database_without_schema_or_server_exits_2_with_one_line(db: str,
                                                                    tmp_path: Path) -> None:
    out = hilt("gate", "verify", "deadbeef", db=db, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "no hilt schema" in out.stderr and "hilt init" in out.stderr
    down = hilt("queue", "stats", db="postgresql://nobody@127.0.0.1:9/x", cwd=tmp_path)
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert down.stderr.startswith("error: database:")
