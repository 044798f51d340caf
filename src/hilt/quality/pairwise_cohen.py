r"""Light's kappa: Cohen's kappa averaged over every pair of reviewers with common items.

For reviewers :math:`a < b` who both rated the items :math:`U_{ab}`, with item weights
:math:`w_u` (all ones for the estimate, bootstrap counts for a resample), the pair's
weighted confusion matrix is :math:`C^{ab}_{ij} = \sum_{u \in U_{ab}} w_u
[y_{au} = i][y_{bu} = j]`, its size :math:`n_{ab} = \sum_{ij} C^{ab}_{ij}` and, with the
disagreement weights :math:`d` of :func:`~hilt.quality.agreement.disagreement_weights`
(0/1, ``|i-j|`` or ``(i-j)²`` over label positions),

.. math::
    \kappa_{ab} = 1 - \frac{\sum_{ij} d_{ij} C^{ab}_{ij}}
                          {\sum_{ij} d_{ij} r^{ab}_i c^{ab}_j / n_{ab}},
    \qquad \kappa = \operatorname{mean}_{(a, b)\,:\,\kappa_{ab}\text{ defined}} \kappa_{ab}

where :math:`r^{ab}` and :math:`c^{ab}` are the row and column sums of :math:`C^{ab}`. A
pair's kappa is undefined (and left out of the mean) when its items carry no weight or
its chance disagreement is zero (every rating of the pair in one category). This is
:class:`~hilt.quality.agreement.CohenKappaStatistic` per pair, evaluated for all pairs at
once: the expected disagreement needs only the margins, so a resample costs three
``bincount`` calls over the (pair, shared item) entries, never a ``pairs × k × k`` array
and never a Python loop over pairs.

Reference: R. J. Light (1971), "Measures of response agreement for qualitative data",
Psychol. Bull. 76(5):365–377; J. Cohen (1960, 1968) for the pairwise kappa.
"""

from __future__ import annotations

import numpy as np

from hilt.quality.agreement import KappaWeights, disagreement_weights
from hilt.quality.answers import Answers, FloatArray, IntArray

# Each (pair, shared item) entry takes about 40 bytes to hold (several times that while
# the pairs are built) and is read three times per bootstrap resample: a resample costs
# up to about 0.3 s per million entries when most pairs share one or two items, so past
# this many the default 1,000 resamples take most of an hour, while Fleiss' kappa and
# Krippendorff's alpha grow only with the number of answers.
MAX_PAIR_ENTRIES = 5_000_000


def pair_entries(item_index: IntArray, n_items: int) -> int:
    """How many (reviewer pair, shared item) entries Light's kappa compares: the sum over
    items of ``m(m-1)/2`` for an item with ``m`` answers."""
    per_item = np.bincount(item_index, minlength=n_items).astype(np.int64)
    return int((per_item * (per_item - 1) // 2).sum())


class MeanPairwiseCohenStatistic:
    """Light's kappa over long-format answers as a weighted statistic over items.

    The units are the items rated by at least two reviewers, in the order of their item
    codes; ``unit_weights[u]`` weighs unit ``u`` in every pair that shares it. The answers
    hold at most one answer per item and reviewer. More than :data:`MAX_PAIR_ENTRIES`
    (pair, shared item) entries is a ``ValueError`` that names the alternatives.
    """

    def __init__(self, answers: Answers, weights: KappaWeights = None) -> None:
        entries = pair_entries(answers.item_index, answers.n_items)
        if entries > MAX_PAIR_ENTRIES:
            raise ValueError(
                f"cohen (Light's mean pairwise kappa) would compare {entries:,} reviewer "
                f"pairs on shared items, more than {MAX_PAIR_ENTRIES:,}: use fleiss or "
                "krippendorff, which grow with the number of answers, not of pairs")
        k = answers.n_classes
        order = np.lexsort((answers.reviewer_index, answers.item_index))
        items = answers.item_index[order]
        reviewers = answers.reviewer_index[order]
        labels = answers.label_index[order]
        per_item = np.bincount(items, minlength=answers.n_items).astype(np.int64)
        # Every answer pairs with the answers after it on the same item (sorted by
        # reviewer, so each pair comes once, as (lower reviewer, higher reviewer)).
        group_start = np.repeat(np.cumsum(per_item) - per_item, per_item)
        position = np.arange(items.size, dtype=np.int64)
        later = np.repeat(per_item, per_item) - (position - group_start) - 1
        first = np.repeat(position, later)
        run_start = np.repeat(np.cumsum(later) - later, later)
        second = first + 1 + (np.arange(first.size, dtype=np.int64) - run_start)

        pair_key = reviewers[first] * max(answers.n_reviewers, 1) + reviewers[second]
        _, pair = np.unique(pair_key, return_inverse=True)
        self.pair = pair.reshape(-1).astype(np.int64)
        self.n_pairs = int(self.pair.max()) + 1 if self.pair.size else 0

        self.unit_ids = np.flatnonzero(per_item >= 2).astype(np.int64)
        unit_of_item = np.full(answers.n_items, -1, dtype=np.int64)
        unit_of_item[self.unit_ids] = np.arange(self.unit_ids.size)
        self.unit = unit_of_item[items[first]]
        self.n_units = int(self.unit_ids.size)

        self.n_classes = k
        self.disagreement = disagreement_weights(k, weights)
        self.row_cell = self.pair * k + labels[first]
        self.column_cell = self.pair * k + labels[second]
        self.entry_disagreement = self.disagreement[labels[first], labels[second]]

    def pair_kappas(self, unit_weights: FloatArray) -> FloatArray:
        """Each pair's weighted kappa (``nan`` where undefined), in pair order."""
        n_pairs, k = self.n_pairs, self.n_classes
        entry_weights = np.asarray(unit_weights, dtype=np.float64)[self.unit]
        rows = np.bincount(self.row_cell, weights=entry_weights,
                           minlength=n_pairs * k).reshape(n_pairs, k)
        columns = np.bincount(self.column_cell, weights=entry_weights,
                              minlength=n_pairs * k).reshape(n_pairs, k)
        observed = np.bincount(self.pair, weights=entry_weights * self.entry_disagreement,
                               minlength=n_pairs)
        total = rows.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = ((rows @ self.disagreement) * columns).sum(axis=1) / total
            kappas = 1.0 - observed / expected
        return np.where((total > 0) & (expected > 0), kappas, np.nan)

    def __call__(self, unit_weights: FloatArray) -> float:
        kappas = self.pair_kappas(unit_weights)
        defined = kappas[np.isfinite(kappas)]
        return float(defined.mean()) if defined.size else float("nan")
