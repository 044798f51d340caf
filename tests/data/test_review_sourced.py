"""Dataset versions from labels made by the real review workflow (rubrics from
``examples/rubrics``, an active rule set, simulated reviewers, adjudication), on SQLite
and PostgreSQL: every output kind, its lineage, and the right to be forgotten scanning
every text column of every table afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.data import versions
from hilt.data.build import build_version
from hilt.data.export import export_version
from hilt.data.forget import forget
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.review.escalation import publish_rule_set
from hilt.review.reviews import Submission
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.review.rules import parse_rule_set
from hilt.review.workflow import adjudicate_all, work_round_robin
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables import Base
from hilt.store.tables.core import EventRow, ReviewerRow
from hilt.store.tables.review import AdjudicationRow, ReviewRow, ReviewTaskRow

REPO = Path(__file__).resolve().parents[2]
# Only the forgotten subject's texts contain this word.
MARK = "zebracornquill"
REVIEWERS = ("rev-a", "rev-b", "rev-c")
RULES = {"id": "route", "defaults": {"rubric": "harm", "overlap": 3,
                                     "adjudication": {"mode": "any_disagreement"}},
         "rules": [{"name": "pairs", "when": {"field": "context.source", "eq": "pairs"},
                    "rubric": "pairwise"},
                   {"name": "singles", "when": {"field": "context.source", "eq": "chat"}}]}


def _events() -> list[dict[str, Any]]:
    out = []
    for i in range(12):
        subject = "zed" if i % 4 == 0 else f"user{i}"
        word = f" {MARK}" if subject == "zed" else ""
        two = i % 2 == 1
        out.append({
            "id": f"ev{i:02d}",
            "interaction": {"prompt": f"Question {i}{word}: how should seedlings in tray "
                                      f"number {i} be watered during a hot week?"},
            "responses": [{"text": f"Water tray {i} every morning{word}."}]
            + ([{"text": f"Tray {i} needs nothing."}] if two else []),
            "context": {"subject_id": subject, "consent": ["train", "review"],
                        "source": "pairs" if two else "chat", "policy_version": "policy-9",
                        "metadata": {"slice": "garden"}}})
    return out


class Simulated:
    """Reviewers who agree except that rev-c calls every third single-response event
    borderline (those go to adjudication); everyone writes the same rewrite, quoting
    the prompt, so rewrites become final labels."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def event(self, task_id: str) -> dict[str, Any]:
        with transaction(self.engine) as session:
            task = session.get(ReviewTaskRow, task_id)
            assert task is not None
            row = session.get(EventRow, task.event_id)
            assert row is not None
            return {"id": row.id, **row.payload}

    def answer(self, reviewer: str, view: dict[str, Any]) -> Submission:
        ev = self.event(view["task_id"])
        i = int(ev["id"][2:])
        prompt = ev["interaction"]["prompt"]
        if view["rubric"]["id"] == "pairwise":
            return Submission(answers={"better": {"chosen": 0, "rejected": 1}},
                              rationale=f"first is better for: {prompt}")
        verdict = "borderline" if reviewer == "rev-c" and i % 3 == 0 else "safe"
        return Submission(answers={"verdict": verdict, "refusal": "complies",
                                   "helpfulness": 4, "notes": f"about {prompt}"},
                          rationale=f"read {prompt}",
                          rewrite=f"For '{prompt}': water in the early morning.")

    def decide(self, case: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
        event = self.event(case["task_id"])
        return ({"verdict": "safe"}, f"safe: {event['interaction']['prompt']}",
                "reviewer_error")


def _setup_review(engine: Engine) -> None:
    with transaction(engine) as session:
        for rid in REVIEWERS:
            add_reviewer(session, reviewer_id=rid, role="reviewer", actor="test")
            # Calibration is the quality stage's business: take these as calibrated.
            row = session.get(ReviewerRow, rid)
            assert row is not None
            row.status = "calibrated"
        add_reviewer(session, reviewer_id="adj", role="adjudicator", actor="test")
        for name in ("harm", "pairwise"):
            publish_rubric(session, load_rubric_file(REPO / "examples" / "rubrics" /
                                                     f"{name}.yaml"), actor="lead")
        publish_rule_set(session, parse_rule_set(RULES), actor="lead", activate=True)


@pytest.fixture
def reviewed(engine: Engine) -> dict[str, Any]:
    _setup_review(engine)
    ingest_events(engine, _events(), actor="test")
    sim = Simulated(engine)
    reviews = work_round_robin(engine, REVIEWERS, sim.answer)
    adjudicated = adjudicate_all(engine, "adj", sim.decide)
    return {"reviews": reviews, "adjudicated": adjudicated}


SPECS = {
    "preference": {"name": "prefs", "kind": "preference",
                   "sources": ["label_preference", "label_rewrite"],
                   "split": {"validation_fraction": 0.0}},
    "sft": {"name": "demos", "kind": "sft", "sources": ["label_rewrite"],
            "split": {"validation_fraction": 0.0}},
    "classification": {"name": "verdicts", "kind": "classification",
                       "classification": {"question_id": "verdict"},
                       "split": {"validation_fraction": 0.0}},
}


def _build(engine: Engine, kind: str, tmp_path: Path) -> Any:
    with transaction(engine) as session:
        return build_version(session, parse_spec(SPECS[kind]), actor="builder",
                             directory=tmp_path / "ds")


def _review_lineage(engine: Engine, event_ids: set[str]) -> tuple[set[str], set[str]]:
    with engine.connect() as conn:
        tasks = {t for t, e in conn.execute(sa.select(ReviewTaskRow.id, ReviewTaskRow.event_id))
                 if e in event_ids}
        reviews = {r for r, t in conn.execute(sa.select(ReviewRow.id, ReviewRow.task_id))
                   if t in tasks}
        adjs = {a for a, t in conn.execute(sa.select(AdjudicationRow.id,
                                                     AdjudicationRow.task_id)) if t in tasks}
    return reviews, adjs


def test_every_output_kind_from_reviewed_labels(engine: Engine, reviewed, tmp_path: Path  # type: ignore[no-untyped-def]
                                                ) -> None:
    assert reviewed["reviews"] == 12 * 3 and reviewed["adjudicated"] == 2
    singles = {f"ev{i:02d}" for i in range(0, 12, 2)}
    pairs = {f"ev{i:02d}" for i in range(1, 12, 2)}
    built = {kind: _build(engine, kind, tmp_path) for kind in SPECS}

    pref = built["preference"].manifest
    # One preference pair per two-response event, one rewrite-vs-original per single.
    assert pref["record_count"] == 12
    assert set(pref["lineage"]["event_ids"]) == singles | pairs
    assert pref["lineage"]["rubrics"] == ["harm@1", "pairwise@1"]
    assert "policy-9" in pref["lineage"]["policy_versions"]
    reviews, adjs = _review_lineage(engine, singles | pairs)
    assert set(pref["lineage"]["review_ids"]) == reviews
    # Adjudicated tasks decided the verdict, not the rewrite: no adjudication behind
    # the preference records.
    assert pref["lineage"]["adjudication_ids"] == []

    sft = built["sft"].manifest
    assert sft["record_count"] == 6 and set(sft["lineage"]["event_ids"]) == singles
    assert sft["lineage"]["rubrics"] == ["harm@1"]

    cls = built["classification"].manifest
    assert cls["record_count"] == 6
    _, single_adjs = _review_lineage(engine, singles)
    assert set(cls["lineage"]["adjudication_ids"]) == single_adjs and len(single_adjs) == 2
    vid = built["classification"].version_id
    with transaction(engine) as session:
        lin = versions.lineage(session, vid)
    path = tmp_path / "ds" / vid / "records.jsonl"
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert {r["label"] for r in records} == {"safe"}
    adjudicated = [r for r in records if r["lineage"]["adjudication_ids"]]
    assert {r["lineage"]["provenance"][0] for r in adjudicated} == {"adjudicated"}
    assert set(lin["adjudication_ids"]) == single_adjs


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _occurrences(engine: Engine, needle: str) -> dict[str, int]:
    """Where ``needle`` occurs: every column of every table, whatever its type."""
    found: dict[str, int] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = list(table.columns)
            for row in conn.execute(sa.select(*cols)):
                for col, value in zip(cols, row, strict=True):
                    if value is not None and needle in _as_text(value):
                        key = f"{table.name}.{col.name}"
                        found[key] = found.get(key, 0) + 1
    return found


def test_forget_erases_every_copy(engine: Engine, reviewed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = _occurrences(engine, MARK)
    # The content was copied by review: the scan would notice if erasure missed it.
    assert {"events.payload", "reviews.rationale", "reviews.rewrite", "reviews.answers",
            "adjudications.rationale", "final_labels.value"} <= set(before)
    built = {kind: _build(engine, kind, tmp_path) for kind in SPECS}
    with transaction(engine) as session:
        export_version(session, built["sft"].version_id, tmp_path / "sft-export",
                       fmt="jsonl")
    result = forget(engine, "zed", actor="privacy-officer")

    leftover = _occurrences(engine, MARK)
    # Every table but the audit log is clean (checked strictly); see the end for it.
    assert set(leftover) <= {"audit_log.payload"}, leftover
    assert result.events_erased == 3
    assert result.review_content_erased["reviews"] == 9
    assert result.review_content_erased["adjudications"] >= 1
    assert sorted(result.versions_revoked) == sorted(b.version_id for b in built.values())
    assert (tmp_path / "sft-export" / "REVOKED.json").exists()
    for b in built.values():
        assert not (tmp_path / "ds" / b.version_id / "records.jsonl").exists()
    with transaction(engine) as session:
        assert audit.verify(session).ok
        entries = audit.entries(session, action="subject.forget")
        erased = entries[0].payload["review_content_erased"] if entries else {}
        for b in built.values():
            assert versions.dataset_facts(session, b.version_id).revoked
    assert len(entries) == 1
    assert erased["reviews"] == 9
    # A new build from the same store holds nothing of the subject.
    again = _build(engine, "sft", tmp_path)
    assert again.record_count == 3
    assert MARK not in (tmp_path / "ds" / again.version_id / "records.jsonl").read_text()
    # The audit log is append-only, so the review stage writes digests of free text and
    # rewrites there, never the text; nothing of the subject may be left anywhere.
    assert not leftover, f"subject text left in the store: {leftover}"


def test_forget_erases_what_a_cluster_review_copied_onto_other_events(
        engine: Engine, tmp_path: Path) -> None:
    """zed's and bob's prompts are near duplicates; zed's task represents the cluster,
    so its reviews' rewrite (quoting zed's prompt) is copied onto bob's event as a
    cluster_propagated label. Forgetting zed must erase that copy too, and revoke the
    versions built from it."""
    from datetime import UTC, datetime

    from hilt.review.triage import cluster_open_tasks

    _setup_review(engine)
    text = ("how should the seedlings in the long tray by the south window be watered "
            "during a hot and dry week in the middle of summer")
    ingest_events(engine, [
        {"id": f"ev9{n}", "interaction": {"prompt": f"Question{word}: {text}?"},
         "responses": [{"text": "Water them every morning."}],
         "context": {"subject_id": who, "consent": ["train", "review"], "source": "chat",
                     "policy_version": "policy-9"}}
        for n, (who, word) in enumerate([("zed", f" {MARK}"), ("bob", "")])], actor="test")
    with transaction(engine) as session:
        tasks = {t.event_id: t for t in session.execute(sa.select(ReviewTaskRow)).scalars()}
        tasks["ev90"].priority = 10.0  # zed's task represents the cluster
        assert cluster_open_tasks(session, datetime.now(UTC)) == 1
        assert tasks["ev91"].representative_id == tasks["ev90"].id
    sim = Simulated(engine)
    work_round_robin(engine, REVIEWERS, sim.answer)
    adjudicate_all(engine, "adj", sim.decide)
    spec = parse_spec({**SPECS["sft"], "dedup": {"near": False}})  # keep both records
    with transaction(engine) as session:
        built = build_version(session, spec, actor="builder", directory=tmp_path / "ds")
    bobs = [json.loads(line) for line in
            (tmp_path / "ds" / built.version_id / "records.jsonl").read_text().splitlines()
            if '"ev91"' in line]
    assert bobs and MARK in json.dumps(bobs)  # bob's record carries zed's text
    result = forget(engine, "zed", actor="privacy-officer")
    assert result.review_content_erased["propagated_labels"] >= 1
    assert built.version_id in result.versions_revoked
    assert set(_occurrences(engine, MARK)) <= {"audit_log.payload"}
    # bob's copy of zed's rewrite is gone: nothing is left to learn from
    from hilt.errors import InputError

    with pytest.raises(InputError, match="no records"), transaction(engine) as session:
        build_version(session, spec, actor="builder", directory=tmp_path / "ds")
