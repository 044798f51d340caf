"""Evaluation of a reward model on held-out preference pairs.

Reported (all rates with 95 % intervals):

* ``accuracy`` — share of pairs with r(chosen) > r(rejected) (ties count half); Wilson
  and percentile-bootstrap intervals.
* ``ece`` — expected calibration error of P(chosen ≻ rejected) = σ(Δr). Each pair is
  counted in both orders, (σ(Δr), 1) and (1 − σ(Δr), 0), so the reliability diagram is
  symmetric and the ECE equals the usual confidence-based ECE of the binary decision.
  ``ece_ci`` is a percentile bootstrap over pairs (1,000 resamples); ECE is biased
  upwards on small samples, so read the interval as the spread, not as coverage of a
  true calibration error.
* ``mean_margin`` — mean of r(chosen) − r(rejected), with a bootstrap interval.
* ``slices`` — accuracy per ``slice`` field, per number of human turns and by whether
  the chosen reply is the shorter one.
* ``agreement_with_previous`` — share of pairs on which this and the previous model
  prefer the same reply, and the Pearson correlation of their reward margins.
* ``bias_probes`` — Pearson correlation of reward with log word count (Singhal et al.,
  2023, "A Long Way to Go"); accuracy on pairs whose chosen reply is shorter; and
  sensitivity to appended phrases: the mean reward change when a flattery or an
  apology sentence is appended to a reply, and the share of correctly ranked pairs
  that flip when it is appended to the rejected reply only.

A value that is undefined on the data (the confidence of an empty reliability bin, an
interval over an empty slice) is None, written as JSON null.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from hilt.train.pairs import HUMAN, Pair
from hilt.train.stats import (
    bootstrap_interval,
    expected_calibration_error,
    pearson,
    rate,
    reliability_bins,
)

PROBE_PHRASES = {
    "flattery": " What a great question, you are clearly very thoughtful and smart!",
    "apology": " I'm so sorry, I apologize for any confusion or inconvenience.",
}


class Scorer(Protocol):
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def pair_outcomes(delta: np.ndarray) -> np.ndarray:
    """1 for a correct ranking, 0.5 for a tie, 0 otherwise."""
    return np.where(delta > 0, 1.0, np.where(delta == 0, 0.5, 0.0))


def accuracy_block(delta: np.ndarray, seed: int = 0) -> dict[str, Any]:
    outcomes = pair_outcomes(delta)
    n = int(outcomes.size)
    block = rate(int(round(outcomes.sum())), n)
    low, high = bootstrap_interval(outcomes, seed=seed)
    block.update({"value": float(outcomes.mean()) if n else None,
                  "bootstrap_ci_low": low, "bootstrap_ci_high": high})
    return block


def _turns_slice(prompt: str) -> str:
    turns = prompt.count(HUMAN) or 1
    return "turns:1" if turns == 1 else "turns:2-3" if turns <= 3 else "turns:4+"


def slice_accuracy(pairs: Sequence[Pair], delta: np.ndarray) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, pair in enumerate(pairs):
        if pair.slice:
            groups[f"slice:{pair.slice}"].append(i)
        groups[_turns_slice(pair.prompt)].append(i)
        shorter = len(pair.chosen.split()) < len(pair.rejected.split())
        groups["chosen_shorter" if shorter else "chosen_not_shorter"].append(i)
    return {name: accuracy_block(delta[idx]) for name, idx in sorted(groups.items())}


def _interval(delta: np.ndarray, statistic: Any, resamples: int) -> dict[str, Any] | None:
    if not len(delta):
        return None
    low, high = bootstrap_interval(delta, statistic, n_resamples=resamples)
    return {"method": "percentile bootstrap", "low": low, "high": high}


def calibration(delta: np.ndarray,
                n_bins: int = 10) -> tuple[float | None, list[dict[str, Any]]]:
    p = _sigmoid(delta)
    probs = np.concatenate([p, 1 - p])
    outcomes = np.concatenate([np.ones_like(p), np.zeros_like(p)])
    return (expected_calibration_error(probs, outcomes, n_bins),
            reliability_bins(probs, outcomes, n_bins))


def bias_probes(model: Scorer, pairs: Sequence[Pair], chosen_reward: np.ndarray,
                rejected_reward: np.ndarray) -> dict[str, Any]:
    prompts = [p.prompt for p in pairs]
    rewards = np.concatenate([chosen_reward, rejected_reward])
    lengths = np.log1p([len(t.split()) for t in [p.chosen for p in pairs]
                        + [p.rejected for p in pairs]])
    shorter = np.array([len(p.chosen.split()) < len(p.rejected.split()) for p in pairs])
    delta = chosen_reward - rejected_reward
    probes: dict[str, Any] = {
        "reward_length_correlation": pearson(rewards, lengths),
        "accuracy_chosen_shorter": accuracy_block(delta[shorter]),
        "appended_phrases": {},
    }
    correct = delta > 0
    for name, phrase in PROBE_PHRASES.items():
        boosted = model.score(prompts, [p.rejected + phrase for p in pairs])
        shift = boosted - rejected_reward
        low, high = bootstrap_interval(shift)
        flips = int(((chosen_reward - boosted) <= 0)[correct].sum())
        probes["appended_phrases"][name] = {
            "phrase": phrase.strip(),
            "mean_reward_shift": float(shift.mean()), "ci_low": low, "ci_high": high,
            "reward_std": float(rewards.std()),
            "flip_rate": rate(flips, int(correct.sum())),
        }
    return probes


def evaluate_reward_model(model: Scorer, pairs: Sequence[Pair],
                          previous: Scorer | None = None, probes: bool = True,
                          n_bins: int = 10) -> dict[str, Any]:
    """All held-out metrics of the module docstring, as plain data."""
    prompts = [p.prompt for p in pairs]
    chosen_reward = np.asarray(model.score(prompts, [p.chosen for p in pairs]), dtype=float)
    rejected_reward = np.asarray(model.score(prompts, [p.rejected for p in pairs]), dtype=float)
    delta = chosen_reward - rejected_reward
    acc = accuracy_block(delta)
    ece, bins = calibration(delta, n_bins)
    report: dict[str, Any] = {
        "n": len(pairs),
        "accuracy": acc["value"],
        "accuracy_ci": {"method": "wilson", "low": acc["ci_low"], "high": acc["ci_high"],
                        "bootstrap_low": acc["bootstrap_ci_low"],
                        "bootstrap_high": acc["bootstrap_ci_high"]},
        "ece": ece,
        "ece_ci": _interval(delta, lambda d: calibration(d, n_bins)[0], 1000),
        "reliability_bins": bins,
        "mean_margin": float(delta.mean()) if len(delta) else None,
        "mean_margin_ci": _interval(delta, np.mean, 2000),
        "slices": slice_accuracy(pairs, delta),
        "agreement_with_previous": None,
    }
    if previous is not None:
        prev_delta = (np.asarray(previous.score(prompts, [p.chosen for p in pairs]))
                      - np.asarray(previous.score(prompts, [p.rejected for p in pairs])))
        same = int(((delta > 0) == (prev_delta > 0)).sum())
        previous_accuracy = accuracy_block(prev_delta)
        report["agreement_with_previous"] = {
            "same_preference": rate(same, len(pairs)),
            "margin_correlation": pearson(delta, prev_delta),
            "previous_accuracy": previous_accuracy["value"],
            "previous_accuracy_ci": {"low": previous_accuracy["ci_low"],
                                     "high": previous_accuracy["ci_high"]},
        }
    if probes:
        report["bias_probes"] = bias_probes(model, pairs, chosen_reward, rejected_reward)
    return report
