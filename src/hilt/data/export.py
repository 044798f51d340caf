"""Exports in the shapes TRL reads, as JSON Lines, Parquet or a ``datasets`` folder.

Shapes (the column layouts of TRL's dataset formats guide):

- preference ``prompt_chosen_rejected``: ``{"prompt", "chosen", "rejected"}`` strings
  (RewardTrainer, DPOTrainer); ``conversational``: the prompt as a message list and
  ``chosen`` / ``rejected`` as one-message assistant lists.
- sft ``prompt_completion``: ``{"prompt", "completion"}`` (SFTTrainer computes the loss
  on the completion only); ``messages``: ``{"messages": [..., assistant]}``.
- classification ``text_label``: ``{"text", "label"}``.

Each split goes to its own file (``train`` and ``validation``); ``export.json`` names the
version, export id, shape and time. Exporting a revoked version needs an override
reason, which is audited (:func:`hilt.data.versions.assert_usable`).

The folder appears only with its row: the files are written to a staging folder beside
``out`` (``.<name>.tmp-<export id hex>``, :func:`staging_path`) and moved into place once
the transaction that records the export has committed. A rollback removes the staging
folder. A process killed before its commit leaves a staging folder that the next export
to the same ``out`` removes (:func:`hilt.data.build.sweep_stale`); one killed between
the commit and the move leaves its committed export in the staging folder, where an
erasure finds it (:class:`hilt.data.versions.ExportFolder`), until that next export.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from hilt.data.build import StagingFolder, sweep_stale
from hilt.data.erasure_lock import lock_for_reading
from hilt.errors import InputError
from hilt.staging import resolved_output
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.datasets import DatasetExportRow

log = logging.getLogger(__name__)
_PLACING = "hilt.data.export.placing"
FORMATS = ("jsonl", "parquet", "hf")
SHAPES = {
    "preference": ("prompt_chosen_rejected", "conversational"),
    "sft": ("prompt_completion", "messages"),
    "classification": ("text_label",),
}


def shape_record(record: dict[str, Any], shape: str) -> dict[str, Any]:
    if shape == "prompt_chosen_rejected":
        return {"prompt": record["prompt"], "chosen": record["chosen"],
                "rejected": record["rejected"]}
    if shape == "conversational":
        return {"prompt": record["messages"],
                "chosen": [{"role": "assistant", "content": record["chosen"]}],
                "rejected": [{"role": "assistant", "content": record["rejected"]}]}
    if shape == "prompt_completion":
        return {"prompt": record["prompt"], "completion": record["completion"]}
    if shape == "messages":
        return {"messages": [*record["messages"],
                             {"role": "assistant", "content": record["completion"]}]}
    if shape == "text_label":
        return {"text": record["text"], "label": record["label"]}
    raise InputError(f"unknown shape {shape!r}", field="shape")


def staging_path(out: Path, export_id: str) -> Path:
    """Where the export ``export_id`` to ``out`` is written before it is moved there."""
    return out.with_name(f".{out.name}.tmp-{export_id.removeprefix('dx_')}")


def _staging_of(out: Path) -> re.Pattern[str]:
    """Staging folders of exports to ``out`` (and of exports made before the export id
    named them, which had 8 hex digits)."""
    return re.compile(rf"\.{re.escape(out.name)}\.tmp-(?:[0-9a-f]{{8}}|[0-9a-f]{{24}})")


def export_version(session: Session, version_id: str, out: str | Path, *,
                   fmt: str = "jsonl", shape: str | None = None, actor: str = "cli",
                   override_reason: str | None = None) -> dict[str, Any]:
    """Write the version's records for ``out`` and record the export, in the caller's
    transaction; returns what was written.

    The folder is moved to ``out`` once that transaction commits: the result's
    ``placed`` turns true then. When the move fails (``out`` was created meanwhile)
    ``placed`` stays false, ``error`` says why and ``staging`` where the files are.
    """
    from hilt.data.versions import assert_usable, read_records, run_after_commit

    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; one of {list(FORMATS)}", field="format")
    # Held to commit: an erasure then either revoked the version before this reads it,
    # or waits for this export's row and flags it.
    lock_for_reading(session)
    row = assert_usable(session, version_id, override_reason=override_reason, actor=actor,
                        purpose="export")
    shapes = SHAPES[row.kind]
    shape = shape or shapes[0]
    if shape not in shapes:
        raise InputError(f"shape {shape!r} does not fit {row.kind} data; one of "
                         f"{list(shapes)}", field="shape")
    out = Path(out)
    # A symbolic link is there even when what it points at is not (a dangling link, a
    # loop): the export would land somewhere else, or not resolve at all.
    if out.is_symlink():
        raise InputError(f"{out} already exists (a symbolic link)", field="out")
    if out.exists():
        raise InputError(f"{out} already exists", field="out")
    target = resolved_output(out, "out")
    # Exports this transaction will move into place when it commits.
    placing: set[Path] = session.info.setdefault(_PLACING, set())
    if target in placing:
        raise InputError(f"{out} already exists", field="out")
    splits: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in read_records(row):
        splits[record["split"]].append(shape_record(record, shape))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder {target.parent} for {out}: "
                         f"{exc.strerror or exc} ({exc.filename})", field="out") from None
    stale = sweep_stale(target.parent, _staging_of(target))
    export_id = "dx_" + uuid.uuid4().hex[:24]
    staging = StagingFolder(staging_path(target, export_id))
    try:
        files = _write(staging.path, splits, fmt)
        meta = {"version_id": row.id, "export_id": export_id, "name": row.name,
                "kind": row.kind, "shape": shape, "format": fmt,
                "counts": {k: len(v) for k, v in sorted(splits.items())},
                "exported_at": utcnow().isoformat(), "exported_by": actor,
                "override_reason": override_reason if row.revoked_at else None}
        (staging.path / "export.json").write_text(json.dumps(meta, indent=1),
                                                  encoding="utf-8")
        if out.exists():
            raise InputError(f"{out} already exists", field="out")
        session.add(DatasetExportRow(id=export_id, version_id=row.id, format=fmt,
                                     shape=shape, path=str(target), created_by=actor,
                                     override_reason=meta["override_reason"]))
        audit.append(session, actor=actor, action="dataset.export",
                     entity_type="dataset_version", entity_id=row.id,
                     payload={"export_id": export_id, "format": fmt, "shape": shape,
                              "counts": meta["counts"]})
    except BaseException:
        staging.close()
        raise
    result = {**meta, "path": str(out), "files": files, "placed": False,
              **({"stale_removed": stale} if stale else {})}
    placing.add(target)

    def place() -> None:
        placing.discard(target)
        _place(staging, target, result)

    def discard() -> None:
        placing.discard(target)
        staging.close()

    run_after_commit(session, place, on_rollback=discard)
    return result


def _place(staging: StagingFolder, target: Path, result: dict[str, Any]) -> None:
    """After the commit: move the export into place. A rename would replace an empty
    folder created at ``target`` meanwhile, so an existing one is refused first; the
    export then stays, committed, in its staging folder."""
    try:
        if target.exists() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, "already exists", str(target))
        staging.path.rename(target)
    except OSError as exc:
        log.warning("export %s could not be moved to %s: %s", result["export_id"],
                    target, exc)
        result.update(error=f"the export is recorded but could not be moved into place "
                            f"({type(exc).__name__}: {exc.strerror or exc}); its files "
                            f"are in {staging.path}",
                      staging=str(staging.path))
        staging.close(keep=True)
        return
    result["placed"] = True
    staging.close()


def _write(directory: Path, splits: dict[str, list[dict[str, Any]]], fmt: str) -> list[str]:
    names = sorted(splits) or ["train"]
    if fmt == "jsonl":
        for name in names:
            with open(directory / f"{name}.jsonl", "w", encoding="utf-8") as fh:
                for rec in splits.get(name, []):
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return [f"{n}.jsonl" for n in names]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        for name in names:
            pq.write_table(pa.Table.from_pylist(splits.get(name, [])),
                           directory / f"{name}.parquet")
        return [f"{n}.parquet" for n in names]
    from datasets import Dataset, DatasetDict

    DatasetDict({n: Dataset.from_list(splits.get(n, [])) for n in names}).save_to_disk(
        str(directory / "hf"))
    return ["hf"]
