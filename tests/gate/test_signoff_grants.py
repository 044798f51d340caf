"""Sign-off grants: only an identity granted a sign-off role may sign under it; grants are
validated and audited; records signed before grants existed keep verifying."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer, grant_signoff, revoke_signoff
from hilt.cli import app
from hilt.errors import InputError, NotFound
from hilt.gate.decision import add_signoff, verify
from hilt.gate.store import SignerRefused, latest, sign_off, store_decision
from hilt.store import audit
from hilt.store.db import make_engine, migrate, session_factory, transaction
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.gate import GateSignoffRow
from tests.gate.tiny_check import tiny_record

TWO_ROLES = [{"role": "release_owner"}, {"role": "safety_lead"}]


def test_a_lead_signs_only_under_a_granted_role(engine: Engine, tmp_path: Path) -> None:
    record = tiny_record(tmp_path, TWO_ROLES)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
        add_reviewer(s, reviewer_id="bo", role="lead")
        first = store_decision(s, record, actor="ci").hash
    # an active lead without the grant is refused, with the command that grants it
    for signer, role in [("ana", "safety_lead"), ("bo", "release_owner")]:
        with pytest.raises(SignerRefused) as caught, transaction(engine) as s:
            sign_off(s, first, role=role, signed_by=signer)
        assert caught.value.field == "--role"
        assert f"hilt reviewer grant-signoff {signer} {role}" in str(caught.value)
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(GateSignoffRow)).scalar() == 0
        signed = sign_off(s, first, role="release_owner", signed_by="ana", note="ok")
        assert signed.record["inputs"]["facts"]["signoffs"][0]["via"] == "cli"
    with transaction(engine) as s:
        grant_signoff(s, "bo", "safety_lead", actor="ana")
    with transaction(engine) as s:
        final = sign_off(s, first, role="safety_lead", signed_by="bo")
        assert final.outcome == "pass"
        entry = audit.entries(s, action="gate.signed_off", limit=1)[0]
        assert entry.actor == "bo" and entry.payload["via"] == "cli"
    # a revoked grant refuses new sign-offs; the records already signed still verify
    with transaction(engine) as s:
        revoke_signoff(s, "bo", "safety_lead", actor="ana")
    with transaction(engine) as s:
        assert verify(dict(latest(s, first).record)).ok
        assert audit.verify(s).ok


def test_grants_are_validated_and_audited(engine: Engine) -> None:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=[" safety_lead ", "x"])
        add_reviewer(s, reviewer_id="rex", role="reviewer")
    with transaction(engine) as s:
        assert s.get(ReviewerRow, "ana").signoff_roles == ["safety_lead", "x"]  # stripped
        assert s.get(ReviewerRow, "rex").signoff_roles == []
    bad = [("", "non-blank"), ("  ", "non-blank"), ("a\x00b", "control characters"),
           ("r" * 101, "at most 100")]
    for role, words in bad:
        with pytest.raises(InputError, match=words), transaction(engine) as s:
            grant_signoff(s, "ana", role)
        with pytest.raises(InputError, match=words), transaction(engine) as s:
            add_reviewer(s, reviewer_id="new", role="lead", may_sign=[role])
    # a reviewer may never sign: a grant would look like a permission it is not
    with pytest.raises(InputError, match="only lead or admin") as caught, \
            transaction(engine) as s:
        grant_signoff(s, "rex", "safety_lead")
    assert caught.value.field == "reviewer"
    with pytest.raises(InputError, match="only lead or admin"), transaction(engine) as s:
        add_reviewer(s, reviewer_id="rita", role="reviewer", may_sign=["safety_lead"])
    with pytest.raises(NotFound), transaction(engine) as s:
        grant_signoff(s, "nobody", "safety_lead")
    with transaction(engine) as s:
        added = grant_signoff(s, "ana", "release_owner", actor="lou")
        again = grant_signoff(s, "ana", "release_owner", actor="lou")
    assert added["changed"] and not again["changed"]
    assert added["signoff_roles"] == ["release_owner", "safety_lead", "x"]
    # revoking a role not held is refused, so a typo is not taken for a revocation
    with pytest.raises(InputError, match="holds no 'safety-lead' sign-off grant"), \
            transaction(engine) as s:
        revoke_signoff(s, "ana", "safety-lead")
    with transaction(engine) as s:
        assert revoke_signoff(s, "ana", "x", actor="lou")["signoff_roles"] == \
            ["release_owner", "safety_lead"]
    with transaction(engine) as s:
        entries = audit.entries(s, entity_id="ana", limit=10)
        assert [(e.action, e.actor, e.payload.get("role")) for e in entries[:2]] == [
            ("reviewer.revoke_signoff", "lou", "x"),
            ("reviewer.grant_signoff", "lou", "release_owner")]  # the no-op wrote nothing
        assert entries[-1].action == "reviewer.create"
        assert entries[-1].payload["signoff_roles"] == ["safety_lead", "x"]
        assert audit.verify(s).ok


def test_reviewer_commands_grant_and_revoke(db_url: str) -> None:
    runner = CliRunner()
    added = runner.invoke(app, ["reviewer", "add", "bo", "--role", "lead", "--may-sign",
                                "safety_lead", "--may-sign", "release_owner", "--db", db_url])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["signoff_roles"] == ["release_owner", "safety_lead"]
    granted = runner.invoke(app, ["reviewer", "grant-signoff", "bo", "legal", "--db", db_url])
    assert granted.exit_code == 0, granted.output
    assert json.loads(granted.stdout)["signoff_roles"] == ["legal", "release_owner",
                                                           "safety_lead"]
    revoked = runner.invoke(app, ["reviewer", "revoke-signoff", "bo", "safety_lead",
                                  "--db", db_url])
    assert json.loads(revoked.stdout)["signoff_roles"] == ["legal", "release_owner"]
    missing = runner.invoke(app, ["reviewer", "revoke-signoff", "bo", "safety_lead",
                                  "--db", db_url])
    assert isinstance(missing.exception, InputError), missing.output
    refused = runner.invoke(app, ["reviewer", "add", "rex", "--may-sign", "legal",
                                  "--db", db_url])
    assert isinstance(refused.exception, InputError), refused.output
    assert "only lead or admin" in str(refused.exception)


def test_records_signed_before_grants_recompute_unchanged(db_url: str, engine: Engine,
                                                         tmp_path: Path) -> None:
    record = tiny_record(tmp_path, TWO_ROLES)
    # an entry as sign-offs were written before they said how they came (no "via")
    old_entry = {"role": "release_owner", "by": "ana", "note": "",
                 "at": "2025-01-01T00:00:00+00:00"}
    old = add_signoff(record, old_entry, "2025-01-01T00:00:00+00:00")
    assert verify(old).ok
    assert old["decision"]["signoffs"]["present"] == [old_entry]
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
        add_reviewer(s, reviewer_id="bo", role="lead", may_sign=["safety_lead"])
        first = store_decision(s, record, actor="ci").hash
        signed = sign_off(s, first, role="release_owner", signed_by="ana")
        both = sign_off(s, first, role="safety_lead", signed_by="bo")
        entries = both.record["inputs"]["facts"]["signoffs"]
        # the entry carried forward is the one stored before, key for key
        assert entries[0] == signed.record["inputs"]["facts"]["signoffs"][0]
        assert [e["via"] for e in entries] == ["cli", "cli"]
        assert both.outcome == "pass" and verify(dict(both.record)).ok
    result = CliRunner().invoke(app, ["gate", "verify", both.hash, "--db", db_url])
    assert result.exit_code == 0, result.output


def test_upgrade_gives_existing_identities_no_grant(tmp_path: Path) -> None:
    from alembic import command

    from hilt.store.db import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}", create=True)
    command.upgrade(alembic_config(engine), "0013_web_sessions")
    with session_factory(engine).begin() as s:
        s.execute(sa.text("INSERT INTO reviewers (id, display_name, role, pools, skills, "
                          "status, active, created_at) VALUES ('ana', 'ana', 'lead', "
                          "'[\"default\"]', '[]', 'calibrated', 1, '2025-01-01 00:00:00')"))
    migrate(engine)
    with transaction(engine) as s:
        assert s.get(ReviewerRow, "ana").signoff_roles == []
        grant_signoff(s, "ana", "release_owner")
    with transaction(engine) as s:
        assert s.get(ReviewerRow, "ana").signoff_roles == ["release_owner"]
    command.downgrade(alembic_config(engine), "0013_web_sessions")
    with engine.connect() as conn:
        columns = [c["name"] for c in sa.inspect(conn).get_columns("reviewers")]
    assert "signoff_roles" not in columns
    engine.dispose()
