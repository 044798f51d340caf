"""`hilt gate show` of a superseded record says which record replaced it; a mistyped
decision path is "no such file", not a database lookup; names that differ only in case
are one identity for `reviewer add` as for the sign-off count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer
from hilt.cli import app
from hilt.errors import Conflict, InputError
from hilt.gate.store import CountsForNothing, sign_off
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow
from tests.gate.tiny_check import stored_tiny_decision

TWO_ROLES = [{"role": "release_owner"}, {"role": "safety_lead"}]


def test_show_of_a_superseded_record_names_its_successor(engine: Engine, db_url: str,
                                                         tmp_path: Path) -> None:
    first = stored_tiny_decision(engine, tmp_path, TWO_ROLES)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
        add_reviewer(s, reviewer_id="bo", role="lead", may_sign=["safety_lead"])
    with transaction(engine) as s:
        second = sign_off(s, first, role="release_owner", signed_by="ana").hash
    with transaction(engine) as s:
        third = sign_off(s, first, role="safety_lead", signed_by="bo").hash
    runner = CliRunner()
    old = json.loads(runner.invoke(app, ["gate", "show", first, "--db", db_url]).stdout)
    assert (old["hash"], old["superseded_by"], old["newest"]) == (first, second, third)
    assert old["newest_outcome"] == "pass" and "superseded" in old["note"]
    full = json.loads(runner.invoke(app, ["gate", "show", first[:12], "--full",
                                          "--db", db_url]).stdout)
    assert full["superseded_by"] == second and full["newest"] == third
    newest = json.loads(runner.invoke(app, ["gate", "show", third, "--db", db_url]).stdout)
    assert "superseded_by" not in newest and newest["outcome"] == "pass"


@pytest.mark.parametrize("given", ["out/decison.json", "decison.json", "out/", "a/b"])
def test_a_mistyped_path_is_no_such_file(tmp_path: Path, given: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # no database here: a path must never be looked up as a hash
    url = f"sqlite:///{tmp_path / 'none.db'}"
    for command in (["show"], ["verify"], ["signoff", "--role", "r", "--by", "b"]):
        result = CliRunner().invoke(app, ["gate", command[0], given, *command[1:],
                                          "--db", url])
        assert isinstance(result.exception, InputError), result.output
        assert result.exception.field == "decision"
        assert "no such file" in str(result.exception)
    assert not (tmp_path / "none.db").exists()


def test_reviewer_add_refuses_an_id_differing_only_in_case(engine: Engine,
                                                          db_url: str) -> None:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lou", role="lead")
    for other in ("Lou", "LOU", " lou"):
        with pytest.raises(Conflict, match="only in case or spacing"), \
                transaction(engine) as s:
            add_reviewer(s, reviewer_id=other, role="lead")
    result = CliRunner().invoke(app, ["reviewer", "add", "Lou", "--role", "lead",
                                      "--db", db_url])
    assert result.exit_code != 0 and "only in case or spacing" in (
        result.output + str(result.exception))


def test_a_signoff_refused_for_a_lookalike_name_says_so(engine: Engine,
                                                        tmp_path: Path) -> None:
    decision = stored_tiny_decision(engine, tmp_path, TWO_ROLES)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lou", role="lead", may_sign=["safety_lead"])
        # two identities stored before ids were compared case-insensitively
        s.add(ReviewerRow(id="Lou", display_name="Lou", role="lead", pools=["default"],
                          skills=[], signoff_roles=["release_owner"], status="onboarding",
                          active=True, created_at=utcnow()))
    with transaction(engine) as s:
        sign_off(s, decision, role="safety_lead", signed_by="lou")
    with pytest.raises(CountsForNothing) as caught, transaction(engine) as s:
        sign_off(s, decision, role="release_owner", signed_by="Lou")
    assert "matches the signer 'lou' case-insensitively" in str(caught.value)
