"""Canonical JSON and content hashes.

Every hash in hilt (event ids, the audit chain, dataset versions, gate decisions) is
sha256 over the same canonical form, so that anyone can recompute it from the records.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date, datetime
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept as is: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_default, allow_nan=False)


def finite_json(value: Any) -> Any:
    """``value`` as plain JSON data for output: NaN and infinities become null (JSON has
    no such numbers, and an undefined statistic is null), numpy scalars and arrays become
    Python numbers and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return finite_json(value.tolist())
    return value


def output_json(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text of a result for people and programs (:func:`finite_json`)."""
    return json.dumps(finite_json(value), indent=indent, default=str, ensure_ascii=False,
                      allow_nan=False)


def sha256_hex(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def content_hash(value: Any) -> str:
    return sha256_hex(canonical_json(value))
