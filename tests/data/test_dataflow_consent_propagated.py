"""A text answer copied from a near-duplicate's review (a ``cluster_propagated`` rewrite)
is the source event's content: the consent step asks for the source event's consent as
well as the receiving event's, removes the copy without it and says so in its report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from data_factories import make_candidate, make_label
from typer.testing import CliRunner

from hilt.data.pipeline import make_examples, require_consent, run_selection
from hilt.data.spec import SelectionSpec
from hilt.review.records import FinalLabelRecord

SFT = SelectionSpec.model_validate({"name": "s", "kind": "sft",
                                    "sources": ["label_rewrite"]})
PREF = SelectionSpec.model_validate({"name": "p", "kind": "preference"})
CLS = SelectionSpec(name="c", kind="classification")
REWRITE = "Dear Mr Jones, please fix the heating. Kind regards, Sam Perkins"


def _copied(kind: str, value: Any, *, source_consent: frozenset[str] | None,
            source_event: str | None = "ev_s", question: str = "rewrite"
            ) -> FinalLabelRecord:
    return replace(make_label("ev_t", value, kind=kind, question=question,
                              provenance="cluster_propagated"),
                   task_id="t-ev_t", source_task_id="t-ev_s", source_event_id=source_event,
                   source_consent=source_consent)


def _consent_step(cands: list[Any], spec: SelectionSpec) -> tuple[list[Any], dict[str, Any]]:
    kept, report = require_consent(cands, spec)
    return kept, report.as_dict()


def test_dataflow_consent_copied_rewrite_needs_the_source_events_train_consent() -> None:
    target = make_candidate("ev_t", "write to my landlord!", ["Dear landlord"],
                            labels=[_copied("rewrite", REWRITE,
                                            source_consent=frozenset({"review"}))])
    kept, step = _consent_step([target], SFT)
    assert kept == []
    assert step["removed_ids"] == {"source_missing_consent": ["ev_t"]}
    assert step["notes"]["propagated_text_labels"] == {
        "removed": 1, "reasons": {"source_missing_consent:train": 1},
        "label_ids": ["lb-ev_t-rewrite-0"]}


def test_dataflow_consent_copied_rewrite_of_a_consenting_source_is_kept() -> None:
    label = _copied("rewrite", REWRITE, source_consent=frozenset({"review", "train"}))
    target = make_candidate("ev_t", "write to my landlord!", ["Dear landlord"],
                            labels=[label])
    kept, step = _consent_step([target], SFT)
    assert [c.event_id for c in kept] == ["ev_t"] and kept[0].labels == [label]
    assert step["removed"] == 0 and "propagated_text_labels" not in step["notes"]
    examples, _ = make_examples(kept, SFT)
    assert [ex.completion for ex in examples] == [REWRITE]


def test_dataflow_consent_source_consent_is_taken_from_the_candidates_when_unread() -> None:
    """A label source that names the source event but not its consent: the source
    event among the candidates tells it."""
    source = make_candidate("ev_s", "write to my landlord", ["Dear landlord"],
                            consent=("review",))
    target = make_candidate("ev_t", "write to my landlord!", ["Dear landlord"],
                            labels=[_copied("rewrite", REWRITE, source_consent=None)])
    kept, step = _consent_step([source, target], SFT)
    assert kept == []
    assert step["removed_ids"] == {"missing_consent:train": ["ev_s"],
                                   "source_missing_consent": ["ev_t"]}


def test_dataflow_consent_copied_rewrite_from_an_unknown_source_is_removed() -> None:
    target = make_candidate("ev_t", "write to my landlord!", ["Dear landlord"],
                            labels=[_copied("rewrite", REWRITE, source_consent=None,
                                            source_event=None)])
    kept, step = _consent_step([target], SFT)
    assert kept == []
    assert step["notes"]["propagated_text_labels"]["reasons"] == {
        "source_consent_unknown": 1}


def test_dataflow_consent_removing_a_copied_rewrite_keeps_the_events_other_records(
        ) -> None:
    own = make_label("ev_t", {"chosen": 0, "rejected": 1})
    target = make_candidate("ev_t", "write to my landlord!", ["Dear landlord", "No."],
                            labels=[own, _copied("rewrite", REWRITE,
                                                 source_consent=frozenset({"review"}))])
    result = run_selection([target], PREF, [])
    assert [(ex.source, ex.chosen) for ex in result.examples] == [
        ("label_preference", "Dear landlord")]
    consent = next(s for s in result.manifest_steps() if s["step"] == "consent")
    assert consent["removed"] == 0
    assert consent["notes"]["propagated_text_labels"]["removed"] == 1


def test_dataflow_consent_copied_choice_labels_need_only_the_events_own_consent() -> None:
    """A copied verdict carries no text of the source event: the receiving event's own
    text is classified."""
    verdict = _copied("single_choice", "safe", question="verdict",
                      source_consent=frozenset({"review"}))
    target = make_candidate("ev_t", "write to my landlord!", ["Dear landlord"],
                            labels=[verdict])
    kept, step = _consent_step([target], CLS)
    assert [c.event_id for c in kept] == ["ev_t"]
    assert step["removed"] == 0 and "propagated_text_labels" not in step["notes"]


# The same on a store, through the CLI: sam's event (review consent only) represents a
# cluster with tia's near-identical event (train consent); the rewrite written for sam's
# response is copied onto tia's event.

RUBRIC = """id: cls
title: classify
changelog: first
guidelines: label it
questions:
  - id: verdict
    kind: single_choice
    prompt: safe?
    options: [safe, harmful]
  - id: rewrite
    kind: rewrite
    prompt: rewrite
    required: false
"""
PROMPT = ("Please write a polite email to my landlord at 14 Elm Street asking to fix the "
          "broken heating in my flat before winter")
REPLY = "Dear landlord, the heating in my flat at 14 Elm Street is broken, please fix it soon."


def _event(event_id: str, prompt: str, subject: str, consent: list[str]) -> dict[str, Any]:
    return {"id": event_id, "interaction": {"prompt": prompt},
            "responses": [{"text": REPLY}],
            "context": {"subject_id": subject, "consent": consent}}


def _cli(db: str, *args: str) -> Any:
    from hilt.cli import app

    out = CliRunner().invoke(app, [*args, "--db", db])
    assert out.exit_code == 0 and out.exception is None, (out.output, out.exception)
    return json.loads(out.stdout)


def test_dataflow_consent_cli_rewrite_copied_from_an_unconsented_event_is_not_trained_on(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    from hilt.events.ingest import ingest_events
    from hilt.review.labels import iter_final_labels
    from hilt.store.db import make_engine, transaction
    from hilt.store.tables.review import ReviewTaskRow

    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    (tmp_path / "rubric.yaml").write_text(RUBRIC)
    spec = tmp_path / "sft.yaml"
    spec.write_text("name: sft\nkind: sft\nsources: [label_rewrite]\n"
                    "split: {validation_fraction: 0}\n")
    engine = make_engine(db_url)
    ingest_events(engine, [
        _event("ev_s", PROMPT, "sam", ["review"]),
        _event("ev_t", PROMPT + "!", "tia", ["review", "train"]),
        _event("ev_u", "How long should I boil an egg so that the yolk stays soft", "uma",
               ["review", "train"])], actor="test")
    _cli(db_url, "rubric", "publish", str(tmp_path / "rubric.yaml"))
    _cli(db_url, "reviewer", "add", "r1")
    _cli(db_url, "quality", "set-status", "r1", "calibrated", "--reason", "test")
    sams = _cli(db_url, "task", "create", "--event", "ev_s", "--rubric", "cls",
                "--overlap", "1")["task_id"]
    _cli(db_url, "queue", "next", "--reviewer", "r1")  # sam's task represents the cluster
    _cli(db_url, "task", "create", "--event", "ev_t", "--rubric", "cls", "--overlap", "1")
    assert _cli(db_url, "queue", "triage")["tasks_clustered"] == 1
    _cli(db_url, "review", "submit", sams, "--reviewer", "r1", "--answers",
         json.dumps({"verdict": "safe", "rewrite": REWRITE}))
    umas = _cli(db_url, "task", "create", "--event", "ev_u", "--rubric", "cls",
                "--overlap", "1")["task_id"]
    _cli(db_url, "queue", "next", "--reviewer", "r1")
    _cli(db_url, "review", "submit", umas, "--reviewer", "r1", "--answers",
         json.dumps({"verdict": "safe", "rewrite": "About six minutes in boiling water."}))

    with transaction(engine) as session:  # the copy names its source
        copied = [lb for lb in iter_final_labels(session) if lb.event_id == "ev_t"]
        sams_event = session.scalar(sa.select(ReviewTaskRow.event_id)
                                    .where(ReviewTaskRow.id == sams))
    engine.dispose()
    assert sams_event == "ev_s"
    assert {lb.question_id for lb in copied} == {"verdict", "rewrite"}
    assert all(lb.provenance == "cluster_propagated" and lb.source_task_id == sams
               and lb.source_event_id == "ev_s" and lb.source_consent == {"review"}
               for lb in copied)

    built = _cli(db_url, "dataset", "build", str(spec))
    folder = tmp_path / "home" / "datasets" / built["version_id"]
    records = [json.loads(line) for line in
               (folder / "records.jsonl").read_text().splitlines()]
    assert [r["lineage"]["event_id"] for r in records] == ["ev_u"]
    assert "Sam Perkins" not in (folder / "records.jsonl").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    consent = next(s for s in manifest["steps"] if s["step"] == "consent")
    assert consent["removed_ids"] == {"missing_consent:train": ["ev_s"],
                                      "source_missing_consent": ["ev_t"]}
    assert consent["notes"]["propagated_text_labels"]["reasons"] == {
        "source_missing_consent:train": 1}
