"""POST /v1/datasets/{id}/revoke replies with the REVOKED.json markers it wrote and
those it could not write, as ``hilt dataset revoke`` prints them; the revocation
stands either way, and the same request writes the missing markers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data_factories import make_label
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.data import versions
from hilt.data.build import build_version
from hilt.data.export import export_version
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.store.db import transaction

SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}


def _event(i: int) -> dict[str, Any]:
    return {"id": f"ev{i}", "interaction": {"prompt": f"Question {i}: how do plants in "
                                            f"garden number {i} grow best?"},
            "responses": [{"text": f"Plants {i} need sun and water."},
                          {"text": f"No idea about {i}."}],
            "context": {"subject_id": "amy", "consent": ["train", "review"]}}


def test_revoke_over_http_lists_the_markers_written_and_failed(engine: Engine,
                                                               tmp_path: Path) -> None:
    from hilt.access import add_reviewer, create_token
    from hilt.api.app import create_app

    ingest_events(engine, [_event(0), _event(1)], actor="test")
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(2)]
    with transaction(engine) as session:
        vid = build_version(session, parse_spec(SPEC), actor="tester",
                            label_source=lambda _s, **_k: labels,
                            directory=tmp_path / "ds").version_id
    good, blocked = tmp_path / "team" / "a", tmp_path / "shared" / "b"
    for out in (good, blocked):
        with transaction(engine) as session:
            export_version(session, vid, out)
    (blocked / "REVOKED.json").mkdir()  # a folder holds the marker's name
    with transaction(engine) as session:
        add_reviewer(session, reviewer_id="lead-1", role="lead")
        token = create_token(session, role="lead", reviewer_id="lead-1")[1]
    headers = {"Authorization": f"Bearer {token}"}

    with TestClient(create_app(engine)) as client:
        first = client.post(f"/v1/datasets/{vid}/revoke", json={"reason": "bad labels"},
                            headers=headers)
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["id"], body["revoked"]) == (vid, True)
        assert body["markers_written"] == [str((good / "REVOKED.json").resolve())]
        assert [f["path"] for f in body["markers_failed"]] == \
            [str((blocked / "REVOKED.json").resolve())]
        assert "IsADirectoryError" in body["markers_failed"][0]["error"]
        with transaction(engine) as session:
            assert versions.get_version(session, vid).revoked_at is not None

        (blocked / "REVOKED.json").rmdir()  # the cause is fixed: the same request again
        again = client.post(f"/v1/datasets/{vid}/revoke", json={"reason": "bad labels"},
                            headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["markers_written"] == [str((blocked / "REVOKED.json").resolve())]
        assert again.json()["markers_failed"] == []
        missing = client.post("/v1/datasets/0123456789abcdef/revoke",
                              json={"reason": "bad labels"}, headers=headers)
        assert missing.status_code == 404, missing.text
    assert json.loads((blocked / "REVOKED.json").read_text())["reason"] == "bad labels"
