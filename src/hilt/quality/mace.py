"""MACE: Multi-Annotator Competence Estimation."""

from __future__ import annotations

import numpy as np

from hilt.quality._base import ClassificationAggregator, clamp_gold, softmax_rows, vote_shares
from hilt.quality.answers import Answers, FloatArray, IntArray


class MACE(ClassificationAggregator):
    r"""MACE (Hovy et al., 2013), fitted by MAP-EM.

    Each reviewer ``w`` either knows the answer (probability :math:`\theta_w`, the
    *competence*) and gives the true label, or "spams" and draws a label from their own
    distribution :math:`\xi_w`:

    .. math::

        \Pr(y = l \mid z = c) = \theta_w [l = c] + (1 - \theta_w)\, \xi_{w,l}

    True labels have a uniform prior, as in the paper. **E-step**: posteriors
    :math:`T_{ic}` from the product of these terms (log space, two bincount scatters).
    **M-step**: for each answer the posterior of "knew it" is
    :math:`k = T_{il}\, \theta_w / (\theta_w + (1-\theta_w)\xi_{w,l})`;
    :math:`\theta_w = (\sum k + a)/(n_w + a + b)` and
    :math:`\xi_{w,l} \propto \sum_{\text{answers } l} (1-k) + s` (MAP under Beta(a+1, b+1)
    and Dirichlet(s+1) priors; ``a = competence_pseudocount``, ``b = spam_pseudocount``,
    ``s = spam_label_pseudocount``). A reviewer answering at random gets a low
    :math:`\theta_w` and so almost no say. The original paper fits by EM or variational
    Bayes with several restarts; this implementation starts once from majority vote.

    Fitted: ``reviewers_``, ``competence_`` (:math:`\theta_w`), ``spam_distribution_``
    (:math:`\xi_w`, ``n_reviewers × K``), ``objective_history_``, ``n_iter_``, ``converged_``.

    Reference: D. Hovy, T. Berg-Kirkpatrick, A. Vaswani, E. Hovy (2013), "Learning whom
    to trust with MACE", NAACL-HLT, https://aclanthology.org/N13-1132
    """

    def __init__(self, max_iter: int = 100, tol: float = 1e-5,
                 competence_pseudocount: float = 1.0, spam_pseudocount: float = 1.0,
                 spam_label_pseudocount: float = 1.0) -> None:
        if min(competence_pseudocount, spam_pseudocount, spam_label_pseudocount) < 0:
            raise ValueError("pseudo-counts must be non-negative")
        self.max_iter = max_iter
        self.tol = tol
        self.competence_pseudocount = competence_pseudocount
        self.spam_pseudocount = spam_pseudocount
        self.spam_label_pseudocount = spam_label_pseudocount

    reviewers_: np.ndarray
    competence_: FloatArray
    spam_distribution_: FloatArray
    objective_history_: list[float]
    n_iter_: int
    converged_: bool

    def _m_step(self, answers: Answers, probas: FloatArray, competence: FloatArray,
                spam: FloatArray) -> tuple[FloatArray, FloatArray]:
        n_classes, reviewer = answers.n_classes, answers.reviewer_index
        answered_true = probas.ravel()[answers.item_index * n_classes + answers.label_index]
        theta = competence[reviewer]
        xi = spam.ravel()[reviewer * n_classes + answers.label_index]
        knew = answered_true * theta / (theta + (1.0 - theta) * xi)
        given = np.bincount(reviewer, minlength=answers.n_reviewers)
        a, b, s = self.competence_pseudocount, self.spam_pseudocount, self.spam_label_pseudocount
        knew_total = np.bincount(reviewer, weights=knew, minlength=answers.n_reviewers)
        denominator = given + a + b
        new_competence = np.divide(knew_total + a, denominator,
                                   out=np.full(answers.n_reviewers, 0.5), where=denominator > 0)
        spam_counts = np.asarray(np.bincount(
            reviewer * n_classes + answers.label_index, weights=1.0 - knew,
            minlength=answers.n_reviewers * n_classes), dtype=np.float64)
        spam_counts = spam_counts.reshape(answers.n_reviewers, n_classes) + s
        totals = spam_counts.sum(axis=1, keepdims=True)
        new_spam = np.divide(spam_counts, totals, out=np.full_like(spam_counts, 1.0 / n_classes),
                             where=totals > 0)
        return new_competence, new_spam

    def _fit_probas(self, answers: Answers, gold_items: IntArray,
                    gold_classes: IntArray) -> FloatArray:
        n_items, n_classes, n_reviewers = answers.n_items, answers.n_classes, answers.n_reviewers
        self.reviewers_ = answers.reviewers
        self.objective_history_, self.n_iter_, self.converged_ = [], 0, True
        if n_items == 0 or n_classes == 0:
            self.competence_ = np.zeros(n_reviewers)
            self.spam_distribution_ = np.zeros((n_reviewers, n_classes))
            return np.zeros((n_items, n_classes))

        probas = vote_shares(answers)
        clamp_gold(probas, gold_items, gold_classes)
        competence, spam = self._m_step(answers, probas, np.full(n_reviewers, 0.5),
                                        np.full((n_reviewers, n_classes), 1.0 / n_classes))
        flat = answers.item_index * n_classes + answers.label_index
        previous = -np.inf
        self.converged_ = False
        for iteration in range(1, self.max_iter + 1):
            competence = np.clip(competence, 1e-12, 1 - 1e-12)
            theta = competence[answers.reviewer_index]
            xi = np.maximum(spam.ravel()[answers.reviewer_index * n_classes
                                         + answers.label_index], 1e-300)
            log_other = np.log1p(-theta) + np.log(xi)
            log_same = np.log(theta + (1.0 - theta) * xi)
            base = np.bincount(answers.item_index, weights=log_other, minlength=n_items)
            bonus = np.bincount(flat, weights=log_same - log_other,
                                minlength=n_items * n_classes).reshape(n_items, n_classes)
            log_joint = bonus + base[:, None] - np.log(n_classes)
            probas, log_evidence = softmax_rows(log_joint)
            if gold_items.size:
                log_evidence[gold_items] = log_joint[gold_items, gold_classes]
                clamp_gold(probas, gold_items, gold_classes)
            objective = (float(log_evidence.sum())
                         + float((self.competence_pseudocount * np.log(competence)
                                  + self.spam_pseudocount * np.log1p(-competence)).sum())
                         + self.spam_label_pseudocount * float(np.log(np.maximum(spam, 1e-300))
                                                               .sum()))
            self.objective_history_.append(objective)
            self.n_iter_ = iteration
            competence, spam = self._m_step(answers, probas, competence, spam)
            if objective - previous < self.tol * answers.n_answers:
                self.converged_ = True
                break
            previous = objective
        self.competence_ = competence
        self.spam_distribution_ = spam
        return probas
