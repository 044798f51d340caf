"""``POST /v1/datasets`` checks a spec against the published rubrics before selecting, as
``hilt dataset build`` does: a ``label_map`` key that no selected question gives, or a
rubric version with nothing published, is refused with 422 naming the field, and no
version is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.data.versions import list_versions
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction

REPO = Path(__file__).resolve().parents[2]


def _spec(**labels_extra: Any) -> dict[str, Any]:
    return {"name": "refusal", "kind": "classification",
            "labels": {"rubric_ids": ["harm"], "rubric_versions": [1], **labels_extra},
            "classification": {"question_id": "refusal", "text": "response",
                               "label_map": {"full_refusal": "refuse",
                                             "complies": "comply"}}}


@pytest.fixture
def lead(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[tuple[TestClient, dict[str, str]]]:
    monkeypatch.setenv("HILT_HOME", str(tmp_path))
    with transaction(engine) as session:
        publish_rubric(session, load_rubric_file(REPO / "examples" / "rubrics" / "harm.yaml"),
                       actor="lead")
        add_reviewer(session, reviewer_id="lead-1", role="lead")
        token = create_token(session, role="lead", reviewer_id="lead-1")[1]
    with TestClient(create_app(engine)) as client:
        yield client, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("spec, field, words", [
    ({**_spec(), "classification": {
        "question_id": "refusal", "text": "response",
        "label_map": {"full_refusal": "refuse", "complys": "comply"}}},
     "classification.label_map.complys", "'complys' is no label of question 'refusal'"),
    (_spec(rubric_versions=[1, 99]), "labels.rubric_versions.1",
     "no version 99 of 'harm' is published (published: 1)"),
])
def test_dataflow_facts_http_build_refuses_what_the_published_rubrics_do_not_have(
        lead: tuple[TestClient, dict[str, str]], engine: Engine, spec: dict[str, Any],
        field: str, words: str) -> None:
    client, headers = lead
    refused = client.post("/v1/datasets", json={"spec": spec}, headers=headers)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["error"]["field"] == field
    assert words in body["detail"]
    # The spec as it should be passes the check; with no labels in the store it is then
    # refused for selecting nothing, which names no field of the rubric check.
    plain = client.post("/v1/datasets", json={"spec": _spec()}, headers=headers)
    assert plain.status_code == 422, plain.text
    assert "yields no records" in plain.json()["detail"]
    assert plain.json()["error"]["field"] is None
    with transaction(engine) as session:
        assert list_versions(session) == []
