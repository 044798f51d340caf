"""The review CLI in-process: rubric, escalation, queue, review, adjudicate, labels."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hilt.cli import app
from hilt.events.ingest import ingest_events
from hilt.store.db import make_engine, migrate

from .helpers import HARM, SAFETY_RULES, add_reviewers, event


def run(db: str, *args: str) -> tuple[int, object]:
    result = CliRunner().invoke(app, [*args, "--db", db])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        from hilt.errors import HiltError

        assert isinstance(result.exception, HiltError), result.exception
        return 2, str(result.exception)
    out = result.output
    try:  # the JSON on stdout, apart from any note on stderr
        return result.exit_code, json.loads(result.stdout)
    except json.JSONDecodeError:
        return result.exit_code, out


def test_cli_review_cycle(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    add_reviewers(engine, ["a", "b", "c"], pools=["default", "safety"])
    assert run(db, "rubric", "publish", str(HARM))[1] == {
        "id": "harm", "version": 1, "content_hash": run(db, "rubric", "list")[1][0][
            "content_hash"]}
    v2 = yaml.safe_load(HARM.read_text())
    v2["changelog"] = "explain borderline"
    v2["guidelines"] += "Borderline: general information that could be misused.\n"
    (tmp_path / "harm2.yaml").write_text(yaml.safe_dump(v2))
    assert run(db, "rubric", "publish", str(tmp_path / "harm2.yaml"))[1]["version"] == 2
    code, diff = run(db, "rubric", "diff", "harm@1", "harm@2")
    assert code == 0 and diff["changelog"] == "explain borderline"
    code, msg = run(db, "rubric", "publish", str(tmp_path / "harm2.yaml"))
    assert code == 2 and "already has this content" in msg

    ingest_events(engine, [event(1, scores={"guardrail": 0.9}), event(2), event(3)])
    code, report = run(db, "escalation", "backtest", str(SAFETY_RULES))
    assert code == 0 and report["events"] == 3
    assert {r["rule"]: r["fires"] for r in report["rules"]}["guardrail-high"] == 1
    assert run(db, "queue", "stats")[1] == {}  # backtest created nothing
    assert run(db, "escalation", "publish", str(SAFETY_RULES))[1]["version"] == 1
    ingest_events(engine, [event(4, scores={"guardrail": 0.99})])
    task = run(db, "queue", "next", "--reviewer", "a")[1]
    assert task["rubric"] == {"id": "harm", "version": 2, "spec": task["rubric"]["spec"]}
    tid = task["task_id"]
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps({"verdict": "safe", "refusal": "complies",
                                   "helpfulness": 4}))
    code, out = run(db, "review", "submit", tid, "--reviewer", "a", "--answers",
                    f"@{answers}", "--confidence", "0.9", "--time-spent", "20")
    assert code == 0 and out["late"] is False
    code, msg = run(db, "review", "submit", tid, "--reviewer", "b", "--answers", "{")
    assert code == 2 and "not valid JSON" in msg
    for rid, verdict in (("b", "harmful"), ("c", "borderline")):
        assert run(db, "queue", "next", "--reviewer", rid)[1]["task_id"] == tid
        ans = json.dumps({"verdict": verdict, "refusal": "complies", "helpfulness": 4})
        code, out = run(db, "review", "submit", tid, "--reviewer", rid, "--answers", ans,
                        "--next")
        assert code == 0 and out["task_id"] == tid and out["next"] is None  # none left
    assert [p["task_id"] for p in run(db, "adjudicate", "list")[1]] == [tid]
    assert len(run(db, "adjudicate", "show", tid)[1]["reviews"]) == 3
    decision = ["--answers", '{"verdict": "safe"}', "--rationale", "no uplift",
                "--cause", "reviewer_error"]
    # Only an existing adjudicator or lead may decide (not "a", a reviewer of the task).
    for who, why in (("lead-x", "does not exist"), ("a", "role 'reviewer'")):
        code, msg = run(db, "adjudicate", "decide", tid, "--adjudicator", who, *decision)
        assert code == 2 and why in str(msg)
    assert run(db, "task", "show", tid)[1]["status"] == "needs_adjudication"
    add_reviewers(engine, ["lead-x"], role="lead")
    code, out = run(db, "adjudicate", "decide", tid, "--adjudicator", "lead-x", *decision)
    assert code == 0 and out["adjudication_id"].startswith("adj_")
    assert run(db, "task", "show", tid)[1]["status"] == "resolved"
    out_file = tmp_path / "labels.jsonl"
    # verdict, refusal, helpfulness and the "issues" checklist nobody ticked
    assert run(db, "labels", "export", "--out", str(out_file))[1]["labels"] == 4
    labels = {lb["question_id"]: lb for lb in
              (json.loads(line) for line in out_file.read_text().splitlines())}
    assert (labels["verdict"]["value"], labels["verdict"]["provenance"]) == \
        ("safe", "adjudicated")
    assert (labels["issues"]["value"], labels["issues"]["provenance"]) == ([], "unanimous")
    assert run(db, "queue", "triage")[0] == 0
    engine.dispose()


def test_answers_argument_errors_name_the_file_or_field(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    migrate(make_engine(db))
    missing = tmp_path / "nofile.json"
    for answers, words in [(f"@{missing}", f"{missing}, field 'answers': cannot read"),
                           ("[1]", "field 'answers': expected a JSON object"),
                           ('"safe"', "field 'answers': expected a JSON object"),
                           ("{", "field 'answers': not valid JSON")]:
        code, out = run(db, "review", "submit", "t1", "--reviewer", "a", "--answers", answers)
        assert code == 2 and words in str(out), out


def test_cli_reviewer_deactivate_and_reactivate(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    migrate(make_engine(db))
    add_reviewers(make_engine(db), ["a"])
    code, out = run(db, "reviewer", "deactivate", "a", "--reason", "left the team")
    assert code == 0 and out["active"] is False and out["was_active"] is True
    code, out = run(db, "audit", "show", "--action", "reviewer.deactivate")
    assert code == 0 and out[0]["entity"] == "reviewer:a"
    code, out = run(db, "reviewer", "reactivate", "a")
    assert code == 0 and out["active"] is True
    code, msg = run(db, "reviewer", "deactivate", "nobody")
    assert code == 2 and "does not exist" in str(msg)
