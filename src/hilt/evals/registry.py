"""The eval-suite registry: versioned, content-addressed, held-out suites and variants.

A suite version is immutable: registering the same ``name@version`` again with the same
content is a no-op, with other content a conflict. A *variant* is the same items (the
same ids, slices and expectations) under another prompt template, role format or
language; it is a suite version of its own that names its base, so a regression seen only
under one template shows up as a difference between variants. Every registration is
written to the audit log in the same transaction.

Data selection's decontamination reads :func:`heldout_texts`, so that no prompt or
reference answer of a held-out suite can enter a training set.

A conversation prompt is stored as its text form in the ``prompt`` column (what SQL
readers and older code see) and as its list of turns under the key ``prompt`` of the
item's ``extra`` JSON, which otherwise holds the metadata: a suite line's ``prompt`` is
never metadata, so the key cannot collide, no schema change is needed, and text-only
suites are stored (and hashed) exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import content_hash
from hilt.errors import Conflict, InputError, NotFound
from hilt.evals.files import (
    SUITE_KEYS,
    SuiteItem,
    check_finite,
    conversation_heldout_texts,
)
from hilt.events.model import Message
from hilt.review.text_checks import check_name
from hilt.store import audit
from hilt.store.tables.gate import EvalSuiteItemRow, EvalSuiteRow

# eval_suites.name is String(200) and .version String(100); the id joins them with "@".
SUITE_NAME_MAX = 200
SUITE_VERSION_MAX = 100


def suite_id(name: str, version: str) -> str:
    return f"{name}@{version}"


def check_suite_name(name: object, version: object) -> None:
    """A suite's name and version are names (:func:`hilt.review.text_checks.check_name`):
    non-blank, short enough for their columns, without control characters. The name
    holds no ``@`` either, so that ``NAME@VERSION`` names one suite: ``a@b`` version
    ``1`` and ``a`` version ``b@1`` would share an id."""
    check_name(name, "name", SUITE_NAME_MAX)
    check_name(version, "version", SUITE_VERSION_MAX)
    if "@" in str(name):
        raise InputError("must not contain '@' (suites are named NAME@VERSION)",
                         field="name")


def suite_content_hash(items: Sequence[SuiteItem], *, prompt_template: str | None,
                       role_format: str | None, language: str | None) -> str:
    """sha256 over the canonical items (in order) and the rendering they were made under."""
    return content_hash({
        # a text prompt hashes as before; a conversation as its list of turns
        "items": [{"id": i.id, "prompt": i.given_prompt(), "slice": i.slice,
                   "expect": i.expect, "metadata": i.metadata} for i in items],
        "prompt_template": prompt_template, "role_format": role_format,
        "language": language})


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def register_suite(session: Session, items: Sequence[SuiteItem], *, name: str,
                   version: str, actor: str, heldout: bool = True,
                   prompt_template: str | None = None, role_format: str | None = None,
                   language: str | None = None, variant_of: str | None = None,
                   description: str = "", file: str | None = None) -> EvalSuiteRow:
    """Register one suite version (or a variant of one); idempotent for equal content.

    ``file``: the suite file the items came from, named in errors about them; errors
    about ``name`` and ``version`` (:func:`check_suite_name`) name those fields."""
    check_suite_name(name, version)
    if not items:
        raise InputError("a suite needs at least one item", file=file, field="items")
    for item in items:
        # the content hash and the stored metadata are JSON: no NaN or infinity
        for key, value in item.metadata.items():
            if key in SUITE_KEYS:  # the stored conversation lives under extra["prompt"]
                raise InputError(f"{key!r} is a suite line's own key, not metadata",
                                 file=file, line=item.line, field=key)
            check_finite(value, field=key, file=file, line=item.line)
    sid = suite_id(name, version)
    digest = suite_content_hash(items, prompt_template=prompt_template,
                                role_format=role_format, language=language)
    existing = session.get(EvalSuiteRow, sid)
    if existing is not None:
        if existing.content_hash != digest:
            raise Conflict(f"suite {sid} is already registered with other content "
                           f"(sha256 {existing.content_hash}); register a new version")
        return existing
    if variant_of is not None:
        _check_variant(session, variant_of, items, file,
                       rendering=(prompt_template, role_format, language))
    row = EvalSuiteRow(id=sid, name=name, version=version, content_hash=digest,
                       heldout=heldout, prompt_template=prompt_template,
                       role_format=role_format, language=language, variant_of=variant_of,
                       item_count=len(items), description=description, created_by=actor)
    session.add(row)
    session.flush()
    session.add_all(EvalSuiteItemRow(
        suite_id=sid, item_id=item.id, position=position, prompt=item.prompt,
        slice=item.slice, expect=item.expect,
        reference_answer=_text_or_none(item.metadata.get("reference_answer")),
        rubric=_text_or_none(item.metadata.get("rubric")),
        extra=_extra(item))
        for position, item in enumerate(items))
    audit.append(session, actor=actor, action="eval_suite.registered",
                 entity_type="eval_suite", entity_id=sid,
                 payload={"content_hash": digest, "items": len(items), "heldout": heldout,
                          "prompt_template": prompt_template, "role_format": role_format,
                          "language": language, "variant_of": variant_of})
    session.flush()
    return row


def _extra(item: SuiteItem) -> dict[str, Any]:
    """The item's ``extra`` column: metadata without the columns of its own, and a
    conversation's turns under ``prompt``."""
    extra = {k: v for k, v in item.metadata.items()
             if k not in ("reference_answer", "rubric")}
    if item.messages is not None:
        extra["prompt"] = item.given_prompt()
    return extra


def _check_variant(session: Session, base_id: str, items: Sequence[SuiteItem],
                   file: str | None,
                   rendering: tuple[str | None, str | None, str | None]) -> None:
    """A variant is its base's items under another rendering: the same ids, slices and
    expectations, and another prompt template, role format or language."""
    base = session.get(EvalSuiteRow, base_id)
    if base is None:
        raise NotFound(f"base suite {base_id} is not registered")
    if rendering == (base.prompt_template, base.role_format, base.language):
        # nothing would tell the two apart in `hilt suite variants`
        raise InputError(f"a variant must differ from {base_id} in --prompt-template, "
                         "--role-format or --language; all three equal the base's "
                         f"({_rendering_text(rendering)})", field="--variant-of")
    rows = session.execute(sa.select(EvalSuiteItemRow.item_id, EvalSuiteItemRow.slice,
                                     EvalSuiteItemRow.expect)
                           .where(EvalSuiteItemRow.suite_id == base_id)).all()
    base_items = {r.item_id: (r.slice, r.expect) for r in rows}
    mine = {i.id: (i.slice, i.expect) for i in items}
    if set(mine) != set(base_items):
        extra, missing = sorted(set(mine) - set(base_items)), sorted(set(base_items) - set(mine))
        raise InputError(f"a variant must have the same item ids as {base_id}: "
                         f"{len(extra)} extra (e.g. {extra[:3]}), {len(missing)} missing "
                         f"(e.g. {missing[:3]})", file=file, field="id")
    for item in items:
        slice_, expect = base_items[item.id]
        if item.slice != slice_:
            raise InputError(f"item {item.id!r} has slice {item.slice!r}; in {base_id} it "
                             f"has {slice_!r}", file=file, line=item.line, field="slice")
        if item.expect != expect:
            raise InputError(f"item {item.id!r} expects {item.expect!r}; in {base_id} it "
                             f"expects {expect!r}", file=file, line=item.line,
                             field="expect")


def _rendering_text(rendering: tuple[str | None, str | None, str | None]) -> str:
    names = ("prompt template", "role format", "language")
    return ", ".join(f"{name} {value!r}" if value is not None else f"no {name}"
                     for name, value in zip(names, rendering, strict=True))


def list_suites(session: Session) -> list[EvalSuiteRow]:
    return list(session.execute(sa.select(EvalSuiteRow)
                                .order_by(EvalSuiteRow.name, EvalSuiteRow.created_at)).scalars())


def get_suite(session: Session, sid: str) -> EvalSuiteRow:
    row = session.get(EvalSuiteRow, sid)
    if row is None:
        raise NotFound(f"suite {sid} is not registered")
    return row


def variants(session: Session, sid: str) -> list[EvalSuiteRow]:
    """The suite's variants (and, for a variant, its siblings), base first."""
    row = get_suite(session, sid)
    base = row.variant_of or row.id
    return list(session.execute(
        sa.select(EvalSuiteRow).where(sa.or_(EvalSuiteRow.id == base,
                                             EvalSuiteRow.variant_of == base))
        .order_by(EvalSuiteRow.variant_of.is_not(None), EvalSuiteRow.id)).scalars())


def suite_items(session: Session, sid: str) -> list[SuiteItem]:
    rows = session.execute(sa.select(EvalSuiteItemRow)
                           .where(EvalSuiteItemRow.suite_id == sid)
                           .order_by(EvalSuiteItemRow.position)).scalars()
    out = []
    for r in rows:
        metadata = dict(r.extra or {})
        turns = metadata.pop("prompt", None)
        if r.reference_answer is not None:
            metadata["reference_answer"] = r.reference_answer
        if r.rubric is not None:
            metadata["rubric"] = r.rubric
        out.append(SuiteItem(r.item_id, r.prompt, r.slice, r.expect, r.position + 1,
                             metadata) if turns is None else
                   SuiteItem.conversation(r.item_id, _messages(turns), r.slice, r.expect,
                                          r.position + 1, metadata))
    return out


def _messages(turns: list[dict[str, Any]]) -> list[Message]:
    return [Message.model_validate(turn) for turn in turns]


def heldout_texts(session: Session, batch: int = 2000) -> Iterator[tuple[str, str, str]]:
    """(suite id, item id, text) for every prompt and reference answer of held-out suites:
    a conversation gives each of its user turns (:meth:`SuiteItem.heldout_texts`).

    Streams in batches, so decontamination can read a large registry in bounded memory.
    """
    query = (sa.select(EvalSuiteItemRow.suite_id, EvalSuiteItemRow.item_id,
                       EvalSuiteItemRow.prompt, EvalSuiteItemRow.reference_answer,
                       EvalSuiteItemRow.extra)
             .join(EvalSuiteRow, EvalSuiteRow.id == EvalSuiteItemRow.suite_id)
             .where(EvalSuiteRow.heldout.is_(True))
             .order_by(EvalSuiteItemRow.suite_id, EvalSuiteItemRow.position))
    for row in session.execute(query.execution_options(yield_per=batch)):
        turns = (row.extra or {}).get("prompt")
        texts = ([row.prompt] if turns is None
                 else conversation_heldout_texts(_messages(turns)))
        for text in texts:
            yield row.suite_id, row.item_id, text
        if row.reference_answer:
            yield row.suite_id, row.item_id, row.reference_answer
