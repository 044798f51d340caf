"""The check's reward-model win rate counts reward differences below the reward
evaluation's tie tolerance as ties (metrics version 3), so identical replies scored in
differently padded batches are not random wins and losses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hilt.evals.metrics import METRICS_VERSION, compute_metrics
from hilt.gate.decision import build_decision, verify
from hilt.gate.policy import default_policy
from hilt.train.reward_eval import TIE_TOLERANCE


def _columns(candidate: list[float], reference: list[float]) -> dict[str, np.ndarray]:
    n = len(candidate)
    refused = np.zeros(n, dtype=bool)
    return {"slice": np.array(["s"] * n), "expect_refuse": np.zeros(n, dtype=bool),
            "candidate_refused": refused, "reference_refused": refused.copy(),
            "candidate_reward": np.asarray(candidate, dtype=float),
            "reference_reward": np.asarray(reference, dtype=float)}


# Identical replies: the same rewards up to batch-padding noise (about 1e-6), then one
# real win and one real loss.
REFERENCE = [0.3, -1.2, 2.5, 0.7, 1.1, 0.0]
CANDIDATE = [0.3 + 1e-6, -1.2 - 2e-6, 2.5, 0.7 + 3e-6, 1.1 + 0.5, 0.0 - 0.25]


def test_identical_replies_with_padding_noise_are_ties() -> None:
    assert METRICS_VERSION >= 3
    win = compute_metrics(_columns(CANDIDATE, REFERENCE))["slices"]["all"]["rm_win_rate"]
    assert (win["wins"], win["ties"], win["losses"]) == (1, 4, 1)
    assert win["value"] == pytest.approx(0.5)
    assert win["ci_low"] < 0.5 < win["ci_high"]


def test_the_tie_tolerance_is_the_reward_evaluations() -> None:
    below, above = 0.9 * TIE_TOLERANCE, 1.1 * TIE_TOLERANCE
    win = compute_metrics(_columns([below, above, -above], [0.0, 0.0, 0.0])
                          )["slices"]["all"]["rm_win_rate"]
    assert (win["wins"], win["ties"], win["losses"]) == (1, 1, 1)


def test_version_two_records_keep_exact_ties_and_still_verify() -> None:
    old = compute_metrics(_columns(CANDIDATE, REFERENCE), version=2
                          )["slices"]["all"]["rm_win_rate"]
    assert (old["wins"], old["ties"], old["losses"]) == (3, 1, 2)
    n = len(REFERENCE)
    judgments: dict[str, Any] = {
        "id": [f"i{i}" for i in range(n)], "slice": ["s"] * n, "expect": ["comply"] * n,
        "candidate": ["comply"] * n, "reference": ["comply"] * n,
        "candidate_source": ["file"] * n, "reference_source": ["file"] * n,
        "candidate_reward": CANDIDATE, "reference_reward": REFERENCE}
    args: dict[str, Any] = {
        "policy": default_policy(), "judgments": judgments,
        "versions": {"candidate": {"id": "m2"}, "reference": {"id": "m1"}},
        "facts": {"suites": ["s@1"]}, "created_at": "2025-01-01T00:00:00+00:00"}
    for version, ties in ((2, 1), (3, 4)):
        record = build_decision(settings={"alpha": 0.05, "bootstrap_resamples": 200,
                                          "seed": 0, "metrics_version": version}, **args)
        assert record["metrics"]["slices"]["all"]["rm_win_rate"]["ties"] == ties
        assert verify(record).ok
