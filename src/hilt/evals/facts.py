"""The recorded-facts file of ``hilt check --facts``: validated strictly, field by field.

The facts feed the gate (lineage) and the contract card (records), so a
misspelt key must stop the run rather than vanish: ``lineage: {datasets: …}`` for
``dataset_versions`` would otherwise read as a known lineage with nothing to object to.
Numbers must be finite in every field, free-form ones (``versions``) included: the
decision record is strict JSON, and ``.nan`` would otherwise fail it without a location
or be stored as null.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, NonNegativeInt, StrictBool, ValidationError

from hilt.errors import InputError
from hilt.jsonl import non_finite_path

# Versions every decision names, recorded as null when the inputs do not say.
VERSION_KEYS = ("dataset_versions", "rubric", "prompt_template", "role_format",
                "decoder_settings", "reward_model")
FACT_KEYS = ("versions", "lineage", "records")


class _Strict(BaseModel):
    # strict types too: `records: true` or `objective_terms: {sft: "1"}` must not be
    # recorded as 1 and 1.0 (a float field still takes an integer)
    model_config = ConfigDict(extra="forbid", strict=True)


class Versions(_Strict):
    dataset_versions: Any = None
    rubric: Any = None
    prompt_template: Any = None
    role_format: Any = None
    decoder_settings: Any = None
    reward_model: Any = None


class DatasetVersionFacts(_Strict):
    """One training dataset version; ``None`` means unknown (the gate treats it so)."""

    id: str
    name: str | None = None
    # strict: "yes" or 1 must not read as a consent
    consented: StrictBool | None = None
    revoked: StrictBool | None = None
    revoked_reason: str | None = None
    contaminated_with: list[str] | None = None
    suites_checked: list[str] | None = None
    link: str | None = None


class Lineage(_Strict):
    status: Literal["known", "unknown"]
    reason: str | None = None
    source: str | None = None
    dataset_versions: list[DatasetVersionFacts] = []


class SuiteRecord(_Strict):
    """A suite the metrics were measured on (card: data and evaluation)."""

    id: str
    version: str | None = None
    content_sha256: str | None = None
    heldout: StrictBool | None = None
    written_by: str | None = None
    filtered_by: str | None = None
    approved_by: str | None = None
    link: str | None = None


class DatasetVersionRecord(_Strict):
    """A training dataset version (card: who built and approved the data)."""

    id: str
    name: str | None = None
    kind: str | None = None
    records: NonNegativeInt | None = None
    built_by: str | None = None
    approved_by: str | None = None
    filters: list[str] | dict[str, Any] | None = None
    code_version: str | None = None
    link: str | None = None


class Logged(_Strict):
    masks: StrictBool | None = None
    margins: StrictBool | None = None
    thresholds: StrictBool | None = None


class TrainingRecord(_Strict):
    """A training run (card: objective terms and what was logged)."""

    id: str
    objective_terms: dict[str, float] | None = None
    logged: Logged | None = None
    link: str | None = None


class FeedbackRecord(_Strict):
    """How new evidence reaches training (card: feedback)."""

    id: str | None = None
    evidence: str | None = None
    enters_via: str | None = None
    link: str | None = None


class Records(_Strict):
    """What the contract card is answered from (``hilt.gate.card``); ``decision_inputs``
    is written by the decision builder, never by a facts file."""

    suites: list[SuiteRecord] | None = None
    dataset_versions: list[DatasetVersionRecord] | None = None
    training: list[TrainingRecord] | None = None
    feedback: list[FeedbackRecord] | None = None


class Facts(_Strict):
    versions: Versions | None = None
    lineage: Lineage | None = None
    records: Records | None = None


def facts_from_dict(data: Any, *, file: str = "<facts>",
                    line_of: Callable[[tuple[Any, ...]], int | None] | None = None
                    ) -> dict[str, Any]:
    """The validated facts as plain data (only the keys the file gave). Errors name the
    field path and, given ``line_of``, the line of the offending key in the file."""
    if not isinstance(data, dict):
        raise InputError("facts must be a mapping", file=file,
                         line=line_of(()) if line_of is not None else None)
    if "signoffs" in data:
        # a sign-off counts a registered person; a line in a file could name anyone
        raise InputError("sign-offs are recorded with `hilt gate signoff`, not in a facts "
                         "file", file=file, field="signoffs",
                         line=line_of(("signoffs",)) if line_of is not None else None)
    try:
        parsed = Facts.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # a misspelt key also leaves the field it stands for missing (`lineage:
        # {datasets: …}` lacks `status`): the unknown key is the one to name
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = tuple(p for p in first["loc"] if not str(p).startswith("function-"))
        where = ".".join(str(p) for p in loc) or None
        message = ("unknown key" if first["type"] == "extra_forbidden"
                   else str(first["msg"]))
        raise InputError(message, file=file, field=where,
                         line=line_of(loc) if line_of is not None else None) from exc
    bad = non_finite_path(data)
    if bad is not None:
        raise InputError("must be a finite number (not NaN or infinite)", file=file,
                         field=".".join(str(p) for p in bad) or None,
                         line=line_of(bad) if line_of is not None else None)
    repeated = _repeated_entry(data)
    if repeated is not None:
        place, reason = repeated
        raise InputError(reason, file=file, field=".".join(str(p) for p in place),
                         line=line_of(place) if line_of is not None else None)
    out = parsed.model_dump(mode="json", include=set(data) - {"records"},
                            exclude_none=False)
    if "records" in data:
        # only the keys the file gave: the card reads an absent key as "not recorded"
        out["records"] = ({} if parsed.records is None
                          else parsed.records.model_dump(mode="json", exclude_unset=True))
    return out


# The lists whose entries are told apart by id (a suite by id and version: two versions
# of one suite may both be measured on).
_KEYED_LISTS: tuple[tuple[tuple[str, str], tuple[str, ...]], ...] = (
    (("lineage", "dataset_versions"), ("id",)), (("records", "suites"), ("id", "version")),
    (("records", "dataset_versions"), ("id",)), (("records", "training"), ("id",)),
    (("records", "feedback"), ("id",)))


def _repeated_entry(data: dict[str, Any]) -> tuple[tuple[Any, ...], str] | None:
    """The place and reason of the first entry that repeats an earlier one's id: the gate
    and the contract card would read one of two descriptions of the same thing."""
    for (section, name), key in _KEYED_LISTS:
        entries = (data.get(section) or {}).get(name) or []
        seen: dict[tuple[Any, ...], int] = {}
        for i, entry in enumerate(entries):
            ident = tuple(entry.get(k) for k in key)
            if ident[0] is None:  # a feedback entry without id names nothing
                continue
            if ident in seen:
                shown = " ".join(f"{k} {v!r}" for k, v in zip(key, ident, strict=True)
                                 if v is not None)
                return ((section, name, i, "id"),
                        f"{shown} is listed twice (entries {seen[ident]} and {i}): give "
                        "each once")
            seen[ident] = i
    return None


def load_facts(path: str | Path | None) -> dict[str, Any]:
    """Optional recorded facts (versions, lineage, card records), YAML or JSON
    (read as YAML, so errors in either name the line of the offending key)."""
    if path is None:
        return {}
    from hilt.review.yamlio import load_yaml

    data, line_of = load_yaml(path)
    return facts_from_dict(data, file=str(path), line_of=line_of)
