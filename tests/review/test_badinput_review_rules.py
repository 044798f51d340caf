"""Escalation rule files: numbers that are not finite are refused with file, line and
field by backtest and publish alike, and the backtest gives each rule's rate with n and
a Wilson interval (no rate at all over no events)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.review.escalation import backtest
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.review.rules import parse_rule_set
from hilt.store.db import make_engine, migrate, transaction
from hilt.train.stats import wilson_interval

from .helpers import HARM, event, ingest, publish_examples

RULES = """\
id: t
defaults:
  rubric: harm
rules:
  - name: first
    when: {score: guardrail, gte: 0.5}
  - name: second
    when:
      score: guardrail
      {op}: {value}
"""


def _error(tmp_path: Path, *args: str) -> InputError:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
    engine.dispose()
    result = CliRunner().invoke(app, [*args, "--db", db])
    assert isinstance(result.exception, InputError), result.output
    return result.exception


@pytest.mark.parametrize("command", ["backtest", "publish"])
@pytest.mark.parametrize(("op", "value"), [("gte", ".nan"), ("lt", ".inf"),
                                           ("gt", "-.inf"), ("eq", ".nan"),
                                           ("ne", ".inf")])
def test_badinput_review_non_finite_threshold_names_file_line_and_field(
        tmp_path: Path, command: str, op: str, value: str) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES.replace("{op}", op).replace("{value}", value))
    exc = _error(tmp_path, "escalation", command, str(rules))
    assert (exc.file, exc.line, exc.field) == (str(rules), 10, f"rules.1.when.{op}")
    assert "finite" in exc.reason


def test_badinput_review_non_finite_value_in_a_list_is_named_by_its_place(
        tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES.replace("score: guardrail\n      {op}",
                                   "field: context.source\n      {op}")
                     .replace("{op}", "in").replace("{value}", "[a, .nan]"))
    exc = _error(tmp_path, "escalation", "backtest", str(rules))
    assert (exc.line, exc.field) == (10, "rules.1.when.in.1")


def test_badinput_review_publish_fallback_names_the_field_of_a_non_finite_number(
        engine: Engine, tmp_path: Path) -> None:
    # A number the rule set's checks let through (here planted past validation) is still
    # refused naming the file, line and field, not with a bare JSON error.
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES.replace("{op}", "lte").replace("{value}", "0.9"))
    from hilt.review.escalation import load_rule_file, publish_rule_set

    publish_examples(engine)
    parsed = load_rule_file(rules)
    when = parsed.rules[1].when
    assert when is not None
    broken_rule = parsed.rules[1].model_copy(update={
        "when": when.model_copy(update={"lte": math.nan})})
    broken = parsed.model_copy(update={"rules": [parsed.rules[0], broken_rule]})
    broken._source = parsed.source
    with transaction(engine) as s, pytest.raises(InputError) as err:
        publish_rule_set(s, broken, actor="lead")
    assert (err.value.file, err.value.line, err.value.field) == \
        (str(rules), 10, "rules.1.when.lte")


def test_badinput_review_rubric_publish_fallback_names_the_line(
        engine: Engine, tmp_path: Path) -> None:
    spec = load_rubric_file(HARM)
    question = spec.questions[2]
    assert question.kind == "scale"
    broken = spec.model_copy(update={"questions": [
        *spec.questions[:2], question.model_copy(update={"step": math.inf}),
        *spec.questions[3:]]})
    broken._source = spec.source
    with transaction(engine) as s, pytest.raises(InputError) as err:
        publish_rubric(s, broken, actor="lead")
    line_of = spec.source[1]
    assert line_of is not None
    assert (err.value.file, err.value.field) == (str(HARM), "questions.2.step")
    assert err.value.line == line_of(("questions", 2))


def _rates(report: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {r["rule"]: (r["rate"], r["n"], r["ci_low"], r["ci_high"])
            for r in report["rules"]}


def test_badinput_review_backtest_rates_carry_n_and_a_wilson_interval(
        engine: Engine) -> None:
    publish_examples(engine)
    rules = parse_rule_set({"id": "bt", "defaults": {"rubric": "harm"}, "rules": [
        {"name": "high", "when": {"score": "guardrail", "gte": 0.5}},
        {"name": "never", "when": {"score": "guardrail", "gte": 2.0}}]})
    with transaction(engine) as s:
        assert _rates(backtest(s, rules)) == {"high": (None, 0, None, None),
                                              "never": (None, 0, None, None)}
    ingest(engine, [event(i, scores={"guardrail": 0.9 if i < 3 else 0.1})
                    for i in range(10)])
    with transaction(engine) as s:
        rates = _rates(backtest(s, rules))
    assert rates["high"] == (0.3, 10, *wilson_interval(3, 10))
    assert rates["never"] == (0.0, 10, 0.0, wilson_interval(0, 10)[1])
