"""Every item of a check's review sample gets the requested review under the pinned rubric
version: the active escalation rules do not run on the sample, and tasks its event
already has under other versions of the rubric do not count."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer
from hilt.cli import app
from hilt.quality.drift.activation import evaluated_events
from hilt.review.escalation import backtest, publish_rule_set
from hilt.review.queue import QueueConfig
from hilt.review.reviews import Submission
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.review.rules import parse_rule_set
from hilt.review.workflow import work_queue
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import ReviewTaskRow

HARM = Path(__file__).resolve().parents[2] / "examples" / "rubrics" / "harm.yaml"
REVIEWERS = ["rita", "sam", "tove"]


def _files(tmp_path: Path, jsonl: Any) -> dict[str, Path]:
    """Six items (four benign, two harmful) with judgments in the files."""
    suite, cand, ref = [], [], []
    for i in range(6):
        benign = i < 4
        suite.append({"id": f"q{i}", "prompt": f"prompt {i}",
                      "slice": "benign" if benign else "harmful",
                      "expect": "comply" if benign else "refuse"})
        judgment = "comply" if benign else "refuse"
        cand.append({"id": f"q{i}", "response": f"answer {i}", "judgment": judgment})
        ref.append({"id": f"q{i}", "response": "ok", "judgment": judgment})
    return {name: jsonl(tmp_path / f"{name}.jsonl", rows)
            for name, rows in (("suite", suite), ("cand", cand), ("ref", ref))}


def _publish_harm(engine: Engine, tmp_path: Path, revision: int) -> None:
    """Publish the example rubric as its next version (a new title for a revision)."""
    path = HARM
    if revision > 1:
        path = tmp_path / f"harm{revision}.yaml"
        path.write_text(HARM.read_text(encoding="utf-8").replace(
            "changelog: first version", f"changelog: revision {revision}").replace(
            "title: Harmfulness", f"title: Harmfulness (revision {revision})"),
            encoding="utf-8")
    with transaction(engine) as session:
        assert publish_rubric(session, load_rubric_file(path), actor="lead").version \
            == revision


def _reviewers(engine: Engine) -> None:
    with transaction(engine) as session:
        for rid in REVIEWERS:
            add_reviewer(session, reviewer_id=rid, pools=["default", "audit"])
            session.flush()
            row = session.get(ReviewerRow, rid)
            assert row is not None
            row.status = "calibrated"


def _answer(view: dict[str, Any]) -> Submission:
    return Submission({"verdict": "safe", "refusal": "complies", "helpfulness": 4})


def _tasks(engine: Engine) -> list[tuple[str, str, int, int, str]]:
    """(event, rubric, version, overlap, pool) of every task, sorted."""
    with transaction(engine) as session:
        return sorted((t.event_id, t.rubric_id, t.rubric_version, t.overlap_k, t.pool)
                      for t in session.execute(sa.select(ReviewTaskRow)).scalars())


def _check(files: dict[str, Path], out: Path, db_url: str, rubric: str) -> Any:
    result = CliRunner().invoke(app, [
        "check", "--suite", str(files["suite"]), "--candidate", str(files["cand"]),
        "--reference", str(files["ref"]), "--out", str(out), "--db", db_url, "--record",
        "--review-sample", "6", "--rubric", rubric, "--review-overlap", "3"])
    assert result.exit_code in (0, 1), result.output
    return result


def test_escalation_tasks_under_another_version_do_not_take_over_the_sample(
        db_url: str, engine: Engine, tmp_path: Path, jsonl: Any) -> None:
    files = _files(tmp_path, jsonl)
    _publish_harm(engine, tmp_path, 1)
    _reviewers(engine)
    # An escalation rule set that audits every reviewable event, pinned to harm@1.
    rules = parse_rule_set({"id": "audit-all", "defaults": {
        "rubric": "harm", "pool": "audit", "overlap": 1},
        "rules": [{"name": "random-audit", "audit_rate": 1.0}]})
    with transaction(engine) as session:
        assert publish_rule_set(session, rules, actor="lead").spec["defaults"]["rubric"] \
            == "harm@1"
    _publish_harm(engine, tmp_path, 2)
    out = tmp_path / "out"
    sent = _check(files, out, db_url, "harm")
    assert "6 review tasks under harm@2" in sent.output
    sample = json.loads((out / "decision.json").read_text())["inputs"]["review_sample"]
    events = sorted(item["event_id"] for item in sample["items"])
    assert len(events) == 6
    # Each sampled item has exactly one task, under the pinned version, with the
    # requested overlap and pool: the sample is evaluation output, so the active rule
    # set does not escalate it.
    tasks = _tasks(engine)
    assert [t[0] for t in tasks] == events
    assert {t[1:] for t in tasks} == {("harm", 2, 3, "default")}
    with transaction(engine) as session:
        ingests = audit.entries(session, action="events.ingest")
        assert [e.payload["escalation"] for e in ingests] == [False]
        assert not audit.entries(session, action="escalation.tasks")
        # nor does a backtest or the rule-hit monitor take them for events the rules ran on
        report = backtest(session, rules, version=None)
        assert (report["events"], report["review_samples"], report["evaluated"]) == (6, 6, 0)
        assert evaluated_events(session, datetime(2000, 1, 1, tzinfo=UTC),
                                datetime(2100, 1, 1, tzinfo=UTC)) == []
    for rid in REVIEWERS:
        work_queue(engine, rid, _answer, config=QueueConfig(gold_rate=0))
    update = CliRunner().invoke(app, ["gate", "update", str(out), "--db", db_url])
    assert update.exit_code in (0, 1), update.output
    assert json.loads(update.stdout)["review"] == {"sampled": 6, "returned": 6}


def test_a_rerun_after_a_rubric_revision_opens_tasks_under_the_new_version(
        db_url: str, engine: Engine, tmp_path: Path, jsonl: Any) -> None:
    files = _files(tmp_path, jsonl)
    _publish_harm(engine, tmp_path, 1)
    _reviewers(engine)
    _check(files, tmp_path / "first", db_url, "harm")
    assert [t[1:] for t in _tasks(engine)] == [("harm", 1, 3, "default")] * 6
    # The same sample under the same version again: nothing new.
    again = _check(files, tmp_path / "again", db_url, "harm@1")
    assert "0 review tasks under harm@1" in again.output
    assert len(_tasks(engine)) == 6
    # After a revision the same events are reviewed under the new version.
    _publish_harm(engine, tmp_path, 2)
    revised = _check(files, tmp_path / "revised", db_url, "harm")
    assert "6 review tasks under harm@2" in revised.output
    tasks = _tasks(engine)
    assert sorted(t[0] for t in tasks if t[2] == 2) == sorted(t[0] for t in tasks
                                                               if t[2] == 1)
    assert len(tasks) == 12
