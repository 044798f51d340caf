"""Evaluation of a reward model on held-out preference pairs.

Reported (all rates with 95 % intervals):

* ``accuracy`` — share of pairs with r(chosen) > r(rejected) (ties count half); Wilson
  interval on that fractional count of successes, and a percentile-bootstrap interval
  over pairs (:func:`hilt.train.stats.percentile_bootstrap`), which is null, with
  ``bootstrap_note`` saying why, below 5 pairs or when every pair has the same outcome
  (resampling would give [1, 1] from two correct pairs); the Wilson interval is the
  one to read at small n.
  A pair is a tie when its chosen and rejected replies are the same text, or when
  |r(chosen) − r(rejected)| < ``TIE_TOLERANCE`` (1e-5): scoring the two replies in
  differently padded batches moves a reward by about 1e-6, so an exact-zero test
  would turn identical replies into random wins and losses.
* ``ece`` — expected calibration error of P(chosen ≻ rejected) = σ(Δr). Each pair is
  counted in both orders, (σ(Δr), 1) and (1 − σ(Δr), 0), so the reliability diagram is
  symmetric and the ECE equals the usual confidence-based ECE of the binary decision.
  ``ece_ci`` is a percentile bootstrap over pairs (1,000 resamples), widened where
  needed to hold the ECE itself (ECE is biased upwards on small samples, and the
  resampled ECEs, biased further, can lie wholly above it); null with a ``note`` below
  5 pairs. Read it as the spread, not as coverage of a true calibration error.
  ``reliability_bins[*]`` carry the 95 % Wilson interval of their observed frequency
  (``observed_ci_low``/``observed_ci_high``): within a bin every point comes from a
  different pair, except a tie, whose two points (one success, one failure) share the
  bin holding 0.5 — which makes that bin's interval conservative, not narrow.
* ``mean_margin`` — mean of r(chosen) − r(rejected), with a bootstrap interval.
* ``slices`` — accuracy per ``slice`` field, per number of human turns and by whether
  the chosen reply is the shorter one.
* ``agreement_with_previous`` — share of pairs on which this and the previous model
  prefer the same reply (a tie agrees only with a tie), the Pearson correlation of
  their reward margins, and the previous model's accuracy. These are computed on the
  pairs the previous model did not train on when its training pairs are known
  (``previous_overlap: "known"``, ``previous_held_out_in_train`` pairs left out, ``n``
  pairs used); otherwise on all pairs, with ``previous_overlap: "unknown"`` and
  ``previous_held_out_in_train: null``.
* ``training_overlap`` — how many of the pairs the evaluated model trained on
  (``in_train``; pairs compared by :func:`hilt.train.pairs.pair_key`, so a pair in
  either form of contract 5, or with white space added at the ends of its texts, is
  the same pair) and its accuracy on the others (``unseen``, with a Wilson interval):
  the overall accuracy of a model scored on its own training pairs is optimistic.
  ``overlap`` is ``"known"`` when the training pairs could be recovered from the
  model's manifest, else ``"unknown"`` (``in_train`` and ``unseen`` null).
* ``bias_probes`` — Pearson correlation of reward with log(1 + word count) (Singhal et al.,
  2023, "A Long Way to Go") over both replies of every pair (``n`` replies), with a
  Fisher-z interval on the number of pairs (``n_pairs``;
  :func:`hilt.train.stats.pearson_by_pair`): the two replies of a pair answer one
  prompt and are not independent, so counting 2n replies would make the interval too
  narrow, and counting pairs is conservative; accuracy on pairs whose chosen reply is
  shorter; and
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

from hilt.train.pairs import HUMAN, Pair, pair_key, with_leading_turn_break
from hilt.train.stats import (
    expected_calibration_error,
    pearson,
    pearson_by_pair,
    percentile_bootstrap,
    rate,
    reliability_bins,
    wilson_interval,
)

PROBE_PHRASES = {
    "flattery": " What a great question, you are clearly very thoughtful and smart!",
    "apology": " I'm so sorry, I apologize for any confusion or inconvenience.",
}


class Scorer(Protocol):
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# Reward differences below this are ties (batch padding alone moves rewards ~1e-6).
TIE_TOLERANCE = 1e-5


def tie_adjusted(delta: np.ndarray, pairs: Sequence[Pair] | None = None) -> np.ndarray:
    """``delta`` with ties set to exactly 0: |delta| < ``TIE_TOLERANCE``, or a pair
    whose chosen and rejected replies are the same text."""
    delta = np.asarray(delta, dtype=float).copy()
    tie = np.abs(delta) < TIE_TOLERANCE
    if pairs is not None:
        tie |= np.array([p.chosen == p.rejected for p in pairs], dtype=bool)
    delta[tie] = 0.0
    return delta


def pair_outcomes(delta: np.ndarray) -> np.ndarray:
    """1 for a correct ranking, 0.5 for a tie (|delta| < ``TIE_TOLERANCE``), 0 otherwise."""
    delta = tie_adjusted(delta)
    return np.where(delta > 0, 1.0, np.where(delta == 0, 0.5, 0.0))


def accuracy_block(delta: np.ndarray, seed: int = 0) -> dict[str, Any]:
    outcomes = pair_outcomes(delta)
    n = int(outcomes.size)
    # Ties count half, so the count of successes may end in .5; the Wilson interval
    # is taken on that count, not on a rounded one.
    successes = float(outcomes.sum())
    low_w, high_w = wilson_interval(successes, n)
    block: dict[str, Any] = {"value": successes / n if n else None, "successes": successes,
                             "n": n, "ci_low": low_w, "ci_high": high_w}
    boot = percentile_bootstrap(outcomes, seed=seed, unit="pair")
    block.update({"value": float(outcomes.mean()) if n else None,
                  "bootstrap_ci_low": boot["low"], "bootstrap_ci_high": boot["high"],
                  "bootstrap_note": boot["note"]})
    return block


def accuracy_interval(block: dict[str, Any]) -> dict[str, Any]:
    """The interval part of an :func:`accuracy_block`, as ``accuracy_ci`` is written:
    Wilson bounds, the pairs they rest on, and the bootstrap bounds with their note."""
    return {"method": "wilson", "low": block["ci_low"], "high": block["ci_high"],
            "n": block["n"], "successes": block["successes"],
            "bootstrap_low": block["bootstrap_ci_low"],
            "bootstrap_high": block["bootstrap_ci_high"],
            "bootstrap_note": block["bootstrap_note"]}


def _turns_slice(prompt: str) -> str:
    # "Human: …" at the very start is a turn too (prompts from files keep that form).
    turns = with_leading_turn_break(prompt).count(HUMAN) or 1
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
    """Percentile bootstrap over pairs, widened to hold the estimate; None without pairs,
    null bounds and a ``note`` where the bootstrap cannot give an interval."""
    if not len(delta):
        return None
    boot = percentile_bootstrap(delta, statistic, n_resamples=resamples, unit="pair")
    return {"method": "percentile bootstrap", "low": boot["low"], "high": boot["high"],
            "note": boot["note"]}


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
    chosen_length = np.log1p([len(p.chosen.split()) for p in pairs])
    rejected_length = np.log1p([len(p.rejected.split()) for p in pairs])
    shorter = np.array([len(p.chosen.split()) < len(p.rejected.split()) for p in pairs])
    delta = chosen_reward - rejected_reward
    probes: dict[str, Any] = {
        "reward_length_correlation": pearson_by_pair(chosen_reward, rejected_reward,
                                                     chosen_length, rejected_length),
        "accuracy_chosen_shorter": accuracy_block(delta[shorter]),
        "appended_phrases": {},
    }
    correct = delta > 0
    for name, phrase in PROBE_PHRASES.items():
        boosted = model.score(prompts, [p.rejected + phrase for p in pairs])
        shift = boosted - rejected_reward
        boot = percentile_bootstrap(shift, unit="pair")
        flips = int(((chosen_reward - boosted) <= 0)[correct].sum())
        probes["appended_phrases"][name] = {
            "phrase": phrase.strip(),
            "mean_reward_shift": float(shift.mean()), "ci_low": boot["low"],
            "ci_high": boot["high"], "ci_note": boot["note"],
            "reward_std": float(rewards.std()),
            "flip_rate": rate(flips, int(correct.sum())),
        }
    return probes


def _agreement(previous: Scorer, pairs: Sequence[Pair], delta: np.ndarray,
               previous_train_keys: set[tuple[str, str, str]] | None) -> dict[str, Any]:
    """Agreement with the previous model and its accuracy, on the pairs it did not train
    on when its training pairs are known, else on all pairs (``previous_overlap``
    says which)."""
    if previous_train_keys is None:
        unseen = np.ones(len(pairs), dtype=bool)
        overlap: dict[str, Any] = {"previous_overlap": "unknown",
                                   "previous_held_out_in_train": None}
    else:
        unseen = np.array([pair_key(p) not in previous_train_keys for p in pairs], dtype=bool)
        overlap = {"previous_overlap": "known",
                   "previous_held_out_in_train": int((~unseen).sum())}
    kept = [p for p, keep in zip(pairs, unseen, strict=True) if keep]
    prompts = [p.prompt for p in kept]
    prev_delta = tie_adjusted(np.asarray(previous.score(prompts, [p.chosen for p in kept]),
                                         dtype=float)
                              - np.asarray(previous.score(prompts, [p.rejected for p in kept]),
                                           dtype=float), kept) if kept else np.zeros(0)
    mine = delta[unseen]
    same = int((np.sign(mine) == np.sign(prev_delta)).sum())
    previous_accuracy = accuracy_block(prev_delta)
    return {
        **overlap,
        "n": len(kept),
        "same_preference": rate(same, len(kept)),
        "margin_correlation": pearson(mine, prev_delta),
        "previous_accuracy": previous_accuracy["value"],
        "previous_accuracy_ci": {"low": previous_accuracy["ci_low"],
                                 "high": previous_accuracy["ci_high"]},
    }


def training_overlap(pairs: Sequence[Pair], delta: np.ndarray,
                     train_keys: set[tuple[str, str, str]] | None) -> dict[str, Any]:
    """The evaluated pairs the model trained on and its accuracy on the rest (pure)."""
    if train_keys is None:
        return {"overlap": "unknown", "in_train": None, "unseen": None}
    unseen = np.array([pair_key(p) not in train_keys for p in pairs], dtype=bool)
    acc = accuracy_block(delta[unseen]) if unseen.size else accuracy_block(np.zeros(0))
    return {"overlap": "known", "in_train": int((~unseen).sum()),
            "unseen": {"n": acc["n"], "accuracy": acc["value"],
                       "accuracy_ci": {"method": "wilson", "low": acc["ci_low"],
                                       "high": acc["ci_high"]}}}


def evaluate_reward_model(model: Scorer, pairs: Sequence[Pair],
                          previous: Scorer | None = None, probes: bool = True,
                          n_bins: int = 10,
                          previous_train_keys: set[tuple[str, str, str]] | None = None,
                          train_keys: set[tuple[str, str, str]] | None = None,
                          ) -> dict[str, Any]:
    """All held-out metrics of the module docstring, as plain data.

    ``previous_train_keys`` (:func:`hilt.train.pairs.pair_key` of the previous model's
    training pairs) restricts the comparison with ``previous`` to the pairs it did not
    train on; ``train_keys`` (the same for ``model``) gives ``training_overlap``; None
    means they are unknown."""
    prompts = [p.prompt for p in pairs]
    chosen_reward = np.asarray(model.score(prompts, [p.chosen for p in pairs]), dtype=float)
    rejected_reward = np.asarray(model.score(prompts, [p.rejected for p in pairs]), dtype=float)
    delta = tie_adjusted(chosen_reward - rejected_reward, pairs)
    acc = accuracy_block(delta)
    ece, bins = calibration(delta, n_bins)
    report: dict[str, Any] = {
        "n": len(pairs),
        "accuracy": acc["value"],
        "accuracy_ci": accuracy_interval(acc),
        "ece": ece,
        "ece_ci": _interval(delta, lambda d: calibration(d, n_bins)[0], 1000),
        "reliability_bins": bins,
        "mean_margin": float(delta.mean()) if len(delta) else None,
        "mean_margin_ci": _interval(delta, np.mean, 2000),
        "slices": slice_accuracy(pairs, delta),
        "training_overlap": training_overlap(pairs, delta, train_keys),
        "agreement_with_previous": None,
    }
    if previous is not None:
        report["agreement_with_previous"] = _agreement(previous, pairs, delta,
                                                       previous_train_keys)
    if probes:
        report["bias_probes"] = bias_probes(model, pairs, chosen_reward, rejected_reward)
    return report
