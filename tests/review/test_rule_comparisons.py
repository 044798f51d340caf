"""Rule conditions that could never hold, or whose comparison would be ignored, are
refused naming file, line and field; stored versions that hold one still run."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.events.paths import path_kind
from hilt.review.escalation import backtest, load_rule_file, stored_rule_set
from hilt.review.rules import match_rules
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.review import RuleSetVersionRow

from .helpers import event, ingest, publish_examples

HEAD = "id: s\ndefaults: {rubric: harm}\nrules:\n  - name: ok\n    when: {flag: true}\n"


def _refused(tmp_path: Path, when: str) -> InputError:
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + "  - name: bad\n    severity: sev1\n    when:\n"
                    + "".join(f"      {line}\n" for line in when.splitlines()))
    with pytest.raises(InputError) as info:
        load_rule_file(path)
    assert info.value.file == str(path)
    return info.value


@pytest.mark.parametrize(("when", "line", "field", "says"), [
    # 'exists' decided alone: the bound beside it was dropped, and the rule fired on
    # every event with any source
    ("field: context.source\nexists: true\neq: mobile", 10, "rules.1.when.exists",
     "'eq' beside it would be ignored"),
    ("score: guardrail\nexists: true\ngte: 0.9", 10, "rules.1.when.exists", "'gte'"),
    # a misspelt path read None: never true, or with exists: false always
    ("field: context.sorce\nexists: false", 9, "rules.1.when.field",
     "no event has a field 'context.sorce'"),
    ("field: responses.0.text\neq: x", 9, "rules.1.when.field", "'responses' holds a list"),
    ("field: interaction.text\nexists: true", 9, "rules.1.when.field",
     "no event has a field 'interaction.text'"),
    ("field: scores.guardrail.x\nexists: true", 9, "rules.1.when.field",
     "holds a single value"),
    ("field: context\nexists: true", 9, "rules.1.when.field", "name one of its fields"),
    # a score is a number: text never equals it, and YAML's true equals 1.0
    ("score: guardrail\neq: '0.9'", 10, "rules.1.when.eq", "'0.9' is text"),
    ("score: guardrail\nne: high", 10, "rules.1.when.ne", "'high' is text"),
    ("score: guardrail\neq: true", 10, "rules.1.when.eq", "True is a boolean"),
    ("score: guardrail\nin:\n  - 0.5\n  - high", 12, "rules.1.when.in.1", "'high' is text"),
    # text fields hold text: YAML reads 2 as a number, which never equals "2"
    ("field: context.model_version\neq: 2", 10, "rules.1.when.eq", "quote it"),
    ("field: context.source\nin: [web, 3]", 10, "rules.1.when.in.1", "3 is a number"),
    ("field: context.source\ngte: 1", 10, "rules.1.when.gte", "never bounds"),
    ("field: created_at\neq: 2030-01-01", 10, "rules.1.when.eq", "a time"),
    ("field: context.tags\nin: [a]", 10, "rules.1.when.in", "'context.tags' holds a list"),
    ("not:\n  field: context.sorce\n  exists: true", 10, "rules.1.when.not.field",
     "context.sorce"),
    # a bad pattern is named by its place in the list
    ("regex: [fine, '(open']", 9, "rules.1.when.regex.1", "bad regex '(open'"),
])
def test_comparisons_that_never_hold_are_refused(tmp_path: Path, when: str, line: int,
                                                 field: str, says: str) -> None:
    err = _refused(tmp_path, when)
    assert (err.line, err.field) == (line, field)
    assert says in err.reason


@pytest.mark.parametrize("when", [
    "{field: context.source, eq: web}", "{field: context.source, exists: false}",
    "{field: context.decoder.seed, in: [1, 2.0]}", "{field: context.metadata.a.b, eq: 3}",
    "{field: context.decoder.extra.k, in: [x, 1, true]}", "{field: scores.reward, lte: 0}",
    "{field: context.tags, eq: [a, b]}", "{field: id, in: [ev00001]}",
    "{score: guardrail, in: [0, 1]}", "{field: created_at, exists: true}",
])
def test_comparisons_an_event_can_pass_still_load(tmp_path: Path, when: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + f"  - name: fine\n    when: {when}\n")
    assert load_rule_file(path).rules[1].name == "fine"


def test_paths_reach_the_kind_of_value_events_hold() -> None:
    assert path_kind("context.source") == "text"
    assert path_kind("scores.anything") == "number"
    assert path_kind("context.decoder.top_k") == "number"
    assert path_kind("context.metadata.x.y") == "any"
    assert path_kind("created_at") == "time"
    assert path_kind("context.consent") == "list"
    assert path_kind("scores") == "object"
    with pytest.raises(ValueError, match="empty part"):
        path_kind("context..source")


def test_a_stored_version_with_such_a_condition_still_runs(engine: Engine) -> None:
    """Checks added later do not stop a published version from running as it ran."""
    publish_examples(engine)
    ingest(engine, [event(1)])
    spec = {"id": "old", "defaults": {"rubric": "harm@1"}, "rules": [
        {"name": "any-source", "when": {"field": "context.source", "exists": False,
                                        "eq": "x"}}]}
    with transaction(engine) as s:
        s.add(RuleSetVersionRow(rule_set_id="old", version=1, spec=spec, changelog="v1",
                                content_hash="h-old", active=False, published_by="t",
                                published_at=sa.func.now()))
    with transaction(engine) as s:
        rules = stored_rule_set(s.get(RuleSetVersionRow, ("old", 1)))
    matches, _ = match_rules(rules, 1, event(1), "ev00001")
    assert [m["rule"] for m in matches] == ["any-source"]


def test_backtest_refuses_the_mistake_before_counting(engine: Engine, tmp_path: Path
                                                      ) -> None:
    """Before, a rule on a misspelt path backtested to zero hits, as if it were fine."""
    publish_examples(engine)
    ingest(engine, [event(i) for i in range(3)])
    path = tmp_path / "r.yaml"
    path.write_text("id: s\ndefaults: {rubric: harm}\nrules:\n  - name: by-source\n"
                    "    when: {field: context.sourse, eq: web}\n")
    with pytest.raises(InputError) as info, transaction(engine) as s:
        backtest(s, load_rule_file(path))
    assert (info.value.line, info.value.field) == (5, "rules.0.when.field")


def test_cli_publish_names_file_line_and_field(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    migrate(make_engine(db))
    path = tmp_path / "r.yaml"
    path.write_text("id: s\ndefaults: {rubric: harm}\nrules:\n  - name: a\n"
                    "    when:\n      score: guardrail\n      eq: 'high'\n")
    result = CliRunner().invoke(app, ["escalation", "publish", str(path), "--db", db])
    # in-process the error reaches the runner; the console entry point prints it, exit 2
    assert isinstance(result.exception, InputError)
    assert f"{path}, line 7, field 'rules.0.when.eq'" in str(result.exception)
    with transaction(make_engine(db)) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(RuleSetVersionRow)
                         ).scalar_one() == 0
