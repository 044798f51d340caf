"""Build a dataset version from the store: select, write the records, record the manifest.

A version is content-addressed: its id is the sha256 of ``records.jsonl``, one canonical
JSON record per line (``hilt.canonical``), sorted by record key, so anyone can recompute
it with ``sha256sum``. Building the same records again returns the existing version
(versions are immutable), under the name it was first built with; the reuse is said in
the result (``reused``, and ``revoked`` with its reason when that version was revoked:
it stays revoked) and written to the audit log with the spec that asked for it.
A selection with no records is refused rather than recorded as an empty version. The
files live in ``<data dir>/<id>/`` next to ``manifest.json``; the database holds the
manifest and every record's lineage.

Concurrent builds of the same records: the records are written to a private temporary
folder, and the lookup of the version, the move of the folder into place and the insert
of its row happen under a lock on the version id (PostgreSQL: a transaction-scoped
advisory lock; SQLite: every write transaction already holds the database's write lock),
so the second build waits for the first to commit and then reuses its version. A folder
is only ever replaced when no committed version owns it. Before it reads the store a
build takes the erasure lock shared (:mod:`hilt.data.erasure_lock`), so a subject's
erasure waits for it and then revokes what it recorded.

Staging folders (:class:`StagingFolder`, also used by exports) hold a lock file beside
them while their process lives; a folder whose lock no process holds was left by a
process that was killed, and the next build into the same data folder removes it
(:func:`sweep_stale`), since its records would otherwise escape an erasure.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

import hilt
from hilt.bulk import gc_paused
from hilt.canonical import canonical_json, content_hash, sha256_hex
from hilt.config import hilt_home
from hilt.data.decontam import HeldoutIndex
from hilt.data.erasure_lock import lock_for_reading
from hilt.data.mixing import (
    CompatLookup,
    apply_rubric_decisions,
    check_rubric_mixing,
    default_compat_lookup,
)
from hilt.data.pii import PiiDetector
from hilt.data.pipeline import SelectionResult, heldout_forms, run_selection
from hilt.data.records import Example
from hilt.data.sources import (
    HeldoutSource,
    LabelSource,
    default_heldout_source,
    default_label_source,
    load_candidates,
)
from hilt.data.spec import SelectionSpec
from hilt.errors import Conflict, InputError
from hilt.store import audit
from hilt.store.pg_locks import SCHEMA_KEY, lock_params
from hilt.store.tables.base import utcnow
from hilt.store.tables.datasets import DatasetRecordRow, DatasetVersionRow

log = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"
MANIFEST_FILE = "manifest.json"
LOCK_SUFFIX = ".lock"
# A staging folder without a lock file was left by a hilt from before staging folders had
# one; it is only taken for stale once it has not changed for this long.
UNLOCKED_STALE_AFTER_S = 3600.0
# A build's staging folder, and a folder a build moved aside to take its place over.
_BUILD_STAGING = re.compile(r"\.tmp-[0-9a-f]{32}")
_BUILD_ASIDE = re.compile(r"\.stale-[0-9a-f]{32}")
# First key of the two-key advisory locks taken per version id (a key space of its own;
# the second key names schema and version: see hilt.store.pg_locks).
_BUILD_LOCK_SPACE = 0x68626C64
_UNSET: Any = object()
# What a record says, for diffs: a change of lineage, confidence or split alone is not a
# relabelling, a change of chosen/rejected, completion, label or text is.
_NOT_CONTENT = frozenset({"lineage", "confidence", "split"})


def data_dir(path: str | Path | None = None) -> Path:
    return Path(path) if path is not None else hilt_home() / "datasets"


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"],
                                cwd=Path(__file__).parent, capture_output=True, text=True,
                                timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{hilt.__version__}+{commit}" if commit else hilt.__version__


def lock_file(folder: Path) -> Path:
    """The lock file of a staging folder: beside it, so it outlives the folder's move."""
    return folder.with_name(folder.name + LOCK_SUFFIX)


class StagingFolder:
    """A new private folder where output is written before it is moved into place.

    Its lock file is created and locked (``flock``) before the folder exists and removed
    after the folder is gone (moved away or removed), so while the folder exists under
    its name a live process holds the lock, and the kernel releases it when that process
    dies, however it dies: :func:`sweep_stale` removes the folders whose lock nobody
    holds. ``close()`` ends it: the folder, if still there, is removed, then the lock
    file; ``close(keep=True)`` leaves both (the folder is stale from then on).
    """

    def __init__(self, folder: Path) -> None:
        lock = lock_file(folder)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # A sweep may have taken the new file for one left without its folder
                # and removed it before the lock was held: then lock a new one.
                if os.fstat(fd).st_ino == _inode(lock):
                    folder.mkdir()
                    break
            except BaseException:
                with contextlib.suppress(OSError):
                    lock.unlink()
                os.close(fd)
                raise
            os.close(fd)
        self.path, self._lock, self._fd = folder, lock, fd

    def close(self, *, keep: bool = False) -> None:
        if self._fd < 0:
            return
        try:
            if not keep:
                shutil.rmtree(self.path, ignore_errors=True)
                with contextlib.suppress(OSError):
                    self._lock.unlink()
        finally:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = -1

    def __enter__(self) -> StagingFolder:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def wait_for_staging(folder: Path) -> None:
    """Wait while a live process holds the lock of staging folder ``folder`` (it is
    still writing it or moving it into place); return at once when none does."""
    try:
        fd = os.open(lock_file(folder), os.O_RDONLY)
    except OSError:
        return  # no lock file: nobody is working on it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


def sweep_stale(parent: Path, name: re.Pattern[str] | Callable[[str], bool]) -> list[str]:
    """Remove the staging folders in ``parent`` whose name matches and whose lock no
    process holds, left by a process that was killed (or that kept one on purpose after
    a failed move), with their lock files; and lock files left without their folder.
    A matching folder without a lock file is removed once unchanged for
    ``UNLOCKED_STALE_AFTER_S``. Returns the folders removed; what cannot be removed is
    left for the next sweep."""
    matches: Callable[[str], bool] = (
        (lambda n: name.fullmatch(n) is not None) if isinstance(name, re.Pattern) else name)
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    removed: list[str] = []
    folders = {e.name for e in entries if e.is_dir(follow_symlinks=False)}
    for entry in entries:
        if entry.name.endswith(LOCK_SUFFIX):
            folder = entry.name[:-len(LOCK_SUFFIX)]
            if folder not in folders and matches(folder):
                _remove_if_unlocked(parent / folder, removed)
        elif entry.name in folders and matches(entry.name):
            _remove_if_unlocked(parent / entry.name, removed)
    if removed:
        log.info("removed staging folders left by interrupted runs: %s", removed)
    return removed


def _remove_if_unlocked(folder: Path, removed: list[str]) -> None:
    try:
        fd = os.open(lock_file(folder), os.O_RDWR)
    except FileNotFoundError:
        try:
            age = time.time() - folder.stat().st_mtime
        except OSError:
            return
        if age >= UNLOCKED_STALE_AFTER_S:
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(str(folder))
        return
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return  # a live process holds it
            raise
        existed = folder.exists()
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            return  # keep the lock file while the folder is there
        with contextlib.suppress(OSError):
            lock_file(folder).unlink()
        if existed:
            removed.append(str(folder))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class BuildResult:
    version_id: str
    created: bool
    record_count: int
    manifest: dict[str, Any]  # the version's manifest (the first build's when reused)
    # The steps of this build: when an existing version is reused they may differ from
    # the manifest's (another spec can select the same records).
    steps: list[dict[str, Any]]
    # A reused version may have been revoked: it is still returned (its id is its
    # records), and exports and training of it still need an audited override.
    revoked: bool = False
    revoked_reason: str | None = None
    # Staging folders of interrupted builds removed from the data folder by this build.
    stale_removed: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The name the version is recorded under (the first build's when reused)."""
        return str(self.manifest.get("name", ""))


def write_records(examples: list[Example], directory: Path) -> tuple[str, list[dict[str, Any]]]:
    """Write ``records.jsonl``; returns its sha256 and per-record lineage rows."""
    digest = hashlib.sha256()
    rows = []
    with gc_paused(), open(directory / RECORDS_FILE, "wb") as fh:
        for ex in examples:
            record = ex.to_record()
            line = (canonical_json(record) + "\n").encode("utf-8")
            digest.update(line)
            fh.write(line)
            lin = record["lineage"]
            rows.append({"record_key": ex.key, "record_hash": content_hash(
                             {k: v for k, v in record.items() if k not in _NOT_CONTENT}),
                         "event_id": ex.event_id, "split": ex.split,
                         "label_ids": lin["label_ids"], "review_ids": lin["review_ids"],
                         "adjudication_ids": lin["adjudication_ids"],
                         "rubrics": lin["rubrics"], "policy_versions": lin["policy_versions"]})
    return digest.hexdigest(), rows


def lineage_summary(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {k: set() for k in (
        "event_ids", "label_ids", "review_ids", "adjudication_ids", "rubrics",
        "policy_versions")}
    for r in rows:
        out["event_ids"].add(r["event_id"])
        for k in ("label_ids", "review_ids", "adjudication_ids", "rubrics", "policy_versions"):
            out[k].update(r[k])
    return {k: sorted(v) for k, v in out.items()}


def build_version(session: Session, spec: SelectionSpec, *, actor: str,
                  label_source: LabelSource | None = _UNSET,
                  heldout_source: HeldoutSource | None = None,
                  directory: str | Path | None = None,
                  detector: PiiDetector | None = None,
                  compat_lookup: CompatLookup | None = _UNSET,
                  spec_file: str | None = None) -> BuildResult:
    """Select from the store and record a version (in the caller's transaction).

    Refuses (``InputError``) to mix rubric versions whose bridge shows incompatible
    labels unless a mapping, relabelling or acceptance is recorded
    (:mod:`hilt.data.mixing`); a recorded mapping or relabelling is applied to the
    older versions' labels before the records are made. ``compat_lookup`` replaces the
    drift stage's lookup.
    Refuses (``InputError``, naming ``spec_file``) a selection without records.
    """
    # Before anything is read: an erasure committing during the build would not see it.
    lock_for_reading(session)
    labels: LabelSource | None = (default_label_source() if label_source is _UNSET
                                  else label_source)
    heldout_of: HeldoutSource = heldout_source or default_heldout_source()
    heldout = heldout_of(session)
    # The same forms as the gate's re-check (dataset_facts) indexes: each held-out text,
    # and with ``pii.action: redact`` its redacted form too.
    index = HeldoutIndex(heldout_forms(heldout, spec.pii, detector),
                         ngram=spec.decontamination.ngram,
                         min_short_words=spec.decontamination.min_short_words)
    label_steps, candidates = load_candidates(session, spec, label_source=labels)
    lookup = default_compat_lookup(session) if compat_lookup is _UNSET else compat_lookup
    # Recorded mappings and relabellings change labels, so they apply before the
    # records are made (and deduplicated, balanced and split).
    decided_candidates, decided = apply_rubric_decisions(candidates, lookup)
    result = run_selection(decided_candidates, spec, index, detector=detector,
                           label_steps=label_steps)
    mixing = check_rubric_mixing(result.examples, lookup)
    if decided:
        mixing["decisions_applied"] = decided
    return store_result(session, spec, result, actor=actor, directory=directory,
                        spec_file=spec_file, notes={
        "rubric_mixing": mixing,
        "label_source": "unavailable" if labels is None else
        f"{labels.__module__}.{getattr(labels, '__qualname__', 'labels')}",
        "heldout_items": len(set(index.items))})


def store_result(session: Session, spec: SelectionSpec, result: SelectionResult, *,
                 actor: str, directory: str | Path | None = None,
                 notes: dict[str, Any] | None = None,
                 spec_file: str | None = None) -> BuildResult:
    if not result.examples:
        # An empty version would be the same (empty) file for every spec and kind, so
        # it would be returned for any later empty build: refuse instead, and say
        # which steps removed what.
        raise InputError(f"selection {spec.name!r} ({spec.kind}) yields no records, so no "
                         f"version is recorded; {_removed_summary(result)}",
                         file=spec_file)
    lock_for_reading(session)  # a no-op when build_version took it already
    root = data_dir(directory)
    root.mkdir(parents=True, exist_ok=True)
    # Builds killed before their move leave staging folders that hold records: gone
    # from the registry, an erasure would never find them.
    swept = tuple(sweep_stale(root, _BUILD_STAGING) + _remove_moved_aside(root))
    with StagingFolder(root / f".tmp-{uuid.uuid4().hex}") as staging:
        tmp = staging.path
        version_id, rows = write_records(result.examples, tmp)
        _lock_version(session, version_id)
        existing = session.get(DatasetVersionRow, version_id)
        steps = result.manifest_steps()
        if existing is not None:
            return replace(_reuse(session, spec, existing, steps, actor=actor),
                           stale_removed=swept)
        now = utcnow()
        manifest: dict[str, Any] = {
            "version_id": version_id, "name": spec.name, "kind": spec.kind,
            "record_count": len(rows), "spec": spec.as_dict(), "steps": steps,
            "lineage": lineage_summary(rows),
            "code_version": code_version(), "built_by": actor, "built_at": now.isoformat(),
            "records_sha256": version_id, **({"notes": notes} if notes else {})}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, ensure_ascii=False),
                                         encoding="utf-8")
        target = root / version_id
        if target.exists():
            _take_over(tmp, target, version_id)
        else:
            tmp.rename(target)
    session.add(DatasetVersionRow(
        id=version_id, name=spec.name, kind=spec.kind, record_count=len(rows),
        spec=spec.as_dict(), manifest=json.loads(canonical_json(manifest)),
        code_version=manifest["code_version"], created_by=actor, created_at=now,
        data_path=str(target.resolve())))
    session.flush()
    for lo in range(0, len(rows), 5000):
        session.execute(sa.insert(DatasetRecordRow),
                        [{"version_id": version_id, **r} for r in rows[lo:lo + 5000]])
    audit.append(session, actor=actor, action="dataset.build", entity_type="dataset_version",
                 entity_id=version_id, payload={
                     "name": spec.name, "kind": spec.kind, "records": len(rows),
                     "spec_sha256": sha256_hex(canonical_json(spec.as_dict())),
                     "steps": {s["step"]: s["removed"] for s in steps}})
    return BuildResult(version_id, True, len(rows), manifest, steps, stale_removed=swept)


def _remove_moved_aside(root: Path) -> list[str]:
    """Folders :func:`_take_over` moved aside and was killed before it removed them:
    nothing else ever uses them, so they are removed whoever is running."""
    removed = []
    for entry in root.iterdir():
        if _BUILD_ASIDE.fullmatch(entry.name) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(str(entry))
    return removed


def _lock_version(session: Session, version_id: str) -> None:
    """Wait until no other transaction is building ``version_id``; held to commit."""
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already serialises every writer
    session.execute(sa.text(f"SELECT pg_advisory_xact_lock(:lock_space, {SCHEMA_KEY})"),
                    lock_params(_BUILD_LOCK_SPACE, version_id))


def _sha256_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _take_over(tmp: Path, target: Path, version_id: str) -> None:
    """Put the new build in ``target``, which a build that did not commit left behind
    (no committed version owns it: its row was looked up under the version's lock).

    Records already there with the right hash (and nothing else but a manifest) are
    these records and stay; only the manifest is replaced, in one rename. Anything else
    is moved aside before the new folder takes its place, so the target is never a
    half-deleted folder.
    """
    if {p.name for p in target.iterdir()} <= {RECORDS_FILE, MANIFEST_FILE} \
            and _sha256_file(target / RECORDS_FILE) == version_id:
        os.replace(tmp / MANIFEST_FILE, target / MANIFEST_FILE)
        shutil.rmtree(tmp)
        return
    stale = target.with_name(f".stale-{uuid.uuid4().hex}")
    target.rename(stale)
    tmp.rename(target)
    shutil.rmtree(stale, ignore_errors=True)


def _removed_summary(result: SelectionResult) -> str:
    steps = result.manifest_steps()
    removed = [_removed_text(s) for s in steps
               if s["removed"] or (s.get("labels") or {}).get("removed")]
    if removed:
        return "; ".join(removed)
    first = next((s for s in steps if s["step"] == "filter"), None)
    if first is None or first["input"] == 0:
        return ("no labelled event matches its sources, kinds and label filters "
                "(sources, labels.since/until, labels.*)")
    return "no step produced a record"


def _removed_text(step: dict[str, Any]) -> str:
    """``<step> removed <n> of <m> (<reason>: <n>, ..., labels <n> of <m>)``."""
    parts = [f"{k}: {v}" for k, v in step["reasons"].items()]
    labels = step.get("labels")
    if labels is not None:
        parts.append(f"labels {labels['removed']} of {labels['input']}")
    return (f"{step['step']} removed {step['removed']} of {step['input']}"
            + (f" ({', '.join(parts)})" if parts else ""))


def _reuse(session: Session, spec: SelectionSpec, existing: DatasetVersionRow,
           steps: list[dict[str, Any]], *, actor: str) -> BuildResult:
    """Return the version that already holds exactly these records, saying whether it
    is revoked (a revocation is never undone by building the same records again).

    Records carry their kind, so equal records imply an equal kind; checked anyway, as
    returning a version of another kind would hand a trainer the wrong data. The spec
    that asked is audited, since the version keeps its first name and spec.
    """
    if existing.kind != spec.kind:
        raise Conflict(f"dataset version {existing.id} holds the same records but is of "
                       f"kind {existing.kind!r}, not {spec.kind!r}")
    audit.append(session, actor=actor, action="dataset.build_reused",
                 entity_type="dataset_version", entity_id=existing.id, payload={
                     "name": spec.name, "kind": spec.kind,
                     "recorded_name": existing.name,
                     "spec_sha256": sha256_hex(canonical_json(spec.as_dict())),
                     "steps": {s["step"]: s["removed"] for s in steps}})
    return BuildResult(existing.id, False, existing.record_count, existing.manifest, steps,
                       revoked=existing.revoked_at is not None,
                       revoked_reason=existing.revoked_reason)
