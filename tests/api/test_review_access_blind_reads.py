"""Blind review on the reads beyond the review API: whoever is reviewing an item (here
as the re-review of a drift bridge) reads neither the review export, nor the dataset
versions that hold the item, nor the event with its feedback, until they have
submitted; the aggregates (drift, quality, the lead dashboard) name no item and stay
open."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.events.ingest import ingest_events
from hilt.review import queue, tasks
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from tests.api.conftest import calibrated
from tests.review.helpers import HARM
from tests.web.asgi import BASE, sign_in

SECRET = "first-round-rationale-9035"
FEEDBACK = "the-user-called-it-harmful-6127"
EVENT = "ev-blind-reads"
ANSWERS = {"refusal": "complies", "helpfulness": 3}
SPEC = {"name": "harm-verdict", "kind": "classification",
        "classification": {"question_id": "verdict"}, "split": {"validation_fraction": 0.0}}


@dataclass
class Setup:
    http: TestClient
    engine: Engine
    tokens: dict[str, str]
    first: str  # the item's first task, resolved by the lead
    version: str  # a dataset version holding the item

    def get(self, who: str, path: str, **kw: Any) -> Any:
        return self.http.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"},
                             **kw)

    def post(self, who: str, path: str, **kw: Any) -> Any:
        return self.http.post(path, headers={"Authorization": f"Bearer {self.tokens[who]}"},
                              **kw)


def _review(engine: Engine, reviewer: str, verdict: str) -> str:
    with transaction(engine) as s:
        claim = queue.claim_next(s, reviewer)
        assert claim is not None
    with transaction(engine) as s:
        submit_review(s, claim.task_id, reviewer, Submission(
            answers={"verdict": verdict, **ANSWERS}, rationale=SECRET))
    return claim.task_id


@pytest.fixture
def setup(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[Setup]:
    monkeypatch.setenv("HILT_HOME", str(tmp_path))
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
        tokens = calibrated(s, [("lead", "lead"), ("kim", "adjudicator"), ("r1", "reviewer"),
                                ("r2", "reviewer")])
        tokens["service"] = create_token(s, role="service")[1]
    ingest_events(engine, [{
        "id": EVENT, "interaction": {"prompt": "How do I store kitchen knives safely?"},
        "responses": [{"text": "Use a knife block or a magnetic strip, blades covered."}],
        "feedback": [{"kind": "text", "text": FEEDBACK, "author": "user-7"}],
        "context": {"policy_version": "pol-1", "consent": ["review", "train"]}}],
        actor="service")
    with transaction(engine) as s:
        first = tasks.create_task(s, event_id=EVENT, rubric="harm", actor="lead",
                                  overlap_k=2)
    assert _review(engine, "r1", "safe") == first
    assert _review(engine, "r2", "harmful") == first  # a disagreement: adjudication
    with TestClient(create_app(engine), base_url=BASE) as http:
        s = Setup(http, engine, tokens, first, "")
        decided = s.post("lead", f"/v1/adjudications/{first}", json={
            "answers": {"verdict": "harmful"}, "rationale": "decided",
            "cause": "reviewer_error"})
        assert decided.status_code == 200, decided.text
        built = s.post("lead", "/v1/datasets", json={"spec": SPEC})
        assert built.status_code == 200, built.text
        s.version = built.json()["version_id"]
        yield s


def _bridge(s: Setup, who: str) -> str:
    """A drift bridge from harm@1 to harm@2 re-reviews the item; ``who`` leases it."""
    spec = yaml.safe_load(HARM.read_text())
    spec["changelog"] = "second version: sharper wording"
    spec["guidelines"] += "Quote the policy clause you rely on.\n"
    assert s.post("lead", "/v1/rubrics", json=spec).status_code == 200
    made = s.post("lead", "/v1/drift/bridges", json={
        "rubric_id": "harm", "old_version": 1, "new_version": 2, "overlap_k": 1})
    assert made.status_code == 200, made.text
    claimed = s.post(who, "/v1/queue/next").json()["task"]
    assert claimed is not None and claimed["rubric"]["version"] == 2
    return str(made.json()["bridge_id"])


def _submit(s: Setup, who: str) -> None:
    task = s.post(who, "/v1/queue/next").json()["task"]  # re-opens the lease held
    done = s.post(who, f"/v1/queue/tasks/{task['task_id']}/submit",
                  json={"answers": {"verdict": "safe", **ANSWERS}})
    assert done.status_code == 200, done.text


def _blind_refusal(response: Any) -> None:
    """A 403 that says why (blind review) and how many items it is about."""
    assert response.status_code == 403, response.text
    message = str(response.json()["detail"])
    assert "blind review" in message
    assert "is reviewing 1 item of" in message or "is reviewing this item" in message
    assert SECRET not in response.text and FEEDBACK not in response.text


def test_the_review_export_is_refused_to_a_lead_reviewing_an_item_it_holds(setup: Setup
                                                                          ) -> None:
    s = setup
    assert SECRET in s.get("lead", "/v1/exports/reviews.jsonl").text
    _bridge(s, "lead")
    refused = s.get("lead", "/v1/exports/reviews.jsonl")
    _blind_refusal(refused)
    assert "submitted those reviews" in refused.text
    # the item's resolved task is in a filtered export too; a filter that leaves out
    # every item the lead reviews lifts it
    _blind_refusal(s.get("lead", "/v1/exports/reviews.jsonl",
                         params={"status": "resolved"}))
    assert s.get("lead", "/v1/exports/reviews.jsonl",
                 params={"status": "cancelled"}).status_code == 200
    # a service token reviews nothing
    assert SECRET in s.get("service", "/v1/exports/reviews.jsonl").text
    _submit(s, "lead")
    assert SECRET in s.get("lead", "/v1/exports/reviews.jsonl").text


def test_dataset_versions_holding_the_item_are_refused_while_it_is_reviewed(setup: Setup
                                                                           ) -> None:
    s = setup
    v = s.version
    paths = (f"/v1/datasets/{v}", f"/v1/datasets/{v}/lineage",
             f"/v1/datasets/{v}/diff/{v}", f"/v1/datasets/{v[:12]}")
    for path in paths:
        assert s.get("kim", path).status_code == 200
    assert EVENT in s.get("kim", f"/v1/datasets/{v}").text  # the manifest names it
    _bridge(s, "kim")
    for path in paths:
        _blind_refusal(s.get("kim", path))
    # the list of versions names no item; a lead who is not reviewing reads everything
    assert s.get("kim", "/v1/datasets").status_code == 200
    assert EVENT in s.get("lead", f"/v1/datasets/{v}/lineage").text
    _submit(s, "kim")
    assert EVENT in s.get("kim", f"/v1/datasets/{v}/lineage").text


def test_the_event_with_its_feedback_is_refused_while_it_is_reviewed(setup: Setup) -> None:
    s = setup
    assert FEEDBACK in s.get("kim", f"/v1/events/{EVENT}").text
    _bridge(s, "kim")
    _blind_refusal(s.get("kim", f"/v1/events/{EVENT}"))
    assert FEEDBACK in s.get("lead", f"/v1/events/{EVENT}").text
    assert FEEDBACK in s.get("service", f"/v1/events/{EVENT}").text
    assert s.get("kim", "/v1/events/no-such-event").status_code == 404
    _submit(s, "kim")
    assert FEEDBACK in s.get("kim", f"/v1/events/{EVENT}").text


def test_the_event_list_names_the_events_it_leaves_out(setup: Setup) -> None:
    s = setup
    listed = s.get("lead", "/v1/events").json()
    assert [e["id"] for e in listed["events"]] == [EVENT] and "withheld" not in listed
    _bridge(s, "lead")
    page = s.get("lead", "/v1/events")
    assert page.status_code == 200 and FEEDBACK not in page.text
    body = page.json()
    assert body["events"] == []
    assert (body["withheld"]["count"], body["withheld"]["event_ids"]) == (1, [EVENT])
    assert "blind review" in body["withheld"]["reason"]
    assert FEEDBACK in s.get("service", "/v1/events").text
    _submit(s, "lead")
    assert FEEDBACK in s.get("lead", "/v1/events").text


def test_drift_quality_and_the_dashboard_name_no_item(setup: Setup) -> None:
    """Counts over many items, never an item: open to whoever is reviewing one."""
    s = setup
    bridge = _bridge(s, "lead")
    refreshed = s.post("lead", "/v1/quality/refresh", json={})
    assert refreshed.status_code == 200, refreshed.text
    sign_in(s.http, s.tokens["lead"])
    reads = [s.get("lead", f"/v1/drift/bridges/{bridge}"),
             s.get("lead", "/v1/drift/compatibility/harm/1/2"),
             s.get("lead", "/v1/drift/alerts"),
             s.get("lead", "/v1/quality/reviewers"),
             s.get("lead", "/v1/quality/models"),
             s.http.get("/ui/lead")]
    for read in reads:
        assert read.status_code == 200, read.text
        for named in (EVENT, s.first, SECRET, FEEDBACK):
            assert named not in read.text
    status = reads[0].json()
    assert (status["items"], status["relabelled"]) == (1, 0)
