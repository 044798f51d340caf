"""Run manifests: what a training run used, so that it can be re-run and checked.

A manifest names the kind of model, the base model, the data (path and content
hash, number of records), the full config, the seed, the code version (hilt's version
and the git commit when the code runs from a checkout), library versions, wall time
and metrics. Re-running with the same manifest's config, seed and data reproduces the
metrics within the tolerance stated in ``docs/train.md``.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from hilt.canonical import canonical_json, content_hash, finite_json
from hilt.errors import InputError

MANIFEST_FILE = "manifest.json"
_LIBRARIES = ("torch", "transformers", "trl", "peft", "scikit-learn", "sentence-transformers",
              "numpy")


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
        "wall_seconds": wall_seconds, "metrics": metrics or {},
    }
    if extra:
        manifest.update(extra)
    return manifest


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
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_FILE
    path.write_text(dump_json(json.loads(canonical_json(json_safe(manifest)))))
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / MANIFEST_FILE).read_text())
    return data


def check_out_folder(out: Path, kind: str, option: str = "--out") -> None:
    """Refuse an output folder whose contents a run would destroy.

    A finished run replaces ``out`` as a whole, so ``out`` must be absent, empty or a
    model folder of the same kind (its ``manifest.json`` says so); the current folder
    and its ancestors are refused outright, whatever they hold.
    """
    where = str(out)
    resolved = out.resolve()
    here = Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise InputError("is the current folder or one of its parents; name a new or "
                         "model folder", file=where, field=option)
    if out.is_symlink():
        raise InputError("is a symbolic link; name the folder itself", file=where,
                         field=option)
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError("exists and is not a folder", file=where, field=option)
    if not any(out.iterdir()):
        return
    found = None
    with suppress(OSError, ValueError, AttributeError):  # unreadable: no model folder
        found = read_manifest(out).get("kind")
    if found != kind:
        what = (f"holds a {found} model" if isinstance(found, str)
                else "is not empty and holds no hilt model manifest")
        raise InputError(f"{what}; a {kind} run replaces the whole folder: name a new, "
                         f"empty or {kind} model folder", file=where, field=option)


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


@contextmanager
def staged_folder(out: Path, prefix: str, kind: str,
                  publisher: Publisher | None = None) -> Iterator[Path]:
    """A temporary folder next to ``out`` that replaces ``out`` when the block ends
    normally: a failed run leaves nothing half-written and the old model in place.
    ``out`` is checked first (:func:`check_out_folder`).

    The last checks, the replacement and ``publisher.record`` happen under
    :func:`folder_lock`, so two runs finishing at once cannot both take the folder:
    the second sees what the first did (e.g. a registered version) and refuses.
    """
    check_out_folder(out, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    try:
        yield work
        with folder_lock(out):
            # checked again: the folder may have changed during a long run
            check_out_folder(out, kind)
            if publisher is not None:
                publisher.check(out)
            if out.exists():
                shutil.rmtree(out)
            work.rename(out)
            if publisher is not None:
                publisher.record(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
