"""Strict readers for suite and response files (JSON Lines, contract 3).

SUITE lines: ``{"id", "prompt", "slice", "expect": "comply"|"refuse"}`` plus any
metadata (kept, e.g. ``reference_answer``, ``rubric``). ``prompt`` is a text or a
conversation: a list of ``{"role": "system"|"user"|"assistant", "content": text}``
turns that ends with a user turn, the one the reply under test answers; each turn is
located in errors by its dotted field (``prompt[2].role``).

CAND / REF lines: ``{"id", "response"}``, optionally
``"judgment": "comply"|"refuse"|"partial"``, and the optional
extensions ``"guardrail_flagged": bool`` (the guardrail's decision on this exchange) and
``"reward": number`` (a reward-model score, for the win-rate), and ``"generation"``, an
object that ``hilt generate`` writes (``generation.settings``: what produced the reply).
Any other key on a response line is refused: a misspelt ``judgement`` or ``rewad`` would
otherwise vanish, and with ``--scorer`` the classifier would stand in for the human
judgment the line gives.

Numbers must be finite everywhere, metadata included: a NaN or an infinity cannot be
written into a decision record or a suite's content hash.

Every problem is an :class:`~hilt.errors.InputError` naming the file, the 1-based line
and the field; the first one found stops the run before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from hilt.errors import InputError
from hilt.evals.grouping import ALL
from hilt.events.model import Message, Role
from hilt.jsonl import finite_number

EXPECTATIONS = ("comply", "refuse")
# the keys of a suite line that are not metadata
SUITE_KEYS = ("id", "prompt", "slice", "expect")
# The roles of a suite conversation: the event model's, less ``tool``. A tool turn
# answers a tool call that a suite line cannot carry, and the HH transcript the reward
# model reads has no place for one.
SUITE_ROLES: tuple[Role, ...] = ("system", "user", "assistant")
MESSAGE_KEYS = ("role", "content")
JUDGMENTS = ("comply", "refuse", "partial")
# every key a response line may hold
RESPONSE_KEYS = ("id", "response", "judgment", "guardrail_flagged", "reward", "generation")


@dataclass(frozen=True)
class SuiteItem:
    """One suite line. ``prompt`` is always text: a plain prompt as given, a conversation
    in its text form (:func:`conversation_text`), for places that need one string;
    ``messages`` keeps the conversation itself (None for a plain prompt), and each use
    of the prompt picks its form (:meth:`given_prompt`, :meth:`chat`,
    :meth:`last_user_turn`, :meth:`heldout_texts`)."""

    id: str
    prompt: str
    slice: str
    expect: str
    line: int
    metadata: dict[str, Any] = field(default_factory=dict)
    messages: tuple[Message, ...] | None = None

    @classmethod
    def conversation(cls, id: str, messages: Sequence[Message], slice: str, expect: str,
                     line: int, metadata: dict[str, Any] | None = None) -> SuiteItem:
        """An item whose prompt is a conversation (its text form derived from it)."""
        turns = tuple(messages)
        return cls(id, conversation_text(turns), slice, expect, line,
                   dict(metadata or {}), turns)

    def given_prompt(self) -> str | list[dict[str, str]]:
        """The prompt as the suite line gives it: the text, or the list of turns. What
        the suite's content hash, the report and ``hilt suite show`` carry."""
        if self.messages is None:
            return self.prompt
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def chat(self) -> list[dict[str, str]]:
        """The chat messages a model is sent: every turn of a conversation, a plain
        prompt as one user turn."""
        if self.messages is None:
            return [{"role": "user", "content": self.prompt}]
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def last_user_turn(self) -> str:
        """The request the reply under test answers (the plain prompt itself)."""
        if self.messages is None:
            return self.prompt
        return next(m.content for m in reversed(self.messages) if m.role == "user")

    def heldout_texts(self) -> list[str]:
        """The texts of this prompt that training data must not contain: a plain prompt,
        or a conversation's :func:`conversation_heldout_texts`."""
        if self.messages is None:
            return [self.prompt]
        return conversation_heldout_texts(self.messages)


def conversation_heldout_texts(messages: Sequence[Message]) -> list[str]:
    """Each distinct user turn of a conversation, checked one by one against training
    data (a training example holds one turn per field). System and assistant turns are
    left out: a system prompt or a stock reply shared with training data would remove
    every example that carries it, and an example that copies the conversation copies
    its user turns too."""
    return list(dict.fromkeys(m.content for m in messages if m.role == "user"))


def conversation_text(messages: Sequence[Message]) -> str:
    """A conversation as one string, rendered as data selection renders a record's
    prompt (:func:`hilt.data.records.render_prompt`): ``role: text`` lines."""
    from hilt.data.records import render_prompt

    return render_prompt([{"role": m.role, "content": m.content} for m in messages])


@dataclass(frozen=True)
class ResponseLine:
    id: str
    response: str
    line: int
    judgment: str | None = None
    guardrail_flagged: bool | None = None
    reward: float | None = None
    # what produced the reply, as ``hilt generate`` writes it (generation.settings)
    settings: dict[str, Any] | None = None


def non_finite_field(value: Any, path: str = "") -> str | None:
    """The dotted path (``a.b[1]``) of the first float in ``value`` that is NaN or
    infinite, ``""`` when ``value`` itself is one; None when every number is finite."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    items: Any = (value.items() if isinstance(value, dict)
                  else enumerate(value) if isinstance(value, list | tuple) else ())
    for key, item in items:
        inner = (f"{path}[{key}]" if isinstance(key, int) and not isinstance(value, dict)
                 else f"{path}.{key}" if path else str(key))
        found = non_finite_field(item, inner)
        if found is not None:
            return found
    return None


def check_finite(value: Any, *, field: str, file: str | None, line: int | None) -> None:
    """Refuse a NaN or an infinity anywhere in ``value`` (the value of ``field``)."""
    found = non_finite_field(value, field)
    if found is not None:
        raise InputError("must be a finite number (not NaN or infinite)", file=file,
                         line=line, field=found)


def _read_objects(path: Path) -> list[tuple[int, dict[str, Any]]]:
    from hilt.jsonl import iter_json_objects

    objects = list(iter_json_objects(path))
    if not objects:
        raise InputError("the file has no lines", file=str(path))
    return objects


def _item_id(obj: dict[str, Any], path: Path, line: int) -> str:
    if "id" not in obj:
        raise InputError("missing id", file=str(path), line=line, field="id")
    value = obj["id"]
    # Integers are accepted as ids (common in exported data) and compared as text.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError("id must be a string or an integer", file=str(path), line=line,
                         field="id")
    text = str(value)
    if not text.strip():
        raise InputError("id is empty", file=str(path), line=line, field="id")
    return text


def _string(obj: dict[str, Any], name: str, path: Path, line: int) -> str:
    if name not in obj:
        raise InputError(f"missing {name}", file=str(path), line=line, field=name)
    value = obj[name]
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string", file=str(path), line=line, field=name)
    return value


def parse_suite(path: str | Path) -> list[SuiteItem]:
    """Read and validate a suite file; ids unique, expectations known."""
    path = Path(path)
    items: list[SuiteItem] = []
    seen: dict[str, int] = {}
    for line, obj in _read_objects(path):
        item_id = _item_id(obj, path, line)
        if item_id in seen:
            raise InputError(f"duplicate id {item_id!r} (first on line {seen[item_id]})",
                             file=str(path), line=line, field="id")
        seen[item_id] = line
        if "prompt" not in obj:
            raise InputError("missing prompt", file=str(path), line=line, field="prompt")
        messages = _conversation(obj["prompt"], path, line)
        slice_name = _string(obj, "slice", path, line)
        if not slice_name.strip():
            raise InputError("slice is empty", file=str(path), line=line, field="slice")
        if slice_name == ALL:
            raise InputError(f"slice name {ALL!r} is reserved for the whole suite",
                             file=str(path), line=line, field="slice")
        expect = _string(obj, "expect", path, line)
        if expect not in EXPECTATIONS:
            raise InputError(f"expect must be one of {', '.join(EXPECTATIONS)}, got "
                             f"{expect!r}", file=str(path), line=line, field="expect")
        metadata = {k: v for k, v in obj.items() if k not in SUITE_KEYS}
        for key, value in metadata.items():
            check_finite(value, field=key, file=str(path), line=line)
        items.append(SuiteItem(item_id, obj["prompt"], slice_name, expect, line, metadata)
                     if messages is None else
                     SuiteItem.conversation(item_id, messages, slice_name, expect, line,
                                            metadata))
    return items


def _conversation(value: Any, path: Path, line: int) -> list[Message] | None:
    """The turns of a conversation prompt; None for a plain text prompt."""
    if isinstance(value, str):
        return None
    if not isinstance(value, list):
        raise InputError("prompt must be a string or a list of messages", file=str(path),
                         line=line, field="prompt")
    if not value:
        raise InputError("a conversation needs at least one message", file=str(path),
                         line=line, field="prompt")
    turns: list[Message] = []
    for index, message in enumerate(value):
        where = f"prompt[{index}]"
        if not isinstance(message, dict):
            raise InputError("a message must be an object with role and content",
                             file=str(path), line=line, field=where)
        unknown = next((key for key in message if key not in MESSAGE_KEYS), None)
        if unknown is not None:
            raise InputError(f"unknown key (a message holds {', '.join(MESSAGE_KEYS)})",
                             file=str(path), line=line, field=f"{where}.{unknown}")
        for key in MESSAGE_KEYS:
            if key not in message:
                raise InputError(f"missing {key}", file=str(path), line=line,
                                 field=f"{where}.{key}")
        role, content = message["role"], message["content"]
        if role not in SUITE_ROLES:
            raise InputError(f"role must be one of {', '.join(SUITE_ROLES)}, got {role!r}",
                             file=str(path), line=line, field=f"{where}.role")
        if not isinstance(content, str):
            raise InputError("content must be a string", file=str(path), line=line,
                             field=f"{where}.content")
        if not content.strip():
            raise InputError("content is empty", file=str(path), line=line,
                             field=f"{where}.content")
        turns.append(Message(role=cast(Role, role), content=content))
    if turns[-1].role != "user":
        raise InputError(f"a conversation ends with the user turn the reply answers, not "
                         f"{turns[-1].role!r}", file=str(path), line=line,
                         field=f"prompt[{len(turns) - 1}].role")
    return turns


def parse_responses(path: str | Path, suite: list[SuiteItem], suite_path: str | Path, *,
                    unknown_keys_ignored: bool = False) -> dict[str, ResponseLine]:
    """Read a response file; every suite item answered exactly once, nothing else.

    ``unknown_keys_ignored`` is for re-reading the very file a stored decision was made
    from (its sha256 checked first): a decision made before unknown keys were refused
    ignored them, and its re-check must read the file as it was read then."""
    path = Path(path)
    known = {item.id for item in suite}
    out: dict[str, ResponseLine] = {}
    for line, obj in _read_objects(path):
        unknown = next((key for key in obj if key not in RESPONSE_KEYS), None)
        if unknown is not None and not unknown_keys_ignored:
            raise InputError(f"unknown key (a response line holds "
                             f"{', '.join(RESPONSE_KEYS)})", file=str(path), line=line,
                             field=unknown)
        item_id = _item_id(obj, path, line)
        if item_id not in known:
            raise InputError(f"unknown id {item_id!r}: not in the suite {suite_path}",
                             file=str(path), line=line, field="id")
        if item_id in out:
            raise InputError(f"duplicate id {item_id!r} (first on line "
                             f"{out[item_id].line})", file=str(path), line=line, field="id")
        response = _string(obj, "response", path, line)
        judgment = obj.get("judgment")
        if judgment is not None and judgment not in JUDGMENTS:
            raise InputError(f"judgment must be one of {', '.join(JUDGMENTS)}, got "
                             f"{judgment!r}", file=str(path), line=line, field="judgment")
        flagged = obj.get("guardrail_flagged")
        if flagged is not None and not isinstance(flagged, bool):
            raise InputError("guardrail_flagged must be true or false", file=str(path),
                             line=line, field="guardrail_flagged")
        reward = finite_number(obj.get("reward"), file=str(path), line=line,
                               field="reward")
        settings = _generation_settings(obj, path, line)
        out[item_id] = ResponseLine(item_id, response, line, judgment, flagged, reward,
                                    settings)
    for item in suite:
        if item.id not in out:
            raise InputError(f"item {item.id!r} has no response in {path}",
                             file=str(suite_path), line=item.line, field="id")
    return out


def _generation_settings(obj: dict[str, Any], path: Path, line: int
                         ) -> dict[str, Any] | None:
    """``generation.settings`` of a response line (None when absent). The contents are
    free, as ``hilt generate`` records them, but must be objects and finite: they go
    into the decision record as ``versions.decoder_settings``."""
    generation = obj.get("generation")
    if generation is None:
        return None
    if not isinstance(generation, dict):
        raise InputError("generation must be an object", file=str(path), line=line,
                         field="generation")
    check_finite(generation, field="generation", file=str(path), line=line)
    settings = generation.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise InputError("generation.settings must be an object", file=str(path),
                         line=line, field="generation.settings")
    return settings
