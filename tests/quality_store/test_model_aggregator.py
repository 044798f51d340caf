"""The fitted-model aggregator (pure): posteriors, fallbacks, ties, the confidence floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hilt.quality import DawidSkene
from hilt.quality.calibration import ReviewerStatus
from hilt.quality.model_aggregator import ModelAggregationConfig, ModelAggregator, QuestionModel
from hilt.review.aggregation import AdjudicationPolicy, Answer, decide
from hilt.review.eligibility import GOLD_ONLY_STATUSES, PRODUCTION_STATUSES, eligible_work
from hilt.review.rubric_spec import Question

CHOICE = Question.model_validate({"id": "v", "kind": "single_choice", "prompt": "p",
                                  "options": ["a", "b", "c"]})
TEXT = Question(id="t", kind="free_text", prompt="p")


def _model(**kwargs: object) -> QuestionModel:
    good = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    coin = np.full((3, 3), 1 / 3)
    params = {"model_id": "m", "classes": ("a", "b", "c"), "reviewers": ("w1", "w2", "spam"),
              "confusion": np.stack([good, good * 0.5 + coin * 0.5, coin]),
              "priors": np.array([0.5, 0.3, 0.2]),
              "reviewer_answers": np.array([50, 50, 50]), "min_reviewer_answers": 20,
              "min_confidence": 0.8}
    params.update(kwargs)
    return QuestionModel(**params)  # type: ignore[arg-type]


def _answers(*pairs: tuple[str, str]) -> list[Answer]:
    return [Answer(f"r{i}", w, v) for i, (w, v) in enumerate(pairs)]


def test_posterior_is_the_dawid_skene_formula() -> None:
    model = _model()
    got = model.posterior(["w1", "w2", "spam"], ["b", "a", "c"])
    # p_c · π^w1_{c,b} · π^w2_{c,a} · π^spam_{c,c}, normalised (written out by hand).
    conf = model.confusion
    expected = np.array([model.priors[c] * conf[0, c, 1] * conf[1, c, 0] * conf[2, c, 2]
                         for c in range(3)])
    assert got is not None
    np.testing.assert_allclose(got, expected / expected.sum(), rtol=1e-12)


def test_posterior_matches_a_fitted_model() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 200)
    rows = [(i, w, int(t) if rng.random() < acc else int(rng.integers(0, 3)))
            for i, t in enumerate(truth) for w, acc in (("w1", 0.9), ("w2", 0.8), ("w3", 0.6))]
    frame = pd.DataFrame(rows, columns=["item", "reviewer", "label"]).astype({"label": str})
    fitted = DawidSkene(tol=1e-12, max_iter=500).fit(frame)
    model = QuestionModel("m", tuple(fitted.classes_), tuple(fitted.reviewers_),
                          fitted.confusion_matrices_, fitted.priors_, np.array([200] * 3), 0)
    item = frame[frame["item"] == 7]
    got = model.posterior(item["reviewer"].tolist(), item["label"].tolist())
    assert got is not None
    # At convergence the E-step with the final parameters reproduces the fit's posterior.
    np.testing.assert_allclose(got, fitted.probas_[list(fitted.items_).index(7)], atol=1e-6)


def test_model_decides_only_for_well_seen_reviewers_and_known_labels() -> None:
    model = _model(reviewer_answers=np.array([50, 5, 50]))
    agg = model.aggregate(CHOICE, _answers(("w1", "a"), ("spam", "b"), ("w1", "a")))
    assert agg is not None and agg.provenance == "model_aggregated" and agg.value == "a"
    assert agg.min_confidence == 0.8
    # w2 has 5 answers < 20: majority vote instead.
    fallback = model.aggregate(CHOICE, _answers(("w1", "a"), ("w2", "a"), ("spam", "b")))
    assert fallback is not None and fallback.provenance == "majority"
    assert model.aggregate(CHOICE, _answers(("new", "a"))).provenance == "unanimous"  # type: ignore[union-attr]
    assert model.posterior(["w1"], ["zzz"]) is None
    # Other question kinds never go to the model.
    router = ModelAggregator({"v": model, "t": model})
    assert router(TEXT, _answers(("w1", "x"), ("w1", "x"))).provenance == "unanimous"  # type: ignore[union-attr]


def test_the_expert_outvotes_two_spammers() -> None:
    model = _model(reviewers=("w1", "w2", "spam", "spam2"),
                   confusion=np.concatenate([_model().confusion, _model().confusion[2:]]),
                   reviewer_answers=np.array([50, 50, 50, 50]))
    agg = model.aggregate(CHOICE, _answers(("w1", "c"), ("spam", "a"), ("spam2", "a")))
    assert agg is not None and agg.value == "c"  # majority vote would say "a"


def test_ties_go_to_the_most_voted_label_then_class_order() -> None:
    coin = np.full((1, 3, 3), 1 / 3)
    model = _model(reviewers=("s",), confusion=coin, priors=np.full(3, 1 / 3),
                   reviewer_answers=np.array([50]))
    agg = model.aggregate(CHOICE, _answers(("s", "b"), ("s", "c"), ("s", "c")))
    assert agg is not None and agg.value == "c" and agg.confidence == pytest.approx(1 / 3)
    agg = model.aggregate(CHOICE, _answers(("s", "c"), ("s", "b")))
    assert agg is not None and agg.value == "b"


def test_low_model_confidence_goes_to_adjudication() -> None:
    model = _model()
    router = ModelAggregator({"v": model})
    split = _answers(("w1", "a"), ("w1", "b"))  # two equally good answers disagree
    (outcome,) = decide([CHOICE], {"v": split}, 3, AdjudicationPolicy(), router)
    assert outcome.aggregate is not None and outcome.aggregate.confidence < 0.8
    assert outcome.adjudicate and outcome.reason is not None and "0.8" in outcome.reason
    confident = _answers(("w1", "a"), ("w2", "a"), ("spam", "b"))
    (outcome,) = decide([CHOICE], {"v": confident}, 3, AdjudicationPolicy(), router)
    # A model answer is not sent to adjudication for disagreement alone.
    assert not outcome.adjudicate and outcome.aggregate.confidence > 0.8  # type: ignore[union-attr]


def test_config_round_trip_and_validation() -> None:
    config = ModelAggregationConfig(min_confidence=0.7)
    assert ModelAggregationConfig.from_dict(config.as_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        ModelAggregationConfig.from_dict({"min_confidense": 0.7})
    with pytest.raises(ValueError):
        ModelAggregationConfig(min_confidence=1.5)


def test_eligibility_follows_the_status_machine() -> None:
    for status in ReviewerStatus:
        expected = ("gold_only" if status is ReviewerStatus.ONBOARDING else
                    "all" if status.may_take_production_tasks else "none")
        assert eligible_work(status.value) == expected
        assert eligible_work(status.value, active=False) == "none"
    assert {s.value for s in ReviewerStatus} > GOLD_ONLY_STATUSES | PRODUCTION_STATUSES
    assert eligible_work("retired") == "none"
