"""Gate decisions and sign-offs in the store, each change audited in its transaction.

A decision is stored only after :func:`hilt.gate.decision.verify` agrees with it, so the
table never holds a record that does not recompute, and only when every sign-off it
carries has its ``gate_signoffs`` row along its supersedes chain, so a sign-off typed
into a record is refused. A sign-off stores the superseding record (re-evaluated with the
new sign-off) and a row linking the two. A record read from a file is also checked
against its input files first (:func:`store_decision_file`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hilt.access import SIGNER_ROLES
from hilt.errors import Conflict, InputError, NotFound
from hilt.gate.decision import VerifyReport, add_signoff, verify
from hilt.gate.policy import policy_from_dict
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.keyset import keyset
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.gate import EvalSuiteRow, GateDecisionRow, GateSignoffRow


class ConcurrentWrite(Conflict):
    """Lost a race to another transaction; running the whole transaction again is safe."""


class AlreadySigned(Conflict):
    """The signer already signed the decision under that role: a second entry would count
    for nothing and only lengthen the chain. The API answers it with 409."""


class CountsForNothing(AlreadySigned):
    """The signer already signed the decision, under another role, and this sign-off
    would not fill one more required sign-off: each person counts toward one required
    role only. The API answers it with 409."""


class SignerRefused(InputError):
    """The signer may not sign under that role: unknown, inactive, not a lead or admin,
    or holding no grant for it. The API answers it with 403."""


# How a sign-off came (``via`` of its record entry and audit entry): "cli" when the
# caller named the signer (`hilt gate signoff --by`, or code), "api" when the signer is
# the identity of the authenticated caller (the HTTP API or the gate page).
VIA = ("cli", "api")
# The fields an error names, per way of signing.
_FIELDS = {"cli": ("--role", "--by"), "api": ("role", "token")}


def _ancestors(session: Session, parent: str | None) -> list[str]:
    """Hashes of the stored records a record supersedes, newest first."""
    chain: list[str] = []
    while parent is not None and parent not in chain:
        row = session.get(GateDecisionRow, parent)
        if row is None:
            break
        chain.append(row.hash)
        parent = row.supersedes
    return chain


def unbacked_signoffs(session: Session, record: dict[str, Any],
                      new_signoff: dict[str, Any] | None = None) -> list[Any]:
    """The record's sign-offs that no ``gate_signoffs`` row of its chain records.

    Each row backs one sign-off of the same role and signer; ``new_signoff`` is the one
    :func:`sign_off` records in this transaction (its row needs the stored record)."""
    claimed = list((record.get("inputs", {}).get("facts") or {}).get("signoffs") or [])
    if not claimed:
        return []
    chain = _ancestors(session, record.get("supersedes"))
    rows = (session.execute(sa.select(GateSignoffRow.role, GateSignoffRow.signed_by)
                            .where(GateSignoffRow.decision_hash.in_(chain))).all()
            if chain else [])
    backed: Counter[tuple[Any, Any]] = Counter((role, by) for role, by in rows)
    if new_signoff is not None:
        backed[(new_signoff["role"], new_signoff["by"])] += 1
    unbacked = []
    for signoff in claimed:
        key = (signoff.get("role"), signoff.get("by")) if isinstance(signoff, dict) else None
        if key is not None and backed[key] > 0:
            backed[key] -= 1
        else:
            unbacked.append(signoff)
    return unbacked


def row_columns(record: dict[str, Any]) -> dict[str, Any]:
    """The ``gate_decisions`` columns that repeat what the record says (for lookups and
    listings); :func:`row_problems` checks that they still do."""
    versions = record["inputs"]["versions"]
    return {"hash": record["hash"], "outcome": record["outcome"],
            "policy_id": record["inputs"]["policy"]["id"],
            "policy_version": record["inputs"]["policy"]["version"],
            "suite_id": (versions.get("suite") or {}).get("id"),
            "candidate_id": (versions.get("candidate") or {}).get("id"),
            "reference_id": (versions.get("reference") or {}).get("id"),
            "supersedes": record.get("supersedes")}


def row_problems(row: GateDecisionRow) -> list[str]:
    """Each column of a stored decision's row that disagrees with its record: a listing
    read from the columns must not say what the record does not."""
    try:
        expected = row_columns(row.record)
    except (KeyError, TypeError, AttributeError) as exc:
        return [f"gate_decisions.record malformed: {exc!r}"]
    return [f"gate_decisions.{name}: {getattr(row, name)!r} in the row, {value!r} in the "
            "record" for name, value in expected.items() if getattr(row, name) != value]


@dataclass
class StoredVerification:
    """:func:`hilt.gate.decision.verify` of a stored record plus its row's columns."""

    record: dict[str, Any]
    report: VerifyReport

    def as_dict(self) -> dict[str, Any]:
        return self.report.as_dict()


def verify_stored(session: Session, ref: str) -> StoredVerification:
    """Recompute a stored decision (by hash or unique prefix), compare its row's
    columns with the record (:func:`row_problems`) and check that each record of its
    supersedes chain is derived from the one before (:func:`chain_problems`)."""
    row = get_decision(session, ref)
    record = dict(row.record)
    report = verify(record)
    try:
        chain = chain_problems(session, record)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        chain = [f"supersedes chain malformed: {exc!r}"]
    problems = report.problems + row_problems(row) + chain
    return StoredVerification(record, VerifyReport(not problems, row.hash, problems))


def decision_summary(row: GateDecisionRow) -> dict[str, Any]:
    """One line of a listing of stored decisions, read from the record (the row's
    columns only repeat it, and nothing but ``hilt gate verify`` compares them)."""
    record = row.record or {}
    inputs = record.get("inputs") or {}
    policy = inputs.get("policy") or {}
    versions = inputs.get("versions") or {}
    # the record's own time, as `hilt gate show` prints it: the row's is when the record
    # was stored, which for a decision file stored by a sign-off is later
    return {"hash": row.hash, "outcome": record.get("outcome"),
            "created_at": record.get("created_at"),
            "policy": f"{policy.get('id')}@{policy.get('version')}",
            "candidate": (versions.get("candidate") or {}).get("id"),
            "reference": (versions.get("reference") or {}).get("id"),
            "supersedes": record.get("supersedes")}


def store_decision(session: Session, record: dict[str, Any], *, actor: str,
                   new_signoff: dict[str, Any] | None = None) -> GateDecisionRow:
    """Insert a verified decision record (idempotent for the same hash).

    ``new_signoff``: the sign-off :func:`sign_off` adds with this record (it writes the
    ``gate_signoffs`` row once the record is stored)."""
    report = verify(record)
    if not report.ok:
        raise InputError("decision record does not verify: " + "; ".join(report.problems),
                         field="hash")
    existing = session.get(GateDecisionRow, record["hash"])
    if existing is not None:
        return existing
    parent = (session.get(GateDecisionRow, record["supersedes"])
              if record.get("supersedes") else None)
    if record.get("supersedes") and parent is None:
        raise NotFound(f"superseded decision {record['supersedes']} is not stored")
    if parent is not None:
        _refuse_underived(session, parent, record)
        newer = successor(session, record["supersedes"])
        if newer is not None:
            # a second successor would fork the chain and hide one of the two records
            raise Conflict(f"decision {record['supersedes'][:12]} is already superseded by "
                           f"{newer.hash[:12]}; build on the newest record")
    unbacked = unbacked_signoffs(session, record, new_signoff)
    if unbacked:
        names = ", ".join(f"{s.get('role')} by {s.get('by')}" if isinstance(s, dict)
                          else repr(s) for s in unbacked[:5])
        raise InputError(f"the record carries sign-offs that were never recorded ({names}); "
                         "sign-offs are recorded with `hilt gate signoff`",
                         field="inputs.facts.signoffs")
    row = GateDecisionRow(created_at=utcnow(), stored_by=actor, record=record,
                          **row_columns(record))
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        # another transaction stored this record, or a successor of the same one, first
        # (the unique index on supersedes); the caller's transaction is void: retry it
        parent = record.get("supersedes")
        raise ConcurrentWrite(f"decision {record['hash'][:12]}: another transaction stored "
                              "it" + (f", or another successor of {parent[:12]}," if parent
                                      else "") + " first; retry") from exc
    audit.append(session, actor=actor, action="gate.decision_stored",
                 entity_type="gate_decision", entity_id=record["hash"],
                 payload={"outcome": record["outcome"], "supersedes": record.get("supersedes"),
                          "policy": row.policy_id + "@" + row.policy_version,
                          "candidate": row.candidate_id, "reference": row.reference_id})
    return row


def _refuse_underived(session: Session, parent: GateDecisionRow,
                      record: dict[str, Any]) -> None:
    """An :class:`InputError` unless ``record`` is what a sign-off or returned review
    labels make of ``parent`` (:func:`hilt.gate.derivation.derivation_problems`), its
    new labels being the final labels the review store holds: a record rebuilt with a
    looser policy verifies on its own, and must not take the blocked record's place."""
    from hilt.gate.derivation import changed_labels, derivation_problems, label_problems

    problems = derivation_problems(dict(parent.record), record)
    changed = changed_labels(dict(parent.record), record)
    if not problems and changed:
        from hilt.evals.review_loop import collect_review_labels

        problems = label_problems(changed, collect_review_labels(session, parent.record))
    if problems:
        raise InputError(f"the record is not derived from the decision it supersedes "
                         f"({parent.hash[:12]}): " + "; ".join(problems[:5]),
                         field="supersedes")


def chain_problems(session: Session, record: dict[str, Any]) -> list[str]:
    """Each link of a stored record's supersedes chain that is not derived from the
    record before it (:func:`hilt.gate.derivation.derivation_problems`), back to the
    first record; a returned label must name a final label of its sampled event, and a
    sign-off its ``gate_signoffs`` row (:mod:`hilt.gate.signoff_rows`)."""
    from hilt.gate.derivation import changed_labels, derivation_problems
    from hilt.gate.signoff_rows import first_record_signoffs, unrecorded_link_signoffs

    problems: list[str] = []
    child, seen = record, {record.get("hash")}
    while isinstance(child.get("supersedes"), str) and child["supersedes"] not in seen:
        row = session.get(GateDecisionRow, child["supersedes"])
        if row is None:
            problems.append(f"supersedes: {child['supersedes'][:12]} is not stored")
            break
        parent = dict(row.record)
        found = derivation_problems(parent, child)
        if not found:
            found = (_unreturned_labels(session, parent, changed_labels(parent, child))
                     + unrecorded_link_signoffs(session, parent, child))
        problems += [f"supersedes chain, record {str(child.get('hash'))[:12]}: {p}"
                     for p in found]
        seen.add(row.hash)
        child = parent
    if child.get("supersedes") is None:
        problems += [f"supersedes chain, record {str(child.get('hash'))[:12]}: {p}"
                     for p in first_record_signoffs(child)]
    return problems


def _unreturned_labels(session: Session, parent: dict[str, Any],
                       changed: dict[str, Any]) -> list[str]:
    """Labels that name no final label of their sampled event under the sample's rubric
    question. (Checked by id, not value: a later adjudication may have changed the final
    label since it was folded in; the store compared values when it stored the record.)"""
    if not changed:
        return []
    from hilt.store.tables.review import FinalLabelRow

    sample = parent["inputs"]["review_sample"]
    event_of = {e["id"]: e["event_id"] for e in sample["items"]}
    rubric_id, _, version = str(sample["rubric"]).partition("@")
    problems = []
    for item, label in sorted(changed.items()):
        row = session.get(FinalLabelRow, str((label or {}).get("label_id")))
        if (row is None or row.event_id != event_of.get(item) or row.rubric_id != rubric_id
                or str(row.rubric_version) != version
                or row.question_id != sample["question"]):
            problems.append(f"inputs.review_sample.labels.{item}: names no final label of "
                            "its sampled event under the sample's rubric question")
    return problems


def store_decision_file(session: Session, record: dict[str, Any], *, actor: str,
                        file: str | Path, files_checked: dict[str, str | None] | None = None
                        ) -> GateDecisionRow:
    """Store a record read from ``file``, unless it is stored already.

    A record that verifies is only consistent with itself; before one from a file joins
    the store, its input files (found beside ``file``, then at their recorded paths:
    :func:`hilt.evals.recheck.candidate_paths`) must match it
    (:func:`hilt.evals.recheck.check_inputs`), and a suite id naming a registered suite
    must hold that suite's content. ``files_checked`` receives the file checked for each
    input, when they were checked."""
    from hilt.evals.recheck import check_inputs, reload_inputs
    from hilt.evals.store_facts import check_registered_suite

    existing = session.get(GateDecisionRow, record.get("hash")) \
        if isinstance(record.get("hash"), str) else None
    if existing is not None:
        return store_decision(session, record, actor=actor)
    base = Path(file).parent
    checked = check_inputs(record, base)
    if files_checked is not None:
        files_checked.update(checked.files)
    if checked.problems:
        raise InputError("the decision does not match its input files: "
                         + "; ".join(checked.problems[:5]), file=str(file), field="inputs")
    items, _ = reload_inputs(record, base)
    suite_id = str(record["inputs"]["versions"]["suite"]["id"])
    check_registered_suite(session, suite_id, items, file=str(file),
                           field="inputs.versions.suite.id")
    return store_decision(session, record, actor=actor)


def required_roles(record: dict[str, Any]) -> list[str]:
    """The sign-off roles the record's policy requires."""
    policy = policy_from_dict(record["inputs"]["policy"],
                              file="decision record inputs.policy", recorded=True)
    return [need.role for need in policy.signoffs]


MIN_PREFIX = 8


def get_decision(session: Session, ref: str) -> GateDecisionRow:
    """By full hash or by a unique prefix of at least :data:`MIN_PREFIX` characters."""
    row = session.get(GateDecisionRow, ref)
    if row is not None:
        return row
    if len(ref) < MIN_PREFIX:
        raise InputError(f"decision {ref!r} is too short: give the hash or a prefix of at "
                         f"least {MIN_PREFIX} characters", field="decision")
    # autoescape: "%" and "_" in the prefix are characters, not LIKE wildcards
    rows = session.execute(sa.select(GateDecisionRow)
                           .where(GateDecisionRow.hash.startswith(ref, autoescape=True))
                           .limit(2)).scalars().all()
    if len(rows) > 1:
        raise Conflict(f"decision prefix {ref} is ambiguous: it matches several decisions; "
                       "give more characters")
    if not rows:
        raise NotFound(f"no gate decision {ref}")
    return rows[0]


def successor(session: Session, decision_hash: str) -> GateDecisionRow | None:
    """The record superseding ``decision_hash`` (the unique index allows one at most)."""
    return session.execute(sa.select(GateDecisionRow)
                           .where(GateDecisionRow.supersedes == decision_hash)
                           ).scalars().first()


def latest(session: Session, ref: str, *, lock: bool = False) -> GateDecisionRow:
    """Follow the supersedes chain forward to the newest record.

    ``lock``: hold a row lock on each record walked (PostgreSQL ``FOR UPDATE``) until the
    transaction ends, so that whoever builds a superseding record on the newest one does
    so alone: a concurrent sign-off waits, then finds this one's record and builds on it
    instead of forking the chain. (SQLite transactions already hold the write lock.)
    """
    row = get_decision(session, ref)
    while True:
        if lock:
            row = session.execute(sa.select(GateDecisionRow)
                                  .where(GateDecisionRow.hash == row.hash)
                                  .with_for_update()
                                  .execution_options(populate_existing=True)).scalar_one()
        nxt = successor(session, row.hash)
        if nxt is None:
            return row
        row = nxt


def check_signer(session: Session, signed_by: str, *, via: str = "cli") -> ReviewerRow:
    """The signer's identity, or :class:`SignerRefused`: a sign-off counts people, so
    the signer must be a registered, active identity with a role that may release
    (``SIGNER_ROLES``); a free-typed name could be anyone, or the same person twice."""
    signer = session.get(ReviewerRow, signed_by)
    if signer is None or not signer.active or signer.role not in SIGNER_ROLES:
        found = ("not a registered identity" if signer is None else "not active"
                 if not signer.active else f"a {signer.role}")
        raise SignerRefused(f"{signed_by!r} is {found}; a sign-off needs an active "
                            f"identity with role {' or '.join(SIGNER_ROLES)} (hilt "
                            "reviewer add ID --role lead)", field=_FIELDS[via][1])
    return signer


def check_grant(signer: ReviewerRow, role: str, *, via: str = "cli") -> None:
    """:class:`SignerRefused` unless ``signer`` holds a grant for ``role``
    (:func:`hilt.access.grant_signoff`): the policy's ``safety_lead`` is then someone a
    lead named as one, not whoever typed the word."""
    grants = list(signer.signoff_roles or [])
    if role not in grants:
        raise SignerRefused(f"{signer.id!r} holds no grant to sign off as {role!r} "
                            f"(grants: {', '.join(grants) or 'none'}); a lead grants it "
                            f"with `hilt reviewer grant-signoff {signer.id} {role}`",
                            field=_FIELDS[via][0])


def sign_off(session: Session, ref: str, *, role: str, signed_by: str, note: str = "",
             via: str = "cli") -> GateDecisionRow:
    """Record a sign-off on the newest record of ``ref``; returns the new record's row.

    The signer must be an active lead or admin (:func:`check_signer`), the decision's
    policy must require ``role``, and the signer must hold a grant for it
    (:func:`check_grant`). ``via``: how it came (:data:`VIA`); it is
    kept in the sign-off entry, the audit entry and error messages' field names.
    """
    if via not in VIA:
        raise ValueError(f"via must be one of {VIA}, not {via!r}")
    role_field, by_field = _FIELDS[via]
    if not role.strip():
        raise InputError("a sign-off role is required", field=role_field)
    if not signed_by.strip():
        raise InputError("a signer is required", field=by_field)
    if "\x00" in note:
        # PostgreSQL cannot store NUL in text or JSON: refused alike on every backend
        raise InputError("the note must not contain NUL characters", field="note")
    signer = check_signer(session, signed_by, via=via)
    current = latest(session, ref, lock=True)
    roles = required_roles(current.record)
    if role not in roles:
        # a free-typed role would add a sign-off nothing asked for, or hide a typo
        raise InputError(f"the decision's policy requires no {role!r} sign-off (it "
                         f"requires: {', '.join(roles) or 'none'})", field=role_field)
    check_grant(signer, role, via=via)
    _refuse_repeat(current, role, signed_by)
    useless = signoff_adds_nothing(current.record, role, signed_by)
    if useless is not None:
        raise CountsForNothing(useless)
    at = utcnow()
    # "via" joins the entry's keys; evaluation reads only role and by, so records made
    # before it (entries without "via") recompute and verify as they did
    signoff = {"role": role, "by": signed_by, "note": note, "at": at.isoformat(),
               "via": via}
    new_record = add_signoff(current.record, signoff, at.isoformat(),
                             lineage=relineage(session, current.record, at.isoformat()))
    new_row = store_decision(session, new_record, actor=signed_by, new_signoff=signoff)
    session.add(GateSignoffRow(decision_hash=current.hash, resulting_hash=new_row.hash,
                               role=role, signed_by=signed_by, note=note, signed_at=at))
    audit.append(session, actor=signed_by, action="gate.signed_off",
                 entity_type="gate_decision", entity_id=current.hash,
                 payload={"role": role, "note": note, "resulting": new_row.hash,
                          "outcome": new_row.outcome, "via": via})
    session.flush()
    return new_row


def _refuse_repeat(current: GateDecisionRow, role: str, signed_by: str) -> None:
    """:class:`AlreadySigned` if the newest record already holds this person's sign-off
    under ``role`` (names folded as the count folds them: "Ana" and "ana " are one)."""
    from hilt.gate.evaluate import same_person

    facts = (current.record.get("inputs") or {}).get("facts") or {}
    for entry in facts.get("signoffs") or []:
        if (isinstance(entry, dict) and entry.get("role") == role
                and same_person(entry.get("by"), signed_by)):
            raise AlreadySigned(f"{signed_by} already signed off as {role} on decision "
                                f"{current.hash[:12]} (at {entry.get('at')}); a second "
                                "sign-off under the same role counts for nothing"
                                + _spelling_note(signed_by, [entry]))


def _spelling_note(signed_by: str, entries: list[dict[str, Any]]) -> str:
    """Names the earlier signer when their name is spelt otherwise: "Lou" and "lou" are
    two identities to `hilt reviewer add` but one person to the sign-off count."""
    from hilt.gate.evaluate import same_person

    others = sorted({str(e.get("by")) for e in entries
                     if same_person(e.get("by"), signed_by) and e.get("by") != signed_by})
    if not others:
        return ""
    return (f" (the name {signed_by!r} matches the signer {', '.join(map(repr, others))} "
            "case-insensitively: sign-offs compare names with case and spacing folded, "
            "so they count as one person)")


def _signoff_entries(record: dict[str, Any]) -> list[dict[str, Any]]:
    facts = (record.get("inputs") or {}).get("facts") or {}
    return [e for e in facts.get("signoffs") or [] if isinstance(e, dict)]


def _missing(record: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, int]:
    """Required sign-offs still unfilled with ``entries``, per role, people matched to
    roles as the decision counts them (:func:`hilt.gate.evaluate.evaluate_signoffs`)."""
    from hilt.gate.evaluate import evaluate_signoffs

    policy = policy_from_dict(record["inputs"]["policy"],
                              file="decision record inputs.policy", recorded=True)
    missing = evaluate_signoffs(policy, {"signoffs": entries})["missing"]
    return {str(m["role"]): int(m["needed"]) - int(m["have"]) for m in missing}


def _shortfall(record: dict[str, Any], entries: list[dict[str, Any]]) -> int:
    return sum(_missing(record, entries).values())


def counted_role(record: dict[str, Any], person: str) -> str | None:
    """The required role ``person``'s sign-offs on ``record`` count toward (one at most:
    each person counts toward one required role), or None when they fill none."""
    from hilt.gate.evaluate import same_person

    entries = _signoff_entries(record)
    mine = [e for e in entries if same_person(e.get("by"), person)]
    others = [e for e in entries if not same_person(e.get("by"), person)]
    full = _shortfall(record, entries) if mine else 0
    if not mine or _shortfall(record, others) == full:
        return None
    for role in required_roles(record):
        one = [e for e in mine if e.get("role") == role][:1]
        if one and _shortfall(record, others + one) == full:
            return role
    return None


def signoff_adds_nothing(record: dict[str, Any], role: str, signed_by: str) -> str | None:
    """Why a sign-off by ``signed_by`` under ``role`` would fill nothing on ``record``, or
    None when it may count.

    Only someone who already signed the decision is refused here: their sign-off under
    another role counts only when the people matched to roles then fill one more required
    sign-off. A first sign-off by someone new is never refused, even under a role that is
    filled already: it can take the place of someone who signed two roles, who then fills
    the other one."""
    from hilt.gate.evaluate import same_person

    entries = _signoff_entries(record)
    if not any(same_person(e.get("by"), signed_by) for e in entries):
        return None
    before = _missing(record, entries)
    if _shortfall(record, [*entries, {"role": role, "by": signed_by}]) < sum(before.values()):
        return None
    counted = counted_role(record, signed_by)
    decision = str(record.get("hash", ""))[:12]
    if counted is None or role not in before:
        mine = sorted({str(e.get("role")) for e in entries
                       if same_person(e.get("by"), signed_by)})
        return (f"{signed_by} already signed decision {decision} (as {', '.join(mine)}) "
                f"and {role} has all the sign-offs it needs: a sign-off as {role} would "
                "count for nothing" + _spelling_note(signed_by, entries))
    return (f"{signed_by} already counts toward {counted} on decision {decision}; each "
            f"person counts toward one required role only, so a sign-off as {role} "
            f"would fill no missing sign-off until someone else signs as {counted}"
            + _spelling_note(signed_by, entries))


T = TypeVar("T")


def retried(engine: Engine, work: Callable[[Session], T], attempts: int = 3) -> T:
    """Run ``work`` in a transaction, again in a fresh one when it lost a race
    (:class:`ConcurrentWrite`: e.g. two sign-offs storing one decision file at once; the
    retry finds the other's records and builds on the newest). The last loss is raised
    (a :class:`~hilt.errors.Conflict`)."""
    for attempt in range(attempts):
        try:
            with transaction(engine) as session:
                return work(session)
        except ConcurrentWrite:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def relineage(session: Session, record: dict[str, Any], at: str) -> dict[str, Any] | None:
    """The record's lineage facts re-read from the store, if they got worse; else None.

    A sign-off (or folding in review labels) builds a new record that may pass: it must
    not pass on facts frozen at check time when a training dataset version was revoked,
    lost consent or was found contaminated with the run's suites since
    (:func:`hilt.gate.lineage.worsened_lineage`). Only versions the store holds (by their
    exact id) are re-read; those a facts file named (``sft-v7``) are taken as recorded,
    and the new record's ``lineage.rechecked`` says so."""
    from hilt.gate.lineage import dataset_lineage, worsened_lineage
    from hilt.store.tables.datasets import DatasetVersionRow

    facts = record["inputs"].get("facts") or {}
    stored = facts.get("lineage") or {}
    ids = [str(v["id"]) for v in stored.get("dataset_versions") or []
           if isinstance(v, dict) and isinstance(v.get("id"), str) and v["id"]]
    if not ids:
        return None
    rows = {vid: session.get(DatasetVersionRow, vid) for vid in dict.fromkeys(ids)}
    held = [vid for vid, row in rows.items() if row is not None]
    fresh: dict[str, Any] = (dataset_lineage(session, held, list(facts.get("suites") or []))
                             ["lineage"] if held else {"dataset_versions": []})
    for version in fresh["dataset_versions"]:
        row = rows.get(version["id"])
        if row is not None and row.revoked_at is not None:
            version["revoked_at"] = row.revoked_at.isoformat()
    return worsened_lineage(stored, fresh, at, checked_at=record.get("created_at"),
                            not_stored=[vid for vid, row in rows.items() if row is None])


# Newest first; decisions stored in the same instant by hash, so that pages never overlap.
DECISION_ORDER = keyset((GateDecisionRow.created_at, True), (GateDecisionRow.hash, False))


def list_decisions(session: Session, limit: int = 50,
                   after: str | None = None) -> list[GateDecisionRow]:
    """Stored decisions in :data:`DECISION_ORDER`, ``limit`` of them after the cursor
    ``after`` (``DECISION_ORDER.cursor`` of the previous page's last decision)."""
    q = sa.select(GateDecisionRow)
    if after:
        q = q.where(DECISION_ORDER.after(after))
    return list(session.execute(q.order_by(*DECISION_ORDER.order_by()).limit(limit))
                .scalars())


LineageLookup = Callable[[Session, Sequence[str], Sequence[str]], dict[str, Any]]


def lineage_facts(session: Session, dataset_version_ids: Sequence[str],
                  suite_ids: Sequence[str], lookup: LineageLookup | None = None
                  ) -> dict[str, Any]:
    """Lineage facts for :func:`hilt.gate.evaluate.evaluate`.

    By default they come from the dataset-version store
    (:func:`hilt.gate.lineage.dataset_lineage`: consent, revocation, contamination with
    the given suites); ``lookup`` replaces that source. With no dataset version named
    the facts are ``unknown`` and say why; the gate's ``lineage.on_unknown`` decides.
    """
    if lookup is not None:
        return lookup(session, dataset_version_ids, suite_ids)
    from hilt.gate.lineage import dataset_lineage

    return dict(dataset_lineage(session, dataset_version_ids, suite_ids)["lineage"])


def suite_records(session: Session, suite_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Card records for registered suites (held-out flag, content hash, who registered)."""
    out = []
    for sid in suite_ids:
        row = session.get(EvalSuiteRow, sid)
        if row is None:
            continue
        out.append({"id": row.id, "version": row.version, "content_sha256": row.content_hash,
                    "heldout": row.heldout, "written_by": row.created_by,
                    "link": f"eval_suite:{row.id}#sha256:{row.content_hash}"})
    return out
