"""Escalation rule language (pure) and escalation on ingest (database)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from scipy.stats import binomtest
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.events.validate import parse_event
from hilt.review.escalation import (
    activate_rule_set,
    apply_active_rules,
    backtest,
    load_rule_file,
    publish_rule_set,
)
from hilt.review.rules import Condition, audit_draw, evaluate, match_rules, parse_rule_set
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import SAFETY_RULES, event, ingest, publish_examples


def _holds(cond: dict, ev: dict) -> tuple[bool, dict]:
    read: dict = {}
    return evaluate(Condition.model_validate(cond), ev, read), read


def test_conditions_read_scores_fields_flags_keywords_and_regex() -> None:
    ev = event(1, "I want to KILL MYSELF tonight", scores={"guardrail": 0.9},
               response="call 555-12-1234", flag=True)
    assert _holds({"score": "guardrail", "gte": 0.8}, ev) == (True, {"scores.guardrail": 0.9})
    assert not _holds({"score": "guardrail", "lt": 0.8}, ev)[0]
    assert not _holds({"score": "missing", "gte": 0}, ev)[0]
    assert _holds({"field": "context.policy_version", "in": ["pol-1"]}, ev)[0]
    assert _holds({"field": "context.source", "exists": False}, ev)[0]
    assert _holds({"flag": True}, ev)[1]["flag"][0]["category"] == "harm"
    assert not _holds({"flag": ["privacy"]}, ev)[0]
    assert _holds({"keywords": ["kill myself"], "text": "prompt"}, ev) == \
        (True, {"keyword": "KILL MYSELF"})
    assert not _holds({"keywords": ["kill"], "text": "response"}, ev)[0]
    assert not _holds({"keywords": ["kil"]}, ev)[0]  # whole words only
    assert _holds({"regex": [r"\b\d{3}-\d{2}-\d{4}\b"], "text": "response"}, ev)[1] == \
        {"regex": "555-12-1234"}
    assert _holds({"all": [{"flag": True}, {"not": {"score": "guardrail", "lt": 0.5}}]},
                  ev)[0]
    assert _holds({"any": [{"flag": ["x"]}, {"score": "guardrail", "eq": 0.9}]}, ev)[0]


def test_regexes_are_separate_patterns_and_keywords_may_end_in_symbols() -> None:
    ev = event(1, "hello AAA and my SSN", response="I like c++ a lot")
    # an inline flag is legal in one pattern (joined with others it was an error)
    assert _holds({"regex": [r"(?i)\bssn\b", r"\d{9}"]}, ev)[1] == {"regex": "SSN"}
    # a back-reference stays inside its own pattern
    assert _holds({"regex": [r"(x)\1", r"(\w)\1"]}, ev)[0]
    # the same group name in two patterns is no error
    assert _holds({"regex": [r"(?P<a>zzz)", r"(?P<a>hello)"]}, ev)[0]
    assert _holds({"keywords": ["c++"], "text": "response"}, ev)[0]
    assert not _holds({"keywords": ["ike"], "text": "response"}, ev)[0]  # inside a word


@pytest.mark.parametrize("bad", [
    {"score": "g"}, {"flag": True, "gte": 1}, {"score": "g", "flag": True, "gte": 1},
    {"regex": ["("]},
])
def test_malformed_conditions_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        Condition.model_validate(bad)


def test_bad_rule_file_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("id: r\ndefaults: {rubric: harm}\nrules:\n  - name: a\n"
                    "    severity: sev9\n    when: {flag: true}\n")
    with pytest.raises(InputError) as err:
        load_rule_file(path)
    assert (err.value.line, err.value.field) == (5, "rules.0.severity")


def test_audit_draw_is_deterministic_and_uniform() -> None:
    assert audit_draw("e1", "s", 1, "a") == audit_draw("e1", "s", 1, "a")
    assert audit_draw("e1", "s", 1, "a") != audit_draw("e1", "s", 2, "a")
    rules = parse_rule_set({"id": "s", "defaults": {"rubric": "harm"},
                            "rules": [{"name": "audit", "audit_rate": 0.1}]})
    n = 5000
    hits = sum(bool(match_rules(rules, 1, event(i), f"ev{i}")[0]) for i in range(n))
    # The realised rate is consistent with p = 0.1 (exact binomial test).
    assert binomtest(hits, n, 0.1).pvalue > 0.001
    matches, inclusion = match_rules(rules, 1, event(0), "x")
    assert inclusion == pytest.approx(0.1)


def test_inclusion_probability_combines_rules() -> None:
    rules = parse_rule_set({"id": "s", "defaults": {"rubric": "harm"}, "rules": [
        {"name": "a", "audit_rate": 0.5}, {"name": "b", "audit_rate": 0.5},
        {"name": "flag", "when": {"flag": True}}]})
    assert match_rules(rules, 1, event(1), "e")[1] == pytest.approx(0.75)
    assert match_rules(rules, 1, event(1, flag=True), "e")[1] == 1.0


def test_escalation_on_ingest_records_provenance(engine: Engine) -> None:
    publish_examples(engine)
    assert ingest(engine, [event(1, scores={"guardrail": 0.95})]) == 0  # no active rules
    with transaction(engine) as s:
        row = publish_rule_set(s, load_rule_file(SAFETY_RULES), actor="lead")
        assert row.spec["defaults"]["rubric"] == "harm@1"  # pinned on publish
    evs = [event(10, scores={"guardrail": 0.95}),
           event(11, "how to kill myself", scores={"guardrail": 0.5}),
           event(12, flag=True), event(13, response="ssn 123-45-6789"),
           event(14, scores={"reward": -2.0, "uncertainty": 0.7}),
           *[event(100 + i) for i in range(200)]]
    created = ingest(engine, evs)
    with transaction(engine) as s:
        tasks = {t.event_id: t for t in s.execute(sa.select(ReviewTaskRow)).scalars()}
        assert created == len(tasks)
        t = tasks["ev00010"]
        assert (t.rule_set_id, t.rule_set_version, t.rule_name) == ("safety", 1,
                                                                    "guardrail-high")
        assert (t.severity, t.pool, t.overlap_k, t.sampling_probability) == (1, "safety", 3,
                                                                           1.0)
        assert t.matched[0]["values"] == {"scores.guardrail": 0.95}
        assert t.policy["mode"] == "severity_at_or_above"
        assert (tasks["ev00011"].severity, tasks["ev00011"].overlap_k) == (0, 5)
        assert tasks["ev00011"].matched[0]["values"]["keyword"] == "kill myself"
        assert tasks["ev00013"].pool == "privacy"
        assert tasks["ev00014"].severity == 3 and tasks["ev00014"].uncertainty == 0.7
        audited = [t for t in tasks.values() if t.rule_name == "random-audit"]
        for t in audited:
            assert t.sampling_probability == pytest.approx(0.02)
            assert t.matched[0]["audit_draw"] < 0.02
        assert audit.entries(s, action="escalation.tasks")
    # an event sent twice in one batch is stored once and escalated once
    again = [event(20, scores={"guardrail": 0.95}), event(20, scores={"guardrail": 0.95})]
    assert ingest(engine, again) == 1
    with transaction(engine) as s:
        tasks = {t.event_id: t for t in s.execute(sa.select(ReviewTaskRow)).scalars()}
        # The backtest of the same version reproduces the live run exactly, plus ev00001
        # which was stored before the rules were active.
        report = backtest(s, load_rule_file(SAFETY_RULES), version=1)
        assert report["escalated"] == len(tasks) + 1
        by_rule = {r["rule"]: r["creates_tasks"] for r in report["rules"]}
        assert by_rule["random-audit"] == len(audited)
        assert report["events"] == 207
        activate_rule_set(s, "safety", 0, actor="lead")
        n_before = s.execute(sa.select(sa.func.count()).select_from(ReviewTaskRow)).scalar()
        assert apply_active_rules(s, [parse_event(event(999)).with_id()], actor="t") == 0
    assert n_before == len(tasks)


def test_backtest_sees_the_event_as_live_escalation_did(engine: Engine) -> None:
    publish_examples(engine)
    spec = {"id": "byid", "defaults": {"rubric": "harm"},
            "rules": [{"name": "by-id", "when": {"field": "id", "in": ["ev00003"]}}]}
    with transaction(engine) as s:
        publish_rule_set(s, parse_rule_set(spec), actor="lead")
    assert ingest(engine, [event(i) for i in range(1, 6)]) == 1  # live: ev00003 only
    with transaction(engine) as s:
        report = backtest(s, parse_rule_set(spec), version=1)
    assert report["escalated"] == 1  # the stored payload has no id; the backtest adds it


def test_events_without_review_consent_are_never_sent_to_people(engine: Engine) -> None:
    from hilt.errors import Conflict
    from hilt.review.tasks import create_gold_task, create_task

    publish_examples(engine)
    with transaction(engine) as s:
        publish_rule_set(s, load_rule_file(SAFETY_RULES), actor="lead")
    private = event(30, scores={"guardrail": 0.99})
    private["context"]["consent"] = ["train"]
    silent = event(31, scores={"guardrail": 0.99})
    silent["context"]["consent"] = []
    assert ingest(engine, [private, silent, event(32, scores={"guardrail": 0.99})]) == 1
    with transaction(engine) as s:
        assert {t.event_id for t in s.execute(sa.select(ReviewTaskRow)).scalars()} == {
            "ev00032"}
        (entry,) = audit.entries(s, action="escalation.tasks")
        assert entry.payload["without_review_consent"] == 2
    for make in (lambda s: create_task(s, event_id="ev00030", rubric="harm", actor="lead"),
                 lambda s: create_gold_task(s, event_id="ev00031", rubric="harm",
                                            answers={"verdict": "safe"}, actor="lead")):
        with pytest.raises(Conflict, match="no consent to human review"), \
                transaction(engine) as s:
            make(s)
