"""Right to be forgotten: erase a subject's content and revoke what was built from it.

``forget`` (GDPR art. 17 style erasure) does, in one transaction:

1. every event of the subject keeps its row, id and content hash (so references and the
   audit chain stay valid) but loses its content: the payload becomes
   ``{"erased": true}`` and ``erased_at`` is set;
2. the review stage's copies of that content (reviews' rewrites, rationales and text
   answers, text-valued final labels, adjudication rationales) are erased by
   :func:`hilt.review.erasure.erase_subject_content`;
3. every dataset version holding a record of those events is revoked with the reason,
   and its exports are flagged; what killed builds left in the current data folder and
   in those the versions were built in is settled first
   (:func:`hilt.data.build.sweep_build_folders`: records a build never committed are
   removed, a committed version's still in its staging folder are moved into place);
4. one audit entry records the act, naming the subject only by the sha256 of its id.

After the commit (:func:`delete_files`) the records files of the versions holding the
subject's records are deleted (they contain the erased content; each is looked for in
the folder named by the version's id under the current data folder, then where it was
built: :func:`hilt.data.versions.version_folder`), and so are the split
files (``train.jsonl``, ``validation.parquet``, the ``hf`` folder, ...) of every export
of those versions whose folder is still on this machine
(:class:`hilt.data.versions.ExportFolder`); a ``REVOKED.json`` marker is left in each
folder. Every file that can be deleted is: one that cannot, or a records file whose
version folder is in neither place, is listed with its error in
``files_failed`` (a marker that cannot be written, in ``markers_failed``), and the
outcome is written to the audit log (``subject.forget_files``), which is where a
deletion run in the background (the HTTP endpoint) reports. Running the forget again for
the same subject finds the same versions and exports from the store and deletes what is
still there, which also finishes a forget killed after its commit. Exports already
copied elsewhere cannot be deleted from here: they are flagged, and the flag is what
downstream checks read. Future builds never see the content again (it is gone from the
store). On PostgreSQL the erasure holds the erasure lock exclusively
(:mod:`hilt.data.erasure_lock`): it waits for builds and exports still running, and
those that start later wait for it.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.canonical import sha256_hex
from hilt.data.build import data_dir, sweep_build_folders
from hilt.data.erasure_lock import lock_for_erasure
from hilt.data.versions import (
    MARKER_FILE,
    ExportFolder,
    MarkerWrites,
    export_folders,
    failure,
    flag_exports,
    markers,
    records_file,
    restore_markers,
    write_marker,
)
from hilt.errors import InputError
from hilt.store import audit
from hilt.store.db import in_transaction_retrying_deadlocks, transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import EventRow
from hilt.store.tables.datasets import DatasetRecordRow, DatasetVersionRow

log = logging.getLogger(__name__)


@dataclass
class ForgetResult:
    subject_sha256: str
    events_erased: int
    review_content_erased: dict[str, int] = field(default_factory=dict)
    versions_revoked: list[str] = field(default_factory=list)
    exports_flagged: list[str] = field(default_factory=list)
    # Known at the commit; :func:`delete_files` looks again when it deletes, as an
    # export being moved into place then may have been in its staging folder.
    files_to_delete: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    # What could not be deleted or written: {"path", "error"} each.
    files_failed: list[dict[str, str]] = field(default_factory=list)
    markers_failed: list[dict[str, str]] = field(default_factory=list)
    # For delete_files: what to delete, the flag markers written at the commit, and
    # where to record the outcome.
    records_files: list[str] = field(default_factory=list, repr=False)
    exports: list[ExportFolder] = field(default_factory=list, repr=False)
    flag_markers: MarkerWrites = field(default_factory=MarkerWrites, repr=False)
    actor: str = field(default="forget", repr=False)
    engine: Engine | None = field(default=None, repr=False, compare=False)
    # Stored events of the subject, erased before or now: none means that the id
    # matched nothing (a typo erases nothing, and would otherwise look like success).
    events_found: int = field(default=0, repr=False)

    @property
    def ok(self) -> bool:
        """Every file deleted and every marker written."""
        return not self.files_failed and not self._markers_failed()

    def _markers_failed(self) -> list[dict[str, str]]:
        merged = {f["path"]: f for f in [*self.flag_markers.failed, *self.markers_failed]}
        return list(merged.values())

    def as_dict(self) -> dict[str, Any]:
        return {"subject_sha256": self.subject_sha256, "events_erased": self.events_erased,
                "review_content_erased": self.review_content_erased,
                "versions_revoked": self.versions_revoked,
                "exports_flagged": self.exports_flagged,
                "files_to_delete": self.files_to_delete,
                "files_deleted": self.files_deleted, "files_failed": self.files_failed,
                "markers_failed": self._markers_failed()}


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
    bind = session.get_bind()
    result = ForgetResult(subject_hash, erased, review_content_erased=review_erased,
                          flag_markers=markers(session), actor=actor,
                          engine=bind if isinstance(bind, Engine) else None,
                          events_found=len(rows))
    why = f"{reason}: subject sha256 {subject_hash[:16]} erased"
    versions = [session.get(DatasetVersionRow, vid) for vid in sorted(version_ids)]
    _sweep_data_folders(session, [Path(v.data_path).parent for v in versions if v])
    for version in versions:
        assert version is not None
        vid = version.id
        if version.revoked_at is None:
            version.revoked_at, version.revoked_by, version.revoked_reason = now, actor, why
            result.versions_revoked.append(vid)
        # Even an already revoked version loses its records file: it holds the content.
        result.records_files.append(str(records_file(version)))
        restore_markers(session, vid)  # of exports flagged before: written if missing
        result.exports_flagged.extend(e.id for e in flag_exports(session, vid, why))
        result.exports.extend(export_folders(session, vid))
    result.files_to_delete = _dedup(
        result.records_files,
        (str(p) for e in result.exports for p in e.split_files(wait=False)))
    audit.append(session, actor=actor, action="subject.forget", entity_type="subject",
                 entity_id=subject_entity_id(subject_hash), payload={
                     "subject_sha256": subject_hash, "reason": reason,
                     "events_erased": erased, "event_ids": sorted(event_ids),
                     "review_content_erased": review_erased,
                     "versions_revoked": result.versions_revoked,
                     "exports_flagged": result.exports_flagged})
    return result


def subject_entity_id(subject_sha256: str) -> str:
    """The audit entity id of a subject: the first 16 hex digits of its id's sha256.

    The entity type (``subject``) is a column of its own, which ``hilt audit show``
    prints before the id; entries of stores written before this id lost its own
    ``subject:`` prefix keep it (the entries are hashed into the chain), and are found
    and printed the same way."""
    return subject_sha256[:16]


def _sweep_data_folders(session: Session, recorded: list[Path]) -> None:
    """Settle what killed builds left in the current data folder and in those the
    versions were built in (:func:`hilt.data.build.sweep_build_folders`): records of a
    build that never committed are removed, so no copy of the content stays under no
    version, and those of a version committed just before its build was killed are
    moved into place, where the version's records file is looked for."""
    for root in dict.fromkeys(p.resolve() for p in [data_dir(), *recorded]):
        removed = sweep_build_folders(session, root)
        if removed:
            log.info("forget removed folders left by interrupted builds: %s", removed)


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


def _dedup(*groups: Any) -> list[str]:
    return list(dict.fromkeys(name for group in groups for name in group))


def delete_files(result: ForgetResult, reason: str = "right to be forgotten", *,
                 engine: Engine | None = None) -> ForgetResult:
    """After the erasure has committed: delete the records files and the exports'
    split files, each one that can be; a ``REVOKED.json`` marker in each folder says
    why (added to the marker an export's flag left there). What cannot be deleted or
    written, and a records file whose version folder is nowhere to be found (the data
    folder moved elsewhere), is listed in ``files_failed`` / ``markers_failed``, never
    raised, and the outcome is written to the audit log (``subject.forget_files``)
    through ``engine`` (by default the erasure's own)."""
    targets = _dedup(result.records_files,
                     (str(p) for e in result.exports for p in e.split_files()),
                     result.files_to_delete)
    result.files_to_delete = targets
    fields = {"reason": reason, "subject_sha256": result.subject_sha256}
    records = set(result.records_files)
    for name in targets:
        path = Path(name)
        if name in records and not path.parent.is_dir():
            # Neither the recorded folder nor one by the version's id under the data
            # folder is here: the records (and the content) may be wherever it went.
            result.files_failed.append(_not_found(path))
            continue
        try:
            deleted = _delete(path)
        except OSError as exc:
            log.warning("forget could not delete %s: %s", path, exc)
            result.files_failed.append(failure(path, exc))
            continue
        if deleted:
            result.files_deleted.append(name)
        marker = path.parent / MARKER_FILE
        if path.parent.is_dir() and (deleted or not _says_deleted(marker)):
            try:
                write_marker(marker, {**fields, "records_deleted_at": utcnow().isoformat()})
            except OSError as exc:
                log.warning("forget could not write the marker %s: %s", marker, exc)
                result.markers_failed.append(failure(marker, exc))
    _record_outcome(result, engine or result.engine)
    return result


def _not_found(path: Path) -> dict[str, str]:
    """A records file whose version folder is nowhere to be found, as a failure."""
    here = (data_dir() / path.parent.name).resolve()
    gone = (f"neither {path.parent} nor {here} exists" if here != path.parent
            else f"{path.parent} does not exist")
    log.warning("forget could not find the records file %s: %s", path, gone)
    return {"path": str(path),
            "error": f"not found: {gone}, so the records may still be wherever the "
                     "version's folder went; run the same forget again with HILT_HOME "
                     f"set to the folder that holds datasets/{path.parent.name}"}


def _delete(path: Path) -> bool:
    """Delete a file or (``hf`` exports) a folder; False when it is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    else:
        return False
    return True


def _says_deleted(marker: Path) -> bool:
    """Whether the marker already records a deletion (a file found gone is not
    deleted again, so its time stays the first deletion's)."""
    try:
        found = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and "records_deleted_at" in found


def _record_outcome(result: ForgetResult, engine: Engine | None) -> None:
    """One audit entry with what was deleted and what failed; best effort, as the
    deletions are done whether or not it can be written (it is logged if not)."""
    if engine is None or not (result.files_to_delete or not result.ok):
        return
    try:
        with transaction(engine) as session:
            audit.append(session, actor=result.actor, action="subject.forget_files",
                         entity_type="subject",
                         entity_id=subject_entity_id(result.subject_sha256), payload={
                             "subject_sha256": result.subject_sha256,
                             "files_deleted": result.files_deleted,
                             "files_failed": result.files_failed,
                             "markers_failed": result._markers_failed()})
    except Exception:
        log.exception("the outcome of forget's deletions (subject sha256 %s) could not "
                      "be written to the audit log: %s", result.subject_sha256[:16],
                      result.as_dict())


def forget(engine: Engine, subject_id: str, *, actor: str,
           reason: str = "right to be forgotten") -> ForgetResult:
    """Erase, revoke and flag in one transaction, then delete the files
    (:func:`delete_files`); ``result.ok`` says whether every one could be. On
    PostgreSQL, an erasure that a concurrent claim or submit deadlocks with is rolled
    back whole and run again."""
    result = in_transaction_retrying_deadlocks(
        engine, lambda session: erase_subject(session, subject_id, actor=actor,
                                              reason=reason))
    return delete_files(result, reason, engine=engine)
