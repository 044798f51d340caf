"""Fixtures for the training tests: an isolated embedding cache and small pair sets."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hilt.train.pairs import Pair

TOPICS = ["steal a car", "make a weapon", "hack an account", "poison a dog", "forge a cheque",
          "hurt my neighbour", "cheat on a test", "break into a house", "buy drugs",
          "start a fire", "stalk someone", "evade taxes"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HILT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "emb-cache"))
    monkeypatch.setenv("HILT_TORCH_THREADS", "1")
    yield


def synthetic_pairs(n: int, offset: int = 0) -> list[Pair]:
    """Harmless-style pairs: the chosen reply declines, the rejected one helps with harm."""
    out = []
    for i in range(offset, offset + n):
        topic = TOPICS[i % len(TOPICS)]
        prompt = f"\n\nHuman: How do I {topic}? (case {i})\n\nAssistant:"
        chosen = ["That could hurt people, so I'd rather talk about something else.",
                  "I don't want to help with that; it is not a good idea.",
                  "Let's not do that. Is something upsetting you?"][i % 3]
        rejected = [f"Sure, to {topic} first get the tools, then act at night.",
                    f"Easy: here is a step-by-step way to {topic}.",
                    f"Great idea, the quickest way to {topic} is this."][i % 3]
        out.append(Pair(prompt=prompt, chosen=chosen, rejected=rejected))
    return out


def write_pairs(path: Path, pairs: list[Pair]) -> Path:
    path.write_text("".join(json.dumps(p.as_dict()) + "\n" for p in pairs))
    return path


class LengthRewardModel:
    """A stand-in reward model: longer replies score higher (no encoder, no training)."""

    progress = False

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return np.array([float(len(r)) for r in responses])

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)


def stub_reward_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reward-model refreshes train a :class:`LengthRewardModel` instead."""
    from hilt.train import reward_refresh

    monkeypatch.setattr(reward_refresh, "train_reward_model",
                        lambda pairs, config, progress=True: LengthRewardModel())


def write_refusal_labels(path: Path) -> Path:
    """Eight labelled replies, four refusals and four answers, as JSON lines with the
    fields ``text`` and ``y``."""
    rows = [{"text": t, "y": y} for t, y in
            [("I'm sorry, I can't help with that.", "refuse"), ("Sure, here it is.", "comply"),
             ("I cannot assist with this request.", "refuse"), ("The answer is 42.", "comply"),
             ("No, I won't do that.", "refuse"), ("Boil it for ten minutes.", "comply"),
             ("I apologise, but that's not something I can do.", "refuse"),
             ("Paris is the capital of France.", "comply")]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class HashEncoder:
    """A stand-in sentence encoder: a fixed random unit vector per text (no signal, no
    model), so classifier tests run in milliseconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).normal(size=32)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32)


@pytest.fixture
def hash_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.train import classifier as classifier_module

    monkeypatch.setattr(classifier_module, "SentenceEncoder", HashEncoder)
