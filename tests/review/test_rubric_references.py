"""Rubric references (``ID`` or ``ID@VERSION``) are read strictly wherever they are given:
a version in digits other than ASCII ones (``harm@²``, which ``int`` cannot read), an
empty version (``harm@``, which read as the latest) or an empty id is refused naming the
field, and a version past what the store holds is simply not published, never a server
error."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.cli import app
from hilt.errors import InputError, NotFound
from hilt.review.rubrics import parse_ref
from hilt.store.db import make_engine, migrate, transaction

from .helpers import event, ingest, publish_examples

BAD = ["harm@²", "harm@١", "harm@", "@1", "", "harm@+1", "harm@ 1"]


@pytest.mark.parametrize("ref", BAD)
def test_bad_references_are_refused_naming_the_field(ref: str) -> None:
    with pytest.raises(InputError) as err:
        parse_ref(ref, field="b")
    assert err.value.field == "b" and "use ID or ID@VERSION" in err.value.reason


def test_good_references_and_versions_past_the_store() -> None:
    assert parse_ref("harm") == ("harm", None)
    assert parse_ref("harm@2") == ("harm", 2)
    with pytest.raises(NotFound, match="not published"):
        parse_ref("harm@99999999999999999999")


def test_api_refuses_bad_references_with_422_not_500(engine: Engine) -> None:
    publish_examples(engine)
    ingest(engine, [event(1)])
    with transaction(engine) as s:
        token = create_token(s, role="lead")[1]
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(engine), raise_server_exceptions=False) as http:
        for ref in ("harm@²", "harm@"):
            created = http.post("/v1/tasks", headers=headers,
                                json={"event_id": "ev00001", "rubric": ref})
            assert created.status_code == 422, created.text
            assert created.json()["error"]["field"] == "rubric"
            diff = http.get("/v1/rubrics/diff", headers=headers,
                            params={"a": "harm@1", "b": ref})
            assert diff.status_code == 422, diff.text
            assert diff.json()["error"]["field"] == "b"
        huge = http.post("/v1/tasks", headers=headers,
                         json={"event_id": "ev00001", "rubric": "harm@99999999999999"})
        assert huge.status_code == 404 and "not published" in huge.json()["detail"]
        # a good reference still works
        assert http.post("/v1/tasks", headers=headers, json={
            "event_id": "ev00001", "rubric": "harm@1"}).status_code == 200


def test_rule_file_with_a_bad_reference_names_file_line_and_field(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    publish_examples(engine)
    engine.dispose()
    rules = tmp_path / "r.yaml"
    rules.write_text("id: t\ndefaults:\n  rubric: harm\nrules:\n  - name: one\n"
                     "    when: {flag: true}\n    rubric: harm@²\n")
    for command in ("publish", "backtest"):
        result = CliRunner().invoke(app, ["escalation", command, str(rules), "--db", db])
        assert isinstance(result.exception, InputError), result.output
        assert (result.exception.line, result.exception.field) == (7, "rules.0.rubric")
