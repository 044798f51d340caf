"""The recorded-facts file of ``hilt check --facts``: validated strictly, field by field.

The facts feed the gate (lineage, sign-offs) and the contract card (records), so a
misspelt key must stop the run rather than vanish: ``lineage: {datasets: …}`` for
``dataset_versions`` would otherwise read as a known lineage with nothing to object to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from hilt.errors import InputError

# Versions every decision names, recorded as null when the inputs do not say.
VERSION_KEYS = ("dataset_versions", "rubric", "prompt_template", "role_format",
                "decoder_settings", "reward_model")
FACT_KEYS = ("versions", "lineage", "signoffs", "records")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class Signoff(_Strict):
    role: str
    by: str
    at: str | None = None
    note: str | None = None


class Facts(_Strict):
    versions: Versions | None = None
    lineage: Lineage | None = None
    signoffs: list[Signoff] = []
    records: dict[str, Any] = {}


def facts_from_dict(data: Any, *, file: str = "<facts>") -> dict[str, Any]:
    """The validated facts as plain data (only the keys the file gave)."""
    if not isinstance(data, dict):
        raise InputError("facts must be a mapping", file=file)
    try:
        parsed = Facts.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        message = ("unknown key" if first["type"] == "extra_forbidden"
                   else str(first["msg"]))
        raise InputError(message, file=file, field=where) from exc
    return parsed.model_dump(mode="json", include=set(data), exclude_none=False)


def load_facts(path: str | Path | None) -> dict[str, Any]:
    """Optional recorded facts (versions, lineage, sign-offs, card records), YAML or JSON."""
    if path is None:
        return {}
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read facts ({exc.strerror})", file=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML ({getattr(exc, 'problem', exc)})", file=str(path),
                         line=None if mark is None else mark.line + 1) from exc
    return facts_from_dict(data, file=str(path))
