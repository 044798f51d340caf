"""From k reviews to a label: the aggregator hook and the adjudication rule (pure).

An *aggregator* maps one question's answers to ``Aggregate(value, confidence,
provenance)`` or ``None`` when it cannot decide. The default,
:func:`majority_aggregator`, takes the most frequent canonical answer:

    confidence = n_winner / n,  provenance = "unanimous" if n_winner = n,
                                             "majority"  if n_winner > n / 2,
                                             no decision otherwise (ties, pluralities).

A checklist (``multi_choice``) is decided option by option (:class:`ChecklistTally`):
the label holds the options ticked by more than half of the answers, its confidence is
the smallest share of answers agreeing with the decision on one option, and an option
ticked by exactly half leaves the question undecided. Answers ``[tone]``,
``[tone, facts]``, ``[facts]`` give ``[facts, tone]`` (the canonical order of a stored
answer), confidence 2/3, ``majority``; ``unanimous`` only when every answer is the same
selection. Its agreement for the adjudication policy is per option too (the smallest
pairwise agreement on ticking one option), so a checklist is as contested as its most
contested option, like a single yes/no question would be.

Any function with the same signature can be passed instead, e.g. one backed by a
Dawid–Skene model (Dawid & Skene, 1979) fitted by :mod:`hilt.quality`, returning
provenance ``"model_aggregated"`` and its posterior as the confidence.

Free-text and rewrite answers are not judgments to vote on: they become a final label
only when all reviewers who wrote one wrote the same text, or when an adjudicator
supplies one; the label's confidence is the share of the task's reviewers who wrote it
(an optional rewrite by one reviewer of three: 1/3).

Optional questions that some reviewers left unanswered (:func:`decide`, the *panel* being
every review of the task):

- a multi-select (``multi_choice``) is a checklist: a reviewer who submitted without
  ticking anything selected nothing, so their answer counts as ``[]`` and every option
  is voted over the whole panel (one tick among three reviews: ``[]`` by 2/3);
- any other judged question (single choice, scale, preference, ranking) treats a
  missing answer as an abstention: the label is voted among those who answered, its
  confidence is scaled by the share of the panel who did (for a majority vote, the
  share of the panel that gave the winning answer), and it is never ``unanimous``
  (``majority`` instead), since the panel did not all give it. Abstaining is not
  disagreeing: whether the question needs an adjudicator is judged on the answers
  given. A question nobody answered has no label.
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


@dataclass(frozen=True)
class ChecklistTally:
    """How many of ``n`` answers to a checklist ticked each option (options in the
    rubric's order, then any other option in the order first ticked). An option nobody
    ticked has every answer agreeing on it, so only ticked options are tallied."""

    n: int
    ticks: dict[str, int]

    def chosen(self) -> list[str]:
        """The options ticked by more than half of the answers, in the canonical order
        of a stored answer (:meth:`Question.check_answer`: sorted), so that the label
        equals the answer of a reviewer who ticked exactly those options."""
        return sorted(o for o, t in self.ticks.items() if 2 * t > self.n)

    def tied(self) -> list[str]:
        """The options ticked by exactly half of the answers (undecided)."""
        return [o for o, t in self.ticks.items() if 2 * t == self.n]

    def confidence(self) -> float:
        """The smallest share of answers agreeing with the decision on one option."""
        return min((max(t, self.n - t) / self.n for t in self.ticks.values()), default=1.0)

    def agreement(self) -> float:
        """The smallest pairwise agreement on ticking one option (1.0 for fewer than
        two answers)."""
        if self.n < 2:
            return 1.0
        pairs = self.n * (self.n - 1)
        return min(((t * (t - 1) + (self.n - t) * (self.n - t - 1)) / pairs
                    for t in self.ticks.values()), default=1.0)

    def aggregate(self) -> Aggregate | None:
        if self.n == 0 or self.tied():
            return None
        if all(t == self.n for t in self.ticks.values()):  # every answer the same
            return Aggregate(self.chosen(), 1.0, "unanimous")
        return Aggregate(self.chosen(), self.confidence(), "majority")


def checklist_tally(question: Question, answers: Sequence[Answer]) -> ChecklistTally | None:
    """The tally of a checklist's answers; ``None`` when one is not a list of options
    (such an answer can only be voted on as a whole)."""
    ticks = dict.fromkeys(question.option_values(), 0)
    for a in answers:
        if not isinstance(a.value, list) or not all(isinstance(v, str) for v in a.value):
            return None
        for option in set(a.value):
            ticks[option] = ticks.get(option, 0) + 1
    return ChecklistTally(len(answers), {o: t for o, t in ticks.items() if t})


def majority_aggregator(question: Question, answers: Sequence[Answer]) -> Aggregate | None:
    """Unanimous or strict-majority answer; ``None`` when no answer has a majority. A
    checklist is decided option by option (:class:`ChecklistTally`)."""
    if not answers:
        return None
    tally = checklist_tally(question, answers) if question.kind == "multi_choice" else None
    if tally is not None:
        return tally.aggregate()
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


def _no_majority_reason(tally: ChecklistTally | None) -> str:
    """Why a judged question has no decision; for a checklist, the options it is tied on
    (an aggregator other than majority vote may decline for its own reasons)."""
    tied = tally.tied() if tally is not None else []
    if not tied:
        return "no majority"
    names = ", ".join(repr(o) for o in tied)
    return f"no majority on option{'s' if len(tied) > 1 else ''} {names}"


class AdjudicationPolicy(BaseModel):
    """When a disagreeing task goes to an adjudicator.

    - ``any_disagreement``: whenever reviewers are not unanimous on a judged question;
    - ``agreement_below``: when a judged question's pairwise agreement is below
      ``min_agreement`` (a checklist's: its least agreed option's, see
      :meth:`ChecklistTally.agreement`);
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
    # The reviews the question was decided over (for a checklist, every review).
    review_ids: tuple[str, ...] = ()


def _share_of_reviewers(question: Question, agg: Aggregate | None, wrote: int,
                        reviewers: int) -> Aggregate | None:
    """A label that only some of the task's reviewers answered is as sure as the share
    who answered. An unjudged text (free text, rewrite): one optional rewrite among three
    reviews is one person's text, not an agreed one (confidence 1/3, at most). A judged
    answer is voted among those who answered, then scaled by their share of the panel,
    and is not ``unanimous``: two abstentions beside one answer are not agreement.
    ``min_confidence`` (a dataset spec's) can then leave such labels out."""
    if agg is None or wrote >= reviewers:
        return agg
    if question.kind not in AGGREGATED_KINDS:
        return replace(agg, confidence=min(agg.confidence, wrote / reviewers))
    provenance = "majority" if agg.provenance == "unanimous" else agg.provenance
    return replace(agg, confidence=agg.confidence * wrote / reviewers,
                   provenance=provenance)


def panel_of(answers: dict[str, list[Answer]]) -> list[Answer]:
    """One entry per review that answered any question, in the order first seen (the
    value is not used): the panel when the caller has no list of the task's reviews."""
    seen: dict[str, Answer] = {}
    for given in answers.values():
        for a in given:
            seen.setdefault(a.review_id, a)
    return list(seen.values())


def panel_answers(question: Question, given: Sequence[Answer], panel: Sequence[Answer]
                  ) -> list[Answer]:
    """The answers a question is decided over. A checklist (``multi_choice``) left
    unticked by a reviewer who submitted is an empty selection, ``[]``, in panel order;
    for every other kind a missing answer stays missing (an abstention)."""
    if question.kind != "multi_choice":
        return list(given)
    by_review = {a.review_id: a for a in given}
    filled = [by_review.pop(m.review_id) if m.review_id in by_review
              else Answer(m.review_id, m.reviewer_id, [], m.confidence) for m in panel]
    return filled + list(by_review.values())


def decide(questions: Sequence[Question], answers: dict[str, list[Answer]], severity: int,
           policy: AdjudicationPolicy, aggregator: Aggregator = majority_aggregator,
           *, panel: Sequence[Answer] | None = None) -> list[QuestionOutcome]:
    """Aggregate every question and say which need an adjudicator, and why.

    ``panel``: one entry per review of the task (values unused), so that a review that
    answered no question at all still counts; by default every review found in
    ``answers``."""
    level = int(policy.severity[-1])
    members = list(panel) if panel is not None else panel_of(answers)
    reviewers = len(members)
    outcomes = []
    for q in questions:
        given = panel_answers(q, answers.get(q.id, []), members)
        if not given:
            continue  # nobody answered: no label
        voted = aggregator(q, given)
        agg = _share_of_reviewers(q, voted, len(given), reviewers)
        # The agreement the policy reads: a checklist's per option
        # (ChecklistTally.agreement), any other question's pairwise agreement.
        tally = checklist_tally(q, given) if q.kind == "multi_choice" else None
        agreement = tally.agreement() if tally is not None else \
            pairwise_agreement([a.value for a in given])
        judged = q.kind in AGGREGATED_KINDS
        reason = None
        # Triggers read the vote among those who answered (``voted``): an abstention is
        # not a disagreement, and the label's confidence already says how few answered.
        if judged and voted is None:
            reason = _no_majority_reason(tally)
        elif judged and voted is not None and \
                voted.confidence < max(policy.min_confidence, voted.min_confidence):
            floor = max(policy.min_confidence, voted.min_confidence)
            reason = f"confidence {voted.confidence:.2f} < {floor}"
        elif judged and agreement < 1.0:
            model = voted is not None and voted.provenance == "model_aggregated"
            if policy.mode == "any_disagreement" and not model:
                reason = "reviewers disagree"
            elif policy.mode == "agreement_below" and agreement < policy.min_agreement \
                    and not model:
                reason = f"agreement {agreement:.2f} < {policy.min_agreement}"
            elif policy.mode == "severity_at_or_above" and severity <= level:
                reason = f"reviewers disagree on a sev{severity} task"
        outcomes.append(QuestionOutcome(q.id, agg, agreement, reason is not None, reason,
                                        tuple(a.review_id for a in given)))
    return outcomes
