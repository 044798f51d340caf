"""Rubric questions as HTML form fields, and submitted forms back to answers.

This is translation only: which input shows which question, and which form value means
which answer. Whether an answer is valid is decided by the review stage
(:func:`hilt.review.rubric_spec.clean_answers`), never here.

Keyboard: the choices of a question are numbered 1–9 then 0 (the key that picks them);
questions with more than ten choices fall back to inputs that are typed into.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

from hilt.review.rubric_spec import Question, RubricSpec
from hilt.review.tasks import COMPARING_KINDS

CHOICE_KEYS = "1234567890"
RESPONSE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class FormProblem(ValueError):
    """A form value that cannot be read as an answer at all (not a judgement on it)."""

    def __init__(self, question_id: str, message: str) -> None:
        super().__init__(message)
        self.question_id = question_id


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    description: str = ""
    key: str | None = None


@dataclass(frozen=True)
class FieldView:
    """One question as the template draws it."""

    question: Question
    number: int
    name: str
    # radio, checkbox, number, textarea, ranking, pair_select, or not_applicable: a
    # question comparing responses on an item with fewer than two (no inputs)
    widget: str
    choices: list[Choice] = field(default_factory=list)
    required: bool = True

    @property
    def id(self) -> str:
        return self.question.id


def letter(index: int) -> str:
    return RESPONSE_LETTERS[index] if index < len(RESPONSE_LETTERS) else str(index + 1)


def _keyed(choices: list[Choice]) -> list[Choice]:
    if len(choices) > len(CHOICE_KEYS):
        return choices
    return [Choice(c.value, c.label, c.description, CHOICE_KEYS[i])
            for i, c in enumerate(choices)]


def _scale_points(q: Question) -> list[float] | None:
    """The points of a short scale, or None when there are too many to list (a number
    field then): counted first, so a scale of 10^12 points costs nothing."""
    assert q.min is not None and q.max is not None
    span = (q.max - q.min) / q.step
    # a scale published before its span was checked may still overflow: too many points
    if not math.isfinite(span):
        return None
    count = int(round(span)) + 1
    if count > len(CHOICE_KEYS):
        return None
    # min + i * step drifts in binary floating point (0.1 * 7 = 0.7000000000000001, off
    # the scale's end); rounded, each point is the number the rubric means
    return [round(q.min + i * q.step, 12) for i in range(count)]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def field_view(q: Question, number: int, n_responses: int,
               required: bool | None = None) -> FieldView | None:
    """The field for one question; ``None`` for ``rewrite`` (the rewrite editor shows it)."""
    name = f"q.{q.id}"
    need = q.required if required is None else required
    if q.kind in ("single_choice", "multi_choice"):
        widget = "radio" if q.kind == "single_choice" else "checkbox"
        return FieldView(q, number, name, widget, _keyed(
            [Choice(o.value, o.value.replace("_", " "), o.description) for o in q.options]),
            need)
    if q.kind == "scale":
        points = _scale_points(q)
        if points is None:
            return FieldView(q, number, name, "number", required=need)
        choices = [Choice(_number(p), _number(p), q.anchors.get(_number(p), ""))
                   for p in points]
        return FieldView(q, number, name, "radio", _keyed(choices), need)
    if q.kind in COMPARING_KINDS and n_responses < 2:
        # nothing to compare: the review stage refuses any answer to it, and refuses to
        # make a task whose rubric requires one (hilt.review.tasks.unanswerable_questions)
        return FieldView(q, number, name, "not_applicable", required=False)
    if q.kind == "preference":
        pairs = list(permutations(range(n_responses), 2))
        if len(pairs) <= len(CHOICE_KEYS):
            return FieldView(q, number, name, "radio", _keyed(
                [Choice(f"{a}>{b}", f"{letter(a)} better than {letter(b)}") for a, b in pairs]),
                need)
        return FieldView(q, number, name, "pair_select", required=need)
    if q.kind == "ranking":
        return FieldView(q, number, name, "ranking", required=need)
    if q.kind == "free_text":
        return FieldView(q, number, name, "textarea", required=need)
    return None


def field_views(spec: RubricSpec, n_responses: int,
                required_ids: set[str] | None = None) -> list[FieldView]:
    """Fields in rubric order; ``required_ids`` overrides which questions are required."""
    out: list[FieldView] = []
    for q in spec.questions:
        view = field_view(q, len(out) + 1, n_responses,
                          None if required_ids is None else q.id in required_ids)
        if view is not None:
            out.append(view)
    return out


def rewrite_question(spec: RubricSpec) -> Question | None:
    return next((q for q in spec.questions if q.kind == "rewrite"), None)


def _line_breaks(text: str) -> str:
    """Line breaks as the page counted them: browsers send a text box's line breaks as
    CRLF but count each as one character against its ``maxlength`` (and against a
    rubric's ``max_length``), so a text the box accepted would otherwise be refused as
    too long, and stored with CRs that no other path writes."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


class FormData:
    """The parts of a submitted form the pages read (Starlette's FormData fits), line
    breaks as ``\\n``."""

    def __init__(self, items: Sequence[tuple[str, Any]]) -> None:
        self.items = [(k, _line_breaks(v)) for k, v in items if isinstance(v, str)]

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.items if k == key), None)

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self.items if k == key]


def _text(form: FormData, key: str) -> str | None:
    value = form.get(key)
    return value if value is not None and value.strip() else None


def _parse_number(q: Question, raw: str) -> float | int:
    try:
        number = float(raw)
    except ValueError:
        raise FormProblem(q.id, f"{raw!r} is not a number") from None
    return int(number) if number.is_integer() else number


def _parse_index(q: Question, raw: str) -> int:
    """A response index as the form sends it: plain digits only (``0.9`` or ``1e999``
    would otherwise be read as another response, or fail outside the form)."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise FormProblem(q.id, f"{raw!r} names no response")
    return int(text)


def _parse_ranking(q: Question, raw: str, n_responses: int) -> list[int]:
    tokens = raw.replace(",", " ").replace(">", " ").split()
    out = []
    for token in tokens:
        token = token.strip().upper()
        if token in RESPONSE_LETTERS[:n_responses]:
            out.append(RESPONSE_LETTERS.index(token))
        else:
            raise FormProblem(q.id, f"{token!r} names no response (use letters "
                                    f"A–{letter(n_responses - 1)})")
    return out


def _pair_from_selects(q: Question, form: FormData, name: str) -> dict[str, int] | None:
    """The better and the worse response from two selects; neither picked is no answer,
    one of them alone is refused (dropping it would lose half an answer unseen)."""
    # "—" sends an empty value; anything else must name a response
    chosen_raw = form.get(name + ".chosen") or None
    rejected_raw = form.get(name + ".rejected") or None
    if chosen_raw is None and rejected_raw is None:
        return None
    if chosen_raw is None or rejected_raw is None:
        missing = "better" if chosen_raw is None else "worse"
        raise FormProblem(q.id, f"pick the {missing} response too (or neither, to leave "
                                "the question unanswered)")
    return {"chosen": _parse_index(q, chosen_raw), "rejected": _parse_index(q, rejected_raw)}


def answers_from_form(fields: Sequence[FieldView], form: FormData, n_responses: int
                      ) -> dict[str, Any]:
    """Answers as the review stage expects them; unanswered questions are left out."""
    answers: dict[str, Any] = {}
    for f in fields:
        q = f.question
        if f.widget == "checkbox":
            chosen = form.getlist(f.name)
            if chosen or form.get(f.name + ".present") is not None and f.required:
                answers[q.id] = chosen
            continue
        if f.widget == "pair_select":
            pair = _pair_from_selects(q, form, f.name)
            if pair is not None:
                answers[q.id] = pair
            continue
        raw = _text(form, f.name)
        if raw is None:
            continue
        if q.kind == "scale":
            answers[q.id] = _parse_number(q, raw)
        elif q.kind == "preference":
            chosen_s, _, rejected_s = raw.partition(">")
            answers[q.id] = {"chosen": _parse_index(q, chosen_s),
                             "rejected": _parse_index(q, rejected_s)}
        elif q.kind == "ranking":
            answers[q.id] = _parse_ranking(q, raw, n_responses)
        else:
            answers[q.id] = raw
    return answers


# The review stage names responses by index (0..n-1); the pages label them A, B, ...
_INDEX_RANGE = re.compile(r"\b(\d+)\.\.(\d+)\b")
_INDEX_WORDS = (("response indices must be in", "responses must be among"),
                ("every response index", "every response"),
                ("'chosen' and 'rejected' must differ",
                 "the better and the worse response must differ"))


def with_response_letters(reason: str) -> str:
    """A preference or ranking message in the page's response letters."""
    reason = _INDEX_RANGE.sub(
        lambda m: f"{letter(int(m[1]))}–{letter(int(m[2]))}", reason)
    for index_words, letter_words in _INDEX_WORDS:
        reason = reason.replace(index_words, letter_words)
    return reason


# The form's own fields (not rubric questions) by the labels the pages give them.
FIELD_LABELS = {"confidence": "Confidence", "rationale": "Rationale",
                "rewrite": "Rewrite", "time_spent_s": "Time spent",
                "cause": "Cause of the disagreement"}


def problem_text(exc: Exception, spec: RubricSpec) -> str:
    """A refused answer as the page says it: the question by its prompt rather than its
    id, the form's other fields by their labels, and responses by their letters."""
    field_id = getattr(exc, "field", None) or getattr(exc, "question_id", None)
    reason = getattr(exc, "reason", None) or str(exc)
    question = next((q for q in spec.questions if q.id == field_id), None)
    if question is not None and question.kind in ("preference", "ranking"):
        reason = with_response_letters(reason)
    prompt = question.prompt if question is not None else FIELD_LABELS.get(
        str(field_id), field_id)
    return f"{prompt}: {reason}" if prompt else reason


def field_reason(exc: Exception, spec: RubricSpec) -> tuple[str | None, str]:
    """The field a refused answer is about (a question id, or one of the form's own
    fields such as ``confidence``) and the reason, in the page's words, to show beside
    that field."""
    field_id = getattr(exc, "field", None) or getattr(exc, "question_id", None)
    field_id = str(field_id).removeprefix("answers.") if field_id else None
    reason = str(getattr(exc, "reason", None) or exc)
    question = next((q for q in spec.questions if q.id == field_id), None)
    if question is not None and question.kind in ("preference", "ranking"):
        reason = with_response_letters(reason)
    return field_id, reason


def unanswered_text(questions: Sequence[Question], reason: str) -> str:
    """A refusal naming every question left unanswered, by prompt and in the page's
    order: the first with ``reason``, the others after it."""
    first, *others = questions
    also = f" (unanswered too: {'; '.join(q.prompt for q in others)})" if others else ""
    return f"{first.prompt}: {reason}{also}"


def rewrite_from_form(form: FormData, original: str | None) -> str | None:
    """The rewrite, when the reviewer changed the response text (else ``None``)."""
    text = form.get("rewrite")
    if text is None or not text.strip():
        return None
    normalise = lambda s: s.replace("\r\n", "\n").strip()  # noqa: E731 - browsers send CRLF
    if original is not None and normalise(text) == normalise(original):
        return None
    return text.replace("\r\n", "\n")


def optional_float(form: FormData, key: str) -> float | None:
    raw = _text(form, key)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise FormProblem(key, f"{raw!r} is not a number") from None


def form_values(form: FormData) -> dict[str, list[str]]:
    """Submitted values by field name, to redraw a form after a refused submission."""
    out: dict[str, list[str]] = {}
    for key, value in form.items:
        out.setdefault(key, []).append(value)
    return out


def answer_text(value: Any, n_responses: int = 0) -> str:
    """A stored answer as short text (for side-by-side review tables)."""
    if value is None:
        return "—"
    if isinstance(value, dict) and set(value) == {"chosen", "rejected"}:
        return f"{letter(value['chosen'])} better than {letter(value['rejected'])}"
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return " > ".join(letter(v) for v in value)
        return ", ".join(str(v) for v in value) or "(none)"
    if isinstance(value, float):
        return _number(value)
    return str(value)
