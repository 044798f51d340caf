"""The default reward model: learns, is reproducible, saves and loads, is evaluated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hilt.train.reward import EncoderReward, RewardConfig, train_reward_model
from hilt.train.reward_eval import evaluate_reward_model
from hilt.train.reward_refresh import load_reward_model, refresh_reward_model
from tests.train.conftest import synthetic_pairs

SMALL = dict(trainable_layers=1, epochs=2, max_length=48, batch_size=8, cheap_features=False,
             learning_rate=1e-4, head_learning_rate=3e-3)


@pytest.mark.slow
def test_learns_reproducibly_and_round_trips(tmp_path: Path) -> None:
    train, held = synthetic_pairs(36), synthetic_pairs(24, offset=100)
    first = train_reward_model(train, RewardConfig(seed=1, **SMALL), progress=False)
    second = train_reward_model(train, RewardConfig(seed=1, **SMALL), progress=False)
    prompts = [p.prompt for p in held]
    a = first.score(prompts, [p.chosen for p in held])
    b = second.score(prompts, [p.chosen for p in held])
    # Same seed and data: same rewards. Tolerance: float32 CPU kernels are deterministic
    # single-threaded; 1e-5 leaves room for summation order between BLAS builds.
    np.testing.assert_allclose(a, b, atol=1e-5)
    report = evaluate_reward_model(first, held, previous=second)
    assert report["accuracy"] >= 0.9
    assert report["n"] == 24 and 0 <= report["ece"] <= 1
    ece_ci, margin_ci = report["ece_ci"], report["mean_margin_ci"]
    assert 0 <= ece_ci["low"] <= ece_ci["high"] <= 1
    assert margin_ci["low"] <= report["mean_margin"] <= margin_ci["high"]
    previous_ci = report["agreement_with_previous"]["previous_accuracy_ci"]
    assert previous_ci["low"] <= report["agreement_with_previous"]["previous_accuracy"] \
        <= previous_ci["high"]
    assert report["agreement_with_previous"]["same_preference"]["value"] == 1.0
    probes = report["bias_probes"]
    assert set(probes["appended_phrases"]) == {"flattery", "apology"}
    assert probes["reward_length_correlation"]["n"] == 48
    first.save(tmp_path / "rm")
    again = EncoderReward.load(tmp_path / "rm")
    np.testing.assert_allclose(again.score(prompts, [p.chosen for p in held]), a, atol=1e-6)


@pytest.mark.slow
def test_refresh_writes_manifest_metrics_and_reliability_png(tmp_path: Path) -> None:
    pairs = synthetic_pairs(30)
    manifest = refresh_reward_model(pairs, tmp_path / "rm", config=RewardConfig(**SMALL),
                                    data_path="mem", progress=False)
    out = tmp_path / "rm"
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert manifest["kind"] == "reward" and manifest["data"]["records"] == 30
    assert manifest["split"]["held_out_fraction"] == 0.2 and manifest["metrics"]["n"] == 6
    assert manifest["code_version"].startswith("hilt ")
    assert load_reward_model(out).score(["x"], ["y"]).shape == (1,)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rm-")]


def test_expert_window_is_checked_by_name() -> None:
    with pytest.raises(ValueError, match="expert_max_length"):
        EncoderReward(RewardConfig(expert_max_length=100_000))


def test_wider_expert_window_reads_past_the_tuned_window() -> None:
    model = EncoderReward(RewardConfig(max_length=16, expert_max_length=64))
    prompt, short, long = "\n\nHuman: hi\n\nAssistant:", "No.", "No. " + "really " * 30
    items = model.tokenize([prompt, prompt], [short, long])
    assert len(items[1][0]) == 16  # ids of the long reply, cut to the tuned window
    pooled = model.expert_features([prompt, prompt], [short, long],
                                   model.frozen_states(items)).numpy()
    narrow = model.frozen_pooled(model.frozen_states(items)).numpy()
    # The short reply fits both windows; the long one is cut at 16 tokens only for the tuned part.
    np.testing.assert_allclose(pooled[0], narrow[0], atol=1e-2)
    assert np.abs(pooled[1] - narrow[1]).max() > 0.05


@pytest.mark.slow
def test_ensemble_member_zero_is_the_single_model_and_round_trips(tmp_path: Path) -> None:
    import torch

    train, held = synthetic_pairs(24), synthetic_pairs(12, offset=100)
    small = {**SMALL, "epochs": 1, "frozen_expert": False}
    single = train_reward_model(train, RewardConfig(seed=3, **small), progress=False)
    pair = train_reward_model(train, RewardConfig(seed=3, ensemble=2, **small), progress=False)
    prompts, replies = [p.prompt for p in held], [p.chosen for p in held]
    states = single.frozen_states(single.tokenize(prompts, replies))
    cheap = torch.zeros((len(held), 4))
    with torch.no_grad():
        np.testing.assert_allclose(pair.forward_states(states, cheap, member=0).numpy(),
                                   single.forward_states(states, cheap).numpy(), atol=1e-5)
        both = pair.forward_states(states, cheap).numpy()
        second = pair.forward_states(states, cheap, member=1).numpy()
    assert not np.allclose(second, both)
    pair.save(tmp_path / "rm")
    again = EncoderReward.load(tmp_path / "rm")
    np.testing.assert_allclose(again.score(prompts, replies), pair.score(prompts, replies),
                               atol=1e-6)


def test_length_batches_cover_every_pair_once() -> None:
    import random

    from hilt.train.reward import _batches

    lengths = [random.Random(i).randint(5, 120) for i in range(100)]
    batches = _batches(100, 16, random.Random(0), lengths)
    assert sorted(i for b in batches for i in b) == list(range(100))
    assert all(len(b) <= 16 for b in batches)
    # within a batch the lengths come from one sorted group: spread below the whole range
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 60


def test_label_smoothed_loss() -> None:
    """ε = 0 is the plain Bradley–Terry loss; otherwise the loss is least at
    Δ = logit(1 − ε), not at Δ → ∞, and ε = ½ cannot tell chosen from rejected."""
    import torch

    from hilt.train.reward import bradley_terry_loss

    delta = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    plain = [float(bradley_terry_loss(d.reshape(1))) for d in delta]
    np.testing.assert_allclose(plain, np.log1p(np.exp(-delta.numpy())), rtol=1e-12)
    smoothed = np.array([float(bradley_terry_loss(d.reshape(1), 0.1)) for d in delta])
    assert float(delta[smoothed.argmin()]) == pytest.approx(np.log(0.9 / 0.1), abs=0.01)
    half = [float(bradley_terry_loss(torch.tensor([d, -d]), 0.5)) for d in (0.5, 3.0)]
    assert half[0] < half[1]  # symmetric in Δ, least at 0


@pytest.mark.slow
def test_averaging_keeps_the_mean_of_the_last_epochs_weights(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    recorded: list[torch.Tensor] = []
    step = torch.optim.AdamW.step

    def recording(self: torch.optim.AdamW, *args: object, **kwargs: object) -> object:
        out = step(self, *args, **kwargs)
        recorded.append(torch.cat([p.detach().flatten().clone()
                                   for g in self.param_groups for p in g["params"]]))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", recording)
    train = synthetic_pairs(24)
    config = RewardConfig(seed=2, average_last_epoch=True, frozen_expert=False, **SMALL)
    model = train_reward_model(train, config, progress=False)
    per_epoch = len(recorded) // config.epochs  # 24 pairs / batch 8 = 3 steps an epoch
    assert per_epoch == 3 and len(recorded) == 6
    kept = torch.cat([p.detach().flatten() for g in model.parameters_to_train(0)
                      for p in g["params"]])
    expected = torch.stack(recorded[-per_epoch:]).mean(0)
    torch.testing.assert_close(kept, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(kept, recorded[-1], atol=1e-6)


@pytest.fixture(scope="module")
def saved_reward_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained default reward model with a lexical expert, saved as a model folder."""
    import json

    from hilt.train.reward_linear import LexicalExpert

    folder = tmp_path_factory.mktemp("rm") / "rm"
    model = EncoderReward(RewardConfig(max_length=16, lexical_expert=True,
                                       cheap_features=False))
    model.lexical = LexicalExpert(np.array(["sorry"]), np.ones(1), np.ones(1))
    model.save(folder)
    (folder / "manifest.json").write_text(json.dumps({"kind": "reward"}))
    return folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize("damage", ["missing weights", "truncated weights", "corrupt config",
                                    "config not an object", "truncated lexical expert",
                                    "missing lexical expert"])
def test_a_damaged_reward_folder_is_bad_input_naming_the_option(
        saved_reward_folder: Path, tmp_path: Path, damage: str) -> None:
    import shutil

    from hilt.errors import InputError

    folder = tmp_path / "rm"
    shutil.copytree(saved_reward_folder, folder)
    assert load_reward_model(folder, "--model") is not None  # the intact copy loads
    {"missing weights": lambda: (folder / "reward_head.pt").unlink(),
     "truncated weights": lambda: _truncate(folder / "reward_head.pt"),
     "corrupt config": lambda: (folder / "reward_config.json").write_text("{not json"),
     "config not an object": lambda: (folder / "reward_config.json").write_text("[1]"),
     "truncated lexical expert": lambda: _truncate(folder / "lexical_expert.npz"),
     "missing lexical expert": lambda: (folder / "lexical_expert.npz").unlink(),
     }[damage]()
    with pytest.raises(InputError) as refused:
        load_reward_model(folder, "--previous")
    assert refused.value.field == "--previous" and refused.value.file == str(folder)
