"""Plain records that flow through selection: candidates in, examples out.

A :class:`Candidate` is one feedback event with what selection needs to know about it
(content, consent, subject, versions, slice) and the final labels resolved for it. An
:class:`Example` is one training record made from a candidate (a preference pair, a
demonstration or a classification example) that keeps its lineage: the event, the
labels (and through them reviews, adjudications, rubric and policy versions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hilt.review.records import FinalLabelRecord


@dataclass(slots=True)
class Candidate:
    event_id: str
    created_at: datetime
    consent: frozenset[str]
    messages: list[dict[str, str]] | None  # None once the content has been erased
    responses: list[str]
    subject_id: str | None = None
    feedback: list[dict[str, Any]] = field(default_factory=list)
    labels: list[FinalLabelRecord] = field(default_factory=list)
    slice: str = "unsliced"
    template: dict[str, str | None] = field(default_factory=dict)
    policy_version: str | None = None
    model_version: str | None = None

    @property
    def erased(self) -> bool:
        return self.messages is None

    @classmethod
    def from_event(cls, event: dict[str, Any], *, labels: list[FinalLabelRecord] | None = None,
                   slice_key: str = "slice", created_at: datetime | None = None,
                   erased: bool = False) -> Candidate:
        """From a feedback event as stored (``FeedbackEvent.model_dump(mode='json')``)."""
        ctx = event.get("context") or {}
        interaction = event.get("interaction") or {}
        if erased:
            messages = None
        elif interaction.get("messages") is not None:
            messages = [{"role": m["role"], "content": m["content"]}
                        for m in interaction["messages"]]
        else:
            messages = [{"role": "user", "content": interaction.get("prompt") or ""}]
        stamp = created_at or event.get("created_at")
        if isinstance(stamp, str):
            stamp = datetime.fromisoformat(stamp)
        metadata = ctx.get("metadata") or {}
        return cls(
            event_id=str(event["id"]), created_at=stamp,  # type: ignore[arg-type]
            consent=frozenset(ctx.get("consent") or ()), messages=messages,
            responses=[] if erased else [r["text"] for r in event.get("responses") or []],
            subject_id=ctx.get("subject_id"),
            feedback=[] if erased else list(event.get("feedback") or []),
            labels=list(labels or []), slice=str(metadata.get(slice_key, "unsliced")),
            template={"prompt_template_id": ctx.get("prompt_template_id"),
                      "prompt_template_version": ctx.get("prompt_template_version"),
                      "role_format": ctx.get("role_format")},
            policy_version=ctx.get("policy_version"), model_version=ctx.get("model_version"))


def render_prompt(messages: list[dict[str, str]]) -> str:
    """A single user turn is its text; a conversation is ``role: text`` lines."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


@dataclass(slots=True)
class Example:
    key: str  # identity across versions: same key, other content = relabelled
    kind: str
    source: str
    event_id: str
    subject_id: str | None
    messages: list[dict[str, str]]
    slice: str
    template: dict[str, str | None]
    labels: tuple[FinalLabelRecord, ...]
    policy_version: str | None
    confidence: float
    chosen: str | None = None
    rejected: str | None = None
    completion: str | None = None
    text: str | None = None
    label: str | None = None
    redacted: tuple[str, ...] = ()
    split: str = "train"
    # Row of this example in the selection's :class:`hilt.data.textfeatures.TextFeatures`.
    text_row: int = -1
    # Classification: the rendered prompt of the event, which a prompt-grouped split
    # groups by whatever part of the event ``text`` holds (not written to records).
    prompt_text: str | None = None
    # Classification ``prompt_response``: the prompt and the response ``text`` joins,
    # each decontaminated as a field of its own (a short held-out prompt equals the
    # prompt, never the joined text). The prompt is written as the record's ``prompt``.
    text_parts: tuple[str, ...] = ()
    # Classification from an event's own feedback: the name of the label (the question
    # it answers), so that two labels of one text about different things never conflict.
    feedback_name: str | None = None

    # Names of the text-bearing attributes, for PII, dedup and decontamination.
    TEXT_FIELDS = ("chosen", "rejected", "completion", "text")

    def texts(self) -> list[str]:
        out = [m["content"] for m in self.messages]
        out.extend(v for v in (self.chosen, self.rejected, self.completion, self.text)
                   if v is not None)
        return out

    def prompt(self) -> str:
        return render_prompt(self.messages)

    def group_prompt(self) -> str:
        """The prompt a prompt-grouped split groups by: the conversation's, or for a
        classification example the source event's (its ``text`` may hold the response)."""
        if self.messages:
            return self.prompt()
        return self.prompt_text if self.prompt_text is not None else (self.text or "")

    def decontamination_parts(self) -> list[str]:
        """Texts checked against held-out suites besides :meth:`texts`."""
        return list(self.text_parts)

    def dedup_text(self) -> str:
        return "\n".join(self.texts())

    def lineage(self) -> dict[str, Any]:
        labels = self.labels
        if len(labels) == 1:  # the usual case, without the set machinery
            lb = labels[0]
            policies = {v for v in (self.policy_version, lb.policy_version) if v}
            return {
                "event_id": self.event_id, "label_ids": [lb.label_id],
                "review_ids": sorted(set(lb.review_ids)),
                "adjudication_ids": [lb.adjudication_id] if lb.adjudication_id else [],
                "rubrics": [f"{lb.rubric_id}@{lb.rubric_version}"],
                "policy_versions": sorted(policies), "provenance": [lb.provenance]}
        return {
            "event_id": self.event_id,
            "label_ids": sorted({lb.label_id for lb in labels}),
            "review_ids": sorted({r for lb in labels for r in lb.review_ids}),
            "adjudication_ids": sorted({lb.adjudication_id for lb in labels
                                        if lb.adjudication_id}),
            "rubrics": sorted({f"{lb.rubric_id}@{lb.rubric_version}" for lb in labels}),
            "policy_versions": sorted({v for v in [self.policy_version,
                                                    *(lb.policy_version for lb in labels)]
                                       if v}),
            "provenance": sorted({lb.provenance for lb in labels}),
        }

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "key": self.key, "kind": self.kind, "source": self.source,
            "messages": self.messages,
            "prompt": self.prompt() if self.messages else
            (self.text_parts[0] if self.text_parts else None),
            "slice": self.slice,
            "split": self.split, "template": self.template, "confidence": self.confidence,
            "redacted": list(self.redacted), "lineage": self.lineage(),
        }
        for name in self.TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                record[name] = value
        if self.label is not None:
            record["label"] = self.label
        return record
