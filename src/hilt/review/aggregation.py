"""From k reviews to a label: the aggregator hook and the adjudication rule (pure).

An *aggregator* maps one question's answers to ``Aggregate(value, confidence,
provenance)`` or ``None`` when it cannot decide. The default,
:func:`majority_aggregator`, takes the most frequent canonical answer:

    confidence = n_winner / n,  provenance = "unanimous" if n_winner = n,
                                             "majority"  if n_winner > n / 2,
                                             no decision otherwise (ties, pluralities).

Any function with the same signature can be passed instead, e.g. one backed by a
Dawid–Skene model (Dawid & Skene, 1979) fitted by :mod:`hilt.quality`, returning
provenance ``"model_aggregated"`` and its posterior as the confidence.

Free-text and rewrite answers are not judgments to vote on: they become a final label
only when all reviewers who wrote one wrote the same text, or when an adjudicator
supplies one; the label's confidence is the share of the task's reviewers who wrote it
(an optional rewrite by one reviewer of three: 1/3).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hilt.canonical import canonical_json
from hilt.review.rubric_spec import AGGREGATED_KINDS, Question
from hilt.review.yamlio import YamlFloat


@dataclass(frozen=True)
class Answer:
    """One reviewer's answer to one question."""

    review_id: str
    reviewer_id: str
    value: Any
    confidence: float | None = None


@dataclass(frozen=True)
class Aggregate:
    """A decided answer. ``min_confidence`` is the aggregator's own floor (a model's
    posterior threshold): below ``max(policy.min_confidence, min_confidence)`` the
    question goes to an adjudicator."""

    value: Any
    confidence: float
    provenance: str
    min_confidence: float = 0.0


Aggregator = Callable[[Question, Sequence[Answer]], Aggregate | None]

_PLAIN = (str, int, bool, type(None))


def answer_key(value: Any) -> Any:
    """A hashable key under which two answers are equal exactly when their canonical
    JSON texts are. Choice, scale and text answers (str, int, bool, None) are their own
    key with their type beside them, so that ``1``, ``True`` and ``"1"`` stay apart as in
    JSON; anything else (lists, mappings, floats) is keyed by its canonical text. Votes
    are counted on every resolution, and the canonical text costs microseconds each."""
    kind = type(value)
    if kind in _PLAIN:
        return (kind, value)
    return canonical_json(value)


def majority_aggregator(question: Question, answers: Sequence[Answer]) -> Aggregate | None:
    """Unanimous or strict-majority answer; ``None`` when no answer has a majority."""
    if not answers:
        return None
    keys = [answer_key(a.value) for a in answers]
    counts = Counter(keys)
    top, n_top = counts.most_common(1)[0]
    n = len(answers)
    value = answers[keys.index(top)].value
    if n_top == n:
        return Aggregate(value, 1.0, "unanimous")
    if question.kind not in AGGREGATED_KINDS:
        return None
    if 2 * n_top > n:
        return Aggregate(value, n_top / n, "majority")
    return None


def pairwise_agreement(values: Sequence[Any]) -> float:
    """Share of reviewer pairs giving the same answer (1.0 for fewer than two answers)."""
    n = len(values)
    if n < 2:
        return 1.0
    counts = Counter(answer_key(v) for v in values)
    return sum(c * (c - 1) for c in counts.values()) / (n * (n - 1))


class AdjudicationPolicy(BaseModel):
    """When a disagreeing task goes to an adjudicator.

    - ``any_disagreement``: whenever reviewers are not unanimous on a judged question;
    - ``agreement_below``: when a judged question's pairwise agreement is below
      ``min_agreement``;
    - ``severity_at_or_above``: on any disagreement for tasks at ``severity`` or more
      severe (sev0 is the most severe), otherwise only when no label can be decided.

    Independently of the mode, a question with no decidable answer (a tie) or an
    aggregate confidence below ``min_confidence`` always goes to adjudication. When the
    aggregator is a model (provenance ``model_aggregated``, e.g. Dawid–Skene weighing
    reviewers by their estimated reliability), its posterior confidence replaces the two
    vote-count modes: resolving disagreements is what such a model is for.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["any_disagreement", "agreement_below", "severity_at_or_above"] = \
        "agreement_below"
    min_agreement: YamlFloat = Field(default=0.5, ge=0, le=1)
    severity: Literal["sev0", "sev1", "sev2", "sev3"] = "sev1"
    min_confidence: YamlFloat = Field(default=0.5, ge=0, le=1)


@dataclass(frozen=True)
class QuestionOutcome:
    question_id: str
    aggregate: Aggregate | None
    agreement: float
    adjudicate: bool
    reason: str | None


def _share_of_reviewers(question: Question, agg: Aggregate | None, wrote: int,
                        reviewers: int) -> Aggregate | None:
    """An unjudged text (free text, rewrite) that only some of the task's reviewers gave
    is as sure as the share who gave it: one optional rewrite among three reviews is one
    person's text, not an agreed one (confidence 1/3), so ``min_confidence`` can leave
    it out. Judged questions keep their aggregator's confidence."""
    if agg is None or question.kind in AGGREGATED_KINDS or wrote >= reviewers:
        return agg
    return replace(agg, confidence=min(agg.confidence, wrote / reviewers))


def decide(questions: Sequence[Question], answers: dict[str, list[Answer]], severity: int,
           policy: AdjudicationPolicy, aggregator: Aggregator = majority_aggregator
           ) -> list[QuestionOutcome]:
    """Aggregate every question and say which need an adjudicator, and why."""
    level = int(policy.severity[-1])
    reviewers = len({a.review_id for given in answers.values() for a in given})
    outcomes = []
    for q in questions:
        given = answers.get(q.id, [])
        if not given:
            continue
        agg = _share_of_reviewers(q, aggregator(q, given), len(given), reviewers)
        agreement = pairwise_agreement([a.value for a in given])
        judged = q.kind in AGGREGATED_KINDS
        reason = None
        if judged and agg is None:
            reason = "no majority"
        elif judged and agg is not None and \
                agg.confidence < max(policy.min_confidence, agg.min_confidence):
            floor = max(policy.min_confidence, agg.min_confidence)
            reason = f"confidence {agg.confidence:.2f} < {floor}"
        elif judged and agreement < 1.0:
            model = agg is not None and agg.provenance == "model_aggregated"
            if policy.mode == "any_disagreement" and not model:
                reason = "reviewers disagree"
            elif policy.mode == "agreement_below" and agreement < policy.min_agreement \
                    and not model:
                reason = f"agreement {agreement:.2f} < {policy.min_agreement}"
            elif policy.mode == "severity_at_or_above" and severity <= level:
                reason = f"reviewers disagree on a sev{severity} task"
        outcomes.append(QuestionOutcome(q.id, agg, agreement, reason is not None, reason))
    return outcomes
