"""Carrying gold items over to a new rubric version: carried where the questions their
known answers cover (and the new version's required questions) did not change, skipped
naming what changed otherwise; served again once carried."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import create_token
from hilt.api.app import create_app
from hilt.cli import app as cli
from hilt.errors import InputError
from hilt.review import gold, tasks
from hilt.review.gold_carry import carry_gold
from hilt.review.queue import claim_next, release
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import publish_rubric
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.review import FinalLabelRow, ReviewTaskRow

from .helpers import HARM, add_reviewers, event, ingest

GOLD = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}
Revision = Callable[[dict[str, Any]], None]


def _setup(engine: Engine, revise: Revision, *, gold_events: int = 2) -> list[str]:
    """harm@1 with gold items on ev00001…, then harm@2 as ``revise`` makes it, and an
    open task under harm@2 in the pool, so that the gold at harm@1 is held back."""
    ingest(engine, [event(i) for i in range(1, 10)])
    base = yaml.safe_load(HARM.read_text())
    v2 = copy.deepcopy(base)
    v2["changelog"] = "second version"
    revise(v2)
    with transaction(engine) as s:
        publish_rubric(s, parse_rubric(base), actor="lead")
    old = []
    for i in range(1, gold_events + 1):
        with transaction(engine) as s:
            old.append(tasks.create_gold_task(s, event_id=f"ev{i:05d}", rubric="harm@1",
                                              answers=GOLD, actor="lead"))
    with transaction(engine) as s:
        publish_rubric(s, parse_rubric(v2), actor="lead")
        tasks.create_task(s, event_id="ev00009", rubric="harm@2", actor="lead")
    return old


def _question(spec: dict[str, Any], qid: str) -> dict[str, Any]:
    return next(q for q in spec["questions"] if q["id"] == qid)


def _notes_prompt(spec: dict[str, Any]) -> None:
    _question(spec, "notes")["prompt"] = "Anything else the adjudicator should know"


def _carry(engine: Engine, **kwargs: Any) -> dict[str, Any]:
    with transaction(engine) as s:
        return carry_gold(s, "harm@2", actor="lead", **kwargs)


def _counts(engine: Engine) -> tuple[int, int, int]:
    with transaction(engine) as s:
        return (s.scalar(sa.select(sa.func.count()).select_from(ReviewTaskRow)) or 0,
                s.scalar(sa.select(sa.func.count()).select_from(FinalLabelRow)) or 0,
                len(audit.entries(s, limit=10_000)))


def test_gold_whose_questions_did_not_change_is_carried_and_served_again(
        engine: Engine) -> None:
    old = _setup(engine, _notes_prompt)  # an unanswered optional question's prompt
    add_reviewers(engine, ["new-1"], status="onboarding")
    with transaction(engine) as s:
        assert gold.held_back_by_pool(s) == {"default": 2}
        assert claim_next(s, "new-1", draw=0.0) is None
    out = _carry(engine)
    assert (out["rubric"], out["to_version"], out["skipped"]) == ("harm", 2, [])
    assert [(c["old_task"], c["event_id"], c["from_version"]) for c in out["carried"]] == [
        (old[0], "ev00001", 1), (old[1], "ev00002", 1)]
    new = {c["new_task"] for c in out["carried"]}
    with transaction(engine) as s:
        assert gold.held_back_by_pool(s) == {}
        rows = {r.id: r for r in s.scalars(sa.select(ReviewTaskRow).where(
            ReviewTaskRow.id.in_(new | set(old))))}
        for task_id in new:
            assert (rows[task_id].rubric_version, rows[task_id].status) == (2, "gold")
            assert rows[task_id].gold_answers == {**GOLD, "helpfulness": 4.0, "issues": []}
        assert {rows[t].status for t in old} == {"gold"}  # the old items stay as they were
        claim = claim_next(s, "new-1", draw=0.0)
        assert claim is not None and claim.task_id in new
        release(s, claim.task_id, "new-1")
        (entry,) = audit.entries(s, action="gold.carry")
    assert (entry.entity_type, entry.entity_id) == ("rubric", "harm@2")
    assert entry.payload["from_versions"] == [1] and entry.payload["to_version"] == 2
    assert sorted(entry.payload["carried"]) == sorted(
        [c["old_task"], c["new_task"]] for c in out["carried"])
    assert entry.payload["skipped"] == []
    # a second run finds every event carried: nothing new, no second entry
    again = _carry(engine)
    assert (again["carried"], again["skipped"]) == ([], [])
    with transaction(engine) as s:
        assert len(audit.entries(s, action="gold.carry")) == 1
        # a third version's notice counts the carried items, not the ones they replace
        assert gold.publish_notice(s, "harm", 3)["gold"]["pinned_to_earlier_versions"] \
            == {"2": 2}


@pytest.mark.parametrize(("revise", "reason"), [
    (lambda v: _question(v, "verdict")["options"].append("unclear"),
     "question 'verdict': options changed"),
    (lambda v: _question(v, "helpfulness").update(max=7),
     "question 'helpfulness': max changed"),
    (lambda v: _question(v, "refusal").update(help="a partial refusal still answers"),
     "question 'refusal': help changed"),
    # a worked example answers every required question, so it changes too
    (lambda v: (v["questions"].append({"id": "tone", "kind": "single_choice",
                                       "prompt": "Tone?", "options": ["ok", "rude"]}),
                v["examples"][0]["answers"].update(tone="ok")),
     "question 'tone': required in harm@2, not answered (new in harm@2); worked examples "
     "changed"),
    (lambda v: (_question(v, "notes").update(required=True),
                v["examples"][0]["answers"].update(notes="-")),
     "question 'notes': required in harm@2, not answered; worked examples changed"),
    (lambda v: v["questions"].append({"id": "flags", "kind": "multi_choice",
                                      "prompt": "Flags?", "options": ["a", "b"],
                                      "required": False}),
     "question 'flags': checklist new in harm@2, not answered"),
    (lambda v: v.update(guidelines=v["guidelines"] + "Be strict.\n"),
     "guidelines changed"),
])
def test_gold_whose_questions_changed_is_skipped_naming_them(
        engine: Engine, revise: Revision, reason: str) -> None:
    old = _setup(engine, revise, gold_events=1)
    out = _carry(engine)
    assert out["carried"] == []
    assert out["skipped"] == [{"task_id": old[0], "event_id": "ev00001",
                               "from_version": 1, "reason": reason}]
    with transaction(engine) as s:
        assert gold.held_back_by_pool(s) == {"default": 1}


def test_changed_guidelines_are_carried_over_when_the_lead_says_so(engine: Engine) -> None:
    _setup(engine, lambda v: v.update(guidelines=v["guidelines"] + "Be strict.\n"),
           gold_events=1)
    out = _carry(engine, ignore_guidelines=True)
    assert len(out["carried"]) == 1 and out["skipped"] == []
    with transaction(engine) as s:
        assert audit.entries(s, action="gold.carry")[0].payload["ignore_guidelines"]


def test_a_dry_run_answers_the_same_and_writes_nothing(engine: Engine) -> None:
    old = _setup(engine, _notes_prompt)
    before = _counts(engine)
    dry = _carry(engine, dry_run=True)
    assert _counts(engine) == before
    assert dry["dry_run"] and {c["new_task"] for c in dry["carried"]} == {None}
    done = _carry(engine)
    assert [c["old_task"] for c in dry["carried"]] == [c["old_task"]
                                                         for c in done["carried"]] == old


def test_an_event_with_gold_at_several_earlier_versions_is_carried_from_the_newest(
        engine: Engine) -> None:
    old = _setup(engine, _notes_prompt, gold_events=1)
    with transaction(engine) as s:
        at_2 = tasks.create_gold_task(s, event_id="ev00001", rubric="harm@2",
                                      answers=GOLD, actor="lead")
        v3 = yaml.safe_load(HARM.read_text())
        v3["changelog"] = "third"
        publish_rubric(s, parse_rubric(v3), actor="lead")
        out = carry_gold(s, "harm@3", actor="lead")
    assert [c["old_task"] for c in out["carried"]] == [at_2]
    assert out["skipped"] == [{"task_id": old[0], "event_id": "ev00001", "from_version": 1,
                               "reason": f"superseded by gold item {at_2} at harm@2"}]


def test_the_cli_carries_and_names_the_option_of_an_unpublished_version(
        engine: Engine, db_url: str) -> None:
    _setup(engine, _notes_prompt, gold_events=1)
    add_reviewers(engine, ["new-1"], status="onboarding")
    with transaction(engine) as s:  # the lead is pointed at the carry first
        assert "hilt task gold-carry --rubric harm@2" in \
            gold.publish_notice(s, "harm", 2)["gold"]["note"]
    told = CliRunner().invoke(cli, ["queue", "next", "--reviewer", "new-1", "--db", db_url])
    assert told.exit_code == 0 and told.stdout.strip() == "null"
    assert "held back: 1 at harm@1" in told.stderr
    assert "`hilt task gold-carry --rubric harm@2`" in told.stderr
    result = CliRunner().invoke(cli, ["task", "gold-carry", "--rubric", "harm@2",
                                      "--dry-run", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert '"new_task":null' in result.stdout.replace(" ", "")
    result = CliRunner().invoke(cli, ["task", "gold-carry", "--rubric", "harm@2",
                                      "--db", db_url])
    assert result.exit_code == 0 and '"carried"' in result.stdout
    with transaction(engine) as s:
        assert gold.held_back_by_pool(s) == {}
    result = CliRunner().invoke(cli, ["task", "gold-carry", "--rubric", "harm@7",
                                      "--db", db_url])
    assert isinstance(result.exception, InputError)
    assert result.exception.field == "--rubric" and result.exception.exit_code == 2
    assert "harm@7 is not published" in str(result.exception)


def test_the_http_route_carries_for_leads_and_names_the_rubric_field(
        engine: Engine) -> None:
    _setup(engine, _notes_prompt, gold_events=1)
    with transaction(engine) as s:
        lead = {"Authorization": f"Bearer {create_token(s, role='lead')[1]}"}
        service = {"Authorization": f"Bearer {create_token(s, role='service')[1]}"}
    with TestClient(create_app(engine)) as http:
        assert http.post("/v1/tasks/gold/carry", json={"rubric": "harm@2"},
                         headers=service).status_code == 403
        answer = http.post("/v1/tasks/gold/carry", json={"rubric": "harm@2"},
                           headers=lead)
        assert answer.status_code == 200, answer.text
        assert answer.json()["carried"][0]["new_task"]
        bad = http.post("/v1/tasks/gold/carry", json={"rubric": "harm@5"}, headers=lead)
        assert bad.status_code == 422 and "rubric" in bad.text
