"""The checks of a training run's ``--out`` folder, made before any work.

A finished run replaces ``--out`` as a whole (:func:`hilt.train.manifest.staged_folder`),
so the folder must be new, empty or a model folder of the same kind; and it must not lie
inside a model folder or a dataset version's folder, whose files a model written there
would change (and which a run into that model folder would replace, the new model with
it).
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import suppress
from pathlib import Path
from typing import Any

from hilt.errors import InputError
from hilt.staging import resolved_output

MANIFEST_FILE = "manifest.json"


def check_out_parent(out: Path, option: str = "--out") -> None:
    """Refuse an output path whose folder cannot be made or written in: the nearest
    existing folder above ``out`` must be a folder (not a file) that takes a new entry.
    Checked before any work, so the error names ``out`` and not a staging folder
    beside it. A folder is made and removed at once to find out: permission bits alone
    do not tell (a read-only or special file system, a process that ignores them)."""
    where = str(out)
    place = out.parent
    while not os.path.lexists(place) and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise InputError(f"the output folder cannot be made: {place} is an existing file",
                         file=where, field=option)
    probe = place / f".hilt-write-check-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.mkdir(probe, 0o700)
    except OSError as exc:
        raise InputError(f"the output folder cannot be made: cannot write in {place} "
                         f"({exc.strerror or exc})", file=where, field=option) from None
    with suppress(OSError):
        os.rmdir(probe)


def _manifest_in(folder: Path) -> dict[str, Any] | None:
    """The folder's ``manifest.json`` as an object; None when there is none or it cannot
    be read."""
    with suppress(OSError, ValueError):  # unreadable: no manifest
        if (folder / MANIFEST_FILE).is_file():
            found = json.loads((folder / MANIFEST_FILE).read_text())
            return found if isinstance(found, dict) else None
    return None


def _is_dataset_version(manifest: dict[str, Any]) -> bool:
    # the data stage writes a manifest.json too, whose kind may be "sft": its version
    # id tells it from a model's
    return "version_id" in manifest


def enclosing_artifact(path: Path) -> str | None:
    """What the nearest folder above ``path`` (absolute and resolved) that is a model
    folder or a dataset version's folder is, in words (``the classifier model folder
    /m``); None when there is none."""
    from hilt.train.registry import KINDS

    for folder in path.parents:
        manifest = _manifest_in(folder)
        if manifest is None:
            continue
        if _is_dataset_version(manifest):
            return f"the folder of dataset version {folder.name}"
        found = manifest.get("kind")
        if isinstance(found, str) and found in KINDS:
            return f"the {found} model folder {folder}"
    return None


def check_out_folder(out: Path, kind: str, option: str = "--out") -> None:
    """Refuse an output folder whose contents a run would destroy.

    A finished run replaces ``out`` as a whole, so ``out`` must be absent, empty or a
    model folder of the same kind (its ``manifest.json`` says so); the current folder
    and its ancestors are refused outright, whatever they hold. A model folder that a
    run killed while it replaced it left missing is put back first
    (:func:`restore_replaced`), so that it is checked, and kept, like any other.
    """
    from hilt.train.manifest import STAGING_PREFIXES, restore_replaced

    restore_replaced(out, STAGING_PREFIXES)
    where = str(out)
    resolved = resolved_output(out, option)
    here = Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise InputError("is the current folder or one of its parents; name a new or "
                         "model folder", file=where, field=option)
    if out.is_symlink():
        raise InputError("is a symbolic link; name the folder itself", file=where,
                         field=option)
    enclosing = enclosing_artifact(resolved)
    if enclosing is not None:
        # a model written there changes the files the enclosing one is known by, and a
        # run into the enclosing model folder replaces it, the new model with it
        raise InputError(f"lies inside {enclosing}, whose files it would change; name a "
                         "folder outside it", file=where, field=option)
    check_out_parent(out, option)
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError("exists and is not a folder", file=where, field=option)
    if not any(out.iterdir()):
        return
    manifest = _manifest_in(out)
    if manifest is not None and _is_dataset_version(manifest):
        raise InputError("is the folder of a dataset version, which is never changed; "
                         f"name a new, empty or {kind} model folder", file=where,
                         field=option)
    found = manifest.get("kind") if manifest is not None else None
    if found != kind:
        what = (f"holds a {found} model" if isinstance(found, str)
                else "is not empty and holds no hilt model manifest")
        raise InputError(f"{what}; a {kind} run replaces the whole folder: name a new, "
                         f"empty or {kind} model folder", file=where, field=option)
