"""`hilt rubric proposals` of a rubric id that was never published is refused, so a
misspelt id does not read as "no proposals"."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import NotFound
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from tests.review.helpers import HARM


def test_proposals_of_an_unpublished_rubric_are_refused(engine: Engine, db_url: str,
                                                        tmp_path: Path) -> None:
    with transaction(engine) as s:
        publish_rubric(s, load_rubric_file(HARM), actor="lead")
    runner = CliRunner()
    listed = runner.invoke(app, ["rubric", "proposals", "harm", "--db", db_url])
    assert listed.exit_code == 0 and listed.stdout.strip() == "[]", listed.output
    missing = runner.invoke(app, ["rubric", "proposals", "hram", "--db", db_url])
    assert isinstance(missing.exception, NotFound) and "hram" in str(missing.exception)
