"""Reward-model scoring of both systems' responses, for the candidate's RM win-rate.

Each suite item is scored twice with the same reward model, ``r(x, y_cand)`` and
``r(x, y_ref)``; the win-rate (:mod:`hilt.evals.metrics`, ``rm_win_rate``) is the share of
prompts with ``r(x, y_cand) > r(x, y_ref)``, ties counting one half, with a Wilson
interval on that score (records before metrics version 2: a percentile bootstrap).
Under the Bradley–Terry model the RM was trained with (Bradley & Terry 1952; Ouyang et
al. 2022), ``σ(r_cand − r_ref)`` is the modelled
probability that a labeller prefers the candidate, so a win-rate near 1/2 means "no
preferred change" and one below 1/2 a regression the RM can see — a proxy, which is why
the human review sample exists beside it.

The scorer is any object with ``score(prompts, responses) -> np.ndarray`` (the
:class:`RewardScorer` protocol); :func:`load_reward_model` loads a folder written by
``hilt train reward`` through the training stage's loader
(``hilt.train.reward_refresh.load_reward_model``: the default encoder RM or a TRL
sequence-classification RM). The folder's content hash is recorded in the decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hilt.errors import InputError
from hilt.evals.files import ResponseLine, SuiteItem
from hilt.evals.scoring import directory_hash


class RewardScorer(Protocol):
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class RewardModel:
    """A loaded reward model plus what identifies it in a decision record."""

    scorer: RewardScorer
    model_dir: str
    content_hash: str
    version: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": "reward_model", "model_dir": self.model_dir,
                "content_sha256": self.content_hash, "version": self.version}


def load_reward_model(model_dir: str | Path, version: str | None = None) -> RewardModel:
    """Load a reward model folder written by the training stage."""
    path = Path(model_dir)
    if not path.is_dir():
        raise InputError("not a directory", file=str(path), field="--rm")
    try:
        from hilt.train.manifest import MANIFEST_FILE
        from hilt.train.reward_refresh import load_reward_model as load_trained
    except ImportError as exc:
        raise InputError(f"reward-model scoring needs hilt.train ({exc})",
                         file=str(path), field="--rm") from exc
    if not (path / MANIFEST_FILE).is_file():
        raise InputError(f"not a reward-model folder ({MANIFEST_FILE} missing)",
                         file=str(path), field="--rm")
    digest = directory_hash(path)  # before loading: the hash names what was loaded
    return RewardModel(load_trained(path, "--rm"), str(path), digest, version)


def reward_prompt(item: SuiteItem) -> str:
    """The prompt the reward model scores a reply against. A plain prompt goes as given.
    A conversation goes as the HH transcript the reward model was trained on for a
    conversation (:func:`hilt.train.from_dataset.hh_prompt`: ``"\\n\\nHuman: …
    \\n\\nAssistant: …"``, ending with the assistant marker), so the reply continues
    it and the model's view (the last exchange or the whole transcript) finds the turns."""
    if item.messages is None:
        return item.prompt
    from hilt.train.from_dataset import hh_prompt

    return hh_prompt(item.chat())


def score_responses(items: Sequence[SuiteItem],
                    lines: Mapping[str, Mapping[str, ResponseLine]], model: RewardModel,
                    files: Mapping[str, str]) -> dict[str, dict[str, ResponseLine]]:
    """The response lines with ``reward`` filled in by ``model`` (both sides, one call).

    Rewards already present in a file would mix two reward sources, so they are refused.
    """
    for side in ("candidate", "reference"):
        given = next((r for r in lines[side].values() if r.reward is not None), None)
        if given is not None:
            raise InputError("reward is given in the file and a reward model is named; "
                             "use one source", file=files[side], line=given.line,
                             field="reward")
    prompts = [reward_prompt(item) for item in items]
    responses = ([lines["candidate"][i.id].response for i in items]
                 + [lines["reference"][i.id].response for i in items])
    scores = np.asarray(model.scorer.score(prompts + prompts, responses), dtype=float)
    if scores.shape != (2 * len(items),) or not np.all(np.isfinite(scores)):
        raise InputError(f"the reward model returned {scores.shape} scores (finite "
                         f"{bool(np.all(np.isfinite(scores)))}), expected "
                         f"{2 * len(items)} finite values", file=model.model_dir,
                         field="score")
    out: dict[str, dict[str, ResponseLine]] = {}
    for offset, side in ((0, "candidate"), (len(items), "reference")):
        out[side] = {**lines[side]}
        for index, item in enumerate(items):
            out[side][item.id] = dataclasses.replace(
                lines[side][item.id], reward=float(scores[offset + index]))
    return out
