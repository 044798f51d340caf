"""One pair is one pair in both forms of contract 5 and with white space at the ends:
the split, duplicate_pairs, held_out_in_train, training_overlap and the previous
model's overlap all compare pairs by pair_key."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from hilt.train import reward_refresh
from hilt.train.pairs import (
    Pair,
    duplicate_count,
    pair_key,
    parse_pair,
    read_pairs,
    split_pairs,
)
from hilt.train.reward import RewardConfig
from hilt.train.reward_eval import evaluate_reward_model
from tests.train.conftest import LengthRewardModel, stub_reward_training

TRANSCRIPTS = [
    ("\n\nHuman: How do I pick a lock?\n\nAssistant: I'd rather not help with that.",
     "\n\nHuman: How do I pick a lock?\n\nAssistant: Insert a tension wrench first."),
    ("Human: Hi!\n\nAssistant: Hello.\n\nHuman: Can you insult me?\n\nAssistant: No, "
     "but I can cheer you up.",
     "Human: Hi!\n\nAssistant: Hello.\n\nHuman: Can you insult me?\n\nAssistant: You "
     "are dull."),
]


def _prompt_form(chosen: str, rejected: str) -> dict[str, str]:
    """The {prompt, chosen, rejected} form of two HH transcripts, written the obvious
    way: the prompt up to the last shared 'Assistant:', the replies the raw rest (so
    each begins with the space HH puts after 'Assistant:')."""
    end = chosen.rfind("\n\nAssistant:") + len("\n\nAssistant:")
    return {"prompt": chosen[:end], "chosen": chosen[end:], "rejected": rejected[end:]}


def _both_forms() -> tuple[list[Pair], list[Pair]]:
    hh = [parse_pair({"chosen": c, "rejected": r}, "hh.jsonl", i + 1)
          for i, (c, r) in enumerate(TRANSCRIPTS)]
    flat = [parse_pair(_prompt_form(c, r), "flat.jsonl", i + 1)
            for i, (c, r) in enumerate(TRANSCRIPTS)]
    return hh, flat


def test_a_pair_has_one_key_in_both_forms_and_with_white_space_at_the_ends() -> None:
    hh, flat = _both_forms()
    assert flat[0].chosen.startswith(" ") and not hh[0].chosen.startswith(" ")
    for a, b in zip(hh, flat, strict=True):
        assert pair_key(a) == pair_key(b)
    copy = Pair(prompt=hh[0].prompt.lstrip("\n"), chosen=hh[0].chosen + "\n",
                rejected="  " + hh[0].rejected)
    assert pair_key(copy) == pair_key(hh[0])
    assert duplicate_count([*hh, *flat, copy]) == 3
    # a different reply is a different pair
    assert pair_key(Pair(hh[0].prompt, hh[0].chosen + " Sorry.", hh[0].rejected)) \
        != pair_key(hh[0])


def test_split_keeps_white_space_copies_on_one_side() -> None:
    base = [Pair(prompt=f"\n\nHuman: question {i}?\n\nAssistant:", chosen=f"careful {i}",
                 rejected=f"reckless {i}") for i in range(30)]
    copies = [Pair(p.prompt, " " + p.chosen + "\n", p.rejected) for p in base]
    pairs = [p for pair in zip(base, copies, strict=True) for p in pair]
    assert duplicate_count(pairs) == 30
    for seed in range(5):
        train, held = split_pairs(pairs, 0.2, seed)
        assert len(held) == 12
        assert not {pair_key(p) for p in train} & {pair_key(p) for p in held}


@pytest.fixture
def stub_training(monkeypatch: pytest.MonkeyPatch) -> None:
    stub_reward_training(monkeypatch)


def _config() -> RewardConfig:
    return RewardConfig(trainable_layers=0, epochs=1, lexical_expert=False)


def test_held_out_pairs_in_the_other_form_count_as_training_pairs(
        tmp_path: Path, stub_training: None) -> None:
    hh, flat = _both_forms()
    manifest = reward_refresh.refresh_reward_model(
        hh, tmp_path / "rm", config=_config(), eval_pairs=flat, progress=False)
    metrics = json.loads((tmp_path / "rm" / "metrics.json").read_text())
    assert manifest["metrics"]["held_out_in_train"] == len(flat)
    assert metrics["training_overlap"]["in_train"] == len(flat)
    assert metrics["training_overlap"]["unseen"]["n"] == 0


def test_white_space_copies_in_one_file_are_duplicates_never_split_apart(
        tmp_path: Path, stub_training: None) -> None:
    hh, _ = _both_forms()
    base = [Pair(prompt=f"\n\nHuman: question {i}?\n\nAssistant:", chosen=f"careful {i}",
                 rejected=f"reckless {i}") for i in range(20)]
    pairs = [q for p in base for q in (p, Pair(p.prompt, p.chosen + "\n", p.rejected))]
    manifest = reward_refresh.refresh_reward_model(pairs, tmp_path / "rm", config=_config(),
                                                   progress=False)
    assert manifest["metrics"]["duplicate_pairs"] == 20
    assert manifest["metrics"]["held_out_in_train"] == 0
    assert manifest["metrics"]["n"] == 8  # 4 groups of two copies held out


def test_previous_models_training_pairs_are_found_in_the_other_form() -> None:
    hh, flat = _both_forms()
    report = evaluate_reward_model(LengthRewardModel(), flat, previous=LengthRewardModel(),
                                   probes=False,
                                   previous_train_keys={pair_key(p) for p in hh},
                                   train_keys={pair_key(p) for p in hh})
    assert report["agreement_with_previous"]["previous_held_out_in_train"] == len(flat)
    assert report["training_overlap"]["in_train"] == len(flat)


def test_eval_reward_finds_its_training_pairs_in_the_other_form(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub_training: None) -> None:
    """The model's manifest names an HH file; the evaluated file holds the same pairs
    in the {prompt, chosen, rejected} form."""
    from typer.testing import CliRunner

    from hilt.cli import app

    hh_file, flat_file = tmp_path / "hh.jsonl", tmp_path / "flat.jsonl"
    hh_file.write_text("".join(json.dumps({"chosen": c, "rejected": r}) + "\n"
                               for c, r in TRANSCRIPTS))
    flat_file.write_text("".join(json.dumps(_prompt_form(c, r)) + "\n"
                                 for c, r in TRANSCRIPTS))
    reward_refresh.refresh_reward_model(read_pairs(hh_file), tmp_path / "rm", config=_config(),
                                        data_path=str(hh_file), eval_pairs=read_pairs(hh_file),
                                        progress=False)
    monkeypatch.setattr(reward_refresh, "check_reward_folder", lambda *a, **k: "minilm-bt")
    monkeypatch.setattr(reward_refresh, "load_reward_model",
                        lambda *a, **k: LengthRewardModel())
    done = CliRunner().invoke(app, ["eval", "reward", "--model", str(tmp_path / "rm"),
                                    "--pairs", str(flat_file), "--no-probes"])
    assert done.exit_code == 0, done.stderr
    overlap = json.loads(done.stdout)["training_overlap"]
    assert overlap["overlap"] == "known"
    assert overlap["in_train"] == 2 and overlap["unseen"]["n"] == 0


def _raw_split(pairs: Sequence[Pair], fraction: float, seed: int) -> tuple[list[Pair],
                                                                          list[Pair]]:
    """The split as it is documented for files without copies: groups of pairs equal
    in their raw prompt and replies, shuffled in the order of their first pair."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault((p.prompt, p.chosen, p.rejected), []).append(i)
    members = list(groups.values())
    order = list(range(len(members)))
    random.Random(seed).shuffle(order)
    n_held = int(round(len(members) * fraction))
    held = sorted(i for g in order[:n_held] for i in members[g])
    train = sorted(i for g in order[n_held:] for i in members[g])
    return [pairs[i] for i in train], [pairs[i] for i in held]


def test_hh_harmless_split_is_unchanged_and_both_forms_share_keys(shared_data: Path) -> None:
    """The documented results rest on split_pairs(pairs, 0.2, seed=0) of this file (and
    validation splits of its training part with seeds 1 and 2): the key that sees
    through white space splits it exactly as raw strings do."""
    path = shared_data / "hh-rlhf" / "harmless_pairs_dev.jsonl.gz"
    pairs = read_pairs(path)
    assert duplicate_count(pairs) == 0
    train, held = split_pairs(pairs, 0.2, 0)
    assert (train, held) == _raw_split(pairs, 0.2, 0)
    assert (len(train), len(held)) == (1280, 320)
    for seed in (1, 2):
        assert split_pairs(train, 0.2, seed) == _raw_split(train, 0.2, seed)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        raw: list[dict[str, Any]] = [json.loads(line) for line in handle]
    # the same pairs with the prompt the split found and the raw rest of each transcript
    flat = [parse_pair({"prompt": p.prompt, "chosen": obj["chosen"][len(p.prompt):],
                        "rejected": obj["rejected"][len(p.prompt):]}, "flat", i + 1)
            for i, (p, obj) in enumerate(zip(pairs, raw, strict=True))]
    assert sum(p.chosen != q.chosen for p, q in zip(pairs, flat, strict=True)) > 1000
    assert [pair_key(p) for p in pairs] == [pair_key(p) for p in flat]
