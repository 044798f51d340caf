"""The gate page offers a person who already counts toward a required role no sign-off
that would fill nothing, says which role theirs counts toward, and refuses a forced one
(409); a second role that would fill a missing sign-off is still offered."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import grant_signoff
from hilt.gate.store import latest, sign_off
from hilt.store.db import transaction
from tests.gate.tiny_check import stored_tiny_decision
from tests.web.conftest import add_person
from tests.web.test_gate_signoff_page import _forms, _lead

BOTH = ("release_owner", "safety_lead")


@pytest.fixture
def decision(engine: Engine, tmp_path: Path) -> str:
    return stored_tiny_decision(engine, tmp_path,
                                [{"role": "release_owner"}, {"role": "safety_lead"}])


def _yours(page: str) -> str | None:
    found = re.search(r'id="your-signoff">(.*?)</p>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else None


def test_no_second_role_is_offered_to_someone_who_counts(engine: Engine,
                                                         client: TestClient,
                                                         decision: str) -> None:
    csrf = _lead(engine, client, "lou", *BOTH)
    page = client.get(f"/ui/lead/gate/{decision}")
    assert _forms(page.text) == list(BOTH) and _yours(page.text) is None
    signed = client.post(f"/ui/lead/gate/{decision}/signoff", follow_redirects=False,
                         data={"csrf_token": csrf, "role": "safety_lead"})
    assert signed.status_code == 303
    after = client.get(signed.headers["location"])
    assert "sign-off missing: release_owner (0/1)" in after.text
    assert _forms(after.text) == []
    assert (_yours(after.text) or "").startswith("Your sign-off counts toward safety_lead.")
    with transaction(engine) as s:
        newest = latest(s, decision).hash
    forced = client.post(f"/ui/lead/gate/{decision}/signoff",
                         data={"csrf_token": csrf, "role": "release_owner"})
    assert forced.status_code == 409
    assert "lou already counts toward safety_lead" in html.unescape(forced.text)
    assert 'role="alert"' in forced.text
    with transaction(engine) as s:
        assert latest(s, decision).hash == newest


def test_a_second_role_that_fills_a_missing_signoff_is_offered(engine: Engine,
                                                              client: TestClient,
                                                              decision: str) -> None:
    csrf = _lead(engine, client, "ana", *BOTH)
    add_person(engine, "bo", "lead")
    with transaction(engine) as s:
        grant_signoff(s, "bo", "release_owner")
    with transaction(engine) as s:
        sign_off(s, decision, role="release_owner", signed_by="ana")
    with transaction(engine) as s:
        newest = latest(s, decision).hash
    page = client.get(f"/ui/lead/gate/{newest}")
    assert _forms(page.text) == []  # it would fill nothing while ana is the only owner
    assert (_yours(page.text) or "").startswith("Your sign-off counts toward release_owner.")
    with transaction(engine) as s:
        newest = sign_off(s, decision, role="release_owner", signed_by="bo").hash
    page = client.get(f"/ui/lead/gate/{newest}")
    assert _forms(page.text) == ["safety_lead"]  # bo takes release_owner, ana safety_lead
    signed = client.post(f"/ui/lead/gate/{newest}/signoff", follow_redirects=False,
                         data={"csrf_token": csrf, "role": "safety_lead"})
    assert signed.status_code == 303
    with transaction(engine) as s:
        assert latest(s, decision).outcome == "pass"
