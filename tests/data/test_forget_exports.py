"""Forgetting a subject deletes the split files of the exports hilt wrote from the
revoked versions, wherever those folders still are on this machine; a REVOKED.json
marker stays, and exports of other versions are untouched."""

from __future__ import annotations

import json
from pathlib import Path

from data_factories import garden_event, make_label
from sqlalchemy.engine import Engine

from hilt.canonical import sha256_hex
from hilt.data import versions
from hilt.data.build import build_version
from hilt.data.export import export_version
from hilt.data.forget import forget
from hilt.data.spec import parse_spec
from hilt.events.ingest import ingest_events
from hilt.store.db import transaction

MARK = "quokkaberry"  # only in the forgotten subject's texts
SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}
PREF = {"chosen": 0, "rejected": 1}


def _event(i: int, subject: str) -> dict:
    return garden_event(i, subject, marked="bob", mark=MARK)


def _build(engine: Engine, event_ids: list[int], tmp_path: Path, name: str) -> str:
    labels = [make_label(f"ev{i}", PREF) for i in event_ids]
    with transaction(engine) as session:
        return build_version(session, parse_spec({**SPEC, "name": name}), actor="tester",
                             label_source=lambda _s, **_k: labels,
                             directory=tmp_path / "ds").version_id


def _export(engine: Engine, vid: str, out: Path, fmt: str) -> None:
    with transaction(engine) as session:
        export_version(session, vid, out, fmt=fmt, override_reason="keep a copy")


def _holding(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and MARK.encode() in p.read_bytes())


def test_forget_deletes_split_files_of_local_exports(engine: Engine, tmp_path: Path) -> None:
    ingest_events(engine, [_event(0, "bob"), _event(1, "amy"), _event(2, "amy")],
                  actor="test")
    with_bob = _build(engine, [0, 1, 2], tmp_path, "all")
    earlier = _build(engine, [0, 1], tmp_path, "earlier")
    without_bob = _build(engine, [1, 2], tmp_path, "others")
    out = tmp_path / "exports"
    for fmt in ("jsonl", "parquet", "hf"):
        _export(engine, with_bob, out / fmt, fmt)
    _export(engine, earlier, out / "earlier", "jsonl")
    _export(engine, without_bob, out / "others", "jsonl")
    # A version revoked before keeps exports with the text: they go too.
    with transaction(engine) as session:
        versions.revoke(session, earlier, reason="bad batch", actor="lead")
    # An export folder since replaced by something else is not touched.
    _export(engine, with_bob, out / "replaced", "jsonl")
    (out / "replaced" / "train.jsonl").write_text(f"{MARK} kept by its owner\n")
    (out / "replaced" / "export.json").write_text(json.dumps({"version_id": "other"}))
    assert {Path(p).parts[0] for p in _holding(out)} == {
        "jsonl", "parquet", "hf", "earlier", "replaced"}

    result = forget(engine, "bob", actor="dpo")

    assert sorted(result.versions_revoked) == [with_bob]
    deleted = {str(Path(p).relative_to(out)) for p in result.files_deleted
               if Path(p).is_relative_to(out)}
    assert deleted == {"jsonl/train.jsonl", "parquet/train.parquet", "hf/hf",
                       "earlier/train.jsonl"}
    assert _holding(out) == ["replaced/train.jsonl"]
    for folder in ("jsonl", "parquet", "hf", "earlier"):
        assert sorted(p.name for p in (out / folder).iterdir()) == [
            "REVOKED.json", "export.json"]
        marker = json.loads((out / folder / "REVOKED.json").read_text())
        assert marker["subject_sha256"] == sha256_hex("bob")
        assert "records_deleted_at" in marker
    assert json.loads((out / "jsonl" / "REVOKED.json").read_text())[
        "version_id"] == with_bob  # the flag's marker, completed
    assert (out / "others" / "train.jsonl").read_text().count("\n") == 2
    assert not (out / "others" / "REVOKED.json").exists()
    assert _holding(tmp_path / "ds") == []  # the versions' records files went too
