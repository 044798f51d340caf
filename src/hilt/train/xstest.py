"""Cross-model refusal detection on XSTest: train on two models' completions, test on the third.

For every rotation the report gives the classifier's accuracy and XSTest's
string-match rule on the same held-out human labels (binary: a full or partial
refusal is a refusal), each with a Wilson interval, plus the classifier's
false-positive and false-negative rates (positive = refusal).

The default configuration was chosen by nested validation (:func:`xstest_nested`,
``docs/train.md``): the first 300 characters of the reply, the sentence lexicon, the
prompt–reply similarity, duplicates weighted 1/count, and, for XSTest's unsafe prompts,
whether the reply's first two sentences hold a negation cue.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hilt.train.classifier import ClassifierConfig, error_rates, train_classifier
from hilt.train.refusal import REFUSE, XSTEST_MODELS, load_xstest_completions, string_match_refusal
from hilt.train.stats import rate

XSTEST_DEFAULT = ClassifierConfig(opening_chars=300, refusal_lexicon=True,
                                  context_similarity=True, deduplicate=True,
                                  harmful_request_negation=True)


def _fit_predict(train: list[dict[str, Any]], test: list[dict[str, Any]],
                 config: ClassifierConfig, with_prompt: bool) -> tuple[list[str], float | None]:
    """Train on ``train`` records; the predicted labels of ``test`` and the threshold."""
    # the flags are read only by a configuration that uses them
    def inputs(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"contexts": [r["prompt"] for r in rows] if with_prompt else None,
                "harmful": [r["harmful"] for r in rows]}

    clf = train_classifier([r["completion"] for r in train], [r["label"] for r in train],
                           config, **inputs(train))
    return clf.predict([r["completion"] for r in test], **inputs(test)), clf.threshold


def _config(config: ClassifierConfig | None) -> ClassifierConfig:
    return replace(config or XSTEST_DEFAULT, positive_label=REFUSE)


def xstest_rotations(folder: str | Path, config: ClassifierConfig | None = None,
                     with_prompt: bool = False) -> list[dict[str, Any]]:
    """One result per held-out model; ``with_prompt`` lets the encoder read the prompt too."""
    config = _config(config)
    data = {m: load_xstest_completions(folder, m) for m in XSTEST_MODELS}
    # context_similarity compares each reply with its prompt
    with_prompt = with_prompt or config.context_similarity
    results = []
    for held_out in XSTEST_MODELS:
        train = [r for m in XSTEST_MODELS if m != held_out for r in data[m]]
        test = data[held_out]
        predicted, threshold = _fit_predict(train, test, config, with_prompt)
        truth = np.array([r["label"] == REFUSE for r in test])
        pred_refuse = np.array([p == REFUSE for p in predicted])
        rule = np.array([string_match_refusal(r["completion"]) for r in test])
        results.append({
            "held_out_model": held_out,
            "trained_on": [m for m in XSTEST_MODELS if m != held_out],
            "n": len(test),
            "classifier_accuracy": rate(int((pred_refuse == truth).sum()), len(test)),
            "string_match_accuracy": rate(int((rule == truth).sum()), len(test)),
            "classifier_errors": error_rates(pred_refuse, truth),
            "threshold": threshold,
        })
    return results


def xstest_nested(folder: str | Path, config: ClassifierConfig | None = None,
                  ) -> list[dict[str, Any]]:
    """Validation inside each rotation's two training models: train on one, test on the other.

    For the rotation that holds out model H, the two directions A → B and B → A use only
    A's and B's completions, so choosing between configurations by these numbers never
    looks at H. One result per held-out model with both directions and their mean
    (``directions``, ``mean``: plain accuracies), and the same as rates with 95 % Wilson
    intervals and n (``direction_rates``; ``mean_rate`` over the replies of both
    directions, which are different replies).
    """
    config = _config(config)
    data = {m: load_xstest_completions(folder, m) for m in XSTEST_MODELS}

    def accuracy(source: str, target: str) -> dict[str, Any]:
        predicted, _ = _fit_predict(data[source], data[target], config,
                                    config.context_similarity)
        right = sum(p == r["label"] for p, r in zip(predicted, data[target], strict=True))
        return rate(int(right), len(data[target]))

    results = []
    for held_out in XSTEST_MODELS:
        a, b = (m for m in XSTEST_MODELS if m != held_out)
        forward, backward = accuracy(a, b), accuracy(b, a)
        results.append({"held_out_model": held_out,
                        "directions": {f"{a}->{b}": forward["value"],
                                       f"{b}->{a}": backward["value"]},
                        "mean": (forward["value"] + backward["value"]) / 2,
                        "direction_rates": {f"{a}->{b}": forward, f"{b}->{a}": backward},
                        "mean_rate": rate(forward["successes"] + backward["successes"],
                                          forward["n"] + backward["n"])})
    return results
