"""Linear Bradley–Terry experts: the penalised BT fit and the lexical (TF-IDF) expert."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, sparse

from hilt.train.reward import CONFIG_FILE, EncoderReward, RewardConfig
from hilt.train.reward_linear import (
    LexicalExpert,
    fit_lexical_expert,
    fit_linear_bradley_terry,
)
from tests.train.conftest import synthetic_pairs


def _differences(n: int = 120, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    truth = rng.normal(size=dim)
    d = rng.normal(size=(n, dim))
    # orient each pair so that its label is drawn from the BT model itself
    chosen_first = rng.random(n) < 1 / (1 + np.exp(-d @ truth))
    return np.where(chosen_first[:, None], d, -d), truth


def test_bradley_terry_fit_is_the_penalised_likelihood_optimum() -> None:
    """Oracle: scipy minimising ½‖w‖² + 2C Σ log(1 + e^{−wᵀd}) directly (scikit-learn's
    objective on the symmetrised set counts every pair twice)."""
    d, truth = _differences()
    c = 0.3
    w = fit_linear_bradley_terry(d, seed=0, penalties=(c,))

    def objective(v: np.ndarray) -> float:
        return 0.5 * float(v @ v) + 2 * c * float(np.logaddexp(0, -d @ v).sum())

    best = optimize.minimize(objective, np.zeros(d.shape[1]), method="BFGS").x
    np.testing.assert_allclose(w, best, atol=1e-3)
    assert np.corrcoef(w, truth)[0, 1] > 0.9


def test_sparse_and_dense_differences_give_the_same_fit() -> None:
    d, _ = _differences()
    dense = fit_linear_bradley_terry(d, seed=1)
    np.testing.assert_allclose(fit_linear_bradley_terry(sparse.csr_matrix(d), seed=1), dense,
                               atol=1e-6)


def test_lexical_expert_ranks_unseen_pairs_and_round_trips(tmp_path: Path) -> None:
    train, held = synthetic_pairs(36), synthetic_pairs(24, offset=100)
    expert = fit_lexical_expert([p.chosen for p in train], [p.rejected for p in train])
    assert len(expert.terms) == len(expert.idf) == len(expert.weights) > 0
    delta = expert.score([p.chosen for p in held]) - expert.score([p.rejected for p in held])
    assert (delta > 0).mean() >= 0.9
    expert.save(tmp_path)
    again = LexicalExpert.load(tmp_path)
    np.testing.assert_array_equal(again.score([p.chosen for p in held]),
                                  expert.score([p.chosen for p in held]))
    assert expert.score([]).shape == (0,)


def test_lexical_expert_without_frequent_ngrams_scores_zero() -> None:
    expert = fit_lexical_expert(["", ""], ["", ""])
    assert len(expert.terms) == 0
    np.testing.assert_array_equal(expert.score(["anything", ""]), [0.0, 0.0])
    with pytest.raises(ValueError, match="at least one"):
        fit_lexical_expert([], [])


def test_model_saved_before_the_lexical_expert_loads_without_it(tmp_path: Path) -> None:
    model = EncoderReward(RewardConfig(trainable_layers=1, max_length=32))
    model.save(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    del config["lexical_expert"]  # as written by earlier versions
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    loaded = EncoderReward.load(tmp_path)
    assert loaded.config.lexical_expert is False and loaded.lexical is None
    assert loaded.score(["\n\nHuman: hi\n\nAssistant:"], ["hello"]).shape == (1,)
