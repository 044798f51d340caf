"""The selection spec: which labels become which kind of training data, and how.

Written in YAML, validated with pydantic, stored verbatim inside every dataset version's
manifest. A bad spec raises :class:`hilt.errors.InputError` naming the file, the line of
the offending key where it can be found, and the dotted field path.

Two guarantees hold whatever the spec says: records always need the ``train`` consent
scope (more scopes may be required, never fewer), and decontamination against every
registered held-out suite cannot be switched off (only its n-gram length is tunable).

What only the store can show wrong (a rubric or rubric version that is not published, a
``label_map`` key that no selected question gives as a label) is checked by
:func:`check_rubric_references` when the spec is built, naming the same file and line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hilt.errors import InputError
from hilt.review.yamlio import (
    FieldError,
    YamlFloat,
    YamlInt,
    error_location,
    load_yaml,
    parse_yaml_text,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hilt.review.rubric_spec import Question

OUTPUT_KINDS = ("preference", "sft", "classification")
# Which kinds of record each source can produce.
SOURCE_KINDS: dict[str, tuple[str, ...]] = {
    "event_preference": ("preference",),
    "event_edit": ("preference", "sft"),
    "event_label": ("classification",),
    "label_preference": ("preference",),
    "label_ranking": ("preference",),
    "label_rewrite": ("preference", "sft"),
    "label_approval": ("sft",),
    "label_class": ("classification",),
}
SOURCES = tuple(SOURCE_KINDS)


PiiKind = Literal["email", "phone", "card", "ip"]
_ALL_PII: tuple[PiiKind, ...] = ("email", "phone", "card", "ip")
# numbers refuse YAML's booleans
Number = YamlFloat
Count = YamlInt


def _seed_text(value: Any) -> Any:
    # The split and balance seeds are text hashed with each unit's key; people write
    # `seed: 42`. An integer becomes its decimal digits, so `seed: 42` and `seed: "42"`
    # give the same text, hence the same split, and the manifest records the text.
    # Booleans (YAML's yes/no) and floats (`4.2`, whose digits YAML and JSON may spell
    # differently) are refused rather than turned into text.
    if isinstance(value, bool) or not isinstance(value, int | str):
        given = ("a boolean (YAML reads yes/no/on/off/true/false as booleans)"
                 if isinstance(value, bool) else "empty" if value is None
                 else "a number with a fraction or exponent" if isinstance(value, float)
                 else "a mapping" if isinstance(value, dict) else "a list")
        raise ValueError("must be text or an integer (an integer is hashed as its "
                         f"decimal digits: 42 as \"42\"), not {given}")
    return str(value)


SeedText = Annotated[str, BeforeValidator(_seed_text)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelFilter(_Section):
    since: datetime | None = None
    until: datetime | None = None
    rubric_ids: list[str] | None = None
    rubric_versions: list[Count] | None = None
    provenance: list[str] | None = None
    min_confidence: Number = Field(default=0.0, ge=0, le=1)
    slices: list[str] | None = Field(default=None, description="keep only these slices")
    slice_key: str = Field(default="slice", min_length=1,
                           description="context.metadata key holding an event's slice")

    @field_validator("provenance")
    @classmethod
    def _known_provenance(cls, kinds: list[str] | None) -> list[str] | None:
        from hilt.review.records import PROVENANCE_KINDS

        if kinds is not None:
            unknown = sorted(set(kinds) - set(PROVENANCE_KINDS))
            if unknown:
                raise ValueError(f"unknown provenance {unknown}; known: {list(PROVENANCE_KINDS)}")
        return kinds

    @model_validator(mode="after")
    def _window(self) -> LabelFilter:
        if self.since is not None and self.until is not None:
            try:
                empty = self.since >= self.until
            except TypeError:  # one has a time zone, the other not
                raise FieldError("since and until must both have a time zone or both "
                                 "not", ("until",)) from None
            if empty:
                raise FieldError(f"until ({self.until.isoformat()}) must be later than "
                                 f"since ({self.since.isoformat()})", ("until",))
        return self


class ConsentSpec(_Section):
    required_scopes: list[str] = Field(default_factory=lambda: ["train"])

    @field_validator("required_scopes")
    @classmethod
    def _train_required(cls, scopes: list[str]) -> list[str]:
        from hilt.events.model import CONSENT_SCOPES

        unknown = sorted(set(scopes) - set(CONSENT_SCOPES))
        if unknown:
            raise ValueError(f"unknown consent scope(s) {unknown}")
        if "train" not in scopes:
            raise ValueError("training data always requires the 'train' scope")
        return sorted(set(scopes))


class PiiSpec(_Section):
    action: Literal["exclude", "redact"] = "exclude"
    kinds: list[PiiKind] = Field(default_factory=lambda: list(_ALL_PII))


class DedupSpec(_Section):
    exact: bool = True
    near: bool = True
    threshold: Number = Field(default=0.8, gt=0, le=1, description="Jaccard threshold")
    num_perm: Count = Field(default=128, ge=16, le=1024)
    shingle_words: Count = Field(default=5, ge=1, le=32)
    # the MinHash permutations' seed, which numpy's generator takes from 0 to 2**32 - 1
    seed: Count = Field(default=1, ge=0, le=2**32 - 1)
    # Exact dedup of identical records that carry different labels (or, for preferences,
    # the same pair the other way round): keep the label most of them carry, or keep
    # one record of each label. Keeping one of each turns 166 refusals against 6
    # compliances into 1 against 1.
    label_conflicts: Literal["majority", "keep_all"] = "majority"


class DecontaminationSpec(_Section):
    ngram: Count = Field(default=13, ge=5, le=64)
    min_short_words: Count = Field(
        default=5, ge=1, le=64,
        description="held-out texts shorter than ngram but with at least this many "
                    "words are matched as whole word sequences; shorter ones only when "
                    "a whole field equals them")


class BalanceSpec(_Section):
    strategy: Literal["none", "cap", "equal"] = "none"
    max_per_slice: Count | None = Field(default=None, ge=1)
    seed: SeedText = "hilt"

    @model_validator(mode="after")
    def _quota_fits_strategy(self) -> BalanceSpec:
        # either mistake would pass quietly: cap without a quota removes nothing, a quota
        # without a strategy is ignored
        if self.strategy == "cap" and self.max_per_slice is None:
            raise FieldError("strategy 'cap' needs max_per_slice", ("max_per_slice",))
        if self.strategy == "none" and self.max_per_slice is not None:
            raise FieldError("max_per_slice needs strategy 'cap' or 'equal' (the strategy "
                             "is 'none')", ("strategy",))
        return self


class SplitSpec(_Section):
    validation_fraction: Number = Field(default=0.1, ge=0, lt=1)
    group_by: Literal["prompt", "event", "subject"] = "prompt"
    seed: SeedText = "hilt"


class SftSpec(_Section):
    approval_question: str | None = None
    approve_values: list[str] = Field(default_factory=lambda: ["approve", "good", "yes"])
    min_scale: Number | None = None

    @model_validator(mode="after")
    def _scale_needs_question(self) -> SftSpec:
        # without the question no label is read, so the threshold would be ignored
        if self.min_scale is not None and self.approval_question is None:
            raise FieldError("min_scale needs approval_question (the question whose "
                             "scale value it compares)", ("min_scale",))
        return self


class ClassificationSpec(_Section):
    question_id: str | None = Field(default=None, description="rubric question / label name")
    text: Literal["prompt", "response", "prompt_response"] = "prompt"
    label_map: dict[str, str] = Field(default_factory=dict)


class SelectionSpec(_Section):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["preference", "sft", "classification"]
    sources: list[str] | None = None
    labels: LabelFilter = Field(default_factory=LabelFilter)
    consent: ConsentSpec = Field(default_factory=ConsentSpec)
    pii: PiiSpec = Field(default_factory=PiiSpec)
    dedup: DedupSpec = Field(default_factory=DedupSpec)
    decontamination: DecontaminationSpec = Field(default_factory=DecontaminationSpec)
    balance: BalanceSpec = Field(default_factory=BalanceSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    sft: SftSpec = Field(default_factory=SftSpec)
    classification: ClassificationSpec = Field(default_factory=ClassificationSpec)
    # where the spec was read from, so that checks at build time name the file and line
    _source: tuple[str | None, Callable[[tuple[Any, ...]], int | None] | None] = \
        PrivateAttr(default=(None, None))

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, sources: list[str] | None, info: ValidationInfo
                       ) -> list[str] | None:
        if sources is None:
            return None
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; known: {list(SOURCES)}")
        kind = info.data.get("kind")
        wrong = sorted(s for s in sources if kind and kind not in SOURCE_KINDS[s])
        if wrong:
            raise ValueError(f"source(s) {wrong} cannot produce {kind!r} records")
        return sources

    def active_sources(self) -> tuple[str, ...]:
        if self.sources is not None:
            return tuple(self.sources)
        return tuple(s for s, kinds in SOURCE_KINDS.items() if self.kind in kinds)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_spec(data: Any, *, file: str | None = None, text: str | None = None,
               line_of: Callable[[tuple[Any, ...]], int | None] | None = None
               ) -> SelectionSpec:
    """Validate a selection spec; ``text`` (the YAML it was read from) or ``line_of``
    lets errors name the line."""
    if not isinstance(data, dict):
        raise InputError("a selection spec must be a mapping", file=file, line=1)
    def lines() -> Callable[[tuple[Any, ...]], int | None] | None:
        if line_of is None and text is not None:
            try:
                return parse_yaml_text(text, file=file or "spec")[1]
            except InputError:
                return None
        return line_of

    try:
        spec = SelectionSpec.model_validate(data)
    except ValidationError as exc:
        message, loc = error_location(exc)
        loc = tuple(p for p in loc if not (isinstance(p, str) and "[" in p))
        field = ".".join(str(p) for p in loc) or None
        find = lines()
        line = find(loc) if find is not None and loc else None
        raise InputError(message, file=file, line=line, field=field) from None
    spec._source = (file, lines())
    return spec


def load_spec(path: str | Path) -> SelectionSpec:
    """Read a selection spec file (a key repeated in one mapping is refused)."""
    data, line_of = load_yaml(path)
    return parse_spec(data, file=str(path), line_of=line_of)


def check_rubric_references(session: Session, spec: SelectionSpec) -> None:
    """Refuse what the spec file cannot show wrong on its own, naming its file, line and
    field: a ``labels.rubric_ids`` entry or a ``labels.rubric_versions`` entry under which
    nothing is published (it would select nothing), and a ``classification.label_map``
    key that no selected question gives as a label (its labels would keep their own
    name beside the mapped ones: ``complys: comply`` leaves every ``complies`` as is).

    ``label_map`` keys are checked only where every label comes from a rubric: with
    event-level feedback selectable (``event_label``), a key may name a value that
    events carry."""
    import sqlalchemy as sa

    from hilt.review.rubrics import spec_of
    from hilt.store.tables.review import RubricVersionRow

    filt = spec.labels
    query = sa.select(RubricVersionRow)
    if filt.rubric_ids is not None:
        query = query.where(RubricVersionRow.rubric_id.in_(filt.rubric_ids))
    rows = list(session.execute(query).scalars())
    file, line_of = spec._source

    def refuse(message: str, *loc: Any) -> None:
        raise InputError(message, file=file, line=line_of(loc) if line_of else None,
                         field=".".join(str(p) for p in loc))

    for i, rubric_id in enumerate(filt.rubric_ids or ()):
        if not any(r.rubric_id == rubric_id for r in rows):
            refuse(f"no rubric {rubric_id!r} is published", "labels", "rubric_ids", i)
    published = sorted({r.version for r in rows})
    for i, version in enumerate(filt.rubric_versions or ()):
        if version not in published:
            of = "of " + ", ".join(map(repr, filt.rubric_ids)) + " " if filt.rubric_ids \
                else ""
            refuse(f"no version {version} {of}is published (published: "
                   f"{', '.join(map(str, published)) or 'none'})",
                   "labels", "rubric_versions", i)
    cfg = spec.classification
    if spec.kind != "classification" or not cfg.label_map or not _rubric_labels_only(spec):
        return
    questions = [q for r in rows
                 if filt.rubric_versions is None or r.version in filt.rubric_versions
                 for q in spec_of(r).questions
                 if q.kind in ("single_choice", "scale")
                 and (cfg.question_id is None or q.id == cfg.question_id)]
    for key in cfg.label_map:
        if not any(_gives_label(q, key) for q in questions):
            options = sorted({v for q in questions for v in q.option_values()})
            which = f"question {cfg.question_id!r}" if cfg.question_id else "any question"
            refuse(f"{key!r} is no label of {which} in the selected rubric versions"
                   + (f"; options: {options}" if options else ""),
                   "classification", "label_map", key)


def _rubric_labels_only(spec: SelectionSpec) -> bool:
    """Whether every classification label of the spec comes from a rubric question (not
    from event-level label feedback, whose values no rubric lists)."""
    filt = spec.labels
    sources = spec.active_sources()
    events_selectable = (filt.rubric_ids is None and filt.rubric_versions is None
                         and filt.provenance is None and not filt.min_confidence > 0)
    return "label_class" in sources and not ("event_label" in sources
                                             and events_selectable)


def _gives_label(question: Question, key: str) -> bool:
    """Whether ``key`` is a label the question gives: an option, or a point on a scale
    (written as a number)."""
    if question.kind == "single_choice":
        return key in question.option_values()
    try:
        value = float(key)
    except ValueError:
        return False
    return math.isfinite(value) and question._on_scale(value)
