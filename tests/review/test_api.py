"""HTTP: the review workflow end to end, and who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow

from .helpers import HARM, SAFETY_RULES, event


@dataclass
class Client:
    http: TestClient
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, **kw: object):
        return self.http.request(method, path, headers={
            "Authorization": f"Bearer {self.tokens[who]}"}, **kw)


@pytest.fixture
def client(engine: Engine) -> Iterator[Client]:
    people = {"lead": "lead", "adj": "adjudicator", "r1": "reviewer", "r2": "reviewer",
              "r3": "reviewer"}
    tokens = {}
    with transaction(engine) as s:
        for rid, role in people.items():
            add_reviewer(s, reviewer_id=rid, role=role, pools=["default", "safety"])
            s.flush()
            row = s.get(ReviewerRow, rid)
            assert row is not None
            row.status = "calibrated"
            tokens[rid] = create_token(s, role=role, reviewer_id=rid)[1]
        tokens["service"] = create_token(s, role="service")[1]
    with TestClient(create_app(engine)) as http:
        yield Client(http, tokens)


def _answers(verdict: str) -> dict:
    return {"answers": {"verdict": verdict, "refusal": "complies", "helpfulness": 3},
            "confidence": 0.7, "rationale": f"I think {verdict}", "time_spent_s": 30}


def test_review_workflow_and_role_checks(client: Client) -> None:
    c = client
    rubric = yaml.safe_load(HARM.read_text())
    assert c.call("r1", "POST", "/v1/rubrics", json=rubric).status_code == 403
    assert c.call("lead", "POST", "/v1/rubrics", json=rubric).json()["version"] == 1
    bad = c.call("lead", "POST", "/v1/rubrics", json={**rubric, "questions": []})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "questions"
    rules = yaml.safe_load(SAFETY_RULES.read_text())
    assert c.call("service", "POST", "/v1/escalation/rule-sets",
                  json={"spec": rules}).status_code == 403
    assert c.call("lead", "POST", "/v1/escalation/rule-sets",
                  json={"spec": rules}).json()["version"] == 1
    # The service token ingests; the rules escalate the risky event to the safety pool.
    out = c.call("service", "POST", "/v1/events",
                 json={"events": [event(1, scores={"guardrail": 0.97})]}).json()
    assert out["escalated"] == 1
    # ... but it cannot review.
    assert c.call("service", "POST", "/v1/queue/next").status_code == 403
    backtest = c.call("lead", "POST", "/v1/escalation/backtest?version=1",
                      json={"spec": rules}).json()
    assert backtest["escalated"] == 1

    tasks = {}
    for rid in ("r1", "r2"):
        got = c.call(rid, "POST", "/v1/queue/next").json()["task"]
        tasks[rid] = got["task_id"]
        assert "severity" not in got and got["item"]["responses"]
        assert c.call(rid, "POST", f"/v1/queue/tasks/{got['task_id']}/heartbeat"
                      ).status_code == 200
    assert tasks["r1"] == tasks["r2"]
    tid = tasks["r1"]
    assert c.call("r1", "POST", f"/v1/queue/tasks/{tid}/submit",
                  json=_answers("harmful")).json()["late"] is False
    # An adjudicator is a reviewer too: while the task is under review its case file
    # stays shut, or whoever holds a lease could read the others' answers.
    shut = c.call("adj", "GET", f"/v1/adjudications/{tid}")
    assert shut.status_code == 409 and "I think" not in shut.text
    # Blind review: r2 cannot see r1's work, nor the case file, nor the lead's view.
    assert c.call("r2", "GET", f"/v1/adjudications/{tid}").status_code == 403
    assert c.call("r2", "GET", f"/v1/tasks/{tid}").status_code == 403
    assert c.call("r2", "GET", "/v1/reviews/mine").json() == []
    mine = c.call("r1", "GET", "/v1/reviews/mine").json()
    assert [m["task_id"] for m in mine] == [tid]
    assert "I think" not in str(c.call("r2", "GET", f"/v1/queue/tasks/{tid}").json())
    bad = c.call("r2", "POST", f"/v1/queue/tasks/{tid}/submit",
                 json={"answers": {"verdict": "unknown"}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "verdict"
    both = c.call("r2", "POST", f"/v1/queue/tasks/{tid}/submit?next=true",
                  json=_answers("safe"))  # submit and lease the next task: none left
    assert both.status_code == 200 and both.json()["next"] == {"task": None}
    assert "task_status" not in both.json()
    r3 = c.call("r3", "POST", "/v1/queue/next").json()["task"]
    assert r3["task_id"] == tid
    c.call("r3", "POST", f"/v1/queue/tasks/{tid}/submit", json=_answers("borderline"))

    # Three different verdicts on a sev1 task: an adjudicator decides.
    assert c.call("r1", "GET", "/v1/adjudications").status_code == 403
    waiting = c.call("adj", "GET", "/v1/adjudications").json()
    assert [w["task_id"] for w in waiting] == [tid]
    case = c.call("adj", "GET", f"/v1/adjudications/{tid}").json()
    assert sorted(r["rationale"] for r in case["reviews"]) == [
        "I think borderline", "I think harmful", "I think safe"]
    decision = {"answers": {"verdict": "borderline"}, "rationale": "general info only",
                "cause": "guideline_gap"}
    assert c.call("r1", "POST", f"/v1/adjudications/{tid}", json=decision
                  ).status_code == 403
    assert c.call("adj", "POST", f"/v1/adjudications/{tid}",
                  json={**decision, "cause": "vibes"}).status_code == 422
    assert c.call("adj", "POST", f"/v1/adjudications/{tid}", json=decision
                  ).status_code == 200
    labels = {lb["question_id"]: lb for lb in
              c.call("service", "GET", "/v1/labels?rubric_id=harm").json()}
    assert labels["verdict"]["value"] == "borderline"
    assert labels["verdict"]["provenance"] == "adjudicated"
    assert labels["refusal"]["provenance"] == "unanimous"
    assert len(labels["verdict"]["review_ids"]) == 3
    props = c.call("lead", "GET", "/v1/rubrics/harm/proposals").json()
    assert props[0]["rationale"] == "general info only"
    detail = c.call("lead", "GET", f"/v1/tasks/{tid}").json()
    assert detail["escalation"]["rule"] == "guardrail-high"
    assert detail["status"] == "resolved"
    assert c.call("r1", "GET", "/v1/labels").status_code == 403
    # Gold answers are the calibration key: adjudicators, who also review, never see them.
    c.call("service", "POST", "/v1/events", json={"events": [event(2)]})
    gold = c.call("lead", "POST", "/v1/tasks/gold", json={
        "event_id": event(2)["id"], "rubric": "harm",
        "answers": {"verdict": "safe", "refusal": "complies", "helpfulness": 4}})
    assert gold.status_code == 200, gold.text
    gold_id = gold.json()["task_id"]
    assert c.call("service", "GET", "/v1/labels?provenance=gold").json()
    assert c.call("adj", "GET", "/v1/labels?provenance=gold").json() == []
    assert all(lb["provenance"] != "gold" for lb in c.call("adj", "GET", "/v1/labels").json())
    assert c.call("adj", "GET", f"/v1/adjudications/{gold_id}").status_code == 409


def test_submit_can_lease_the_next_task(client: Client) -> None:
    c = client
    c.call("lead", "POST", "/v1/rubrics", json=yaml.safe_load(HARM.read_text()))
    c.call("lead", "POST", "/v1/escalation/rule-sets",
           json={"spec": yaml.safe_load(SAFETY_RULES.read_text())})
    risky = [event(i, scores={"guardrail": 0.97}) for i in (1, 2)]
    assert c.call("service", "POST", "/v1/events", json={"events": risky}
                  ).json()["escalated"] == 2
    first = c.call("r1", "POST", "/v1/queue/next").json()["task"]
    bad = c.call("r1", "POST", f"/v1/queue/tasks/{first['task_id']}/submit?next=true",
                 json={"answers": {"verdict": "unknown"}})
    assert bad.status_code == 422 and "next" not in bad.json()
    out = c.call("r1", "POST", f"/v1/queue/tasks/{first['task_id']}/submit?next=true",
                 json=_answers("safe")).json()
    assert out["task_id"] == first["task_id"] and out["late"] is False
    nxt = out["next"]["task"]
    assert nxt["task_id"] != first["task_id"] and out["next"]["resumed"] is False
    # The same view a separate request for the lease returns.
    assert nxt == c.call("r1", "POST", "/v1/queue/next").json()["task"]


def test_activation_over_http_names_the_set_it_switched_off(client: Client) -> None:
    c = client
    c.call("lead", "POST", "/v1/rubrics", json=yaml.safe_load(HARM.read_text()))
    rules = yaml.safe_load(SAFETY_RULES.read_text())
    assert c.call("lead", "POST", "/v1/escalation/rule-sets",
                  json={"spec": rules}).json()["version"] == 1
    rule_set = rules["id"]
    off = c.call("lead", "POST", f"/v1/escalation/rule-sets/{rule_set}/0/activate").json()
    assert off == {"id": rule_set, "version": 0, "active": False,
                   "previously_active": f"{rule_set}@1"}
    # nothing is active now: deactivating again changes nothing and says so
    again = c.call("lead", "POST", f"/v1/escalation/rule-sets/{rule_set}/0/activate")
    assert again.status_code == 409
    on = c.call("lead", "POST", f"/v1/escalation/rule-sets/{rule_set}/1/activate").json()
    assert on["active"] is True and on["previously_active"] is None
