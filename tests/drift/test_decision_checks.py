"""A compatibility decision names what it covers, and what it rests on, correctly or not
at all (SQLite and PostgreSQL): a question neither version has, a withdrawal of nothing,
a mapping given to another kind, or a bridge that does not exist or bridges other
versions is refused naming the option (field over HTTP), and nothing is recorded."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.events.ingest import ingest_events
from hilt.quality.drift.bridge import create_bridge
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_task
from hilt.store import audit
from hilt.store.db import transaction
from tests.drift.answering import answer_everything

from . import scenario
from .test_cli_api import cli


def _three_versions_and_a_bridge(engine: Engine) -> str:
    """simple@1..3, labels under @2 and a bridge @2 -> @3; returns the bridge id."""
    scenario.base(engine)
    ingest_events(engine, [scenario.event(i, scenario.T0) for i in range(6)],
                  actor="service")
    with transaction(engine) as s:
        publish_rubric(s, scenario.rubric("v2"), actor="lead")
        for i in range(6):
            create_task(s, event_id=f"ev{i:05d}", rubric="simple@2", actor="lead",
                        overlap_k=1)
    answer_everything(engine, {f"ev{i:05d}": "safe" for i in range(6)}, "r0")
    with transaction(engine) as s:
        publish_rubric(s, scenario.rubric("v3"), actor="lead")
        made = create_bridge(s, "simple", 2, 3, actor="lead", per_stratum=2, overlap_k=1)
    return str(made["bridge_id"])


def test_decisions_that_would_cover_nothing_are_refused(engine: Engine, db_url: str
                                                         ) -> None:
    bridge = _three_versions_and_a_bridge(engine)
    refused = [
        (("--kind", "accept", "--question", "verdcit"), "--question", "'verdcit'"),
        (("--kind", "withdraw", "--question", "verdict"), "--question",
         "no standing decision"),
        (("--kind", "withdraw",), "--question", "the whole version pair"),
        (("--kind", "relabel", "--mapping", '{"safe": "safe"}'), "--mapping",
         "only a mapping decision"),
        (("--kind", "accept", "--bridge", "bridge_nope"), "--bridge", "does not exist"),
        (("--kind", "accept", "--bridge", bridge), "--bridge", "simple@2 -> @3"),
    ]
    for args, option, words in refused:
        code, out = cli(db_url, "drift", "decide", "simple", "1", "2", "--reason", "r",
                        *args)
        assert code == 2 and f"'{option}'" in out and words in out, (args, out)
    with transaction(engine) as s:
        assert audit.entries(s, action="rubric.compat_decision") == []
    # The same decisions, well named, are recorded; a withdrawal then finds its decision.
    for args in (("--kind", "accept", "--question", "note"),
                 ("--kind", "withdraw", "--question", "note")):
        code, out = cli(db_url, "drift", "decide", "simple", "1", "2", "--reason", "r",
                        *args)
        assert code == 0, out
    code, out = cli(db_url, "drift", "decide", "simple", "2", "3", "--reason", "r",
                    "--kind", "accept", "--bridge", bridge)
    assert code == 0, out


def test_a_decision_on_a_bridge_of_other_versions_is_a_422_over_http(engine: Engine
                                                                    ) -> None:
    bridge = _three_versions_and_a_bridge(engine)
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lead1", role="lead")
        token = create_token(s, role="lead", reviewer_id="lead1")[1]
    http = TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})
    body = {"rubric_id": "simple", "old_version": 1, "new_version": 2, "kind": "accept",
            "reason": "r", "bridge_id": bridge}
    reply = http.post("/v1/drift/decisions", json=body)
    assert reply.status_code == 422 and reply.json()["error"]["field"] == "bridge_id"
    reply = http.post("/v1/drift/decisions", json={**body, "bridge_id": None,
                                                   "question_id": "verdcit"})
    assert reply.status_code == 422 and "verdcit" in reply.text
    reply = http.post("/v1/drift/decisions", json={**body, "old_version": 2,
                                                   "new_version": 3})
    assert reply.status_code == 200, reply.text
