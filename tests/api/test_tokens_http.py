"""API tokens over HTTP (admins only): ``POST /v1/tokens``, ``GET /v1/tokens``,
``POST /v1/tokens/{id}/revoke`` and ``POST /v1/tokens/{id}/expiry``, with the command
line's checks and messages."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

import hilt.access
import hilt.access_tokens
from hilt.access import ROLES, add_reviewer, token_lifetime
from hilt.errors import InputError
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from tests.api.conftest import Api

ROUTES = [("POST", "/v1/tokens"), ("GET", "/v1/tokens"),
          ("POST", "/v1/tokens/tk_x/revoke"), ("POST", "/v1/tokens/tk_x/expiry")]


def _create(api: Api, **body: Any) -> dict[str, Any]:
    resp = api.client.post("/v1/tokens", json=body, headers=api.headers("admin"))
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


def _listed(api: Api) -> dict[str, dict[str, Any]]:
    resp = api.client.get("/v1/tokens", headers=api.headers("admin"))
    assert resp.status_code == 200, resp.text
    return {t["id"]: t for t in resp.json()}


def _own_id(api: Api, role: str) -> str:
    resp = api.client.get("/v1/tokens", headers=api.headers("admin"))
    return next(t["id"] for t in resp.json() if t["role"] == role)


def test_only_admins_manage_tokens(api: Api) -> None:
    for method, path in ROUTES:
        body = {"role": "service"} if path == "/v1/tokens" and method == "POST" else \
            {"expires_in": "1d"}
        assert api.client.request(method, path, json=body).status_code == 401
        for role in set(ROLES) - {"admin"}:
            resp = api.client.request(method, path, json=body, headers=api.headers(role))
            assert resp.status_code == 403, (method, path, role, resp.text)


def test_a_token_made_over_http_is_shown_once_and_works(api: Api, engine: Engine) -> None:
    before = utcnow()
    made = _create(api, role="service", name="scraper", expires_in="30d")
    assert made["token"].startswith("hilt_") and made["status"] == "active"
    assert made["name"] == "scraper" and made["reviewer_id"] is None
    expires = datetime.fromisoformat(made["expires_at"])
    assert before + timedelta(days=30) <= expires <= utcnow() + timedelta(days=30)
    h = {"Authorization": f"Bearer {made['token']}"}
    assert api.client.get("/v1/events", headers=h).status_code == 200
    listed = api.client.get("/v1/tokens", headers=api.headers("admin"))
    assert made["token"] not in listed.text and "hash" not in listed.text
    shown = {t["id"]: t for t in listed.json()}[made["id"]]
    assert shown == {k: v for k, v in made.items() if k != "token"} | {
        "last_used_at": shown["last_used_at"]}
    assert set(shown) >= {"id", "role", "name", "created_at", "status", "expires_at",
                          "last_used_at"}
    with transaction(engine) as s:
        [entry] = audit.entries(s, entity_id=made["id"], action="token.create", limit=1)
    assert entry.actor == "token:" + _own_id(api, "admin")


def test_a_token_without_a_lifetime_never_expires(api: Api) -> None:
    assert _create(api, role="service")["expires_at"] == "never"
    assert _create(api, role="service", expires_in=None)["name"] == "service"
    assert _create(api, role="service", expires_in="never")["expires_at"] == "never"


def test_a_reviewer_token_belongs_to_a_reviewer(api: Api, engine: Engine) -> None:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="reviewer")
    made = _create(api, role="reviewer", reviewer="ana", expires_in="12h")
    assert made["reviewer_id"] == "ana" and made["role"] == "reviewer"
    mine = api.client.get("/v1/reviews/mine",
                          headers={"Authorization": f"Bearer {made['token']}"})
    assert mine.status_code == 200, mine.text


def _refused(api: Api, path: str, body: dict[str, Any], status: int = 422) -> Any:
    resp = api.client.post(path, json=body, headers=api.headers("admin"))
    assert resp.status_code == status, resp.text
    return resp.json()


@pytest.mark.parametrize("body, field", [
    ({"role": "root"}, "role"),
    ({"role": "service", "expires_in": "400d"}, "expires_in"),
    ({"role": "service", "expires_in": "0d"}, "expires_in"),
    ({"role": "service", "expires_in": "soon"}, "expires_in"),
    ({"role": "reviewer"}, "reviewer"),
    ({"role": "reviewer", "reviewer": "a/b"}, "reviewer"),
    ({"role": "lead", "reviewer": "lead-1", "name": "x" * 201}, "name"),
    ({"role": "service", "name": "tab\there"}, "name"),
    ({"role": "adjudicator", "reviewer": "lead-1"}, "role"),
])
def test_bad_input_is_a_422_naming_the_field_and_creates_nothing(
        api: Api, body: dict[str, Any], field: str) -> None:
    before = _listed(api)
    answer = _refused(api, "/v1/tokens", body)
    assert answer["error"]["field"] == field, answer
    assert _listed(api) == before


def test_a_bad_lifetime_is_told_as_on_the_command_line(api: Api) -> None:
    answer = _refused(api, "/v1/tokens", {"role": "service", "expires_in": "400d"})
    with pytest.raises(InputError) as caught:
        token_lifetime("400d")
    assert answer["error"]["reason"] == caught.value.reason
    assert "at most 366d" in answer["detail"]


def test_unknown_body_fields_and_reviewers_are_refused(api: Api) -> None:
    answer = _refused(api, "/v1/tokens", {"role": "service", "expires": "1d"})
    assert answer["detail"][0]["loc"] == ["body", "expires"]
    answer = _refused(api, "/v1/tokens/tk_x/expiry", {"expires_in": "1d", "at": "x"})
    assert answer["detail"][0]["loc"] == ["body", "at"]
    assert _refused(api, "/v1/tokens/tk_x/expiry", {})["detail"][0]["loc"] == [
        "body", "expires_in"]
    answer = _refused(api, "/v1/tokens", {"role": "reviewer", "reviewer": "nobody"}, 404)
    assert answer["detail"] == "reviewer 'nobody' does not exist"


# --- revocation --------------------------------------------------------------------------

def test_revoking_a_token_refuses_it_and_a_second_revocation_changes_nothing(
        api: Api, engine: Engine) -> None:
    made = _create(api, role="service")
    h = {"Authorization": f"Bearer {made['token']}"}
    assert api.client.get("/v1/events", headers=h).status_code == 200
    path = f"/v1/tokens/{made['id']}/revoke"
    first = api.client.post(path, headers=api.headers("admin")).json()
    assert first["changed"] is True and first["own_token"] is False
    assert first["status"] == "revoked" and first["message"] == f"revoked {made['id']}"
    assert api.client.get("/v1/events", headers=h).status_code == 401
    again = api.client.post(path, headers=api.headers("admin")).json()
    assert again["changed"] is False and again["revoked_at"] == first["revoked_at"]
    assert again["message"] == (f"{made['id']} was already revoked at "
                                f"{first['revoked_at']}; nothing changed")
    with transaction(engine) as s:
        assert len(audit.entries(s, entity_id=made["id"], action="token.revoke",
                                 limit=5)) == 1
    resp = api.client.post("/v1/tokens/tk_nope/revoke", headers=api.headers("admin"))
    assert (resp.status_code, resp.json()["detail"]) == (404, "token 'tk_nope' does not exist")


def test_an_admin_may_revoke_their_own_token_and_is_told_so(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_AUTH_CACHE_S", "60")  # remembered, yet refused after
    own = _own_id(api, "admin")
    assert api.client.get("/v1/events", headers=api.headers("admin")).status_code == 200
    resp = api.client.post(f"/v1/tokens/{own}/revoke", headers=api.headers("admin"))
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["own_token"] is True and answer["changed"] is True
    assert "token of this request" in answer["message"]
    refused = api.client.get("/v1/events", headers=api.headers("admin"))
    assert (refused.status_code, refused.json()["detail"]) == (
        401, "invalid or revoked API token")


# --- a new expiry -------------------------------------------------------------------------

def test_a_new_expiry_counts_from_now(api: Api, engine: Engine) -> None:
    made = _create(api, role="service", expires_in="1h")
    path = f"/v1/tokens/{made['id']}/expiry"
    before = utcnow()
    resp = api.client.post(path, json={"expires_in": "2w"}, headers=api.headers("admin"))
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    expires = datetime.fromisoformat(answer["expires_at"])
    assert before + timedelta(weeks=2) <= expires <= utcnow() + timedelta(weeks=2)
    assert answer["previous_expires_at"] == made["expires_at"]
    assert answer["was_expired"] is False
    assert answer["message"] == (f"{made['id']} now expires at {answer['expires_at']} "
                                 f"(before: {made['expires_at']})")
    assert _listed(api)[made["id"]]["expires_at"] == answer["expires_at"]
    never = api.client.post(path, json={"expires_in": "never"}, headers=api.headers("admin"))
    assert never.json()["expires_at"] == "never"
    with transaction(engine) as s:
        entries = audit.entries(s, entity_id=made["id"], action="token.expire", limit=5)
    assert {e.payload["expires_at"] for e in entries} == {answer["expires_at"], None}


def test_an_expired_token_given_a_new_lifetime_works_again(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    made = _create(api, role="service", expires_in="1m")
    h = {"Authorization": f"Bearer {made['token']}"}
    later = utcnow() + timedelta(minutes=2)
    for module in (hilt.access, hilt.access_tokens):
        monkeypatch.setattr(module, "utcnow", lambda: later)
    assert api.client.get("/v1/events", headers=h).status_code == 401
    resp = api.client.post(f"/v1/tokens/{made['id']}/expiry", json={"expires_in": "1d"},
                           headers=api.headers("admin"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["was_expired"] is True
    assert resp.json()["message"].startswith(f"{made['id']} had expired at ")
    assert api.client.get("/v1/events", headers=h).status_code == 200


def test_a_revoked_unknown_or_badly_timed_token_gets_no_new_expiry(api: Api) -> None:
    made = _create(api, role="service", expires_in="1h")
    api.client.post(f"/v1/tokens/{made['id']}/revoke", headers=api.headers("admin"))
    path = f"/v1/tokens/{made['id']}/expiry"
    answer = _refused(api, path, {"expires_in": "1d"}, 409)
    assert answer["detail"].startswith(f"token '{made['id']}' was revoked at ")
    assert _refused(api, "/v1/tokens/tk_nope/expiry", {"expires_in": "1d"}, 404) == {
        "detail": "token 'tk_nope' does not exist"}
    for bad in ("400d", "-1h", "", "1.5d"):
        answer = _refused(api, f"/v1/tokens/{_own_id(api, 'service')}/expiry",
                          {"expires_in": bad})
        assert answer["error"]["field"] == "expires_in", answer
    assert _refused(api, path, {"expires_in": 30})["detail"][0]["loc"] == [
        "body", "expires_in"]
    assert _listed(api)[made["id"]]["expires_at"] == made["expires_at"]


def test_the_openapi_schema_lists_the_token_operations(api: Api) -> None:
    paths = api.client.get("/openapi.json", headers=api.headers("admin")).json()["paths"]
    assert set(paths["/v1/tokens"]) == {"get", "post"}
    assert set(paths["/v1/tokens/{token_id}/revoke"]) == {"post"}
    assert set(paths["/v1/tokens/{token_id}/expiry"]) == {"post"}
    created = paths["/v1/tokens"]["post"]["responses"]["201"]["content"]
    assert created["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenCreated"}
