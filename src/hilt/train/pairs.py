"""Preference pairs: reading, validation and the Anthropic HH transcript split.

A pair file holds one JSON object per line, in either of two forms (contract 5):

* ``{"prompt": str, "chosen": str, "rejected": str}``
* ``{"chosen": str, "rejected": str}`` where both are whole HH transcripts
  (``"\\n\\nHuman: … \\n\\nAssistant: …"``) sharing everything up to the final
  assistant turn.

A transcript may start with ``"Human:"`` without the leading newlines. After the split
neither reply may hold a further ``"\\n\\nHuman:"`` turn: the two transcripts must share
every turn but the last assistant reply (a reply may run over several assistant
turns).

Optional fields: ``margin`` (a number, e.g. a rating gap, used by the margin
Bradley–Terry loss), ``slice`` (a string, for per-slice accuracy) and ``id`` (a string
or an integer, unique within a file). Any other key is refused: a misspelt ``margn``
would otherwise train as if the pair had no margin.

A pair states that one reply is better than another, so its two replies must differ:
a pair whose rejected reply is the chosen one (apart from white space at either end;
for HH transcripts, after the split) is refused, naming the field ``rejected``.

Files may be gzip-compressed (``.gz``). Every problem raises ``InputError`` naming
file, line and field, before anything is trained or written.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from hilt.canonical import content_hash
from hilt.errors import InputError
from hilt.jsonl import finite_number
from hilt.train.surrogates import refuse_lone_surrogates

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
# every key a pair line may hold
PAIR_KEYS = ("prompt", "chosen", "rejected", "margin", "slice", "id")

Item = TypeVar("Item")


class TranscriptError(ValueError):
    """Two HH transcripts that do not split into one prompt and two replies."""

    def __init__(self, message: str, field: str = "chosen") -> None:
        super().__init__(message)
        self.field = field


def with_leading_turn_break(transcript: str) -> str:
    """``"Human: q…"`` → ``"\\n\\nHuman: q…"``, the form the markers are matched in."""
    if transcript.startswith(HUMAN):
        return transcript
    opening = transcript.lstrip()
    return "\n\n" + opening if opening.startswith(HUMAN.lstrip()) else transcript


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

    Raises :class:`TranscriptError` (with the field at fault) when there is no such
    prompt or when a reply still holds a human turn: transcripts that diverge at an
    earlier assistant turn, or that end with a human turn, are not one preference
    between two final replies.
    """
    chosen = with_leading_turn_break(chosen)
    rejected = with_leading_turn_break(rejected)
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
        raise TranscriptError("the two transcripts share no prompt ending in "
                              "'\\n\\nAssistant:'")
    end = cut + len(ASSISTANT)
    # A further assistant turn is still the assistant speaking (HH has such replies);
    # a human turn means the transcripts diverged earlier or do not end with a reply.
    for name, transcript in (("chosen", chosen), ("rejected", rejected)):
        if HUMAN in transcript[end:]:
            raise TranscriptError(
                f"the {name} reply holds a further 'Human:' turn; the two transcripts "
                "must share every turn but the last assistant reply", field=name)
    return chosen[:end], chosen[end:].strip(), rejected[end:].strip()


def last_exchange(prompt: str) -> str:
    """The last human turn of an HH-style prompt (the whole prompt if it has no markers)."""
    prompt = with_leading_turn_break(prompt)
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


def same_replies(chosen: str, rejected: str) -> bool:
    """Whether two replies are one and the same (white space at either end aside): such
    a pair prefers nothing, yet the loss would push their rewards apart as if it did."""
    return chosen.strip() == rejected.strip()


def _same_replies_error(file: str | None, line: int | None) -> InputError:
    return InputError("the same reply as 'chosen' (white space at either end aside): a "
                      "pair must prefer one reply over a different one", file=file,
                      line=line, field="rejected")


def refuse_same_replies(pairs: Sequence[Pair], file: str | None = None,
                        lines: Sequence[int] | None = None) -> None:
    """Refuse the first pair of ``pairs`` whose two replies are the same, naming
    ``file`` and its line (``lines[i]``, else its position ``i + 1``) and the field
    ``rejected``; for pairs that did not come through :func:`parse_pair` (a dataset
    version's records)."""
    for i, pair in enumerate(pairs):
        if same_replies(pair.chosen, pair.rejected):
            raise _same_replies_error(file, lines[i] if lines is not None else i + 1)


def parse_pair(obj: Any, file: str, line: int) -> Pair:
    """Validate one decoded JSON line and turn it into a :class:`Pair`."""
    if not isinstance(obj, dict):
        raise InputError("each line must be a JSON object", file=file, line=line)
    refuse_lone_surrogates(obj, file, line)
    unknown = next((key for key in obj if key not in PAIR_KEYS), None)
    if unknown is not None:
        raise InputError(f"unknown key (a pair line holds {', '.join(PAIR_KEYS)})",
                         file=file, line=line, field=unknown)
    chosen = _string_field(obj, "chosen", file, line)
    rejected = _string_field(obj, "rejected", file, line)
    if "prompt" in obj:
        prompt = _string_field(obj, "prompt", file, line)
    else:
        try:
            prompt, chosen, rejected = split_hh_transcripts(chosen, rejected)
        except TranscriptError as exc:
            raise InputError(f"HH transcripts (no 'prompt' field): {exc}", file=file, line=line,
                             field=exc.field) from None
    # Empty replies are kept: HH contains them, and "say nothing" is a real choice;
    # two equal replies are no choice at all.
    if same_replies(chosen, rejected):
        raise _same_replies_error(file, line)
    # the loss reads a float
    margin = finite_number(obj.get("margin"), file=file, line=line, field="margin")
    slice_name = obj.get("slice")
    if slice_name is not None and not isinstance(slice_name, str):
        raise InputError("must be a string", file=file, line=line, field="slice")
    pair_id = obj.get("id")
    if pair_id is not None and (isinstance(pair_id, bool)
                                or not isinstance(pair_id, str | int)):
        raise InputError(f"must be a string or an integer, got {type(pair_id).__name__}",
                         file=file, line=line, field="id")
    return Pair(prompt=prompt, chosen=chosen, rejected=rejected,
                margin=float(margin) if margin is not None else None, slice=slice_name,
                id=str(pair_id) if pair_id is not None else None)


def iter_pairs(path: str | Path) -> Iterator[Pair]:
    from hilt.jsonl import iter_json_objects

    for number, obj in iter_json_objects(path):
        yield parse_pair(obj, str(path), number)


def read_pairs(path: str | Path, *, margins: bool = False) -> list[Pair]:
    """Read and validate a whole pair file (all lines are checked before returning);
    an ``id`` given twice is an error.

    ``margins`` (the pairs train with ``--margin``): every pair must carry a ``margin``
    (:func:`require_margins`), the first one without naming its line."""
    from hilt.jsonl import iter_json_objects

    pairs: list[Pair] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    for number, obj in iter_json_objects(path):
        pair = parse_pair(obj, str(path), number)
        if pair.id is not None:
            if pair.id in seen:
                raise InputError(f"id {pair.id!r} repeats the id of line {seen[pair.id]}",
                                 file=str(path), line=number, field="id")
            seen[pair.id] = number
        pairs.append(pair)
        lines.append(number)
    if not pairs:
        raise InputError("no preference pairs in file", file=str(path))
    if margins:
        require_margins(pairs, str(path), lines)
    return pairs


def require_margins(pairs: Sequence[Pair], file: str | None = None,
                    lines: Sequence[int] | None = None) -> None:
    """Refuse pairs to train with ``--margin`` unless every one carries a ``margin``.

    None of them carrying one is an error naming ``--margin`` (a run would train the
    plain loss while its manifest says ``use_margin``); some without is an error naming
    the first such pair's line (``lines[i]``, else its position) and the field
    ``margin``: a pair that has no rating gap is written with ``"margin": 0``."""
    missing = next((i for i, pair in enumerate(pairs) if pair.margin is None), None)
    if missing is None:
        return
    if all(pair.margin is None for pair in pairs):
        raise InputError("no pair carries a 'margin' to train with; leave out --margin "
                         "or give the pairs margins", file=file, field="--margin")
    raise InputError("no margin, and --margin needs one on every pair (write 0 for a "
                     "pair without a rating gap)", file=file,
                     line=lines[missing] if lines is not None else missing + 1,
                     field="margin")


def pair_key(pair: Pair) -> tuple[str, str, str]:
    """What makes two pairs the same preference: prompt and both replies as the model
    reads them, white space at either end aside (as :func:`same_replies`) and an HH
    prompt with or without its opening ``"\\n\\n"``.

    The two forms of contract 5 therefore give one key for one pair: an HH line's
    replies come out of :func:`split_hh_transcripts` stripped, while a
    ``{prompt, chosen, rejected}`` line keeps the space HH puts after
    ``"Assistant:"``. Compared raw, the same pair in the two forms (or two copies
    differing only in a trailing line break) would count as two, and a held-out copy
    of a training pair would go unseen by every overlap check."""
    return (with_leading_turn_break(pair.prompt).strip(), pair.chosen.strip(),
            pair.rejected.strip())


def duplicate_count(pairs: Sequence[Pair]) -> int:
    """Pairs identical (by :func:`pair_key`) to an earlier pair of ``pairs``."""
    return len(pairs) - len({pair_key(p) for p in pairs})


def pairs_hash(pairs: Sequence[Pair]) -> str:
    """Content hash of the parsed pairs: the same data gives the same hash, gzip or not."""
    return content_hash([p.as_dict() for p in pairs])


def split_pairs(pairs: Sequence[Pair], held_out_fraction: float = 0.2,
                seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Seeded random split into (train, held-out), file order kept on each side.

    Identical pairs (:func:`pair_key`) are split as one: every copy lands on the same
    side, so a held-out pair never has a copy in training. Without duplicates this is a
    plain shuffle of the pairs: the groups are shuffled in the order of their first
    pair, and the key itself is never hashed, so a file whose pairs all have distinct
    keys is split as it would be by any other key that tells them apart.
    """
    return grouped_split(pairs, pair_key, held_out_fraction, seed)


def grouped_split(items: Sequence[Item], key: Callable[[Item], Hashable], fraction: float,
                  seed: int) -> tuple[list[Item], list[Item]]:
    """Seeded split of ``items`` into (train, held-out), order kept on each side. Items
    with the same ``key`` are drawn as one group, whose copies all land on one side;
    round(fraction × groups) groups are held out. The groups are shuffled in the order
    of their first item, so the split depends on which items are copies, not on the
    key's values."""
    groups: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    members = list(groups.values())
    order = list(range(len(members)))
    random.Random(seed).shuffle(order)
    n_held = int(round(len(members) * fraction))
    held = sorted(i for g in order[:n_held] for i in members[g])
    train = sorted(i for g in order[n_held:] for i in members[g])
    return [items[i] for i in train], [items[i] for i in held]
