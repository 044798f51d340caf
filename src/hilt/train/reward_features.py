"""What the reward model sees: the conversation view and cheap hand-made features.

Views (``RewardConfig.view``):

* ``last_exchange`` — the last human turn and the reply, encoded as one sequence
  (``[CLS] Human: q Assistant: r [SEP]``; tokens are cut from the longer part
  first). On HH harmless pairs the earlier turns mostly repeat the same request and
  push the reply out of a small encoder's window.
* ``full`` — the whole transcript and the reply, the transcript cut from its
  start so the latest turns survive.
* ``response`` — the reply alone.

Cheap features (added to the learnt reward as a linear term, standardised): log word
count, a refusal/caution marker count, a question-mark count and an empty-reply flag.
They are what a reviewer would check first, and they carry the length prior that the
bias probes then measure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from hilt.train.pairs import last_exchange

VIEWS = ("last_exchange", "full", "response")

# Words that mark a refusal, a warning or a redirect, the behaviours that separate
# harmless from harmful replies most often.
CAUTION_MARKERS = re.compile(
    r"\b(sorry|apologi[sz]e|can't|cannot|won't|not (?:able|comfortable|going|sure)|illegal|"
    r"unethical|harmful|harm|dangerous|don't think|i don't|instead|please don't|"
    r"inappropriate|against the law|not a good idea|not okay|not ok)\b",
    re.IGNORECASE,
)

CHEAP_FEATURE_NAMES = ("log_words", "caution_markers", "question_marks", "empty_reply")


def cheap_features(responses: Sequence[str]) -> np.ndarray:
    """One row of :data:`CHEAP_FEATURE_NAMES` per response."""
    rows = []
    for text in responses:
        words = len(text.split())
        rows.append([np.log1p(words), float(len(CAUTION_MARKERS.findall(text))),
                     float(text.count("?")), float(words == 0)])
    return np.asarray(rows, dtype=np.float32).reshape(len(responses), len(CHEAP_FEATURE_NAMES))


def view_texts(view: str, prompts: Sequence[str],
               responses: Sequence[str]) -> tuple[list[str] | None, list[str]]:
    """(first segment or None, second segment) of each input for the chosen view."""
    if view == "last_exchange":
        return [f"Human: {last_exchange(p)}" for p in prompts], \
            [f"Assistant: {r}" for r in responses]
    if view == "full":
        return [p.strip() for p in prompts], [f"Assistant: {r}" for r in responses]
    if view == "response":
        return None, list(responses)
    raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
