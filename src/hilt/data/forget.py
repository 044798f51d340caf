"""Right to be forgotten: erase a subject's content and revoke what was built from it.

``forget`` (GDPR art. 17 style erasure) does, in one transaction:

1. every event of the subject keeps its row, id and content hash (so references and the
   audit chain stay valid) but loses its content: the payload becomes
   ``{"erased": true}`` and ``erased_at`` is set;
2. the review stage's copies of that content (reviews' rewrites, rationales and text
   answers, text-valued final labels, adjudication rationales) are erased by
   :func:`hilt.review.erasure.erase_subject_content`;
3. every dataset version holding a record of those events is revoked with the reason,
   and its exports are flagged (a ``REVOKED.json`` marker is left beside each);
4. one audit entry records the act, naming the subject only by the sha256 of its id.

After the commit the records files of the revoked versions are deleted (they contain the
erased content), and so are the split files (``train.jsonl``, ``validation.parquet``,
the ``hf`` folder, ...) of every export of those versions whose folder is still on this
machine (:func:`hilt.data.versions.export_split_files`); a ``REVOKED.json`` marker stays
in each folder. Exports already copied elsewhere cannot be deleted from here: they are
flagged, and the flag is what downstream checks read. Future builds never see the
content again (it is gone from the store). On PostgreSQL the erasure holds the erasure
lock exclusively (:mod:`hilt.data.erasure_lock`): it waits for builds and exports still
running, and those that start later wait for it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.canonical import sha256_hex
from hilt.data.build import RECORDS_FILE
from hilt.data.erasure_lock import lock_for_erasure
from hilt.data.versions import export_split_files, flag_exports
from hilt.errors import InputError
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.datasets import DatasetRecordRow, DatasetVersionRow


@dataclass
class ForgetResult:
    subject_sha256: str
    events_erased: int
    review_content_erased: dict[str, int] = field(default_factory=dict)
    versions_revoked: list[str] = field(default_factory=list)
    exports_flagged: list[str] = field(default_factory=list)
    files_to_delete: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def erase_subject(session: Session, subject_id: str, *, actor: str,
                  reason: str = "right to be forgotten") -> ForgetResult:
    """The database part of forgetting, in the caller's transaction."""
    if not subject_id.strip():
        raise InputError("subject id is empty", field="subject")
    # Waits for running builds and exports, so their versions and exports are seen below.
    lock_for_erasure(session)
    now = utcnow()
    subject_hash = sha256_hex(subject_id)
    rows = list(session.execute(sa.select(EventRow).where(EventRow.subject_id == subject_id)
                                .with_for_update()).scalars())
    erased = 0
    for row in rows:
        if row.erased_at is None:
            row.payload = {"erased": True}
            row.erased_at = now
            erased += 1
    event_ids = [r.id for r in rows]
    copies: list[Any] = []
    review_erased = _erase_review_copies(session, event_ids, copies, actor=actor, now=now)
    version_ids: set[str] = set()
    for lo in range(0, len(event_ids), 1000):
        version_ids.update(session.execute(
            sa.select(DatasetRecordRow.version_id).distinct()
            .where(DatasetRecordRow.event_id.in_(event_ids[lo:lo + 1000]))).scalars())
    version_ids |= _versions_with_labels(session, copies)
    result = ForgetResult(subject_hash, erased, review_content_erased=review_erased)
    why = f"{reason}: subject sha256 {subject_hash[:16]} erased"
    for vid in sorted(version_ids):
        version = session.get(DatasetVersionRow, vid)
        assert version is not None
        if version.revoked_at is None:
            version.revoked_at, version.revoked_by, version.revoked_reason = now, actor, why
            result.versions_revoked.append(vid)
        # Even an already revoked version loses its records file: it holds the content.
        result.files_to_delete.append(str(Path(version.data_path) / RECORDS_FILE))
        result.exports_flagged.extend(e.id for e in flag_exports(session, vid, why))
        result.files_to_delete.extend(str(p) for p in export_split_files(session, vid))
    audit.append(session, actor=actor, action="subject.forget", entity_type="subject",
                 entity_id=f"subject:{subject_hash[:16]}", payload={
                     "subject_sha256": subject_hash, "reason": reason,
                     "events_erased": erased, "event_ids": sorted(event_ids),
                     "review_content_erased": review_erased,
                     "versions_revoked": result.versions_revoked,
                     "exports_flagged": result.exports_flagged})
    return result


def _erase_review_copies(session: Session, event_ids: list[str], copies: list[Any], *,
                         actor: str, now: datetime) -> dict[str, int]:
    """Reviews' rewrites and rationales, text labels (the copies a cluster's review wrote
    onto other events included, appended to ``copies``), adjudication rationales; the
    events' pending review tasks are cancelled."""
    try:
        from hilt.review.erasure import erase_subject_content
    except ImportError:  # a deployment without the review stage holds no copies
        return {}
    return erase_subject_content(session, event_ids, copies, actor=actor, now=now)


def _versions_with_labels(session: Session, labels: list[Any]) -> set[str]:
    """Dataset versions with a record made from one of ``labels`` (on other events)."""
    wanted = {label.id for label in labels}
    events = sorted({label.event_id for label in labels})
    found: set[str] = set()
    for lo in range(0, len(events), 1000):
        for version_id, label_ids in session.execute(
                sa.select(DatasetRecordRow.version_id, DatasetRecordRow.label_ids)
                .where(DatasetRecordRow.event_id.in_(events[lo:lo + 1000]))):
            if wanted & set(label_ids or []):
                found.add(version_id)
    return found


def delete_files(result: ForgetResult, reason: str = "right to be forgotten") -> None:
    """Delete the records and export split files listed; a ``REVOKED.json`` marker in
    each folder says why (added to the marker an export's flag left there)."""
    for name in result.files_to_delete:
        path = Path(name)
        if path.is_dir():
            shutil.rmtree(path)  # a datasets (hf) export
            result.files_deleted.append(name)
        elif path.exists():
            path.unlink()
            result.files_deleted.append(name)
        if path.parent.exists():
            marker = path.parent / "REVOKED.json"
            _write_marker(marker, {"reason": reason, "subject_sha256": result.subject_sha256,
                                   "records_deleted_at": utcnow().isoformat()})


def _write_marker(marker: Path, fields: dict[str, Any]) -> None:
    try:
        existing = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        existing = {}
    merged = {**existing, **fields} if isinstance(existing, dict) else fields
    marker.write_text(json.dumps(merged), encoding="utf-8")


def forget(engine: Engine, subject_id: str, *, actor: str,
           reason: str = "right to be forgotten") -> ForgetResult:
    """Erase, revoke and flag in one transaction, then delete the records files."""
    with transaction(engine) as session:
        result = erase_subject(session, subject_id, actor=actor, reason=reason)
    delete_files(result, reason)
    return result
