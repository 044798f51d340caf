"""Training inputs: HH transcripts, repeated pairs, classifier labels, the registry row."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.store.db import transaction
from hilt.store.tables.registry import ModelVersionRow
from hilt.train.classifier_eval import read_labelled
from hilt.train.from_dataset import classification_rows
from hilt.train.manifest import build_manifest, manifest_hash, read_manifest, write_manifest
from hilt.train.pairs import (
    Pair,
    duplicate_count,
    last_exchange,
    pair_key,
    parse_pair,
    read_pairs,
    split_pairs,
)
from hilt.train.registry import register_model_version
from hilt.train.reward_eval import _turns_slice
from tests.ops.climain import run_hilt
from tests.train.conftest import synthetic_pairs, write_pairs

# -- HH transcripts ---------------------------------------------------------------------

H, A = "\n\nHuman:", "\n\nAssistant:"


@pytest.mark.parametrize("chosen,rejected,field", [
    # the two diverge at the first assistant turn: the "reply" would carry later turns
    (f"{H} q{A} A1{H} q2{A} A2", f"{H} q{A} B1{H} q2{A} B2", "chosen"),
    # both end with a human turn
    (f"{H} q{A} a{H} follow", f"{H} q{A} b{H} follow", "chosen"),
    # a human turn inside one reply only
    (f"{H} q{A} ok", f"{H} q{A} no{H} a turn inside the reply", "rejected"),
    (f"{H} q{A} ok{H} a turn inside the reply", f"{H} q{A} no", "chosen"),
    # the same without the leading newlines
    (f"Human: q{A} A1{H} q2{A} A2", f"Human: q{A} B1{H} q2{A} B2", "chosen"),
])
def test_transcripts_that_do_not_end_in_two_replies_are_refused(
        tmp_path: Path, chosen: str, rejected: str, field: str) -> None:
    path = tmp_path / "hh.jsonl"
    path.write_text(json.dumps({"chosen": f"{H} x{A} y", "rejected": f"{H} x{A} z"}) + "\n"
                    + json.dumps({"chosen": chosen, "rejected": rejected}) + "\n")
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 2, field)
    assert "'Human:' turn" in err.value.reason


def test_transcripts_without_leading_newlines_and_multi_turn_replies() -> None:
    pair = parse_pair({"chosen": f"Human: q{A} a", "rejected": f"Human: q{A} b"}, "f", 1)
    assert (pair.prompt, pair.chosen, pair.rejected) == (f"{H} q{A}", "a", "b")
    assert last_exchange(pair.prompt) == "q" and _turns_slice(pair.prompt) == "turns:1"
    # a prompt given as a field, in the same form
    assert last_exchange(f"Human: q{A}") == "q"
    assert last_exchange(f"Human: hi{A} hello{H} how?{A}") == "how?"
    # several assistant turns in a row are still the assistant's reply (HH has them)
    pair = parse_pair({"chosen": f"{H} q{A} x{A} y", "rejected": f"{H} q{A} x{A} z"}, "f", 1)
    assert (pair.chosen, pair.rejected) == ("y", "z")


# -- repeated pairs ---------------------------------------------------------------------

def test_a_repeated_id_is_refused(tmp_path: Path) -> None:
    rows = [{**p.as_dict(), "id": f"pair-{i // 2}"} for i, p in enumerate(synthetic_pairs(4))]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert (err.value.line, err.value.field) == (2, "id") and "line 1" in err.value.reason
    unique = tmp_path / "unique.jsonl"
    unique.write_text("".join(json.dumps({**r, "id": i}) + "\n" for i, r in enumerate(rows)))
    assert [p.id for p in read_pairs(unique)] == ["0", "1", "2", "3"]


def test_split_keeps_identical_pairs_on_one_side() -> None:
    pairs = synthetic_pairs(40)
    doubled = [p for p in pairs for _ in range(2)]
    assert duplicate_count(doubled) == 40 and duplicate_count(pairs) == 0
    for seed in range(5):
        train, held = split_pairs(doubled, 0.2, seed)
        assert len(held) == 16 and len(train) == 64
        assert not {pair_key(p) for p in train} & {pair_key(p) for p in held}


def test_split_without_duplicates_is_the_plain_seeded_shuffle() -> None:
    pairs = synthetic_pairs(50)
    for seed in range(3):
        order = list(range(len(pairs)))
        random.Random(seed).shuffle(order)
        held = sorted(order[:10])
        train = sorted(order[10:])
        assert split_pairs(pairs, 0.2, seed) == ([pairs[i] for i in train],
                                                 [pairs[i] for i in held])


def test_duplicates_differing_only_in_margin_count_as_one_pair() -> None:
    pair = synthetic_pairs(1)[0]
    assert duplicate_count([pair, Pair(pair.prompt, pair.chosen, pair.rejected, margin=2.0)]) == 1


# -- classifier labels ------------------------------------------------------------------

def test_numeric_labels_name_one_class(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    labels = [1, 1.0, "1", 0, 0.0, -0.0, 0.5, True, "true", False, "refuse"]
    path.write_text("".join(json.dumps({"t": f"text {i}", "y": y}) + "\n"
                            for i, y in enumerate(labels)))
    assert read_labelled(path, "t", "y").labels == [
        "1", "1", "1", "0", "0", "0", "0.5", "true", "true", "false", "refuse"]
    texts, names = classification_rows([{"text": "a", "label": 1.0}, {"text": "b", "label": 2}],
                                       "v1")
    assert names == ["1", "2"]


@pytest.mark.parametrize("row,field", [
    ({"t": None, "y": "a"}, "t"),
    ({"t": 3, "y": "a"}, "t"),
    ({"y": "a"}, "t"),
    ({"t": "text", "y": ""}, "y"),
    ({"t": "text", "y": float("nan")}, "y"),
    ({"t": "text", "y": None}, "y"),
    ({"t": "text", "y": [1]}, "y"),
])
def test_texts_that_are_not_strings_and_bad_labels_are_refused(tmp_path: Path, row: dict,
                                                                field: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"t": "fine", "y": "a"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError) as err:
        read_labelled(path, "t", "y")
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 2, field)


def test_blank_texts_are_read_like_any_other(tmp_path: Path) -> None:
    # an empty reply is still a reply: hilt check --scorer scores it, so the classifier
    # commands read it rather than refusing the file
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps({"t": t, "y": "a"}) + "\n" for t in ("", " \n\t", "x")))
    assert read_labelled(path, "t", "y").texts == ["", " \n\t", "x"]


def test_dataset_labels_are_checked_too() -> None:
    with pytest.raises(InputError) as err:
        classification_rows([{"text": "a", "label": "x"}, {"text": "b", "label": " "}], "v1")
    assert (err.value.line, err.value.field) == (2, "label")


# -- manifest and registry --------------------------------------------------------------

def test_registry_row_holds_the_documented_columns_and_the_manifest_hash(
        engine: Engine, tmp_path: Path) -> None:
    documented = {"id", "kind", "name", "base_model", "dataset_hash", "config", "seed",
                  "code_version", "metrics", "artifact_path", "manifest_hash", "previous_id",
                  "created_by", "created_at"}
    assert set(ModelVersionRow.__table__.columns.keys()) == documented
    docs = (Path(__file__).resolve().parents[2] / "docs" / "train.md").read_text()
    assert "carry the same fields" not in docs
    for column in documented:
        assert f"`{column}`" in docs, column
    manifest = build_manifest(kind="reward", base_model="m", data_path="/data/p.jsonl",
                              data_hash="ab" * 32, n_records=3, config={"lr": 5e-5},
                              seed=0, metrics={"ece": float("nan")}, wall_seconds=1.5)
    write_manifest(tmp_path, manifest)
    with transaction(engine) as session:
        row = register_model_version(session, manifest=manifest, artifact_path=str(tmp_path))
        assert manifest_hash(read_manifest(tmp_path)) == row.manifest_hash
    assert read_manifest(tmp_path)["metrics"]["ece"] is None


@pytest.mark.slow
def test_cli_manifest_names_the_data_by_absolute_path(tmp_path: Path) -> None:
    rows = [("I can't help with that.", 1), ("Sure, here it is.", 0),
            ("I won't do that.", 1.0), ("The answer is 4.", 0.0)] * 2
    (tmp_path / "rows.jsonl").write_text(
        "".join(json.dumps({"t": t, "y": y}) + "\n" for t, y in rows))
    args = ["train", "classifier", "--data", "rows.jsonl", "--text-field", "t",
            "--label-field", "y", "--out", "clf", "--no-register"]
    env = {**os.environ, "HILT_CACHE_DIR": str(tmp_path / "cache")}
    done = run_hilt(args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["data"]["path"] == str((tmp_path / "rows.jsonl").resolve())
    assert manifest["classes"] == ["0", "1"]
    # a classifier folder may be trained again in place
    again = run_hilt(args, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    pairs = write_pairs(tmp_path / "pairs.jsonl", synthetic_pairs(10))
    done = run_hilt(["train", "reward", "--pairs", str(pairs), "--out", "clf",
                     "--no-register"], cwd=tmp_path)
    assert done.returncode == 2 and "field '--out'" in done.stderr
    assert (tmp_path / "clf" / "classifier.json").exists()
