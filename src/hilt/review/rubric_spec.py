"""What a rubric is: questions, guidelines and worked examples, and how answers are checked.

A rubric is written in YAML (see ``examples/rubrics/``). Question kinds:

- ``single_choice``: one of ``options``; answer ``str``.
- ``multi_choice``: any subset of ``options``; answer ``list[str]``.
- ``scale``: an ordinal scale ``min..max`` (step 1 unless ``step``) with ``anchors``
  describing named points; answer a number on the scale.
- ``free_text``: answer ``str`` (at most ``max_length`` characters).
- ``preference``: which of the event's responses is better; answer
  ``{"chosen": i, "rejected": j}``.
- ``ranking``: all of the event's responses, best first; answer ``list[int]``.
- ``rewrite``: an improved version of the response; answer ``str``.

This module is pure (no database): the store lives in :mod:`hilt.review.rubrics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from hilt.errors import InputError
from hilt.review.records import QUESTION_KINDS
from hilt.review.text_checks import TEXT_MAX
from hilt.review.yamlio import FieldError, YamlFloat, YamlInt, validate_yaml

# Kinds whose answers are judgments that reviewers can agree or disagree on.
AGGREGATED_KINDS = ("single_choice", "multi_choice", "scale", "preference", "ranking")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Option(_Strict):
    value: str = Field(min_length=1)
    description: str = ""


class Question(_Strict):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["single_choice", "multi_choice", "scale", "free_text", "preference",
                  "ranking", "rewrite"]
    prompt: str = Field(min_length=1)
    help: str = ""
    required: bool = Field(default=True, strict=True)
    options: list[Option] = Field(default_factory=list)
    min: YamlFloat | None = None
    max: YamlFloat | None = None
    step: YamlFloat = 1.0
    anchors: dict[str, str] = Field(default_factory=dict,
                                    description="scale point -> what it means")
    max_length: YamlInt = Field(default=TEXT_MAX, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _short_options(cls, data: Any) -> Any:
        # Options may be written as bare strings in YAML.
        if isinstance(data, dict) and isinstance(data.get("options"), list):
            data = dict(data)
            data["options"] = [{"value": o} if isinstance(o, str) else o
                               for o in data["options"]]
        if isinstance(data, dict) and isinstance(data.get("anchors"), dict):
            data["anchors"] = {_point_key(k): v for k, v in data["anchors"].items()}
        return data

    @model_validator(mode="after")
    def _kind_fields(self) -> Question:
        if self.kind in ("single_choice", "multi_choice"):
            values = [o.value for o in self.options]
            if len(values) < 2:
                raise ValueError(f"question {self.id!r}: a choice needs at least 2 options")
            if len(set(values)) != len(values):
                raise ValueError(f"question {self.id!r}: option values repeat")
        elif self.options:
            raise ValueError(f"question {self.id!r}: only choice questions have options")
        if self.kind == "scale":
            if not all(math.isfinite(v) for v in (self.min or 0, self.max or 0, self.step)):
                raise ValueError(f"question {self.id!r}: scale bounds must be finite")
            if self.min is None or self.max is None or self.min >= self.max:
                raise ValueError(f"question {self.id!r}: a scale needs min < max")
            if self.step <= 0:
                raise ValueError(f"question {self.id!r}: step must be positive")
            # finite bounds can still span more than a float holds (-1e308..1e308): the
            # number of points would be infinite, which no form or check can handle
            if not math.isfinite((self.max - self.min) / self.step):
                raise ValueError(f"question {self.id!r}: the scale spans too many steps "
                                 "((max - min) / step must be a finite number)")
            for point in self.anchors:
                if not self._on_scale(float(point)):
                    raise ValueError(f"question {self.id!r}: anchor {point} is not on the "
                                     "scale")
        elif self.anchors or self.min is not None or self.max is not None:
            raise ValueError(f"question {self.id!r}: min/max/anchors belong to scales")
        return self

    def _on_scale(self, value: float) -> bool:
        assert self.min is not None and self.max is not None
        if not self.min <= value <= self.max:
            return False
        steps = (value - self.min) / self.step
        return math.isclose(steps, round(steps), abs_tol=1e-9)

    def option_values(self) -> list[str]:
        return [o.value for o in self.options]

    def check_answer(self, value: Any, n_responses: int) -> Any:
        """Return the answer in canonical form, or raise ``ValueError`` saying why not."""
        k = self.kind
        if k in ("single_choice",):
            if not isinstance(value, str) or value not in self.option_values():
                raise ValueError(f"must be one of {self.option_values()}")
            return value
        if k == "multi_choice":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("must be a list of options")
            unknown = sorted(set(value) - set(self.option_values()))
            if unknown:
                raise ValueError(f"unknown option(s) {unknown}; options: "
                                 f"{self.option_values()}")
            return sorted(set(value))
        if k == "scale":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("must be a number")
            if not self._on_scale(float(value)):
                raise ValueError(f"must be on the scale {self.min}..{self.max} "
                                 f"(step {self.step})")
            return float(value)
        if k in ("free_text", "rewrite"):
            if not isinstance(value, str):
                raise ValueError("must be text")
            if len(value) > self.max_length:
                raise ValueError(f"longer than {self.max_length} characters")
            return value
        if k == "preference":
            if n_responses < 2:
                raise ValueError("the item has fewer than 2 responses to compare")
            if not isinstance(value, dict) or set(value) != {"chosen", "rejected"}:
                raise ValueError('must be {"chosen": i, "rejected": j}')
            chosen, rejected = value["chosen"], value["rejected"]
            for idx in (chosen, rejected):
                if not isinstance(idx, int) or isinstance(idx, bool) \
                        or not 0 <= idx < n_responses:
                    raise ValueError(f"response indices must be in 0..{n_responses - 1}")
            if chosen == rejected:
                raise ValueError("'chosen' and 'rejected' must differ")
            return {"chosen": chosen, "rejected": rejected}
        if k == "ranking":
            # integers only, checked before sorting: [1.0, 0.0] sorts like [0, 1] but
            # indexes no response, and ["a", 0] cannot be sorted at all
            if not isinstance(value, list) \
                    or any(not isinstance(v, int) or isinstance(v, bool) for v in value) \
                    or sorted(value) != list(range(n_responses)):
                raise ValueError(f"must order every response index 0..{n_responses - 1} "
                                 "exactly once")
            return list(value)
        raise ValueError(f"unknown kind {k}")  # pragma: no cover - Literal guards this


def _point_key(point: Any) -> str:
    try:
        number = float(point)
    except (TypeError, ValueError):  # pydantic reports ValueError with the field
        raise ValueError(f"an anchor key must be a number on the scale, got {point!r}") \
            from None
    if not math.isfinite(number):
        raise ValueError(f"an anchor key must be a finite number, got {point!r}")
    return str(int(number)) if number.is_integer() else str(number)


class WorkedExample(_Strict):
    title: str = ""
    prompt: str
    responses: list[str] = Field(default_factory=list)
    answers: dict[str, Any]
    explanation: str = ""


class RubricSpec(_Strict):
    """One rubric version's content (the published version number is assigned on publish)."""

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = Field(min_length=1)
    guidelines: str = ""
    changelog: str = ""
    questions: list[Question] = Field(min_length=1)
    examples: list[WorkedExample] = Field(default_factory=list)
    # where the document came from, so that checks on publishing (a changelog) can name
    # the file and line too
    _source: tuple[str | None, Callable[[tuple[Any, ...]], int | None] | None] = \
        PrivateAttr(default=(None, None))

    @property
    def source(self) -> tuple[str | None, Callable[[tuple[Any, ...]], int | None] | None]:
        """``(file, line_of)`` of the parsed document, ``(None, None)`` if unknown."""
        return self._source

    @model_validator(mode="after")
    def _consistent(self) -> RubricSpec:
        ids = [q.id for q in self.questions]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"question id(s) {repeated} repeat")
        for i, example in enumerate(self.examples):
            problems = answer_problems(self, example.answers, len(example.responses))
            if problems:
                field, why = problems[0]
                # names the example's answer (and so its line), not the whole rubric
                raise FieldError(why, ("examples", i, "answers", field))
        return self

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)

    def content(self) -> dict[str, Any]:
        """What the version hash covers: everything except the changelog."""
        return self.model_dump(mode="json", exclude={"changelog"})


def answer_problems(spec: RubricSpec, answers: dict[str, Any], n_responses: int
                    ) -> list[tuple[str, str]]:
    """``(question_id, reason)`` for every problem in a set of answers (empty = valid)."""
    problems: list[tuple[str, str]] = []
    known = {q.id for q in spec.questions}
    for extra in sorted(set(answers) - known):
        problems.append((extra, "not a question of this rubric version"))
    for q in spec.questions:
        if q.id not in answers or answers[q.id] is None:
            if q.required:
                problems.append((q.id, "required"))
            continue
        try:
            q.check_answer(answers[q.id], n_responses)
        except ValueError as exc:
            problems.append((q.id, str(exc)))
    return problems


def problems_reason(problems: list[tuple[str, str]], *, prefix: str = ""
                    ) -> tuple[str, str]:
    """The field and reason of one refusal naming every problem in a set of answers.

    The field is the first problem's (``prefix`` before each question id, as in
    ``answers.verdict``), and its reason comes first, so that a client that reads one
    field still finds it; the reason then names every other problem, the required
    questions left unanswered together (``required; unanswered too: 'refusal',
    'helpfulness'``). A client that fixed only the first would otherwise be refused
    again for the next, one round trip per question."""
    (first, why), rest = problems[0], problems[1:]
    unanswered = [q for q, reason in rest if reason == "required"]
    parts = [why]
    if unanswered:
        listed = ", ".join(repr(f"{prefix}{q}") for q in unanswered)
        parts.append(f"{'unanswered too' if why == 'required' else 'required, unanswered'}: "
                     f"{listed}")
    parts += [f"{f'{prefix}{q}'!r}: {reason}" for q, reason in rest if reason != "required"]
    return f"{prefix}{first}", "; ".join(parts)


def clean_answers(spec: RubricSpec, answers: dict[str, Any], n_responses: int,
                  *, where: str = "answers") -> dict[str, Any]:
    """Validated, canonical answers; raises :class:`InputError` naming the question."""
    from hilt.review.text_checks import nul_path

    found = nul_path(answers)
    if found is not None:  # PostgreSQL cannot store it; SQLite would (see text_checks)
        raise InputError(f"contains a NUL character (\\u0000), which cannot be stored "
                         f"(rubric {spec.id})", file=where, field=".".join(found))
    problems = answer_problems(spec, answers, n_responses)
    if problems:
        field, why = problems_reason(problems)
        raise InputError(f"{why} (rubric {spec.id})", file=where, field=field)
    return {q.id: q.check_answer(answers[q.id], n_responses) for q in spec.questions
            if answers.get(q.id) is not None}


def parse_rubric(data: Any, *, file: str = "rubric",
                 line_of: Callable[[tuple[Any, ...]], int | None] | None = None
                 ) -> RubricSpec:
    """Validate a rubric document to publish; errors name the file, line and field.

    Beyond :class:`RubricSpec` (which also reads stored versions), a new document must
    name each question once, pointing at the repeat, and a scale's ``max`` must be one of
    its points: ``min: 0, max: 1, step: 0.3`` would publish a top value no reviewer can
    give. Versions stored before these checks still load."""
    def where(*loc: Any) -> dict[str, Any]:
        return {"file": file, "line": line_of(loc) if line_of else None,
                "field": ".".join(str(p) for p in loc)}

    questions = data.get("questions") if isinstance(data, dict) else None
    if isinstance(questions, list):
        seen: dict[str, int] = {}
        for i, q in enumerate(questions):
            qid = q.get("id") if isinstance(q, dict) else None
            if isinstance(qid, str) and qid in seen:
                raise InputError(f"question id {qid!r} repeats (first as question "
                                 f"{seen[qid]})", **where("questions", i, "id"))
            if isinstance(qid, str):
                seen[qid] = i
    spec = validate_yaml(RubricSpec, data, file=file, line_of=line_of)
    for i, q in enumerate(spec.questions):
        if q.kind == "scale" and q.max is not None and not q._on_scale(q.max):
            raise InputError(f"question {q.id!r}: max {q.max:g} is not on the scale "
                             f"(min + k × step: {q.min:g} + k × {q.step:g})",
                             **where("questions", i, "max"))
    spec._source = (file, line_of)
    return spec


assert set(AGGREGATED_KINDS) <= set(QUESTION_KINDS)
