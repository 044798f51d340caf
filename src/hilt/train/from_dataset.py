"""Training input from data-selection dataset versions.

A dataset version (``hilt.data``) is an immutable, content-addressed set of records,
each with a ``split`` (``train`` or ``validation``) fixed when the version was built.
This module reads a version through the data stage, refuses a revoked one unless an
override reason is given (the override is audited by
:func:`hilt.data.versions.assert_usable`), and maps its records to what each trainer
reads:

* ``preference`` → :class:`~hilt.train.pairs.Pair` (the prompt rendered as an HH
  transcript ``"\\n\\nHuman: …\\n\\nAssistant:"`` so the reward model's views apply);
* ``classification`` → text and label;
* ``sft`` → ``{"messages": [..., assistant completion]}`` (the ``messages`` export shape).

Models trained from a version are registered with ``dataset_hash`` = the version id,
which is the sha256 of its records, so the lineage of a model leads to the version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from hilt.errors import InputError
from hilt.train.pairs import ASSISTANT, HUMAN, Pair

if TYPE_CHECKING:
    from hilt.train.classifier_eval import LabelledTexts

_ROLE_MARKERS = {"user": HUMAN, "assistant": ASSISTANT}


@dataclass
class DatasetInput:
    """The records of one usable dataset version, by split."""

    version_id: str
    name: str
    kind: str
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    override_reason: str | None = None
    revoked: bool = False
    other_splits: dict[str, int] = field(default_factory=dict)
    # where each record is in the version's records file (1-based line numbers), so an
    # error in a record names its line in the file, not its position within the split
    records_file: str | None = None
    train_lines: list[int] = field(default_factory=list)
    validation_lines: list[int] = field(default_factory=list)

    def where(self, split: str) -> dict[str, Any]:
        """The ``lines`` and ``file`` arguments of the mapping functions for ``split``."""
        lines = self.train_lines if split == "train" else self.validation_lines
        return {"lines": lines or None, "file": self.records_file}

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the dataset version."""
        return {"version_id": self.version_id, "name": self.name, "kind": self.kind,
                "splits": {"train": len(self.train), "validation": len(self.validation),
                           **self.other_splits},
                "revoked": self.revoked,
                "override_reason": self.override_reason if self.revoked else None}


def load_dataset_input(session: Session, version_ref: str, *, expected_kind: str,
                       override_reason: str | None = None,
                       actor: str = "cli") -> DatasetInput:
    """Read a version (id or unique prefix) for training, in the caller's transaction.

    Raises ``Forbidden`` for a revoked version without ``override_reason`` and
    ``InputError`` when the version holds another kind of data or no training records.
    """
    from hilt.data.versions import assert_usable, get_version, read_records, records_file

    row = assert_usable(session, get_version(session, version_ref).id,
                        override_reason=override_reason, actor=actor, purpose="train")
    if row.kind != expected_kind:
        raise InputError(f"dataset version {row.id} holds {row.kind} data; this trainer "
                         f"needs {expected_kind}", field="--dataset")
    train: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    lines: dict[str, list[int]] = {"train": [], "validation": []}
    others: dict[str, int] = {}
    for number, record in enumerate(read_records(row), start=1):  # one record a line
        split = record.get("split", "train")
        if split == "train":
            train.append(record)
            lines["train"].append(number)
        elif split == "validation":
            validation.append(record)
            lines["validation"].append(number)
        else:  # not used for training or evaluation, but counted in the manifest
            others[split] = others.get(split, 0) + 1
    if not train:
        raise InputError(f"dataset version {row.id} has no training records",
                         field="--dataset")
    return DatasetInput(version_id=row.id, name=row.name, kind=row.kind, train=train,
                        validation=validation, override_reason=override_reason,
                        revoked=row.revoked_at is not None, other_splits=others,
                        records_file=str(records_file(row)),
                        train_lines=lines["train"], validation_lines=lines["validation"])


def hh_prompt(messages: list[dict[str, str]]) -> str:
    """Messages as an HH transcript ending with the assistant marker.

    System messages are read as part of the first human turn (HH has no system role).
    """
    parts: list[str] = []
    system: list[str] = []
    for message in messages:
        role, content = message.get("role", "user"), message.get("content", "")
        if role == "system":
            system.append(content)
            continue
        if system and role == "user":
            content = "\n".join([*system, content])
            system = []
        parts.append(f"{_ROLE_MARKERS.get(role, HUMAN)} {content}")
    return "".join(parts) + ASSISTANT


class _Where:
    """Names a record in errors: its line in the records file when known, else its
    position among the records given."""

    def __init__(self, version_id: str, lines: Sequence[int] | None, file: str | None) -> None:
        self.file = file or f"dataset {version_id}"
        self.lines = lines

    def line(self, index: int) -> int:
        return self.lines[index] if self.lines is not None else index + 1


def _require(record: dict[str, Any], name: str, where: _Where, index: int) -> Any:
    value = record.get(name)
    if not isinstance(value, str):
        raise InputError("missing or not a string", file=where.file,
                         line=where.line(index), field=name)
    return value


def preference_pairs(records: list[dict[str, Any]], version_id: str,
                     lines: Sequence[int] | None = None,
                     file: str | None = None) -> list[Pair]:
    """Preference records → pairs (slice and key kept for per-slice accuracy).
    ``lines`` and ``file`` (:meth:`DatasetInput.where`) locate the records in errors."""
    where = _Where(version_id, lines, file)
    pairs = []
    for i, record in enumerate(records):
        messages = record.get("messages") or []
        prompt = hh_prompt(messages) if messages else \
            f"{HUMAN} {_require(record, 'prompt', where, i)}{ASSISTANT}"
        pairs.append(Pair(prompt=prompt, chosen=_require(record, "chosen", where, i),
                          rejected=_require(record, "rejected", where, i),
                          slice=record.get("slice"), id=record.get("key")))
    return pairs


def classification_rows(records: list[dict[str, Any]], version_id: str,
                        lines: Sequence[int] | None = None, file: str | None = None
                        ) -> tuple[list[str], list[str]]:
    """Classification records → (texts, labels); labels named as in files
    (:func:`hilt.train.classifier_eval.label_text`)."""
    from hilt.train.classifier_eval import label_text

    where = _Where(version_id, lines, file)
    texts, labels = [], []
    for i, record in enumerate(records):
        texts.append(_require(record, "text", where, i))
        try:
            labels.append(label_text(record.get("label")))
        except ValueError as exc:
            raise InputError(str(exc), file=where.file, line=where.line(i),
                             field="label") from None
    return texts, labels


def classification_texts(records: list[dict[str, Any]], version_id: str,
                         lines: Sequence[int] | None = None, file: str | None = None
                         ) -> LabelledTexts:
    """Classification records → texts, labels and, for ``text: prompt_response``
    versions, the prompt of each as its context.

    Such a record's ``text`` is ``"{prompt}\n{response}"`` and its ``prompt`` the prompt.
    Training on the joined text would make a scorer that ``hilt check`` feeds the
    response alone (a suite's answers carry no prompt in the text); split into context
    (the prompt) and text (the response), the classifier records ``uses_context`` and the
    check passes each suite item's prompt as the context, which is what it was trained
    on. Versions built before records carried the prompt keep the joined text."""
    from hilt.train.classifier_eval import LabelledTexts

    texts, labels = classification_rows(records, version_id, lines, file)
    prompts = [record.get("prompt") for record in records]
    if not records or all(p is None for p in prompts):
        return LabelledTexts(texts, labels)
    where = _Where(version_id, lines, file)
    contexts, responses = [], []
    for i, (text, prompt) in enumerate(zip(texts, prompts, strict=True)):
        if not isinstance(prompt, str) or not text.startswith(prompt + "\n"):
            # one shape per version: a record that does not split would be read alone
            raise InputError("a classification record of a prompt_response version must "
                             "hold its prompt and a text that starts with it and a newline",
                             file=where.file, line=where.line(i), field="prompt")
        contexts.append(prompt)
        responses.append(text[len(prompt) + 1:])
    return LabelledTexts(responses, labels, contexts)


def sft_messages(records: list[dict[str, Any]], version_id: str,
                 lines: Sequence[int] | None = None,
                 file: str | None = None) -> list[dict[str, Any]]:
    """SFT records → ``{"messages": [..., {"role": "assistant", ...}]}``."""
    where = _Where(version_id, lines, file)
    out = []
    for i, record in enumerate(records):
        completion = _require(record, "completion", where, i)
        messages = [{"role": m["role"], "content": m["content"]}
                    for m in record.get("messages") or []]
        if not messages:
            messages = [{"role": "user", "content": _require(record, "prompt", where, i)}]
        out.append({"messages": [*messages, {"role": "assistant", "content": completion}]})
    return out
