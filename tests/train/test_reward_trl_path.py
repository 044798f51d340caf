"""Any Hugging Face model through TRL's RewardTrainer: a tiny random Llama, no downloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hilt.train.reward_refresh import load_reward_model, refresh_reward_model
from hilt.train.reward_trl import TRLRewardConfig, joined
from tests.train.conftest import synthetic_pairs


def test_trl_reward_trainer_with_tiny_llama(tmp_path: Path) -> None:
    pairs = synthetic_pairs(20)
    config = TRLRewardConfig(model="tiny", max_steps=4, batch_size=4, learning_rate=1e-3)
    manifest = refresh_reward_model(pairs, tmp_path / "rm", config=config, progress=False)
    assert manifest["backend"] == "trl" and manifest["metrics"]["n"] == 4
    assert manifest["metrics"]["accuracy"] is not None
    scorer = load_reward_model(tmp_path / "rm")
    rewards = scorer.score([p.prompt for p in pairs[:3]], [p.chosen for p in pairs[:3]])
    assert rewards.shape == (3,) and np.isfinite(rewards).all()
    assert (tmp_path / "rm" / "model" / "config.json").exists()
    assert not (tmp_path / "rm" / "base-model").exists()


def test_joined_adds_one_space_only_when_needed() -> None:
    assert joined("Assistant:", "Hi") == ("Assistant:", " Hi")
    assert joined("Assistant: ", "Hi") == ("Assistant: ", "Hi")


def test_cpu_runs_train_in_float32(tmp_path: Path) -> None:
    # TRL's own default is bf16 mixed precision, emulated (and very slow) on most CPUs.
    import torch

    from hilt.train.reward_trl import training_args

    args = training_args(TRLRewardConfig(), tmp_path)
    assert args.bf16 is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert args.use_cpu is not torch.cuda.is_available()
    assert args.activation_checkpointing is False


def test_a_max_length_no_pair_fits_in_is_refused_before_training(tmp_path: Path) -> None:
    import pytest

    from hilt.errors import InputError

    config = TRLRewardConfig(model="tiny", max_steps=2, batch_size=4, max_length=8)
    with pytest.raises(InputError) as refused:
        refresh_reward_model(synthetic_pairs(20), tmp_path / "rm", config=config,
                             progress=False)
    assert refused.value.field == "--max-length" and "raise it" in refused.value.reason
    assert not (tmp_path / "rm").exists()


def test_pairs_dropped_for_length_show_in_the_headline(tmp_path: Path) -> None:
    from hilt.train.pairs import Pair

    short = synthetic_pairs(16)
    long_reply = "and then it went on and on " * 20
    long = [Pair(prompt=p.prompt, chosen=p.chosen + long_reply, rejected=p.rejected)
            for p in synthetic_pairs(8, offset=16)]
    config = TRLRewardConfig(model="tiny", max_steps=2, batch_size=4, max_length=64)
    manifest = refresh_reward_model(short + long, tmp_path / "rm", config=config,
                                    progress=False)
    head = manifest["metrics"]
    assert head["train_pairs_used"] + head["train_pairs_dropped"] == head["train_pairs"]
    assert head["train_pairs_dropped"] > 0 and head["train_pairs_used"] > 0
