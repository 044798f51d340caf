"""Dataset versions after they are built: look-up, diff, lineage, revocation, usability.

The training stage calls :func:`assert_usable` before it trains on a version; the release
gate calls :func:`dataset_facts` for whether a version is consented, revoked and
contaminated with the suites it evaluates on.

A revocation flags the version's exports in its transaction; the ``REVOKED.json``
markers beside them are files, written only once that transaction has committed
(:func:`run_after_commit`), so a rollback leaves no false marker and a folder that
cannot be written to does not undo the revocation: it is listed in
``markers(session).failed`` instead (:func:`markers`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from hilt.data.build import (
    RECORDS_FILE,
    data_dir,
    pending_folder,
    settle_staged,
    wait_for_staging,
)
from hilt.data.export import staging_path
from hilt.data.pii import PiiDetector
from hilt.errors import Forbidden, InputError, NotFound
from hilt.staging import PrivateFile
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


def version_folder(version_id: str, data_path: str | Path) -> Path:
    """Where a version's files are: the folder named by its id under the current data
    folder (``$HILT_HOME/datasets``) when there is one, else the folder recorded when it
    was built (``data_path``: absolute, so a build into another ``--data-dir`` is found).

    The current data folder comes first: after the data folder has moved, the recorded
    path names a folder that is gone, and in a copy of a store it names the original's
    folder, not the copy's. A version this process recorded in a transaction that has
    not committed yet is still in its build's staging folder
    (:func:`hilt.data.build.pending_folder`): that folder, when neither is there."""
    here = data_dir() / version_id
    if here.is_dir():
        return here.resolve()
    recorded = Path(data_path)
    if not recorded.is_dir():
        staged = pending_folder(version_id)
        if staged is not None and staged.is_dir():
            return staged
    return recorded


def records_file(row: DatasetVersionRow) -> Path:
    """The version's records file (:func:`version_folder`); it may be gone.

    A version's records are moved into its folder after the commit that recorded it
    (:mod:`hilt.data.build`): when the folder is not there, the build that is moving it
    is waited for, and one killed before its move is finished here
    (:func:`hilt.data.build.settle_staged`)."""
    folder = version_folder(row.id, row.data_path)
    if not folder.is_dir():
        built_at = (row.manifest or {}).get("built_at")
        settle_staged([data_dir(), Path(row.data_path).parent], row.id,
                      built_at if isinstance(built_at, str) else None)
        folder = version_folder(row.id, row.data_path)
    return folder / RECORDS_FILE


def read_records(row: DatasetVersionRow) -> Iterator[dict[str, Any]]:
    """The version's records, checked against its id (the sha256 of the file).

    The check ends the iteration: a file changed after the build (a flipped label)
    raises :class:`InputError` after its last record, so a caller that collects every
    record before it writes or trains anything (export, training) never uses it.
    """
    path = records_file(row)
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
    """Revoke a version and flag its exports; their markers are written after the
    commit (:func:`markers`). A version already revoked is left as it is, except that
    the markers of its flagged exports that are missing are written again."""
    if not reason.strip():
        raise InputError("a revocation needs a reason", field="reason")
    row = get_version(session, version_id)
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by, row.revoked_reason = utcnow(), actor, reason
        flag_exports(session, row.id, reason)
        audit.append(session, actor=actor, action="dataset.revoke",
                     entity_type="dataset_version", entity_id=row.id,
                     payload={"reason": reason})
    else:
        restore_markers(session, row.id)
    return row


# -- after the commit ------------------------------------------------------------------

_AFTER_COMMIT = "hilt.data.after_commit"
_MARKERS = "hilt.data.markers"
# (the transaction or savepoint it was registered in, action, on_rollback)
_Step = tuple[SessionTransaction | None, Callable[[], None], Callable[[], None] | None]
log = logging.getLogger(__name__)


def run_after_commit(session: Session, action: Callable[[], None],
                     on_rollback: Callable[[], None] | None = None) -> None:
    """Run ``action`` once the session's transaction has committed, or ``on_rollback``
    when it (or the savepoint it was registered in) rolls back or the session is
    closed without a commit. For side effects outside the database (files) that must
    not happen unless the change they go with is committed. Both run in the order
    registered and report their own failures: an exception is logged, never raised
    (the change has committed or rolled back by then)."""
    pending: list[_Step] | None = session.info.get(_AFTER_COMMIT)
    if pending is None:
        pending = session.info[_AFTER_COMMIT] = []
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_rollback)
        event.listen(session, "after_transaction_end", _after_end)
    pending.append((session.get_nested_transaction() or session.get_transaction(),
                    action, on_rollback))


def _run(step: Callable[[], None] | None) -> None:
    if step is None:
        return
    try:
        step()
    except Exception:
        log.exception("a step after the end of a transaction failed")


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: its actions wait for the outer transaction
    pending = session.info.get(_AFTER_COMMIT) or []
    done, pending[:] = list(pending), []
    session.info.pop(_MARKERS, None)
    for _, action, _ in done:
        _run(action)


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


def _after_rollback(session: Session, previous: SessionTransaction) -> None:
    pending: list[_Step] = session.info.get(_AFTER_COMMIT) or []
    undone = [p for p in pending if p[0] is None or _within(p[0], previous)]
    pending[:] = [p for p in pending if not (p[0] is None or _within(p[0], previous))]
    if previous.parent is None:
        session.info.pop(_MARKERS, None)
    for _, _, on_rollback in undone:
        _run(on_rollback)


def _after_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # closed without commit or rollback: nothing happened
        _after_rollback(session, transaction)


# -- markers ---------------------------------------------------------------------------

MARKER_FILE = "REVOKED.json"


@dataclass
class MarkerWrites:
    """The ``REVOKED.json`` markers of one transaction: written once it commits, listed
    in ``written``; one that cannot be written is listed in ``failed`` (``path`` and
    ``error``) and the revocation stands."""
    written: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"markers_written": self.written, "markers_failed": self.failed}


def markers(session: Session) -> MarkerWrites:
    """The markers the session's transaction leaves (filled in once it commits)."""
    found: MarkerWrites | None = session.info.get(_MARKERS)
    if found is None:
        found = session.info[_MARKERS] = MarkerWrites()
    return found


def write_marker(marker: Path, fields: dict[str, Any]) -> None:
    """Merge ``fields`` into the marker file (atomically: a reader never sees half of
    it); raises ``OSError`` when it cannot be written."""
    try:
        existing = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        existing = {}
    merged = {**existing, **fields} if isinstance(existing, dict) else fields
    # a private temporary: what a killed write of this marker left is removed first
    with PrivateFile(marker, ".tmp") as tmp:
        with tmp.text_writer() as fh:
            fh.write(json.dumps(merged))
        os.chmod(tmp.path, 0o644)
        os.replace(tmp.path, marker)


def failure(path: Path | str, exc: OSError) -> dict[str, str]:
    """A file that could not be written or deleted, as results list it (naming the
    file inside it that stopped the deletion of a folder)."""
    error = f"{type(exc).__name__}: {exc.strerror or exc}"
    inner = Path(exc.filename) if isinstance(exc.filename, str) else None
    if inner is not None and inner != Path(path) and inner.is_relative_to(path):
        error += f" ({inner})"
    return {"path": str(path), "error": error}


def _schedule_marker(session: Session, export: ExportFolder, fields: dict[str, Any], *,
                     only_if_missing: bool = False) -> None:
    report = markers(session)

    def write() -> None:
        marker = export.marker()
        if marker is None or (only_if_missing and marker.exists()):
            return
        try:
            write_marker(marker, fields)
        except OSError as exc:
            log.warning("could not write the revocation marker %s: %s", marker, exc)
            report.failed.append(failure(marker, exc))
        else:
            report.written.append(str(marker))

    run_after_commit(session, write)


def flag_exports(session: Session, version_id: str, reason: str) -> list[DatasetExportRow]:
    """Mark every export of a version as flagged; a ``REVOKED.json`` marker is left
    in each folder still here once the transaction commits (:func:`markers`)."""
    rows = list(session.execute(sa.select(DatasetExportRow).where(
        DatasetExportRow.version_id == version_id, DatasetExportRow.flagged_at.is_(None)))
        .scalars())
    for exp in rows:
        exp.flagged_at, exp.flag_reason = utcnow(), reason
        _schedule_marker(session, ExportFolder.of(exp), _flag_fields(exp))
    return rows


def restore_markers(session: Session, version_id: str) -> None:
    """Write again, after the commit, the markers of the version's flagged exports
    that are missing (one that could not be written when they were flagged)."""
    for exp in session.execute(sa.select(DatasetExportRow).where(
            DatasetExportRow.version_id == version_id,
            DatasetExportRow.flagged_at.is_not(None)).order_by(DatasetExportRow.id)
            ).scalars():
        _schedule_marker(session, ExportFolder.of(exp), _flag_fields(exp),
                         only_if_missing=True)


def _flag_fields(exp: DatasetExportRow) -> dict[str, Any]:
    assert exp.flagged_at is not None
    return {"version_id": exp.version_id, "reason": exp.flag_reason,
            "flagged_at": exp.flagged_at.isoformat()}


# -- export folders --------------------------------------------------------------------

# What hilt.data.export writes per split, by format (export.json holds no records).
_SPLIT_FILES = {"jsonl": "*.jsonl", "parquet": "*.parquet", "hf": "hf"}


@dataclass(frozen=True)
class ExportFolder:
    """Where an export's files are on this machine: its folder, or, when the process
    that wrote it died between its commit and the move into place, its staging folder
    beside it (:func:`hilt.data.export.staging_path`). Either counts only while its
    ``export.json`` names the version (a folder replaced by something else does not)."""
    id: str
    version_id: str
    path: Path
    format: str

    @classmethod
    def of(cls, row: DatasetExportRow) -> ExportFolder:
        return cls(row.id, row.version_id, Path(row.path), row.format)

    @property
    def staging(self) -> Path:
        return staging_path(self.path, self.id)

    def location(self, *, wait: bool = True) -> Path | None:
        """The folder holding the export, once the export's process has moved it into
        place or died: it waits for that process to release the staging folder, unless
        ``wait`` is false (inside a transaction, where the export may be this one's)."""
        if wait:
            wait_for_staging(self.staging)
        if not self.path.is_dir() and self.path.exists():
            return self.path  # a file: an export made before exports were folders
        for folder in (self.path, self.staging):
            if self._names_version(folder):
                return folder
        return None

    def _names_version(self, folder: Path) -> bool:
        try:
            meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False  # gone, or not the folder hilt wrote
        return isinstance(meta, dict) and meta.get("version_id") == self.version_id

    def marker(self) -> Path | None:
        folder = self.location()
        if folder is None:
            return None
        if folder.is_dir():
            return folder / MARKER_FILE
        return folder.with_name(folder.name + "." + MARKER_FILE)

    def split_files(self, *, wait: bool = True) -> list[Path]:
        folder = self.location(wait=wait)
        pattern = _SPLIT_FILES.get(self.format)
        if folder is None or not folder.is_dir() or pattern is None:
            return []
        return [p for p in sorted(folder.glob(pattern)) if p.exists()]


def export_folders(session: Session, version_id: str) -> list[ExportFolder]:
    """Every export of a version, flagged or not."""
    return [ExportFolder.of(exp) for exp in session.execute(
        sa.select(DatasetExportRow).where(DatasetExportRow.version_id == version_id)
        .order_by(DatasetExportRow.id)).scalars()]



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
                  *, heldout: Iterable[tuple[str, str, str]] | None = None,
                  detector: PiiDetector | None = None) -> DatasetFacts:
    """Whether a version is consented (every event still carries ``train`` and is not
    erased), revoked, and contaminated with the given suites (all held-out suites when
    ``suite_ids`` is None), re-checked now against the current registry.

    The held-out texts are indexed as the build indexed them
    (:func:`~hilt.data.pipeline.heldout_forms` with the version's ``pii`` settings;
    ``detector`` as given to the build, by default the regex detector), so a record
    holding the redacted form of a held-out text is found.
    ``contaminating_items`` names each contaminated record with the held-out item it
    matched (record_key, suite_id, item_id)."""
    from hilt.data.decontam import HeldoutIndex
    from hilt.data.pipeline import decontaminate, heldout_forms
    from hilt.data.records import Example
    from hilt.data.spec import PiiSpec

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
    # Indexed as the build indexed them: a version built with ``pii.action: redact``
    # holds redacted texts only, so each held-out text is indexed redacted too.
    pii = PiiSpec.model_validate(row.spec.get("pii", {}))
    index = HeldoutIndex(heldout_forms(items, pii, detector), ngram=spec.get("ngram", 13),
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
        hits = [{"record_key": m["record_key"], "suite_id": m["suite_id"],
                 "item_id": m["item_id"]} for m in report.notes.get("matched_items", [])]
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
