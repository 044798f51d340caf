"""Signing a gate decision off from its page: a form per missing role the signed-in lead
was granted, CSRF-protected; the signer is the signed-in identity."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import grant_signoff
from hilt.gate.store import latest
from hilt.store.db import transaction
from tests.gate.tiny_check import stored_tiny_decision
from tests.web.asgi import sign_in
from tests.web.conftest import add_person


@pytest.fixture
def decision(engine: Engine, tmp_path: Path) -> str:
    """A stored decision blocked only for a release_owner and a safety_lead sign-off."""
    return stored_tiny_decision(engine, tmp_path,
                                [{"role": "release_owner"}, {"role": "safety_lead"}])


def _forms(page: str) -> list[str]:
    """The roles offered for signing on the page."""
    return re.findall(r'<input type="hidden" name="role" value="([^"]+)">', page)


def _lead(engine: Engine, client: TestClient, reviewer_id: str, *grants: str) -> str:
    token = add_person(engine, reviewer_id, "lead")
    with transaction(engine) as s:
        for role in grants:
            grant_signoff(s, reviewer_id, role)
    return sign_in(client, token)


def test_a_granted_lead_signs_from_the_page(engine: Engine, client: TestClient,
                                           decision: str) -> None:
    csrf = _lead(engine, client, "ana", "safety_lead")
    page = client.get(f"/ui/lead/gate/{decision}")
    assert page.status_code == 200
    # only the role ana was granted, with a labelled note field
    assert _forms(page.text) == ["safety_lead"]
    assert '<label for="signoff-note-1">' in page.text and 'id="signoff-note-1"' in page.text
    assert f'name="csrf_token" value="{csrf}"' in page.text
    signed = client.post(f"/ui/lead/gate/{decision}/signoff", follow_redirects=False,
                         data={"csrf_token": csrf, "role": "safety_lead",
                               "note": "read <the> report"})
    assert signed.status_code == 303, signed.text
    with transaction(engine) as s:
        newest = latest(s, decision)
        (entry,) = newest.record["inputs"]["facts"]["signoffs"]
    assert signed.headers["location"] == f"/ui/lead/gate/{newest.hash}?msg=signed_off"
    assert (entry["by"], entry["role"], entry["note"], entry["via"]) == (
        "ana", "safety_lead", "read <the> report", "api")
    after = client.get(signed.headers["location"])
    assert "Sign-off recorded" in after.text
    assert "read <the> report" in html.unescape(after.text)  # escaped on the page
    assert "read <the>" not in after.text
    assert _forms(after.text) == []  # ana signed; release_owner is not hers to give
    # the superseded record points to the newest and offers no form
    old = client.get(f"/ui/lead/gate/{decision}")
    assert f'href="/ui/lead/gate/{newest.hash}"' in old.text and _forms(old.text) == []


def test_refusals_render_as_pages_with_the_reason(engine: Engine, client: TestClient,
                                                  decision: str) -> None:
    csrf = _lead(engine, client, "bo")
    page = client.get(f"/ui/lead/gate/{decision}")
    assert page.status_code == 200 and _forms(page.text) == []
    refused = client.post(f"/ui/lead/gate/{decision}/signoff",
                          data={"csrf_token": csrf, "role": "release_owner"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    text = html.unescape(refused.text)
    assert "holds no grant to sign off as 'release_owner'" in text
    assert 'role="alert"' in refused.text and "<h1>Gate decision" in refused.text
    unasked = client.post(f"/ui/lead/gate/{decision}/signoff",
                          data={"csrf_token": csrf, "role": "legal"})
    assert unasked.status_code == 422 and "requires no 'legal' sign-off" in \
        html.unescape(unasked.text)
    # without the page's CSRF token nothing is signed
    forged = client.post(f"/ui/lead/gate/{decision}/signoff",
                         data={"role": "release_owner"})
    assert forged.status_code == 403
    with transaction(engine) as s:
        assert latest(s, decision).hash == decision


def test_an_adjudicator_reads_the_page_but_cannot_sign(engine: Engine, client: TestClient,
                                                      decision: str) -> None:
    csrf = sign_in(client, add_person(engine, "adj", "adjudicator"))
    page = client.get(f"/ui/lead/gate/{decision}")
    assert page.status_code == 200 and _forms(page.text) == []
    refused = client.post(f"/ui/lead/gate/{decision}/signoff",
                          data={"csrf_token": csrf, "role": "release_owner"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
