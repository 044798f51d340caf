"""A fitted Dawid–Skene model as the review workflow's aggregator (pure, no database).

The review workflow resolves a task from the k answers it received through an
*aggregator* ``(question, answers) -> Aggregate | None`` (:mod:`hilt.review.aggregation`).
:class:`QuestionModel` holds the parameters of a Dawid–Skene model fitted over **all**
reviews of one rubric question (so that every reviewer's confusion matrix is estimated
from all of their work, not from one task) and scores one task's answers with them:

.. math::

    \\Pr(z = c \\mid y) = \\frac{p_c \\prod_{(w, l) \\in y} \\pi^w_{cl}}
                              {\\sum_{c'} p_{c'} \\prod_{(w, l) \\in y} \\pi^w_{c'l}}

This is the E-step of the fitted model applied to the task's answers, so for a task that
was part of the fit it reproduces the model's posterior, and a task answered after the
fit is scored with the same parameters.

**When the model decides.** Only when every reviewer of the task has at least
``min_reviewer_answers`` answers in the fit (their confusion matrix is then estimated,
not just the prior) and every answer is one of the model's classes; otherwise the task
falls back to majority vote (:func:`hilt.review.aggregation.majority_aggregator`). The
model's answer carries its posterior as the confidence, provenance ``model_aggregated``
and ``min_confidence`` as its floor: a posterior below it sends the question to an
adjudicator.

**Ties** (posteriors equal within 1e-12): the label given most often on the task wins,
then the first in class order.

Reference: A. P. Dawid and A. M. Skene (1979), JRSS C 28(1):20–28.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from hilt.quality._base import TIE_TOLERANCE
from hilt.quality._settings import SettingError, require_bool, require_int, require_number
from hilt.quality.answers import FloatArray, IntArray
from hilt.review.aggregation import Aggregate, Answer, majority_aggregator
from hilt.review.rubric_spec import Question

# Question kinds the model aggregates: one label out of a fixed option list.
MODEL_KINDS = ("single_choice",)
_TINY = 1e-300


@dataclass(frozen=True)
class ModelAggregationConfig:
    """Settings of model aggregation in the review workflow (recorded with every fit)."""

    min_reviewer_answers: int = 20
    """The model decides a task only if each of its reviewers has this many answers in
    the fit; otherwise majority vote."""
    min_confidence: float = 0.8
    """A model posterior below this sends the question to adjudication."""
    reopen_low_confidence: bool = True
    """On a refit, send resolved tasks whose automatic label now falls below
    ``min_confidence`` back to adjudication (the label row stays until decided)."""
    max_iter: int = 100
    tol: float = 1e-5
    correct_pseudocount: float = 0.5
    error_pseudocount: float = 0.1
    prior_pseudocount: float = 1.0

    def __post_init__(self) -> None:
        require_int("min_reviewer_answers", self.min_reviewer_answers, minimum=0)
        require_number("min_confidence", self.min_confidence, low=0.0, high=1.0)
        # "no" in a settings file must not switch reopening on.
        require_bool("reopen_low_confidence", self.reopen_low_confidence)
        require_int("max_iter", self.max_iter, minimum=0)
        for name in ("tol", "correct_pseudocount", "error_pseudocount", "prior_pseudocount"):
            require_number(name, getattr(self, name), low=0.0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelAggregationConfig:
        """Build from a mapping; unknown keys are an error (a typo must not be ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingError(unknown[0], "is not a setting (unknown settings "
                               f"{unknown})")
        return cls(**dict(data))


@dataclass(frozen=True)
class QuestionModel:
    """Fitted Dawid–Skene parameters of one rubric question, ready to score tasks.

    ``confusion[w, c, l]`` = P(reviewer ``w`` answers ``classes[l]`` | truth
    ``classes[c]``); ``priors[c]`` the class prior; ``reviewer_answers[w]`` the
    reviewer's answers in the fit.
    """

    model_id: str
    classes: tuple[str, ...]
    reviewers: tuple[str, ...]
    confusion: FloatArray
    priors: FloatArray
    reviewer_answers: IntArray
    min_reviewer_answers: int = 20
    min_confidence: float = 0.8
    _reviewer_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _class_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_reviewer_index",
                           {r: i for i, r in enumerate(self.reviewers)})
        object.__setattr__(self, "_class_index", {c: i for i, c in enumerate(self.classes)})

    def knows(self, reviewer_id: str) -> bool:
        """Whether the reviewer has enough answers in the fit for the model to decide."""
        index = self._reviewer_index.get(reviewer_id)
        return index is not None and int(self.reviewer_answers[index]) >= \
            self.min_reviewer_answers

    def posterior(self, reviewer_ids: Sequence[str], labels: Sequence[Any]
                  ) -> FloatArray | None:
        """P(truth | these answers) over ``classes``; ``None`` when the model may not
        decide (an unknown or too little seen reviewer, or a label outside the classes)."""
        if not reviewer_ids or not self.classes:
            return None
        rows, cols = [], []
        for reviewer, label in zip(reviewer_ids, labels, strict=True):
            column = self._class_index.get(label) if isinstance(label, str) else None
            if column is None or not self.knows(reviewer):
                return None
            rows.append(self._reviewer_index[reviewer])
            cols.append(column)
        # log p_c + Σ_answers log π^w_{c, l}: gather the answered columns of each
        # reviewer's matrix (shape answers × classes) and sum over answers.
        log_confusion = np.log(np.maximum(self.confusion[rows, :, cols], _TINY))
        log_joint = np.log(np.maximum(self.priors, _TINY)) + log_confusion.sum(axis=0)
        log_joint -= log_joint.max()
        probas = np.exp(log_joint)
        return np.asarray(probas / probas.sum(), dtype=np.float64)

    def aggregate(self, question: Question, answers: Sequence[Answer]) -> Aggregate | None:
        """The workflow aggregator: the model's posterior, or majority vote when the
        model may not decide."""
        labels = [a.value for a in answers]
        probas = self.posterior([a.reviewer_id for a in answers], labels)
        if probas is None:
            return majority_aggregator(question, answers)
        votes = np.array([labels.count(c) for c in self.classes], dtype=np.float64)
        tied = probas >= probas.max() - TIE_TOLERANCE
        # Among tied classes: most votes on this task, then class order.
        best = int(np.argmax(np.where(tied, votes * len(self.classes)
                                      + (len(self.classes) - np.arange(len(self.classes))),
                                      -1.0)))
        return Aggregate(self.classes[best], float(probas[best]), "model_aggregated",
                         min_confidence=self.min_confidence)


@dataclass(frozen=True)
class ModelAggregator:
    """Aggregator over a rubric: the fitted model of a question where there is one (and
    the question is a single choice), majority vote elsewhere."""

    models: Mapping[str, QuestionModel]

    def __call__(self, question: Question, answers: Sequence[Answer]) -> Aggregate | None:
        model = self.models.get(question.id)
        if model is None or question.kind not in MODEL_KINDS:
            return majority_aggregator(question, answers)
        return model.aggregate(question, answers)
