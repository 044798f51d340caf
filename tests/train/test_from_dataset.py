"""Training from data-selection dataset versions (SQLite and PostgreSQL): the version's
own split, revoked versions refused unless overridden (audited), lineage back to the
dataset."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.data import versions
from hilt.data.build import build_version
from hilt.data.spec import parse_spec
from hilt.errors import Forbidden, InputError
from hilt.events.ingest import ingest_events
from hilt.quality.drift.lineage import model_lineage
from hilt.review.records import FinalLabelRecord
from hilt.store import audit
from hilt.store.db import transaction
from hilt.train.classifier import load_classifier
from hilt.train.from_dataset import (
    classification_rows,
    hh_prompt,
    load_dataset_input,
    preference_pairs,
    sft_messages,
)
from tests.data.data_factories import make_label
from tests.ops.climain import run_hilt
from tests.train.conftest import TOPICS

N_EVENTS = 12
SAFE = ["That could hurt people, so I'd rather not help with {t}.",
        "I won't explain how to {t}; is something wrong?",
        "Let's not {t}. I can point you to support instead."]
HARMFUL = ["Sure, to {t} first get the tools, then act at night.",
           "Easy: here is a step-by-step way to {t}.",
           "Great idea, the quickest way to {t} is this one."]


def _events() -> list[dict[str, Any]]:
    out = []
    for i in range(N_EVENTS):
        topic = TOPICS[i % len(TOPICS)]
        out.append({"id": f"ev{i}",
                    "interaction": {"prompt": f"How would someone {topic}, case {i}?"},
                    "responses": [{"text": SAFE[i % 3].format(t=topic)},
                                  {"text": HARMFUL[i % 3].format(t=topic)}],
                    "context": {"subject_id": f"s{i}", "consent": ["train"],
                                "metadata": {"slice": "harm" if i % 2 else "misc"}}})
    return out


def _build(engine: Engine, kind: str, labels: list[FinalLabelRecord], tmp_path: Path,
           **spec_extra: Any) -> str:
    spec = {"name": f"{kind}-set", "kind": kind, "dedup": {"near": False},
            "split": {"validation_fraction": 0.34, "group_by": "event"}, **spec_extra}
    with transaction(engine) as session:
        result = build_version(session, parse_spec(spec), actor="tester",
                               label_source=lambda _s, **_k: labels,
                               directory=tmp_path / "datasets")
    return result.version_id


@pytest.fixture
def preference_version(engine: Engine, tmp_path: Path) -> str:
    ingest_events(engine, _events(), actor="test")
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(N_EVENTS)]
    return _build(engine, "preference", labels, tmp_path)


def test_records_map_to_trainer_inputs(engine: Engine, tmp_path: Path,
                                       preference_version: str) -> None:
    cls_labels = [make_label(f"ev{i}", "refuse" if i % 2 else "comply", kind="single_choice",
                             question="stance") for i in range(N_EVENTS)]
    sft_labels = [make_label(f"ev{i}", f"A careful answer number {i}.", kind="rewrite",
                             question="rewrite") for i in range(N_EVENTS)]
    cls_version = _build(engine, "classification", cls_labels, tmp_path,
                         classification={"text": "response"})
    sft_version = _build(engine, "sft", sft_labels, tmp_path)
    with transaction(engine) as session:
        pref = load_dataset_input(session, preference_version[:12],
                                  expected_kind="preference")
        assert pref.version_id == preference_version
        assert len(pref.train) + len(pref.validation) == N_EVENTS
        assert pref.train and pref.validation  # the version's own split is kept
        pairs = preference_pairs(pref.train, pref.version_id)
        assert pairs[0].prompt.startswith("\n\nHuman: How would someone")
        assert pairs[0].prompt.endswith("\n\nAssistant:")
        assert pairs[0].chosen.startswith(("That could", "I won't", "Let's not"))
        assert {p.slice for p in pairs} <= {"harm", "misc"}
        cls = load_dataset_input(session, cls_version, expected_kind="classification")
        texts, labels = classification_rows(cls.train, cls.version_id)
        assert set(labels) == {"refuse", "comply"} and texts[0] in \
            [e["responses"][0]["text"] for e in _events()]
        sft = load_dataset_input(session, sft_version, expected_kind="sft")
        msgs = sft_messages(sft.train, sft.version_id)
        assert msgs[0]["messages"][-1]["role"] == "assistant"
        assert msgs[0]["messages"][-1]["content"].startswith("A careful answer")
        with pytest.raises(InputError, match="holds sft data"):
            load_dataset_input(session, sft_version, expected_kind="preference")


def test_hh_prompt_renders_turns() -> None:
    text = hh_prompt([{"role": "system", "content": "Be kind."},
                      {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"},
                      {"role": "user", "content": "Help?"}])
    assert text == "\n\nHuman: Be kind.\nHi\n\nAssistant: Hello\n\nHuman: Help?\n\nAssistant:"


def _hilt(args: list[str]) -> subprocess.CompletedProcess[str]:
    return run_hilt(args)


@pytest.mark.slow
def test_train_reward_from_version_lineage_and_revocation(
        db_url: str, engine: Engine, tmp_path: Path, preference_version: str) -> None:
    base = ["--db", db_url, "--epochs", "1", "--trainable-layers", "0", "--max-length", "32",
            "--no-progress"]
    result = CliRunner().invoke(app, ["train", "reward", "--dataset", preference_version[:10],
                                      "--out", str(tmp_path / "rm"), *base])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    with transaction(engine) as session:
        pref = load_dataset_input(session, preference_version, expected_kind="preference")
    # evaluated on the version's validation split, trained on its train split
    assert manifest["metrics"]["n"] == len(pref.validation)
    assert manifest["metrics"]["train_pairs"] == len(pref.train)
    assert manifest["data"]["hash"] == preference_version
    assert manifest["dataset"]["splits"]["validation"] == len(pref.validation)
    with transaction(engine) as session:
        tree = model_lineage(session, manifest["model_version"])
    assert not tree["missing"]
    assert tree["datasets"][0]["dataset"]["id"] == preference_version
    assert tree["datasets"][0]["counts"]["events"] == N_EVENTS
    assert tree["datasets"][0]["rubric_versions"][0]["rubric"] == "helpful@1"

    with transaction(engine) as session:
        versions.revoke(session, preference_version, reason="consent withdrawn", actor="dpo")
        with pytest.raises(Forbidden):
            load_dataset_input(session, preference_version, expected_kind="preference")
    refused = _hilt(["train", "reward", "--dataset", preference_version,
                     "--out", str(tmp_path / "rm2"), *base])
    assert refused.returncode == 2, refused.stderr
    assert "revoked" in refused.stderr and not (tmp_path / "rm2").exists()
    # the records are still on disk (revoke keeps them), so an audited override trains
    allowed = CliRunner().invoke(app, ["train", "reward", "--dataset", preference_version,
                                       "--override-revoked", "reproduce incident 7",
                                       "--actor", "alice", "--out", str(tmp_path / "rm3"),
                                       *base])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["dataset"]["override_reason"] == "reproduce incident 7"
    with transaction(engine) as session:
        overrides = audit.entries(session, action="dataset.override_revoked")
        assert [(e.actor, e.payload["purpose"]) for e in overrides] == [("alice", "train")]
        assert audit.verify(session).ok


@pytest.mark.slow
def test_train_classifier_and_sft_from_versions(db_url: str, engine: Engine,
                                                tmp_path: Path) -> None:
    ingest_events(engine, _events(), actor="test")
    cls_labels = [make_label(f"ev{i}", "refuse" if i % 2 else "comply", kind="single_choice",
                             question="stance") for i in range(N_EVENTS)]
    cls_version = _build(engine, "classification", cls_labels, tmp_path,
                         classification={"text": "response"})
    sft_labels = [make_label(f"ev{i}", f"A careful answer number {i}.", kind="rewrite",
                             question="rewrite") for i in range(N_EVENTS)]
    sft_version = _build(engine, "sft", sft_labels, tmp_path)
    runner = CliRunner()
    clf = runner.invoke(app, ["train", "classifier", "--dataset", cls_version, "--db", db_url,
                              "--out", str(tmp_path / "clf"), "--head", "linear"])
    assert clf.exit_code == 0, clf.output
    manifest = json.loads(clf.stdout)
    assert manifest["data"]["hash"] == cls_version
    held = manifest["metrics"]["held_out"]
    assert held["n"] == manifest["dataset"]["splits"]["validation"] > 0
    mixed = runner.invoke(app, ["train", "classifier", "--dataset", cls_version,
                                "--data", str(tmp_path / "x.jsonl"), "--db", db_url,
                                "--out", str(tmp_path / "clf2")])
    assert isinstance(mixed.exception, InputError)
    sft = runner.invoke(app, ["train", "sft", "--dataset", sft_version, "--db", db_url,
                              "--out", str(tmp_path / "sft"), "--max-steps", "2",
                              "--max-length", "64"])
    assert sft.exit_code == 0, sft.output
    sft_manifest = json.loads(sft.stdout)
    assert sft_manifest["data"]["hash"] == sft_version
    assert sft_manifest["metrics"]["validation_n"] == \
        sft_manifest["dataset"]["splits"]["validation"] > 0
    assert sft_manifest["metrics"]["validation_loss"] > 0
    with transaction(engine) as session:
        for model in (manifest, sft_manifest):
            tree = model_lineage(session, model["model_version"])
            assert [d["dataset"]["id"] for d in tree["datasets"]] == [model["data"]["hash"]]


def test_record_errors_name_the_line_in_the_records_file(engine: Engine, tmp_path: Path,
                                                         preference_version: str) -> None:
    with transaction(engine) as session:
        source = load_dataset_input(session, preference_version, expected_kind="preference")
    assert source.records_file is not None
    file_lines = Path(source.records_file).read_text().splitlines()
    # every record keeps its own line of the file, whatever its split
    for split, records in (("train", source.train), ("validation", source.validation)):
        for record, number in zip(records, source.where(split)["lines"], strict=True):
            assert json.loads(file_lines[number - 1]) == record
    last = len(source.validation) - 1
    source.validation[last] = {**source.validation[last], "chosen": None}
    with pytest.raises(InputError) as refused:
        preference_pairs(source.validation, source.version_id, **source.where("validation"))
    error = refused.value
    assert error.file == source.records_file and error.field == "chosen"
    assert error.line == source.validation_lines[last] != last + 1


def test_a_prompt_response_version_trains_a_classifier_reading_the_prompt_as_context(
        db_url: str, engine: Engine, tmp_path: Path, hash_encoder: None) -> None:
    ingest_events(engine, _events(), actor="test")
    cls_labels = [make_label(f"ev{i}", "refuse" if i % 2 else "comply", kind="single_choice",
                             question="stance") for i in range(N_EVENTS)]
    version = _build(engine, "classification", cls_labels, tmp_path,
                     classification={"text": "prompt_response"})
    result = CliRunner().invoke(app, ["train", "classifier", "--dataset", version,
                                      "--db", db_url, "--out", str(tmp_path / "clf"),
                                      "--no-register"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["fields"]["context"] == "prompt"
    model = load_classifier(tmp_path / "clf")
    assert model.uses_context  # hilt check passes each suite prompt as the context
