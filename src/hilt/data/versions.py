"""Dataset versions after they are built: look-up, diff, lineage, revocation, usability.

The training stage calls :func:`assert_usable` before it trains on a version; the release
gate calls :func:`dataset_facts` for whether a version is consented, revoked and
contaminated with the suites it evaluates on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.data.build import RECORDS_FILE
from hilt.errors import Forbidden, InputError, NotFound
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.datasets import DatasetExportRow, DatasetRecordRow, DatasetVersionRow


def get_version(session: Session, version_id: str) -> DatasetVersionRow:
    """A version by its id or an unambiguous prefix of at least 8 characters."""
    row = session.get(DatasetVersionRow, version_id)
    if row is not None:
        return row
    if len(version_id) < 8:
        # a short prefix would match by accident as the registry grows
        raise InputError(f"dataset version {version_id!r} is too short: give the id or a "
                         "prefix of at least 8 characters", field="version")
    found = list(session.execute(sa.select(DatasetVersionRow).where(
        DatasetVersionRow.id.startswith(version_id, autoescape=True)).limit(2)).scalars())
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise InputError(f"version prefix {version_id!r} is ambiguous", field="version")
    raise NotFound(f"dataset version {version_id!r} not found")


def list_versions(session: Session, name: str | None = None) -> list[DatasetVersionRow]:
    """Versions, newest first. By ``name``: those first built under it and those a build
    under that name reused (same records, so the same version; recorded in the audit
    log as ``dataset.build_reused``)."""
    query = sa.select(DatasetVersionRow).order_by(DatasetVersionRow.created_at.desc())
    if name:
        from hilt.store import audit

        reused = {e.entity_id for e in audit.entries(session, action="dataset.build_reused",
                                                     limit=100_000)
                  if (e.payload or {}).get("name") == name}
        query = query.where(sa.or_(DatasetVersionRow.name == name,
                                   DatasetVersionRow.id.in_(sorted(reused))))
    return list(session.execute(query).scalars())


def summary(row: DatasetVersionRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "kind": row.kind, "records": row.record_count,
            "created_at": row.created_at.isoformat(), "created_by": row.created_by,
            "code_version": row.code_version, "revoked": row.revoked_at is not None,
            "revoked_reason": row.revoked_reason}


def read_records(row: DatasetVersionRow) -> Iterator[dict[str, Any]]:
    """The version's records, checked against its id (the sha256 of the file).

    The check ends the iteration: a file changed after the build (a flipped label)
    raises :class:`InputError` after its last record, so a caller that collects every
    record before it writes or trains anything (export, training) never uses it.
    """
    path = Path(row.data_path) / RECORDS_FILE
    if not path.exists():
        raise NotFound(f"records of dataset version {row.id} are gone "
                       f"({'revoked: ' + row.revoked_reason if row.revoked_reason else path})")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for line in fh:
            digest.update(line)
            yield json.loads(line)
    if digest.hexdigest() != row.id:
        raise InputError(f"the records file does not match dataset version {row.id} (its "
                         f"sha256 is {digest.hexdigest()}): it was changed after the build",
                         file=str(path))


def _record_hashes(session: Session, version_id: str) -> dict[str, str]:
    return dict(session.execute(sa.select(DatasetRecordRow.record_key,
                                          DatasetRecordRow.record_hash)
                                .where(DatasetRecordRow.version_id == version_id)).all())


def diff(session: Session, a: str, b: str) -> dict[str, Any]:
    """Records added in B, removed from A, and relabelled (same key, other content).

    Works from the stored lineage rows, so it still answers for revoked versions whose
    files were deleted.
    """
    va, vb = get_version(session, a), get_version(session, b)
    ha, hb = _record_hashes(session, va.id), _record_hashes(session, vb.id)
    added = sorted(set(hb) - set(ha))
    removed = sorted(set(ha) - set(hb))
    changed = sorted(k for k in set(ha) & set(hb) if ha[k] != hb[k])
    return {"a": va.id, "b": vb.id, "added": added, "removed": removed,
            "relabelled": changed, "unchanged": len(set(ha) & set(hb)) - len(changed)}


def lineage(session: Session, version_id: str) -> dict[str, list[str]]:
    """Event, label, review and adjudication ids and the rubric and policy versions."""
    row = get_version(session, version_id)
    out: dict[str, set[str]] = {k: set() for k in (
        "event_ids", "label_ids", "review_ids", "adjudication_ids", "rubrics",
        "policy_versions")}
    query = sa.select(DatasetRecordRow).where(DatasetRecordRow.version_id == row.id)
    for r in session.execute(query.execution_options(yield_per=5000)).scalars():
        out["event_ids"].add(r.event_id)
        out["label_ids"].update(r.label_ids)
        out["review_ids"].update(r.review_ids)
        out["adjudication_ids"].update(r.adjudication_ids)
        out["rubrics"].update(r.rubrics)
        out["policy_versions"].update(r.policy_versions)
    return {k: sorted(v) for k, v in out.items()}


def revoke(session: Session, version_id: str, *, reason: str, actor: str) -> DatasetVersionRow:
    if not reason.strip():
        raise InputError("a revocation needs a reason", field="reason")
    row = get_version(session, version_id)
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by, row.revoked_reason = utcnow(), actor, reason
        flag_exports(session, row.id, reason)
        audit.append(session, actor=actor, action="dataset.revoke",
                     entity_type="dataset_version", entity_id=row.id,
                     payload={"reason": reason})
    return row


def flag_exports(session: Session, version_id: str, reason: str) -> list[DatasetExportRow]:
    """Mark every export of a version as flagged, and leave a marker file beside it."""
    rows = list(session.execute(sa.select(DatasetExportRow).where(
        DatasetExportRow.version_id == version_id, DatasetExportRow.flagged_at.is_(None)))
        .scalars())
    for exp in rows:
        exp.flagged_at, exp.flag_reason = utcnow(), reason
        target = Path(exp.path)
        if target.exists():
            marker = target / "REVOKED.json" if target.is_dir() else \
                target.with_name(target.name + ".REVOKED.json")
            marker.write_text(json.dumps({"version_id": version_id, "reason": reason,
                                          "flagged_at": exp.flagged_at.isoformat()}),
                              encoding="utf-8")
    return rows


# What hilt.data.export writes per split, by format (export.json holds no records).
_SPLIT_FILES = {"jsonl": "*.jsonl", "parquet": "*.parquet", "hf": "hf"}


def export_split_files(session: Session, version_id: str) -> list[Path]:
    """The split files (the ``hf`` folder for that format) of every export of a version
    whose folder is still on this machine and still names the version in its
    ``export.json``; copies made elsewhere are out of reach."""
    found: list[Path] = []
    for exp in session.execute(sa.select(DatasetExportRow).where(
            DatasetExportRow.version_id == version_id).order_by(DatasetExportRow.id)
            ).scalars():
        folder = Path(exp.path)
        try:
            meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # gone, or not the folder hilt wrote
        if not isinstance(meta, dict) or meta.get("version_id") != version_id:
            continue
        pattern = _SPLIT_FILES.get(exp.format)
        if pattern is not None:
            found.extend(p for p in sorted(folder.glob(pattern)) if p.exists())
    return found


def assert_usable(session: Session, version_id: str, *, override_reason: str | None = None,
                  actor: str = "api", purpose: str = "train") -> DatasetVersionRow:
    """The version, if it may be exported or trained on; a revoked one only with an
    explicit override reason, which is written to the audit log."""
    row = get_version(session, version_id)
    if row.revoked_at is None:
        return row
    if not override_reason or not override_reason.strip():
        raise Forbidden(f"dataset version {row.id} is revoked ({row.revoked_reason}); "
                        "give an override reason to use it anyway "
                        "(--override-revoked REASON)")
    audit.append(session, actor=actor, action="dataset.override_revoked",
                 entity_type="dataset_version", entity_id=row.id,
                 payload={"purpose": purpose, "override_reason": override_reason,
                          "revoked_reason": row.revoked_reason})
    return row


@dataclass
class DatasetFacts:
    version_id: str
    records: int
    consented: bool
    events_without_consent: list[str]
    erased_events: list[str]
    revoked: bool
    revoked_reason: str | None
    contaminated: bool | None  # None: the records are gone, so it cannot be checked
    contaminating_items: list[dict[str, str]] = field(default_factory=list)
    suites_checked: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_facts(session: Session, version_id: str, suite_ids: Iterable[str] | None = None,
                  *, heldout: Iterable[tuple[str, str, str]] | None = None) -> DatasetFacts:
    """Whether a version is consented (every event still carries ``train`` and is not
    erased), revoked, and contaminated with the given suites (all held-out suites when
    ``suite_ids`` is None), re-checked now against the current registry."""
    from hilt.data.decontam import HeldoutIndex
    from hilt.data.pipeline import decontaminate
    from hilt.data.records import Example

    row = get_version(session, version_id)
    event_ids = sorted(set(session.execute(sa.select(DatasetRecordRow.event_id).where(
        DatasetRecordRow.version_id == row.id)).scalars()))
    no_consent, erased = [], []
    for lo in range(0, len(event_ids), 1000):
        chunk = event_ids[lo:lo + 1000]
        found = {r.id: r for r in session.execute(sa.select(
            EventRow.id, EventRow.consent_scopes, EventRow.erased_at)
            .where(EventRow.id.in_(chunk))).all()}
        for eid in chunk:
            r = found.get(eid)
            if r is None or r.erased_at is not None:
                erased.append(eid)
            elif ",train," not in r.consent_scopes:
                no_consent.append(eid)
    wanted = set(suite_ids) if suite_ids is not None else None
    if heldout is None:
        from hilt.data.sources import default_heldout_source

        heldout = default_heldout_source()(session)
    items = [t for t in heldout if wanted is None or t[0] in wanted]
    spec = row.spec.get("decontamination", {})
    index = HeldoutIndex(items, ngram=spec.get("ngram", 13),
                         min_short_words=spec.get("min_short_words", 5))
    contaminated: bool | None
    hits: list[dict[str, str]] = []
    try:
        examples = [Example(key=r["key"], kind=r["kind"], source=r["source"],
                            event_id=r["lineage"]["event_id"], subject_id=None,
                            messages=r.get("messages") or [], slice=r["slice"],
                            template={}, labels=(), policy_version=None, confidence=1.0,
                            chosen=r.get("chosen"), rejected=r.get("rejected"),
                            completion=r.get("completion"), text=r.get("text"),
                            text_parts=_text_parts(r))
                    for r in read_records(row)]
        _, report = decontaminate(examples, index)
        contaminated = report.removed > 0
        hits = [{"record_key": k, "suite_id": reason.split(":", 1)[1]}
                for reason, keys in report.removed_ids.items() for k in keys]
    except NotFound:
        contaminated = None
    return DatasetFacts(row.id, row.record_count, not no_consent and not erased, no_consent,
                        erased, row.revoked_at is not None, row.revoked_reason, contaminated,
                        hits, sorted({t[0] for t in items}))


def _text_parts(record: dict[str, Any]) -> tuple[str, ...]:
    """The prompt and response a classification record's text joins (``prompt`` is
    written for ``prompt_response`` texts only), for decontamination."""
    prompt, text = record.get("prompt"), record.get("text")
    if record.get("kind") != "classification" or prompt is None or text is None:
        return ()
    return (prompt, text.removeprefix(prompt + "\n"))
