"""Pair files that would train something other than what they say: a pair of two equal
replies, a misspelt key, an id of the wrong type, and --margin without margins."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.data.build import build_version
from hilt.data.spec import parse_spec
from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.store.db import transaction
from hilt.train.from_dataset import load_dataset_input
from hilt.train.pairs import Pair, read_pairs, refuse_same_replies, require_margins
from hilt.train.reward import RewardConfig, train_reward_model
from hilt.train.reward_refresh import refresh_reward_model
from hilt.train.reward_trl import TRLRewardConfig
from tests.data.data_factories import make_label
from tests.ops.climain import run_hilt
from tests.train.conftest import synthetic_pairs

H, A = "\n\nHuman:", "\n\nAssistant:"
GOOD = {"prompt": "p", "chosen": "a", "rejected": "b"}


def _file(path: Path, *lines: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _refusal(path: Path, **options: Any) -> InputError:
    with pytest.raises(InputError) as err:
        read_pairs(path, **options)
    return err.value


def _hilt(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HILT_DATABASE_URL": f"sqlite:///{tmp_path / 'hilt.db'}"}
    return run_hilt(args, env=env)


# -- a pair whose two replies are the same ----------------------------------------------

@pytest.mark.parametrize("line", [
    {"prompt": "p", "chosen": "Sure.", "rejected": "Sure."},
    # white space at either end is no difference a reward model should learn
    {"prompt": "p", "chosen": "Sure.", "rejected": " Sure.\n"},
    {"prompt": "p", "chosen": "", "rejected": ""},
    # HH transcripts: the same transcript twice, and two that differ only after the reply
    {"chosen": f"{H} q{A} Sure.", "rejected": f"{H} q{A} Sure."},
    {"chosen": f"{H} q{A} Sure.", "rejected": f"{H} q{A} Sure.  "},
    {"chosen": f"Human: q{A} Sure.", "rejected": f"{H} q{A} Sure."},
])
def test_a_pair_whose_rejected_reply_is_its_chosen_one_is_refused(
        tmp_path: Path, line: dict[str, str]) -> None:
    path = _file(tmp_path / "pairs.jsonl", GOOD, line)
    err = _refusal(path)
    assert (err.file, err.line, err.field) == (str(path), 2, "rejected")
    assert "same reply" in err.reason


def test_replies_that_differ_inside_are_kept(tmp_path: Path) -> None:
    path = _file(tmp_path / "pairs.jsonl", {"prompt": "p", "chosen": "Sure.", "rejected": "Sure!"},
                 {"prompt": "p", "chosen": "", "rejected": "No."},
                 {"chosen": f"{H} q{A} Sure.", "rejected": f"{H} q{A} Sure. Here:"})
    assert [p.rejected for p in read_pairs(path)] == ["Sure!", "No.", "Sure. Here:"]


def test_dataset_pairs_of_two_equal_replies_are_refused_at_their_records_line() -> None:
    pairs = [Pair("p", "a", "b"), Pair("p", "same", "same")]
    with pytest.raises(InputError) as err:
        refuse_same_replies(pairs, file="records.jsonl", lines=[4, 9])
    assert (err.value.file, err.value.line, err.value.field) == ("records.jsonl", 9,
                                                                 "rejected")
    refuse_same_replies(pairs[:1], file="records.jsonl", lines=[4])


def test_hilt_train_reward_refuses_a_pair_of_equal_replies_before_any_work(
        tmp_path: Path) -> None:
    lines = [p.as_dict() for p in synthetic_pairs(10)]
    lines[3]["rejected"] = lines[3]["chosen"]
    path = _file(tmp_path / "pairs.jsonl", *lines)
    done = _hilt(["train", "reward", "--pairs", str(path), "--out", str(tmp_path / "rm"),
                  "--no-register", "--no-progress"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {path}, line 4, field 'rejected': the same reply as 'chosen' (white space "
        "at either end aside): a pair must prefer one reply over a different one"]
    assert not (tmp_path / "rm").exists()


# -- keys and types ---------------------------------------------------------------------

@pytest.mark.parametrize("extra,field", [
    ({"margn": 3}, "margn"),
    ({"Slice": "a"}, "Slice"),
    ({"weight": 2.0}, "weight"),
])
def test_an_unknown_key_on_a_pair_line_is_refused(tmp_path: Path, extra: dict[str, Any],
                                                  field: str) -> None:
    path = _file(tmp_path / "pairs.jsonl", GOOD, {**GOOD, **extra})
    err = _refusal(path)
    assert (err.file, err.line, err.field) == (str(path), 2, field)
    assert "unknown key" in err.reason and "margin" in err.reason


def test_an_unknown_key_beside_hh_transcripts_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path / "hh.jsonl",
                 {"chosen": f"{H} q{A} yes", "rejected": f"{H} q{A} no", "source": "hh"})
    err = _refusal(path)
    assert (err.line, err.field) == (1, "source")


@pytest.mark.parametrize("pair_id", [True, 1.5, ["a"], {"k": 1}])
def test_an_id_that_is_not_a_string_or_an_integer_is_refused(tmp_path: Path,
                                                            pair_id: Any) -> None:
    path = _file(tmp_path / "pairs.jsonl", {**GOOD, "id": pair_id})
    err = _refusal(path)
    assert (err.line, err.field) == (1, "id")


def test_string_and_integer_ids_and_every_known_key_are_read(tmp_path: Path) -> None:
    path = _file(tmp_path / "pairs.jsonl",
                 {**GOOD, "id": 7, "margin": 1, "slice": "s"}, {**GOOD, "id": "x"})
    first, second = read_pairs(path)
    assert (first.id, first.margin, first.slice, second.id) == ("7", 1.0, "s", "x")


# -- --margin ---------------------------------------------------------------------------

def test_margins_required_but_carried_by_no_pair_name_the_option(tmp_path: Path) -> None:
    path = _file(tmp_path / "pairs.jsonl", GOOD, GOOD)
    assert len(read_pairs(path)) == 2  # without --margin nothing is missing
    err = _refusal(path, margins=True)
    assert (err.file, err.line, err.field) == (str(path), None, "--margin")


def test_margins_required_name_the_first_pair_without_one(tmp_path: Path) -> None:
    path = _file(tmp_path / "pairs.jsonl", {**GOOD, "margin": 2}, {**GOOD, "margin": 0},
                 {}, {**GOOD, "margin": None}, GOOD)  # line 3 is blank
    path.write_text(path.read_text().replace("{}\n", "\n"))
    err = _refusal(path, margins=True)
    assert (err.file, err.line, err.field) == (str(path), 4, "margin")


def test_margins_required_and_present_are_read(tmp_path: Path) -> None:
    path = _file(tmp_path / "pairs.jsonl", {**GOOD, "margin": 2}, {**GOOD, "margin": 0})
    assert [p.margin for p in read_pairs(path, margins=True)] == [2.0, 0.0]
    require_margins([Pair("p", "a", "b", margin=1.0)])


def test_hilt_train_reward_margin_without_margins_exits_2_before_any_work(
        tmp_path: Path) -> None:
    path = _file(tmp_path / "pairs.jsonl", *[p.as_dict() for p in synthetic_pairs(10)])
    done = _hilt(["train", "reward", "--pairs", str(path), "--out", str(tmp_path / "rm"),
                  "--no-register", "--no-progress", "--margin"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {path}, field '--margin': no pair carries a 'margin' to train with; "
        "leave out --margin or give the pairs margins"]
    assert not (tmp_path / "rm").exists()


def test_margin_with_a_dataset_version_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "reward", "--dataset", "ds_0123456789",
                                      "--out", str(tmp_path / "rm"), "--no-register",
                                      "--margin"])
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == "--margin"
    assert not (tmp_path / "rm").exists()


@pytest.mark.parametrize("config", [RewardConfig(use_margin=True, trainable_layers=0),
                                    TRLRewardConfig(model="tiny", use_margin=True)])
def test_a_refresh_with_margins_refuses_pairs_without_them_before_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        config: RewardConfig | TRLRewardConfig) -> None:
    import hilt.train.reward_refresh as refresh

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before the margins were checked")

    monkeypatch.setattr(refresh, "train_reward_model", no_training)
    monkeypatch.setattr(refresh, "train_trl_reward", no_training)
    with pytest.raises(InputError) as err:
        refresh_reward_model(synthetic_pairs(10), tmp_path / "rm", config=config,
                             progress=False)
    assert err.value.field == "--margin"
    assert not (tmp_path / "rm").exists()


def test_training_with_margins_refuses_a_pair_without_one() -> None:
    pairs = [Pair("p", "a", "b", margin=1.0), Pair("p", "c", "d")]
    with pytest.raises(InputError) as err:
        train_reward_model(pairs, RewardConfig(use_margin=True), progress=False)
    assert (err.value.line, err.value.field) == (2, "margin")


def test_hilt_train_reward_refuses_a_dataset_pair_of_equal_replies_at_its_records_line(
        engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # event ev3's two responses are the same text: ranking them would make a pair that
    # prefers nothing; the build skips it, and training refuses one that a version holds
    events = [{"id": f"ev{i}", "interaction": {"prompt": f"question {i}?"},
               "responses": [{"text": f"a careful answer {i}"},
                             {"text": f"a careful answer {i}" if i == 3 else f"no {i}"}],
               "context": {"subject_id": f"s{i}", "consent": ["train"]}}
              for i in range(8)]
    ingest_events(engine, events, actor="test")
    labels = [make_label(f"ev{i}", [0, 1], kind="ranking", question="rank")
              for i in range(8)]
    spec = {"name": "ranked", "kind": "preference", "dedup": {"near": False},
            "split": {"validation_fraction": 0.0}}
    with transaction(engine) as session:
        version = build_version(session, parse_spec(spec), actor="tester",
                                label_source=lambda _s, **_k: labels,
                                directory=tmp_path / "datasets").version_id
    with transaction(engine) as session:
        source = load_dataset_input(session, version, expected_kind="preference")
    assert source.train and all(r["chosen"] != r["rejected"] for r in source.train)
    # a version holding such a pair (an older build, a hand-made records file)
    index = 2
    source.train[index]["rejected"] = source.train[index]["chosen"]
    import hilt.train.from_dataset as from_dataset

    monkeypatch.setattr(from_dataset, "load_dataset_input", lambda *_a, **_k: source)
    result = CliRunner().invoke(app, ["train", "reward", "--dataset", version, "--db", db_url,
                                      "--out", str(tmp_path / "rm"), "--no-progress"])
    error = result.exception
    assert isinstance(error, InputError), result.output
    assert (error.file, error.line, error.field) == (source.records_file,
                                                     source.train_lines[index], "rejected")
    assert not (tmp_path / "rm").exists()
