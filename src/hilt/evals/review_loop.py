"""Closing the loop: the review sample goes into the review queue, its labels come back.

1. :func:`send_review_sample` stores each sampled candidate output as a feedback event
   (consent ``review`` and ``eval`` only — held-out suite text must never become
   training data) and opens one review task per event under the pinned rubric, through
   the review stage (:func:`hilt.review.tasks.create_task`). Re-sending a sample adds
   only what is new: event ids derive from the candidate file, the suite file and the
   item (the output and the prompt it answers), an event already stored is that output
   whatever run metadata (suite id, candidate id) a rerun gives it and is not stored
   again, and an event that already has a task under the pinned rubric version gets no
   second one (a task under another version does not count: after a revision the sample
   is reviewed again). A larger sample thus adds its new items only.
   The events are stored without live escalation (``store_events(..., escalate=False)``):
   they are a candidate model's answers to a held-out suite, not production traffic, and
   the sample itself decides which are reviewed, by how many reviewers and under which
   rubric version. The active rule set would open tasks of its own for them (other
   pool, overlap and rubric version), spending reviewer time twice, and its audit
   draws, whose rates are meant to estimate the production stream, would count
   evaluation outputs.
2. Reviewers work the tasks like any other; resolved tasks produce final labels.
3. :func:`collect_review_labels` reads the final labels of the sample's events for the
   rubric question (:func:`hilt.review.labels.iter_final_labels`) and
   :func:`fold_review_labels` builds the superseding decision record (human judgments win;
   rates re-estimated, see :mod:`hilt.evals.review_sample`), stores both records and
   writes the refreshed report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import InputError
from hilt.evals.files import ResponseLine, SuiteItem
from hilt.evals.review_sample import apply_review_labels, judgment_of_label
from hilt.review.escalation import REVIEW_SAMPLE_SOURCE as SOURCE
from hilt.store import audit


def _sample(record: Mapping[str, Any]) -> dict[str, Any]:
    sample = record["inputs"].get("review_sample")
    if sample is None:
        raise InputError("the decision has no review sample (run `hilt check` with "
                         "--review-sample and --rubric)", field="review_sample")
    return dict(sample)


def send_review_sample(session: Session, record: Mapping[str, Any],
                       items: Sequence[SuiteItem], candidate: Mapping[str, ResponseLine], *,
                       actor: str, pool: str = "default", overlap_k: int = 3,
                       severity: str = "sev3") -> dict[str, Any]:
    """Store the sampled outputs as events and open their review tasks (one transaction)."""
    from hilt.events.ingest import store_events
    from hilt.events.model import FeedbackEvent
    from hilt.review.tasks import create_task
    from hilt.store.tables.core import EventRow
    from hilt.store.tables.review import ReviewTaskRow

    sample = _sample(record)
    by_id = {item.id: item for item in items}
    versions = record["inputs"]["versions"]
    events = []
    for entry in sample["items"]:
        item = by_id[entry["id"]]
        events.append(FeedbackEvent.model_validate({
            "id": entry["event_id"],
            # the event model holds a conversation as messages: reviewers see its turns
            "interaction": ({"prompt": item.prompt} if item.messages is None
                            else {"messages": item.chat()}),
            "responses": [{"text": candidate[item.id].response,
                           "model_version": versions["candidate"]["id"]}],
            "context": {"source": SOURCE, "consent": ["review", "eval"],
                        "model_version": versions["candidate"]["id"],
                        "tags": ["regression_review_sample"],
                        "metadata": {"suite": versions["suite"]["id"],
                                     "suite_sha256": versions["suite"]["sha256"],
                                     "item_id": item.id, "slice": item.slice,
                                     "expect": item.expect,
                                     "candidate_sha256": versions["candidate"]["sha256"]}}}))
    # an event already stored is this output (its id derives from the candidate file,
    # the suite file and the item); the run metadata of the first send stays with it
    stored = set(session.execute(sa.select(EventRow.id).where(
        EventRow.id.in_([e.id for e in events]))).scalars())
    fresh = [e for e in events if e.id not in stored]
    # evaluation output, not production traffic: the active escalation rules do not run
    # on it (see the module docstring)
    new = (store_events(session, fresh, actor=actor, source_name=SOURCE,
                        escalate=False).new if fresh else 0)
    rubric_id, _, version = sample["rubric"].partition("@")
    # only a task under the pinned version is the sample's own: one under another version
    # (an earlier run before a revision, an escalation rule pinned elsewhere) gives no
    # label the sample reads, and skipping the event would leave it pending for good
    has_task = set(session.execute(sa.select(ReviewTaskRow.event_id).where(
        ReviewTaskRow.event_id.in_([e.id for e in events]),
        ReviewTaskRow.rubric_id == rubric_id,
        ReviewTaskRow.rubric_version == int(version))).scalars())
    tasks: list[list[str]] = []
    for event in events:
        assert event.id is not None
        if event.id in has_task:
            continue
        task_id = create_task(session, event_id=event.id, rubric=sample["rubric"],
                              actor=actor, severity=severity, pool=pool, overlap_k=overlap_k)
        tasks.append([event.id, task_id])
    audit.append(session, actor=actor, action="gate.review_sample_sent",
                 entity_type="gate_decision", entity_id=record["hash"],
                 payload={"rubric": sample["rubric"], "question": sample["question"],
                          "items": [[e["id"], e["event_id"], e["inclusion_probability"]]
                                    for e in sample["items"]], "tasks": tasks})
    return {"events_new": new, "tasks_created": len(tasks), "tasks": tasks}


def collect_review_labels(session: Session, record: Mapping[str, Any]) -> dict[str, Any]:
    """``{item id: label}`` for every sampled item whose review has a final label.

    The newest final label of the question under the pinned rubric version wins (an
    adjudication after a majority, for instance).
    """
    from hilt.review.labels import iter_final_labels

    sample = _sample(record)
    rubric_id, _, version = sample["rubric"].partition("@")
    item_of = {e["event_id"]: e["id"] for e in sample["items"]}
    found: dict[str, Any] = {}
    for label in iter_final_labels(session, rubric_versions=[(rubric_id, int(version))]):
        if label.event_id not in item_of or label.question_id != sample["question"]:
            continue
        judgment = judgment_of_label(label.value)
        if judgment is None:
            continue
        found[item_of[label.event_id]] = {
            "judgment": judgment, "value": label.value, "label_id": label.label_id,
            "task_id": label.task_id, "provenance": label.provenance,
            "confidence": label.confidence, "decided_at": label.decided_at.isoformat()}
    return found


def render_outputs(record: dict[str, Any], base: str | Path | None = None,
                   example_limit: int = 200) -> dict[str, str]:
    """report.json, report.html and decision.json for ``record``, as text: the inputs
    are re-read (and checked against their sha256) here, so a caller can render before
    it commits anything and write after. ``base``: the decision's folder, where relative
    recorded paths are looked for too."""
    from hilt.evals.html import render_html
    from hilt.evals.recheck import reload_inputs
    from hilt.evals.report import build_report, failing_examples, to_json

    items, lines = reload_inputs(record, base)
    table = apply_review_labels(record["inputs"]["judgments"],
                                record["inputs"].get("review_sample"))
    report = build_report(record, failing_examples(items, table, lines, limit=example_limit))
    return {"report.json": json.dumps(report, indent=1, sort_keys=True,
                                      ensure_ascii=False) + "\n",
            "report.html": render_html(report), "decision.json": to_json(record)}


def write_outputs(record: dict[str, Any], out_dir: str | Path, example_limit: int = 200
                  ) -> dict[str, Any]:
    """Rewrite report.json, report.html and decision.json for ``record`` (atomically)."""
    from hilt.evals.report import write_outputs_atomically

    files = render_outputs(record, out_dir, example_limit)
    write_outputs_atomically(out_dir, files)
    return dict(json.loads(files["report.json"]))


def fold_review_labels(session: Session, record: dict[str, Any], *, actor: str
                       ) -> dict[str, Any] | None:
    """Store the superseding record with the newly returned labels (None if none new).

    The record given is verified and stored first if it is not yet; both records and an
    audit entry are written in the caller's transaction.
    """
    from hilt.gate.decision import with_review_labels
    from hilt.gate.store import latest, relineage, store_decision

    stored = store_decision(session, record, actor=actor)
    current = dict(latest(session, stored.hash, lock=True).record)
    labels = collect_review_labels(session, current)
    known = _sample(current).get("labels") or {}
    fresh = {k: v for k, v in labels.items() if known.get(k) != v}
    if not fresh:
        return None
    at = datetime.now(UTC).isoformat()
    new_record = with_review_labels(current, fresh, at, lineage=relineage(session, current, at))
    store_decision(session, new_record, actor=actor)
    audit.append(session, actor=actor, action="gate.review_labels_folded",
                 entity_type="gate_decision", entity_id=current["hash"],
                 payload={"resulting": new_record["hash"], "labels": len(fresh),
                          "outcome": new_record["outcome"]})
    return new_record
