"""POST /v1/gate/decisions/{ref}/signoffs: the signer is the token's identity, and only
under a sign-off role it was granted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token, grant_signoff
from hilt.gate.decision import verify
from hilt.gate.store import ConcurrentWrite, latest
from hilt.store import audit
from hilt.store.db import transaction
from tests.api.conftest import Api
from tests.gate.tiny_check import stored_tiny_decision

PATH = "/v1/gate/decisions/{}/signoffs"


@pytest.fixture
def decision(engine: Engine, tmp_path: Path) -> str:
    """A stored decision that blocks only for its missing release_owner sign-off."""
    return stored_tiny_decision(engine, tmp_path, [{"role": "release_owner"}])


def _grant(engine: Engine, reviewer_id: str, role: str = "release_owner") -> None:
    with transaction(engine) as s:
        grant_signoff(s, reviewer_id, role)


def test_a_granted_lead_signs_as_itself(api: Api, engine: Engine, decision: str) -> None:
    _grant(engine, "lead-1")
    response = api.client.post(PATH.format(decision[:12]), headers=api.headers("lead"),
                               json={"role": "release_owner", "note": "read the report"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["outcome"] == "pass" and body["supersedes"] == decision
    assert body["signed_by"] == "lead-1" and body["reasons"] == []
    with transaction(engine) as s:
        newest = latest(s, decision)
        assert newest.hash == body["decision"] and verify(dict(newest.record)).ok
        (entry,) = newest.record["inputs"]["facts"]["signoffs"]
        assert {k: entry[k] for k in ("role", "by", "note", "via")} == {
            "role": "release_owner", "by": "lead-1", "note": "read the report", "via": "api"}
        (logged,) = audit.entries(s, action="gate.signed_off")
        assert logged.actor == "lead-1" and logged.payload["via"] == "api"


def test_the_signer_cannot_be_named_in_the_body(api: Api, engine: Engine,
                                                decision: str) -> None:
    _grant(engine, "lead-1")
    response = api.client.post(PATH.format(decision), headers=api.headers("lead"),
                               json={"role": "release_owner", "by": "someone-else"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "by"]
    for body in ({}, {"role": ""}, {"role": "release_owner", "note": 5}):
        assert api.client.post(PATH.format(decision), headers=api.headers("lead"),
                               json=body).status_code == 422


def test_refusals_say_why(api: Api, engine: Engine, decision: str) -> None:
    def post(role: str, ref: str = decision, **kw: Any) -> Any:
        return api.client.post(PATH.format(ref), json={"role": role}, **kw)

    assert post("release_owner").status_code == 401
    # a lead without the grant
    refused = post("release_owner", headers=api.headers("lead"))
    assert refused.status_code == 403
    assert "holds no grant to sign off as 'release_owner'" in refused.json()["detail"]
    assert "hilt reviewer grant-signoff lead-1 release_owner" in refused.json()["detail"]
    # roles that may not sign, and a token that belongs to no person
    for role in ("reviewer", "adjudicator", "service"):
        assert post("release_owner", headers=api.headers(role)).status_code == 403
    nobody = post("release_owner", headers=api.headers("admin"))
    assert nobody.status_code == 403 and "no reviewer identity" in nobody.json()["detail"]
    _grant(engine, "lead-1")
    assert post("release_owner", ref="f" * 64, headers=api.headers("lead")).status_code == 404
    short = post("release_owner", ref="abc", headers=api.headers("lead"))
    assert short.status_code == 422
    unasked = post("safety_lead", headers=api.headers("lead"))
    assert unasked.status_code == 422 and unasked.json()["error"]["field"] == "role"
    with transaction(engine) as s:
        assert latest(s, decision).hash == decision  # nothing was signed


def test_an_admin_bound_to_a_granted_identity_signs(api: Api, engine: Engine,
                                                    decision: str) -> None:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="root", role="admin", may_sign=["release_owner"])
        secret = create_token(s, role="admin", reviewer_id="root")[1]
    response = api.client.post(PATH.format(decision), json={"role": "release_owner"},
                               headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 201, response.text
    assert response.json()["signed_by"] == "root"


def test_a_race_lost_on_every_retry_is_a_conflict(api: Api, engine: Engine, decision: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import hilt.gate.store

    calls: list[str] = []

    def always_loses(*_args: Any, **_kw: Any) -> Any:
        calls.append("try")
        raise ConcurrentWrite("another transaction stored it first; retry")

    _grant(engine, "lead-1")
    monkeypatch.setattr(hilt.gate.store, "sign_off", always_loses)
    response = api.client.post(PATH.format(decision), headers=api.headers("lead"),
                               json={"role": "release_owner"})
    assert response.status_code == 409 and "retry" in response.json()["detail"]
    assert len(calls) == 3


def test_the_operation_is_documented(api: Api) -> None:
    schema = api.client.get("/openapi.json", headers=api.headers("lead")).json()
    operation = schema["paths"]["/v1/gate/decisions/{ref}/signoffs"]["post"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    model = schema["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert model["additionalProperties"] is False and model["required"] == ["role"]
