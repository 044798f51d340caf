"""An acknowledged drift alert shows who acknowledged it first and when, in the
acknowledgement's answer and in the listing; a later acknowledgement keeps both."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from tests.api.conftest import Api
from tests.drift.test_alert_status_and_bridge_size import stored_alert


def test_the_first_acknowledgement_and_its_time_are_kept_and_shown(api: Api,
                                                                   engine: Engine) -> None:
    alert = stored_alert(engine)
    lead = api.headers("lead")
    first = api.client.post(f"/v1/drift/alerts/{alert}/ack", json={"note": "seen"},
                            headers=lead)
    assert first.status_code == 200, first.text
    at = first.json()["acknowledged_at"]
    assert at is not None and datetime.fromisoformat(at).tzinfo is not None
    again = api.client.post(f"/v1/drift/alerts/{alert}/ack", json={"note": "fixed"},
                            headers=api.headers("admin"))
    assert again.json()["acknowledged_at"] == at
    assert again.json()["acknowledged_by"] == first.json()["acknowledged_by"]
    (listed,) = api.client.get("/v1/drift/alerts", headers=lead).json()
    assert (listed["acknowledged_at"], listed["status"]) == (at, "acknowledged")
    assert api.client.get("/v1/drift/alerts?status=open", headers=lead).json() == []
