"""A person who already signed a decision may sign it under another role only when that
fills one more required sign-off (each person counts toward one required role): else it
is refused (exit 2 on the command line, 409 over HTTP) and nothing is stored. A first
sign-off by someone new is never refused for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.cli import app
from hilt.gate.store import AlreadySigned, CountsForNothing, counted_role, latest, sign_off
from hilt.store.db import transaction
from tests.gate.tiny_check import stored_counts, stored_tiny_decision

TWO_ROLES = [{"role": "release_owner"}, {"role": "safety_lead"}]
BOTH = ["release_owner", "safety_lead"]


def test_a_second_role_that_fills_nothing_is_refused(engine: Engine,
                                                     tmp_path: Path) -> None:
    decision = stored_tiny_decision(engine, tmp_path, TWO_ROLES)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lou", role="lead", may_sign=BOTH)
    with transaction(engine) as s:
        signed = sign_off(s, decision, role="safety_lead", signed_by="lou")
        assert counted_role(signed.record, "lou") == "safety_lead"
    assert stored_counts(engine) == (2, 1)
    with pytest.raises(CountsForNothing) as caught, transaction(engine) as s:
        sign_off(s, decision, role="release_owner", signed_by="lou")
    assert isinstance(caught.value, AlreadySigned) and caught.value.exit_code == 2
    assert str(caught.value).startswith(
        f"lou already counts toward safety_lead on decision {signed.hash[:12]}; each "
        "person counts toward one required role only")
    assert stored_counts(engine) == (2, 1)


def test_someone_new_frees_the_person_who_signed_first(engine: Engine,
                                                      tmp_path: Path) -> None:
    # ana may sign both roles, bo only as release_owner; ana signed release_owner first
    decision = stored_tiny_decision(engine, tmp_path, TWO_ROLES)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=BOTH)
        add_reviewer(s, reviewer_id="bo", role="lead", may_sign=["release_owner"])
    with transaction(engine) as s:
        sign_off(s, decision, role="release_owner", signed_by="ana")
    with pytest.raises(CountsForNothing, match="until someone else signs as "
                                               "release_owner"), transaction(engine) as s:
        sign_off(s, decision, role="safety_lead", signed_by="ana")
    with transaction(engine) as s:  # fills nothing yet, but is not refused
        bo = sign_off(s, decision, role="release_owner", signed_by="bo")
        assert bo.outcome == "block"
        assert "sign-off missing: safety_lead (0/1)" in bo.record["decision"]["reasons"]
    with transaction(engine) as s:  # now ana's second role fills safety_lead
        done = sign_off(s, decision, role="safety_lead", signed_by="ana")
        assert done.outcome == "pass", done.record["decision"]["reasons"]
        assert counted_role(done.record, "ana") == "safety_lead"
        assert counted_role(done.record, "bo") == "release_owner"
    # a role already filled gains nothing from a person who signed before
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="cy", role="lead", may_sign=BOTH)
        sign_off(s, decision, role="safety_lead", signed_by="cy")
    with pytest.raises(CountsForNothing, match="release_owner has all the sign-offs it "
                                               "needs"), transaction(engine) as s:
        sign_off(s, decision, role="release_owner", signed_by="cy")


def test_the_cli_exits_2_and_the_api_answers_409(db_url: str, engine: Engine,
                                                tmp_path: Path) -> None:
    decision = stored_tiny_decision(engine, tmp_path, TWO_ROLES)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lou", role="lead", may_sign=BOTH)
        token = create_token(s, role="lead", reviewer_id="lou")[1]
    runner = CliRunner()
    first = runner.invoke(app, ["gate", "signoff", decision, "--role", "safety_lead",
                                "--by", "lou", "--db", db_url])
    assert first.exit_code == 1, first.output  # still blocked: no release owner
    second = runner.invoke(app, ["gate", "signoff", decision, "--role", "release_owner",
                                 "--by", "lou", "--db", db_url])
    assert isinstance(second.exception, CountsForNothing), second.output
    assert second.exception.exit_code == 2
    with TestClient(create_app(engine)) as client:
        refused: Any = client.post(f"/v1/gate/decisions/{decision}/signoffs",
                                   headers={"Authorization": f"Bearer {token}"},
                                   json={"role": "release_owner"})
    assert refused.status_code == 409, refused.text
    assert "lou already counts toward safety_lead" in json.dumps(refused.json())
    assert stored_counts(engine) == (2, 1)
    with transaction(engine) as s:
        assert [e["role"] for e in latest(s, decision).record["inputs"]["facts"]
                ["signoffs"]] == ["safety_lead"]
