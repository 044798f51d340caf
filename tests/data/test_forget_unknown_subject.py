"""`hilt forget` for a subject id that no stored event has (a typo, a stray space) says
so on stderr: the run erases nothing and would otherwise read like a finished erasure.
A subject whose events are already erased is found, and gets no such note."""

from __future__ import annotations

import json

from data_factories import garden_event
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.events.ingest import ingest_events


def test_forget_says_when_no_event_has_the_subject(engine: Engine, db_url: str) -> None:
    from hilt.cli import app

    ingest_events(engine, [garden_event(0, "alice", marked="alice", mark="tulip")], actor="test")
    runner = CliRunner()

    typo = runner.invoke(app, ["forget", "--subject", "alice ", "--db", db_url])
    assert typo.exit_code == 0, typo.output
    assert json.loads(typo.stdout)["events_erased"] == 0
    assert "no stored event has the subject id 'alice '" in typo.stderr

    for erased in (1, 0):  # the second run finds the erased event: no note
        ran = runner.invoke(app, ["forget", "--subject", "alice", "--db", db_url])
        assert ran.exit_code == 0, ran.output
        assert json.loads(ran.stdout)["events_erased"] == erased
        assert "no stored event" not in ran.stderr
