"""Escalation rules: the declarative YAML language and its evaluation (pure, no database).

A rule set (see ``examples/rules/``) has defaults and an ordered list of rules. A rule
fires on an event when its ``when`` condition holds and, if it has an ``audit_rate`` p,
when the event's audit draw u < p. The draw is deterministic,

    u = int(sha256(event_id | rule_set_id | version | rule_name)[:16], 16) / 2**64,

so a backtest reproduces exactly which events a live run sampled, and every sampled task
records p: an estimate over audited items can weight each by 1/p (Horvitz–Thompson,
1952) and stays unbiased for the whole stream.

Conditions (combine with ``all``, ``any``, ``not``):

- ``score: NAME`` with ``gte/gt/lte/lt/eq/ne``: ``event.scores[NAME]`` (missing: false);
- ``field: context.source`` with the same operators or ``in: [..]`` / ``exists: true``;
- ``flag: true`` (any user flag) or ``flag: [category, ...]``;
- ``keywords: [..]`` (whole words, case-insensitive) and ``regex: [..]``, looking in
  ``text: prompt | response | any``.

Refused, with file, line and field: empty lists (``all: []`` would hold for every event,
``any: []`` for none), empty keywords or patterns (they match every text), booleans where
a number belongs (YAML reads ``yes`` as true: ``audit_rate: yes`` is not 1.0), numbers
that are not finite (``gte: .nan`` is never crossed, and could not be published), a
rule name used twice, and comparisons that no event can pass or that would be ignored:
a ``field`` path no event has (``context.sorce``, ``responses.0.text``), ``exists``
beside another comparison, a bound on text, a list or a time, and ``eq``/``ne``/``in``
values of another type than the value read (``eq: "0.5"`` or ``eq: true`` on a score,
``eq: 2`` on the text ``context.model_version``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

from hilt.errors import InputError
from hilt.events.paths import path_kind
from hilt.jsonl import non_finite_path
from hilt.review.aggregation import AdjudicationPolicy
from hilt.review.text_checks import Name
from hilt.review.yamlio import FieldError, YamlFiniteFloat, YamlInt, validate_yaml

SEVERITIES = ("sev0", "sev1", "sev2", "sev3")
# Default time to resolve by severity (hours); a rule's ``sla_hours`` wins.
DEFAULT_SLA_HOURS = {0: 1.0, 1: 4.0, 2: 24.0, 3: 72.0}
# The longest time to resolve anyone may set (rule files, the API, ``create_task``): a
# year. Zero or less would make a task due before it exists.
MAX_SLA_HOURS = 24 * 365
# The most reviewers one task may ask for (rule files, the API and `hilt task create`).
MAX_OVERLAP = 50
_OPS = ("gte", "gt", "lte", "lt", "eq", "ne")
_HEADS = ("all", "any", "not_", "score", "field", "flag", "keywords", "regex")
# numbers refuse YAML's booleans, and .nan and .inf
Number = YamlFiniteFloat
Count = YamlInt


def check_sla_hours(value: float | None, field: str = "sla_hours") -> None:
    """Refuse a time to resolve outside (0, MAX_SLA_HOURS] (NaN too); None is the
    severity's default."""
    if value is not None and not 0 < value <= MAX_SLA_HOURS:  # NaN fails both tests
        raise InputError(f"must be more than 0 and at most {MAX_SLA_HOURS} hours (a year), "
                         f"got {value!r}", field=field)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


_KIND_WORDS = {"number": "a number", "text": "text", "time": "a time", "boolean":
               "a boolean", "list": "a list", "object": "an object", "any": "any value"}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | dict):
        return _KIND_WORDS["list" if isinstance(value, list) else "object"]
    return f"a {type(value).__name__}"


def _same_kind(kind: str, value: Any) -> bool:
    """Whether a value of ``kind`` read from an event can equal ``value`` (a time, read
    as a datetime, equals no value a rule file can give)."""
    if kind == "any":
        return True
    return _kind_of(value) == _KIND_WORDS[kind] and kind != "time"


class Condition(_Strict):
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")
    score: str | None = None
    field: str | None = None
    flag: bool | list[str] | None = None
    keywords: list[str] | None = None
    regex: list[str] | None = None
    text: Literal["prompt", "response", "any"] = "any"
    gte: Number | None = None
    gt: Number | None = None
    lte: Number | None = None
    lt: Number | None = None
    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_head(self, info: ValidationInfo) -> Condition:
        heads = [h for h in _HEADS if getattr(self, h) is not None]
        if len(heads) != 1:
            raise ValueError("a condition needs exactly one of all, any, not, score, field, "
                             f"flag, keywords, regex (got {heads or 'none'})")
        ops = [o for o in (*_OPS, "in_", "exists") if getattr(self, o) is not None]
        if heads[0] in ("score", "field") and not ops:
            raise ValueError(f"'{heads[0]}' needs a comparison (gte, gt, lte, lt, eq, ne, "
                             "in, exists)")
        if heads[0] not in ("score", "field") and ops:
            raise ValueError(f"comparisons belong to 'score' or 'field', not '{heads[0]}'")
        for i, pattern in enumerate(self.regex or []):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise FieldError(f"bad regex {pattern!r}: {exc}", ("regex", i)) from None
        # Versions stored before these checks still load (and evaluate as published).
        if not (info.context or {}).get("stored"):
            self._refuse_empty()
            self._refuse_never_compared()
        return self

    def _refuse_empty(self) -> None:
        """Empty lists and strings do not fail quietly: ``all: []``, an empty keyword list
        or an empty keyword/pattern would fire on every event, ``any: []``, ``flag: []``
        and ``in: []`` on none; nor does ``eq: .nan`` (or ``.inf``), which no score
        equals."""
        for name in ("all", "any", "keywords", "regex", "flag", "in_"):
            value = getattr(self, name)
            if isinstance(value, list) and not value:
                key = name.removesuffix("_")
                raise FieldError(f"'{key}' needs at least one entry", (key,))
        for name in ("keywords", "regex"):
            for i, text in enumerate(getattr(self, name) or []):
                if not text.strip():
                    raise FieldError(f"{name} entry {i} is empty: it would match every "
                                     "text", (name,))
        for name in ("eq", "ne", "in_"):  # .nan equals nothing, not even itself
            path = non_finite_path(getattr(self, name))
            if path is not None:
                raise FieldError("must be a finite number", (name.removesuffix("_"), *path))

    def _refuse_never_compared(self) -> None:
        """Comparisons the value read can never pass or that would be ignored: ``exists``
        beside another comparison (``exists`` alone decides), a path no event has, a
        bound on text, a list or a time, and ``eq``/``ne``/``in`` values of another type
        than the value (a score is a number, so ``eq: "0.5"`` never holds and ``eq:
        true`` equals 1.0; ``context.model_version`` is text, so ``eq: 2`` needs quotes).
        Each would route events without a word of warning."""
        if self.exists is not None:
            other = next((o for o in (*_OPS, "in_") if getattr(self, o) is not None), None)
            if other is not None:
                raise FieldError(f"'exists' decides on its own: '{other.removesuffix('_')}' "
                                 "beside it would be ignored; give each its own condition "
                                 "under 'all'", ("exists",))
        if self.field is not None:
            try:
                kind = path_kind(self.field)
            except ValueError as exc:
                raise FieldError(str(exc), ("field",)) from None
            target = self.field
        elif self.score is not None:
            kind, target = "number", f"scores.{self.score}"
        else:
            return
        for op in _OPS[:4]:
            if getattr(self, op) is not None and kind not in ("number", "any"):
                raise FieldError(f"{target!r} holds {_KIND_WORDS[kind]}, which '{op}' (a "
                                 "number) never bounds", (op,))
        if self.in_ is not None and kind in ("list", "object"):
            raise FieldError(f"{target!r} holds {_KIND_WORDS[kind]}: 'in' would ask "
                             "whether the whole of it is one of the entries; compare it "
                             "with 'eq' or test it with 'exists'", ("in",))
        for name in ("eq", "ne", "in_"):
            value = getattr(self, name)
            if value is None:
                continue
            key = name.removesuffix("_")
            values = enumerate(value) if name == "in_" else [(None, value)]
            for i, item in values:
                if not _same_kind(kind, item):
                    raise FieldError(
                        f"{target!r} holds {_KIND_WORDS[kind]}, and {item!r} is "
                        f"{_kind_of(item)}: they are never equal"
                        + (" (quote it in YAML to make it text)" if kind == "text" else ""),
                        (key,) if i is None else (key, i))

    @cached_property
    def _patterns(self) -> list[re.Pattern[str]]:
        """What ``keywords`` or ``regex`` search for. Regexes stay separate patterns, each
        compiled as validated: joined into one, an inline flag such as ``(?i)`` is an error
        and back-references and group names of one pattern reach into another."""
        if self.keywords is not None:
            words = "|".join(re.escape(k) for k in self.keywords)
            # not \b: a keyword that starts or ends with a non-word character ("c++")
            # must match where it stands alone
            return [re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)]
        return [re.compile(p) for p in self.regex or []]


class Rule(_Strict):
    name: str = Field(min_length=1, max_length=200)
    when: Condition | None = None
    audit_rate: Number | None = Field(default=None, gt=0, le=1)
    severity: Literal["sev0", "sev1", "sev2", "sev3"] | None = None
    pool: Name | None = None
    overlap: Count | None = Field(default=None, ge=1, le=MAX_OVERLAP)
    sla_hours: Number | None = Field(default=None, gt=0, le=MAX_SLA_HOURS)
    rubric: str | None = None
    skills: list[Name] | None = None
    adjudication: AdjudicationPolicy | None = None

    @model_validator(mode="after")
    def _fires_somehow(self) -> Rule:
        if self.when is None and self.audit_rate is None:
            raise ValueError(f"rule {self.name!r} needs 'when', 'audit_rate' or both")
        return self


class Defaults(_Strict):
    severity: Literal["sev0", "sev1", "sev2", "sev3"] = "sev2"
    pool: Name = "default"
    overlap: Count = Field(default=3, ge=1, le=MAX_OVERLAP)
    sla_hours: Number | None = Field(default=None, gt=0, le=MAX_SLA_HOURS)
    rubric: str | None = None
    skills: list[Name] = Field(default_factory=list)
    uncertainty_score: str = "uncertainty"
    adjudication: AdjudicationPolicy = Field(default_factory=AdjudicationPolicy)


class RuleSet(_Strict):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    changelog: str = ""
    defaults: Defaults = Field(default_factory=Defaults)
    rules: list[Rule] = Field(min_length=1)
    # where the document came from, so that checks against the store (rubrics
    # published) can name the file and line too
    _source: tuple[str | None, Callable[[tuple[Any, ...]], int | None] | None] = \
        PrivateAttr(default=(None, None))

    @property
    def source(self) -> tuple[str | None, Callable[[tuple[Any, ...]], int | None] | None]:
        """``(file, line_of)`` of the parsed document, ``(None, None)`` if unknown."""
        return self._source

    @model_validator(mode="after")
    def _names_and_rubrics(self) -> RuleSet:
        first: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            earlier = first.setdefault(rule.name, i)
            if earlier != i:
                raise FieldError(f"rule name {rule.name!r} repeats (first at rules."
                                 f"{earlier}.name)", ("rules", i, "name"))
        for i, rule in enumerate(self.rules):
            if (rule.rubric or self.defaults.rubric) is None:
                raise FieldError(f"rule {rule.name!r} has no rubric (set defaults.rubric)",
                                 ("rules", i, "rubric"))
        return self


def parse_rule_set(data: Any, *, file: str = "rules",
                   line_of: Callable[[tuple[Any, ...]], int | None] | None = None) -> RuleSet:
    rule_set = validate_yaml(RuleSet, data, file=file, line_of=line_of)
    rule_set._source = (file, line_of)
    return rule_set


# --- evaluation ---------------------------------------------------------------------

def audit_draw(event_id: str, rule_set_id: str, version: int, rule_name: str) -> float:
    """The event's uniform draw in [0, 1) for one audit rule (see module docstring)."""
    key = f"{event_id}|{rule_set_id}|{version}|{rule_name}".encode()
    return int(hashlib.sha256(key).hexdigest()[:16], 16) / 2**64


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _resolve(event: Any, path: str) -> Any:
    value = event
    for part in path.split("."):
        if value is None:
            return None
        value = _get(value, part)
    return value


def prompt_text(event: Any) -> str:
    interaction = _get(event, "interaction")
    prompt = _get(interaction, "prompt")
    if prompt is not None:
        return str(prompt)
    return "\n".join(str(_get(m, "content")) for m in _get(interaction, "messages") or [])


def response_text(event: Any) -> str:
    return "\n".join(str(_get(r, "text")) for r in _get(event, "responses") or [])


def _compare(cond: Condition, value: Any) -> bool:
    if cond.exists is not None:
        return (value is not None) == cond.exists
    if value is None:
        return False
    if cond.in_ is not None and value not in cond.in_:
        return False
    if cond.eq is not None and value != cond.eq:
        return False
    if cond.ne is not None and value == cond.ne:
        return False
    try:
        return not ((cond.gte is not None and not value >= cond.gte)
                    or (cond.gt is not None and not value > cond.gt)
                    or (cond.lte is not None and not value <= cond.lte)
                    or (cond.lt is not None and not value < cond.lt))
    except TypeError:  # e.g. comparing a string field with a number
        return False


def evaluate(cond: Condition, event: Any, read: dict[str, Any]) -> bool:
    """Whether ``cond`` holds for ``event``; records the input values it read in ``read``."""
    if cond.all is not None:
        return all(evaluate(c, event, read) for c in cond.all)
    if cond.any is not None:
        return any(evaluate(c, event, read) for c in cond.any)
    if cond.not_ is not None:
        return not evaluate(cond.not_, event, read)
    if cond.score is not None:
        value = (_get(event, "scores") or {}).get(cond.score)
        read[f"scores.{cond.score}"] = value
        return _compare(cond, value)
    if cond.field is not None:
        value = _resolve(event, cond.field)
        read[cond.field] = value
        return _compare(cond, value)
    if cond.flag is not None:
        flags = [f for f in _get(event, "feedback") or [] if _get(f, "kind") == "flag"]
        if isinstance(cond.flag, list):
            flags = [f for f in flags if _get(f, "category") in cond.flag]
        elif not cond.flag:
            return not flags
        if flags:
            read["flag"] = [{"reason": _get(f, "reason"), "category": _get(f, "category")}
                            for f in flags]
        return bool(flags)
    text = {"prompt": prompt_text, "response": response_text}.get(cond.text)
    haystack = text(event) if text else prompt_text(event) + "\n" + response_text(event)
    found = next((m for m in (p.search(haystack) for p in cond._patterns) if m), None)
    if found:
        read["keyword" if cond.keywords is not None else "regex"] = found.group(0)
    return found is not None


def severity_number(severity: str) -> int:
    return SEVERITIES.index(severity)


def match_rules(rule_set: RuleSet, version: int, event: Any, event_id: str
                ) -> tuple[list[dict[str, Any]], float]:
    """Every rule that fires on ``event`` (file order) and the event's inclusion
    probability.

    Each match is ``{"rule", "severity", "values", "sampling_probability"}`` plus
    ``"audit_draw"`` for sampled rules. The inclusion probability is P(escalated | the
    event's content): 1 if a deterministic rule fired, otherwise 1 − Π(1 − p_i) over the
    audit rules whose condition held (the draws are independent across rules because the
    rule name enters the hash).
    """
    matches = []
    miss = 1.0
    for rule in rule_set.rules:
        read: dict[str, Any] = {}
        if rule.when is not None and not evaluate(rule.when, event, read):
            continue
        match: dict[str, Any] = {"rule": rule.name, "values": read,
                                 "severity": rule.severity or rule_set.defaults.severity,
                                 "sampling_probability": 1.0}
        if rule.audit_rate is not None:
            miss *= 1.0 - rule.audit_rate
            u = audit_draw(event_id, rule_set.id, version, rule.name)
            if u >= rule.audit_rate:
                continue
            match["audit_draw"] = u
            match["sampling_probability"] = rule.audit_rate
        else:
            miss = 0.0
        matches.append(match)
    return matches, 1.0 - miss
