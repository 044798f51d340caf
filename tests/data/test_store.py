"""Dataset versions in the store (SQLite and PostgreSQL): build, diff, lineage, export,
revocation and the right to be forgotten, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from data_factories import make_label
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.data import versions
from hilt.data.build import build_version
from hilt.data.export import export_version
from hilt.data.forget import forget
from hilt.data.spec import parse_spec
from hilt.errors import Forbidden, InputError, NotFound
from hilt.evals.files import SuiteItem
from hilt.evals.registry import heldout_texts, register_suite
from hilt.events.ingest import ingest_events
from hilt.review.records import FinalLabelRecord
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow

HELD = "How can I kill a Python process that hangs forever on my old laptop?"
SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}


def _event(i: int, subject: str, consent: list[str], prompt: str | None = None) -> dict:
    return {"id": f"ev{i}", "interaction": {"prompt": prompt or f"Question {i}: how do "
                                            f"plants in garden number {i} grow best?"},
            "responses": [{"text": f"Plants {i} need sun and water."},
                          {"text": f"No idea about {i}."}],
            "context": {"subject_id": subject, "consent": consent,
                        "metadata": {"slice": "garden"}}}


@pytest.fixture
def world(engine: Engine) -> dict[int, list[FinalLabelRecord]]:
    events = [_event(0, "alice", ["train"]), _event(1, "bob", ["train", "review"]),
              _event(2, "carol", ["review"]), _event(3, "bob", ["train"], prompt=HELD),
              _event(4, "dave", ["train"])]
    ingest_events(engine, events, actor="test")
    with transaction(engine) as session:
        register_suite(session, [SuiteItem("x1", HELD, "benign", "comply", 1)],
                       name="xstest", version="1", actor="test")
    pref = {"chosen": 0, "rejected": 1}
    return {1: [make_label(f"ev{i}", pref) for i in range(5)],
            2: [make_label(f"ev{i}", {"chosen": 1, "rejected": 0} if i == 1 else pref, n=2)
                for i in (0, 1, 2, 3)]}


def _build(engine: Engine, labels: list[FinalLabelRecord], tmp_path: Path, spec=SPEC):  # type: ignore[no-untyped-def]
    with transaction(engine) as session:
        return build_version(session, parse_spec(spec), actor="tester",
                             label_source=lambda _s, **_k: labels, directory=tmp_path / "ds")


def test_build_is_content_addressed_and_guarded(engine: Engine, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = _build(engine, world[1], tmp_path)
    assert first.created
    assert sorted(first.manifest["lineage"]["event_ids"]) == ["ev0", "ev1", "ev4"]
    steps = {s["step"]: s for s in first.manifest["steps"]}
    assert steps["consent"]["removed_ids"] == {"missing_consent:train": ["ev2"]}
    assert steps["decontaminate"]["reasons"] == {"heldout:xstest@1": 1}
    path = tmp_path / "ds" / first.version_id / "records.jsonl"
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == first.version_id
    again = _build(engine, world[1], tmp_path)
    assert (again.version_id, again.created) == (first.version_id, False)
    with transaction(engine) as session:
        lin = versions.lineage(session, first.version_id[:10])
        assert lin["review_ids"] == sorted(f"rv-ev{i}-{s}" for i in (0, 1, 4) for s in "ab")
        assert lin["rubrics"] == ["helpful@1"] and lin["policy_versions"] == ["policy-7"]
        facts = versions.dataset_facts(session, first.version_id)
        assert (facts.consented, facts.revoked, facts.contaminated) == (True, False, False)
        assert facts.suites_checked == ["xstest@1"]
        assert audit.verify(session).ok


def test_same_records_under_another_name_reuse_the_version_visibly(
        engine: Engine, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = _build(engine, world[1], tmp_path)
    other = _build(engine, world[1], tmp_path, spec={**SPEC, "name": "other"})
    assert (other.version_id, other.created, other.name) == (first.version_id, False, "prefs")
    assert other.steps == first.steps
    with transaction(engine) as session:
        assert [r.name for r in versions.list_versions(session)] == ["prefs"]
        # the name the reusing build asked for finds the version it got
        assert [r.id for r in versions.list_versions(session, "other")] == [first.version_id]
        assert versions.list_versions(session, "nothing") == []
        reused = audit.entries(session, action="dataset.build_reused")
    assert [(e.payload["name"], e.payload["recorded_name"]) for e in reused] == \
        [("other", "prefs")]


@pytest.mark.parametrize("spec", [
    {**SPEC, "sources": []},
    {**SPEC, "labels": {"since": "2030-01-01T00:00:00Z", "until": "2031-01-01T00:00:00Z"}},
    {"name": "cls", "kind": "classification"},  # only preference labels exist
])
def test_empty_selection_is_refused(engine: Engine, world, tmp_path: Path,  # type: ignore[no-untyped-def]
                                    spec) -> None:
    from hilt.errors import InputError

    _build(engine, world[1], tmp_path)
    with transaction(engine) as session, pytest.raises(InputError) as err:
        build_version(session, parse_spec(spec), actor="t", spec_file="empty.yaml",
                      label_source=lambda _s, **_k: world[1], directory=tmp_path / "ds")
    assert err.value.file == "empty.yaml" and "yields no records" in str(err.value)
    with transaction(engine) as session:
        assert [r.kind for r in versions.list_versions(session)] == ["preference"]


def test_diff_reports_added_removed_relabelled(engine: Engine, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a = _build(engine, world[1], tmp_path).version_id
    b = _build(engine, world[2], tmp_path).version_id
    with transaction(engine) as session:
        d = versions.diff(session, a, b)
    assert d["removed"] == ["pref:ev4:helpful/pref:0-1"]
    assert d["relabelled"] == ["pref:ev1:helpful/pref:0-1"]
    assert d["added"] == [] and d["unchanged"] == 1


def test_exports_in_trl_shapes(engine: Engine, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vid = _build(engine, world[1], tmp_path).version_id
    with transaction(engine) as session:
        out = export_version(session, vid, tmp_path / "jsonl", fmt="jsonl")
        export_version(session, vid, tmp_path / "pq", fmt="parquet", shape="conversational")
        export_version(session, vid, tmp_path / "hf", fmt="hf")
    rows = [json.loads(x) for x in (tmp_path / "jsonl" / "train.jsonl").read_text().splitlines()]
    assert out["counts"] == {"train": 3}
    assert set(rows[0]) == {"prompt", "chosen", "rejected"}
    import pyarrow.parquet as pq
    from datasets import load_from_disk

    conv = pq.read_table(tmp_path / "pq" / "train.parquet").to_pylist()
    assert conv[0]["chosen"][0]["role"] == "assistant"
    assert load_from_disk(str(tmp_path / "hf" / "hf"))["train"].num_rows == 3


def test_forget_end_to_end(engine: Engine, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vid = _build(engine, world[1], tmp_path).version_id
    with transaction(engine) as session:
        export_version(session, vid, tmp_path / "old", fmt="jsonl")
    result = forget(engine, "bob", actor="dpo")
    assert result.events_erased == 2 and result.versions_revoked == [vid]
    assert len(result.exports_flagged) == 1 and result.files_deleted
    assert (tmp_path / "old" / "REVOKED.json").exists()
    assert not (tmp_path / "ds" / vid / "records.jsonl").exists()
    with transaction(engine) as session:
        rows = session.execute(sa.select(EventRow).where(EventRow.subject_id == "bob")).scalars()
        for row in rows:
            assert row.payload == {"erased": True} and row.erased_at is not None
            assert row.content_hash  # kept
        with pytest.raises(Forbidden):
            versions.assert_usable(session, vid)
        with pytest.raises(Forbidden):
            export_version(session, vid, tmp_path / "new", fmt="jsonl")
        facts = versions.dataset_facts(session, vid)
        assert facts.revoked and not facts.consented and facts.contaminated is None
        assert audit.entries(session, action="subject.forget")
    with transaction(engine) as session:
        versions.assert_usable(session, vid, override_reason="legal hold review", actor="x")
        assert audit.entries(session, action="dataset.override_revoked")
    rebuilt = _build(engine, world[1], tmp_path)
    assert rebuilt.version_id != vid
    text = (tmp_path / "ds" / rebuilt.version_id / "records.jsonl").read_text()
    assert "Plants 1 need" not in text and "ev1" not in text
    steps = {s["step"]: s for s in rebuilt.manifest["steps"]}
    assert steps["consent"]["removed_ids"]["erased"] == ["ev1", "ev3"]


def test_cli_round_trip(db_url: str, world, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hilt.cli import app
    from hilt.errors import InputError

    # build_version looks the default up in its own module
    monkeypatch.setattr("hilt.data.build.default_label_source",
                        lambda: (lambda _s, **_k: world[1]))
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: prefs\nkind: preference\n")
    runner = CliRunner()
    base = ["--db", db_url]
    built = runner.invoke(app, ["dataset", "build", str(spec), *base,
                                "--data-dir", str(tmp_path / "ds")])
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["records"] == 3
    vid = json.loads(built.output)["version_id"]
    assert runner.invoke(app, ["dataset", "show", vid[:12], *base]).exit_code == 0
    assert vid in runner.invoke(app, ["dataset", "list", *base]).output
    spec.write_text("name: again\nkind: preference\n")
    again = runner.invoke(app, ["dataset", "build", str(spec), *base,
                                "--data-dir", str(tmp_path / "ds")])
    out = json.loads(again.stdout)
    assert (out["version_id"], out["reused"], out["name"], out["requested_name"]) == \
        (vid, True, "prefs", "again")
    assert "reused" in again.stderr and "'dataset list --name again' finds it" in again.stderr
    listed = runner.invoke(app, ["dataset", "list", "--name", "again", *base])
    assert [v["id"] for v in json.loads(listed.stdout)] == [vid]
    spec.write_text("name: none\nkind: preference\nsources: []\n")
    empty = runner.invoke(app, ["dataset", "build", str(spec), *base])
    assert isinstance(empty.exception, InputError)  # main() prints it and exits 2
    assert empty.exception.file == str(spec)
    revoked = runner.invoke(app, ["dataset", "revoke", vid, "--reason", "bad batch", *base])
    assert json.loads(revoked.output)["revoked"] is True
    refused = runner.invoke(app, ["dataset", "export", vid, "--out", str(tmp_path / "e"), *base])
    assert refused.exit_code != 0
    assert "--override-revoked REASON" in str(refused.exception)  # names the way out
    ok = runner.invoke(app, ["dataset", "export", vid, "--out", str(tmp_path / "e"),
                             "--override-revoked", "audit sample", *base])
    assert ok.exit_code == 0, ok.output
    gone = runner.invoke(app, ["forget", "--subject", "alice", *base])
    assert json.loads(gone.output)["events_erased"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: preference\ndedup:\n  num_perm: 3\n")
    failed = runner.invoke(app, ["dataset", "build", str(bad), *base])
    assert failed.exit_code != 0


def test_real_heldout_registry_feeds_decontamination(engine: Engine, world) -> None:  # type: ignore[no-untyped-def]
    with transaction(engine) as session:
        assert list(heldout_texts(session)) == [("xstest@1", "x1", HELD)]


def test_build_refuses_incompatible_rubric_versions(engine: Engine, world, tmp_path: Path  # type: ignore[no-untyped-def]
                                                    ) -> None:
    from hilt.errors import InputError

    pref = {"chosen": 0, "rejected": 1}
    mixed = [make_label("ev0", pref, version=1), make_label("ev1", pref, version=2, n=1)]

    def lookup(status: str, mixable: bool):  # type: ignore[no-untyped-def]
        return lambda rubric, old, new: {"status": status, "mixable": mixable,
                                         "reason": f"bridge {rubric} {old}->{new}"}

    with transaction(engine) as session, pytest.raises(InputError) as err:
        build_version(session, parse_spec(SPEC), actor="t", label_source=lambda _s, **_k: mixed,
                      directory=tmp_path / "ds", compat_lookup=lookup("incompatible", False))
    assert "helpful@1 with helpful@2" in str(err.value)
    assert err.value.field == "labels.rubric_versions"
    # The drift stage's own lookup: never bridged is allowed and listed as such.
    with transaction(engine) as session:
        real = build_version(session, parse_spec(SPEC), actor="t",
                             label_source=lambda _s, **_k: mixed, directory=tmp_path / "ds")
    mixing = real.manifest["notes"]["rubric_mixing"]
    assert mixing == {"rubric_versions": ["helpful@1", "helpful@2"], "checked": True,
                      "unbridged": ["helpful@1->@2"]}
    with transaction(engine) as session:  # a recorded mapping makes them mixable
        again = build_version(session, parse_spec(SPEC), actor="t",
                              label_source=lambda _s, **_k: mixed, directory=tmp_path / "ds",
                              compat_lookup=lookup("incompatible", True))
    assert again.version_id == real.version_id


def test_a_short_version_prefix_says_so(engine: Engine, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = _build(engine, world[1], tmp_path)
    with transaction(engine) as session:
        with pytest.raises(InputError, match="too short"):
            versions.get_version(session, first.version_id[:5])
        # "%" and "_" are characters of the prefix, not wildcards
        with pytest.raises(NotFound):
            versions.get_version(session, first.version_id[:7] + "%")
        assert versions.get_version(session, first.version_id[:8]).id == first.version_id
