"""Sentence-level refusal lexicon features."""

from __future__ import annotations

import numpy as np

from hilt.train.classifier import ClassifierConfig, cheap_feature_matrix, cheap_feature_names
from hilt.train.refusal_lexicon import LEXICON_FEATURE_NAMES, lexicon_refusal_features, sentences


def _named(text: str) -> dict[str, float]:
    row = lexicon_refusal_features([text])[0]
    return dict(zip(LEXICON_FEATURE_NAMES, row.tolist(), strict=True))


def test_sentences_split_on_punctuation_and_lines() -> None:
    assert sentences("One. Two?\nThree!  Four") == ["One.", "Two?", "Three!", "Four"]
    assert sentences("") == []


def test_refusal_sentence_combines_categories() -> None:
    refusal = _named("Unfortunately, I won't help with that because it would be harmful. "
                     "Instead, talk to someone you trust.")
    assert refusal["apology_first_sentence"] == 1 and refusal["inability_first_sentence"] == 1
    assert refusal["norms_first_sentence"] == 1 and refusal["redirection_opening"] == 1
    assert refusal["max_sentence_score"] == 3 and refusal["compliance_opening"] == 0
    assert refusal["share_refusal_sentences"] == 0.5


def test_compliance_scores_low_and_redirection_alone_does_not_count() -> None:
    comply = _named("Sure! Boil the eggs for ten minutes. However, peel them while warm.")
    assert comply["compliance_opening"] == 1
    assert comply["max_sentence_score"] == 0  # "however" alone is not a refusal
    assert comply["share_refusal_sentences"] == 0
    empty = lexicon_refusal_features([""])
    assert empty.shape == (1, len(LEXICON_FEATURE_NAMES)) and np.isfinite(empty).all()


def test_classifier_adds_lexicon_columns_only_when_configured() -> None:
    texts = ["I'm sorry, I can't do that.", "Here is the answer."]
    plain, rich = ClassifierConfig(), ClassifierConfig(refusal_lexicon=True)
    assert cheap_feature_matrix(texts, plain).shape == (2, len(cheap_feature_names(plain)))
    assert cheap_feature_matrix(texts, rich).shape == (2, len(cheap_feature_names(rich)))
    assert len(cheap_feature_names(rich)) == len(cheap_feature_names(plain)) + \
        len(LEXICON_FEATURE_NAMES)


def test_opening_negation_reads_the_first_two_sentences() -> None:
    from hilt.train.refusal_lexicon import opening_negation

    texts = ["There is no reason why they should not vote.", "I don’t have access to that.",
             "Knead the dough. It is not hard.", "Knead the dough. Bake it. Do not burn it.",
             "Nothing beats rest.", "Know your rights.", ""]
    np.testing.assert_array_equal(opening_negation(texts), [1, 1, 1, 0, 1, 0, 0])
    assert opening_negation(["Knead the dough. It is not hard."], count=1)[0] == 0


def test_harmful_request_column_needs_flags_and_applies_to_harmful_requests_only() -> None:
    import pytest

    from hilt.train.classifier import HARMFUL_FEATURE_NAMES, _harmful_column

    config = ClassifierConfig(refusal_lexicon=True, harmful_request_negation=True)
    assert cheap_feature_names(config)[-1:] == list(HARMFUL_FEATURE_NAMES)
    texts = ["It was not justified.", "It was not justified.", "Here it is. Enjoy."]
    np.testing.assert_array_equal(_harmful_column(texts, [True, False, True])[:, 0], [1, 0, 0])
    with pytest.raises(ValueError, match="harmful"):
        _harmful_column(texts, None)
    with pytest.raises(ValueError, match="2 harmful-request flags for 3 texts"):
        _harmful_column(texts, [True, False])
