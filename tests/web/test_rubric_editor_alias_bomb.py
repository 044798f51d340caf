"""A few hundred bytes of YAML aliases typed into the rubric editor are refused at once
(422, naming the line), for Preview and Publish alike; nothing is published."""

from __future__ import annotations

import html
import time

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.review import rubrics
from hilt.store.db import transaction
from tests.review.test_yaml_alias_bomb import bomb
from tests.web.asgi import sign_in
from tests.web.conftest import add_person


def test_the_editor_refuses_an_alias_bomb(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, add_person(engine, "lead-1", "lead"))
    spec = "id: boom\ntitle: t\nchangelog: c\n" + bomb(6)  # the aliases from line 9 on
    for action in ("preview", "publish"):
        start = time.monotonic()
        page = client.post(f"/ui/lead/rubrics/{action}",
                           data={"csrf_token": csrf, "spec": spec})
        assert time.monotonic() - start < 1
        assert page.status_code == 422, page.text[-2000:]
        text = html.unescape(page.text)
        assert "editor, line 9, field 'a5.0': alias *a4" in text
        assert "expand the document past" in text
    with transaction(engine) as s:
        assert rubrics.latest_version(s, "boom") is None
