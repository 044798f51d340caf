"""Rule files that would fire on everything or nothing, YAML booleans as numbers, repeated
YAML keys and rule names, unpublished rubrics, and deactivating a rule set by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import Conflict, InputError, NotFound
from hilt.review.escalation import (
    activate_rule_set,
    active_rule_set,
    backtest,
    load_rule_file,
    publish_rule_set,
)
from hilt.review.rubrics import load_rubric_file
from hilt.review.rules import RuleSet, parse_rule_set
from hilt.review.yamlio import load_yaml
from hilt.store import audit
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.review import RuleSetVersionRow

from .helpers import EXAMPLES, SAFETY_RULES, event, ingest, publish_examples

HEAD = "id: s\ndefaults: {rubric: harm}\nrules:\n"


def _bad_rules(tmp_path: Path, text: str) -> InputError:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_rule_file(path)
    assert info.value.file == str(path)
    return info.value


@pytest.mark.parametrize(("when", "field"), [
    ("{keywords: []}", "rules.0.when.keywords"),
    ("{regex: []}", "rules.0.when.regex"),
    ("{all: []}", "rules.0.when.all"),
    ("{any: []}", "rules.0.when.any"),
    ("{flag: []}", "rules.0.when.flag"),
    ("{field: context.source, in: []}", "rules.0.when.in"),
    ("{not: {all: []}}", "rules.0.when.not.all"),
])
def test_empty_condition_lists_are_refused(tmp_path: Path, when: str, field: str) -> None:
    err = _bad_rules(tmp_path, HEAD + f"  - name: a\n    when: {when}\n")
    assert err.field == field
    assert err.line == 5
    assert "at least one entry" in err.reason


@pytest.mark.parametrize(("when", "field"), [
    ("{keywords: ['']}", "rules.1.when.keywords"),
    ("{keywords: [ok, '  ']}", "rules.1.when.keywords"),
    ("{regex: ['']}", "rules.1.when.regex"),
])
def test_empty_keywords_and_patterns_are_refused(tmp_path: Path, when: str,
                                                 field: str) -> None:
    err = _bad_rules(tmp_path, HEAD + "  - name: a\n    when: {flag: true}\n"
                     f"  - name: b\n    when: {when}\n")
    assert (err.field, err.line) == (field, 7)
    assert "empty" in err.reason


def test_a_stored_version_with_an_empty_list_still_runs(engine: Engine) -> None:
    # published before the check: it keeps running as published rather than stopping
    # ingest for every event
    spec = {"id": "old", "defaults": {"rubric": "harm@1"},
            "rules": [{"name": "a", "when": {"keywords": []}}]}
    with pytest.raises(InputError):
        parse_rule_set(spec)
    publish_examples(engine)
    with transaction(engine) as s:
        s.add(RuleSetVersionRow(rule_set_id="old", version=1, spec=spec, changelog="x",
                                content_hash="0" * 64, active=True, published_by="t"))
    with transaction(engine) as s:
        loaded = active_rule_set(s)
    assert loaded is not None and loaded[0].rules[0].when is not None
    assert loaded[0].rules[0].when.keywords == []


@pytest.mark.parametrize(("rule", "field", "line"), [
    ("  - name: a\n    audit_rate: yes\n", "rules.0.audit_rate", 5),
    ("  - name: a\n    when: {flag: true}\n    overlap: true\n", "rules.0.overlap", 6),
    ("  - name: a\n    when: {score: g, gte: true}\n", "rules.0.when.gte", 5),
    ("  - name: a\n    when: {flag: true}\n    sla_hours: on\n", "rules.0.sla_hours", 6),
])
def test_yaml_booleans_are_not_numbers(tmp_path: Path, rule: str, field: str,
                                       line: int) -> None:
    err = _bad_rules(tmp_path, HEAD + rule)
    assert (err.field, err.line) == (field, line)
    assert "boolean" in err.reason


def test_defaults_overlap_refuses_a_boolean_and_integers_fit_floats(tmp_path: Path) -> None:
    err = _bad_rules(tmp_path, "id: s\ndefaults:\n  rubric: harm\n  overlap: yes\n"
                               "rules:\n  - {name: a, when: {flag: true}}\n")
    assert (err.field, err.line) == ("defaults.overlap", 4)
    path = tmp_path / "ok.yaml"
    path.write_text(HEAD + "  - name: a\n    audit_rate: 1\n"
                           "  - name: b\n    when: {score: g, gte: 1}\n    sla_hours: 2\n")
    rules = load_rule_file(path).rules
    assert rules[0].audit_rate == 1.0
    assert rules[1].when is not None and rules[1].when.gte == 1.0


def test_repeated_yaml_keys_are_refused_with_both_lines(tmp_path: Path) -> None:
    err = _bad_rules(tmp_path, HEAD + "  - name: a\n    when: {flag: true}\n"
                                      "rules:\n  - name: b\n    audit_rate: 0.5\n")
    assert err.line == 6
    assert "'rules' repeats" in err.reason and "first at line 3" in err.reason
    err = _bad_rules(tmp_path, HEAD + "  - name: a\n    when: {flag: true}\n"
                                      "    severity: sev0\n    severity: sev3\n")
    assert err.line == 7 and "first at line 6" in err.reason


def test_a_rubric_with_two_question_lists_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_text("id: r\ntitle: t\nquestions:\n  - {id: a, kind: free_text, prompt: p}\n"
                    "questions:\n  - {id: b, kind: free_text, prompt: p}\n")
    with pytest.raises(InputError) as info:
        load_rubric_file(path)
    assert (info.value.file, info.value.line) == (str(path), 5)
    assert "'questions' repeats (first at line 3)" in info.value.reason


def test_merge_keys_may_be_overridden_and_every_shipped_yaml_loads(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")
    assert load_yaml(path)[0]["d"] == {"x": 3, "y": 2}
    shipped = sorted([*EXAMPLES.rglob("*.yaml"), *EXAMPLES.rglob("*.yml")])
    assert len(shipped) >= 6
    for file in shipped:
        assert load_yaml(file)[0] is not None, file


def test_a_repeated_rule_name_points_at_the_second_rule(tmp_path: Path) -> None:
    err = _bad_rules(tmp_path, HEAD + "  - name: a\n    when: {flag: true}\n"
                                      "  - name: b\n    when: {flag: true}\n"
                                      "  - name: a\n    audit_rate: 0.1\n")
    assert (err.field, err.line) == ("rules.2.name", 8)
    assert "'a' repeats" in err.reason and "rules.0.name" in err.reason


def test_a_rule_without_any_rubric_is_named(tmp_path: Path) -> None:
    err = _bad_rules(tmp_path, "id: s\nrules:\n  - name: a\n    when: {flag: true}\n"
                               "  - name: b\n    rubric: harm\n    when: {flag: true}\n"
                               "  - name: c\n    when: {flag: true}\n")
    assert (err.field, err.line) == ("rules.0.rubric", 3)


def test_an_unpublished_rubric_names_file_line_and_rule(engine: Engine,
                                                        tmp_path: Path) -> None:
    publish_examples(engine)
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + "  - name: a\n    when: {flag: true}\n"
                           "  - name: b\n    rubric: harm@7\n    when: {flag: true}\n")
    rules = load_rule_file(path)
    for run in (lambda s: publish_rule_set(s, rules, actor="lead"),
                lambda s: backtest(s, rules)):
        with transaction(engine) as s, pytest.raises(InputError) as info:
            run(s)
        assert (info.value.file, info.value.line, info.value.field) == \
            (str(path), 7, "rules.1.rubric")
        assert "harm@7 is not published" in info.value.reason
    path.write_text("id: s\ndefaults: {rubric: nope}\nrules:\n  - name: a\n"
                    "    when: {flag: true}\n")
    with transaction(engine) as s, pytest.raises(InputError) as info:
        backtest(s, load_rule_file(path))
    assert (info.value.line, info.value.field) == (2, "defaults.rubric")
    with transaction(engine) as s:
        assert s.execute(sa.select(RuleSetVersionRow)).first() is None


def test_cli_backtest_refuses_an_unpublished_rubric(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    publish_examples(engine)
    ingest(engine, [event(1)])
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + "  - name: b\n    rubric: harm@7\n    when: {flag: true}\n")
    result = CliRunner().invoke(app, ["escalation", "backtest", str(path), "--db", db])
    # in-process the error reaches the runner; the console entry point prints it, exit 2
    assert isinstance(result.exception, InputError)
    assert "line 5" in str(result.exception) and "rules.0.rubric" in str(result.exception)
    engine.dispose()


def _active(engine: Engine) -> list[tuple[str, int]]:
    with transaction(engine) as s:
        return [tuple(r) for r in s.execute(sa.select(  # type: ignore[misc]
            RuleSetVersionRow.rule_set_id, RuleSetVersionRow.version)
            .where(RuleSetVersionRow.active.is_(True)))]


def test_deactivating_names_the_set_and_never_another(engine: Engine) -> None:
    publish_examples(engine)
    other: RuleSet = parse_rule_set({"id": "other", "defaults": {"rubric": "harm"},
                                     "rules": [{"name": "a", "when": {"flag": True}}]})
    with transaction(engine) as s:
        publish_rule_set(s, other, actor="lead", activate=False)
        publish_rule_set(s, load_rule_file(SAFETY_RULES), actor="lead")
    with transaction(engine) as s, pytest.raises(NotFound, match="no-such-set"):
        activate_rule_set(s, "no-such-set", 0, actor="lead")
    with transaction(engine) as s, pytest.raises(Conflict) as info:
        activate_rule_set(s, "other", 0, actor="lead")
    assert "safety@1" in str(info.value)
    assert _active(engine) == [("safety", 1)]
    with transaction(engine) as s:
        assert activate_rule_set(s, "safety", 0, actor="lead") == "safety@1"
        entry = audit.entries(s, action="rules.activate")[0]  # newest first
        assert entry.entity_id == "safety@1"
        assert entry.payload == {"active": False, "previously_active": "safety@1"}
    assert _active(engine) == []
    with transaction(engine) as s:
        assert activate_rule_set(s, "other", 1, actor="lead") is None
    assert _active(engine) == [("other", 1)]


def test_cli_activate_zero_reports_what_it_deactivated(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    publish_examples(engine)
    runner = CliRunner()
    assert runner.invoke(app, ["escalation", "publish", str(SAFETY_RULES), "--db", db]
                         ).exit_code == 0
    result = runner.invoke(app, ["escalation", "activate", "no-such-set", "0", "--db", db])
    assert isinstance(result.exception, NotFound) and "no-such-set" in str(result.exception)
    assert _active(engine) == [("safety", 1)]
    result = runner.invoke(app, ["escalation", "activate", "safety", "0", "--db", db])
    assert result.exit_code == 0, result.output
    assert '"previously_active": "safety@1"' in result.output
    assert _active(engine) == []
    engine.dispose()


def test_exponents_without_a_dot_still_read_as_numbers(tmp_path: Path) -> None:
    # PyYAML reads 5e-2 (no dot) as text; the rule takes it as the number it means
    path = tmp_path / "ok.yaml"
    path.write_text(HEAD + "  - name: a\n    audit_rate: 5e-2\n")
    assert load_rule_file(path).rules[0].audit_rate == 0.05


@pytest.mark.parametrize(("text", "field", "line"), [
    ("id: s\ndefaults: {rubric: harm, pool: ''}\nrules:\n  - {name: a, audit_rate: 0.1}\n",
     "defaults.pool", 2),
    ("id: s\ndefaults: {rubric: harm}\nrules:\n  - name: a\n    audit_rate: 0.1\n"
     "    pool: '   '\n", "rules.0.pool", 6),
    ("id: s\ndefaults: {rubric: harm}\nrules:\n  - name: a\n    audit_rate: 0.1\n"
     "    skills: [medical, '']\n", "rules.0.skills.1", 6),
    (f"id: s\ndefaults: {{rubric: harm, skills: [{'x' * 101}]}}\nrules:\n"
     "  - {name: a, audit_rate: 0.1}\n", "defaults.skills.0", 2)])
def test_rule_pools_and_skills_must_be_claimable_names(tmp_path: Path, text: str,
                                                       field: str, line: int) -> None:
    err = _bad_rules(tmp_path, text)
    assert (err.field, err.line) == (field, line)
