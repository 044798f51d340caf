"""What the review stage writes into audit payloads about answers.

The audit chain is append-only and hashes every payload, so anything written there can
never be erased. Free text and rewrites may hold personal content (and must disappear
with ``hilt forget``), so the log keeps their sha256 and length, never the text; choices,
scales, preferences and rankings are kept as they are.
"""

from __future__ import annotations

from typing import Any

from hilt.canonical import sha256_hex

TEXT_KINDS = frozenset({"free_text", "rewrite"})


def text_digest(value: Any) -> Any:
    if isinstance(value, str):
        return {"sha256": sha256_hex(value), "chars": len(value)}
    return value


def answers_for_audit(answers: dict[str, Any], kinds: dict[str, str]) -> dict[str, Any]:
    """``answers`` with free-text and rewrite values replaced by their digests."""
    return {q: text_digest(v) if kinds.get(q) in TEXT_KINDS else v for q, v in answers.items()}
