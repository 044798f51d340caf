"""``--answers @FILE`` (review submit, task gold, adjudicate decide): a key repeated in
the object is refused as in the JSONL files, a UTF-8 byte-order mark is allowed, and
errors name the file and the line of the answer at fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.store.db import make_engine, migrate

from .helpers import HARM, SAFETY_RULES, add_reviewers, event

GOOD = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}


def _invoke(db: str, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, [*args, "--db", db])
    return result.exit_code, result.output, result.exception


def _setup(tmp_path: Path) -> tuple[str, str]:
    """A database with the harm rubric, rules and one leased task; (db, task id)."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(db)
    migrate(engine)
    add_reviewers(engine, ["a", "b", "c"], pools=["default", "safety"])
    add_reviewers(engine, ["lead"], role="lead")
    assert _invoke(db, "rubric", "publish", str(HARM))[0] == 0
    assert _invoke(db, "escalation", "publish", str(SAFETY_RULES))[0] == 0
    ingest_events(engine, [event(1, scores={"guardrail": 0.99})])
    engine.dispose()
    code, out, _ = _invoke(db, "queue", "next", "--reviewer", "a")
    assert code == 0, out
    return db, json.loads(out)["task_id"]


def _error(db: str, *args: str) -> InputError:
    code, out, exc = _invoke(db, *args)
    assert isinstance(exc, InputError), out
    return exc


def test_badinput_review_repeated_answer_key_is_refused_with_file_and_line(
        tmp_path: Path) -> None:
    db, task = _setup(tmp_path)
    answers = tmp_path / "dup.json"
    answers.write_text('{"verdict": "safe",\n "refusal": "complies",\n'
                       ' "verdict": "harmful",\n "helpfulness": 3}\n')
    for args in (["review", "submit", task, "--reviewer", "a"],
                 ["task", "gold", "--event", "ev00001", "--rubric", "harm"],
                 ["adjudicate", "decide", task, "--adjudicator", "lead", "--rationale",
                  "r", "--cause", "subjective"]):
        exc = _error(db, *args, "--answers", f"@{answers}")
        assert (exc.file, exc.line, exc.field) == (str(answers), 3, "verdict"), args
        assert "more than once" in exc.reason
    # nothing was stored: the task still has no review, and no gold task was made
    code, out, _ = _invoke(db, "task", "show", task)
    assert code == 0 and json.loads(out)["reviews_done"] == 0
    code, out, _ = _invoke(db, "queue", "stats")
    assert code == 0 and sum(n for pool in json.loads(out).values()
                             for n in pool.values()) == 1


def test_badinput_review_repeated_key_inside_an_answer_is_refused(tmp_path: Path) -> None:
    answers = tmp_path / "nested.json"
    answers.write_text('{"verdict": "safe",\n "issues": {"a": 1, "a": 2}}\n')
    exc = _error(f"sqlite:///{tmp_path / 'h.db'}", "review", "submit", "t1",
                 "--reviewer", "a", "--answers", f"@{answers}")
    assert (exc.file, exc.line, exc.field) == (str(answers), 2, "issues.a")


def test_badinput_review_inline_repeated_key_is_refused(tmp_path: Path) -> None:
    exc = _error(f"sqlite:///{tmp_path / 'h.db'}", "review", "submit", "t1",
                 "--reviewer", "a", "--answers", '{"verdict": "safe", "verdict": "x"}')
    assert exc.field == "answers.verdict" and "more than once" in exc.reason


def test_badinput_review_answers_file_with_byte_order_mark_is_read(tmp_path: Path) -> None:
    db, task = _setup(tmp_path)
    answers = tmp_path / "bom.json"
    answers.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    code, out, _ = _invoke(db, "review", "submit", task, "--reviewer", "a", "--answers",
                           f"@{answers}")
    assert code == 0, out


@pytest.mark.parametrize(("text", "line", "field"), [
    ('{"verdict": "safe",\n "refusal": "complies",\n "helpfulness": 9}', 3, "helpfulness"),
    ('{\n "verdict": "unsure",\n "refusal": "complies",\n "helpfulness": 3}', 2, "verdict"),
    ('{"verdict": "safe",\n "refusal": "complies",\n "helpfulness": NaN}', 3, "helpfulness"),
])
def test_badinput_review_bad_answer_in_file_names_file_line_and_question(
        tmp_path: Path, text: str, line: int, field: str) -> None:
    db, task = _setup(tmp_path)
    answers = tmp_path / "bad.json"
    answers.write_text(text)
    for args in (["review", "submit", task, "--reviewer", "a"],
                 ["task", "gold", "--event", "ev00001", "--rubric", "harm"]):
        exc = _error(db, *args, "--answers", f"@{answers}")
        assert (exc.file, exc.line, exc.field) == (str(answers), line, field), args


def test_badinput_review_bad_adjudication_answer_names_file_and_line(
        tmp_path: Path) -> None:
    db, task = _setup(tmp_path)
    for rid, verdict in (("a", "safe"), ("b", "harmful"), ("c", "borderline")):
        if rid != "a":
            assert _invoke(db, "queue", "next", "--reviewer", rid)[0] == 0
        code, out, _ = _invoke(db, "review", "submit", task, "--reviewer", rid,
                               "--answers", json.dumps({**GOOD, "verdict": verdict}))
        assert code == 0, out
    answers = tmp_path / "decision.json"
    answers.write_text('{\n  "verdict": "maybe"\n}\n')
    exc = _error(db, "adjudicate", "decide", task, "--adjudicator", "lead", "--answers",
                 f"@{answers}", "--rationale", "r", "--cause", "subjective")
    assert (exc.file, exc.line, exc.field) == (str(answers), 2, "verdict")


def test_badinput_review_answers_file_not_utf8_names_the_line(tmp_path: Path) -> None:
    answers = tmp_path / "latin1.json"
    answers.write_bytes(b'{"verdict": "safe",\n "notes": "caf\xe9"}\n')
    exc = _error(f"sqlite:///{tmp_path / 'h.db'}", "review", "submit", "t1",
                 "--reviewer", "a", "--answers", f"@{answers}")
    assert (exc.file, exc.line) == (str(answers), 2) and "not UTF-8" in exc.reason
