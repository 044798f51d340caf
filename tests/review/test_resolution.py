"""Aggregation, adjudication rules, final labels, clustering and SLA re-escalation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from hilt.canonical import canonical_json
from hilt.errors import Conflict, Forbidden, NotFound
from hilt.review.adjudication import adjudicate
from hilt.review.aggregation import (
    AdjudicationPolicy,
    Aggregate,
    Answer,
    answer_key,
    decide,
    majority_aggregator,
    pairwise_agreement,
)
from hilt.review.labels import iter_final_labels
from hilt.review.queue import QueueConfig, claim_next
from hilt.review.reviews import Submission, submit_review
from hilt.review.rubric_spec import Question
from hilt.review.tasks import create_task
from hilt.review.triage import (
    TriageConfig,
    cluster_open_tasks,
    escalate_sla_breaches,
    near_duplicate_groups,
    priority,
)
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import ReviewTaskRow

from .helpers import add_reviewers, event, ingest, publish_examples

T0 = datetime(2030, 1, 1, tzinfo=UTC)
CHOICE = Question(id="v", kind="single_choice", prompt="p", options=["a", "b", "c"])


def _answers(*values: str) -> list[Answer]:
    return [Answer(f"r{i}", f"w{i}", v) for i, v in enumerate(values)]


def test_majority_aggregator_and_agreement() -> None:
    assert majority_aggregator(CHOICE, _answers("a", "a", "a")) == Aggregate("a", 1.0,
                                                                            "unanimous")
    agg = majority_aggregator(CHOICE, _answers("a", "a", "b"))
    assert agg == Aggregate("a", pytest.approx(2 / 3), "majority")
    assert majority_aggregator(CHOICE, _answers("a", "b")) is None
    assert majority_aggregator(CHOICE, _answers("a", "b", "c")) is None
    # Share of agreeing ordered pairs: (2·1 + 0) / (3·2) = 1/3.
    assert pairwise_agreement(["a", "a", "b"]) == pytest.approx(1 / 3)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, 1.0, 2.5, -0.0])
    | st.sampled_from(["", "1", "true", "safe", "null", "é"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "1"]), inner, max_size=3),
    max_leaves=6)


@given(_JSON, _JSON)
@example(1, True)
@example(1, 1.0)
@example("1", 1)
@example([1], [True])
def test_answers_count_as_equal_exactly_when_their_canonical_json_is(a: object, b: object
                                                                      ) -> None:
    """Votes are counted on a cheap key; it must split answers as the canonical text
    (hilt's definition of "the same answer") does: 1, 1.0, True and "1" all differ."""
    same = canonical_json(a) == canonical_json(b)
    assert (answer_key(a) == answer_key(b)) is same
    assert (hash(answer_key(a)) == hash(answer_key(b))) or not same


@pytest.mark.parametrize(("values", "winner", "provenance"), [
    ([1, True, 1.0], None, None),  # three different answers
    ([1, 1.0, 1.0], 1.0, "majority"),
    (["1", "1", 1], "1", "majority"),
    ([{"b": 1, "a": 2}, {"a": 2, "b": 1}, None], {"a": 2, "b": 1}, "majority"),
])
def test_majority_counts_canonical_answers(values: list[object], winner: object,
                                           provenance: str | None) -> None:
    q = Question.model_validate({"id": "v", "kind": "single_choice", "prompt": "?",
                                 "options": ["x", "y"]})
    got = majority_aggregator(q, [Answer(f"r{i}", f"p{i}", v) for i, v in enumerate(values)])
    if provenance is None:
        assert got is None
    else:
        assert got is not None and got.provenance == provenance
        assert canonical_json(got.value) == canonical_json(winner)
        assert type(got.value) is type(winner)


@pytest.mark.parametrize(("policy", "severity", "values", "flagged"), [
    (AdjudicationPolicy(mode="any_disagreement"), 3, ("a", "a", "b"), True),
    (AdjudicationPolicy(mode="agreement_below", min_agreement=0.5), 3, ("a", "a", "b"), True),
    (AdjudicationPolicy(mode="agreement_below", min_agreement=0.3), 3, ("a", "a", "b"), False),
    (AdjudicationPolicy(mode="severity_at_or_above", severity="sev1"), 1, ("a", "a", "b"),
     True),
    (AdjudicationPolicy(mode="severity_at_or_above", severity="sev1"), 2, ("a", "a", "b"),
     False),
    (AdjudicationPolicy(mode="agreement_below", min_agreement=0.0), 3, ("a", "b"), True),
    (AdjudicationPolicy(min_confidence=0.9, min_agreement=0.0), 3, ("a", "a", "b"), True),
])
def test_adjudication_rule(policy: AdjudicationPolicy, severity: int, values: tuple,
                           flagged: bool) -> None:
    (outcome,) = decide([CHOICE], {"v": _answers(*values)}, severity, policy)
    assert outcome.adjudicate is flagged


def _setup(engine: Engine, n: int = 1, k: int = 3, prompts: list[str] | None = None,
           policy: AdjudicationPolicy | None = None) -> list[str]:
    publish_examples(engine)
    ingest(engine, [event(i, prompts[i], response="the body makes antibodies")
                    if prompts else event(i) for i in range(n)])
    add_reviewers(engine, ["a", "b", "c"])
    with transaction(engine) as s:
        return [create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead",
                            overlap_k=k, policy=policy, now=T0) for i in range(n)]


def _review(engine: Engine, rid: str, verdict: str, **kw: object) -> str:
    with transaction(engine) as s:
        claim = claim_next(s, rid, now=T0, config=QueueConfig(gold_rate=0))
        assert claim is not None
        submit_review(s, claim.task_id, rid, Submission(
            {"verdict": verdict, "refusal": "complies", "helpfulness": 3}), now=T0, **kw)
        return claim.task_id


def test_majority_labels_and_iteration_filters(engine: Engine) -> None:
    _setup(engine, policy=AdjudicationPolicy(min_agreement=0.3))
    for rid, verdict in (("a", "safe"), ("b", "safe"), ("c", "harmful")):
        tid = _review(engine, rid, verdict)
    with transaction(engine) as s:
        labels = {lb.question_id: lb for lb in iter_final_labels(s)}
        assert labels["verdict"].provenance == "majority"
        assert labels["verdict"].confidence == pytest.approx(2 / 3)
        assert labels["verdict"].policy_version == "pol-1"
        assert len(labels["verdict"].review_ids) == 3 and labels["verdict"].task_id == tid
        assert labels["helpfulness"].value == 3.0
        # nobody ticked the optional "issues" checklist: all selected nothing
        assert (labels["issues"].value, labels["issues"].provenance) == ([], "unanimous")
        assert {lb.question_id for lb in iter_final_labels(s, min_confidence=0.9)} == \
            {"helpfulness", "refusal", "issues"}
        assert not list(iter_final_labels(s, provenance=["adjudicated"]))
        assert not list(iter_final_labels(s, rubric_versions=[("harm", 2)]))
        assert len(list(iter_final_labels(s, rubric_versions=[("harm", 1)], batch=1))) == 4
        assert not list(iter_final_labels(s, since=T0 + timedelta(seconds=1)))


def test_custom_aggregator_is_used(engine: Engine) -> None:
    _setup(engine, k=2)

    def model(question: Question, answers: Sequence[Answer]) -> Aggregate | None:
        # A stand-in for a reliability model that trusts reviewer "b".
        trusted = next(a for a in answers if a.reviewer_id == "b")
        return Aggregate(trusted.value, 0.93, "model_aggregated")

    _review(engine, "a", "safe", aggregator=model)
    _review(engine, "b", "harmful", aggregator=model)
    with transaction(engine) as s:
        verdict = next(lb for lb in iter_final_labels(s) if lb.question_id == "verdict")
    assert (verdict.value, verdict.provenance, verdict.confidence) == \
        ("harmful", "model_aggregated", 0.93)


def test_adjudication_writes_labels_and_proposals(engine: Engine) -> None:
    _setup(engine, k=2)
    add_reviewers(engine, ["adj"], role="adjudicator")
    _review(engine, "a", "safe")
    tid = _review(engine, "b", "harmful")
    with transaction(engine) as s:
        task = s.get(ReviewTaskRow, tid)
        assert task.status == "needs_adjudication" and "verdict" in task.adjudication_reasons
    with transaction(engine) as s, pytest.raises(Exception, match="disputed"):
        adjudicate(s, tid, "adj", answers={}, rationale="x", cause="subjective")
    with transaction(engine) as s:
        adj = adjudicate(s, tid, "adj", answers={"verdict": "borderline"},
                         rationale="depends on policy", cause="guideline_gap", now=T0)
    with transaction(engine) as s:
        labels = {lb.question_id: lb for lb in iter_final_labels(s)}
        assert labels["verdict"].adjudication_id == adj
        assert labels["verdict"].provenance == "adjudicated"
        assert labels["refusal"].provenance == "unanimous"
        assert audit.verify(s).ok


def _disputed(engine: Engine) -> str:
    _setup(engine, k=2)
    _review(engine, "a", "safe")
    return _review(engine, "b", "harmful")


def test_only_an_active_adjudicator_or_lead_may_decide(engine: Engine) -> None:
    tid = _disputed(engine)
    add_reviewers(engine, ["adj-off"], role="adjudicator")
    with transaction(engine) as s:
        s.get_one(ReviewerRow, "adj-off").active = False
    decision = {"answers": {"verdict": "safe"}, "rationale": "r", "cause": "subjective"}
    for who, error, why in (("nobody", NotFound, "does not exist"),
                            ("c", Forbidden, "role 'reviewer'"),
                            ("adj-off", Forbidden, "inactive")):
        with transaction(engine) as s, pytest.raises(error, match=why):
            adjudicate(s, tid, who, **decision)  # type: ignore[arg-type]
    with transaction(engine) as s:
        assert s.get_one(ReviewTaskRow, tid).status == "needs_adjudication"
        assert not list(iter_final_labels(s))
    add_reviewers(engine, ["lead-1"], role="lead")
    with transaction(engine) as s:
        adjudicate(s, tid, "lead-1", **decision)  # type: ignore[arg-type]
        assert s.get_one(ReviewTaskRow, tid).status == "resolved"


def test_a_reviewer_of_the_task_may_not_decide_it(engine: Engine) -> None:
    """Even with the adjudicator role: nobody settles a dispute they are party to."""
    _setup(engine, k=2)
    add_reviewers(engine, ["adj-a"], role="adjudicator")
    _review(engine, "adj-a", "safe")
    tid = _review(engine, "b", "harmful")
    add_reviewers(engine, ["adj-z"], role="adjudicator")
    with transaction(engine) as s, pytest.raises(Conflict, match="reviewed task"):
        adjudicate(s, tid, "adj-a", answers={"verdict": "safe"}, rationale="mine",
                   cause="reviewer_error")
    # An API token's admitted role stands in for the identity's; the review still counts.
    with transaction(engine) as s, pytest.raises(Conflict, match="reviewed task"):
        adjudicate(s, tid, "adj-a", answers={"verdict": "safe"}, rationale="mine",
                   cause="reviewer_error", token_role="adjudicator")
    with transaction(engine) as s:
        adjudicate(s, tid, "adj-z", answers={"verdict": "harmful"}, rationale="policy",
                   cause="reviewer_error")
        verdict = next(lb for lb in iter_final_labels(s) if lb.question_id == "verdict")
    assert (verdict.value, verdict.provenance) == ("harmful", "adjudicated")


def test_priority_formula_matches_documentation() -> None:
    cfg = TriageConfig()
    # sev0, 2 h left, uncertainty 0.5, a cluster of 4.
    # 4·(3−0)/3 + 2·exp(−2/4) + 1·0.5 + 1·log2(4)/(1+log2(4))
    expected = 4.0 + 2.0 * 0.6065306597126334 + 0.5 + 2 / 3
    assert priority(0, 2.0, 0.5, 4, cfg) == pytest.approx(expected)
    assert priority(3, -1.0, 0.0, 1, cfg) == pytest.approx(2.0)  # overdue: urgency 1
    assert priority(1, 10, 0, 1) > priority(2, 10, 0, 1)


def test_near_duplicates_cluster_and_labels_propagate(engine: Engine) -> None:
    base = "please explain how the immune system fights a common cold virus in detail"
    prompts = [base, base.upper() + "!!", "Please, explain: " + base[15:],
               "what is the capital of peru"]
    tids = _setup(engine, n=4, k=1, prompts=prompts)
    groups = near_duplicate_groups({"x": base, "y": base + "!", "z": "unrelated words"})
    assert groups == [["x", "y"]]
    with transaction(engine) as s:
        assert cluster_open_tasks(s, T0) == 2
        rep = [t for t in s.execute(sa.select(ReviewTaskRow)).scalars()
               if t.cluster_id and t.representative_id is None]
        assert len(rep) == 1 and rep[0].reach == 3
    _review(engine, "a", "safe")  # the representative comes first (highest priority)
    with transaction(engine) as s:
        labels = list(iter_final_labels(s))
        statuses = {t.id: t.status for t in s.execute(sa.select(ReviewTaskRow)).scalars()}
    propagated = [lb for lb in labels if lb.provenance == "cluster_propagated"]
    assert len({lb.task_id for lb in propagated}) == 2
    assert sorted(statuses.values()) == ["open", "resolved", "resolved", "resolved"]
    assert statuses[tids[3]] == "open"


def test_sla_breach_re_escalates(engine: Engine) -> None:
    (tid,) = _setup(engine)
    with transaction(engine) as s:
        assert escalate_sla_breaches(s, T0 + timedelta(hours=1)) == []
        assert escalate_sla_breaches(s, T0 + timedelta(hours=25)) == [tid]
        task = s.get(ReviewTaskRow, tid)
        assert (task.severity, task.escalation_level) == (1, 1)
        assert task.sla_due_at == T0 + timedelta(hours=29)  # new sev1 deadline: 4 h
        assert audit.entries(s, action="task.sla_breach")


@pytest.mark.parametrize("field", ["min_agreement", "min_confidence"])
def test_policy_thresholds_are_numbers_not_yaml_booleans(field: str) -> None:
    # `min_agreement: yes` in YAML is True, which a lax number field reads as 1
    with pytest.raises(ValueError, match="not a boolean"):
        AdjudicationPolicy.model_validate({field: True})
    assert getattr(AdjudicationPolicy.model_validate({field: 1}), field) == 1.0
