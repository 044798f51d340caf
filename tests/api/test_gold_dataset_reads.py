"""Gold items stay unknown to adjudicators through dataset reads too: a version whose
records hold a gold item, or whose manifest names one, is refused to them whole (its
manifest, lineage and diff name the item and what its gold label did), as ``GET
/v1/labels`` leaves gold labels out for them. Leads and service tokens read it; the
list of versions stays open."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.events.ingest import ingest_events
from hilt.review import gold, queue, tasks
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from tests.api.conftest import calibrated
from tests.review.helpers import HARM

GOLD_EVENT = "ev00005"
PLAIN_EVENT = "ev00001"
GOLD_ANSWERS = {"verdict": "safe", "refusal": "complies", "helpfulness": 5}
SFT = {"name": "sft-demos", "kind": "sft", "sources": ["label_approval"],
       "sft": {"approval_question": "helpfulness", "min_scale": 4},
       "split": {"validation_fraction": 0.0}}
# the same selection without gold labels: the gold item is then removed by the label
# provenance filter, and the manifest's steps name it
NO_GOLD = {**SFT, "name": "sft-no-gold",
           "labels": {"provenance": ["unanimous", "majority", "model_aggregated",
                                     "adjudicated"]}}


@dataclass
class Setup:
    http: TestClient
    tokens: dict[str, str]

    def get(self, who: str, path: str) -> Any:
        return self.http.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def build(self, spec: dict[str, Any]) -> str:
        built = self.http.post("/v1/datasets", json={"spec": spec}, headers={
            "Authorization": f"Bearer {self.tokens['lead']}"})
        assert built.status_code == 200, built.text
        return str(built.json()["version_id"])


def _event(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "interaction": {"prompt": f"How do I descale a kettle? {event_id}"},
            "responses": [{"text": f"Boil water with citric acid, then rinse. {event_id}"}],
            "context": {"policy_version": "pol-1", "consent": ["review", "train"]}}


@pytest.fixture
def setup(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[Setup]:
    monkeypatch.setenv("HILT_HOME", str(tmp_path))
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
        tokens = calibrated(s, [("lead", "lead"), ("kim", "adjudicator"), ("r1", "reviewer")])
        tokens["service"] = create_token(s, role="service")[1]
    ingest_events(engine, [_event(PLAIN_EVENT), _event(GOLD_EVENT)], actor="service")
    # the plain item is reviewed as usual: a helpful answer, one reviewer
    with transaction(engine) as s:
        task = tasks.create_task(s, event_id=PLAIN_EVENT, rubric="harm", actor="lead",
                                 overlap_k=1)
    with transaction(engine) as s:
        claim = queue.claim_next(s, "r1")
        assert claim is not None and claim.task_id == task
    with transaction(engine) as s:
        submit_review(s, task, "r1", Submission(answers={
            "verdict": "safe", "refusal": "complies", "helpfulness": 4}))
    with TestClient(create_app(engine)) as http:
        yield Setup(http, tokens)


def _make_gold(engine: Engine) -> None:
    with transaction(engine) as s:
        tasks.create_gold_task(s, event_id=GOLD_EVENT, rubric="harm",
                               answers=GOLD_ANSWERS, actor="lead")


def _gold_refusal(response: Any, n: int = 1) -> None:
    assert response.status_code == 403, response.text
    message = str(response.json()["detail"])
    assert f"{n} gold item" in message and "adjudicator" in message
    assert "leads and service tokens may read it" in message
    assert GOLD_EVENT not in response.text


def test_a_version_holding_a_gold_item_is_refused_to_adjudicators(setup: Setup,
                                                                  engine: Engine) -> None:
    s = setup
    before = s.build(SFT)  # the plain item only
    _make_gold(engine)
    after = s.build(SFT)  # the gold label approves the gold item's response
    assert after != before
    for path in (f"/v1/datasets/{before}", f"/v1/datasets/{before}/lineage"):
        assert s.get("kim", path).status_code == 200
    paths = (f"/v1/datasets/{after}", f"/v1/datasets/{after}/lineage",
             f"/v1/datasets/{before}/diff/{after}", f"/v1/datasets/{after}/diff/{before}",
             f"/v1/datasets/{after[:12]}")
    for path in paths:
        _gold_refusal(s.get("kim", path))
    # leads and service tokens read it all: the diff names the gold item's record
    for who in ("lead", "service"):
        diff = s.get(who, f"/v1/datasets/{before}/diff/{after}")
        assert diff.status_code == 200, diff.text
        assert any(GOLD_EVENT in key for key in diff.json()["added"])
        assert GOLD_EVENT in s.get(who, f"/v1/datasets/{after}/lineage").text
    # the list of versions names no item
    listed = s.get("kim", "/v1/datasets")
    assert listed.status_code == 200 and GOLD_EVENT not in listed.text
    assert {v["id"] for v in listed.json()} >= {before, after}


def test_a_manifest_naming_a_gold_item_is_refused_to_adjudicators(setup: Setup,
                                                                  engine: Engine) -> None:
    s = setup
    _make_gold(engine)
    version = s.build(NO_GOLD)
    lead = s.get("lead", f"/v1/datasets/{version}")
    assert lead.status_code == 200
    # the records leave the gold item out, but the manifest says which step removed it
    assert GOLD_EVENT not in s.get("lead", f"/v1/datasets/{version}/lineage").text
    assert GOLD_EVENT in lead.text
    for path in (f"/v1/datasets/{version}", f"/v1/datasets/{version}/lineage"):
        _gold_refusal(s.get("kim", path))


def test_gold_named_reads_event_ids_and_record_keys() -> None:
    found = {"ev:1", "ev2", "ev3"}
    document = {"steps": [{"removed_ids": {"near_duplicate": ["sft:ev:1:harm/x:approved"],
                                           "no_selected_label": ["ev2"]}}],
                "other": ["cls:ev20:harm/verdict:prompt", "sft:ev3#lbl_1", "ev4"]}
    assert gold.gold_named(document, found) == {"ev:1", "ev2"}
    assert gold.gold_named({"k": "pref:ev3"}, found) == {"ev3"}
    assert gold.gold_named(document, set()) == set()
