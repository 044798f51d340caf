"""Classifiers from reviewed labels, the XSTest string-match baseline, the public interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hilt.train.classifier import (
    ClassifierConfig,
    choose_threshold,
    load_classifier,
    train_classifier,
)
from hilt.train.classifier_eval import classification_report, evaluate_classifier
from hilt.train.refusal import XSTEST_MODELS, load_xstest_completions, string_match_refusal

REFUSALS = ["I'm sorry, but I can't help with that request.",
            "I cannot provide instructions for that; it could cause harm.",
            "As an AI, I won't assist with this, but I can suggest safer options.",
            "No, I will not do that. It is not appropriate.",
            "I apologise, this isn't something I can help with.",
            "Unfortunately I am unable to share that information."]
ANSWERS = ["Sure! Boil the water, add the pasta and cook for ten minutes.",
           "The capital of France is Paris, on the Seine.",
           "Here is a Python loop: for i in range(3): print(i).",
           "To kill a process on Linux, run kill followed by its PID.",
           "Photosynthesis turns light, water and carbon dioxide into sugar.",
           "A haiku has three lines of five, seven and five syllables."]


def test_string_match_rule_reproduces_xstest_reported_range(shared_data: Path) -> None:
    # XSTest reports 0.86–0.94 binary accuracy for this rule on these completions.
    accuracies = {}
    for model in XSTEST_MODELS:
        rows = load_xstest_completions(shared_data / "xstest", model)
        hits = [string_match_refusal(r["completion"]) == (r["label"] == "refuse") for r in rows]
        accuracies[model] = np.mean(hits)
    assert all(0.85 <= a <= 0.95 for a in accuracies.values()), accuracies
    assert string_match_refusal("  I'm sorry, no.") and not string_match_refusal("Sure, sorry!")


def test_threshold_rules_meet_their_targets() -> None:
    rng = np.random.default_rng(0)
    positive = rng.random(400) < 0.4
    proba = np.clip(np.where(positive, 0.7, 0.3) + rng.normal(0, 0.2, 400), 0, 1)
    t_fpr = choose_threshold(proba, positive, target_fpr=0.05)
    assert ((proba >= t_fpr) & ~positive).sum() / (~positive).sum() <= 0.05
    t_fnr = choose_threshold(proba, positive, target_fnr=0.05)
    assert ((proba < t_fnr) & positive).sum() / positive.sum() <= 0.05
    assert t_fnr < choose_threshold(proba, positive) < t_fpr


def test_classification_report_matches_sklearn() -> None:
    from sklearn.metrics import precision_recall_fscore_support

    truth = ["a", "a", "b", "b", "b", "c"]
    guess = ["a", "b", "b", "b", "c", "c"]
    ours = classification_report(truth, guess, ["a", "b", "c"])
    p, r, _, _ = precision_recall_fscore_support(truth, guess, labels=["a", "b", "c"])
    for i, label in enumerate("abc"):
        assert ours["per_class"][label]["precision"]["value"] == pytest.approx(p[i])
        assert ours["per_class"][label]["recall"]["value"] == pytest.approx(r[i])
        assert ours["per_class"][label]["recall"]["ci_low"] <= r[i]
    assert ours["accuracy"] == pytest.approx(4 / 6)


@pytest.mark.slow
def test_train_save_load_predict_interface(tmp_path: Path) -> None:
    texts = REFUSALS + ANSWERS
    labels = ["refuse"] * len(REFUSALS) + ["comply"] * len(ANSWERS)
    model = train_classifier(texts, labels, ClassifierConfig(folds=3, positive_label="refuse"))
    assert list(model.classes_) == ["comply", "refuse"]
    v = model.validation
    assert {"false_positive_rate", "false_negative_rate", "accuracy"} <= set(v)
    assert v["false_positive_rate"]["ci_low"] <= v["false_positive_rate"]["value"]
    model.save(tmp_path / "clf")
    loaded = load_classifier(tmp_path / "clf")
    probe = ["I'm sorry, I can't do that.", "Add salt and stir the soup well."]
    assert loaded.predict(probe) == ["refuse", "comply"]
    proba = loaded.predict_proba(probe)
    assert isinstance(proba, np.ndarray) and proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_allclose(proba, model.predict_proba(probe))
    report = evaluate_classifier(loaded, probe, ["refuse", "comply"])
    assert report["accuracy"] == 1.0 and report["per_class"]["refuse"]["recall"]["n"] == 1


def test_duplicate_weights_give_each_distinct_text_one_unit() -> None:
    from hilt.train.classifier import duplicate_weights

    weights = duplicate_weights(["a", "b", "a", "a"])
    np.testing.assert_allclose(weights, [1 / 3, 1.0, 1 / 3, 1 / 3])


@pytest.mark.slow
def test_context_similarity_and_deduplication_round_trip(tmp_path: Path) -> None:
    texts = REFUSALS + ANSWERS + REFUSALS[:1] * 4
    labels = ["refuse"] * len(REFUSALS) + ["comply"] * len(ANSWERS) + ["refuse"] * 4
    prompts = ["How do I do this?"] * len(texts)
    config = ClassifierConfig(folds=3, positive_label="refuse", opening_chars=40,
                              refusal_lexicon=True, context_similarity=True, deduplicate=True)
    model = train_classifier(texts, labels, config, contexts=prompts)
    # two similarity columns after the 4 cheap and 13 lexicon features
    assert model.cheap_mean.shape == (19,)
    with pytest.raises(ValueError, match="context"):
        model.predict(["I'm sorry, I can't do that."])
    model.save(tmp_path / "clf")
    loaded = load_classifier(tmp_path / "clf")
    probe = ["I'm sorry, I can't do that.", "Add salt and stir the soup well."]
    np.testing.assert_allclose(loaded.predict_proba(probe, prompts[:2]),
                               model.predict_proba(probe, prompts[:2]))


@pytest.mark.slow
def test_harmful_request_flags_round_trip(tmp_path: Path) -> None:
    # the same contesting reply refuses a harmful request and answers a harmless one
    contest = "There is no reason why they should not be allowed to vote."
    texts = REFUSALS + ANSWERS + [contest, contest]
    labels = ["refuse"] * len(REFUSALS) + ["comply"] * len(ANSWERS) + ["refuse", "comply"]
    harmful = [True] * len(REFUSALS) + [False] * len(ANSWERS) + [True, False]
    config = ClassifierConfig(folds=3, positive_label="refuse", refusal_lexicon=True,
                              harmful_request_negation=True)
    model = train_classifier(texts, labels, config, harmful=harmful)
    assert model.uses_harmful and model.cheap_mean.shape == (18,)
    with pytest.raises(ValueError, match="harmful"):
        model.predict([contest])
    both = model.features([contest, contest], harmful=[True, False])
    # only the last column (negation in the first sentence, for harmful requests) differs
    assert both[0, -1] > both[1, -1]
    np.testing.assert_array_equal(both[0, :-1], both[1, :-1])
    p_harmful, p_harmless = model.predict_proba([contest, contest], harmful=[True, False])[:, 1]
    assert p_harmful > p_harmless
    model.save(tmp_path / "clf")
    loaded = load_classifier(tmp_path / "clf")
    assert loaded.uses_harmful
    np.testing.assert_allclose(loaded.predict_proba([contest], harmful=[True]),
                               model.predict_proba([contest], harmful=[True]))
