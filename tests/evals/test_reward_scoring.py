"""Reward-model win-rate: both sides scored by one reward model, per slice, with intervals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.check import run_check
from hilt.evals.reward import RewardModel
from hilt.gate.decision import verify
from hilt.gate.policy import policy_from_dict
from tests.gate.tiny_check import small_suite_gate, small_suite_policy


class LengthReward:
    """A stand-in reward model: longer answers score higher (a known proxy bias)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        self.calls.append((list(prompts), list(responses)))
        return np.array([float(len(r)) for r in responses])


def _files(tmp_path: Path, jsonl: Any) -> dict[str, Path]:
    suite, cand, ref = [], [], []
    for i in range(40):
        slice_name = "chat" if i < 24 else "code"
        suite.append({"id": f"q{i}", "prompt": f"question {i}", "slice": slice_name,
                      "expect": "comply"})
        # chat: candidate longer on 18 of 24, tie on 2; code: longer on 3 of 16.
        if slice_name == "chat":
            extra = "x" * 5 if i < 18 else ""
            base = "answer" if i < 20 else "a much longer reference answer"
        else:
            extra = "y" * 3 if i < 27 else ""
            base = "answer" if i < 27 else "the reference explains it at length"
        cand.append({"id": f"q{i}", "response": "answer" + extra, "judgment": "comply"})
        ref.append({"id": f"q{i}", "response": base, "judgment": "comply"})
    return {"suite": jsonl(tmp_path / "s.jsonl", suite),
            "cand": jsonl(tmp_path / "c.jsonl", cand),
            "ref": jsonl(tmp_path / "r.jsonl", ref)}


def test_win_rate_per_slice_from_a_reward_model(tmp_path: Path, jsonl: Any) -> None:
    files = _files(tmp_path, jsonl)
    scorer = LengthReward()
    model = RewardModel(scorer, "fake-rm", "f" * 64, version="reward-test")
    result = run_check(suite=files["suite"], candidate=files["cand"], reference=files["ref"],
                       out=tmp_path / "o", reward_model=model, resamples=1000)
    # One call, candidate responses then reference responses, each with its prompt.
    (prompts, responses), = scorer.calls
    assert prompts[:40] == prompts[40:] and prompts[0] == "question 0"
    assert responses[0] == "answerxxxxx" and responses[40] == "answer"
    chat = result.report["slices"]["chat"]["rm_win_rate"]
    code = result.report["slices"]["code"]["rm_win_rate"]
    assert (chat["wins"], chat["ties"], chat["losses"]) == (18, 2, 4)
    assert chat["value"] == pytest.approx(19 / 24)
    assert (code["wins"], code["ties"], code["losses"]) == (3, 0, 13)
    assert code["value"] == pytest.approx(3 / 16)
    # The interval is Wilson's on the score (ties count one half), statsmodels as oracle.
    expected = proportion_confint(19, 24, alpha=0.05, method="wilson")
    assert chat["ci_low"] <= chat["value"] <= chat["ci_high"]
    assert chat["ci_low"] > 0.5 and code["ci_high"] < 0.5
    assert (chat["ci_low"], chat["ci_high"]) == pytest.approx(expected, abs=1e-12)
    assert chat["interval"] == "Wilson"
    assert result.record["inputs"]["versions"]["reward_model"] == {
        "kind": "reward_model", "model_dir": "fake-rm", "content_sha256": "f" * 64,
        "version": "reward-test"}
    assert result.record["inputs"]["judgments"]["candidate_reward"][0] == 11.0
    assert verify(result.record).ok
    assert "<td>chat</td><td>79.2%</td>" in (tmp_path / "o" / "report.html").read_text()


def test_win_rate_floor_blocks_a_slice(tmp_path: Path, jsonl: Any) -> None:
    files = _files(tmp_path, jsonl)
    policy = policy_from_dict({**small_suite_policy(), "behaviours": [
        *small_suite_policy()["behaviours"],
        {"name": "preferred_by_rm", "description": "not worse by the RM",
         "metric": "rm_win_rate", "decision_rule": "RM refresh",
         "regression_metric": "rm_win_rate ci_high below 1/2",
         "criteria": [{"id": "rm-not-worse", "kind": "floor", "metric": "rm_win_rate",
                       "slices": "each", "bound": "ci_high", "min": 0.5}]}]})
    result = run_check(suite=files["suite"], candidate=files["cand"], reference=files["ref"],
                       out=tmp_path / "o", reward_model=RewardModel(LengthReward(), "x", "0"),
                       policy=policy)
    failed = {(c["id"], c["slice"]) for c in result.record["decision"]["criteria"]
              if not c["passed"]}
    assert failed == {("rm-not-worse", "code")}


def test_rewards_in_the_file_and_a_reward_model_conflict(tmp_path: Path, jsonl: Any) -> None:
    suite = jsonl(tmp_path / "s.jsonl", [{"id": "a", "prompt": "p", "slice": "x",
                                          "expect": "comply"}])
    with_reward = jsonl(tmp_path / "c.jsonl", [{"id": "a", "response": "r",
                                                "judgment": "comply", "reward": 1.0}])
    with pytest.raises(InputError) as err:
        run_check(suite=suite, candidate=with_reward, reference=with_reward,
                  out=tmp_path / "o", reward_model=RewardModel(LengthReward(), "x", "0"))
    assert (err.value.field, err.value.line) == ("reward", 1)
    assert not (tmp_path / "o").exists()


def test_rm_folder_that_is_not_a_reward_model(tmp_path: Path, jsonl: Any) -> None:
    files = _files(tmp_path, jsonl)
    (tmp_path / "empty").mkdir()
    out = CliRunner().invoke(app, ["check", "--suite", str(files["suite"]), "--candidate",
                                   str(files["cand"]), "--reference", str(files["ref"]),
                                   "--out", str(tmp_path / "o"), "--rm",
                                   str(tmp_path / "empty")])
    assert out.exit_code == 2 and "manifest.json missing" in out.output


@pytest.mark.slow
def test_default_reward_model_folder_scores_through_the_cli(tmp_path: Path, jsonl: Any
                                                            ) -> None:
    """The training stage's default RM (frozen MiniLM + Bradley–Terry head), written by
    its refresh and loaded from the folder: the check's rewards are the model's scores."""
    import torch

    from hilt.train.pairs import Pair
    from hilt.train.reward import RewardConfig
    from hilt.train.reward_refresh import load_reward_model, refresh_reward_model

    torch.set_num_threads(1)
    pairs = [Pair(prompt=f"How do I bake bread {i}?",
                  chosen=f"Mix flour, water, yeast and salt; knead; bake {i} min.",
                  rejected="I can't help with that.") for i in range(16)]
    config = RewardConfig(trainable_layers=0, epochs=2, max_length=48, batch_size=8)
    rm_dir = tmp_path / "rm"
    refresh_reward_model(pairs, rm_dir, config=config, held_out_fraction=0.25,
                         progress=False)
    suite = jsonl(tmp_path / "s.jsonl", [
        {"id": f"q{i}", "prompt": f"How do I bake a cake {i}?", "slice": "baking",
         "expect": "comply"} for i in range(6)])
    cand = jsonl(tmp_path / "c.jsonl", [
        {"id": f"q{i}", "response": "Mix flour, eggs, sugar and butter; bake 30 min.",
         "judgment": "comply"} for i in range(6)])
    ref = jsonl(tmp_path / "r.jsonl", [
        {"id": f"q{i}", "response": "I can't help with that.", "judgment": "comply"}
        for i in range(6)])
    out = CliRunner().invoke(app, ["check", "--suite", str(suite), "--candidate", str(cand),
                                   "--reference", str(ref), "--out", str(tmp_path / "o"),
                                   "--rm", str(rm_dir), "--gate", str(small_suite_gate(tmp_path))])
    assert out.exit_code == 0, out.output
    record = json.loads((tmp_path / "o" / "decision.json").read_text())
    loaded = load_reward_model(rm_dir)
    expected = loaded.score([f"How do I bake a cake {i}?" for i in range(6)],
                            ["Mix flour, eggs, sugar and butter; bake 30 min."] * 6)
    assert np.allclose(record["inputs"]["judgments"]["candidate_reward"], expected)
    assert record["inputs"]["versions"]["reward_model"]["model_dir"] == str(rm_dir)
    win = record["metrics"]["slices"]["all"]["rm_win_rate"]
    assert win["n"] == 6 and win["ci_low"] is not None
    # Trained to prefer answers over refusals, it prefers the candidate here.
    assert win["value"] == 1.0


def test_rm_version_resolves_through_the_model_registry(db_url: str, engine: Any,
                                                        tmp_path: Path, jsonl: Any) -> None:
    from hilt.store.db import transaction
    from hilt.train.registry import register_model_version

    files = _files(tmp_path, jsonl)
    (tmp_path / "rm-folder").mkdir()
    ids = {}
    with transaction(engine) as session:
        for kind in ("reward", "sft"):
            ids[kind] = register_model_version(session, manifest={
                "kind": kind, "base_model": "m", "data": {"hash": "0" * 64}, "config": {},
                "seed": 0, "code_version": "t"}, artifact_path=str(tmp_path / "rm-folder")).id
    base = ["check", "--suite", str(files["suite"]), "--candidate", str(files["cand"]),
            "--reference", str(files["ref"]), "--out", str(tmp_path / "o"), "--db", db_url]
    runner = CliRunner()
    wrong_kind = runner.invoke(app, [*base, "--rm-version", ids["sft"]])
    assert wrong_kind.exit_code == 2 and "not a reward model" in wrong_kind.output
    # The registered artifact folder is what gets loaded (here: not a reward model).
    reward = runner.invoke(app, [*base, "--rm-version", ids["reward"]])
    assert reward.exit_code == 2 and "manifest.json missing" in reward.output
    both = runner.invoke(app, [*base, "--rm-version", ids["reward"], "--rm", "x"])
    assert both.exit_code == 2 and "not both" in both.output


def test_win_rate_interval_keeps_its_width_on_few_prompts() -> None:
    from hilt.evals.metrics import compute_metrics

    columns = {"slice": np.array(["s"] * 3), "expect_refuse": np.zeros(3, dtype=bool),
               "candidate_refused": np.zeros(3, dtype=bool),
               "reference_refused": np.zeros(3, dtype=bool),
               "candidate_reward": np.array([2.0, 2.0, 2.0]),
               "reference_reward": np.array([1.0, 1.0, 1.0])}
    current = compute_metrics(columns)["slices"]["s"]["rm_win_rate"]
    # three wins out of three: the value is 1, but the lower bound is far from it
    assert current["value"] == 1.0
    assert current["ci_low"] == pytest.approx(proportion_confint(3, 3, method="wilson")[0])
    assert current["ci_low"] < 0.5
    # records made with metrics version 1 keep the bootstrap, which collapses here
    old = compute_metrics(columns, version=1)["slices"]["s"]["rm_win_rate"]
    assert (old["ci_low"], old["ci_high"]) == (1.0, 1.0)
