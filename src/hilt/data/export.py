"""Exports in the shapes TRL reads, as JSON Lines, Parquet or a ``datasets`` folder.

Shapes (the column layouts of TRL's dataset formats guide):

- preference ``prompt_chosen_rejected``: ``{"prompt", "chosen", "rejected"}`` strings
  (RewardTrainer, DPOTrainer); ``conversational``: the prompt as a message list and
  ``chosen`` / ``rejected`` as one-message assistant lists.
- sft ``prompt_completion``: ``{"prompt", "completion"}`` (SFTTrainer computes the loss
  on the completion only); ``messages``: ``{"messages": [..., assistant]}``.
- classification ``text_label``: ``{"text", "label"}``.

Each split goes to its own file (``train`` and ``validation``); ``export.json`` names the
version, shape and time. Exporting a revoked version needs an override reason, which is
audited (:func:`hilt.data.versions.assert_usable`).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from hilt.data.erasure_lock import lock_for_reading
from hilt.errors import InputError
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.datasets import DatasetExportRow

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


def export_version(session: Session, version_id: str, out: str | Path, *,
                   fmt: str = "jsonl", shape: str | None = None, actor: str = "cli",
                   override_reason: str | None = None) -> dict[str, Any]:
    """Write the version's records under ``out``; returns what was written."""
    from hilt.data.versions import assert_usable, read_records

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
    splits: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in read_records(row):
        splits[record["split"]].append(shape_record(record, shape))
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        files = _write(tmp, splits, fmt)
        meta = {"version_id": row.id, "name": row.name, "kind": row.kind, "shape": shape,
                "format": fmt, "counts": {k: len(v) for k, v in sorted(splits.items())},
                "exported_at": utcnow().isoformat(), "exported_by": actor,
                "override_reason": override_reason if row.revoked_at else None}
        (tmp / "export.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if out.exists():
            raise InputError(f"{out} already exists", field="out")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    export_id = "dx_" + uuid.uuid4().hex[:24]
    session.add(DatasetExportRow(id=export_id, version_id=row.id, format=fmt, shape=shape,
                                 path=str(out.resolve()), created_by=actor,
                                 override_reason=meta["override_reason"]))
    audit.append(session, actor=actor, action="dataset.export", entity_type="dataset_version",
                 entity_id=row.id, payload={"export_id": export_id, "format": fmt,
                                            "shape": shape, "counts": meta["counts"]})
    return {**meta, "export_id": export_id, "path": str(out), "files": files}


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
