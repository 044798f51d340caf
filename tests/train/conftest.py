"""Fixtures for the training tests: an isolated embedding cache and small pair sets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

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
