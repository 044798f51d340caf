"""Factories for data-selection tests: candidates and final labels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hilt.data.records import Candidate
from hilt.review.records import FinalLabelRecord

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def make_label(event_id: str, value: Any, *, kind: str = "preference",
               question: str = "pref", confidence: float = 0.9, rubric: str = "helpful",
               version: int = 1, provenance: str = "majority",
               adjudication: str | None = None, n: int = 0) -> FinalLabelRecord:
    return FinalLabelRecord(
        label_id=f"lb-{event_id}-{question}-{n}", event_id=event_id, task_id=f"t-{event_id}",
        rubric_id=rubric, rubric_version=version, question_id=question, question_kind=kind,
        value=value, provenance=provenance, confidence=confidence,
        review_ids=(f"rv-{event_id}-a", f"rv-{event_id}-b"), adjudication_id=adjudication,
        policy_version="policy-7", decided_at=NOW)


def make_candidate(event_id: str, prompt: str, responses: list[str], *,
                   consent: tuple[str, ...] = ("train", "review"),
                   labels: list[FinalLabelRecord] | None = None,
                   feedback: list[dict[str, Any]] | None = None, slice_name: str = "chat",
                   subject: str | None = None) -> Candidate:
    return Candidate(event_id=event_id, created_at=NOW, consent=frozenset(consent),
                     messages=[{"role": "user", "content": prompt}], responses=responses,
                     subject_id=subject, feedback=feedback or [], labels=labels or [],
                     slice=slice_name,
                     template={"prompt_template_id": "chat", "prompt_template_version": "2",
                               "role_format": "chatml"},
                     policy_version="policy-7")


def garden_event(i: int, subject: str, *, marked: str, mark: str,
                 consent: tuple[str, ...] = ("train", "review")) -> dict[str, Any]:
    """Event ``ev{i}`` of ``subject``: a garden question with two answers; the prompt and
    the chosen answer of the ``marked`` subject carry ``mark``, a word found nowhere
    else, so a test can look for that subject's text in any file."""
    word = f" {mark}" if subject == marked else ""
    return {"id": f"ev{i}", "interaction": {"prompt": f"Question {i}{word}: how do "
                                            f"plants in garden number {i} grow best?"},
            "responses": [{"text": f"Plants {i} need sun and water{word}."},
                          {"text": f"No idea about {i}."}],
            "context": {"subject_id": subject, "consent": list(consent)}}


def garden_events(engine: Any, mark: str, n: int = 4) -> list[FinalLabelRecord]:
    """Ingest ``n`` preference events of subjects s0… whose text holds ``mark`` (to find
    any trace of them later); their labels, the first reply preferred."""
    from hilt.events.ingest import ingest_events

    ingest_events(engine, [
        {"id": f"ev{i}", "interaction": {"prompt": f"Question {i} {mark}: how do plants "
                                         f"in garden number {i} grow best?"},
         "responses": [{"text": f"Plants {i} need sun and water."},
                       {"text": f"No idea about {i}."}],
         "context": {"subject_id": f"s{i}", "consent": ["train"]}} for i in range(n)],
        actor="test")
    return [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(n)]
