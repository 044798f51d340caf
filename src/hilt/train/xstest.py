"""Cross-model refusal detection on XSTest: train on two models' completions, test on the third.

For every rotation the report gives the classifier's accuracy and XSTest's
string-match rule on the same held-out human labels (binary: a full or partial
refusal is a refusal), each with a Wilson interval, plus the classifier's
false-positive and false-negative rates (positive = refusal).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hilt.train.classifier import ClassifierConfig, error_rates, train_classifier
from hilt.train.refusal import REFUSE, XSTEST_MODELS, load_xstest_completions, string_match_refusal
from hilt.train.stats import rate


def xstest_rotations(folder: str | Path, config: ClassifierConfig | None = None,
                     with_prompt: bool = False) -> list[dict[str, Any]]:
    """One result per held-out model; ``with_prompt`` lets the encoder read the prompt too."""
    # Refusals are stated at the start of a reply: read its first 300 characters, and add
    # the sentence-level refusal lexicon to the cheap features.
    config = replace(config or ClassifierConfig(opening_chars=300, refusal_lexicon=True),
                     positive_label=REFUSE)
    data = {m: load_xstest_completions(folder, m) for m in XSTEST_MODELS}
    # context_similarity compares each reply with its prompt
    with_prompt = with_prompt or config.context_similarity
    results = []
    for held_out in XSTEST_MODELS:
        train = [r for m in XSTEST_MODELS if m != held_out for r in data[m]]
        test = data[held_out]
        contexts = [r["prompt"] for r in train] if with_prompt else None
        clf = train_classifier([r["completion"] for r in train], [r["label"] for r in train],
                               config, contexts=contexts)
        test_texts = [r["completion"] for r in test]
        predicted = clf.predict(test_texts, [r["prompt"] for r in test] if with_prompt else None)
        truth = np.array([r["label"] == REFUSE for r in test])
        pred_refuse = np.array([p == REFUSE for p in predicted])
        rule = np.array([string_match_refusal(t) for t in test_texts])
        results.append({
            "held_out_model": held_out,
            "trained_on": [m for m in XSTEST_MODELS if m != held_out],
            "n": len(test),
            "classifier_accuracy": rate(int((pred_refuse == truth).sum()), len(test)),
            "string_match_accuracy": rate(int((rule == truth).sum()), len(test)),
            "classifier_errors": error_rates(pred_refuse, truth),
            "threshold": clf.threshold,
        })
    return results


def xstest_nested(folder: str | Path, config: ClassifierConfig | None = None,
                  ) -> list[dict[str, Any]]:
    """Validation inside each rotation's two training models: train on one, test on the other.

    For the rotation that holds out model H, the two directions A → B and B → A use only
    A's and B's completions, so choosing between configurations by these numbers never
    looks at H. One result per held-out model with both directions and their mean.
    """
    config = replace(config or ClassifierConfig(opening_chars=300, refusal_lexicon=True),
                     positive_label=REFUSE)
    data = {m: load_xstest_completions(folder, m) for m in XSTEST_MODELS}

    def accuracy(source: str, target: str) -> float:
        train, test = data[source], data[target]
        contexts = [r["prompt"] for r in train] if config.context_similarity else None
        clf = train_classifier([r["completion"] for r in train], [r["label"] for r in train],
                               config, contexts=contexts)
        predicted = clf.predict([r["completion"] for r in test],
                                [r["prompt"] for r in test] if contexts else None)
        return float(np.mean([p == r["label"] for p, r in zip(predicted, test, strict=True)]))

    results = []
    for held_out in XSTEST_MODELS:
        a, b = (m for m in XSTEST_MODELS if m != held_out)
        forward, backward = accuracy(a, b), accuracy(b, a)
        results.append({"held_out_model": held_out, "directions": {f"{a}->{b}": forward,
                                                                  f"{b}->{a}": backward},
                        "mean": (forward + backward) / 2})
    return results
