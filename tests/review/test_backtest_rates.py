"""A backtest's rule rates are over the events the rules were evaluated on (review
consent, not erased), so an audit rate reads as configured whatever the consent mix;
and without ``--version`` the CLI draws the audit sample the live rule set drew when
the file is a published version, or says which draw it used."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.review.escalation import backtest, publish_rule_set
from hilt.review.rules import parse_rule_set
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.review import ReviewTaskRow
from hilt.train.stats import wilson_interval

from .helpers import event, ingest, publish_examples

AUDIT = {"id": "audit", "defaults": {"rubric": "harm"},
         "rules": [{"name": "half", "severity": "sev3", "audit_rate": 0.5}]}


def _events(n: int, *, consent_every: int = 2) -> list[dict]:
    out = []
    for i in range(n):
        ev = event(i)
        ev["context"]["consent"] = ["review"] if i % consent_every == 0 else ["train"]
        out.append(ev)
    return out


def test_the_rate_is_over_the_events_the_rules_evaluated(engine: Engine) -> None:
    publish_examples(engine)
    ingest(engine, _events(600))
    with transaction(engine) as s:
        report = backtest(s, parse_rule_set(AUDIT), version=1)
    (rule,) = report["rules"]
    assert rule["ci_low"] <= 0.5 <= rule["ci_high"]
    assert rule["n"] == 300
    assert rule["rate"] == rule["fires"] / 300
    assert (rule["ci_low"], rule["ci_high"]) == wilson_interval(rule["fires"], 300)
    assert (report["events"], report["without_review_consent"], report["evaluated"]) == \
        (600, 300, 300)


def test_no_evaluated_event_gives_no_rate(engine: Engine) -> None:
    publish_examples(engine)
    ingest(engine, _events(4, consent_every=99)[1:])  # none with review consent
    with transaction(engine) as s:
        report = backtest(s, parse_rule_set(AUDIT))
    assert (report["events"], report["evaluated"]) == (3, 0)
    assert {k: report["rules"][0][k] for k in ("rate", "n", "ci_low", "ci_high")} == \
        {"rate": None, "n": 0, "ci_low": None, "ci_high": None}


def _backtest(db: str, rules: Path, *extra: str) -> tuple[dict, str]:
    result = CliRunner().invoke(app, ["escalation", "backtest", str(rules), *extra,
                                      "--db", db])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_cli_backtest_defaults_to_the_published_version(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    publish_examples(engine)
    rules = tmp_path / "audit.yaml"
    rules.write_text(yaml.safe_dump({**AUDIT, "rules": [
        {"name": "tenth", "severity": "sev3", "audit_rate": 0.1}]}))

    draft, note = _backtest(db, rules)
    assert draft["version"] == 0
    assert "'audit' is not published" in note and "--version 1" in note

    with transaction(engine) as s:
        publish_rule_set(s, parse_rule_set(yaml.safe_load(rules.read_text())), actor="lead")
    ingest(engine, _events(1000, consent_every=1))
    with transaction(engine) as s:
        live = s.execute(sa.select(sa.func.count()).select_from(ReviewTaskRow)).scalar_one()
    report, note = _backtest(db, rules)
    assert report["version"] == 1 and "audit@1 (the active version)" in note
    assert report["escalated"] == live
    assert report == _backtest(db, rules, "--version", "1")[0] | {
        "version_note": report["version_note"]}
    assert _backtest(db, rules, "--version", "0")[0]["escalated"] != live

    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({**AUDIT, "changelog": "more", "rules": [
        {"name": "tenth", "severity": "sev3", "audit_rate": 0.2}]}))
    report, note = _backtest(db, changed)
    assert report["version"] == 0
    assert "no published version of 'audit' has this content" in note
    assert "audit@1 (active)" in note and "--version 1" in note and "--version 2" in note
