"""One-coin Dawid–Skene: one accuracy per reviewer instead of a confusion matrix."""

from __future__ import annotations

import numpy as np

from hilt.quality._base import ClassificationAggregator, clamp_gold, softmax_rows, vote_shares
from hilt.quality.answers import Answers, FloatArray, IntArray


class OneCoinDawidSkene(ClassificationAggregator):
    r"""Dawid–Skene with a single "coin" per reviewer, fitted by MAP-EM.

    Reviewer ``w`` answers correctly with probability :math:`a_w` and otherwise picks one
    of the other :math:`K-1` labels uniformly:
    :math:`\pi^w_{cl} = a_w` if :math:`l = c`, else :math:`(1-a_w)/(K-1)`.
    With far fewer parameters than the full model it suits reviewers with few answers.

    **E-step** (for each item, over its answers):

    .. math::

        \log \Pr(z_i=c \mid y) = \log p_c + \sum_{(i,w,l)} \Bigl( \log\tfrac{1-a_w}{K-1}
            + [l=c]\,\bigl(\log a_w - \log\tfrac{1-a_w}{K-1}\bigr) \Bigr) + \text{const}

    — two ``np.bincount`` scatters over the answers, no loop over items.
    **M-step**: :math:`a_w = (\sum_{(i,w,l)} T_{il} + \alpha) / (n_w + \alpha + \beta)`
    (the MAP estimate under a Beta(α+1, β+1) prior; ``α = correct_pseudocount``,
    ``β = error_pseudocount``) and :math:`p_c \propto \sum_i T_{ic} + b`.

    With a single class every answer is trivially correct: posteriors are 1 and the
    accuracies are 1. Gold items are clamped as in :class:`DawidSkene`.

    Fitted: ``reviewers_``, ``reviewer_accuracy_``, ``priors_``, ``objective_history_``,
    ``n_iter_``, ``converged_``.

    Reference: the one-coin restriction of Dawid & Skene (1979) as used e.g. by
    Y. Zhang, X. Chen, D. Zhou, M. I. Jordan (2014), "Spectral methods meet EM: a
    provably optimal algorithm for crowdsourcing", NeurIPS.
    """

    def __init__(self, max_iter: int = 100, tol: float = 1e-5, correct_pseudocount: float = 2.0,
                 error_pseudocount: float = 1.0, prior_pseudocount: float = 1.0) -> None:
        if min(correct_pseudocount, error_pseudocount, prior_pseudocount) < 0:
            raise ValueError("pseudo-counts must be non-negative")
        self.max_iter = max_iter
        self.tol = tol
        self.correct_pseudocount = correct_pseudocount
        self.error_pseudocount = error_pseudocount
        self.prior_pseudocount = prior_pseudocount

    reviewers_: np.ndarray
    reviewer_accuracy_: FloatArray
    priors_: FloatArray
    objective_history_: list[float]
    n_iter_: int
    converged_: bool

    def _m_step(self, answers: Answers, probas: FloatArray) -> tuple[FloatArray, FloatArray]:
        n_classes = answers.n_classes
        # Posterior that each answer is the true label: T[i, l] gathered per answer.
        answer_correct = probas.ravel()[answers.item_index * n_classes + answers.label_index]
        correct = np.bincount(answers.reviewer_index, weights=answer_correct,
                              minlength=answers.n_reviewers)
        given = np.bincount(answers.reviewer_index, minlength=answers.n_reviewers)
        alpha, beta = self.correct_pseudocount, self.error_pseudocount
        denominator = given + alpha + beta
        accuracy = np.divide(correct + alpha, denominator,
                             out=np.full(answers.n_reviewers, 1.0 / n_classes),
                             where=denominator > 0)
        mass = probas.sum(axis=0) + self.prior_pseudocount
        priors = mass / mass.sum()
        return accuracy, priors

    def _fit_probas(self, answers: Answers, gold_items: IntArray,
                    gold_classes: IntArray) -> FloatArray:
        n_items, n_classes = answers.n_items, answers.n_classes
        self.reviewers_ = answers.reviewers
        self.objective_history_, self.n_iter_, self.converged_ = [], 0, True
        if n_items == 0 or n_classes == 0:
            self.reviewer_accuracy_ = np.zeros(answers.n_reviewers)
            self.priors_ = np.zeros(n_classes)
            return np.zeros((n_items, n_classes))
        if n_classes == 1:
            self.reviewer_accuracy_ = np.ones(answers.n_reviewers)
            self.priors_ = np.ones(1)
            return np.ones((n_items, 1))

        probas = vote_shares(answers)
        clamp_gold(probas, gold_items, gold_classes)
        accuracy, priors = self._m_step(answers, probas)
        self.converged_ = False
        previous = -np.inf
        flat = answers.item_index * n_classes + answers.label_index
        for iteration in range(1, self.max_iter + 1):
            accuracy = np.clip(accuracy, 1e-12, 1 - 1e-12)
            log_right = np.log(accuracy)
            log_wrong = np.log1p(-accuracy) - np.log(n_classes - 1)
            base = np.bincount(answers.item_index, weights=log_wrong[answers.reviewer_index],
                               minlength=n_items)
            bonus = np.asarray(np.bincount(
                flat, weights=(log_right - log_wrong)[answers.reviewer_index],
                minlength=n_items * n_classes), dtype=np.float64).reshape(n_items, n_classes)
            log_joint = bonus + base[:, None] + np.log(priors)[None, :]
            probas, log_evidence = softmax_rows(log_joint)
            if gold_items.size:
                log_evidence[gold_items] = log_joint[gold_items, gold_classes]
                clamp_gold(probas, gold_items, gold_classes)
            objective = (float(log_evidence.sum())
                         + float((self.correct_pseudocount * log_right
                                  + self.error_pseudocount * np.log1p(-accuracy)).sum())
                         + self.prior_pseudocount * float(np.log(priors).sum()))
            self.objective_history_.append(objective)
            self.n_iter_ = iteration
            accuracy, priors = self._m_step(answers, probas)
            if objective - previous < self.tol * answers.n_answers:
                self.converged_ = True
                break
            previous = objective
        self.reviewer_accuracy_ = accuracy
        self.priors_ = priors
        return probas
