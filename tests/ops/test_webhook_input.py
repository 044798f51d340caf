"""A subscription too long for its columns is refused naming the field, on both databases."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.ops import install, webhooks
from hilt.store.db import transaction

from .climain import run_main


@pytest.mark.parametrize(("field", "body"), [
    ("description", {"url": "http://127.0.0.1:9/x", "description": "d" * 501}),
    ("url", {"url": "http://127.0.0.1:9/" + "p" * 2000}),
])
def test_an_overlong_url_or_description_is_a_422_naming_it(
        engine: Engine, field: str, body: dict[str, str]) -> None:
    with transaction(engine) as s:
        token = create_token(s, role="admin")[1]
    app = install(create_app(engine), scheduler=False, json_logs=False)
    with TestClient(app) as client:
        answer = client.post("/v1/webhooks", json={**body, "event_types": ["*"]},
                             headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == field
    with transaction(engine) as s:  # neither stored (SQLite) nor a database error
        assert webhooks.list_subscriptions(s) == []


def test_the_command_names_the_option(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    code, out = run_main("webhook", "add", "http://127.0.0.1:9/x", "-e", "*",
                         "--description", "d" * 501, "--db", url)
    assert code == 2
    assert out.strip() == ("error: field '--description': at most 500 characters, "
                           "got 501")
    code, _ = run_main("webhook", "add", "http://127.0.0.1:9/x", "-e", "*",
                       "--description", "d" * 500, "--db", url)
    assert code == 0
