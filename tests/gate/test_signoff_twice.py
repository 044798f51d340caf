"""A second sign-off by the same person under the same role is refused (exit 2 on the
command line, 409 over HTTP), naming who and the role; nothing new is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.cli import app
from hilt.errors import Conflict
from hilt.gate.store import latest
from hilt.store.db import transaction
from tests.gate.tiny_check import stored_counts, stored_tiny_decision

# two release owners needed: a repeated sign-off by one would not complete the pair anyway
TWO_OWNERS = [{"role": "release_owner", "count": 2}]


def test_the_cli_refuses_a_repeated_signoff(db_url: str, engine: Engine,
                                            tmp_path: Path) -> None:
    decision = stored_tiny_decision(engine, tmp_path, TWO_OWNERS)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
    runner = CliRunner()
    args = ["gate", "signoff", decision[:10], "--role", "release_owner", "--by", "ana",
            "--db", db_url]
    first = runner.invoke(app, args)
    assert first.exit_code == 1, first.output  # one of two owners
    assert stored_counts(engine) == (2, 1)
    again = runner.invoke(app, args)
    assert isinstance(again.exception, Conflict), again.output
    assert again.exception.exit_code == 2
    assert "ana already signed off as release_owner" in str(again.exception)
    assert stored_counts(engine) == (2, 1)
    with transaction(engine) as s:
        newest = latest(s, decision)
        assert [e["by"] for e in newest.record["inputs"]["facts"]["signoffs"]] == ["ana"]


def test_the_api_answers_409(engine: Engine, tmp_path: Path) -> None:
    decision = stored_tiny_decision(engine, tmp_path, TWO_OWNERS)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lou", role="lead", may_sign=["release_owner"])
        token = create_token(s, role="lead", reviewer_id="lou")[1]
    with TestClient(create_app(engine)) as client:
        def post() -> Any:
            return client.post(f"/v1/gate/decisions/{decision}/signoffs",
                               headers={"Authorization": f"Bearer {token}"},
                               json={"role": "release_owner"})
        assert post().status_code == 201
        refused = post()
    assert refused.status_code == 409, refused.text
    assert "lou already signed off as release_owner" in json.dumps(refused.json())
    assert stored_counts(engine) == (2, 1)
