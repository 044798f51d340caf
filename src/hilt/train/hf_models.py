"""Hugging Face models named by ``--model``: checked, loaded and recorded.

A model is a local folder (with its ``config.json``) or a Hugging Face hub name. One
that cannot be loaded is an :class:`hilt.errors.InputError` naming ``--model`` and
saying which case it is: a folder that holds no model (or no tokenizer), or a name
found neither as a folder nor on the hub (offline: not in the local cache), instead of
the library's traceback. The manifest records where the model was read from
(:func:`model_source`): the folder and, for a hub model, the revision of its cached
snapshot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hilt.errors import InputError

OPTION = "--model"
_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """Whether the hub is off (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~"))


def _cached_file(name: str, filename: str = "config.json") -> str | None:
    """The file of hub model ``name`` in the local cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, filename)
    except Exception:  # an invalid repository id, an unreadable cache: not cached
        return None
    return found if isinstance(found, str) else None


def check_model_source(name: str, option: str = OPTION) -> None:
    """Refuse, before any data is read, a ``--model`` that cannot be a model: a file, a
    folder without ``config.json``, a path that does not exist, or (offline) a hub name
    that is not in the local cache. A hub name is otherwise left to the loader."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError("not a model folder: it is a file", file=name, field=option)
        if not (path / "config.json").is_file():
            raise InputError("not a model folder (no config.json in it)", file=name,
                             field=option)
        return
    if _looks_like_path(name):
        raise InputError("not found: no such folder", file=name, field=option)
    if offline() and _cached_file(name) is None:
        raise InputError("not found offline: no folder of that name, and no copy of a hub "
                         "model of that name in the local Hugging Face cache (the hub is "
                         "off: HF_HUB_OFFLINE)", file=name, field=option)


def load_error(name: str, exc: BaseException, option: str = OPTION) -> InputError:
    """The one-line error for a model that failed to load, saying which case it is."""
    lines = str(exc).strip().splitlines()
    detail = lines[0].strip() if lines else type(exc).__name__
    if Path(name).expanduser().is_dir():
        return InputError(f"not a model folder: it cannot be loaded ({detail})", file=name,
                          field=option)
    where = ("offline, and not in the local Hugging Face cache" if offline()
             else "no folder of that name, and the hub has no such model or cannot be "
                  "reached")
    return InputError(f"not found ({where}): {detail}", file=name, field=option)


# What transformers raises for a missing or broken model: OSError for files it cannot
# find or fetch, ValueError for a config or tokenizer it cannot make sense of.
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, ImportError)


def load_pretrained(loader: Any, name: str, option: str = OPTION, **kwargs: Any) -> Any:
    """``loader.from_pretrained(name, **kwargs)``; a failure is :func:`load_error`."""
    try:
        return loader.from_pretrained(name, **kwargs)
    except LOAD_ERRORS as exc:
        raise load_error(name, exc, option) from None


def model_source(name: str) -> dict[str, Any]:
    """Where ``--model`` was read from: ``name``, the absolute ``folder`` and, for a hub
    model read from the local cache, the ``revision`` (commit) of its snapshot; folder
    and revision are None when they cannot be told."""
    path = Path(name).expanduser()
    if path.is_dir():
        return {"name": name, "folder": str(path.resolve()), "revision": None}
    cached = _cached_file(name)
    if cached is None:
        return {"name": name, "folder": None, "revision": None}
    snapshot = Path(cached).parent
    revision = snapshot.name if snapshot.parent.name == "snapshots" else None
    return {"name": name, "folder": str(snapshot), "revision": revision}
