"""Errors about a value given on the command line name the option typed (``--time-spent``,
``--shape``, ``--out``), not the field the library and the HTTP API call it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hilt.store.db import make_engine
from tests.conftest import migrated_sqlite
from tests.core.helpers import cli_input_error


@pytest.fixture
def db(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "h.db")


def refused(db: str, *args: str) -> str:
    """The message of the InputError ``hilt ARGS`` stops with (printed as ``error: ...``
    by the entry point)."""
    return str(cli_input_error(db, *args))


@pytest.fixture
def preference_version(db: str, tmp_path: Path) -> str:
    """A stored preference dataset version of three events."""
    from hilt.data.build import build_version
    from hilt.data.spec import parse_spec
    from hilt.events.ingest import ingest_events
    from hilt.review.records import FinalLabelRecord
    from hilt.store.db import transaction

    engine = make_engine(db)
    ingest_events(engine, [
        {"id": f"ev{i}", "interaction": {"prompt": f"How do plants in garden {i} grow?"},
         "responses": [{"text": f"Sun and water for {i}."}, {"text": f"No idea {i}."}],
         "context": {"subject_id": f"s{i}", "consent": ["train", "review"]}}
        for i in range(3)], actor="test")
    labels = [FinalLabelRecord(
        label_id=f"lb-{i}", event_id=f"ev{i}", task_id=f"t-{i}", rubric_id="helpful",
        rubric_version=1, question_id="pref", question_kind="preference",
        value={"chosen": 0, "rejected": 1}, provenance="majority", confidence=0.9,
        review_ids=(f"rv-{i}-a", f"rv-{i}-b"), adjudication_id=None,
        policy_version="policy-7", decided_at=datetime(2025, 3, 1, tzinfo=UTC))
        for i in range(3)]
    spec = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}
    with transaction(engine) as session:
        version_id = build_version(session, parse_spec(spec), actor="test",
                                   label_source=lambda _s, **_k: labels,
                                   directory=tmp_path / "ds").version_id
    engine.dispose()
    return version_id


def test_review_submit_names_time_spent_and_confidence(db: str) -> None:
    message = refused(db, "review", "submit", "task_x", "--reviewer", "a", "--answers",
                      "{}", "--time-spent", "-1")
    assert message.startswith("field '--time-spent': ")
    message = refused(db, "review", "submit", "task_x", "--reviewer", "a", "--answers",
                      "{}", "--confidence", "2")
    assert message.startswith("field '--confidence': ")


def test_dataset_export_names_shape_format_and_out(db: str, preference_version: str,
                                                    tmp_path: Path) -> None:
    export = ["dataset", "export", preference_version]
    message = refused(db, *export, "--out", str(tmp_path / "e"), "--shape", "messages")
    assert message.startswith("field '--shape': ") and "preference" in message
    message = refused(db, *export, "--out", str(tmp_path / "e"), "--format", "xml")
    assert message.startswith("field '--format': ")
    (tmp_path / "taken").mkdir()
    message = refused(db, *export, "--out", str(tmp_path / "taken"))
    assert message == f"field '--out': {tmp_path / 'taken'} already exists"


def test_dataset_revoke_and_forget_name_their_options(db: str,
                                                      preference_version: str) -> None:
    assert refused(db, "dataset", "revoke", preference_version, "--reason", "").startswith(
        "field '--reason': ")
    assert refused(db, "forget", "--subject", " ").startswith("field '--subject': ")


def test_token_and_reviewer_commands_name_their_options(db: str) -> None:
    assert refused(db, "token", "create", "--role", "bogus").startswith("field '--role': ")
    assert refused(db, "token", "create", "--role", "reviewer").startswith(
        "field '--reviewer': ")
    assert refused(db, "reviewer", "add", "x", "--role", "bogus").startswith(
        "field '--role': ")
    # the second --pool is the blank one: the option is named, as typed
    assert refused(db, "reviewer", "add", "x", "--pool", "a", "--pool", " ").startswith(
        "field '--pool': ")
    assert refused(db, "reviewer", "add", "x", "--name", "a\tb").startswith(
        "field '--name': ")


def test_adjudicate_and_set_status_name_their_options(db: str) -> None:
    assert refused(db, "adjudicate", "decide", "task_x", "--adjudicator", "k", "--answers",
                   "{}", "--rationale", "why", "--cause", "bogus").startswith(
        "field '--cause': ")
    assert refused(db, "quality", "set-status", "a", "calibrated", "--reason", "").startswith(
        "field '--reason': ")


def test_an_error_inside_an_answers_file_keeps_its_place(db: str, tmp_path: Path) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text('{\n"verdict": "safe",\n"verdict": "harmful"\n}\n', encoding="utf-8")
    message = refused(db, "review", "submit", "task_x", "--reviewer", "a", "--answers",
                      f"@{answers}")
    assert message.startswith(f"{answers}, line 3, field 'verdict': ")
