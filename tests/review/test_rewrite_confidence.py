"""A text answer only some of a task's reviewers gave is as sure as the share who gave it."""

from __future__ import annotations

from hilt.review.aggregation import AdjudicationPolicy, Answer, decide
from hilt.review.rubric_spec import Question

CHOICE = Question(id="v", kind="single_choice", prompt="p", options=["a", "b"])
REWRITE = Question(id="rw", kind="rewrite", prompt="better response", required=False)


def _outcomes(rewrites: list[str]) -> dict[str, tuple[object, float, str]]:
    answers = {"v": [Answer(f"rv{i}", f"r{i}", "a") for i in range(3)],
               "rw": [Answer(f"rv{i}", f"r{i}", text) for i, text in enumerate(rewrites)]}
    out = decide([CHOICE, REWRITE], answers, 2, AdjudicationPolicy())
    return {o.question_id: (o.aggregate.value, o.aggregate.confidence,
                            o.aggregate.provenance)
            for o in out if o.aggregate is not None}


def test_one_reviewers_rewrite_is_not_an_agreed_label() -> None:
    found = _outcomes(["Better."])
    assert found["rw"][0] == "Better." and found["rw"][2] == "unanimous"
    assert abs(found["rw"][1] - 1 / 3) < 1e-12
    assert found["v"] == ("a", 1.0, "unanimous")  # judged questions are unaffected


def test_a_rewrite_every_reviewer_wrote_keeps_full_confidence() -> None:
    assert _outcomes(["Better."] * 3)["rw"] == ("Better.", 1.0, "unanimous")
