"""Preference pairs: reading, validation and the Anthropic HH transcript split.

A pair file holds one JSON object per line, in either of two forms (contract 5):

* ``{"prompt": str, "chosen": str, "rejected": str}``
* ``{"chosen": str, "rejected": str}`` where both are whole HH transcripts
  (``"\\n\\nHuman: … \\n\\nAssistant: …"``) sharing everything up to the final
  assistant turn.

Optional fields: ``margin`` (a number, e.g. a rating gap, used by the margin
Bradley–Terry loss), ``slice`` (a string, for per-slice accuracy) and ``id``.
Files may be gzip-compressed (``.gz``). Every problem raises ``InputError`` naming
file, line and field, before anything is trained or written.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hilt.canonical import content_hash
from hilt.errors import InputError

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"


@dataclass(frozen=True)
class Pair:
    """One human preference: ``chosen`` was preferred to ``rejected`` as a reply to ``prompt``."""

    prompt: str
    chosen: str
    rejected: str
    margin: float | None = None
    slice: str | None = None
    id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def split_hh_transcripts(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two HH transcripts into (shared prompt, chosen reply, rejected reply).

    The prompt is everything up to and including the last ``"\\n\\nAssistant:"`` that
    lies inside the common prefix of both transcripts. Cutting at the raw common
    prefix would be wrong: both replies often begin with the same words ("I"), which
    would then be moved into the prompt.
    """
    limit = 0
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        limit += 1
    cut = chosen.rfind(ASSISTANT, 0, limit)
    # The marker must lie entirely inside the shared part.
    while cut >= 0 and cut + len(ASSISTANT) > limit:
        cut = chosen.rfind(ASSISTANT, 0, cut)
    if cut < 0:
        raise ValueError("the two transcripts share no prompt ending in '\\n\\nAssistant:'")
    end = cut + len(ASSISTANT)
    return chosen[:end], chosen[end:].strip(), rejected[end:].strip()


def last_exchange(prompt: str) -> str:
    """The last human turn of an HH-style prompt (the whole prompt if it has no markers)."""
    start = prompt.rfind(HUMAN)
    if start < 0:
        return prompt.strip()
    text = prompt[start + len(HUMAN):]
    if text.endswith(ASSISTANT):
        text = text[: -len(ASSISTANT)]
    return text.strip()


def _string_field(obj: dict[str, Any], name: str, file: str, line: int) -> str:
    if name not in obj:
        raise InputError("missing required field", file=file, line=line, field=name)
    value = obj[name]
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", file=file,
                         line=line, field=name)
    return value


def parse_pair(obj: Any, file: str, line: int) -> Pair:
    """Validate one decoded JSON line and turn it into a :class:`Pair`."""
    if not isinstance(obj, dict):
        raise InputError("each line must be a JSON object", file=file, line=line)
    chosen = _string_field(obj, "chosen", file, line)
    rejected = _string_field(obj, "rejected", file, line)
    if "prompt" in obj:
        prompt = _string_field(obj, "prompt", file, line)
    else:
        try:
            prompt, chosen, rejected = split_hh_transcripts(chosen, rejected)
        except ValueError as exc:
            raise InputError(f"no 'prompt' field and {exc}", file=file, line=line,
                             field="chosen") from None
    # Empty replies are kept: HH contains them, and "say nothing" is a real choice.
    margin = obj.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, int | float)):
        raise InputError("must be a number", file=file, line=line, field="margin")
    if margin is not None and not math.isfinite(margin):  # JSON's NaN / Infinity extension
        raise InputError(f"must be a finite number, got {margin}", file=file, line=line,
                         field="margin")
    slice_name = obj.get("slice")
    if slice_name is not None and not isinstance(slice_name, str):
        raise InputError("must be a string", file=file, line=line, field="slice")
    pair_id = obj.get("id")
    return Pair(prompt=prompt, chosen=chosen, rejected=rejected,
                margin=float(margin) if margin is not None else None, slice=slice_name,
                id=str(pair_id) if pair_id is not None else None)


def iter_pairs(path: str | Path) -> Iterator[Pair]:
    from hilt.jsonl import iter_json_objects

    for number, obj in iter_json_objects(path):
        yield parse_pair(obj, str(path), number)


def read_pairs(path: str | Path) -> list[Pair]:
    """Read and validate a whole pair file (all lines are checked before returning)."""
    pairs = list(iter_pairs(path))
    if not pairs:
        raise InputError("no preference pairs in file", file=str(path))
    return pairs


def pairs_hash(pairs: Sequence[Pair]) -> str:
    """Content hash of the parsed pairs: the same data gives the same hash, gzip or not."""
    return content_hash([p.as_dict() for p in pairs])


def split_pairs(pairs: Sequence[Pair], held_out_fraction: float = 0.2,
                seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Seeded random split into (train, held-out)."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_held = int(round(len(pairs) * held_out_fraction))
    held = sorted(order[:n_held])
    train = sorted(order[n_held:])
    return [pairs[i] for i in train], [pairs[i] for i in held]
