"""HTTP: the review workflow end to end, and who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.review import tasks
from hilt.review.queue import QueueConfig, claim_next
from hilt.review.reviews import Submission, submit_review
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewRow, ReviewTaskRow
from tests.api.conftest import calibrated

from .helpers import HARM, SAFETY_RULES, event

T0 = datetime(2030, 1, 1, tzinfo=UTC)


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
    with transaction(engine) as s:
        tokens = calibrated(s, people.items(), pools=["default", "safety"])
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
              c.call("service", "GET", "/v1/labels?rubric_id=harm").json()["labels"]}
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
    assert c.call("service", "GET", "/v1/labels?provenance=gold").json()["labels"]
    gold_page = c.call("adj", "GET", "/v1/labels?provenance=gold").json()
    assert gold_page["labels"] == []
    assert gold_page["withheld"]["gold"] == gold_page["withheld"]["count"] > 0
    assert all(lb["provenance"] != "gold"
               for lb in c.call("adj", "GET", "/v1/labels").json()["labels"])
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


def _one_task(c: Client) -> None:
    c.call("lead", "POST", "/v1/rubrics", json=yaml.safe_load(HARM.read_text()))
    c.call("lead", "POST", "/v1/escalation/rule-sets",
           json={"spec": yaml.safe_load(SAFETY_RULES.read_text())})
    assert c.call("service", "POST", "/v1/events", json={
        "events": [event(1, scores={"guardrail": 0.97})]}).json()["escalated"] == 1


def test_a_suspended_reviewer_loses_the_lease_and_cannot_submit(client: Client) -> None:
    c = client
    _one_task(c)
    task = c.call("r1", "POST", "/v1/queue/next").json()["task"]["task_id"]
    assert c.call("lead", "POST", "/v1/quality/reviewers/r1/status",
                  json={"status": "suspended", "reason": "spot check"}).status_code == 200
    beat = c.call("r1", "POST", f"/v1/queue/tasks/{task}/heartbeat")
    assert beat.status_code == 403 and "suspended" in beat.json()["detail"]
    sent = c.call("r1", "POST", f"/v1/queue/tasks/{task}/submit", json=_answers("safe"))
    assert sent.status_code == 403 and "suspended" in sent.json()["detail"]
    assert c.call("lead", "GET", f"/v1/tasks/{task}").json()["reviews_done"] == 0
    # the slot went back: another reviewer gets the task
    assert c.call("r2", "POST", "/v1/queue/next").json()["task"]["task_id"] == task


def test_deactivating_a_reviewer_ends_tokens_and_leases(client: Client,
                                                        engine: Engine) -> None:
    c = client
    _one_task(c)
    task = c.call("r1", "POST", "/v1/queue/next").json()["task"]["task_id"]
    assert c.call("r2", "POST", "/v1/reviewers/r1/deactivate").status_code == 403
    out = c.call("lead", "POST", "/v1/reviewers/r1/deactivate", json={"reason": "left"})
    assert out.status_code == 200, out.text
    assert out.json()["leases_ended"] == 1 and out.json()["active"] is False
    assert c.call("r1", "POST", "/v1/queue/next").status_code == 401
    assert c.call("r2", "POST", "/v1/queue/next").json()["task"]["task_id"] == task
    with transaction(engine) as s:
        entry = audit.entries(s, action="reviewer.deactivate")[0]
        assert entry.entity_id == "r1" and entry.payload["reason"] == "left"
    assert c.call("lead", "POST", "/v1/reviewers/nobody/deactivate").status_code == 404
    back = c.call("lead", "POST", "/v1/reviewers/r1/reactivate")
    assert back.status_code == 200 and back.json()["active"] is True
    assert c.call("r1", "GET", "/v1/reviews/mine").status_code == 200


def _labels_of_many_tasks(c: Client, engine: Engine, n: int) -> None:
    """``n`` resolved tasks, four final labels each (the three answers and the
    unticked ``issues`` checklist), all decided at one instant."""
    c.call("lead", "POST", "/v1/rubrics", json=yaml.safe_load(HARM.read_text()))
    c.call("service", "POST", "/v1/events", json={"events": [event(i) for i in range(n)]})
    with transaction(engine) as s:
        for i in range(n):
            tid = tasks.create_task(s, event_id=event(i)["id"], rubric="harm",
                                    actor="lead", overlap_k=1, now=T0)
            claim = claim_next(s, "r1", now=T0, config=QueueConfig(gold_rate=0))
            assert claim is not None and claim.task_id == tid
            submit_review(s, tid, "r1", Submission(_answers("safe")["answers"]), now=T0)


def test_labels_page_through_with_a_cursor(client: Client, engine: Engine) -> None:
    c = client
    _labels_of_many_tasks(c, engine, 4)  # 16 labels with the same decided_at
    seen: list[str] = []
    after = None
    for _ in range(10):
        query = "/v1/labels?limit=5" + (f"&after={after}" if after else "")
        page = c.call("service", "GET", query)
        assert page.status_code == 200, page.text
        seen += [lb["label_id"] for lb in page.json()["labels"]]
        after = page.json()["next_after"]
        if after is None:
            break
    assert len(seen) == len(set(seen)) == 16
    every = c.call("service", "GET", "/v1/labels").json()
    assert [lb["label_id"] for lb in every["labels"]] == seen and every["next_after"] is None
    later = c.call("service", "GET", "/v1/labels?since=2031-01-01T00:00:00Z").json()
    assert later["labels"] == []
    assert len(c.call("service", "GET", "/v1/labels?since=2029-12-31T00:00:00").json()[
        "labels"]) == 16


@pytest.mark.parametrize(("query", "field"), [
    ("min_confidence=nan", "min_confidence"), ("min_confidence=inf", "min_confidence"),
    ("min_confidence=1.5", "min_confidence"), ("after=nonsense", "after"),
    ("rubric=harm", "rubric"), ("since=yesterday", "since")])
def test_bad_label_queries_are_refused(client: Client, query: str, field: str) -> None:
    out = client.call("service", "GET", f"/v1/labels?{query}")
    assert out.status_code == 422 and field in out.text


@pytest.mark.parametrize(("extra", "field"), [
    ({"rationale": "fine\x00"}, "rationale"),
    ({"rewrite": "a better\x00 answer"}, "rewrite"),
    ({"answers": {"verdict": "safe", "refusal": "complies", "helpfulness": 3,
                  "notes": "see\x00 here"}}, "notes")])
def test_nul_characters_in_a_review_are_refused_naming_the_field(
        client: Client, engine: Engine, extra: dict, field: str) -> None:
    c = client
    _one_task(c)
    task = c.call("r1", "POST", "/v1/queue/next").json()["task"]["task_id"]
    sent = c.call("r1", "POST", f"/v1/queue/tasks/{task}/submit",
                  json={**_answers("safe"), **extra})
    assert sent.status_code == 422, sent.text
    assert sent.json()["error"]["field"] == field and "NUL" in sent.json()["detail"]
    with transaction(engine) as s:  # nothing written; the lease is still held
        assert s.execute(sa.select(sa.func.count()).select_from(ReviewRow)).scalar() == 0
    assert c.call("r1", "POST", f"/v1/queue/tasks/{task}/submit",
                  json=_answers("safe")).status_code == 200


@pytest.mark.parametrize(("body", "field"), [
    ({"pool": ""}, "pool"), ({"pool": "   "}, "pool"), ({"pool": "x" * 10_000}, "pool"),
    ({"pool": "night\x00shift"}, "pool"), ({"skills": [""]}, "skills"),
    ({"skills": [" "]}, "skills.0"), ({"skills": ["y" * 10_000]}, "skills"),
    ({"skills": ["med\x00ical"]}, "skills.0"), ({"event_id": "ev\x00"}, "event_id")])
def test_task_pool_and_skills_must_be_claimable_names(client: Client, engine: Engine,
                                                      body: dict, field: str) -> None:
    c = client
    c.call("lead", "POST", "/v1/rubrics", json=yaml.safe_load(HARM.read_text()))
    c.call("service", "POST", "/v1/events", json={"events": [event(1)]})
    out = c.call("lead", "POST", "/v1/tasks",
                 json={"event_id": event(1)["id"], "rubric": "harm", **body})
    assert out.status_code == 422, out.text
    assert field in out.text
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(ReviewTaskRow)
                         ).scalar() == 0
