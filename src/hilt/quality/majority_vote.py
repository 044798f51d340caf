"""Majority vote."""

from __future__ import annotations

from hilt.quality._base import ClassificationAggregator, clamp_gold, vote_shares
from hilt.quality.answers import Answers, FloatArray, IntArray


class MajorityVote(ClassificationAggregator):
    r"""Majority vote: each item gets the label most of its reviewers gave.

    .. math::

        \hat z_i = \arg\max_c \sum_{w} [y_{iw} = c], \qquad
        \Pr(z_i = c) \approx \frac{\#\{w : y_{iw} = c\}}{\#\{w\}}

    ``probas_`` holds the vote shares and ``confidence_`` the winning share.

    Tie-breaking (deterministic, no randomness): among labels with the same number of
    votes the label used most often across the whole data set wins; if that is also tied,
    the first label in sorted order wins. With gold labels, gold items are clamped to
    their known label (confidence 1).
    """

    def _fit_probas(self, answers: Answers, gold_items: IntArray,
                    gold_classes: IntArray) -> FloatArray:
        probas = vote_shares(answers)
        clamp_gold(probas, gold_items, gold_classes)
        return probas
