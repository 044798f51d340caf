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
folder, and the lookup of the version and the insert of its row happen under a lock on
the version id (PostgreSQL: a transaction-scoped advisory lock; SQLite: every write
transaction already holds the database's write lock), so the second build waits for the
first to commit and then reuses its version. Before it reads the store a build takes the
erasure lock shared (:mod:`hilt.data.erasure_lock`), so a subject's erasure waits for it
and then revokes what it recorded.

A folder named by a version id appears only with its row: the records stay in the
temporary folder until the transaction that records the version has committed, and are
moved into place after it (:func:`hilt.data.versions.run_after_commit`); a rollback
removes them. So every records file on disk is either a registered version's, which an
erasure finds, or in a temporary folder. Staging folders (:class:`StagingFolder`, also
used by exports) hold a lock file beside them while their process lives; a folder whose
lock no process holds was left by a process that was killed. The next build into the
same data folder, and a subject's erasure, settle those (:func:`sweep_build_folders`):
one whose version was committed (killed between the commit and the move) is moved into
place, any other is removed, since its records would otherwise escape an erasure; so is
a folder named by a version id that no version row owns (left by a hilt that moved the
folder before its commit). A reader of a version whose folder is not in place yet waits
for the build that is moving it, or moves it itself (:func:`settle_staged`).
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
from collections.abc import Callable, Iterable, Iterator
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
# A version's folder: its id, the sha256 of its records.
_VERSION_FOLDER = re.compile(r"[0-9a-f]{64}")
# What a build writes into a version's folder: a folder named by a version id without a
# version row is only removed when it holds nothing else.
_BUILD_FILES = frozenset({"records.jsonl", "manifest.json"})
# The marker an erasure leaves in a version's folder (hilt.data.versions.MARKER_FILE):
# records are never moved into a folder that has one.
_ERASED_MARKER = "REVOKED.json"
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
    swept = tuple(sweep_build_folders(session, root))
    staging = StagingFolder(root / f".tmp-{uuid.uuid4().hex}")
    handed_over = False
    try:
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
        # Written before the row is added: a sweep finds which version a staging
        # folder holds, and whether it is the committed build's, by its manifest.
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, ensure_ascii=False),
                                         encoding="utf-8")
        target = root.resolve() / version_id
        _place_after_commit(session, staging, target, version_id)
        handed_over = True
    finally:
        if not handed_over:
            staging.close()
    session.add(DatasetVersionRow(
        id=version_id, name=spec.name, kind=spec.kind, record_count=len(rows),
        spec=spec.as_dict(), manifest=json.loads(canonical_json(manifest)),
        code_version=manifest["code_version"], created_by=actor, created_at=now,
        data_path=str(target)))
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


# Staging folders of this process whose version row is added but whose move into place
# has not happened yet, by version id: the transaction that adds the row reads the
# version's records from there (hilt.data.versions.version_folder), and a reader never
# waits for a lock this process holds.
_PENDING: dict[str, Path] = {}


def pending_folder(version_id: str) -> Path | None:
    """The staging folder of a version this process recorded and has not moved into
    place yet (its transaction has not committed); None when there is none."""
    return _PENDING.get(version_id)


def _place_after_commit(session: Session, staging: StagingFolder, target: Path,
                        version_id: str) -> None:
    """Move the records into ``target`` once the session's transaction has committed
    (the row is there by then); remove them if it rolls back."""
    from hilt.data.versions import run_after_commit

    _PENDING[version_id] = staging.path.resolve()

    def place() -> None:
        _PENDING.pop(version_id, None)
        try:
            _move_into_place(staging.path, target, version_id)
        except OSError as exc:
            # The version is committed: its records stay where they are, and the next
            # build into this data folder, a read of the version or an erasure moves them.
            log.warning("dataset version %s is recorded but its records could not be "
                        "moved to %s (%s: %s); they stay in %s until they can be",
                        version_id, target, type(exc).__name__, exc.strerror or exc,
                        staging.path)
            staging.close(keep=True)
            return
        staging.close()

    def discard() -> None:
        _PENDING.pop(version_id, None)
        staging.close()

    run_after_commit(session, place, on_rollback=discard)


def _move_into_place(tmp: Path, target: Path, version_id: str) -> None:
    """Move the staging folder of a committed version to its folder ``target``. One
    there already holds these records or is left over (:func:`_take_over`); one an
    erasure has emptied never gets the records back."""
    if not target.exists():
        try:
            tmp.rename(target)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise  # else created meanwhile: as below
    if (target / _ERASED_MARKER).exists():
        shutil.rmtree(tmp)
        return
    _take_over(tmp, target, version_id)


@dataclass(frozen=True)
class _Staged:
    """What a build's staging folder holds, from its manifest (written just before the
    version's row is added, so a folder without one has no row)."""
    version_id: str
    built_at: str

    @classmethod
    def read(cls, folder: Path) -> _Staged | None:
        try:
            manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # none yet, or cut short: the build never got to its row
        if not isinstance(manifest, dict):
            return None
        version_id, built_at = manifest.get("version_id"), manifest.get("built_at")
        if not isinstance(version_id, str) or not _VERSION_FOLDER.fullmatch(version_id) \
                or not isinstance(built_at, str):
            return None
        return cls(version_id, built_at)


@contextlib.contextmanager
def _claimed(folder: Path, *, wait: bool = False) -> Iterator[bool | None]:
    """Hold the lock of staging folder ``folder`` while its fate is decided: True once
    held (the process that made it is gone, or done with it), False while a live process
    holds it (with ``wait``: never, it waits for that process), None when it has no
    lock file."""
    try:
        fd = os.open(lock_file(folder), os.O_RDWR)
    except FileNotFoundError:
        yield None
        return
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                held = False  # a live process holds it
            else:
                raise
        else:
            held = True
        yield held
    finally:
        os.close(fd)


class _Busy(Exception):
    """Another transaction holds the version's lock: decide later."""


def _settle(folder: Path, committed: Callable[[str], str | None], *,
            wait: bool = False) -> str | None:
    """Decide the fate of build staging folder ``folder`` whose process is gone:
    ``committed(version_id)`` gives the build time of the version's row (None: no row;
    it raises :class:`_Busy` when that cannot be known yet). The committed build's
    folder is moved into place; any other is removed. Returns ``"placed"`` or
    ``"removed"``, None when the folder was left (a live process holds it, it is gone,
    or the move failed)."""
    if folder.resolve() in _PENDING.values():
        return None  # this process's own, not committed or not moved yet
    with _claimed(folder, wait=wait) as held:
        if held is None:
            # A hilt from before staging locks, which moved the folder before its
            # commit: never a committed version's, removed once it has not changed.
            removed: list[str] = []
            _remove_if_unlocked(folder, removed)
            return "removed" if removed else None
        if not held:
            return None
        if not folder.exists():
            _forget_lock(folder)
            return None
        staged = _Staged.read(folder)
        try:
            at = None if staged is None else committed(staged.version_id)
        except _Busy:
            return None
        outcome = "removed"
        if staged is not None and at == staged.built_at:
            try:
                _move_into_place(folder, folder.parent / staged.version_id,
                                 staged.version_id)
            except OSError as exc:
                log.warning("could not move the records of dataset version %s from %s "
                            "into place: %s", staged.version_id, folder, exc)
                return None
            outcome = "placed"
        else:
            shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            return None  # keep the lock file while the folder is there
        _forget_lock(folder)
        return outcome


def _forget_lock(folder: Path) -> None:
    with contextlib.suppress(OSError):
        lock_file(folder).unlink()


def sweep_build_folders(session: Session, root: Path) -> list[str]:
    """Settle what killed builds left in data folder ``root``, in the session's
    transaction (it reads which versions are recorded): a staging folder whose lock no
    process holds is moved into place when its version was committed by the build that
    wrote it, and removed otherwise (:func:`_settle`); a lock file left without its
    folder, a folder a take-over moved aside (``.stale-<hex>``) and a folder named by a
    version id that no version row owns and that holds only what a build writes are
    removed. Never a folder a live build holds. Returns the folders removed; what cannot
    be settled is left for the next sweep."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    removed: list[str] = []
    placed: list[str] = []
    names = {e.name for e in entries}
    unregistered = _unregistered_ids(session, [
        e.name for e in entries
        if _VERSION_FOLDER.fullmatch(e.name) and e.is_dir(follow_symlinks=False)])
    for entry in entries:
        name, path = entry.name, root / entry.name
        if name.endswith(LOCK_SUFFIX):
            folder = name[:-len(LOCK_SUFFIX)]
            if folder not in names and _BUILD_STAGING.fullmatch(folder):
                _remove_if_unlocked(root / folder, removed)
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        if _BUILD_STAGING.fullmatch(name):
            outcome = _settle(path, lambda vid: _committed_at(session, vid))
            if outcome is not None:
                (placed if outcome == "placed" else removed).append(str(path))
        elif _BUILD_ASIDE.fullmatch(name):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(str(path))
        elif name in unregistered:
            _remove_if_unregistered(session, path, removed)
    if placed:
        log.info("moved the records of versions committed by interrupted builds into "
                 "place: %s", placed)
    if removed:
        log.info("removed folders left by interrupted builds: %s", removed)
    return removed


def _committed_at(session: Session, version_id: str) -> str | None:
    """The build time of version ``version_id``'s row, None when there is none.

    On PostgreSQL under the version's lock, so a build killed while its commit was on
    its way has either committed or rolled back."""
    if not _version_lock_tried(session, version_id):
        raise _Busy(version_id)
    row = session.get(DatasetVersionRow, version_id)
    if row is None:
        return None
    built_at = (row.manifest or {}).get("built_at")
    return built_at if isinstance(built_at, str) else ""


def _unregistered_ids(session: Session, version_ids: list[str]) -> set[str]:
    """Those of ``version_ids`` that have no version row (looked up in chunks)."""
    found: set[str] = set()
    for lo in range(0, len(version_ids), 1000):
        chunk = version_ids[lo:lo + 1000]
        found.update(session.execute(sa.select(DatasetVersionRow.id).where(
            DatasetVersionRow.id.in_(chunk))).scalars())
    return set(version_ids) - found


def _remove_if_unregistered(session: Session, folder: Path, removed: list[str]) -> None:
    """Remove ``folder``, named by a version id, when no version row owns it and it holds
    only what a build writes: a hilt that moved folders into place before the commit
    left it when it was killed or rolled back. Looked up again under the version's lock
    on PostgreSQL, so no build of that version commits meanwhile."""
    try:
        if not {p.name for p in folder.iterdir()} <= _BUILD_FILES:
            return
    except OSError:
        return
    if not _version_lock_tried(session, folder.name) \
            or session.get(DatasetVersionRow, folder.name) is not None:
        return
    shutil.rmtree(folder, ignore_errors=True)
    if not folder.exists():
        removed.append(str(folder))


def _version_lock_tried(session: Session, version_id: str) -> bool:
    """Try the version's lock (PostgreSQL; SQLite's write lock already keeps other
    builds out): False when another transaction holds it. Never waits, so a sweep
    never waits on a build; once taken it is held to the end of the transaction, as a
    build's own is."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.execute(
        sa.text(f"SELECT pg_try_advisory_xact_lock(:lock_space, {SCHEMA_KEY})"),
        lock_params(_BUILD_LOCK_SPACE, version_id)).scalar())


def settle_staged(roots: Iterable[Path], version_id: str, built_at: str | None) -> None:
    """Put a committed version's records in place if a build has not yet: for each build
    staging folder in the data folders ``roots`` that holds version ``version_id``
    (its manifest names it), wait while a live process holds it (moving it into place),
    then move the one written by the build that committed the version (``built_at``,
    from the version's manifest) into place and remove any other. For readers of a
    version whose folder is not there; safe inside a transaction, as the process moving
    a committed version's folder holds no database lock."""
    for root in dict.fromkeys(r.resolve() for r in roots):
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            folder = root / entry.name
            if not _BUILD_STAGING.fullmatch(entry.name) \
                    or not entry.is_dir(follow_symlinks=False):
                continue
            staged = _Staged.read(folder)
            if staged is not None and staged.version_id == version_id:
                _settle(folder, lambda _vid: built_at, wait=True)


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
